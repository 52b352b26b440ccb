//! The occlusion analysis (Zeiler & Fergus Fig. 7) as a hook, on chosen
//! probe images: `hooks/<name>/epoch-EEE/occlusion-<i>.png` (input, layer-L
//! map activation, class probability, most probable class, the map's
//! projection) and `occlusion-<i>.csv`; TensorBoard images
//! `analysis/occlusion/image<i>` and scalars `occlusion/image<i>/min_probability`
//! (at the global step). The class followed is the image's true class when
//! the probe set knows it (a run's validation images), else the one the
//! network gives the unoccluded image; the predicted class stands beside it
//! (the figure's title, the CSV's `predicted` column).

use serde::{Deserialize, Serialize};
use zftrain_analyses::occlusion::{occlusion, OcclusionConfig, OcclusionMap};
use zftrain_analyses::report::{occlusion_csv, occlusion_figure};
use zftrain_deconv::render::denormalize;

use super::analysis::{epoch_dir, failed, probe_images, write_text};
use super::files::write_png;
use crate::kind::{HookKind, TagDoc};
use crate::{Control, HookContext, HookError, Schedule, SummarySink};

/// Settings (`[[hooks]] kind = "occlusion"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcclusionHookConfig {
    /// Hook name.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Probe images to occlude (indices into the probe set).
    pub images: Vec<usize>,
    /// Side of the grey square in pixels.
    pub size: i64,
    /// Step between positions in pixels.
    pub stride: i64,
    /// The conv layer (1-based) whose strongest map is followed.
    pub layer: usize,
    /// Occluded images per forward.
    pub batch_size: usize,
    /// Stop training if this hook fails.
    pub required: bool,
}

impl Default for OcclusionHookConfig {
    fn default() -> Self {
        let o = OcclusionConfig::default();
        OcclusionHookConfig {
            name: "occlusion".into(),
            schedule: Schedule::default(),
            images: vec![0],
            size: o.size,
            stride: o.stride,
            layer: o.layer,
            batch_size: o.batch_size,
            required: false,
        }
    }
}

/// The hook.
#[derive(Debug)]
pub struct OcclusionHook {
    config: OcclusionHookConfig,
}

impl OcclusionHook {
    /// A hook with `config`.
    pub fn new(config: OcclusionHookConfig) -> OcclusionHook {
        OcclusionHook { config }
    }

    fn run(&self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let c = &self.config;
        let images = probe_images(ctx, &c.name, &c.images)?;
        let config = OcclusionConfig {
            size: c.size,
            stride: c.stride,
            layer: c.layer,
            batch_size: c.batch_size,
            ..OcclusionConfig::default()
        };
        let dir = epoch_dir(ctx, &c.name)?;
        let (mean, std) = ctx.probe.normalization();
        let step = ctx.step as i64;
        for (k, &probe) in c.images.iter().enumerate() {
            let image = images.get(k as i64);
            let label = ctx.probe.label(probe);
            let m = occlusion(ctx.net, &image, label, &config).map_err(failed(&c.name))?;
            write_text(&dir, &format!("occlusion-{probe}.csv"), &occlusion_csv(&m))?;
            let figure =
                occlusion_figure(&m, &denormalize(&image, mean, std), c.size, c.layer, &|k| {
                    format!("class {k}")
                })
                .map_err(failed(&c.name))?;
            write_png(&dir.join(format!("occlusion-{probe}.png")), &figure)?;
            write_summaries(ctx.sink, step, &format!("image{probe}"), &m, &figure)?;
        }
        Ok(Control::Continue)
    }
}

/// The occlusion summaries of one image, the same from the hook (`image`
/// is `image<P>`, P the probe index) and from `zftrain analyze occlusion`
/// (`image<I>`, I the position on its command line): the figure
/// `analysis/occlusion/<image>` and the class probability with the most
/// harmful occluder, `occlusion/<image>/min_probability`.
pub fn write_summaries(
    sink: &dyn SummarySink,
    step: i64,
    image: &str,
    m: &OcclusionMap,
    figure: &image::RgbImage,
) -> Result<(), HookError> {
    sink.image(&format!("analysis/occlusion/{image}"), step, figure)?;
    let worst = m.probability.iter().cloned().fold(f64::INFINITY, f64::min);
    sink.scalar(&format!("occlusion/{image}/min_probability"), step, worst)
}

impl super::Needs for OcclusionHook {}

scheduled_hook!(OcclusionHook);

/// The tags the hook writes (docs/tensorboard.md lists them).
const TAGS: &[TagDoc] = &[
    ("analysis/occlusion/*", "Occlusion sensitivity of one image (ZF Fig. 7): activation, class probability and most probable class per occluder position."),
    ("occlusion/*/min_probability", "The class probability with the most harmful occluder position."),
];

impl HookKind for OcclusionHookConfig {
    fn build(&self) -> Result<Box<dyn crate::Hook>, HookError> {
        Ok(Box::new(OcclusionHook::new(self.clone())))
    }

    fn tags() -> &'static [TagDoc] {
        TAGS
    }
}
