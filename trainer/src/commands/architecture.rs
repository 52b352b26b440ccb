//! `zftrain analyze architecture`: Zeiler & Fergus's architecture
//! selection (section 4.1, Fig. 6) on one checkpoint or two side by side.
//! For each network: its layer-1 filters (each stretched on its own), the
//! strongest activation of chosen layer-2 maps over the probe images
//! projected to pixels (the same images for both), and per conv layer the
//! measures of the aliasing and dead-filters hooks, each beside its null:
//! the output power a stride folds back (and through shuffled taps), the
//! grid in layer 2's projections (the share of their variance between layer
//! 1's stride phases, and at period s + 1), filters
//! indistinguishable from noise, filters that never fire, the dominance of
//! the largest filter, and layer 1's frequency coverage as ratios to white
//! noise; as `architecture.png`, `architecture.md` and `architecture.csv`
//! in `--out`. docs/training.md says how to read them (the known-answer
//! tests are in `zftrain_deconv` and the hooks' tests).

use std::fmt::Write as _;
use std::path::Path;

use crate::commands::Run;
use anyhow::{Context, Result};
use image::RgbImage;
use zftrain_checkpoints::Checkpoint;
use zftrain_data::Dataset;
use zftrain_deconv::render::{filter_image, labelled_grid, stretch, GridLabels};
use zftrain_deconv::{MinerConfig, RenderConfig};
use zftrain_hooks::builtin::deconv_grid::layer_choices;
use zftrain_hooks::builtin::{
    AliasingConfig, AliasingHook, DeadFiltersConfig, DeadFiltersHook, Maps,
};
use zftrain_hooks::{mine_probe, HookContext, MemorySink};

use super::visualize::probe_folder;
use crate::config::RunConfig;
use crate::train::checkpointing::read_mean_image;
use crate::train::probe::LoaderProbe;
use crate::weights::load_model;
use clap::Args;
use std::path::PathBuf;

/// `zftrain analyze architecture`.
#[derive(Debug, Args)]
pub struct ArchitectureArgs {
    /// The (first) checkpoint folder.
    #[arg(long)]
    pub a: PathBuf,
    /// A second checkpoint to set beside it (for example AlexNet against ZFNet).
    #[arg(long)]
    pub b: Option<PathBuf>,
    /// Image folder of the probe images (its `val/` when it has one).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: architecture.png, architecture.md, architecture.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Probe images (0: the whole folder).
    #[arg(long, default_value_t = 64)]
    pub probe_images: usize,
    /// Feature maps of layer 2 projected.
    #[arg(long, default_value_t = 16)]
    pub maps: usize,
}

/// The CSV header of `architecture.csv`.
pub const CSV_HEADER: &str = "network,layer,stride,filters,aliasing,aliasing_null,grid,grid_null,structureless,dead,dominance,coverage_low,coverage_mid,coverage_high";

/// One conv layer's row (empty cells where a measure does not apply).
struct Row {
    layer: String,
    stride: i64,
    filters: usize,
    aliasing: Option<(f64, f64)>,
    grid: Option<(f64, f64)>,
    structureless: usize,
    dead: usize,
    dominance: f64,
    coverage: Option<[f64; 3]>,
}

/// One network's measures and pictures.
struct Measured {
    name: String,
    rows: Vec<Row>,
    figure: RgbImage,
}

