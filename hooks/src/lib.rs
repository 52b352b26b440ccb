//! Hooks: analyses that run at chosen epochs or steps of training, or once
//! on a checkpoint, and log what they see.
//!
//! - [`Hook`]: the trait (events with no-op defaults, a [`Schedule`], state
//!   for checkpoints), [`HookContext`] what a call gets (the network in
//!   evaluation mode, the [`ProbeSet`], epoch and step, the run directory, a
//!   [`SummarySink`], the latest loss, learning rate and validation
//!   [`Metrics`]).
//! - [`Hooks`]: the registry; it isolates every call, so a hook that fails or
//!   panics is reported and training goes on unless the hook is required.
//! - [`HookSpec`]: hooks built from the config's `[[hooks]]` tables.
//! - [`builtin`]: the Deconvnet grids and their evolution montage, dead
//!   filters, aliasing, the three analyses of section 4 (invariance,
//!   occlusion, correspondence) and exec plugins (programs of the user's).
//!
//! It sits on `model`, `deconv`, `analyses` and `checkpoints`; the trainer
//! drives it.

pub mod builtin;
pub mod context;
pub mod error;
pub mod fan_out;
pub mod hook;
pub mod kind;
pub mod mining;
pub mod registry;
pub mod schedule;
pub mod shared;
pub mod sink;
pub mod spec;

pub use context::{HookContext, Metrics, ProbeBatch, ProbeBatches, ProbeSet, TensorProbe};
pub use error::HookError;
pub use fan_out::on_devices;
pub use hook::{Control, Event, Hook, HookState, SavedStates};
pub use kind::{HookKind, TagDoc};
pub use mining::mine_probe;
pub use registry::{Dispatch, Hooks};
pub use schedule::Schedule;
pub use shared::{FilterSums, ProbeNeed, SharedPass};
pub use sink::{MemorySink, Recorded, SummarySink};
pub use spec::HookSpec;
pub use zftrain_deconv as deconv;
