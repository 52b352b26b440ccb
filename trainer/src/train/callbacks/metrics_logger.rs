//! The metrics logger: training scalars every `train.log_every` steps
//! (`train/epoch`, `train/loss`, `train/top1`, `train/lr`, `train/images_per_sec`,
//! `train/grad_norm`, `train/eta_hours`: the time left in the run, and
//! `train/renorm_clipped` with filter renormalization on) and
//! validation scalars every epoch (`val/loss`,
//! `val/top1`, `val/top5`, `val/best_top1`), to TensorBoard, the log file and `metrics.csv`
//! (see [`metrics_csv`](super::metrics_csv)), at the global step.

use std::time::Instant;

use anyhow::Result;
use tracing::info;

use super::metrics_csv::{MetricsCsv, MetricsRow};
use super::{Callback, Context, EpochReport, Requests, StepReport};

/// The metrics logger; it measures throughput over the steps between two
/// logged ones.
pub struct MetricsLogger {
    since: Instant,
    images: u64,
    csv: Option<MetricsCsv>,
}

impl Default for MetricsLogger {
    fn default() -> Self {
        MetricsLogger {
            since: Instant::now(),
            images: 0,
            csv: None,
        }
    }
}

impl MetricsLogger {
    /// Starts measuring throughput afresh.
    fn restart_clock(&mut self) {
        self.since = Instant::now();
        self.images = 0;
    }

    fn csv_row(&mut self, row: MetricsRow) -> Result<()> {
        match &mut self.csv {
            Some(csv) => csv.append(&row),
            None => Ok(()),
        }
    }
}

impl Callback for MetricsLogger {
    fn on_train_start(&mut self, ctx: &Context<'_>) -> Result<Requests> {
        self.csv = Some(MetricsCsv::open(ctx.run_dir, ctx.state.global_step)?);
        Ok(Requests::NONE)
    }

    fn on_epoch_start(&mut self, _ctx: &Context<'_>) -> Result<()> {
        self.restart_clock();
        Ok(())
    }

    fn on_step_end(&mut self, ctx: &Context<'_>, s: &StepReport<'_>) -> Result<Requests> {
        self.images += s.images as u64;
        if !s.logged {
            return Ok(Requests::NONE);
        }
        let step = ctx.state.global_step as i64;
        let ips = self.images as f64 / self.since.elapsed().as_secs_f64().max(1e-9);
        let (loss, top1) = (s.running.mean_loss(), s.running.top1());
        // The epoch as a curve on the global step: 2.5 is half-way through
        // the third epoch, so any step axis reads as epochs too.
        let epoch =
            ctx.state.epoch as f64 + ctx.state.batch as f64 / ctx.steps_per_epoch.max(1) as f64;
        let mut scalars = vec![
            ("train/epoch", epoch),
            ("train/loss", loss),
            ("train/top1", top1),
            ("train/lr", s.lr),
            ("train/images_per_sec", ips),
        ];
        scalars.extend(s.grad_norm.map(|norm| ("train/grad_norm", norm)));
        for (tag, value) in scalars {
            ctx.tb.scalar(tag, step, value)?;
        }
        if let Some(clipped) = s.renorm_clipped {
            ctx.tb
                .scalar("train/renorm_clipped", step, clipped as f64)?;
        }
        let eta_hours = ctx.run_left().map(|left| left.as_secs_f64() / 3600.0);
        if let Some(eta) = eta_hours {
            ctx.tb.scalar("train/eta_hours", step, eta)?;
        }
        self.csv_row(MetricsRow {
            step: ctx.state.global_step,
            epoch: ctx.state.epoch + 1,
            loss: Some(loss),
            top1: Some(top1),
            lr: Some(s.lr),
            images_per_sec: Some(ips),
            grad_norm: s.grad_norm,
            eta_hours,
            ..Default::default()
        })?;
        info!(
            epoch = ctx.state.epoch + 1,
            step,
            loss,
            top1,
            lr = s.lr,
            images_per_sec = ips,
            "train"
        );
        self.restart_clock();
        Ok(Requests::NONE)
    }

    fn on_epoch_end(&mut self, ctx: &Context<'_>, e: &EpochReport<'_>) -> Result<Requests> {
        self.csv_row(MetricsRow {
            step: ctx.state.global_step,
            epoch: e.epoch,
            epoch_end: true,
            loss: Some(e.train.mean_loss()),
            top1: Some(e.train.top1()),
            val_loss: e.val.map(|v| v.mean_loss()),
            val_top1: e.val.map(|v| v.top1()),
            val_top5: e.val.map(|v| v.top5()),
            ..Default::default()
        })?;
        let Some(val) = e.val else {
            return Ok(Requests::NONE);
        };
        let step = ctx.state.global_step as i64;
        ctx.tb.scalar("val/loss", step, val.mean_loss())?;
        ctx.tb.scalar("val/top1", step, val.top1())?;
        ctx.tb.scalar("val/top5", step, val.top5())?;
        ctx.tb.scalar("val/best_top1", step, ctx.state.best_top1)?;
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
