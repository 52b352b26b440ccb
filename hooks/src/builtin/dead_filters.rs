//! Filters without structure, filters that never fire, and dominating
//! filters (ZF Fig. 6 a-c), per conv layer:
//!
//! - `structureless`: filters whose taps are indistinguishable from white
//!   noise (their largest lag-1 tap correlation under the 99th percentile
//!   of white filters of the same shape: `zftrain_deconv::structure`, where
//!   the known-answer tests are). These are the paper's "dead" features.
//! - `dead`: filters whose rectified output never exceeds `threshold` on
//!   the probe set (never fire). On mean-subtracted images almost every
//!   non-zero layer-1 filter fires, so this reads 0 at layer 1 whatever the
//!   filters look like; it counts silent units deeper in.
//! - each filter's activation rate (the fraction of its units, over all
//!   probe images and positions, above `threshold`);
//! - `dominance`: the largest filter RMS over the median (Fig. 6 a: "one
//!   feature dominates"), and `degenerate`: filters whose weight RMS is
//!   below `degenerate_ratio` times the median (in a recipe with filter
//!   renormalization most filters sit at the cap, so read it with the RMS
//!   histogram).
//!
//! Summaries (at the global step): scalars `filters/convL/structureless`,
//! `filters/convL/structureless_threshold`, `filters/convL/dead`,
//! `filters/convL/dead_fraction`, `filters/convL/dominance`,
//! `filters/convL/degenerate`; histograms `filters/convL/tap_correlation`,
//! `filters/convL/activation_rate` and `filters/convL/rms`.

use serde::{Deserialize, Serialize};
use tch::Kind;
use zftrain_deconv::structure::{dominance, structureless};

use crate::kind::{HookKind, TagDoc};
use crate::shared::{FilterSums, ProbeNeed, SharedPass};
use crate::{Control, HookContext, HookError, Schedule};

/// Settings (`[[hooks]] kind = "dead_filters"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadFiltersConfig {
    /// Hook name.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// An activation above this counts as alive.
    pub threshold: f64,
    /// Weight RMS below this fraction of the layer's median is degenerate.
    pub degenerate_ratio: f64,
    /// Stop training if this hook fails.
    pub required: bool,
}

impl Default for DeadFiltersConfig {
    fn default() -> Self {
        DeadFiltersConfig {
            name: "dead_filters".into(),
            schedule: Schedule::default(),
            threshold: 1e-6,
            degenerate_ratio: 0.1,
            required: false,
        }
    }
}

/// What the hook measured for one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerFilters {
    /// Layer label (`conv1`).
    pub label: String,
    /// Per filter: the largest activation over the probe set.
    pub max_activation: Vec<f64>,
    /// Per filter: fraction of units above the threshold.
    pub activation_rate: Vec<f64>,
    /// Per filter: RMS of its weights.
    pub rms: Vec<f64>,
    /// Per filter: its largest lag-1 tap correlation.
    pub tap_correlation: Vec<f64>,
    /// Filters whose taps are indistinguishable from white noise.
    pub structureless: usize,
    /// The white-noise null's 99th percentile they are under.
    pub structureless_threshold: f64,
    /// Filters that never fire.
    pub dead: usize,
    /// Largest filter RMS over the median.
    pub dominance: f64,
    /// Filters with a degenerate weight norm.
    pub degenerate: usize,
}

/// The hook.
#[derive(Debug)]
pub struct DeadFiltersHook {
    config: DeadFiltersConfig,
}

impl DeadFiltersHook {
    /// A hook with `config`.
    pub fn new(config: DeadFiltersConfig) -> DeadFiltersHook {
        DeadFiltersHook { config }
    }

