//! The correspondence analysis (Zeiler & Fergus Table 1) as a hook: parts
//! given as boxes in pixels of chosen probe images (their 224x224 input),
//! occluded in every image, against boxes of the same size at random places
//! (inside each image's object box when `objects` gives them); `hooks/<name>/epoch-EEE/correspondence.csv` and
//! `.txt`; TensorBoard text `analysis/correspondence` and scalars
//! `correspondence/<part>/layerL` (mean; at the global step).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zftrain_analyses::correspondence::{
    correspondence, CorrespondenceConfig, CorrespondenceRow, Part,
};
use zftrain_analyses::report::correspondence_tables;

use super::analysis::{epoch_dir, failed, probe_images, write_text};
use crate::kind::{require, HookKind, TagDoc};
use crate::{Control, HookContext, HookError, Schedule, SummarySink};

/// Settings (`[[hooks]] kind = "correspondence"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrespondenceHookConfig {
    /// Hook name.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Probe images (indices into the probe set), two or more.
    pub images: Vec<usize>,
    /// Parts: name -> one `[top, left, height, width]` box per image, in
    /// pixels of the network's input.
    pub parts: BTreeMap<String, Vec<[i64; 4]>>,
    /// Layers compared (1, 5, 7).
    pub layers: Vec<usize>,
    /// Draws of randomly placed boxes.
    pub random_draws: usize,
    /// One `[top, left, height, width]` box per image, the object's extent:
    /// the random boxes are drawn inside it (empty: anywhere in the image).
    pub objects: Vec<[i64; 4]>,
    /// Seed of the random boxes.
    pub seed: u64,
    /// Stop training if this hook fails.
    pub required: bool,
}

impl Default for CorrespondenceHookConfig {
    fn default() -> Self {
        let c = CorrespondenceConfig::default();
        CorrespondenceHookConfig {
            name: "correspondence".into(),
            schedule: Schedule::default(),
            images: Vec::new(),
            parts: BTreeMap::new(),
            layers: c.layers,
            random_draws: c.random_draws,
            objects: Vec::new(),
            seed: c.seed,
            required: false,
        }
    }
}

/// The hook.
#[derive(Debug)]
pub struct CorrespondenceHook {
    config: CorrespondenceHookConfig,
}

impl CorrespondenceHook {
    /// A hook with `config`.
    pub fn new(config: CorrespondenceHookConfig) -> CorrespondenceHook {
        CorrespondenceHook { config }
    }

    fn run(&self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let c = &self.config;
        let images = probe_images(ctx, &c.name, &c.images)?;
        let parts: Vec<Part> = c
            .parts
            .iter()
            .map(|(name, boxes)| Part {
                name: name.clone(),
                boxes: boxes.iter().map(|b| (b[0], b[1], b[2], b[3])).collect(),
            })
            .collect();
        let config = CorrespondenceConfig {
            layers: c.layers.clone(),
            random_draws: c.random_draws,
            objects: c.objects.iter().map(|b| (b[0], b[1], b[2], b[3])).collect(),
            seed: c.seed,
            ..CorrespondenceConfig::default()
        };
        let rows = correspondence(ctx.net, &images, &parts, &config).map_err(failed(&c.name))?;
        let mut names: Vec<String> = c.parts.keys().cloned().collect();
        if c.random_draws > 0 {
            names.push("random".into());
        }
        let (csv, table) = correspondence_tables(&rows, &names, &c.layers);
        let dir = epoch_dir(ctx, &c.name)?;
        write_text(&dir, "correspondence.csv", &csv)?;
        write_text(&dir, "correspondence.txt", &table)?;
        write_summaries(ctx.sink, ctx.step as i64, &rows, &table)?;
        Ok(Control::Continue)
    }
}

/// The correspondence summaries, the same from the hook and from `zftrain
/// analyze correspondence`: the table as text `analysis/correspondence` and
/// each part's mean per layer, `correspondence/<part>/layer<L>`.
pub fn write_summaries(
    sink: &dyn SummarySink,
    step: i64,
    rows: &[CorrespondenceRow],
    table: &str,
) -> Result<(), HookError> {
    sink.text("analysis/correspondence", step, &format!("```\n{table}```"))?;
    for r in rows {
        sink.scalar(
            &format!("correspondence/{}/layer{}", r.part, r.layer),
            step,
            r.mean,
        )?;
    }
    Ok(())
}

impl super::Needs for CorrespondenceHook {}

scheduled_hook!(CorrespondenceHook);

/// The tags the hook writes (docs/tensorboard.md lists them).
const TAGS: &[TagDoc] = &[
    ("analysis/correspondence", "Correspondence of object parts across images (ZF Table 1): mean sign-difference per part and layer."),
    ("correspondence/*/*", "Mean fraction of feature signs that differ between image pairs for this part and layer (lower: more consistent)."),
];

impl HookKind for CorrespondenceHookConfig {
    fn build(&self) -> Result<Box<dyn crate::Hook>, HookError> {
        require(
            self.images.len() >= 2 && !self.parts.is_empty(),
            &self.name,
            || {
                "needs two or more probe images (images = [..]) and at least one part (parts = { name = [[top, left, height, width], ...] })".into()
            },
        )?;
        let sized = self
            .objects
            .iter()
            .all(|b| b.iter().all(|&v| v >= 0) && b[2] > 0 && b[3] > 0);
        let fits = self.objects.is_empty() || self.objects.len() == self.images.len();
        require(fits && sized, &self.name, || {
            format!(
                "objects gives {} boxes for {} images: one [top, left, height, width] per image (non-negative, height and width at least 1), or none",
                self.objects.len(),
                self.images.len()
            )
        })?;
        Ok(Box::new(CorrespondenceHook::new(self.clone())))
    }

    fn tags() -> &'static [TagDoc] {
        TAGS
    }
}
