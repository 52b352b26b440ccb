//! Callbacks: what the trainer does besides stepping, each in its own
//! value, in the manner of Lightning's `Callback`. The loop only steps and
//! tells its callbacks what happened; they log, draw the progress bar,
//! decide when to checkpoint and run the hooks, and answer with
//! [`Requests`] (stop, checkpoint now). Each callback's state is saved in
//! every checkpoint ([`Callback::states`]) and handed back on resume
//! ([`Callback::load_states`]).
//!
//! The standard set ([`standard`]): [`SkippedImages`], [`MetricsLogger`],
//! [`CheckpointPolicy`], [`HooksAdapter`] and [`Progress`], in that order.
//! A program that embeds zftrain adds its own with
//! [`TrainOptions::callbacks`](crate::train::TrainOptions).

mod checkpoint_policy;
mod hooks_adapter;
pub mod metrics_csv;
mod metrics_logger;
mod pace;
mod progress;
mod skipped_images;

use std::path::{Path, PathBuf};

use anyhow::Result;
use tch::Device;
use zftrain_hooks::{HookState, SavedStates};
use zftrain_model::Network;
use zftrain_tensorboard::BackgroundWriter;

use crate::config::RunConfig;
use crate::train::metrics::Running;
use crate::train::role::Role;
use crate::train::state::TrainerState;

pub use checkpoint_policy::CheckpointPolicy;
pub use hooks_adapter::HooksAdapter;
pub use metrics_logger::MetricsLogger;
pub use pace::{short, Pace};
pub use progress::Progress;
pub use skipped_images::SkippedImages;

/// Where training stands, as every callback sees it.
pub struct Context<'a> {
    /// The run's configuration.
    pub config: &'a RunConfig,
    /// Where this node writes (the run directory, or a follower's own).
    pub run_dir: &'a Path,
    /// Position and history (after the step or epoch being reported).
    pub state: &'a TrainerState,
    /// Replica 0's network (evaluation mode is the caller's to ask for).
    pub net: &'a Network,
    /// Replica 0's device.
    pub device: Device,
    /// The network on every device, replica 0 first.
    pub replicas: Vec<(&'a Network, Device)>,
    /// This node's TensorBoard writer.
    pub tb: &'a BackgroundWriter,
    /// This node's part in the run.
    pub role: &'a Role,
    /// Steps in one epoch (`train.max_steps_per_epoch` applied).
    pub steps_per_epoch: usize,
    /// The session's pace, for the time left.
    pub pace: &'a Pace,
}

impl Context<'_> {
    /// Time left in the epoch (`None` before its first step).
    pub fn epoch_left(&self) -> Option<std::time::Duration> {
        self.pace.epoch_left(self.state, self.steps_per_epoch)
    }

    /// Time left in the run (`None` before the session's first step).
    pub fn run_left(&self) -> Option<std::time::Duration> {
        self.pace
            .run_left(self.state, self.steps_per_epoch, self.config.train.epochs)
    }
}

/// One optimizer step.
pub struct StepReport<'a> {
    /// The step's mean loss over the global batch.
    pub loss: f64,
    /// The learning rate it used.
    pub lr: f64,
    /// The epoch so far (loss and accuracy on this node's rows).
    pub running: &'a Running,
    /// Images this node trained on in this step.
    pub images: usize,
    /// Whether this step is one that `train.log_every` logs
    /// ([`TrainConfig::logs_step`](crate::config::TrainConfig::logs_step)).
    pub logged: bool,
    /// The gradient's L2 norm, on the steps that log (`None` on the others).
    pub grad_norm: Option<f64>,
    /// Conv filters ZF's renormalization rescaled after this step, over all
    /// layers, on the steps that log with `train.renorm_radius > 0`.
    pub renorm_clipped: Option<u64>,
}

/// One epoch.
pub struct EpochReport<'a> {
    /// The epoch that ended (1-based).
    pub epoch: u64,
    /// Its training pass (this node's rows).
    pub train: &'a Running,
    /// The validation pass (on the node that keeps the run; `None` on the
    /// others).
    pub val: Option<&'a Running>,
}

/// Why a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// Within an epoch (`checkpoint.every_steps`).
    Periodic,
    /// At the end of an epoch.
    EpochEnd,
    /// On a stop (a signal, or a callback's request).
    Stop,
}

/// What callbacks ask of the trainer after an event; the trainer merges
/// every callback's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// Stop after this event (a checkpoint is written).
    pub stop: bool,
    /// Write a checkpoint now.
    pub checkpoint: bool,
}

