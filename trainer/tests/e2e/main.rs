//! End-to-end tests of the `zftrain` binary: one test binary, so libtorch
//! links once. Each module drives real commands on real files.
// A few end-to-end tests read as one story from data to the numbers a user
// sees (train, resume, look inside); the library code is held to 80 lines.
#![allow(clippy::too_many_lines)]

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
