//! The progress reporter: on a terminal, a bar per epoch (loss, top-1,
//! images per second, the time left in the epoch and in the run); off a
//! terminal (a batch job, `nohup`), a line every `train.log_every_s`
//! seconds with the same; and one line per epoch on stdout.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{short, Callback, Context, EpochReport, Requests, StepReport};

/// The progress reporter.
pub struct Progress {
    tty: bool,
    bar: ProgressBar,
    since: Instant,
    images: u64,
    /// When the last line was printed (off a terminal).
    last_line: Instant,
    /// Whether the session's first step is still to come (its line is
    /// always printed: the log shows when training really started).
    first: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            tty: std::io::stdout().is_terminal(),
            bar: ProgressBar::hidden(),
            since: Instant::now(),
            images: 0,
            last_line: Instant::now(),
            first: true,
        }
    }
}

/// `epoch 12m05s, run 1h02m` (what is known of them).
fn time_left(ctx: &Context<'_>) -> String {
    let or_unknown = |d: Option<std::time::Duration>| d.map_or("?".into(), short);
    format!(
        "left: epoch {}, run {}",
        or_unknown(ctx.epoch_left()),
        or_unknown(ctx.run_left())
    )
}

impl Callback for Progress {
    fn on_epoch_start(&mut self, ctx: &Context<'_>) -> Result<()> {
        let len = Some(ctx.steps_per_epoch as u64);
        self.bar = if self.tty {
            ProgressBar::with_draw_target(len, ProgressDrawTarget::stdout())
        } else {
            ProgressBar::hidden()
        };
        self.bar.set_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg}")
                .expect("a valid template"),
        );
        self.bar.set_prefix(format!(
            "{}/{}",
            ctx.state.epoch + 1,
            ctx.config.train.epochs
        ));
        self.bar.set_position(ctx.state.batch as u64);
        (self.since, self.images, self.last_line) = (Instant::now(), 0, Instant::now());
        Ok(())
    }

    fn on_step_end(&mut self, ctx: &Context<'_>, s: &StepReport<'_>) -> Result<Requests> {
        self.images += s.images as u64;
        let ips = self.images as f64 / self.since.elapsed().as_secs_f64().max(1e-9);
        let (loss, top1) = (s.running.mean_loss(), 100.0 * s.running.top1());
        if self.tty {
            self.bar.inc(1);
            self.bar.set_message(format!(
                "loss {loss:.3} top1 {top1:.1}% {ips:.1} img/s {}",
                time_left(ctx)
            ));
        } else if self.first
            || self.last_line.elapsed().as_secs_f64() >= ctx.config.train.log_every_s
        {
            let st = ctx.state;
            println!(
                "epoch {}/{} step {} ({}/{}): loss {loss:.4} top1 {top1:.1}% lr {:.3e} {ips:.1} img/s, {}",
                st.epoch + 1,
                ctx.config.train.epochs,
                st.global_step,
                st.batch,
                ctx.steps_per_epoch,
                s.lr,
                time_left(ctx)
            );
            self.last_line = Instant::now();
        }
        self.first = false;
        Ok(Requests::NONE)
    }

    fn on_train_epoch_end(&mut self, _ctx: &Context<'_>) -> Result<()> {
        self.bar.finish_and_clear();
        Ok(())
    }

    fn on_epoch_end(&mut self, ctx: &Context<'_>, e: &EpochReport<'_>) -> Result<Requests> {
        let epochs = ctx.config.train.epochs;
        let (loss, top1) = (e.train.mean_loss(), 100.0 * e.train.top1());
        match e.val {
            Some(val) => println!(
                "epoch {}/{epochs}: train loss {loss:.4} top1 {top1:.1}% | val loss {:.4} top1 {:.1}% top5 {:.1}%",
                e.epoch,
                val.mean_loss(),
                100.0 * val.top1(),
                100.0 * val.top5()
            ),
            None => println!(
                "node {}: epoch {}/{epochs}: train loss {loss:.4} top1 {top1:.1}% (on this node's rows)",
                ctx.role.node(),
                e.epoch
            ),
        }
        Ok(Requests::NONE)
    }
}
