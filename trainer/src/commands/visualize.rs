//! `zftrain visualize`: runs the visualization hooks once, outside training,
//! on a checkpoint or on imported weights, with a folder of images as the
//! probe set. The hooks come from `--config` (its `[[hooks]]` and
//! `[probe]`), else from the checkpoint's own run configuration, else (a
//! checkpoint from `init` or `import`, or weights) the default pair: Deconvnet grids of 16 feature maps per conv layer and the
//! dead-filter counts.

use std::path::{Path, PathBuf};

use crate::commands::Run;
use anyhow::{bail, Context, Result};
use zftrain_checkpoints::Checkpoint;
use zftrain_data::Dataset;
use zftrain_hooks::builtin::{DeadFiltersConfig, DeconvGridConfig};
use zftrain_hooks::{Event, HookSpec, Schedule};

use crate::cli::{ArchArgs, DeviceArgs, WeightsSource};
use crate::config::RunConfig;
use crate::train::checkpointing::{read_mean_image, CONFIG_FILE};
use crate::train::hooks::{HookRunner, Moment};
use crate::train::probe::LoaderProbe;
use clap::Args;
use zftrain_hooks::ProbeSet;

/// `zftrain visualize`.
#[derive(Debug, Args)]
pub struct VisualizeArgs {
    /// The architecture and its options.
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Where the weights come from.
    #[command(flatten)]
    pub source: WeightsSource,
    /// Probe images: an ImageFolder, or a data folder whose val/ is one.
    #[arg(long)]
    pub data: PathBuf,
    /// Where the hooks write (hooks/<name>/, TensorBoard events).
    #[arg(long, default_value = "runs/visualize")]
    pub out: PathBuf,
    /// A run configuration whose [[hooks]] and [probe] to use (default:
    /// the checkpoint's own, else Deconvnet grids and dead filters).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a configuration key (repeatable), e.g. `--set probe.images=32`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Probe images (probe.images; 0: every image of the folder).
    #[arg(long)]
    pub probe_images: Option<usize>,
    /// The epoch to label the outputs with (default: the checkpoint's).
    #[arg(long)]
    pub epoch: Option<u64>,
    /// The device.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// The image folder of `dir`: `dir/val` when it exists, else `dir`.
pub(crate) fn probe_folder(dir: &Path) -> PathBuf {
    let val = dir.join("val");
    if val.is_dir() {
        val
    } else {
        dir.to_path_buf()
    }
}

/// The configuration that says which hooks to run.
fn hooks_config(args: &VisualizeArgs, ck: Option<&Checkpoint>) -> Result<RunConfig> {
    if let Some(path) = &args.config {
        return RunConfig::load(Some(path), &args.set);
    }
    // A checkpoint from `zftrain init` or `import` has no run configuration:
    // the default hooks.
    if let Some(ck) = ck.filter(|c| c.file(CONFIG_FILE).is_some()) {
        let value = ck.read_json(CONFIG_FILE)?;
        let mut config: RunConfig = serde_json::from_value(value)
            .with_context(|| format!("{}: bad run configuration", ck.dir().display()))?;
        // A checkpoint is data: the programs it names never run from it.
        for program in config.drop_programs() {
            println!(
                "visualize: not running exec hook {program} from {}/{CONFIG_FILE} (a checkpoint names no programs to run; put the hook in a --config file of yours to run it)",
                ck.dir().display()
            );
        }
        if !config.hooks.is_empty() {
            return Ok(config);
        }
    }
    let mut config = RunConfig::load(None, &args.set)?;
    let at_end = Schedule::AtEnd(true);
    config.hooks = vec![
        HookSpec::Deconv(DeconvGridConfig {
            schedule: at_end.clone(),
            ..DeconvGridConfig::default()
        }),
        HookSpec::DeadFilters(DeadFiltersConfig {
            schedule: at_end,
            ..DeadFiltersConfig::default()
        }),
    ];
    Ok(config)
}

/// Runs `visualize`.
pub fn run(args: &VisualizeArgs) -> Result<()> {
    let ck = match &args.source.checkpoint {
        Some(dir) => Some(
            Checkpoint::open(dir)
                .with_context(|| format!("opening checkpoint {}", dir.display()))?,
        ),
        None => None,
    };
    let (model, info, device) = super::images::load_on(&args.source, &args.arch, &args.device)?;
    let mut config = hooks_config(args, ck.as_ref())?;
    if let Some(n) = args.probe_images {
        config.probe.images = n;
    }
    if config.hooks.is_empty() {
        bail!(
            "{} has no [[hooks]] to run",
            args.config
                .as_deref()
                .unwrap_or(Path::new("the configuration"))
                .display()
        );
    }
    config.data.mean = info.mean.map(|x| x as f32);
    config.data.std = info.std.map(|x| x as f32);
    let folder = probe_folder(&args.data);
    let dataset = Dataset::image_folder(&folder)?;
    let mean_image = match &ck {
        Some(ck) => read_mean_image(ck)?.map(std::sync::Arc::new),
        None => None,
    };
    // The probe images as the network saw its validation images (a --config
    // file's sizes are the user's).
    if args.config.is_none() {
        let (resize, crop) = super::images::input_sizes(ck.as_ref(), &info)?;
        (config.data.resize, config.data.crop) = (resize, crop);
    }
    if let Some(m) = &mean_image {
        config.data.resize = m.side();
    }
    // Its labels are true classes when its class folders are the weights'.
    let labelled = info.class_names.as_ref() == Some(&dataset.classes);
    let probe = LoaderProbe::new(&config, &dataset, mean_image)?.labelled(labelled);
    let epoch = args.epoch.unwrap_or_else(|| {
        ck.as_ref()
            .and_then(|c| c.manifest().meta["epoch"].as_u64())
            .unwrap_or(0)
    });
    let step = ck
        .as_ref()
        .and_then(|c| c.manifest().meta["global_step"].as_u64())
        .unwrap_or(0);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let tb = crate::train::tags::open_writer(&args.out)?;
    let images = probe.len();
    let mut runner = HookRunner::new(config.build_hooks()?, Box::new(probe));
    runner.device = device;
    let start = std::time::Instant::now();
    let at = Moment {
        net: &model.net,
        replicas: &[],
        epoch,
        step,
        run_dir: &args.out,
        tb: &tb,
        metrics: Default::default(),
    };
    runner.event_all(Event::EpochEnd, &at)?;
    let seconds = start.elapsed().as_secs_f64();
    tb.flush()?;
    println!(
        "visualized {} hooks on {images} images of {} (epoch {epoch}) on {device:?} in {seconds:.1} s: {}/hooks/ (tensorboard --logdir {})",
        config.hooks.len(),
        folder.display(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

impl Run for VisualizeArgs {
    fn wants_cuda(&self) -> bool {
        self.device.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        run(self).map(|()| 0)
    }
}
