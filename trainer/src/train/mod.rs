//! The training loop and its parts: SGD, learning-rate schedules, ZF's
//! filter renormalization, metrics, checkpointing with exact resume.

pub mod checkpointing;
pub mod cluster;
pub mod hooks;
pub mod metrics;
pub mod prefetch;
pub mod run;
pub mod schedule;
pub mod state;
