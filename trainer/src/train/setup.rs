//! Setting a run up, before its first step: the data sets checked, the
//! network's table checked against the data, the run directory written,
//! the per-pixel mean, the loaders, logging to `train.log`, the
//! hyper-parameters TensorBoard shows.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tracing::{info, warn};
use zftrain_checkpoints::atomic::write_file;
use zftrain_checkpoints::Checkpoint;
use zftrain_data::loader::{LoaderConfig, Shard};
use zftrain_data::{Dataset, Loader, MeanImage};
use zftrain_model::arch::ArchConfig;
use zftrain_model::arch_file::write_arch;
use zftrain_model::Arch;
use zftrain_tensorboard::HParamValue;

use crate::config::{KeyError, RunConfig};
use crate::train::callbacks::metrics_csv::METRICS_CSV;
use crate::train::checkpointing::{read_mean_image, MEAN_IMAGE_FILE, RUN_CONFIG_FILE};
use crate::train::ticker::Ticker;
use crate::weights::ArchSpec;

/// The architecture file a run directory keeps when it trains one.
pub const RUN_ARCH_FILE: &str = "arch.toml";

/// The data sets of a run, checked.
pub fn datasets(config: &RunConfig) -> Result<(Dataset, Dataset)> {
    let train = Dataset::open(&config.data.train)?;
    let val = match &config.data.val_list {
        Some(list) => Dataset::list_file(list, &config.data.val, train.classes.clone())?,
        None => Dataset::open(&config.data.val)?,
    };
    if config.data.val_list.is_none() && val.classes != train.classes {
        bail!(
            "the class folders of {} and {} differ ({} vs {} classes); they must be the same",
            config.data.train.display(),
            config.data.val.display(),
            train.classes.len(),
            val.classes.len()
        );
    }
    Ok((train, val))
}

/// The training loader (this node's `shard` of every batch) and the
/// validation loader.
pub fn loaders(
    config: &RunConfig,
    train: Dataset,
    val: Dataset,
    mean_image: Option<Arc<MeanImage>>,
    shard: Option<Shard>,
) -> Result<(Loader, Loader)> {
    let d = &config.data;
    let transform = |augment| d.transform(augment, mean_image.clone());
    let base = LoaderConfig {
        batch_size: config.train.batch_size,
        workers: d.workers,
        queue_depth: d.queue_depth,
        shuffle: true,
        drop_last: false,
        seed: config.seed,
        bad_images: d.bad_images,
        max_pixels: d.max_pixels,
        shard: None,
    };
    // Ten views of an image are ten rows of the network's batch: the
    // validation batch holds about as many rows as a training one.
    let val_config = LoaderConfig {
        shuffle: false,
        batch_size: config
            .train
            .batch_size
            .div_ceil(d.val_augment.views())
            .max(1),
        ..base.clone()
    };
    let train_config = LoaderConfig { shard, ..base };
    Ok((
        Loader::new(train, transform(d.augment)?, train_config),
        Loader::new(val, transform(d.val_augment)?, val_config),
    ))
}

/// The per-pixel mean image of a run with `data.pixel_mean`: from the
/// checkpoint when resuming (so a resumed run subtracts exactly the same),
/// else from the checkpoint a fine-tuned run starts from (`start`, if it
/// has one: the features were trained on input normalized so), else
/// estimated from the training set.
pub fn pixel_mean(
    config: &RunConfig,
    train_set: &Dataset,
    resumed: Option<&Checkpoint>,
    start: Option<&Checkpoint>,
) -> Result<Option<Arc<MeanImage>>> {
    let d = &config.data;
    if !d.pixel_mean {
        return Ok(None);
    }
    if let Some(mean) = start.map(read_mean_image).transpose()?.flatten() {
        let from = start
            .map(|ck| ck.dir().display().to_string())
            .unwrap_or_default();
        info!(checkpoint = %from, "per-pixel mean from the start weights' checkpoint");
        println!("per-pixel mean of {from} (the weights this run starts from)");
        return Ok(Some(Arc::new(mean)));
    }
    if let Some(ck) = resumed {
        let mean = read_mean_image(ck)?.with_context(|| {
            format!(
                "data.pixel_mean is set but checkpoint {} has no {MEAN_IMAGE_FILE}",
                ck.dir().display()
            )
        })?;
        return Ok(Some(Arc::new(mean)));
    }
    let start = Instant::now();
    let picked = match d.pixel_mean_images {
        0 => train_set.len(),
        k => k.min(train_set.len()),
    };
    let ticker = std::sync::Mutex::new(Ticker::new(
        "per-pixel mean",
        picked,
        config.train.log_every_s,
    ));
    let progress = |n: usize| ticker.lock().unwrap_or_else(|e| e.into_inner()).add(n);
    let est = MeanImage::estimate(
        train_set,
        d.resize,
        d.pixel_mean_images,
        d.max_pixels,
        d.workers.max(1),
        &progress,
    )?;
    for (path, why) in &est.skipped {
        warn!(file = %path.display(), reason = %why, "skipped for the per-pixel mean");
    }
    let means = est.mean.channel_means();
    info!(images = est.used, skipped = est.skipped.len(), seconds = start.elapsed().as_secs_f64(),
          channel_means = ?means, "per-pixel mean estimated");
    println!(
        "per-pixel mean of {} training images ({:.1} s)",
        est.used,
        start.elapsed().as_secs_f64()
    );
    Ok(Some(Arc::new(est.mean)))
}

