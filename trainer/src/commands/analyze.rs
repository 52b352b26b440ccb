//! `zftrain analyze invariance|occlusion|correspondence`: Zeiler & Fergus's
//! analyses (section 4) of a checkpoint or imported weights on image files.
//! Every command writes its raw numbers (CSV and JSON), its pictures (PNG)
//! and TensorBoard events into `--out`, and prints a short summary.

use std::path::{Path, PathBuf};

use crate::commands::Run;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use tch::Tensor;
use zftrain_analyses::correspondence::{
    correspondence_with_progress as run_correspondence, CorrespondenceConfig, Part, PartBox,
};
use zftrain_analyses::invariance::{invariance_with_progress as run_invariance, InvarianceConfig};
use zftrain_analyses::occlusion::{
    occlusion_with_progress as run_occlusion, positions as occlusion_positions, OcclusionConfig,
    OcclusionMap,
};
use zftrain_analyses::plot::invariance_figure;
use zftrain_analyses::render::class_color;
use zftrain_analyses::report::{
    correspondence_tables, invariance_csv, occlusion_csv, occlusion_figure,
};
use zftrain_data::rng::SplitMix64;
use zftrain_data::Transform;
use zftrain_deconv::render::denormalize;
use zftrain_tensorboard::BackgroundWriter;

use super::images::{eval_transform, load_image, load_on, resolve_class};
use crate::cli::{ArchArgs, DeviceArgs, WeightsSource};
use crate::commands::architecture::ArchitectureArgs;
use crate::train::hooks::TbSink;
use crate::train::ticker::Ticker;
use crate::weights::{Model, WeightsInfo};
use clap::Args;

use crate::commands::subcommands;

/// `zftrain analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Which analysis.
    #[command(subcommand)]
    pub command: AnalyzeCommand,
}

subcommands! {
    /// `zftrain analyze` subcommands.
    pub enum AnalyzeCommand {
        /// Feature distances (layers 1 and 7) and class probability under translation, scaling and rotation.
        Invariance(InvarianceArgs),
        /// A grey square slid over each image: layer-5 activation, class probability, top class per position.
        Occlusion(OcclusionArgs),
        /// Occluding the same part in several images: how consistently the features change (Table 1).
        Correspondence(CorrespondenceArgs),
        /// Architecture selection (section 4.1, Fig. 6): layer-1 filters, layer-2 projections and a per-layer table of aliasing, grid, structureless, never-firing and dominating filters and layer 1's frequency coverage, each beside its null, for one checkpoint or two side by side.
        Architecture(ArchitectureArgs),
    }
}

/// What every analysis takes.
#[derive(Debug, Args)]
pub struct AnalysisCommon {
    /// The architecture and its options.
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Where the weights come from.
    #[command(flatten)]
    pub source: WeightsSource,
    /// Output folder (CSV, JSON, PNG, TensorBoard events).
    #[arg(long)]
    pub out: PathBuf,
    /// The device.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Images per forward.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// A progress line every this many seconds (0: after every batch) and
    /// a last line with the time taken.
    #[arg(long, default_value_t = 60.0)]
    pub log_every_s: f64,
}

/// The images an analysis looks at, with their classes.
#[derive(Debug, Args)]
pub struct LabelledImages {
    /// Image files (repeat the flag).
    #[arg(long = "image", required = true)]
    pub files: Vec<PathBuf>,
    /// The class of each image, by name or index, in image order (default:
    /// the top class of the original image).
    #[arg(long = "label")]
    pub labels: Vec<String>,
}

/// `zftrain analyze invariance`.
#[derive(Debug, Args)]
pub struct InvarianceArgs {
    /// What every analysis takes.
    #[command(flatten)]
    pub common: AnalysisCommon,
    /// The images and their classes.
    #[command(flatten)]
    pub images: LabelledImages,
    /// Vertical translations in pixels: FROM:TO:STEP or a comma list.
    #[arg(long, default_value = "-60:60:10", allow_hyphen_values = true)]
    pub translations: String,
    /// Scale factors: FROM:TO:STEP or a comma list.
    #[arg(long, default_value = "1:1.8:0.1")]
    pub scales: String,
    /// Rotations in degrees: FROM:TO:STEP or a comma list.
    #[arg(long, default_value = "0:350:10")]
    pub rotations: String,
}

