//! What the trainer remembers across a checkpoint, besides weights and
//! momentum: where it is (epoch, batch cursor, step), the best result, the
//! schedule's state. With the data order fixed by `(seed, epoch)` and the
//! dropout stream reseeded from `(seed, step)` every step, this is all a
//! resumed run needs to continue bit for bit.

use serde::{Deserialize, Serialize};

use crate::train::metrics::Running;
use crate::train::schedule::ScheduleState;
use zftrain_parallel::scaler::LossScaler;

/// The trainer's position and history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// The epoch in progress (0-based).
    pub epoch: u64,
    /// The next batch of that epoch.
    pub batch: usize,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// Best validation top-1 so far.
    pub best_top1: f64,
    /// Step of the checkpoint with the best validation top-1.
    pub best_step: Option<u64>,
    /// Learning-rate schedule state.
    pub schedule: ScheduleState,
    /// Images left out because they did not decode.
    pub skipped_images: u64,
    /// The fp16 loss scaler's state.
    #[serde(default)]
    pub loss_scaler: Option<LossScaler>,
    /// The epoch's training loss and accuracy so far (its steps before
    /// `batch`), so an epoch resumed in its middle, or at its end before
    /// validation, reports the whole epoch.
    #[serde(default)]
    pub epoch_running: Running,
}

/// The largest step count a state may hold: TensorBoard's steps are i64,
/// and floats count them exactly up to 2^53.
pub const MAX_STEPS: u64 = 1 << 53;

impl TrainerState {
    /// Records an epoch's validation top-1 at the current step: it becomes
    /// the best when it beats the best so far (or is the first). Whether it
    /// did. The one place "best" is decided: checkpoints keep the best
    /// step, the loggers report `best_top1`.
    pub fn record_val(&mut self, top1: f64) -> bool {
        let best = top1 > self.best_top1 || self.best_step.is_none();
        if best {
            (self.best_top1, self.best_step) = (top1, Some(self.global_step));
        }
        best
    }

    /// Checks counters read from a file (a resealed `trainer.json` is as
    /// easy to write as any): each within what a run can reach, so no
    /// arithmetic on them wraps. `Err` names the field.
    pub fn check(&self) -> Result<(), String> {
        let limits = [
            ("epoch", self.epoch, 1 << 32),
            ("batch", self.batch as u64, 1 << 40),
            ("global_step", self.global_step, MAX_STEPS),
            ("best_step", self.best_step.unwrap_or(0), MAX_STEPS),
            ("skipped_images", self.skipped_images, MAX_STEPS),
            ("epoch_running.n", self.epoch_running.n, MAX_STEPS),
            (
                "epoch_running.top1",
                self.epoch_running.top1,
                self.epoch_running.n,
            ),
            (
                "epoch_running.top5",
                self.epoch_running.top5,
                self.epoch_running.n,
            ),
        ];
        for (name, value, max) in limits {
            if value > max {
                return Err(format!(
                    "'{name}' is {value}, beyond the {max} a run can reach"
                ));
            }
        }
        if !self.best_top1.is_finite() {
            return Err(format!("'best_top1' is {}", self.best_top1));
        }
        if !self.epoch_running.loss.is_finite() {
            return Err(format!(
                "'epoch_running.loss' is {}",
                self.epoch_running.loss
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_beyond_reach_are_refused_by_name() {
        assert!(TrainerState::default().check().is_ok());
        let s = TrainerState {
            global_step: u64::MAX,
            ..TrainerState::default()
        };
        assert!(s.check().unwrap_err().contains("'global_step'"));
        let s = TrainerState {
            best_top1: f64::NAN,
            ..TrainerState::default()
        };
        assert!(s.check().unwrap_err().contains("best_top1"));
    }
}
