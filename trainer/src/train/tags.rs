//! Every TensorBoard tag zftrain writes, with the line TensorBoard shows
//! on its card (the trainer's here, each hook's in its own file), and the custom-scalars layout that puts the run's curves in
//! the paper's order. `docs/tensorboard.md` lists the same table (a test
//! holds the two together, and another that every tag a run writes is
//! here).
//!
//! A pattern's `*` stands for one path segment (`conv3`, `probe2`), a
//! final `**` for the rest of the tag.

use std::path::Path;
use std::sync::OnceLock;

use zftrain_hooks::{HookSpec, TagDoc};

use zftrain_tensorboard::{BackgroundWriter, Category, Chart, Layout, TensorBoardError};

/// The trainer's own tags before the hooks': training, validation, data,
/// the run.
const TRAINER_TAGS: &[TagDoc] = &[
    ("train/loss", "Mean training loss (cross-entropy) of the epoch so far, on this node's rows."),
    ("train/top1", "Training top-1 accuracy of the epoch so far, a fraction from 0 to 1 (augmented images, dropout on)."),
    ("train/lr", "Learning rate of the latest step."),
    ("train/epoch", "Epochs done, fractional (2.5 = half-way through the third): reads the global step as epochs."),
    ("train/images_per_sec", "Training throughput since the previous logged step, images per second."),
    ("train/grad_norm", "L2 norm of the whole gradient at the logged step."),
    ("train/renorm_clipped", "Conv filters (all layers) that ZF's renormalization rescaled to train.renorm_radius after the logged step: many means the radius binds the filters' scale."),
    ("train/eta_hours", "Estimated time left in the run, hours, from the session's pace."),
    ("val/loss", "Validation loss (cross-entropy) over the whole validation set, at the epoch's end."),
    ("val/top1", "Validation top-1 accuracy, a fraction from 0 to 1 (center crop)."),
    ("val/top5", "Validation top-5 accuracy, a fraction from 0 to 1 (center crop)."),
    ("val/best_top1", "Best validation top-1 so far, a fraction from 0 to 1."),
    ("data/skipped_images", "Images that did not decode at this step, with their reasons."),
    ("data/skipped_images_total", "Images left out so far because they did not decode."),
    ("run/config", "The run's resolved configuration (TOML)."),
];

/// The tags of the hooks' dispatch, after the hooks' own.
const DISPATCH_TAGS: &[TagDoc] = &[
    (
        "hooks/seconds",
        "Time the hooks took at this event, seconds.",
    ),
    ("hooks/*/error", "Why the hook failed at this event."),
];

/// Every tag, `(pattern, description)`, in the order of
/// docs/tensorboard.md: the trainer's, then each built-in hook's as its
/// file declares them ([`HookSpec::tags`]), then the dispatch's.
pub fn tags() -> &'static [TagDoc] {
    static ALL: OnceLock<Vec<TagDoc>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = TRAINER_TAGS.to_vec();
        all.extend(HookSpec::tags());
        all.extend_from_slice(DISPATCH_TAGS);
        all
    })
}

/// A new event file in `dir` whose tags carry their descriptions, with the
/// custom-scalars layout: how every zftrain command opens TensorBoard.
pub fn open_writer(dir: &Path) -> Result<BackgroundWriter, TensorBoardError> {
    let tb = BackgroundWriter::create(dir)?;
    tb.set_descriptions(describe)?;
    tb.custom_scalars(layout())?;
    Ok(tb)
}

/// The description of `tag`: the first pattern of [`tags`] it matches.
pub fn describe(tag: &str) -> Option<&'static str> {
    tags()
        .iter()
        .find(|(pattern, _)| matches(pattern, tag))
        .map(|(_, d)| *d)
}