/// A step's dropout seed: depends only on `(seed, step)`.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    zftrain_data::rng::SplitMix64::for_stream(&[seed, step, 0xD40F]).next_u64()
}

/// Appends the log to `RUN/train.log`.
pub fn set_up_logging(run_dir: &Path) -> Result<()> {
    let path = run_dir.join("train.log");
    let file = crate::train::log_file::open_append(&path)?;
    // RUST_LOG sets the level (`warn`, `debug`, `zftrain=debug`); info by
    // default. A second run in the same process (tests) keeps the first
    // subscriber.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(crate::train::log_file::Escaped(file)))
        .with_ansi(false)
        .with_target(false)
        .try_init();
    Ok(())
}

/// What a run settled at its start, beside its configuration.
pub struct Resolved<'a> {
    /// The compute precision in use (`train.precision = "auto"` resolved).
    pub precision: tch::Kind,
    /// This node's devices.
    pub devices: &'a [tch::Device],
    /// Classes of the network.
    pub classes: i64,
}

/// The hyper-parameters shown in TensorBoard's HParams dashboard.
pub fn hparams(
    config: &RunConfig,
    arch: &ArchSpec,
    resolved: &Resolved<'_>,
) -> Vec<(String, HParamValue)> {
    let precision = match resolved.precision {
        tch::Kind::BFloat16 => "bf16",
        tch::Kind::Half => "fp16",
        _ => "fp32",
    };
    let device = match resolved.devices.first() {
        Some(d) if d.is_cuda() => "cuda",
        _ => "cpu",
    };
    vec![
        ("precision".into(), HParamValue::Text(precision.into())),
        (
            "devices_per_node".into(),
            HParamValue::Number(resolved.devices.len() as f64),
        ),
        ("device".into(), HParamValue::Text(device.into())),
        (
            "nodes".into(),
            HParamValue::Number(config.cluster.nodes as f64),
        ),
        (
            "classes".into(),
            HParamValue::Number(resolved.classes as f64),
        ),
        ("arch".into(), HParamValue::Text(arch.name().to_string())),
    ]
    .into_iter()
    .chain(recipe_hparams(config))
    .collect()
}

/// The recipe's hyper-parameters: the network's initialization and
/// regularization, the data's augmentation, the optimizer and schedule.
fn recipe_hparams(config: &RunConfig) -> Vec<(String, HParamValue)> {
    vec![
        ("init".into(), as_text(&config.model.init)),
        (
            "first_layer_std".into(),
            // Text either way: one type per hparam across runs.
            HParamValue::Text(match config.model.first_layer_std {
                Some(std) => std.to_string(),
                None => "as init".into(),
            }),
        ),
        (
            "init_from".into(),
            HParamValue::Text(match config.model.init_from() {
                Some(p) => p.display().to_string(),
                None => "none".into(),
            }),
        ),
        (
            "freeze".into(),
            HParamValue::Text(match config.model.freeze.is_empty() {
                true => "none".into(),
                false => config.model.freeze.join(","),
            }),
        ),
        ("lrn".into(), HParamValue::Bool(config.model.lrn)),
        ("dropout".into(), HParamValue::Number(config.model.dropout)),
        ("augment".into(), as_text(&config.data.augment)),
        (
            "lighting".into(),
            // Through its text: 0.1, not the f32's 0.10000000149.
            HParamValue::Number(config.data.lighting.to_string().parse().unwrap_or(0.0)),
        ),
        ("val_augment".into(), as_text(&config.data.val_augment)),
        (
            "epochs".into(),
            HParamValue::Number(config.train.epochs as f64),
        ),
        (
            "batch_size".into(),
            HParamValue::Number(config.train.batch_size as f64),
        ),
        (
            "renorm_radius".into(),
            HParamValue::Number(config.train.renorm_radius),
        ),
        (
            "label_smoothing".into(),
            HParamValue::Number(config.train.label_smoothing),
        ),
        ("lr".into(), HParamValue::Number(config.optim.lr)),
        (
            "momentum".into(),
            HParamValue::Number(config.optim.momentum),
        ),
        (
            "weight_decay".into(),
            HParamValue::Number(config.optim.weight_decay),
        ),
        ("schedule".into(), as_text(&config.schedule.kind)),
        ("seed".into(), HParamValue::Number(config.seed as f64)),
    ]
}

