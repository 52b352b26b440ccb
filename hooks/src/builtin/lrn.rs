//! The regime each local response normalization layer works in: its
//! divisor `(k + alpha * mean_window(a^2)) ^ beta` on the probe images.
//!
//! Why: the LRN constants of Krizhevsky et al. (k = 2, alpha = 1e-4 over
//! n = 5, beta = 0.75) were set for activations of inputs in raw pixel
//! units minus the mean (about -128 to 128). With inputs 58 times smaller
//! (ImageNet's std) the activations are too small to move the divisor: it
//! sits at the constant `k ^ beta` (1.68) everywhere and the layer only
//! rescales. The spread across positions says which regime a run is in.
//!
//! Per LRN layer, over the first `images` probe images (every position and
//! channel): `lrn/<label>/denominator_mean`, `lrn/<label>/denominator_std`
//! and `lrn/<label>/denominator_cv` (std over mean: near 0 when the layer
//! does not normalize), and the histogram `lrn/<label>/denominator` of the
//! per-image, per-channel means. At the global step. Probe images that do
//! not decode are skipped, as in the shared pass.

use serde::{Deserialize, Serialize};
use tch::Kind;
use zftrain_model::lrn::lrn_denominator;
use zftrain_model::LayerKind;

use crate::kind::{require, HookKind, TagDoc};
use crate::spec::MAX_IMAGES;
use crate::{Control, HookContext, HookError, Schedule};

/// Settings (`[[hooks]] kind = "lrn"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrnConfig {
    /// Hook name.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Probe images the divisors are measured on.
    pub images: usize,
    /// Stop training if this hook fails.
    pub required: bool,
}

impl Default for LrnConfig {
    fn default() -> Self {
        LrnConfig {
            name: "lrn".into(),
            schedule: Schedule::default(),
            images: 16,
            required: false,
        }
    }
}

/// One LRN layer's divisor over the probe images.
#[derive(Debug, Clone, PartialEq)]
pub struct LrnDivisor {
    /// Layer label (`norm1`).
    pub label: String,
    /// Mean over images, channels and positions.
    pub mean: f64,
    /// Standard deviation over the same.
    pub std: f64,
    /// Per image and channel: the mean over positions.
    pub per_map: Vec<f64>,
}

/// The hook.
#[derive(Debug)]
pub struct LrnHook {
    config: LrnConfig,
}

impl LrnHook {
    /// A hook with `config`.
    pub fn new(config: LrnConfig) -> LrnHook {
        LrnHook { config }
    }

    /// The divisor of every LRN layer of `ctx.net` on the first `images`
    /// probe images (empty for a network without LRN).
    pub fn measure(&self, ctx: &HookContext<'_>) -> Result<Vec<LrnDivisor>, HookError> {
        let net = ctx.net;
        let arch = net.arch();
        let lrns: Vec<usize> = (0..arch.layers.len())
            .filter(|&i| matches!(arch.layers[i].kind, LayerKind::Lrn(_)))
            .collect();
        let count = self.config.images.min(ctx.probe.len());
        if lrns.is_empty() || count == 0 {
            return Ok(Vec::new());
        }
        // Sums over images, channels and positions, a few images at a time.
        let mut sums = vec![(0.0f64, 0.0f64, 0.0f64, Vec::new()); lrns.len()];
        let wanted: Vec<usize> = (0..count).collect();
        // In the probe set's batches; images that do not decode are skipped.
        for batch in ctx.probe.stream(Some(&wanted)) {
            if ctx.stopping() {
                return Err(HookError::Probe("stopped".into()));
            }
            let images = batch?.images.to_device(ctx.device);
            tch::no_grad(|| -> Result<(), HookError> {
                let mut x = images;
                let mut at = 0;
                for (&i, (sum, squares, n, per_map)) in lrns.iter().zip(&mut sums) {
                    x = net.forward_range(&x, at..i);
                    at = i;
                    let LayerKind::Lrn(spec) = &arch.layers[i].kind else {
                        unreachable!("filtered to LRN layers")
                    };
                    let d = lrn_denominator(&x, spec).to_kind(Kind::Double);
                    *sum += d.sum(Kind::Double).double_value(&[]);
                    *squares += d.square().sum(Kind::Double).double_value(&[]);
                    *n += d.numel() as f64;
                    let maps = d.mean_dim([2i64, 3].as_slice(), false, Kind::Double);
                    per_map.extend(Vec::<f64>::try_from(
                        maps.flatten(0, -1).to_device(tch::Device::Cpu),
                    )?);
                }
                Ok(())
            })?;
        }
        Ok(lrns
            .iter()
            .zip(sums)
            .map(|(&i, (sum, squares, n, per_map))| {
                let mean = sum / n.max(1.0);
                LrnDivisor {
                    label: arch.layers[i].label.clone(),
                    mean,
                    std: (squares / n.max(1.0) - mean * mean).max(0.0).sqrt(),
                    per_map,
                }
            })
            .collect())
    }

    fn run(&self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let step = ctx.step as i64;
        for l in self.measure(ctx)? {
            let tag = |what: &str| format!("lrn/{}/{what}", l.label);
            ctx.sink.scalar(&tag("denominator_mean"), step, l.mean)?;
            ctx.sink.scalar(&tag("denominator_std"), step, l.std)?;
            ctx.sink
                .scalar(&tag("denominator_cv"), step, l.std / l.mean.max(1e-30))?;
            ctx.sink.histogram(&tag("denominator"), step, &l.per_map)?;
        }
        Ok(Control::Continue)
    }
}

impl super::Needs for LrnHook {}

scheduled_hook!(LrnHook);

/// The tags the hook writes (docs/tensorboard.md lists them).
const TAGS: &[TagDoc] = &[
    ("lrn/*/denominator_mean", "Mean divisor (k + alpha * mean of squares)^beta of the LRN layer on the probe images; k^beta (1.68 for AlexNet's constants) when its inputs are too small to normalize."),
    ("lrn/*/denominator_std", "Standard deviation of the LRN layer's divisor over images, channels and positions."),
    ("lrn/*/denominator_cv", "The LRN divisor's std over its mean: near 0 (1e-5) when the layer only rescales (inputs at ImageNet's std), 1e-2 or more when it normalizes (the papers' raw-pixel scale)."),
    ("lrn/*/denominator", "Per probe image and channel: the LRN layer's mean divisor."),
];

impl HookKind for LrnConfig {
    fn build(&self) -> Result<Box<dyn crate::Hook>, HookError> {
        require((1..=MAX_IMAGES).contains(&self.images), &self.name, || {
            format!("images must be 1 to {MAX_IMAGES}, got {}", self.images)
        })?;
        Ok(Box::new(LrnHook::new(self.clone())))
    }

    fn tags() -> &'static [TagDoc] {
        TAGS
    }
}