/// `zftrain analyze occlusion`.
#[derive(Debug, Args)]
pub struct OcclusionArgs {
    /// What every analysis takes.
    #[command(flatten)]
    pub common: AnalysisCommon,
    /// The images and their classes.
    #[command(flatten)]
    pub images: LabelledImages,
    /// Side of the grey square in pixels of the 224x224 input.
    #[arg(long, default_value_t = 27)]
    pub size: i64,
    /// Step between square positions in pixels.
    #[arg(long, default_value_t = 7)]
    pub stride: i64,
    /// The conv layer whose strongest feature map is followed.
    #[arg(long, default_value_t = 5)]
    pub layer: usize,
}

/// `zftrain analyze correspondence`.
#[derive(Debug, Args)]
pub struct CorrespondenceArgs {
    /// What every analysis takes.
    #[command(flatten)]
    pub common: AnalysisCommon,
    /// JSON: {"images": [files], "parts": {"name": [[top, left, height,
    /// width] per image]}, "coordinates": "original" (default; pixels of
    /// the image files) or "input" (pixels of the 224x224 input)}; files
    /// relative to the JSON file.
    #[arg(long)]
    pub parts: PathBuf,
    /// Layers compared (1, 5, 7), comma-separated.
    #[arg(long, default_value = "5,7")]
    pub layers: String,
    /// Draws of randomly placed boxes.
    #[arg(long, default_value_t = 5)]
    pub random_draws: usize,
    /// Seed of the random boxes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The weights on their device, their description and the input transform.
struct Loaded {
    model: Model,
    info: WeightsInfo,
    transform: Transform,
    tb: BackgroundWriter,
}

impl Loaded {
    fn open(common: &AnalysisCommon) -> Result<Loaded> {
        let (model, info, _) = load_on(&common.source, &common.arch, &common.device)?;
        let transform = eval_transform(
            common.source.checkpoint.as_deref(),
            &info,
            zftrain_data::Augment::Eval,
        )?;
        std::fs::create_dir_all(&common.out)
            .with_context(|| format!("creating {}", common.out.display()))?;
        let tb = crate::train::tags::open_writer(&common.out)?;
        Ok(Loaded {
            model,
            info,
            transform,
            tb,
        })
    }

    fn classes(&self) -> i64 {
        self.info.config.classes
    }

    fn class_name(&self, class: i64) -> String {
        self.info
            .class_names
            .as_ref()
            .and_then(|n| n.get(class as usize).cloned())
            .unwrap_or_else(|| format!("class {class}"))
    }

