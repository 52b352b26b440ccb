//! The checkpoint policy: when to write one (every epoch's end, every
//! `checkpoint.every_steps` steps within an epoch, and when
//! `checkpoint.every_minutes` have passed since the last) and what to keep
//! (the newest `checkpoint.keep_last` and the best, which the run's state
//! records: [`TrainerState::record_val`](crate::train::state::TrainerState::record_val)).
//! The trainer writes what the policy asks for.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use tracing::info;

use super::{Callback, CheckpointKind, Context, EpochReport, Requests, StepReport};
use crate::config::CheckpointConfig;
use crate::train::checkpointing::{checkpoints_dir, prune};

/// The checkpoint policy of `[checkpoint]`.
pub struct CheckpointPolicy {
    every_steps: u64,
    every: Option<Duration>,
    keep_last: usize,
    /// When the last checkpoint was written (or the policy made).
    last: Instant,
}

impl CheckpointPolicy {
    /// The policy that `config` describes.
    pub fn new(config: &CheckpointConfig) -> CheckpointPolicy {
        CheckpointPolicy {
            every_steps: config.every_steps,
            every: (config.every_minutes > 0.0)
                .then(|| Duration::from_secs_f64(config.every_minutes * 60.0)),
            keep_last: config.keep_last,
            last: Instant::now(),
        }
    }

    /// Whether `checkpoint.every_minutes` have passed, at `now`, since the
    /// last one.
    fn time_is_up(&self, now: Instant) -> bool {
        self.every
            .is_some_and(|every| now.saturating_duration_since(self.last) >= every)
    }
}

impl Callback for CheckpointPolicy {
    fn on_step_end(&mut self, ctx: &Context<'_>, _s: &StepReport<'_>) -> Result<Requests> {
        let s = ctx.state;
        // Within the epoch only (its end writes one anyway): bounds what a
        // crash can lose.
        let by_steps = self.every_steps > 0 && s.global_step % self.every_steps == 0;
        let due = (by_steps || self.time_is_up(Instant::now())) && s.batch < ctx.steps_per_epoch;
        Ok(Requests {
            checkpoint: due,
            ..Requests::NONE
        })
    }

    fn on_epoch_end(&mut self, _ctx: &Context<'_>, _e: &EpochReport<'_>) -> Result<Requests> {
        Ok(Requests {
            checkpoint: true,
            ..Requests::NONE
        })
    }

    fn on_checkpoint(
        &mut self,
        ctx: &Context<'_>,
        path: &Path,
        kind: CheckpointKind,
    ) -> Result<()> {
        self.last = Instant::now();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_up_once_the_minutes_have_passed_since_the_last_checkpoint() {
        let config = |every_minutes| CheckpointConfig {
            every_minutes,
            ..CheckpointConfig::default()
        };
        let policy = CheckpointPolicy::new(&config(30.0));
        let minutes = |m: u64| policy.last + Duration::from_secs(m * 60);
        assert!(!policy.time_is_up(minutes(29)));
        assert!(policy.time_is_up(minutes(30)) && policy.time_is_up(minutes(31)));
        let off = CheckpointPolicy::new(&config(0.0));
        assert!(
            !off.time_is_up(off.last + Duration::from_secs(1 << 20)),
            "0 is off"
        );
    }
}
