//! The checkpoint policy: when to write one (every epoch's end, and every
//! `checkpoint.every_steps` steps within an epoch), which is the best (the
//! highest validation top-1), and what to keep (the newest
//! `checkpoint.keep_last` and the best). The trainer writes what the policy
//! asks for.

use std::path::Path;

use anyhow::Result;
use tracing::info;

use super::{Callback, CheckpointKind, Context, EpochReport, Requests, StepReport};
use crate::config::CheckpointConfig;
use crate::train::checkpointing::{checkpoints_dir, prune};

/// The checkpoint policy of `[checkpoint]`.
pub struct CheckpointPolicy {
    every_steps: u64,
    keep_last: usize,
}

impl CheckpointPolicy {
    /// The policy that `config` describes.
    pub fn new(config: &CheckpointConfig) -> CheckpointPolicy {
        CheckpointPolicy {
            every_steps: config.every_steps,
            keep_last: config.keep_last,
        }
    }
}

impl Callback for CheckpointPolicy {
    fn on_step_end(&mut self, ctx: &Context<'_>, _s: &StepReport<'_>) -> Result<Requests> {
        let s = ctx.state;
        // Within the epoch only (its end writes one anyway): bounds what a
        // crash can lose.
        let due = self.every_steps > 0
            && s.global_step % self.every_steps == 0
            && s.batch < ctx.steps_per_epoch;
        Ok(Requests {
            checkpoint: due,
            ..Requests::NONE
        })
    }

    fn on_epoch_end(&mut self, ctx: &Context<'_>, e: &EpochReport<'_>) -> Result<Requests> {
        let best = match e.val {
            Some(val) => val.top1() > ctx.state.best_top1 || ctx.state.best_step.is_none(),
            None => false,
        };
        Ok(Requests {
            checkpoint: true,
            best,
            ..Requests::NONE
        })
    }

    fn on_checkpoint(
        &mut self,
        ctx: &Context<'_>,
        path: &Path,
        kind: CheckpointKind,
    ) -> Result<()> {
        if kind == CheckpointKind::Periodic {
            info!(checkpoint = %path.display(), step = ctx.state.global_step, "periodic checkpoint");
        }
        prune(
            &checkpoints_dir(ctx.run_dir),
            self.keep_last,
            ctx.state.best_step,
        )
    }
}
