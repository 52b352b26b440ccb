//! The hooks crate's integration tests, one binary (libtorch links once).

mod analyses;
mod builtin;
mod common;
mod metrics;
mod registry;
mod shared;
mod streamed;
