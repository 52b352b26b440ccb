//! The hooks adapter: the trainer's events as hook events
//! ([`zftrain_hooks::Event`]), each hook on its own schedule, with the
//! step's loss and learning rate and the last validation metrics in the
//! [`HookContext`](zftrain_hooks::HookContext); a hook's `Stop` becomes a
//! stop request, and the hooks' states go into every checkpoint.

use std::path::Path;

use anyhow::Result;
use zftrain_hooks::{Control, Event, HookState, Metrics, SavedStates};

use super::{Callback, CheckpointKind, Context, EpochReport, Requests, StepReport};
use crate::train::hooks::{HookRunner, Moment};

/// The hooks of a run, as a callback.
pub struct HooksAdapter {
    runner: HookRunner,
    metrics: Metrics,
}

impl HooksAdapter {
    /// Adapts `runner` (its hooks built; their states come back through
    /// [`Callback::load_states`]).
    pub fn new(runner: HookRunner) -> HooksAdapter {
        HooksAdapter {
            runner,
            metrics: Metrics::default(),
        }
    }

    fn send(&mut self, event: Event, ctx: &Context<'_>) -> Result<Requests> {
        let at = Moment {
            net: ctx.net,
            replicas: &ctx.replicas,
            epoch: ctx.state.epoch,
            step: ctx.state.global_step,
            run_dir: ctx.run_dir,
            tb: ctx.tb,
            metrics: self.metrics,
        };
        Ok(match self.runner.event(event, &at)? {
            Control::Stop => Requests::stop(),
            Control::Continue => Requests::NONE,
        })
    }
}

impl Callback for HooksAdapter {
    fn on_train_start(&mut self, ctx: &Context<'_>) -> Result<Requests> {
        self.send(Event::TrainStart, ctx)
    }

    fn on_step_end(&mut self, ctx: &Context<'_>, s: &StepReport<'_>) -> Result<Requests> {
        self.metrics.loss = Some(s.loss);
        self.metrics.lr = Some(s.lr);
        self.send(Event::StepEnd, ctx)
    }

    fn on_epoch_end(&mut self, ctx: &Context<'_>, e: &EpochReport<'_>) -> Result<Requests> {
        if let Some(val) = e.val {
            self.metrics.val_loss = Some(val.mean_loss());
            self.metrics.val_top1 = Some(val.top1());
            self.metrics.val_top5 = Some(val.top5());
        }
        self.send(Event::EpochEnd, ctx)
    }

    fn on_checkpoint(
        &mut self,
        ctx: &Context<'_>,
        _path: &Path,
        kind: CheckpointKind,
    ) -> Result<()> {
        // The hook event is the epoch's checkpoint (a hook scheduled by
        // epochs would otherwise also run inside epochs).
        if kind == CheckpointKind::EpochEnd {
            self.send(Event::Checkpoint, ctx)?;
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &Context<'_>) -> Result<()> {
        self.send(Event::TrainEnd, ctx).map(|_| ())
    }

    fn states(&self) -> Result<Vec<(String, HookState)>> {
        self.runner.states()
    }

    fn load_states(&mut self, saved: &mut SavedStates) -> Result<()> {
        self.runner.load_states(saved)
    }
}
