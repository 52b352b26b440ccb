//! Hooks: analyses that run at chosen epochs or steps of training, or once on
//! a checkpoint.
//!
//! This crate will hold the `Hook` trait, its schedules, the registry and the
//! built-in hooks (Deconvnet grids, dead filters, aliasing, the paper's
//! analyses, the exec plugin). It sits on `deconv` and `model`; the trainer
//! drives it.

pub use zftrain_deconv as deconv;
