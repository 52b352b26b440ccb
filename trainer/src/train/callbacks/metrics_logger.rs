//! The metrics logger: training scalars every `train.log_every` steps
//! (`train/loss`, `train/top1`, `train/lr`, `train/images_per_sec`,
//! `train/grad_norm`, `train/eta_hours`: the time left in the run) and
//! validation scalars every epoch (`val/loss`,
//! `val/top1`, `val/top5`), to TensorBoard and the log file, at the global
//! step.

use std::time::Instant;

use anyhow::Result;
use tracing::info;

use super::{Callback, Context, EpochReport, Requests, StepReport};

/// The metrics logger; it measures throughput over the steps between two
/// logged ones.
pub struct MetricsLogger {
    since: Instant,
    images: u64,
}

impl Default for MetricsLogger {
    fn default() -> Self {
        MetricsLogger {
            since: Instant::now(),
            images: 0,
        }
    }
}

impl Callback for MetricsLogger {
    fn on_epoch_start(&mut self, _ctx: &Context<'_>) -> Result<()> {
        *self = MetricsLogger::default();
        Ok(())
    }

    fn on_step_end(&mut self, ctx: &Context<'_>, s: &StepReport<'_>) -> Result<Requests> {
        self.images += s.images as u64;
        let Some(norm) = s.grad_norm else {
            return Ok(Requests::NONE);
        };
        let step = ctx.state.global_step as i64;
        let ips = self.images as f64 / self.since.elapsed().as_secs_f64().max(1e-9);
        let (loss, top1) = (s.running.mean_loss(), s.running.top1());
        for (tag, value) in [
            ("train/loss", loss),
            ("train/top1", top1),
            ("train/lr", s.lr),
            ("train/images_per_sec", ips),
            ("train/grad_norm", norm),
        ] {
            ctx.tb.scalar(tag, step, value)?;
        }
        if let Some(left) = ctx.run_left() {
            ctx.tb
                .scalar("train/eta_hours", step, left.as_secs_f64() / 3600.0)?;
        }
        info!(
            epoch = ctx.state.epoch + 1,
            step,
            loss,
            top1,
            lr = s.lr,
            images_per_sec = ips,
            "train"
        );
        *self = MetricsLogger::default();
        Ok(Requests::NONE)
    }

    fn on_epoch_end(&mut self, ctx: &Context<'_>, e: &EpochReport<'_>) -> Result<Requests> {
        let Some(val) = e.val else {
            return Ok(Requests::NONE);
        };
        let step = ctx.state.global_step as i64;
        ctx.tb.scalar("val/loss", step, val.mean_loss())?;
        ctx.tb.scalar("val/top1", step, val.top1())?;
        ctx.tb.scalar("val/top5", step, val.top5())?;
        info!(
            epoch = e.epoch,
            train_loss = e.train.mean_loss(),
            train_top1 = e.train.top1(),
            val_loss = val.mean_loss(),
            val_top1 = val.top1(),
            val_top5 = val.top5(),
            "epoch done"
        );
        Ok(Requests::NONE)
    }
}
