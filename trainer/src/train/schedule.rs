//! Learning-rate schedules: constant, step, plateau (on validation top-1),
//! cosine, each with an optional linear warm-up. The state (decays so far,
//! best metric, epochs without improvement) is plain data for checkpoints.

use serde::{Deserialize, Serialize};

use crate::config::{ScheduleConfig, ScheduleKind};

/// What a schedule remembers between epochs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Plateau: decays applied so far.
    pub decays: u32,
    /// Plateau: best validation top-1 seen.
    pub best: f64,
    /// Plateau: epochs since it improved.
    pub stale: u64,
}

/// The learning-rate schedule of a run. Its state is not here: it is the
/// run's ([`TrainerState::schedule`](crate::train::state::TrainerState)),
/// passed in where it is read or changed.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    /// Settings.
    pub config: ScheduleConfig,
    /// Base learning rate.
    pub base_lr: f64,
    /// Total epochs of the run.
    pub epochs: u64,
}

impl LrSchedule {
    /// The schedule of `[schedule]` with `optim.lr` over `train.epochs`.
    pub fn of(config: &crate::config::RunConfig) -> LrSchedule {
        LrSchedule {
            config: config.schedule.clone(),
            base_lr: config.optim.lr,
            epochs: config.train.epochs,
        }
    }

    /// The learning rate at fractional epoch `t` (epoch + fraction done),
    /// in `state`.
    pub fn lr(&self, t: f64, state: &ScheduleState) -> f64 {
        let c = &self.config;
        let warm = c.warmup_epochs;
        if t < warm {
            return self.base_lr * (t / warm).max(1e-3);
        }
        let epoch = t.floor() as u64;
        match c.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Step => self.base_lr * c.gamma.powi((epoch / c.step_epochs) as i32),
            ScheduleKind::Plateau => self.base_lr * c.gamma.powi(state.decays as i32),
            ScheduleKind::Cosine => {
                let span = (self.epochs as f64 - warm).max(1.0);
                let x = ((t - warm) / span).clamp(0.0, 1.0);
                self.base_lr * 0.5 * (1.0 + (std::f64::consts::PI * x).cos())
            }
        }
    }

    /// Moves `state` on by an epoch's end with validation top-1 `val_top1`.
    pub fn epoch_end(&self, state: &mut ScheduleState, val_top1: f64) {
        if self.config.kind != ScheduleKind::Plateau {
            return;
        }
        if val_top1 > state.best {
            state.best = val_top1;
            state.stale = 0;
        } else {
            state.stale += 1;
            if state.stale >= self.config.patience {
                state.decays += 1;
                state.stale = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind) -> LrSchedule {
        LrSchedule {
            config: ScheduleConfig {
                kind,
                step_epochs: 30,
                gamma: 0.1,
                patience: 2,
                warmup_epochs: 0.0,
            },
            base_lr: 0.01,
            epochs: 90,
        }
    }

    #[test]
    fn step_divides_by_ten_every_thirty_epochs() {
        let (s, at) = (sched(ScheduleKind::Step), ScheduleState::default());
        assert_eq!(s.lr(0.0, &at), 0.01);
        assert!((s.lr(30.5, &at) - 0.001).abs() < 1e-12);
        assert!((s.lr(89.9, &at) - 0.0001).abs() < 1e-12);
    }

    #[test]
    fn plateau_decays_after_patience_epochs_without_improvement() {
        let s = sched(ScheduleKind::Plateau);
        let mut at = ScheduleState::default();
        for top1 in [0.1, 0.2, 0.2, 0.19] {
            s.epoch_end(&mut at, top1);
        }
        assert_eq!(at.decays, 1);
        assert!((s.lr(4.0, &at) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn cosine_and_warmup() {
        let mut s = sched(ScheduleKind::Cosine);
        s.config.warmup_epochs = 5.0;
        let at = ScheduleState::default();
        assert!((s.lr(2.5, &at) - 0.005).abs() < 1e-12);
        assert!((s.lr(5.0, &at) - 0.01).abs() < 1e-12);
        assert!(s.lr(90.0, &at).abs() < 1e-12);
    }
}
