//! Aliasing and frequency coverage (ZF section 4, Fig. 6), as numbers,
//! each beside its null (definitions and known-answer tests in
//! `zftrain_deconv::{aliasing, lattice, spectrum}`):
//!
//! - for every conv layer with stride s > 1, on the first `images` (8) probe
//!   images: the share of the layer's stride-1 output power outside the
//!   stride's Nyquist band, mean over filters (`aliasing/convL/aliasing`,
//!   per filter `aliasing/convL/aliasing_per_filter`), and the same through
//!   the filters with their taps shuffled (`aliasing/convL/aliasing_null`);
//! - layer 1's frequency coverage: the unit-norm bank's power in the low,
//!   middle and high radial bands as ratios to white noise's
//!   (`aliasing/conv1/coverage_low`, `_mid`, `_high`; white reads 1);
//! - the grid in layer `grid_layer`'s projections at layer 1's stride s:
//!   the share of each projection's variance between its s x s pixel
//!   phases (`aliasing/convG/grid`; about 1/M for noise with M pixels per
//!   phase, 0 for smooth projections, higher for a stride grid), beside the
//!   same at period s + 1 (`aliasing/convG/grid_null`): the strongest unit
//!   of each of `grid_maps` feature maps over the probe set, projected with
//!   the Deconvnet.
//!
//! A layer whose output had no power on the probe images is left out (no
//! value rather than a 0 that would read as "not aliased"); probe images
//! that do not decode are skipped, as in the shared pass.
//!
//! At the global step.

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};
use zftrain_deconv::aliasing::FoldedPower;
use zftrain_deconv::draws::shuffled_taps;
use zftrain_deconv::lattice::{lattice_contrast, LatticeContrast};
use zftrain_deconv::spectrum::coverage;
use zftrain_deconv::MinerConfig;
use zftrain_model::{ConvSpec, LayerKind, Network};

use super::deconv_grid::{layer_choices, Maps};
use crate::kind::{require, HookKind, TagDoc};
use crate::mine_probe;
use crate::spec::MAX_IMAGES;
use crate::{Control, HookContext, HookError, Schedule};

/// Settings (`[[hooks]] kind = "aliasing"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AliasingConfig {
    /// Hook name.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// DFT size of layer 1's coverage (filters are zero-padded to it).
    pub fft_size: i64,
    /// Probe images the aliasing is measured on (each strided layer's
    /// output at stride 1, one image at a time).
    pub images: usize,
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
            images: 8,
            grid_layer: 2,
            grid_maps: Maps::Count(32),
            required: false,
        }
    }
}

/// One strided conv layer's aliasing.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerAliasing {
    /// Layer label (`conv1`).
    pub label: String,
    /// Its stride.
    pub stride: i64,
    /// Per filter with output power: the share outside the Nyquist band.
    pub per_filter: Vec<f64>,
    /// Mean of `per_filter`.
    pub aliasing: f64,
    /// The same through the filters with their taps shuffled.
    pub null: f64,
}

/// The lattice contrast of one layer's projections.
#[derive(Debug, Clone, PartialEq)]
pub struct GridReading {
    /// The projected layer's label (`conv2`).
    pub label: String,
    /// Layer 1's stride: the period of the lattice its transposed
    /// convolution lays in pixels.
    pub period: i64,
    /// The contrast and its null.
    pub contrast: LatticeContrast,
}

