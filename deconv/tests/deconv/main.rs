//! The deconv crate's integration tests, one binary (libtorch links once).

mod common;
mod mining;
mod projection;
