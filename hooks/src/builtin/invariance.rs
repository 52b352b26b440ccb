//! The invariance analysis (Zeiler & Fergus Fig. 5) as a hook, on chosen
//! probe images: `hooks/<name>/epoch-EEE/invariance.png` (the figure) and
//! `invariance.csv`; TensorBoard image `analysis/invariance` and, per
//! transformation kind, the mean over images and amounts (identity left out)
//! of the layer-1 and layer-7 distances and of the class probability
//! (`invariance/<kind>/layer1_mean`, ...; at the global step), so that invariance
//! can be followed over training. The class followed is the image's true
//! class when the probe set knows it (a run's validation images), else the
//! one the network gives the original image; the predicted class of every
//! transformed image stands beside it (the CSV's `top_class`).

use serde::{Deserialize, Serialize};
use zftrain_analyses::invariance::{invariance, InvarianceConfig, InvariancePoint};
use zftrain_analyses::plot::invariance_figure;
use zftrain_analyses::report::invariance_csv;
use zftrain_deconv::render::denormalize;

use super::analysis::{epoch_dir, failed, probe_images, write_text};
use super::files::write_png;
use crate::kind::{HookKind, TagDoc};
use crate::{Control, HookContext, HookError, Schedule, SummarySink};

/// Settings (`[[hooks]] kind = "invariance"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvarianceHookConfig {
    /// Hook name.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Probe images to transform (indices into the probe set).
    pub images: Vec<usize>,
    /// Vertical translations in pixels.
    pub translations: Vec<f64>,
    /// Scale factors.
    pub scales: Vec<f64>,
    /// Rotations in degrees.
    pub rotations: Vec<f64>,
    /// Images per forward.
    pub batch_size: usize,
    /// Stop training if this hook fails.
    pub required: bool,
}

impl Default for InvarianceHookConfig {
    fn default() -> Self {
        let a = InvarianceConfig::default();
        InvarianceHookConfig {
            name: "invariance".into(),
            schedule: Schedule::default(),
            images: vec![0, 1, 2],
            translations: a.translations,
            scales: a.scales,
            rotations: a.rotations,
            batch_size: a.batch_size,
            required: false,
        }
    }
}

/// The hook.
#[derive(Debug)]
pub struct InvarianceHook {
    config: InvarianceHookConfig,
}

impl InvarianceHook {
    /// A hook with `config`.
    pub fn new(config: InvarianceHookConfig) -> InvarianceHook {
        InvarianceHook { config }
    }

    fn run(&self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let c = &self.config;
        let images = probe_images(ctx, &c.name, &c.images)?;
        let config = InvarianceConfig {
            translations: c.translations.clone(),
            scales: c.scales.clone(),
            rotations: c.rotations.clone(),
            batch_size: c.batch_size,
        };
        let classes: Vec<Option<i64>> = c.images.iter().map(|&i| ctx.probe.label(i)).collect();
        let points = invariance(ctx.net, &images, &classes, &config).map_err(failed(&c.name))?;
        let names: Vec<String> = c.images.iter().map(|i| format!("probe {i}")).collect();
        let dir = epoch_dir(ctx, &c.name)?;
        write_text(&dir, "invariance.csv", &invariance_csv(&points, &names))?;
        let (mean, std) = ctx.probe.normalization();
        let example = denormalize(&images.get(0), mean, std);
        let figure = invariance_figure(&points, &names, Some(&example)).map_err(failed(&c.name))?;
        write_png(&dir.join("invariance.png"), &figure)?;
        write_summaries(ctx.sink, ctx.step as i64, &points, &figure)?;
        Ok(Control::Continue)
    }
}

/// The invariance summaries, the same from the hook and from `zftrain
/// analyze invariance`: the figure `analysis/invariance` and, per kind of
/// transformation, the means over the images and amounts (the original
/// left out) `invariance/<kind>/layer1_mean`, `layer7_mean` and
/// `probability_mean`.
pub fn write_summaries(
    sink: &dyn SummarySink,
    step: i64,
    points: &[InvariancePoint],
    figure: &image::RgbImage,
) -> Result<(), HookError> {
    sink.image("analysis/invariance", step, figure)?;
    for kind in ["translate_y", "scale", "rotate"] {
        let moved: Vec<_> = points
            .iter()
            .filter(|p| p.warp.kind() == kind && !p.warp.is_identity())
            .collect();
        if moved.is_empty() {
            continue;
        }
        let n = moved.len() as f64;
        let mean = |f: fn(&InvariancePoint) -> f64| moved.iter().map(|p| f(p)).sum::<f64>() / n;
        sink.scalar(
            &format!("invariance/{kind}/layer1_mean"),
            step,
            mean(|p| p.layer1),
        )?;
        sink.scalar(
            &format!("invariance/{kind}/layer7_mean"),
            step,
            mean(|p| p.layer7),
        )?;
        sink.scalar(
            &format!("invariance/{kind}/probability_mean"),
            step,
            mean(|p| p.probability),
        )?;
    }
    Ok(())
}

impl super::Needs for InvarianceHook {}

scheduled_hook!(InvarianceHook);

/// The tags the hook writes (docs/tensorboard.md lists them).
const TAGS: &[TagDoc] = &[
    ("analysis/invariance", "Feature distances and class probability under translation, scale and rotation (ZF Fig. 5)."),
    ("invariance/*/layer1_mean", "Mean distance of layer-1 features from the original's under this transformation, relative to the original's norm."),
    ("invariance/*/layer7_mean", "Mean distance of layer-7 features from the original's under this transformation, relative to the original's norm."),
    ("invariance/*/probability_mean", "Mean probability of the class under this transformation."),
    ("invariance/**", "Per image: feature distance or class probability against the transformation's amount (the step)."),
];

impl HookKind for InvarianceHookConfig {
    fn build(&self) -> Result<Box<dyn crate::Hook>, HookError> {
        Ok(Box::new(InvarianceHook::new(self.clone())))
    }

    fn tags() -> &'static [TagDoc] {
        TAGS
    }
}