/// A serializable value (an enum such as `zf`) as a text hyper-parameter.
fn as_text<T: serde::Serialize>(v: &T) -> HParamValue {
    let json = serde_json::to_string(v).unwrap_or_default();
    HParamValue::Text(json.trim_matches('"').to_string())
}

/// The network a run trains on `classes` classes, checked against the
/// config: the architecture (a file's table keeps these classes), its
/// table, and its settings.
pub fn network(config: &RunConfig, classes: i64) -> Result<(ArchSpec, Arch, ArchConfig)> {
    if config.model.classes != 0 && config.model.classes != classes {
        return Err(KeyError::new(
            "model.classes",
            format!(
                "is {} but {} has {classes} class folders",
                config.model.classes,
                config.data.train.display()
            ),
        )
        .into());
    }
    let arch_config = ArchConfig {
        classes,
        dropout: config.model.dropout,
        lrn: config.model.lrn,
    };
    let spec = config.model.arch_spec()?;
    let arch = spec.table(&arch_config)?;
    let spec = match spec {
        ArchSpec::Table(_) => ArchSpec::Table(arch.clone()),
        builtin => builtin,
    };
    let crop = config.data.crop as i64;
    if arch.input[1] != crop || arch.input[2] != crop || arch.input[0] != 3 {
        return Err(KeyError::new(
            "data.crop",
            format!(
                "is {} (RGB crops) but {spec} takes {}x{}x{} input",
                config.data.crop, arch.input[0], arch.input[1], arch.input[2]
            ),
        )
        .into());
    }
    Ok((spec, arch, arch_config))
}

/// Writes what a run directory holds besides checkpoints: the resolved
/// `config.toml`, the architecture table (a run from a file resumes
/// without the user's file) and `classes.txt`.
pub fn write_run_dir(
    run_dir: &Path,
    config: &RunConfig,
    spec: &ArchSpec,
    classes: &[String],
) -> Result<()> {
    fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    write_file(&run_dir.join(RUN_CONFIG_FILE), config.to_toml().as_bytes())?;
    if let ArchSpec::Table(table) = spec {
        write_file(&run_dir.join(RUN_ARCH_FILE), write_arch(table).as_bytes())?;
    }
    write_file(
        &run_dir.join("classes.txt"),
        (classes.join("\n") + "\n").as_bytes(),
    )?;
    Ok(())
}

/// Moves what an earlier attempt of a run left besides its log (TensorBoard
/// events, hook outputs, `metrics.csv`) into the first free `RUN/attempt-N/`; returns it.
pub fn set_aside_attempt(run_dir: &Path) -> Result<std::path::PathBuf> {
    let attempt = (1..)
        .map(|n| run_dir.join(format!("attempt-{n}")))
        .find(|p| !p.exists())
        .expect("a free attempt number");
    fs::create_dir_all(&attempt).with_context(|| format!("creating {}", attempt.display()))?;
    let entries =
        fs::read_dir(run_dir).with_context(|| format!("reading {}", run_dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", run_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("events.out.tfevents.") || name == "hooks" || name == METRICS_CSV {
            let to = attempt.join(&name);
            fs::rename(entry.path(), &to).with_context(|| {
                format!("moving {} to {}", entry.path().display(), to.display())
            })?;
        }
    }
    Ok(attempt)
}