    /// Measures every conv layer of `ctx.net` on the probe set.
    pub fn measure(&self, ctx: &HookContext<'_>) -> Result<Vec<LayerFilters>, HookError> {
        let arch = ctx.net.arch();
        let convs = arch.conv_indices();
        let thr = self.config.threshold;
        // An architecture file may have none (a plain MLP).
        if convs.is_empty() {
            return Err(HookError::failed(
                &self.config.name,
                format!("{} has no conv layers to count filters of", arch.name),
            ));
        }
        // From the pass the hooks due now share, or a pass of its own.
        let own;
        let sums = match ctx.shared.and_then(|s| s.filter_stats(thr)) {
            Some(sums) => sums,
            None => {
                own = SharedPass::run(ctx, &[ProbeNeed::FilterStats { threshold: thr }])?;
                own.filter_stats(thr)
                    .ok_or_else(|| HookError::Probe("the pass did not count filters".into()))?
            }
        };
        let FilterSums {
            maxes,
            above,
            units,
        } = sums;
        let mut out = Vec::new();
        for (i, &index) in convs.iter().enumerate() {
            let (Some(m), Some(a)) = (maxes.get(i), above.get(i)) else {
                return Err(HookError::failed(
                    &self.config.name,
                    "the probe set is empty",
                ));
            };
            let max_activation =
                Vec::<f64>::try_from(m.to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
            let activation_rate = Vec::<f64>::try_from((a / units[i]).to_device(tch::Device::Cpu))?;
            let w = ctx.net.weight(index).expect("conv layers have weights");
            let cpu = w.detach().to_device(tch::Device::Cpu);
            let structure = structureless(&cpu);
            let rms = Vec::<f64>::try_from(
                w.detach()
                    .to_kind(Kind::Double)
                    .square()
                    .mean_dim([1i64, 2, 3].as_slice(), false, Kind::Double)
                    .sqrt()
                    .to_device(tch::Device::Cpu),
            )?;
            let mut sorted = rms.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            out.push(LayerFilters {
                label: arch.layers[index].label.clone(),
                structureless: structure.structureless.iter().filter(|&&f| f).count(),
                structureless_threshold: structure.threshold,
                tap_correlation: structure.correlation,
                dominance: dominance(&cpu),
                dead: max_activation.iter().filter(|&&v| v <= thr).count(),
                degenerate: rms
                    .iter()
                    .filter(|&&r| r < self.config.degenerate_ratio * median)
                    .count(),
                max_activation,
                activation_rate,
                rms,
            });
        }
        Ok(out)
    }

    fn run(&self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let step = ctx.step as i64;
        for l in self.measure(ctx)? {
            let n = l.rms.len() as f64;
            let label = &l.label;
            ctx.sink.scalar(
                &format!("filters/{label}/structureless"),
                step,
                l.structureless as f64,
            )?;
            ctx.sink.scalar(
                &format!("filters/{label}/structureless_threshold"),
                step,
                l.structureless_threshold,
            )?;
            ctx.sink
                .scalar(&format!("filters/{label}/dominance"), step, l.dominance)?;
            ctx.sink.histogram(
                &format!("filters/{label}/tap_correlation"),
                step,
                &l.tap_correlation,
            )?;
            ctx.sink
                .scalar(&format!("filters/{}/dead", l.label), step, l.dead as f64)?;
            ctx.sink.scalar(
                &format!("filters/{}/dead_fraction", l.label),
                step,
                l.dead as f64 / n,
            )?;
            ctx.sink.scalar(
                &format!("filters/{}/degenerate", l.label),
                step,
                l.degenerate as f64,
            )?;
            ctx.sink.histogram(
                &format!("filters/{}/activation_rate", l.label),
                step,
                &l.activation_rate,
            )?;
            ctx.sink
                .histogram(&format!("filters/{}/rms", l.label), step, &l.rms)?;
        }
        Ok(Control::Continue)
    }
}

impl super::Needs for DeadFiltersHook {
    fn needs(&self, _ctx: &HookContext<'_>) -> Result<Vec<ProbeNeed>, HookError> {
        Ok(vec![ProbeNeed::FilterStats {
            threshold: self.config.threshold,
        }])
    }
}

scheduled_hook!(DeadFiltersHook);

/// The tags the hook writes (docs/tensorboard.md lists them).
const TAGS: &[TagDoc] = &[
    ("filters/*/structureless", "Filters whose taps are indistinguishable from white noise (largest lag-1 tap correlation under the 99th percentile of white filters): the paper's dead features. Healthy: 0 or few."),
    ("filters/*/structureless_threshold", "The white-noise null the structureless count is measured against: 99th percentile of the largest lag-1 tap correlation of white filters of this shape."),
    ("filters/*/tap_correlation", "Per filter: its largest lag-1 tap correlation over four directions; white noise reads near 0, smooth or oriented filters near 1."),
    ("filters/*/dead", "Filters of the layer that never fire on the probe set (0 at layer 1 by construction on mean-subtracted images; see structureless)."),
    ("filters/*/dead_fraction", "Fraction of the layer's filters that never fire on the probe set."),
    ("filters/*/dominance", "Largest filter RMS over the median (ZF Fig. 6 a, one feature dominating): near 1 balanced, much larger when one filter dominates."),
    ("filters/*/degenerate", "Filters whose weight RMS is under 0.1 of the layer's median."),
    ("filters/*/activation_rate", "Per filter: fraction of its units (probe images times positions) above the threshold."),
    ("filters/*/rms", "Per filter: RMS of its weights."),
];

impl HookKind for DeadFiltersConfig {
    fn build(&self) -> Result<Box<dyn crate::Hook>, HookError> {
        Ok(Box::new(DeadFiltersHook::new(self.clone())))
    }

    fn tags() -> &'static [TagDoc] {
        TAGS
    }
}
