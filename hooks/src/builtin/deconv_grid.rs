//! The Deconvnet grids of ZF Fig. 2: at each scheduled epoch, the top-k
//! activations of chosen feature maps of chosen conv layers over the probe
//! set, projected to pixel space, beside their image patches.
//!
//! Outputs, for each layer `convL` at epoch `E`:
//! - TensorBoard images `deconv/convL/projections` and `deconv/convL/patches`
//!   (at the global step);
//! - `hooks/<name>/epoch-EEE/convL.png`: projections left, patches right;
//! - the first conv layer's filters, each stretched on its own (Fig. 6):
//!   TensorBoard image `filters/conv1` and `hooks/<name>/epoch-EEE/conv1-filters.png`;
//! - `hooks/<name>/epoch-EEE/convL.safetensors`: `values` `[M, k]` f32
//!   (activations, strongest first, `-inf` where the probe set had too few
//!   images), `images` `[M, k]` i64 (probe-set indices, `-1` where empty),
//!   `ys`, `xs` `[M, k]` i64 (unit positions in the feature map), `channels`
//!   `[M]` i64 (the feature maps), `projections` and `patches`
//!   `[M, k, 3, R, R]` f16 (half the disk of f32; cropped to the receptive
//!   field of side `R`; patches normalized as the network saw them, NaN
//!   outside the image). Tiles of units that never fired are left empty;
//! - how well the projections trace their patches' edges
//!   (`zftrain_deconv::agreement`): scalar `deconv/convL/edge_agreement` and
//!   `hooks/<name>/epoch-EEE/edge-agreement.csv`
//!   (`layer,matched,other_map,coarse_energy,tiles`: the mean correlation
//!   with the tile's own patch and with another map's, and the share of the
//!   projections' energy at the scale of shapes rather than of pixels:
//!   scalar `deconv/convL/coarse_energy`).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use zftrain_deconv::render::{
    denormalize, filter_image, labelled_grid, side_by_side, stretch, GridLabels,
};
use zftrain_deconv::{edge_agreement, LayerChoice, LayerTop, MinerConfig, RenderConfig};
use zftrain_model::Network;

use super::files::{write_png, write_tensors, write_text};
use crate::kind::{require, HookKind, TagDoc};
use crate::{mine_probe, Control, HookContext, HookError, Schedule};

/// Which feature maps of a layer: the first `n` of evenly spaced ones, or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Maps {
    /// This many maps, evenly spaced over the layer (all when larger).
    Count(usize),
    /// These maps.
    List(Vec<i64>),
}

/// Settings of the Deconvnet grid hook (`[[hooks]] kind = "deconv"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeconvGridConfig {
    /// Hook name (folder and state key).
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Conv layers, 1-based (empty: all).
    pub layers: Vec<usize>,
    /// Feature maps per layer.
    pub maps: Maps,
    /// Activations per feature map.
    pub k: usize,
    /// At most this many of them per image.
    pub per_image: usize,
    /// Projections computed together at most.
    pub max_batch: usize,
    /// Display settings.
    pub render: RenderConfig,
    /// Also save the raw tensors (safetensors) next to the PNG files.
    pub save_tensors: bool,
    /// Stop training if this hook fails.
    pub required: bool,
}

impl Default for DeconvGridConfig {
    fn default() -> Self {
        DeconvGridConfig {
            name: "deconv".into(),
            schedule: Schedule::default(),
            layers: Vec::new(),
            maps: Maps::Count(16),
            k: 9,
            per_image: 1,
            max_batch: 32,
            render: RenderConfig::default(),
            save_tensors: true,
            required: false,
        }
    }
}

/// The chosen maps of a layer with `available` maps.
pub fn choose_maps(maps: &Maps, available: i64) -> Vec<i64> {
    match maps {
        Maps::List(v) => v.clone(),
        Maps::Count(n) => {
            let n = (*n as i64).clamp(1, available.max(1));
            (0..n).map(|i| i * available / n).collect()
        }
    }
}

