//! Progress of a long pass that is not training (validation, the per-pixel
//! mean, `data pack`): a line on stdout at most every
//! `train.log_every_s` seconds with what is done, the rate and the time
//! left, so a batch job's log shows that a 50,000-image pass is moving.

use std::time::{Duration, Instant};

use crate::train::callbacks::short;

/// Counts a pass's items and says how far it is.
pub struct Ticker {
    what: &'static str,
    total: usize,
    done: usize,
    started: Instant,
    last: Instant,
    every: Duration,
}

impl Ticker {
    /// A pass over `total` items called `what` (`"validation"`), with a
    /// line at most every `every_s` seconds (0: after every addition).
    pub fn new(what: &'static str, total: usize, every_s: f64) -> Ticker {
        let now = Instant::now();
        Ticker {
            what,
            total,
            done: 0,
            started: now,
            last: now,
            every: Duration::from_secs_f64(every_s.max(0.0)),
        }
    }

    /// `n` more items done; prints a line when one is due.
    pub fn add(&mut self, n: usize) {
        self.done += n;
        if self.last.elapsed() >= self.every {
            println!("{}", self.line());
            self.last = Instant::now();
        }
    }

    /// The pass is over: a last line, whenever the previous one was,
    /// `validation: 50000/50000 images in 2m41s, 310.2 images/s`.
    pub fn finish(&self) {
        println!("{}", self.final_line());
    }

    /// `validation: 50000/50000 images in 2m41s, 310.2 images/s`.
    pub fn final_line(&self) -> String {
        let took = self.started.elapsed();
        let rate = self.done as f64 / took.as_secs_f64().max(1e-9);
        format!(
            "{}: {}/{} images in {}, {rate:.1} images/s",
            self.what,
            self.done,
            self.total,
            short(took)
        )
    }

    /// `validation: 1200/50000 images, 310.2 images/s, left 2m37s`.
    pub fn line(&self) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = self.done as f64 / seconds;
        let left = match rate > 0.0 {
            true => short(Duration::from_secs_f64(
                self.total.saturating_sub(self.done) as f64 / rate,
            )),
            false => "?".into(),
        };
        format!(
            "{}: {}/{} images, {rate:.1} images/s, left {left}",
            self.what, self.done, self.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_how_many_of_how_many_and_whats_left() {
        let mut t = Ticker::new("validation", 100, 1e9);
        assert!(t
            .line()
            .starts_with("validation: 0/100 images, 0.0 images/s, left ?"));
        t.add(100);
        let line = t.line();
        assert!(
            line.starts_with("validation: 100/100 images, ") && line.ends_with("left 0s"),
            "{line}"
        );
        let last = t.final_line();
        assert!(
            last.starts_with("validation: 100/100 images in 0s, ") && last.ends_with(" images/s"),
            "{last}"
        );
    }
}
