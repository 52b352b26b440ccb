//! A complete custom hook, registered through the library API.
//!
//! `ActivationStats` runs at the end of every epoch: it streams the probe
//! set through the network (evaluation mode, no gradients), logs the mean
//! rectified activation of every conv layer to TensorBoard
//! (`custom/convL/mean_activation`), appends them to
//! `runs/<name>/hooks/activation_stats/means.csv`, and keeps its history as
//! hook state, so that it is checkpointed and handed back on resume.
//!
//! Run it with `cargo run --release --example custom_hook [DATA_DIR]`
//! (without a folder it writes a small synthetic data set to a temporary
//! folder and trains ZFNet-seed on it for one short epoch).

use std::io::Write;

use anyhow::{Context, Result};
use tch::Kind;
use zftrain::config::RunConfig;
use zftrain::train::{train, TrainOptions};
use zftrain_hooks::{on_devices, Control, Hook, HookContext, HookError, HookState, Schedule};

/// Mean activation per conv layer, per epoch.
struct ActivationStats {
    schedule: Schedule,
    /// `(epoch, mean activation per conv layer)`.
    history: Vec<(u64, Vec<f64>)>,
}

impl ActivationStats {
    fn new() -> Self {
        ActivationStats {
            schedule: Schedule::EveryEpochs(1),
            history: Vec::new(),
        }
    }

    /// Streams the probe set over every device of the run (each device
    /// takes the next batch when it is free and keeps its own sums).
    fn measure(&self, ctx: &HookContext<'_>) -> Result<Vec<f64>, HookError> {
        let per_device = on_devices(
            &ctx.devices(),
            ctx.probe.batches(),
            &|_, _| Ok((Vec::<f64>::new(), 0i64)),
            &|(sums, images), net, device, batch| {
                let input = batch.images.to_device(device);
                *images += input.size()[0];
                let taps = tch::no_grad(|| net.forward_taps(&input, false));
                sums.resize(taps.convs.len(), 0.0);
                for (sum, tap) in sums.iter_mut().zip(&taps.convs) {
                    // Mean over maps and positions, summed over the batch's images.
                    let per_image = tap.to_kind(Kind::Float).mean_dim(
                        [1i64, 2, 3].as_slice(),
                        false,
                        Kind::Float,
                    );
                    *sum += per_image.sum(Kind::Double).double_value(&[]);
                }
                Ok(())
            },
        )?;
        let mut sums: Vec<f64> = Vec::new();
        let mut images = 0i64;
        for (s, n) in per_device {
            sums.resize(sums.len().max(s.len()), 0.0);
            for (total, v) in sums.iter_mut().zip(s) {
                *total += v;
            }
            images += n;
        }
        Ok(sums.into_iter().map(|s| s / images.max(1) as f64).collect())
    }
}

impl Hook for ActivationStats {
    fn name(&self) -> &str {
        "activation_stats"
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn on_epoch_end(&mut self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let means = self.measure(ctx)?;
        for (i, m) in means.iter().enumerate() {
            ctx.sink.scalar(
                &format!("custom/conv{}/mean_activation", i + 1),
                ctx.step as i64,
                *m,
            )?;
        }
        let path = ctx.output_dir(self.name())?.join("means.csv");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(HookError::io(&path))?;
        let row: Vec<String> = means.iter().map(|m| format!("{m:.6}")).collect();
        writeln!(file, "{},{}", ctx.epoch, row.join(",")).map_err(HookError::io(&path))?;
        self.history.push((ctx.epoch, means));
        Ok(Control::Continue)
    }

    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        Ok(Some(HookState {
            tensors: Vec::new(),
            json: serde_json::json!({ "history": self.history }),
        }))
    }

    fn load_state(&mut self, state: HookState) -> Result<(), HookError> {
        self.history = serde_json::from_value(state.json["history"].clone())
            .map_err(|e| HookError::failed(self.name(), format!("bad state: {e}")))?;
        Ok(())
    }
}

fn main() -> Result<()> {
    let (csv, text) = run(std::env::args().nth(1).map(Into::into))?;
    print!("{}:\n{text}", csv.display());
    Ok(())
}

/// Trains on `data` (or a synthetic set) with the hook; the CSV's path and
/// its contents.
pub fn run(data: Option<std::path::PathBuf>) -> Result<(std::path::PathBuf, String)> {
    let scratch = tempfile::tempdir()?;
    let data = match data {
        Some(dir) => dir,
        None => {
            let dir = scratch.path().join("data");
            let synth = zftrain_data::synth::SynthConfig {
                classes: 2,
                train_per_class: 8,
                val_per_class: 4,
                ..Default::default()
            };
            zftrain_data::synth::write_synthetic(&dir, &synth).context("writing synthetic data")?;
            dir
        }
    };
    let runs = scratch.path().join("runs");
    let sets: Vec<String> = [
        "name=custom-hook".to_string(),
        format!("runs_dir={}", runs.display()),
        "model.arch=\"zfnet-seed\"".into(),
        format!("data.train={}", data.join("train").display()),
        format!("data.val={}", data.join("val").display()),
        "train.epochs=1".into(),
        "train.batch_size=4".into(),
        "train.max_steps_per_epoch=2".into(),
        "probe.images=4".into(),
        // Only this hook (without `hooks`, a run gets the paper's set too).
        "hooks=[]".into(),
    ]
    .into();
    let config = RunConfig::load(None, &sets)?;
    let options = TrainOptions {
        hooks: vec![Box::new(ActivationStats::new())],
        ..TrainOptions::default()
    };
    let outcome = train(config, options)?;
    let csv = outcome.run_dir.join("hooks/activation_stats/means.csv");
    let text =
        std::fs::read_to_string(&csv).with_context(|| format!("reading {}", csv.display()))?;
    Ok((csv, text))
}
