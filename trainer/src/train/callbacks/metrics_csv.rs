//! `metrics.csv` in the run directory: one row per logged step and one per
//! epoch, so a run's curves are read with pandas (or a spreadsheet) without
//! TensorBoard. The metrics logger writes it beside its TensorBoard scalars.
//!
//! Columns ([`COLUMNS`]): `step` (the global step, TensorBoard's axis),
//! `epoch` (1-based), `kind` (`train` for a logged step, `epoch` for an
//! epoch's end), `loss`, `top1` (a fraction from 0 to 1, as
//! in TensorBoard; the running figures of the epoch
//! so far, or the whole epoch's on an `epoch` row), `lr`, `images_per_sec`,
//! `grad_norm`, `eta_hours`, `val_loss`, `val_top1`, `val_top5`. A value a
//! row does not have is left empty (pandas reads NaN).
//!
//! On resume, rows after the checkpoint's step are dropped (they belong to
//! the steps being trained again) and so is a line a crash cut short; the
//! file is replaced atomically, then appended to, a line at a time.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// The file's name in the run directory.
pub const METRICS_CSV: &str = "metrics.csv";

/// The header, in column order.
pub const COLUMNS: [&str; 12] = [
    "step",
    "epoch",
    "kind",
    "loss",
    "top1",
    "lr",
    "images_per_sec",
    "grad_norm",
    "eta_hours",
    "val_loss",
    "val_top1",
    "val_top5",
];

/// One row; `None` is an empty cell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsRow {
    /// The global step.
    pub step: u64,
    /// The epoch, 1-based.
    pub epoch: u64,
    /// `true` for an epoch's end, `false` for a logged step.
    pub epoch_end: bool,
    /// Mean training loss.
    pub loss: Option<f64>,
    /// Training top-1, a fraction.
    pub top1: Option<f64>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Training throughput.
    pub images_per_sec: Option<f64>,
    /// Gradient L2 norm.
    pub grad_norm: Option<f64>,
    /// Time left in the run, hours.
    pub eta_hours: Option<f64>,
    /// Validation loss.
    pub val_loss: Option<f64>,
    /// Validation top-1, a fraction.
    pub val_top1: Option<f64>,
    /// Validation top-5, a fraction.
    pub val_top5: Option<f64>,
}

impl MetricsRow {
    fn line(&self) -> String {
        let cell = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
        let kind = if self.epoch_end { "epoch" } else { "train" };
        format!(
            "{},{},{kind},{},{},{},{},{},{},{},{},{}\n",
            self.step,
            self.epoch,
            cell(self.loss),
            cell(self.top1),
            cell(self.lr),
            cell(self.images_per_sec),
            cell(self.grad_norm),
            cell(self.eta_hours),
            cell(self.val_loss),
            cell(self.val_top1),
            cell(self.val_top5),
        )
    }
}

/// The open file, appended to a row at a time.
#[derive(Debug)]
pub struct MetricsCsv {
    path: PathBuf,
    file: File,
}

impl MetricsCsv {
    /// Opens `run_dir/metrics.csv` for a session that starts after
    /// `step`: rows of later steps and a cut line are dropped first.
    pub fn open(run_dir: &Path, step: u64) -> Result<MetricsCsv> {
        let path = run_dir.join(METRICS_CSV);
        let kept = match fs::read(&path) {
            Ok(bytes) => rows_up_to(&bytes, step),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let text = format!("{}\n{kept}", COLUMNS.join(","));
        zftrain_checkpoints::atomic::write_file(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(MetricsCsv { path, file })
    }

    /// Appends `row` (one write, so a crash leaves whole lines or a cut
    /// last one).
    pub fn append(&mut self, row: &MetricsRow) -> Result<()> {
        self.file
            .write_all(row.line().as_bytes())
            .with_context(|| format!("appending to {}", self.path.display()))
    }
}

/// The data lines of an existing file whose step is at most `step`, each
/// with its newline; the header, a line cut short and anything that is not
/// a row of [`COLUMNS`] are left out.
fn rows_up_to(bytes: &[u8], step: u64) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut kept = String::new();
    for line in text.split_inclusive('\n') {
        let Some(line) = line.strip_suffix('\n') else {
            continue;
        };
        let whole = line.split(',').count() == COLUMNS.len();
        match line.split(',').next().and_then(|s| s.parse::<u64>().ok()) {
            Some(s) if whole && s <= step => {
                kept.push_str(line);
                kept.push('\n');
            }
            _ => {}
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64) -> MetricsRow {
        MetricsRow {
            step,
            epoch: 1,
            loss: Some(2.5),
            lr: Some(0.01),
            ..Default::default()
        }
    }

    #[test]
    fn a_resumed_file_keeps_the_rows_up_to_the_checkpoint_and_drops_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = MetricsCsv::open(dir.path(), 0).unwrap();
        for s in [10, 20, 30] {
            csv.append(&row(s)).unwrap();
        }
        drop(csv);
        let path = dir.path().join(METRICS_CSV);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"40,1,train,2.4").unwrap();
        drop(f);
        let mut csv = MetricsCsv::open(dir.path(), 20).unwrap();
        csv.append(&row(30)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let steps: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(steps, ["10", "20", "30"], "{text}");
        assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
        assert!(text.ends_with("30,1,train,2.5,,0.01,,,,,,\n"), "{text}");
    }

    #[test]
    fn every_row_has_a_cell_per_column() {
        let full = MetricsRow {
            epoch_end: true,
            val_top5: Some(50.0),
            ..row(7)
        };
        for r in [row(1), full] {
            let line = r.line();
            assert_eq!(line.trim_end().split(',').count(), COLUMNS.len(), "{line}");
        }
    }
}