/// The layer choices of a config for `net`.
pub fn layer_choices(
    net: &Network,
    layers: &[usize],
    maps: &Maps,
    hook: &str,
) -> Result<Vec<LayerChoice>, HookError> {
    let arch = net.arch();
    let convs = arch.conv_indices();
    let reversible = |l: usize| match convs.get(l.wrapping_sub(1)) {
        Some(&index) => zftrain_deconv::check_reversible(arch, index),
        None => Ok(()),
    };
    // All conv layers the Deconvnet can reach by default; one asked for by
    // number that it cannot is an error that says why.
    let wanted: Vec<usize> = if layers.is_empty() {
        (1..=convs.len())
            .filter(|&l| reversible(l).is_ok())
            .collect()
    } else {
        for &l in layers {
            reversible(l).map_err(|e| HookError::Config {
                hook: hook.into(),
                message: format!("layers: conv{l}: {e}"),
            })?;
        }
        layers.to_vec()
    };
    if wanted.is_empty() {
        let why = convs
            .first()
            .and_then(|&i| zftrain_deconv::check_reversible(arch, i).err())
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(HookError::Config {
            hook: hook.into(),
            message: format!(
                "{} has no conv layer the Deconvnet can project{why}",
                arch.name
            ),
        });
    }
    wanted
        .into_iter()
        .map(|l| {
            let &index = convs
                .get(l.wrapping_sub(1))
                .ok_or_else(|| HookError::Config {
                    hook: hook.into(),
                    message: format!(
                        "layers: conv{l} does not exist ({} has {} conv layers)",
                        arch.name,
                        convs.len()
                    ),
                })?;
            let available = match &arch.layers[index].kind {
                zftrain_model::LayerKind::Conv(c) => c.out_channels,
                _ => unreachable!("conv_indices lists conv layers"),
            };
            Ok(LayerChoice {
                conv: l - 1,
                channels: choose_maps(maps, available),
            })
        })
        .collect()
}

/// The hook.
#[derive(Debug)]
pub struct DeconvGridHook {
    config: DeconvGridConfig,
}

impl DeconvGridHook {
    /// A hook with `config`.
    pub fn new(config: DeconvGridConfig) -> DeconvGridHook {
        DeconvGridHook { config }
    }

    /// Mines the probe set and writes the grids for `ctx.epoch`.
    pub fn run(&self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        let c = &self.config;
        let choices = layer_choices(ctx.net, &c.layers, &c.maps, &c.name)?;
        let miner_config = MinerConfig {
            k: c.k,
            per_image: c.per_image,
            max_batch: c.max_batch,
            project: true,
        };
        let tops = mine_probe(ctx, &choices, miner_config)?;
        let dir = ctx
            .output_dir(&c.name)?
            .join(format!("epoch-{:03}", ctx.epoch));
        std::fs::create_dir_all(&dir).map_err(HookError::io(&dir))?;
        let (mean, std) = ctx.probe.normalization();
        let step = ctx.step as i64;
        let convs = ctx.net.arch().conv_indices();
        write_first_filters(ctx, &dir, &c.render)?;
        let mut agreement = String::from(AGREEMENT_HEADER);
        for top in &tops {
            let label = ctx.net.arch().layers[convs[top.conv]].label.clone();
            // Units that never fired (dead maps, too few images) stay empty.
            let present = top.values.gt(0.0);
            let k = top.values.size().get(1).copied().unwrap_or(0);
            let labels = grid_labels(top)?;
            let a = edge_agreement(&top.projections, &top.patches, &present);
            ctx.sink
                .scalar(&format!("deconv/{label}/edge_agreement"), step, a.matched)?;
            ctx.sink.scalar(
                &format!("deconv/{label}/coarse_energy"),
                step,
                a.coarse_energy,
            )?;
            agreement.push_str(&format!(
                "{label},{:.4},{:.4},{:.4},{}\n",
                a.matched, a.other_map, a.coarse_energy, a.tiles
            ));
            let proj = labelled_grid(
                &stretch(&top.projections, c.render.stretch),
                Some(&present),
                &c.render,
                &GridLabels {
                    header: format!(
                        "{label}, epoch {}: top {k} per map, projected to pixels (activation in each tile)",
                        ctx.epoch
                    ),
                    ..labels.clone()
                },
            )?;
            let patches = labelled_grid(
                &denormalize(&top.patches, mean, std),
                Some(&present),
                &c.render,
                &GridLabels {
                    header: format!("{label}, epoch {}: the image patches under them", ctx.epoch),
                    values: Vec::new(),
                    ..labels
                },
            )?;
            ctx.sink
                .image(&format!("deconv/{label}/projections"), step, &proj)?;
            ctx.sink
                .image(&format!("deconv/{label}/patches"), step, &patches)?;
            write_png(
                &dir.join(format!("{label}.png")),
                &side_by_side(&proj, &patches, 12),
            )?;
            if c.save_tensors {
                save_top(&dir.join(format!("{label}.safetensors")), top)?;
            }
        }
        write_text(&dir.join("edge-agreement.csv"), &agreement)?;
        Ok(Control::Continue)
    }
}

