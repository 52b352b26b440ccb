//! The `zftrain` command line tool as a library: the pieces the binary is
//! made of, usable from tests and from Rust programs that embed zftrain.
//!
//! `cli` parses flags, `commands` runs them, `weights` moves parameters
//! between networks and files, `config` is the run configuration and `train`
//! the training loop.

pub mod allocator;
pub mod benchmark;
pub mod cli;
pub mod commands;
pub mod config;
pub mod devices;
pub mod engine;
pub mod train;
pub mod weights;
