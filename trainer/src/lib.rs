//! The `zftrain` command line tool as a library: the pieces the binary is
//! made of, usable from tests and from Rust programs that embed zftrain.
//!
//! `cli` parses flags, `commands` runs them, `weights` moves parameters
//! between networks and files, `config` is the run configuration and `train`
//! the training loop. The data-parallel engine (replicas, reducers, NCCL,
//! devices, SGD) is the `zftrain-parallel` crate, re-exported here as
//! `engine` and `devices`.

pub use zftrain_parallel as engine;
pub use zftrain_parallel::devices;

pub mod allocator;
pub mod benchmark;
pub mod cli;
pub mod commands;
pub mod config;
pub mod memory;
pub mod say;
pub mod train;
pub mod weights;
