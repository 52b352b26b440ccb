//! End-to-end tests of the `zftrain` binary: one test binary, so libtorch
//! links once. Each module drives real commands on real files.

mod analyze;
mod arch_files;
mod cli;
mod cluster;
mod common;
mod docs;
mod faults;
mod fuzz_replay;
mod gpu;
mod hooks;
mod hostile;
mod hostile_runs;
mod probe;
mod pytorch;
mod rehearsal;
mod session;
mod stops;
mod summary;
mod train;
mod transfer;
mod weights;
