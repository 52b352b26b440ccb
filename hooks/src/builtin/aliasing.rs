//! Aliasing metrics (ZF section 4, Fig. 6), as numbers:
//!
//! - for every conv layer with stride s > 1: each filter's fraction of power
//!   above the stride's Nyquist frequency (`aliasing/convL/above_nyquist`
//!   histogram, `_mean` and `_max` scalars);
//! - for layer 1: each filter's dominant frequency (histogram
//!   `aliasing/conv1/dominant_frequency`) and the fraction of filters in the
//!   low, middle and high thirds of the band (`aliasing/conv1/low`, `mid`,
//!   `high`: the "almost no mid frequencies" observation);
//! - the grid score of layer `grid_layer`'s projections for the period of the
//!   stride of the conv layer below it (`aliasing/convG/grid_score`: the
//!   projections' power fraction in the stride lattice's replicas; near 0
//!   for a smooth layer 1, about 1 - 1/s² for a random one, as high for a
//!   high-frequency one, as `tests/hooks/metrics.rs` measures): the
//!   strongest unit of each of `grid_maps` feature maps over the probe set,
//!   projected with the Deconvnet.
//!
//! Definitions in `zftrain_deconv::spectrum`. At the global step.

use serde::{Deserialize, Serialize};
use tch::Kind;
use zftrain_deconv::spectrum::{above_nyquist, band_thirds, dominant_frequency, grid_score};
use zftrain_deconv::MinerConfig;
use zftrain_model::LayerKind;

use super::deconv_grid::{layer_choices, Maps};
use crate::mine_probe;
use crate::{Control, HookContext, HookError, Schedule};

/// Settings (`[[hooks]] kind = "aliasing"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AliasingConfig {
    /// Hook name.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// DFT size (filters are zero-padded to it).
    pub fft_size: i64,
    /// Conv layer (1-based) whose projections get a grid score (0 = none).
    pub grid_layer: usize,
    /// Feature maps of that layer to project.
    pub grid_maps: Maps,
    /// Stop training if this hook fails.
    pub required: bool,
}

impl Default for AliasingConfig {
    fn default() -> Self {
        AliasingConfig {
            name: "aliasing".into(),
            schedule: Schedule::default(),
            fft_size: 64,
            grid_layer: 2,
            grid_maps: Maps::Count(32),
            required: false,
        }
    }
}

/// What the hook measured.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasingReport {
    /// `(layer label, stride, per-filter fraction above Nyquist)` for strided convs.
    pub above_nyquist: Vec<(String, i64, Vec<f64>)>,
    /// Layer 1: per-filter dominant frequency.
    pub dominant: Vec<f64>,
    /// Layer 1: low, middle, high thirds.
    pub thirds: [f64; 3],
    /// `(layer label, period, score)` when a grid layer is set.
    pub grid: Option<(String, i64, f64)>,
}

/// The hook.
#[derive(Debug)]
pub struct AliasingHook {
    config: AliasingConfig,
}

impl AliasingHook {
    /// A hook with `config`.
    pub fn new(config: AliasingConfig) -> AliasingHook {
        AliasingHook { config }
    }

    /// Measures `ctx.net` (and its projections on the probe set).
    pub fn measure(&self, ctx: &HookContext<'_>) -> Result<AliasingReport, HookError> {
        let c = &self.config;
        let arch = ctx.net.arch();
        let convs = arch.conv_indices();
        let stride_of = |index: usize| match &arch.layers[index].kind {
            LayerKind::Conv(s) => s.stride,
            _ => 1,
        };
        let mut report = AliasingReport {
            above_nyquist: Vec::new(),
            dominant: Vec::new(),
            thirds: [0.0; 3],
            grid: None,
        };
        for &index in &convs {
            let stride = stride_of(index);
            if stride > 1 {
                let w = ctx
                    .net
                    .weight(index)
                    .expect("conv layers have weights")
                    .detach();
                let f = above_nyquist(&w, stride, c.fft_size);
                let v = Vec::<f64>::try_from(f.to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
                report
                    .above_nyquist
                    .push((arch.layers[index].label.clone(), stride, v));
            }
        }
        let w1 = ctx
            .net
            .weight(convs[0])
            .expect("conv layers have weights")
            .detach();
        let d = dominant_frequency(&w1, c.fft_size);
        report.thirds = band_thirds(&d);
        report.dominant =
            Vec::<f64>::try_from(d.to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
        if c.grid_layer >= 2 {
            let choices = layer_choices(ctx.net, &[c.grid_layer], &c.grid_maps, &c.name)?;
            let config = MinerConfig {
                k: 1,
                ..MinerConfig::default()
            };
            let tops = mine_probe(ctx, &choices, config)?;
            let top = &tops[0];
            let fired = top.values.gt(0.0).flatten(0, -1).nonzero().squeeze_dim(1);
            let p = top.projections.flatten(0, 1).index_select(0, &fired);
            let period = stride_of(convs[c.grid_layer - 2]);
            let n = (p.size()[2].max(2) as u64).next_power_of_two() as i64;
            let label = arch.layers[convs[c.grid_layer - 1]].label.clone();
            report.grid = Some((label, period, grid_score(&p, period, n)));
        }
        Ok(report)
    }

    fn run(&self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let r = self.measure(ctx)?;
        let step = ctx.step as i64;
        let sink = ctx.sink;
        for (label, _, v) in &r.above_nyquist {
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            let max = v.iter().copied().fold(0.0, f64::max);
            sink.histogram(&format!("aliasing/{label}/above_nyquist"), step, v)?;
            sink.scalar(&format!("aliasing/{label}/above_nyquist_mean"), step, mean)?;
            sink.scalar(&format!("aliasing/{label}/above_nyquist_max"), step, max)?;
        }
        sink.histogram("aliasing/conv1/dominant_frequency", step, &r.dominant)?;
        for (name, v) in ["low", "mid", "high"].iter().zip(r.thirds) {
            sink.scalar(&format!("aliasing/conv1/{name}"), step, v)?;
        }
        if let Some((label, _, score)) = &r.grid {
            sink.scalar(&format!("aliasing/{label}/grid_score"), step, *score)?;
        }
        Ok(Control::Continue)
    }
}

impl super::Needs for AliasingHook {
    fn needs(&self, ctx: &HookContext<'_>) -> Result<Vec<crate::ProbeNeed>, HookError> {
        let c = &self.config;
        if c.grid_layer < 2 {
            return Ok(Vec::new());
        }
        Ok(vec![crate::ProbeNeed::Top {
            choices: layer_choices(ctx.net, &[c.grid_layer], &c.grid_maps, &c.name)?,
            k: 1,
            per_image: MinerConfig::default().per_image,
        }])
    }
}

scheduled_hook!(AliasingHook);