    /// The images as a `[N, 3, 224, 224]` batch and their classes.
    fn images(&self, files: &[PathBuf], labels: &[String]) -> Result<(Tensor, Vec<Option<i64>>)> {
        if !labels.is_empty() && labels.len() != files.len() {
            bail!(
                "{} --label flags for {} --image flags: give one per image, or none",
                labels.len(),
                files.len()
            );
        }
        let images = files
            .iter()
            .map(|p| load_image(&self.transform, p))
            .collect::<Result<Vec<_>>>()?;
        let classes = (0..files.len())
            .map(|i| {
                labels
                    .get(i)
                    .map(|l| resolve_class(l, self.info.class_names.as_deref(), self.classes()))
                    .transpose()
                    .with_context(|| format!("--label for {}", files[i].display()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((Tensor::stack(&images, 0), classes))
    }

    /// `[3, H, W]` normalized input -> displayable pixels.
    fn display(&self, image: &Tensor) -> Tensor {
        let mean = self.transform.mean;
        let std = self.transform.std;
        denormalize(image, mean, std)
    }
}

/// `FROM:TO:STEP` or `a,b,c`.
fn parse_values(flag: &str, text: &str) -> Result<Vec<f64>> {
    let bad =
        || anyhow::anyhow!("--{flag} '{text}': FROM:TO:STEP or a comma-separated list of numbers");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() == 3 {
        let v: Vec<f64> = parts
            .iter()
            .map(|p| p.trim().parse().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        let (from, to, step) = (v[0], v[1], v[2]);
        if step.is_nan() || step <= 0.0 || to < from {
            bail!("--{flag} '{text}': STEP must be positive and TO at least FROM");
        }
        let n = ((to - from) / step + 1e-9).floor() as i64;
        if n > 10_000 {
            bail!("--{flag} '{text}' gives more than 10,000 values");
        }
        return Ok((0..=n).map(|i| from + step * i as f64).collect());
    }
    text.split(',')
        .map(|p| p.trim().parse().map_err(|_| bad()))
        .collect()
}

/// Writes `text` at `path` atomically (the hooks' writer).
fn write_text(path: &Path, text: &str) -> Result<()> {
    zftrain_hooks::builtin::files::write_text(path, text)
        .with_context(|| format!("writing {}", path.display()))
}

fn write_png(path: &Path, image: &image::RgbImage) -> Result<()> {
    zftrain_hooks::builtin::files::write_png(path, image).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs `analyze invariance`.
pub fn invariance(args: &InvarianceArgs) -> Result<()> {
    let l = Loaded::open(&args.common)?;
    let (images, classes) = l.images(&args.images.files, &args.images.labels)?;
    let config = InvarianceConfig {
        translations: parse_values("translations", &args.translations)?,
        scales: parse_values("scales", &args.scales)?,
        rotations: parse_values("rotations", &args.rotations)?,
        batch_size: args.common.batch_size,
    };
    let start = std::time::Instant::now();
    let total = args.images.files.len() * config.warps().len();
    let mut ticker = Ticker::new("invariance", total, args.common.log_every_s);
    let points = run_invariance(&l.model.net, &images, &classes, &config, &mut |n| {
        ticker.add(n)
    })?;
    ticker.finish();
    let seconds = start.elapsed().as_secs_f64();
    let names: Vec<String> = args
        .images
        .files
        .iter()
        .map(|p| {
            // The last two path components: class folders tell images apart.
            let tail: Vec<String> = p
                .components()
                .rev()
                .take(2)
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("/")
        })
        .collect();
    let csv = invariance_csv(&points, &names);
    for p in &points {
        // TensorBoard curves: the step is the amount (scale in percent).
        let step = match p.warp.kind() {
            "scale" => (p.warp.amount() * 100.0).round() as i64,
            _ => p.warp.amount().round() as i64,
        };
        let base = format!("invariance/{}/image{}", p.warp.kind(), p.image);
        l.tb.scalar(&format!("{base}/layer1"), step, p.layer1)?;
        l.tb.scalar(&format!("{base}/layer7"), step, p.layer7)?;
        l.tb.scalar(&format!("{base}/probability"), step, p.probability)?;
    }
    let out = &args.common.out;
    write_text(&out.join("invariance.csv"), &csv)?;
    write_text(
        &out.join("invariance.json"),
        &serde_json::to_string_pretty(&points)?,
    )?;
    let figure = invariance_figure(&points, &names, Some(&l.display(&images.get(0))))?;
    write_png(&out.join("invariance.png"), &figure)?;
    zftrain_hooks::builtin::invariance::write_summaries(&TbSink(&l.tb), 0, &points, &figure)?;
    l.tb.flush()?;
    println!(
        "invariance: {} images x {} transformations in {seconds:.1} s: {}/invariance.png and .csv (distances relative to the original's feature norm)",
        args.images.files.len(),
        config.warps().len(),
        out.display()
    );
    Ok(())
}

/// One image's entry in occlusion.json.
fn occlusion_record(
    file: &Path,
    m: &OcclusionMap,
    l: &Loaded,
    config: &OcclusionConfig,
    seconds: f64,
) -> serde_json::Value {
    let mut legend: Vec<i64> = m.top_class.clone();
    legend.sort_unstable();
    legend.dedup();
    serde_json::json!({
        "file": file.display().to_string(),
        "class": m.class,
        "class_name": l.class_name(m.class),
        "layer": config.layer,
        "feature_map": m.channel,
        "strongest_unit": [m.unit.0, m.unit.1],
        "unoccluded_probability": m.base_probability,
        "unoccluded_activation": m.base_activation,
        "min_probability": m.probability.iter().cloned().fold(f64::INFINITY, f64::min),
        "positions": [m.rows, m.cols],
        "square": config.size,
        "stride": config.stride,
        "seconds": seconds,
        "class_map_legend": legend.iter().map(|&c| {
            let [r, g, b] = class_color(c);
            serde_json::json!({"class": c, "name": l.class_name(c), "color": format!("#{r:02x}{g:02x}{b:02x}")})
        }).collect::<Vec<_>>(),
    })
}

/// Runs `analyze occlusion`.
pub fn occlusion(args: &OcclusionArgs) -> Result<()> {
    let l = Loaded::open(&args.common)?;
    let (images, classes) = l.images(&args.images.files, &args.images.labels)?;
    let config = OcclusionConfig {
        size: args.size,
        stride: args.stride,
        layer: args.layer,
        batch_size: args.common.batch_size,
        ..OcclusionConfig::default()
    };
    let out = &args.common.out;
    let mut summary = Vec::new();
    let total = (0..args.images.files.len())
        .map(|i| occlusion_positions(&images.get(i as i64), &config))
        .sum();
    let mut ticker = Ticker::new("occlusion", total, args.common.log_every_s);
    for (i, file) in args.images.files.iter().enumerate() {
        let start = std::time::Instant::now();
        let image = images.get(i as i64);
        let m = run_occlusion(&l.model.net, &image, classes[i], &config, &mut |n| {
            ticker.add(n)
        })
        .with_context(|| format!("occluding {}", file.display()))?;
        let seconds = start.elapsed().as_secs_f64();
        let csv = occlusion_csv(&m);
        write_text(&out.join(format!("occlusion-{i}.csv")), &csv)?;
        let figure = occlusion_figure(&m, &l.display(&image), config.size, config.layer, &|c| {
            l.class_name(c)
        })?;
        write_png(&out.join(format!("occlusion-{i}.png")), &figure)?;
        zftrain_hooks::builtin::occlusion::write_summaries(
            &TbSink(&l.tb),
            0,
            &format!("image{i}"),
            &m,
            &figure,
        )?;
        summary.push(occlusion_record(file, &m, &l, &config, seconds));
        println!(
            "occlusion {}: {} ({:.1}% unoccluded, {:.1}% at worst), layer-{} map {}, {}x{} positions in {seconds:.1} s -> occlusion-{i}.png",
            file.display(),
            l.class_name(m.class),
            100.0 * m.base_probability,
            100.0 * m.probability.iter().cloned().fold(f64::INFINITY, f64::min),
            config.layer,
            m.channel,
            m.rows,
            m.cols
        );
    }
    ticker.finish();
    write_text(
        &out.join("occlusion.json"),
        &serde_json::to_string_pretty(&summary)?,
    )?;
    l.tb.flush()?;
    println!(
        "panels of each PNG: input | layer-{} map activation | class probability | most probable class | the map's projection",
        config.layer
    );
    Ok(())
}

/// The `--parts` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartsFile {
    images: Vec<PathBuf>,
    parts: std::collections::BTreeMap<String, Vec<[i64; 4]>>,
    /// One box per image around the whole object: the random boxes are
    /// drawn inside it.
    #[serde(default)]
    objects: Option<Vec<[i64; 4]>>,
    #[serde(default)]
    coordinates: Option<String>,
}

/// The `--parts` file, its image files (checked to exist) and whether its
/// boxes are in the files' pixels (`true`) or the network's input.
fn read_parts_file(args: &CorrespondenceArgs) -> Result<(PartsFile, Vec<PathBuf>, bool)> {
    let text = std::fs::read_to_string(&args.parts)
        .with_context(|| format!("reading --parts {}", args.parts.display()))?;
    let spec: PartsFile = serde_json::from_str(&text)
        .with_context(|| format!("--parts {}: not a parts file", args.parts.display()))?;
    let base = args.parts.parent().unwrap_or(Path::new("."));
    let files: Vec<PathBuf> = spec.images.iter().map(|p| base.join(p)).collect();
    if files.len() < 2 {
        bail!(
            "--parts {}: correspondence needs at least two images, got {}",
            args.parts.display(),
            files.len()
        );
    }
    for f in &files {
        if !f.is_file() {
            bail!(
                "--parts {}: image {} does not exist",
                args.parts.display(),
                f.display()
            );
        }
    }
    let original = match spec.coordinates.as_deref() {
        None | Some("original") => true,
        Some("input") => false,
        Some(other) => bail!(
            "--parts {}: coordinates '{other}' (original or input)",
            args.parts.display()
        ),
    };
    Ok((spec, files, original))
}

/// Each part's boxes in the network's input: mapped through the resize and
/// centre crop when they are in the files' pixels; one that leaves the
/// crop is an error naming it.
fn parts_in_input(
    args: &CorrespondenceArgs,
    l: &Loaded,
    spec: &PartsFile,
    files: &[PathBuf],
    original: bool,
) -> Result<Vec<Part>> {
    let crop = l.transform.crop as i64;
    let mut parts = Vec::new();
    for (name, boxes) in &spec.parts {
        if boxes.len() != files.len() {
            bail!(
                "--parts {}: part '{name}' has {} boxes for {} images",
                args.parts.display(),
                boxes.len(),
                files.len()
            );
        }
        let mut mapped = Vec::new();
        for (i, b) in boxes.iter().enumerate() {
            let [t, left, h, w] = *b;
            let m = box_in_input(&l.transform, &files[i], *b, original)?;
            if m.0 < 0 || m.1 < 0 || m.0 + m.2 > crop || m.1 + m.3 > crop {
                bail!(
                    "--parts {}: part '{name}' in {} is at (top {t}, left {left}, height {h}, width {w}), which falls outside the centre {crop}x{crop} crop the network sees",
                    args.parts.display(),
                    files[i].display()
                );
            }
            mapped.push(m);
        }
        parts.push(Part {
            name: name.clone(),
            boxes: mapped,
        });
    }
    Ok(parts)
}

/// The object boxes of the parts file in the network's input, clipped to
/// the crop (an object may reach past what the network sees); empty when
/// the file gives none.
fn objects_in_input(
    args: &CorrespondenceArgs,
    l: &Loaded,
    spec: &PartsFile,
    files: &[PathBuf],
    original: bool,
) -> Result<Vec<PartBox>> {
    let Some(objects) = &spec.objects else {
        return Ok(Vec::new());
    };
    if objects.len() != files.len() {
        bail!(
            "--parts {}: {} object boxes for {} images",
            args.parts.display(),
            objects.len(),
            files.len()
        );
    }
    let crop = l.transform.crop as i64;
    let mut out = Vec::new();
    for (file, b) in files.iter().zip(objects) {
        let (t, left, h, w) = box_in_input(&l.transform, file, *b, original)?;
        let (t0, l0) = (t.clamp(0, crop), left.clamp(0, crop));
        let (t1, l1) = ((t + h).clamp(0, crop), (left + w).clamp(0, crop));
        out.push((t0, l0, t1 - t0, l1 - l0));
    }
    Ok(out)
}

/// A `[top, left, height, width]` box in the pixels of `file` (when
/// `original`) or of the network's input, in the input's pixels: mapped
/// through the resize and centre crop of `transform`.
fn box_in_input(
    transform: &zftrain_data::Transform,
    file: &Path,
    [t, left, h, w]: [i64; 4],
    original: bool,
) -> Result<PartBox> {
    if !original {
        return Ok((t, left, h, w));
    }
    let (iw, ih) = image::image_dimensions(file)
        .with_context(|| format!("reading the size of {}", file.display()))?;
    let g = transform.geometry(iw, ih, &mut SplitMix64::new(0));
    let (rw, _) = g.resize.unwrap_or((iw, ih));
    let s = rw as f64 / iw as f64;
    let (cx, cy) = (g.crop.0 as f64, g.crop.1 as f64);
    Ok((
        (t as f64 * s - cy).round() as i64,
        (left as f64 * s - cx).round() as i64,
        (h as f64 * s).round().max(1.0) as i64,
        (w as f64 * s).round().max(1.0) as i64,
    ))
}

/// Runs `analyze correspondence`: the parts file, its boxes in the
/// network's input, the analysis, its tables.
pub fn correspondence(args: &CorrespondenceArgs) -> Result<()> {
    let (spec, files, original) = read_parts_file(args)?;
    let l = Loaded::open(&args.common)?;
    let (images, _) = l.images(&files, &[])?;
    let parts = parts_in_input(args, &l, &spec, &files, original)?;
    let objects = objects_in_input(args, &l, &spec, &files, original)?;
    let layers: Vec<usize> = args
        .layers
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("--layers '{}': comma-separated 1, 5, 7", args.layers))
        })
        .collect::<Result<_>>()?;
    let config = CorrespondenceConfig {
        layers,
        random_draws: args.random_draws,
        objects,
        seed: args.seed,
        batch_size: args.common.batch_size,
        ..CorrespondenceConfig::default()
    };
    let start = std::time::Instant::now();
    let total = files.len() * (parts.len() + config.random_draws);
    let mut ticker = Ticker::new("correspondence", total, args.common.log_every_s);
    let rows = run_correspondence(&l.model.net, &images, &parts, &config, &mut |n| {
        ticker.add(n)
    })?;
    ticker.finish();
    let seconds = start.elapsed().as_secs_f64();
    let mut names: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
    if config.random_draws > 0 {
        names.push("random".into());
    }
    let (csv, table) = correspondence_tables(&rows, &names, &config.layers);
    let out = &args.common.out;
    write_text(&out.join("correspondence.csv"), &csv)?;
    write_text(
        &out.join("correspondence.json"),
        &serde_json::to_string_pretty(&rows)?,
    )?;
    write_text(&out.join("correspondence.txt"), &table)?;
    zftrain_hooks::builtin::correspondence::write_summaries(&TbSink(&l.tb), 0, &rows, &table)?;
    l.tb.flush()?;
    print!("{table}");
    println!(
        "correspondence: {} images, {} parts, {} random draws in {seconds:.1} s (mean ± std over image pairs of the fraction of feature signs that differ; lower = more consistent)",
        files.len(),
        parts.len(),
        config.random_draws
    );
    Ok(())
}

impl Run for AnalyzeArgs {
    fn wants_cuda(&self) -> bool {
        self.command.get().wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        self.command.get().run()
    }
}

impl Run for InvarianceArgs {
    fn wants_cuda(&self) -> bool {
        self.common.device.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        invariance(self).map(|()| 0)
    }
}

impl Run for OcclusionArgs {
    fn wants_cuda(&self) -> bool {
        self.common.device.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        occlusion(self).map(|()| 0)
    }
}

impl Run for CorrespondenceArgs {
    fn wants_cuda(&self) -> bool {
        self.common.device.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        correspondence(self).map(|()| 0)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_values;

    #[test]
    fn ranges_and_lists_parse_and_bad_ones_are_named() {
        assert_eq!(parse_values("scales", "1:1.2:0.1").unwrap().len(), 3);
        assert_eq!(
            parse_values("t", "-10:10:10").unwrap(),
            vec![-10.0, 0.0, 10.0]
        );
        assert_eq!(parse_values("t", "0, 90").unwrap(), vec![0.0, 90.0]);
        let e = parse_values("rotations", "0:10:0").unwrap_err().to_string();
        assert!(e.contains("--rotations"), "{e}");
        assert!(parse_values("t", "a,b")
            .unwrap_err()
            .to_string()
            .contains("'a,b'"));
    }
}
