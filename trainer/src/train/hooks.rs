//! The trainer's side of the hooks: the probe set
//! ([`crate::train::probe::LoaderProbe`]), the TensorBoard sink, dispatching events with failures logged and timed, and hook state
//! in checkpoints (`hook-<name>.safetensors` + `hook-<name>.json`).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use image::RgbImage;
use tch::Device;
use tracing::{info, warn};
use zftrain_checkpoints::{read_safetensors, Checkpoint};
use zftrain_hooks::{
    Control, Event, HookContext, HookError, HookState, Hooks, Metrics, ProbeSet, SavedStates,
    SummarySink,
};
use zftrain_model::Network;
use zftrain_tensorboard::BackgroundWriter;

use crate::train::stop::StopHandle;

/// Summaries of hooks go to the run's TensorBoard writer.
pub struct TbSink<'a>(pub &'a BackgroundWriter);

fn sink_err(tag: &str) -> impl FnOnce(zftrain_tensorboard::TensorBoardError) -> HookError + '_ {
    move |e| HookError::Sink {
        tag: tag.into(),
        message: e.to_string(),
    }
}

impl SummarySink for TbSink<'_> {
    fn scalar(&self, tag: &str, step: i64, value: f64) -> Result<(), HookError> {
        self.0.scalar(tag, step, value).map_err(sink_err(tag))
    }
    fn image(&self, tag: &str, step: i64, image: &RgbImage) -> Result<(), HookError> {
        self.0
            .image_rgb(
                tag,
                step,
                image.width(),
                image.height(),
                image.as_raw().clone(),
            )
            .map_err(sink_err(tag))
    }
    fn histogram(&self, tag: &str, step: i64, values: &[f64]) -> Result<(), HookError> {
        self.0
            .histogram(tag, step, values.to_vec())
            .map_err(sink_err(tag))
    }
    fn text(&self, tag: &str, step: i64, text: &str) -> Result<(), HookError> {
        self.0.text(tag, step, text).map_err(sink_err(tag))
    }
}

/// Where training stands when a hook event is sent.
pub struct Moment<'a> {
    /// Replica 0's network.
    pub net: &'a Network,
    /// The network on every device, replica 0 first (hooks spread their
    /// probe passes over them).
    pub replicas: &'a [(&'a Network, Device)],
    /// Epochs completed.
    pub epoch: u64,
    /// Optimizer steps completed.
    pub step: u64,
    /// Where the hooks write (`hooks/<name>/` inside it).
    pub run_dir: &'a Path,
    /// The TensorBoard writer their summaries go to.
    pub tb: &'a BackgroundWriter,
    /// The latest loss, learning rate and validation metrics.
    pub metrics: Metrics,
}

/// The hooks of a run with their probe set.
pub struct HookRunner {
    /// The hooks.
    pub hooks: Hooks,
    /// Their probe set.
    pub probe: Box<dyn ProbeSet>,
    /// Training images for hooks that mine the training set, when one
    /// asks for them.
    pub train_probe: Option<Box<dyn ProbeSet>>,
    /// Where the network lives (replica 0's device).
    pub device: Device,
    /// The run's stop: the hooks see it ([`HookContext::stop`]) and are
    /// cut short when it is requested (the session redoes them on resume).
    pub stop: Option<StopHandle>,
}

impl HookRunner {
    /// The hooks (built from a configuration: [`RunConfig::build_hooks`])
    /// with their probe set, on the CPU until `device` is set.
    pub fn new(hooks: Hooks, probe: Box<dyn ProbeSet>) -> HookRunner {
        HookRunner {
            hooks,
            probe,
            train_probe: None,
            device: Device::Cpu,
            stop: None,
        }
    }

    /// Sends `event` to the hooks whose schedule matches; failures of
    /// optional hooks are logged and reported, a required hook's failure is
    /// the error. Whether a hook asked to stop.
    pub fn event(&mut self, event: Event, at: &Moment<'_>) -> Result<Control> {
        if !self.hooks.wants(event, at.epoch, at.step) {
            return Ok(Control::Continue);
        }
        self.send(event, at, false)
    }

    /// Sends `event` to every hook, whatever its schedule (`zftrain
    /// visualize` runs them once on a checkpoint this way).
    pub fn event_all(&mut self, event: Event, at: &Moment<'_>) -> Result<Control> {
        self.send(event, at, true)
    }

    fn send(&mut self, event: Event, at: &Moment<'_>, all: bool) -> Result<Control> {
        let sink = TbSink(at.tb);
        let stop = self.stop.clone();
        let stopping = move || stop.as_ref().is_some_and(StopHandle::requested);
        let ctx = HookContext {
            net: at.net,
            device: self.device,
            replicas: at.replicas,
            probe: self.probe.as_ref(),
            train_probe: self.train_probe.as_deref(),
            epoch: at.epoch,
            step: at.step,
            run_dir: at.run_dir,
            sink: &sink,
            metrics: at.metrics,
            shared: None,
            stop: Some(&stopping),
        };
        let start = Instant::now();
        let d = if all {
            self.hooks.dispatch_all(event, &ctx)
        } else {
            self.hooks.dispatch(event, &ctx)
        }
        .map_err(|e| anyhow::anyhow!("{e} (the hook is required; stopping)"))?;
        let (epoch, step) = (at.epoch, at.step);
        if let Some((hooks, took)) = &d.shared {
            let hooks = hooks.join(",");
            info!(hooks = %hooks, event = ?event, epoch, step, seconds = took.as_secs_f64(), "shared probe pass");
        }
        for (name, took) in &d.ran {
            info!(hook = %name, event = ?event, epoch, step, seconds = took.as_secs_f64(), "hook ran");
        }
        if d.interrupted {
            info!(event = ?event, epoch, step, "hooks cut short by a stop request");
        }
        for e in &d.failures {
            warn!(error = %e, "hook failed; training goes on");
            eprintln!("zftrain: {e} (reported; training goes on)");
        }
        if !d.ran.is_empty() {
            at.tb
                .scalar("hooks/seconds", step as i64, start.elapsed().as_secs_f64())?;
        }
        Ok(d.control)
    }

    /// Every hook's state, as checkpoint files: `(file name, tensors, json)`.
    pub fn states(&self) -> Result<Vec<(String, HookState)>> {
        Ok(self.hooks.save_states()?)
    }

    /// Hands each hook its state from `saved` (taken out of it).
    pub fn load_states(&mut self, saved: &mut SavedStates) -> Result<()> {
        Ok(self.hooks.load_states(saved)?)
    }
}

/// Every state a checkpoint holds (hooks' and other callbacks'), by name.
pub fn read_states(ck: &Checkpoint) -> Result<SavedStates> {
    let mut states = SavedStates::new();
    for name in ck.manifest().files.keys() {
        let Some(owner) = name
            .strip_prefix(HOOK_PREFIX)
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let json = ck.read_json(name)?;
        let tensors = match ck.file(&format!("{HOOK_PREFIX}{owner}.safetensors")) {
            Some(p) => read_safetensors(&p)?.0,
            None => Vec::new(),
        };
        states.insert(owner.to_string(), HookState { tensors, json });
    }
    Ok(states)
}

/// Hook state files in a checkpoint start with this.
pub const HOOK_PREFIX: &str = "hook-";