impl Requests {
    /// Nothing asked.
    pub const NONE: Requests = Requests {
        stop: false,
        checkpoint: false,
    };

    /// A request to stop.
    pub fn stop() -> Requests {
        Requests {
            stop: true,
            ..Requests::NONE
        }
    }

    /// Both requests together.
    pub fn merge(self, other: Requests) -> Requests {
        Requests {
            stop: self.stop || other.stop,
            checkpoint: self.checkpoint || other.checkpoint,
        }
    }
}

/// Something the trainer tells what happens. Every method has a default
/// that does nothing, so a callback implements only what it needs.
pub trait Callback {
    /// Before the first step (also on resume).
    fn on_train_start(&mut self, _ctx: &Context<'_>) -> Result<Requests> {
        Ok(Requests::NONE)
    }
    /// Before an epoch's first step (or the first step left, on resume).
    fn on_epoch_start(&mut self, _ctx: &Context<'_>) -> Result<()> {
        Ok(())
    }
    /// Images of a training batch or of the validation pass that were left
    /// out because they do not decode (`ctx.state.skipped_images` counts
    /// them already).
    fn on_skipped(&mut self, _ctx: &Context<'_>, _skipped: &[(PathBuf, String)]) -> Result<()> {
        Ok(())
    }
    /// After an optimizer step.
    fn on_step_end(&mut self, _ctx: &Context<'_>, _step: &StepReport<'_>) -> Result<Requests> {
        Ok(Requests::NONE)
    }
    /// The epoch's training pass is over (or was cut short by a stop);
    /// validation comes next.
    fn on_train_epoch_end(&mut self, _ctx: &Context<'_>) -> Result<()> {
        Ok(())
    }
    /// After an epoch's training and validation (`ctx.state` is at the
    /// next epoch).
    fn on_epoch_end(&mut self, _ctx: &Context<'_>, _epoch: &EpochReport<'_>) -> Result<Requests> {
        Ok(Requests::NONE)
    }
    /// After a checkpoint was written to `path`.
    fn on_checkpoint(
        &mut self,
        _ctx: &Context<'_>,
        _path: &Path,
        _kind: CheckpointKind,
    ) -> Result<()> {
        Ok(())
    }
    /// When training ends (not when it stops early).
    fn on_train_end(&mut self, _ctx: &Context<'_>) -> Result<()> {
        Ok(())
    }
    /// State to keep in checkpoints, as `(name, state)` files
    /// (`hook-<name>.json` and `.safetensors`); names are unique across
    /// the run's callbacks and hooks.
    fn states(&self) -> Result<Vec<(String, HookState)>> {
        Ok(Vec::new())
    }
    /// On resume, before `on_train_start`: takes back what
    /// [`Callback::states`] saved, removing each of its states from `saved`
    /// by name. States no callback takes are reported and left alone.
    fn load_states(&mut self, _saved: &mut SavedStates) -> Result<()> {
        Ok(())
    }
}

/// The standard callbacks for a node's role: every node reports skipped
/// images, logs its metrics and draws its progress; the node that keeps
/// the run also runs the hooks (`hooks`, if any) and checkpoints. The
/// hooks come before the loggers: a stop that cuts the hooks short at an
/// epoch's end reaches no callback after them, so the redone end on
/// resume logs the epoch's metrics once.
pub fn standard(
    config: &RunConfig,
    role: &Role,
    hooks: Option<HooksAdapter>,
) -> Vec<Box<dyn Callback>> {
    let mut list: Vec<Box<dyn Callback>> = vec![Box::new(SkippedImages)];
    if let Some(h) = hooks {
        list.push(Box::new(h));
    }
    list.push(Box::new(MetricsLogger::default()));
    if role.keeps_the_run() {
        list.push(Box::new(CheckpointPolicy::new(&config.checkpoint)));
    }
    list.push(Box::new(Progress::default()));
    list
}

#[cfg(test)]
mod tests {
    use super::Requests;

    #[test]
    fn merged_requests_keep_every_ask() {
        let a = Requests::stop();
        let b = Requests {
            checkpoint: true,
            ..Requests::NONE
        };
        assert_eq!(
            a.merge(b),
            Requests {
                stop: true,
                checkpoint: true,
            }
        );
        assert_eq!(Requests::NONE.merge(Requests::NONE), Requests::NONE);
    }
}
