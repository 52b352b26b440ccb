//! The pace of a session and the time left: of the epoch (from this
//! epoch's steps so far) and of the run (from every step since the session
//! started, validation and hooks included, so the estimate covers them).

use std::time::{Duration, Instant};

use crate::train::state::TrainerState;

/// When the session and the epoch started, and where training stood then.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    session: (Instant, u64),
    epoch: (Instant, usize),
}

impl Pace {
    /// The pace from now, at `state`.
    pub fn start(state: &TrainerState) -> Pace {
        let now = Instant::now();
        Pace {
            session: (now, state.global_step),
            epoch: (now, state.batch),
        }
    }

    /// An epoch starts now, at `state`.
    pub fn epoch_started(&mut self, state: &TrainerState) {
        self.epoch = (Instant::now(), state.batch);
    }

    /// Time left in the epoch, at this epoch's pace (`None` before its
    /// first step).
    pub fn epoch_left(&self, state: &TrainerState, steps_per_epoch: usize) -> Option<Duration> {
        let done = state.batch.saturating_sub(self.epoch.1);
        let left = steps_per_epoch.saturating_sub(state.batch);
        per_step(self.epoch.0, done as u64).map(|s| s.mul_f64(left as f64))
    }

    /// Time left in the run, at the session's pace (`None` before its
    /// first step).
    pub fn run_left(
        &self,
        state: &TrainerState,
        steps_per_epoch: usize,
        epochs: u64,
    ) -> Option<Duration> {
        let done = state.global_step.saturating_sub(self.session.1);
        let total = epochs as f64 * steps_per_epoch as f64;
        let at = state.epoch as f64 * steps_per_epoch as f64 + state.batch as f64;
        per_step(self.session.0, done).map(|s| s.mul_f64((total - at).max(0.0)))
    }
}

fn per_step(since: Instant, steps: u64) -> Option<Duration> {
    (steps > 0).then(|| since.elapsed().div_f64(steps as f64))
}

/// `1h02m`, `12m05s` or `42s`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_scales_the_pace_by_the_steps_left() {
        let state = |epoch, batch, global_step| TrainerState {
            epoch,
            batch,
            global_step,
            ..TrainerState::default()
        };
        let mut pace = Pace::start(&state(1, 5, 15));
        assert_eq!(pace.epoch_left(&state(1, 5, 15), 10), None, "no step yet");
        // Pretend the session and the epoch started 10 s ago, 5 steps back.
        let ago = Instant::now() - Duration::from_secs(10);
        pace.session.0 = ago;
        pace.epoch.0 = ago;
        let now = state(1, 10, 20);
        let epoch = pace.epoch_left(&now, 20).unwrap().as_secs_f64();
        assert!(
            (19.9..30.0).contains(&epoch),
            "10 steps left at 2 s: {epoch}"
        );
        let run = pace.run_left(&now, 20, 3).unwrap().as_secs_f64();
        assert!((59.9..90.0).contains(&run), "30 steps left at 2 s: {run}");
        assert_eq!(short(Duration::from_secs(42)), "42s");
        assert_eq!(short(Duration::from_secs(725)), "12m05s");
        assert_eq!(short(Duration::from_secs(3720)), "1h02m");
    }
}