/// Runs `analyze architecture`.
pub fn run(args: &ArchitectureArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut measured = vec![measure(&args.a, "A", args)?];
    if let Some(b) = &args.b {
        measured.push(measure(b, "B", args)?);
    }
    let figure = measured
        .iter()
        .map(|m| m.figure.clone())
        .reduce(|a, b| {
            zftrain_figures::stacked(
                &zftrain_figures::stacked(
                    &a,
                    &RgbImage::from_pixel(1, 12, image::Rgb([255, 255, 255])),
                ),
                &b,
            )
        })
        .expect("one network at least");
    let png = args.out.join("architecture.png");
    zftrain_hooks::builtin::files::write_png(&png, &figure).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (csv, md) = tables(&measured);
    for (name, text) in [("architecture.csv", csv), ("architecture.md", md.clone())] {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{md}");
    println!(
        "architecture: {} (figure), architecture.md, architecture.csv",
        png.display()
    );
    Ok(())
}

/// Loads the checkpoint at `dir` and measures it on the probe images.
fn measure(dir: &Path, tag: &str, args: &ArchitectureArgs) -> Result<Measured> {
    let ck =
        Checkpoint::open(dir).with_context(|| format!("opening checkpoint {}", dir.display()))?;
    let (model, info) = load_model(None, Some(dir), &Default::default())?;
    let mut config = RunConfig::load(None, &[])?;
    config.probe.images = args.probe_images;
    config.data.mean = info.mean.map(|x| x as f32);
    config.data.std = info.std.map(|x| x as f32);
    let mean_image = read_mean_image(&ck)?.map(std::sync::Arc::new);
    // The probe images as the network saw its validation images.
    let (resize, crop) = super::images::input_sizes(Some(&ck), &info)?;
    config.data.resize = mean_image.as_ref().map_or(resize, |m| m.side());
    config.data.crop = crop;
    let dataset = Dataset::image_folder(&probe_folder(&args.data))?;
    let probe = LoaderProbe::new(&config, &dataset, mean_image)?;
    let sink = MemorySink::default();
    let ctx = HookContext {
        net: &model.net,
        device: tch::Device::Cpu,
        replicas: &[],
        probe: &probe,
        train_probe: None,
        epoch: 0,
        step: 0,
        run_dir: &args.out,
        sink: &sink,
        metrics: Default::default(),
        shared: None,
        stop: None,
    };
    let name = format!("{tag}: {} ({})", model.net.arch().name, dir.display());
    let dead = DeadFiltersHook::new(DeadFiltersConfig::default()).measure(&ctx)?;
    let aliasing = AliasingHook::new(AliasingConfig {
        grid_maps: Maps::Count(args.maps),
        ..AliasingConfig::default()
    })
    .measure(&ctx)?;
    let arch = model.net.arch();
    let convs = arch.conv_indices();
    let rows = dead
        .iter()
        .zip(&convs)
        .enumerate()
        .map(|(i, (d, &index))| {
            let stride = match &arch.layers[index].kind {
                zftrain_model::LayerKind::Conv(c) => c.stride,
                _ => 1,
            };
            Row {
                layer: d.label.clone(),
                stride,
                filters: d.rms.len(),
                aliasing: aliasing
                    .layers
                    .iter()
                    .find(|l| l.label == d.label)
                    .map(|l| (l.aliasing, l.null)),
                grid: aliasing
                    .grid
                    .as_ref()
                    .filter(|g| g.label == d.label)
                    .map(|g| (g.contrast.grid, g.contrast.null)),
                structureless: d.structureless,
                dead: d.dead,
                dominance: d.dominance,
                coverage: (i == 0).then_some(aliasing.coverage),
            }
        })
        .collect();
    let figure = pictures(&ctx, &name, args.maps)?;
    Ok(Measured { name, rows, figure })
}

/// The network's row of the figure: its layer-1 filters beside the
/// projections of its layer-2 maps' strongest activations, under a title.
fn pictures(ctx: &HookContext<'_>, name: &str, maps: usize) -> Result<RgbImage> {
    let net = ctx.net;
    let first = net.arch().conv_indices()[0];
    let weight = net
        .weight(first)
        .context("the first conv layer has no weights")?;
    let render = RenderConfig::default();
    let filters = zftrain_figures::titled(
        &filter_image(
            weight,
            &RenderConfig {
                min_tile: 28,
                ..render.clone()
            },
        )?,
        "layer 1 filters",
    )?;
    let choices = layer_choices(net, &[2], &Maps::Count(maps), "architecture")?;
    let tops = mine_probe(
        ctx,
        &choices,
        MinerConfig {
            k: 1,
            ..MinerConfig::default()
        },
    )?;
    let top = &tops[0];
    let present = top.values.gt(0.0);
    let grid = labelled_grid(
        &stretch(&top.projections, render.stretch),
        Some(&present),
        &render,
        &GridLabels {
            header: "layer 2: strongest activation per map, projected".into(),
            maps: top.channels.iter().map(|c| format!("map {c}")).collect(),
            values: Vec::new(),
        },
    )?;
    let row = zftrain_deconv::render::side_by_side(&filters, &grid, 12);
    Ok(zftrain_figures::titled(&row, name)?)
}

/// `architecture.csv` and `architecture.md` of the measured networks.
fn tables(measured: &[Measured]) -> (String, String) {
    let cell = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    let mut csv = format!("{CSV_HEADER}\n");
    let mut md = String::from(
        "| network | layer | stride | filters | aliasing | aliasing null | grid | grid null | structureless | dead (never fire) | dominance | coverage low/mid/high |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for m in measured {
        for r in &m.rows {
            let cov = |i: usize| r.coverage.map(|c| c[i]);
            let cells = [
                r.layer.clone(),
                r.stride.to_string(),
                r.filters.to_string(),
                cell(r.aliasing.map(|a| a.0)),
                cell(r.aliasing.map(|a| a.1)),
                cell(r.grid.map(|g| g.0)),
                cell(r.grid.map(|g| g.1)),
                r.structureless.to_string(),
                r.dead.to_string(),
                format!("{:.2}", r.dominance),
            ];
            let coverage = [cell(cov(0)), cell(cov(1)), cell(cov(2))];
            let _ = writeln!(
                csv,
                "\"{}\",{},{}",
                m.name.replace('"', "'"),
                cells.join(","),
                coverage.join(",")
            );
            let coverage = if r.coverage.is_some() {
                coverage.join(" / ")
            } else {
                String::new()
            };
            let _ = writeln!(md, "| {} | {} | {coverage} |", m.name, cells.join(" | "));
        }
    }
    md.push_str(
        "\nAliasing: the share of a strided layer's stride-1 output power on the probe images outside its stride's Nyquist band (what the stride folds back); its null is the same through the filters with their taps shuffled. Above the null: the filters' structure pushes power past Nyquist (aliased); at it: no better than noise; below: smooth. Grid: the share of layer 2's projections' variance between the s x s pixel phases of layer 1's stride (about 1/M for noise with M pixels per phase, 0 for smooth projections); above its null (the same at period s + 1): a stride grid. Structureless: filters whose taps are indistinguishable from white noise (the paper's dead features); dead: filters that never fire on the probe images (0 at layer 1 by construction on mean-subtracted images). Dominance: largest filter RMS over the median. Coverage: layer 1's power in the bands below 1/6, 1/6 to 1/3 and above 1/3 cycles per pixel, as ratios to white noise's (white reads 1). See docs/training.md.\n",
    );
    (csv, md)
}

impl Run for ArchitectureArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        run(self).map(|()| 0)
    }
}
