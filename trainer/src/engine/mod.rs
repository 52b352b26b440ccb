//! Data parallelism: one replica of the network per device, each driven by
//! its own thread. A global batch is split into one shard per replica; each
//! replica runs forward and backward on its shard; the gradients are
//! all-reduced (weighted by shard size, so the result is the gradient of the
//! global batch's mean loss); then every replica takes the same optimizer
//! step, so the parameters stay identical (checked by
//! [`DataParallel::check_in_sync`]).
//!
//! CPU replicas (`Device::Cpu` several times) run through exactly this code
//! path, which is how the engine is tested on machines without GPUs.
//!
//! Dropout masks come from a counter-based stream seeded per step
//! ([`zftrain_model::dropout`]): a replica draws for its rows of the global
//! batch exactly what one device would, so N replicas train the same model as
//! one even with dropout on (up to floating-point reduction order).

pub mod reduce;
pub mod replica;
pub mod scaler;
pub mod workers;

pub use reduce::{CopyReducer, GradReducer};
pub use replica::{DataParallel, StepOptions, StepOutput};