/// Whether `tag` matches `pattern` (`*` one segment, a final `**` the rest).
fn matches(pattern: &str, tag: &str) -> bool {
    let (mut p, mut t) = (pattern.split('/'), tag.split('/'));
    loop {
        match (p.next(), t.next()) {
            (Some("**"), Some(_)) => return true,
            (Some("*"), Some(seg)) if !seg.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The custom-scalars dashboard: training and validation first, then the
/// throughput, the dead filters of every layer in one chart, aliasing per
/// layer in one chart each kind, the analyses last.
pub fn layout() -> Layout {
    Layout {
        version: 0,
        category: vec![
            training(),
            pace(),
            dead_filters(),
            aliasing(),
            deconvnet(),
            analyses(),
        ],
    }
}

/// The "Training and validation" charts.
fn training() -> Category {
    Category::new(
        "Training and validation",
        vec![
            Chart::lines("loss", &["^train/loss$", "^val/loss$"]),
            Chart::lines(
                "top-1 (%)",
                &["^train/top1$", "^val/top1$", "^val/best_top1$"],
            ),
            Chart::lines("top-5 (fraction)", &["^val/top5$"]),
            Chart::lines("learning rate", &["^train/lr$"]),
        ],
    )
}

/// The "Pace" charts.
fn pace() -> Category {
    Category::new(
        "Pace",
        vec![
            Chart::lines("images/s", &["^train/images_per_sec$"]),
            Chart::lines("hours left", &["^train/eta_hours$"]),
            Chart::lines("epoch", &["^train/epoch$"]),
            Chart::lines("gradient norm", &["^train/grad_norm$"]),
            Chart::lines("hook seconds", &["^hooks/seconds$"]),
        ],
    )
}

/// The "Dead filters" charts.
fn dead_filters() -> Category {
    Category::new(
        "Dead filters",
        vec![
            Chart::lines(
                "dead fraction, every layer",
                &[r"^filters/[^/]+/dead_fraction$"],
            ),
            Chart::lines(
                "structureless filters, every layer",
                &[r"^filters/[^/]+/structureless$"],
            ),
            Chart::lines("dominance, every layer", &[r"^filters/[^/]+/dominance$"]),
        ],
    )
}

/// The "Aliasing" charts.
fn aliasing() -> Category {
    Category::new(
        "Aliasing",
        vec![
            Chart::lines(
                "folded-back power and its null, every strided layer",
                &[r"^aliasing/[^/]+/aliasing(_null)?$"],
            ),
            Chart::lines("grid and its null", &[r"^aliasing/[^/]+/grid(_null)?$"]),
            Chart::lines(
                "layer-1 coverage against white (1)",
                &[r"^aliasing/[^/]+/coverage_(low|mid|high)$"],
            ),
            Chart::lines(
                "LRN divisor spread (cv), every LRN layer",
                &[r"^lrn/[^/]+/denominator_cv$"],
            ),
            Chart::lines(
                "filters rescaled by renormalization",
                &["^train/renorm_clipped$"],
            ),
        ],
    )
}

/// The "Deconvnet" charts.
fn deconvnet() -> Category {
    Category::new(
        "Deconvnet",
        vec![
            Chart::lines(
                "projections tracing their patches' edges, every layer",
                &[r"^deconv/[^/]+/edge_agreement$"],
            ),
            Chart::lines(
                "projection energy at the scale of shapes, every layer",
                &[r"^deconv/[^/]+/coarse_energy$"],
            ),
        ],
    )
}

/// The "Analyses" charts.
fn analyses() -> Category {
    Category::new(
        "Analyses",
        vec![
            Chart::lines("invariance", &[r"^invariance/[^/]+/[^/]+_mean$"]),
            Chart::lines("occlusion", &[r"^occlusion/[^/]+/min_probability$"]),
            Chart::lines("correspondence", &[r"^correspondence/"]),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_one_segment_per_star_and_the_rest_for_a_final_double_star() {
        assert!(matches("filters/*/dead", "filters/conv3/dead"));
        assert!(!matches("filters/*/dead", "filters/conv3/dead_fraction"));
        assert!(!matches("filters/*/dead", "filters/dead"));
        assert!(matches("plugins/**", "plugins/stats/conv1/rms"));
        assert!(!matches("plugins/**", "plugins"));
        assert!(describe("aliasing/conv1/coverage_high")
            .unwrap()
            .contains("above 1/3"));
        assert_eq!(describe("aliasing/conv1/high"), None);
        assert!(describe("filters/conv2/rms").unwrap().contains("RMS"));
        assert_eq!(describe("made/up"), None);
    }

    #[test]
    fn every_layout_pattern_draws_a_described_tag() {
        let examples = [
            "train/loss",
            "val/loss",
            "train/top1",
            "val/top1",
            "val/best_top1",
            "val/top5",
            "train/lr",
            "train/images_per_sec",
            "train/eta_hours",
            "train/epoch",
            "train/grad_norm",
            "hooks/seconds",
            "filters/conv2/dead_fraction",
            "filters/conv2/structureless",
            "filters/conv2/dominance",
            "aliasing/conv2/aliasing",
            "aliasing/conv2/grid",
            "aliasing/conv1/coverage_mid",
            "lrn/norm1/denominator_cv",
            "train/renorm_clipped",
            "deconv/conv3/edge_agreement",
            "deconv/conv3/coarse_energy",
            "invariance/scale/layer7_mean",
            "occlusion/image0/min_probability",
            "correspondence/eye/layer5",
        ];
        for category in layout().category {
            for chart in category.chart {
                for pattern in chart.multiline.unwrap().tag {
                    let re = regex_lite::Regex::new(&pattern).unwrap();
                    let hit = examples.iter().find(|t| re.is_match(t));
                    let hit = hit.unwrap_or_else(|| panic!("{pattern} draws none of the tags"));
                    assert!(describe(hit).is_some(), "{hit}");
                }
            }
        }
    }
}
