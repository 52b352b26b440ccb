//! Training: the [`Trainer`] session (`fit` -> `train_epoch` -> `step`) and
//! its parts: set-up, the node's [`Role`], the [`callbacks`] (checkpoint
//! policy, metrics logger, progress, skipped images, hooks), the
//! [`StopHandle`], learning-rate schedules, metrics, checkpoints with exact
//! resume, validation and the prefetch thread.

pub mod callbacks;
pub mod checkpointing;
pub(crate) mod checks;
pub mod cluster;
pub mod dry_run;
pub mod evaluate;
pub mod hooks;
pub mod lock;
pub mod log_file;
pub mod metrics;
pub mod prefetch;
pub mod probe;
pub mod role;
pub mod run_tree;
pub mod schedule;
pub mod session;
pub mod setup;
pub mod state;
pub mod stop;
pub mod tags;
pub mod ticker;
pub mod transfer;

pub use callbacks::{Callback, Requests};
pub use role::Role;
pub use session::{train, Flow, Outcome, TrainOptions, Trainer};
pub use stop::StopHandle;
