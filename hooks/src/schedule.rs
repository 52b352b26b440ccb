//! When a hook runs: at explicit epochs (the paper's `[1, 2, 5, 10, 20, 30,
//! 40, 64]`), every N epochs, every N steps, or once at the end of training.
//! Epochs are counted from 1, as the paper and the progress bar count them.

use serde::{Deserialize, Serialize};

/// A hook's schedule. In TOML: `schedule = { epochs = [1, 2, 5] }`,
/// `{ epochs_and_last = [1, 2, 5] }` (and when training ends, unless the
/// last epoch is in the list), `{ every_epochs = 5 }`,
/// `{ every_steps = 1000 }` or `{ at_end = true }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// At the end of these epochs (1-based).
    Epochs(Vec<u64>),
    /// At the end of these epochs and when training ends (the paper's
    /// figures: epochs 1, 2, 5, 10, 20, 30, 40, 64 and the last).
    EpochsAndLast(Vec<u64>),
    /// At the end of every N-th epoch.
    EveryEpochs(u64),
    /// After every N-th optimizer step.
    EverySteps(u64),
    /// Once, when training ends.
    AtEnd(bool),
}

impl Default for Schedule {
    /// The paper's epochs.
    fn default() -> Self {
        Schedule::Epochs(vec![1, 2, 5, 10, 20, 30, 40, 64])
    }
}

impl Schedule {
    /// Whether the schedule is usable (N >= 1, epochs >= 1).
    pub fn check(&self) -> Result<(), String> {
        match self {
            Schedule::Epochs(e) | Schedule::EpochsAndLast(e) if e.is_empty() || e.contains(&0) => {
                Err(format!(
                    "epochs {e:?} must be a non-empty list of epochs >= 1"
                ))
            }
            Schedule::EveryEpochs(0) | Schedule::EverySteps(0) => {
                Err("N must be at least 1".into())
            }
            Schedule::AtEnd(false) => Err("at_end = false never runs".into()),
            _ => Ok(()),
        }
    }

    /// Runs at the end of `epoch` (1-based)?
    pub fn at_epoch_end(&self, epoch: u64) -> bool {
        match self {
            Schedule::Epochs(e) | Schedule::EpochsAndLast(e) => e.contains(&epoch),
            Schedule::EveryEpochs(n) => epoch % n == 0,
            _ => false,
        }
    }

    /// Runs after optimizer step `step` (1-based)?
    pub fn at_step_end(&self, step: u64) -> bool {
        matches!(self, Schedule::EverySteps(n) if step % n == 0)
    }

    /// Runs when training ends after `epochs` epochs? Not when it ran at
    /// that epoch's end already.
    pub fn at_train_end(&self, epochs: u64) -> bool {
        match self {
            Schedule::AtEnd(on) => *on,
            Schedule::EpochsAndLast(e) => !e.contains(&epochs),
            _ => false,
        }
    }

    /// The paper's epochs and the last.
    pub fn paper() -> Schedule {
        Schedule::EpochsAndLast(vec![1, 2, 5, 10, 20, 30, 40, 64])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_fire_where_they_say() {
        let paper = Schedule::default();
        let fired: Vec<u64> = (1..=70).filter(|&e| paper.at_epoch_end(e)).collect();
        assert_eq!(fired, [1, 2, 5, 10, 20, 30, 40, 64]);
        assert!(!paper.at_step_end(64) && !paper.at_train_end(70));
        let last = Schedule::paper();
        assert!(last.at_epoch_end(64) && !last.at_epoch_end(70));
        assert!(
            last.at_train_end(70) && !last.at_train_end(64),
            "not twice at epoch 64"
        );
        let every = Schedule::EveryEpochs(3);
        assert_eq!(
            (1..=9)
                .filter(|&e| every.at_epoch_end(e))
                .collect::<Vec<_>>(),
            [3, 6, 9]
        );
        let steps = Schedule::EverySteps(100);
        assert!(steps.at_step_end(200) && !steps.at_step_end(150) && !steps.at_epoch_end(1));
        assert!(Schedule::AtEnd(true).at_train_end(3));
    }

    #[test]
    fn schedules_read_from_toml_and_bad_ones_are_refused() {
        #[derive(Deserialize)]
        struct T {
            schedule: Schedule,
        }
        let t: T = toml_like("{\"schedule\": {\"epochs\": [1, 3]}}");
        assert_eq!(t.schedule, Schedule::Epochs(vec![1, 3]));
        let t: T = toml_like("{\"schedule\": {\"every_steps\": 50}}");
        assert_eq!(t.schedule, Schedule::EverySteps(50));
        let t: T = toml_like("{\"schedule\": {\"epochs_and_last\": [1, 64]}}");
        assert_eq!(t.schedule, Schedule::EpochsAndLast(vec![1, 64]));
        assert!(Schedule::EpochsAndLast(vec![]).check().is_err());
        assert!(Schedule::EveryEpochs(0).check().is_err());
        assert!(Schedule::Epochs(vec![0, 1]).check().is_err());
        assert!(Schedule::Epochs(vec![2]).check().is_ok());
    }

    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }
}
