//! `zftrain eval`: loss, top-1 and top-5 of trained weights on a labelled
//! image folder, with the centre crop or the ten-crop average, so that a
//! network can be set beside the papers' tables (which report ten crops).
//! The same pass as training's validation ([`evaluate`]).

use crate::commands::Run;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use tch::Kind;
use zftrain_data::loader::LoaderConfig;
use zftrain_data::{Augment, BadImages, Dataset, Loader, Transform};

use super::images::{eval_transform, load_on};
use crate::cli::{ArchArgs, DeviceArgs, WeightsSource};
use crate::train::evaluate::evaluate;
use crate::train::metrics::Running;
use crate::train::prefetch::TensorLayout;
use crate::train::stop::StopHandle;
use crate::train::ticker::Ticker;
use clap::Args;
use std::path::PathBuf;

/// `zftrain eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The architecture and its options.
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Where the weights come from.
    #[command(flatten)]
    pub source: WeightsSource,
    /// Labelled images: an ImageFolder (one folder per class, the
    /// network's classes in the same order), or a flat folder with
    /// `--val-list`.
    #[arg(long)]
    pub data: PathBuf,
    /// A list file (`path label` per line, paths relative to `--data`) for
    /// a flat folder such as ImageNet's validation set.
    #[arg(long)]
    pub val_list: Option<PathBuf>,
    /// Average the softmax over ten views of each image (the corners and
    /// centre of the 256 square, each mirrored too), as both papers'
    /// tables did; without it, the centre crop.
    #[arg(long)]
    pub ten_crop: bool,
    /// Network rows per forward pass, about (ten per image with
    /// --ten-crop: the images per batch are this over ten, rounded up).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
    /// Decoding threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub workers: u64,
    /// The device.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// Largest image decoded, in pixels.
const MAX_PIXELS: u64 = 100_000_000;

/// What `eval` reports.
#[derive(Debug, Serialize)]
struct Report {
    /// `eval` (centre crop) or `ten-crop`.
    crops: &'static str,
    images: u64,
    skipped: usize,
    loss: f64,
    top1: f64,
    top5: f64,
    top1_error: f64,
    top5_error: f64,
}

/// Runs `eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    let (model, info, device) = load_on(&args.source, &args.arch, &args.device)?;
    let dataset = labelled(args, info.class_names.as_deref(), info.config.classes)?;
    let augment = if args.ten_crop {
        Augment::TenCrop
    } else {
        Augment::Eval
    };
    let transform = eval_transform(args.source.checkpoint.as_deref(), &info, augment)?;
    let layout = TensorLayout {
        crop: transform.crop,
        kind: Kind::Float,
        channels_last: false,
        pinned: false,
    };
    let images = dataset.len();
    let loader = loader(args, dataset, transform);
    let mut ticker = Ticker::new("eval", images, 10.0);
    let Some((r, skipped)) = evaluate(
        &model,
        device,
        &loader,
        &layout,
        &mut ticker,
        &StopHandle::new(),
    )?
    else {
        bail!("the evaluation was stopped");
    };
    for (path, why) in &skipped {
        // Debug-quoted: a file name cannot forge a line of the output.
        eprintln!("skipped {:?}: {why:?}", path);
    }
    print_report(args, &r, skipped.len())
}

/// The images in order, in batches of `--batch-size` network rows (ten per
/// image with `--ten-crop`); files that do not decode are skipped and named.
fn loader(args: &EvalArgs, dataset: Dataset, transform: Transform) -> Loader {
    let views = transform.augment.views();
    let config = LoaderConfig {
        batch_size: (args.batch_size as usize).div_ceil(views).max(1),
        workers: args.workers as usize,
        queue_depth: 2,
        shuffle: false,
        drop_last: false,
        seed: 0,
        bad_images: BadImages::Skip,
        max_pixels: MAX_PIXELS,
        shard: None,
    };
    Loader::new(dataset, transform, config)
}

/// Prints the figures as a line or (`--json`) one JSON object.
fn print_report(args: &EvalArgs, r: &Running, skipped: usize) -> Result<()> {
    let report = Report {
        crops: if args.ten_crop { "ten-crop" } else { "eval" },
        images: r.n,
        skipped,
        loss: r.mean_loss(),
        top1: r.top1(),
        top5: r.top5(),
        top1_error: 1.0 - r.top1(),
        top5_error: 1.0 - r.top5(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} images ({}; {} skipped): loss {:.4}, top-1 error {:.2}%, top-5 error {:.2}%",
            report.images,
            report.crops,
            report.skipped,
            report.loss,
            100.0 * report.top1_error,
            100.0 * report.top5_error
        );
    }
    Ok(())
}

/// The labelled images of `args.data` (an ImageFolder, or a flat folder
/// with `--val-list`), their classes checked against the network's:
/// the same names in the same order when the weights name them, else the
/// same count.
fn labelled(args: &EvalArgs, names: Option<&[String]>, classes: i64) -> Result<Dataset> {
    let dataset = match &args.val_list {
        Some(list) => {
            let names = match names {
                Some(n) => n.to_vec(),
                None => (0..classes).map(|i| i.to_string()).collect(),
            };
            Dataset::list_file(list, &args.data, names)?
        }
        None => Dataset::open(&args.data)
            .with_context(|| format!("reading the images of {}", args.data.display()))?,
    };
    if let Some(names) = names {
        if let Some(i) = (0..names.len().max(dataset.classes.len()))
            .find(|&i| names.get(i) != dataset.classes.get(i))
        {
            bail!(
                "{}: class {i} is '{}' there but '{}' in the weights; the folder's classes must be the network's, in the same order",
                args.data.display(),
                dataset.classes.get(i).map_or("(none)", String::as_str),
                names.get(i).map_or("(none)", String::as_str),
            );
        }
    } else if dataset.classes.len() as i64 != classes {
        bail!(
            "{} has {} classes, the network {}",
            args.data.display(),
            dataset.classes.len(),
            classes
        );
    }
    Ok(dataset)
}

impl Run for EvalArgs {
    fn wants_cuda(&self) -> bool {
        self.device.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        run(self).map(|()| 0)
    }
}
