//! `zftrain predict`: top-k classes of image files.

use std::path::{Path, PathBuf};

use crate::commands::Run;
use anyhow::{Context, Result};
use serde::Serialize;
use tch::{Kind, Tensor};
use zftrain_checkpoints::write_safetensors;
use zftrain_data::Augment;

use super::images::{eval_transform, load_image};
use crate::cli::{ArchArgs, WeightsSource};
use crate::train::evaluate::average_views;
use crate::weights::load_model;
use clap::Args;

/// `zftrain predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The architecture and its options.
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Where the weights come from.
    #[command(flatten)]
    pub source: WeightsSource,
    /// Images: files, folders (every JPEG and PNG under them) or patterns
    /// such as 'val/*/*.jpg'.
    #[arg(value_name = "IMAGES")]
    pub paths: Vec<PathBuf>,
    /// An image file, folder or pattern (repeatable; the same as IMAGES).
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// Images per forward pass (memory stays bounded for any number of images).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// A text file with one class name per line (line i = class i).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Print JSON (with the full logits) instead of a table: one array.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one JSON object per image and line, as each batch is done.
    #[arg(long)]
    pub jsonl: bool,
    /// Also save the preprocessed input batch `[N, 3, S, S]` (S the
    /// network's crop, 224 for the papers') as safetensors (tensor
    /// `input`, `[N, 10, 3, S, S]` with `--ten-crop`; holds every image's
    /// input in memory).
    #[arg(long)]
    pub save_input: Option<PathBuf>,
    /// Average the softmax over ten views of each image (the corners and
    /// centre of the 256 square, each mirrored too), as both papers'
    /// tables did; the logits printed are then the log of that average.
    #[arg(long)]
    pub ten_crop: bool,
}

/// One predicted class.
#[derive(Debug, Serialize)]
struct Guess {
    class: i64,
    label: Option<String>,
    probability: f64,
}

/// The predictions for one image.
#[derive(Debug, Serialize)]
struct Prediction {
    image: String,
    top: Vec<Guess>,
    logits: Vec<f32>,
}

fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading labels {}", path.display()))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

/// Runs `predict`: the images in batches of `--batch-size`, each batch's
/// results printed when it is done (`--jsonl`, the table) or at the end
/// (`--json`).
pub fn run(args: &PredictArgs) -> Result<()> {
    let given: Vec<PathBuf> = args.paths.iter().chain(&args.images).cloned().collect();
    let paths = super::inputs::expand(&given)?;
    let (model, info) = load_model(
        args.source.weights.as_deref(),
        args.source.checkpoint.as_deref(),
        &args.arch.overrides(),
    )?;
    let labels = match &args.labels {
        Some(p) => Some(read_labels(p)?),
        None => info.class_names.clone(),
    };
    let augment = if args.ten_crop {
        Augment::TenCrop
    } else {
        Augment::Eval
    };
    let transform = eval_transform(args.source.checkpoint.as_deref(), &info, augment)?;
    let c = transform.crop as i64;
    let k = args.top.min(info.config.classes as usize).max(1) as i64;
    let mut all = Vec::new();
    let mut inputs = Vec::new();
    for chunk in paths.chunks(args.batch_size as usize) {
        let images = chunk
            .iter()
            .map(|p| load_image(&transform, p))
            .collect::<Result<Vec<_>>>()?;
        let batch = Tensor::stack(&images, 0);
        // Ten views of an image are ten rows; their softmax is averaged.
        let rows = batch.view([-1, 3, c, c]);
        let logits = tch::no_grad(|| model.net.forward(&rows, false));
        let logits = average_views(&logits.to_kind(Kind::Float), chunk.len() as i64);
        if args.save_input.is_some() {
            inputs.push(batch);
        }
        let out = predictions(chunk, &logits, k, labels.as_deref())?;
        if args.jsonl {
            for p in &out {
                println!("{}", serde_json::to_string(p)?);
            }
        } else if !args.json {
            print_table(&out);
        }
        if args.json {
            all.extend(out);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    if let Some(path) = &args.save_input {
        write_safetensors(
            path,
            &[("input".to_string(), Tensor::cat(&inputs, 0))],
            &Default::default(),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The top `k` classes and the logits of each image of a batch.
fn predictions(
    paths: &[PathBuf],
    logits: &Tensor,
    k: i64,
    labels: Option<&[String]>,
) -> Result<Vec<Prediction>> {
    let probs = logits.softmax(-1, Kind::Float);
    let (top_p, top_i) = probs.topk(k, -1, true, true);
    let mut out = Vec::new();
    for (n, path) in paths.iter().enumerate() {
        let n = n as i64;
        let top = (0..k)
            .map(|j| {
                let class = top_i.int64_value(&[n, j]);
                Guess {
                    class,
                    label: labels.and_then(|l| l.get(class as usize).cloned()),
                    probability: top_p.double_value(&[n, j]),
                }
            })
            .collect();
        let row = logits.get(n).to_kind(Kind::Float);
        out.push(Prediction {
            image: path.display().to_string(),
            top,
            logits: Vec::<f32>::try_from(&row)?,
        });
    }
    Ok(out)
}

fn print_table(out: &[Prediction]) {
    for p in out {
        println!("{}", p.image);
        for g in &p.top {
            let name = g
                .label
                .clone()
                .unwrap_or_else(|| format!("class {}", g.class));
            println!("  {:>6.2}%  {name}", 100.0 * g.probability);
        }
    }
}

impl Run for PredictArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        run(self).map(|()| 0)
    }
}
