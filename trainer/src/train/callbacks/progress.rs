//! The progress reporter: a bar per epoch on a terminal (loss, top-1,
//! images per second, time left) and one line per epoch on stdout.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Callback, Context, EpochReport, Requests, StepReport};

/// The progress reporter.
pub struct Progress {
    tty: bool,
    bar: ProgressBar,
    since: Instant,
    images: u64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            tty: std::io::stdout().is_terminal(),
            bar: ProgressBar::hidden(),
            since: Instant::now(),
            images: 0,
        }
    }
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
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg} eta {eta}")
                .expect("a valid template"),
        );
        self.bar.set_prefix(format!(
            "{}/{}",
            ctx.state.epoch + 1,
            ctx.config.train.epochs
        ));
        self.bar.set_position(ctx.state.batch as u64);
        (self.since, self.images) = (Instant::now(), 0);
        Ok(())
    }

    fn on_step_end(&mut self, _ctx: &Context<'_>, s: &StepReport<'_>) -> Result<Requests> {
        self.images += s.images as u64;
        self.bar.inc(1);
        self.bar.set_message(format!(
            "loss {:.3} top1 {:.1}% {:.1} img/s",
            s.running.mean_loss(),
            100.0 * s.running.top1(),
            self.images as f64 / self.since.elapsed().as_secs_f64().max(1e-9)
        ));
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
