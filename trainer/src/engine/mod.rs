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
//! Dropout draws from libtorch's generator of the device; CPU replicas share
//! one, so with dropout on, CPU replicas are not bit-reproducible (GPU
//! replicas each have their own device generator). The equivalence tests run
//! with dropout off.

pub mod reduce;
pub mod replica;
pub mod scaler;

pub use reduce::{CopyReducer, GradReducer};
pub use replica::{DataParallel, StepOutput};
