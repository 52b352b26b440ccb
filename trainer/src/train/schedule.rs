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

/// A schedule with its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Settings.
    pub config: ScheduleConfig,
    /// Base learning rate.
    pub base_lr: f64,
    /// Total epochs of the run.
    pub epochs: u64,
    /// State.
    pub state: ScheduleState,
}

impl Schedule {
    /// The learning rate at fractional epoch `t` (epoch + fraction done).
    pub fn lr(&self, t: f64) -> f64 {
        let c = &self.config;
        let warm = c.warmup_epochs;
        if t < warm {
            return self.base_lr * (t / warm).max(1e-3);
        }
        let epoch = t.floor() as u64;
        match c.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Step => self.base_lr * c.gamma.powi((epoch / c.step_epochs) as i32),
            ScheduleKind::Plateau => self.base_lr * c.gamma.powi(self.state.decays as i32),
            ScheduleKind::Cosine => {
                let span = (self.epochs as f64 - warm).max(1.0);
                let x = ((t - warm) / span).clamp(0.0, 1.0);
                self.base_lr * 0.5 * (1.0 + (std::f64::consts::PI * x).cos())
            }
        }
    }

    /// Tells the schedule the validation top-1 at the end of an epoch.
    pub fn epoch_end(&mut self, val_top1: f64) {
        if self.config.kind != ScheduleKind::Plateau {
            return;
        }
        if val_top1 > self.state.best {
            self.state.best = val_top1;
            self.state.stale = 0;
        } else {
            self.state.stale += 1;
            if self.state.stale >= self.config.patience {
                self.state.decays += 1;
                self.state.stale = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind) -> Schedule {
        Schedule {
            config: ScheduleConfig {
                kind,
                step_epochs: 30,
                gamma: 0.1,
                patience: 2,
                warmup_epochs: 0.0,
            },
            base_lr: 0.01,
            epochs: 90,
            state: ScheduleState::default(),
        }
    }

    #[test]
    fn step_divides_by_ten_every_thirty_epochs() {
        let s = sched(ScheduleKind::Step);
        assert_eq!(s.lr(0.0), 0.01);
        assert!((s.lr(30.5) - 0.001).abs() < 1e-12);
        assert!((s.lr(89.9) - 0.0001).abs() < 1e-12);
    }

    #[test]
    fn plateau_decays_after_patience_epochs_without_improvement() {
        let mut s = sched(ScheduleKind::Plateau);
        for top1 in [0.1, 0.2, 0.2, 0.19] {
            s.epoch_end(top1);
        }
        assert_eq!(s.state.decays, 1);
        assert!((s.lr(4.0) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn cosine_and_warmup() {
        let mut s = sched(ScheduleKind::Cosine);
        s.config.warmup_epochs = 5.0;
        assert!((s.lr(2.5) - 0.005).abs() < 1e-12);
        assert!((s.lr(5.0) - 0.01).abs() < 1e-12);
        assert!(s.lr(90.0).abs() < 1e-12);
    }
}