/// What the hook measured.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasingReport {
    /// The strided conv layers, in order.
    pub layers: Vec<LayerAliasing>,
    /// Layer 1: low, middle and high band power as ratios to white noise's.
    pub coverage: [f64; 3],
    /// When a grid layer is set and some projection has power.
    pub grid: Option<GridReading>,
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
        let Some(&first) = convs.first() else {
            return Err(HookError::failed(
                &c.name,
                format!("{} has no conv layers to measure", arch.name),
            ));
        };
        let spec = |index: usize| match &arch.layers[index].kind {
            LayerKind::Conv(s) => Some(*s),
            _ => None,
        };
        let strided: Vec<(usize, ConvSpec)> = convs
            .iter()
            .filter_map(|&i| spec(i).filter(|s| s.stride > 1).map(|s| (i, s)))
            .collect();
        let layers = self.folded(ctx, &strided)?;
        let w1 = ctx
            .net
            .weight(first)
            .expect("conv layers have weights")
            .detach();
        let mut report = AliasingReport {
            layers,
            coverage: coverage(&w1.to_device(Device::Cpu), c.fft_size),
            grid: None,
        };
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
            let period = spec(first).map_or(1, |s| s.stride);
            report.grid = lattice_contrast(&p, period).map(|contrast| GridReading {
                label: arch.layers[convs[c.grid_layer - 1]].label.clone(),
                period,
                contrast,
            });
        }
        Ok(report)
    }

    /// The aliasing of each `(layer index, spec)` on the first `images`
    /// probe images, and its shuffled-taps null.
    fn folded(
        &self,
        ctx: &HookContext<'_>,
        strided: &[(usize, ConvSpec)],
    ) -> Result<Vec<LayerAliasing>, HookError> {
        let c = &self.config;
        let net: &Network = ctx.net;
        let arch = net.arch();
        let count = c.images.min(ctx.probe.len());
        if strided.is_empty() || count == 0 {
            return Ok(Vec::new());
        }
        let weights: Vec<(Tensor, Tensor)> = strided
            .iter()
            .map(|&(index, _)| {
                let w = net
                    .weight(index)
                    .expect("conv layers have weights")
                    .detach();
                let shuffled = shuffled_taps(&w, index as u64);
                (w, shuffled)
            })
            .collect();
        let mut sums: Vec<(FoldedPower, FoldedPower)> =
            strided.iter().map(|_| Default::default()).collect();
        let wanted: Vec<usize> = (0..count).collect();
        // Images that do not decode are not in the batches: skipped.
        for batch in ctx.probe.stream(Some(&wanted)) {
            if ctx.stopping() {
                return Err(HookError::Probe("stopped".into()));
            }
            let images = batch?.images;
            for i in 0..images.size()[0] {
                let image = images.narrow(0, i, 1).to_device(ctx.device);
                tch::no_grad(|| {
                    let mut x = image;
                    let mut at = 0;
                    for (((index, spec), (w, shuffled)), (real, null)) in
                        strided.iter().zip(&weights).zip(&mut sums)
                    {
                        x = net.forward_range(&x, at..*index);
                        at = *index;
                        real.add(&x, w, spec.groups, spec.stride);
                        null.add(&x, shuffled, spec.groups, spec.stride);
                    }
                });
            }
        }
        Ok(strided
            .iter()
            .zip(sums)
            .filter_map(|((index, spec), (real, null))| {
                Some(LayerAliasing {
                    label: arch.layers[*index].label.clone(),
                    stride: spec.stride,
                    aliasing: real.mean_share()?,
                    null: null.mean_share()?,
                    per_filter: real.shares().into_iter().flatten().collect(),
                })
            })
            .collect())
    }

    fn run(&self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let r = self.measure(ctx)?;
        let step = ctx.step as i64;
        let sink = ctx.sink;
        for l in &r.layers {
            let label = &l.label;
            sink.histogram(
                &format!("aliasing/{label}/aliasing_per_filter"),
                step,
                &l.per_filter,
            )?;
            sink.scalar(&format!("aliasing/{label}/aliasing"), step, l.aliasing)?;
            sink.scalar(&format!("aliasing/{label}/aliasing_null"), step, l.null)?;
        }
        let first = ctx.net.arch().conv_indices()[0];
        let label = &ctx.net.arch().layers[first].label;
        for (name, v) in ["low", "mid", "high"].iter().zip(r.coverage) {
            sink.scalar(&format!("aliasing/{label}/coverage_{name}"), step, v)?;
        }
        if let Some(g) = &r.grid {
            sink.scalar(&format!("aliasing/{}/grid", g.label), step, g.contrast.grid)?;
            sink.scalar(
                &format!("aliasing/{}/grid_null", g.label),
                step,
                g.contrast.null,
            )?;
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

/// The tags the hook writes (docs/tensorboard.md lists them).
const TAGS: &[TagDoc] = &[
    ("aliasing/*/aliasing", "Share of the strided layer's stride-1 output power on the probe images outside its stride's Nyquist band (folded back), mean over filters. Above aliasing_null: aliased; at it: no better than noise; below: smooth."),
    ("aliasing/*/aliasing_null", "The same share through the layer's filters with their taps spatially shuffled (same norms, no structure): the null to read aliasing against."),
    ("aliasing/*/aliasing_per_filter", "Per filter: share of its stride-1 output power outside the stride's Nyquist band."),
    ("aliasing/*/coverage_low", "Layer 1's power below 1/6 cycle per pixel (unit-norm filters), as a ratio to white noise's share: 1 white, above 1 more than white."),
    ("aliasing/*/coverage_mid", "Layer 1's power from 1/6 to 1/3 cycle per pixel, as a ratio to white noise's: well under 1 is ZF's missing mid frequencies."),
    ("aliasing/*/coverage_high", "Layer 1's power above 1/3 cycle per pixel, as a ratio to white noise's."),
    ("aliasing/*/grid", "Grid in the layer's projections at layer 1's stride s (ZF Fig. 6 d): the share of each projection's variance between its s x s pixel phases. About 1/M for noise (M pixels per phase), 0 for smooth projections; above grid_null: a stride grid."),
    ("aliasing/*/grid_null", "The same share at period s + 1, a lattice the network does not have: the null to read grid against."),
];

impl HookKind for AliasingConfig {
    fn build(&self) -> Result<Box<dyn crate::Hook>, HookError> {
        require(
            (8..=1024).contains(&self.fft_size)
                && self.grid_layer != 1
                && (1..=MAX_IMAGES).contains(&self.images),
            &self.name,
            || {
                format!(
                    "fft_size must be 8 to 1024, grid_layer 0 (off) or 2 or more, images 1 to {MAX_IMAGES} (got fft_size = {}, grid_layer = {}, images = {})",
                    self.fft_size, self.grid_layer, self.images
                )
            },
        )?;
        Ok(Box::new(AliasingHook::new(self.clone())))
    }

    fn tags() -> &'static [TagDoc] {
        TAGS
    }
}
