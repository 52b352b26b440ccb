//! The `zftrain` command line tool as a library: the pieces the binary is
//! made of, usable from tests and from Rust programs that embed zftrain.
//!
//! `cli` parses flags, `commands` runs them, `weights` moves parameters
//! between networks and files, `config` is the run configuration and `train`
//! the training loop. Data parallelism (replicas, reducers, NCCL, devices,
//! SGD) is the `zftrain-parallel` crate, used by its own name;
//! `devices` (finding and loading the training devices) is re-exported.

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