/// A layer's top list with its projections and patches, as
/// `<layer>.safetensors` holds it (pictures in f16: half the disk of f32,
/// ample for pictures).
fn save_top(path: &std::path::Path, top: &LayerTop) -> Result<(), HookError> {
    let channels = Tensor::from_slice(&top.channels);
    let tensors = vec![
        ("values".to_string(), top.values.shallow_clone()),
        ("images".to_string(), top.images.shallow_clone()),
        ("ys".to_string(), top.ys.shallow_clone()),
        ("xs".to_string(), top.xs.shallow_clone()),
        ("channels".to_string(), channels),
        (
            "projections".to_string(),
            top.projections.to_kind(Kind::Half),
        ),
        ("patches".to_string(), top.patches.to_kind(Kind::Half)),
    ];
    write_tensors(path, &tensors)
}

/// The columns of `edge-agreement.csv`.
pub const AGREEMENT_HEADER: &str = "layer,matched,other_map,coarse_energy,tiles\n";

/// Per map its caption (`map 17`) and per tile its activation (three
/// significant digits; none where the unit never fired); no header.
fn grid_labels(top: &zftrain_deconv::LayerTop) -> Result<GridLabels, HookError> {
    let values = Vec::<f32>::try_from(top.values.to_kind(Kind::Float).flatten(0, -1))?;
    let k = top.values.size().get(1).copied().unwrap_or(0).max(1) as usize;
    Ok(GridLabels {
        header: String::new(),
        maps: top.channels.iter().map(|c| format!("map {c}")).collect(),
        values: values
            .chunks(k)
            .map(|row| {
                row.iter()
                    .map(|&v| (v > 0.0).then(|| significant(v as f64)))
                    .collect()
            })
            .collect(),
    })
}

/// `v` with three significant digits (`0.0123`, `4.56`, `789`, `1.23e4`).
fn significant(v: f64) -> String {
    match v.abs() {
        a if a >= 1e4 => format!("{v:.2e}"),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// The first conv layer's filters as the paper's Fig. 6 shows them:
/// TensorBoard image `filters/<label>` and `<dir>/<label>-filters.png`.
fn write_first_filters(
    ctx: &HookContext<'_>,
    dir: &std::path::Path,
    render: &RenderConfig,
) -> Result<(), HookError> {
    let arch = ctx.net.arch();
    let Some(&first) = arch.conv_indices().first() else {
        return Ok(());
    };
    let Some(weight) = ctx.net.weight(first) else {
        return Ok(());
    };
    let label = &arch.layers[first].label;
    let config = RenderConfig {
        min_tile: 28,
        ..render.clone()
    };
    let image = zftrain_figures::titled(
        &filter_image(weight, &config)?,
        &format!("{label} filters, epoch {}", ctx.epoch),
    )
    .map_err(zftrain_deconv::DeconvError::from)?;
    ctx.sink
        .image(&format!("filters/{label}"), ctx.step as i64, &image)?;
    write_png(&dir.join(format!("{label}-filters.png")), &image)
}

impl super::Needs for DeconvGridHook {
    fn needs(&self, ctx: &HookContext<'_>) -> Result<Vec<crate::ProbeNeed>, HookError> {
        let c = &self.config;
        Ok(vec![crate::ProbeNeed::Top {
            choices: layer_choices(ctx.net, &c.layers, &c.maps, &c.name)?,
            k: c.k,
            per_image: c.per_image,
        }])
    }
}

scheduled_hook!(DeconvGridHook);

/// The tags the hook writes (docs/tensorboard.md lists them).
const TAGS: &[TagDoc] = &[
    ("deconv/*/projections", "Top-9 activations of chosen feature maps projected to pixels by the Deconvnet (ZF Fig. 2), 3x3 per map."),
    ("deconv/*/patches", "The image patches under those top-9 activations, same layout as the projections."),
    ("deconv/*/coarse_energy", "Share of the projections' energy that is at the scale of shapes (kept by a 1.5-pixel blur), not pixel noise: near 0 noise, near 1 shapes."),
    ("deconv/*/edge_agreement", "Mean correlation between each projection's gradient magnitude and its patch's: near 1 when projections trace their patches' edges."),
    ("filters/*", "The first conv layer's filters, each contrast-stretched on its own (ZF Fig. 6 a-b)."),
];

impl HookKind for DeconvGridConfig {
    fn build(&self) -> Result<Box<dyn crate::Hook>, HookError> {
        require(
            self.k > 0 && self.per_image > 0 && self.max_batch > 0,
            &self.name,
            || "k, per_image and max_batch must be at least 1".into(),
        )?;
        Ok(Box::new(DeconvGridHook::new(self.clone())))
    }

    fn tags() -> &'static [TagDoc] {
        TAGS
    }
}
