//! `zftrain bench`: what this machine does per second, printed one line per
//! measurement so that scripts (`bench/train-step`, `scripts/gpu-check`) can
//! put it next to PyTorch's figures.

use crate::commands::Run;
use anyhow::{bail, Context, Result};

use crate::benchmark::{
    nccl_smoke, projection_agreement, projection_batching, replicas_agreement,
    train_step_throughput, DataBench, Mode, StepBenchConfig,
};
use crate::cli::{named, DeviceArgs, DevicesArgs};
use crate::commands::bench_mine::MineBenchArgs;
use crate::config::ReducerChoice;
use crate::devices::training_devices;
use clap::Args;

use crate::commands::subcommands;
use std::path::PathBuf;
use zftrain_data::Augment;
use zftrain_model::ArchName;

/// `zftrain bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub command: BenchCommand,
}

subcommands! {
    /// `zftrain bench` subcommands.
    pub enum BenchCommand {
        /// Images per second of whole training steps (the engine's, on random input).
        TrainStep(TrainStepBenchArgs),
        /// Deconvnet projections of every conv layer on a GPU against the CPU: time and agreement.
        Deconv(DeconvBenchArgs),
        /// Images per second of the data loader (decode, augment, batch) on an ImageFolder.
        Loader(LoaderBenchArgs),
        /// Deconvnet projections per second, batched against one target at a time.
        Projections(ProjectionsBenchArgs),
        /// Checks the parallel engine on one device: NCCL on one rank (with
        /// --gpu) and two replicas on the device against one.
        Engine(EngineBenchArgs),
        /// Top-9 mining of every conv layer over an image folder against plain
        /// evaluation of the same images on the same devices: images/s of both,
        /// their ratio, peak memory.
        Mine(MineBenchArgs),
    }
}

/// `zftrain bench engine`.
#[derive(Debug, Args)]
pub struct EngineBenchArgs {
    /// The device.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Training steps of the replicas check (one step shows the reduction;
    /// over more, ReLU and max-pool ties turn rounding into larger
    /// differences).
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// Global batch of the replicas check.
    #[arg(long, default_value_t = 16)]
    pub batch: i64,
    /// Largest difference between the weight updates of two replicas and
    /// of one, relative to the update (rounding, and TF32 convolutions on
    /// GPUs, stay far below; a wrong reduction is of order 1).
    #[arg(long, default_value_t = 1e-2)]
    pub tolerance: f64,
}

/// `zftrain bench projections`.
#[derive(Debug, Args)]
pub struct ProjectionsBenchArgs {
    /// The device.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Conv layer whose units are projected (1-5).
    #[arg(long, default_value_t = 5)]
    pub layer: usize,
    /// Targets per timed pass.
    #[arg(long, default_value_t = 64)]
    pub targets: usize,
    /// Targets per batched pass at most.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
}

/// `zftrain bench loader`.
#[derive(Debug, Args)]
pub struct LoaderBenchArgs {
    /// An ImageFolder (class folders of images).
    #[arg(long)]
    pub data: PathBuf,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Augmentation: zf, zf-fixed, rrc or eval.
    #[arg(long, default_value = "zf", value_parser = named::<Augment>)]
    pub augment: Augment,
    /// Batches in flight at most.
    #[arg(long, default_value_t = 4)]
    pub queue_depth: usize,
    /// Epochs timed one after the other (the first batch of the first one
    /// is left out).
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
}

/// `zftrain bench train-step`.
#[derive(Debug, Args)]
pub struct TrainStepBenchArgs {
    /// Architecture.
    #[arg(long, value_parser = named::<ArchName>, default_value = "zfnet")]
    pub arch: ArchName,
    /// Global batch.
    #[arg(long, default_value_t = 64)]
    pub batch: i64,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Output classes.
    #[arg(long, default_value_t = 1000)]
    pub classes: i64,
    /// Comma-separated modes: fp32, bf16, fp16, each optionally -channels-last.
    #[arg(
        long,
        default_value = "fp32,fp32-channels-last,bf16,bf16-channels-last"
    )]
    pub modes: String,
    /// The devices.
    #[command(flatten)]
    pub devices: DevicesArgs,
    /// Gradient reduction: auto, nccl or copy.
    #[arg(long, default_value = "auto", value_parser = named::<ReducerChoice>)]
    pub reducer: ReducerChoice,
    /// Let cuDNN search for the fastest convolution algorithms.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub cudnn_benchmark: bool,
    /// Train on this ImageFolder (or pack) through the training loader
    /// instead of random input.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Loader threads with --data (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Augmentation with --data: zf, zf-fixed, rrc or eval.
    #[arg(long, default_value = "zf", value_parser = named::<Augment>)]
    pub augment: Augment,
}

/// `zftrain bench deconv`.
#[derive(Debug, Args)]
pub struct DeconvBenchArgs {
    /// The GPU compared with the CPU: `--gpu N` (required).
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Feature maps projected per layer.
    #[arg(long, default_value_t = 32)]
    pub per_layer: i64,
    /// Largest relative difference that counts as agreement (cuDNN may use
    /// TF32 for fp32 convolutions).
    #[arg(long, default_value_t = 1e-2)]
    pub tolerance: f64,
}

/// Prints `zftrain <mode> <img/s>` per mode.
pub fn train_step(args: &TrainStepBenchArgs) -> Result<()> {
    crate::allocator::tune_for_training();
    let modes: Vec<Mode> = args
        .modes
        .split(',')
        .map(|m| m.trim().parse())
        .collect::<Result<_>>()
        .context("--modes")?;
    let reducer = args.reducer;
    let devices = args.devices.devices()?;
    if devices.iter().any(|d| d.is_cuda()) {
        tch::Cuda::cudnn_set_benchmark(args.cudnn_benchmark);
    }
    let config = StepBenchConfig {
        arch: args.arch,
        batch: args.batch,
        steps: args.steps,
        warmup: args.warmup,
        classes: args.classes,
        devices,
        reducer,
        data: args.data.as_ref().map(|path| DataBench {
            path: path.clone(),
            workers: args
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            augment: args.augment,
        }),
    };
    for (name, mode) in args.modes.split(',').zip(modes) {
        let ips = train_step_throughput(&config, mode).with_context(|| format!("mode {name}"))?;
        println!("zftrain {} {ips:.2}", name.trim());
    }
    Ok(())
}

/// Prints `batched <proj/s>`, `one-at-a-time <proj/s>` and `ratio <x>`.
pub fn projections(args: &ProjectionsBenchArgs) -> Result<()> {
    let device = args.device.device()?;
    let f = projection_batching(device, args.layer, args.targets, args.max_batch)?;
    println!(
        "targets {} layer {} device {device:?}",
        f.targets, args.layer
    );
    println!("batched {:.1}", f.batched);
    println!("one-at-a-time {:.1}", f.one_at_a_time);
    println!("ratio {:.2}", f.batched / f.one_at_a_time);
    Ok(())
}

/// Prints a line per conv layer; exit code 1 when a layer disagrees.
pub fn deconv(args: &DeconvBenchArgs) -> Result<u8> {
    let Some(gpu) = args.device.gpu else {
        anyhow::bail!("bench deconv compares a GPU with the CPU: pass --gpu N");
    };
    let device = training_devices(&[gpu], 1)?[0];
    let rows = projection_agreement(device, args.per_layer)?;
    println!("layer targets cpu_s gpu_s max_rel_diff");
    let mut worst = 0.0f64;
    for r in &rows {
        println!(
            "conv{} {} {:.3} {:.3} {:.2e}",
            r.layer, r.targets, r.cpu_seconds, r.device_seconds, r.relative_difference
        );
        worst = worst.max(r.relative_difference);
    }
    if worst > args.tolerance {
        eprintln!(
            "zftrain: GPU and CPU projections differ by up to {worst:.2e} (tolerance {:.0e})",
            args.tolerance
        );
        return Ok(1);
    }
    println!(
        "agree: max relative difference {worst:.2e} <= {:.0e}",
        args.tolerance
    );
    Ok(0)
}

/// Prints `nccl ...` (with --gpu) and `replicas ...` lines, and `ok` last;
/// exit code 1 when a result is wrong.
pub fn engine(args: &EngineBenchArgs) -> Result<u8> {
    let device = args.device.device()?;
    let mut wrong = false;
    match args.device.gpu {
        Some(g) => {
            let n = nccl_smoke(g).context("NCCL on one rank")?;
            let exact = n.all_reduce_error == 0.0 && n.broadcast_error == 0.0;
            wrong |= !exact;
            println!(
                "nccl {} ({}): one rank on cuda:{g}: weighted all-reduce off by {:.2e}, broadcast off by {:.2e}: {}",
                n.version,
                n.library,
                n.all_reduce_error,
                n.broadcast_error,
                if exact { "exact" } else { "WRONG" }
            );
        }
        None => println!("nccl skipped (no --gpu)"),
    }
    let diff =
        replicas_agreement(device, args.steps, args.batch).context("two replicas on one device")?;
    let agree = diff <= args.tolerance;
    wrong |= !agree;
    println!(
        "replicas 2 on {device:?} (replica threads, device-copy reducer) vs 1, {} fp32 steps: weight updates differ by {diff:.2e} of their size ({} {:.0e})",
        args.steps,
        if agree { "<=" } else { "MORE THAN" },
        args.tolerance
    );
    if wrong {
        eprintln!("zftrain: the engine check found wrong results (see above)");
        return Ok(1);
    }
    println!("ok");
    Ok(0)
}

use crate::memory::peak_rss_mib;

/// Prints `zftrain loader <augment> <workers> <img/s> <peak RSS MiB>`:
/// `--epochs` epochs of the ImageFolder through the training loader, timed
/// from the first batch (the workers' start-up left out, as for the peer).
pub fn loader(args: &LoaderBenchArgs) -> Result<()> {
    use zftrain_data::loader::{Loader, LoaderConfig};
    use zftrain_data::{Dataset, Transform};
    let augment = args.augment;
    let dataset = Dataset::open(&args.data)?;
    let transform = Transform {
        augment,
        ..Transform::default()
    };
    let config = LoaderConfig {
        batch_size: args.batch,
        workers: args.workers,
        queue_depth: args.queue_depth,
        ..LoaderConfig::default()
    };
    let loader = Loader::new(dataset, transform, config);
    let mut batches = loader.epoch(0, 0);
    let first = batches.next().context("an empty data set")??;
    let start = std::time::Instant::now();
    let mut images = 0usize;
    let first_len = first.len();
    loader.recycle(first);
    for batch in batches {
        let batch = batch?;
        images += batch.len();
        loader.recycle(batch);
    }
    for epoch in 1..args.epochs.max(1) {
        for batch in loader.epoch(epoch, 0) {
            let batch = batch?;
            images += batch.len();
            loader.recycle(batch);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if images == 0 {
        bail!(
            "one batch only ({} images): use more images or a smaller --batch",
            first_len
        );
    }
    println!(
        "zftrain loader {} {} {:.1} {:.0}",
        crate::cli::name_of(&args.augment),
        args.workers,
        images as f64 / seconds,
        peak_rss_mib().unwrap_or(0.0)
    );
    Ok(())
}

impl Run for BenchArgs {
    fn wants_cuda(&self) -> bool {
        self.command.get().wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        self.command.get().run()
    }
}

impl Run for TrainStepBenchArgs {
    fn wants_cuda(&self) -> bool {
        self.devices.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        train_step(self).map(|()| 0)
    }
}

impl Run for DeconvBenchArgs {
    fn wants_cuda(&self) -> bool {
        true
    }
    fn run(&self) -> Result<u8> {
        deconv(self)
    }
}

impl Run for LoaderBenchArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        loader(self).map(|()| 0)
    }
}

impl Run for ProjectionsBenchArgs {
    fn wants_cuda(&self) -> bool {
        self.device.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        projections(self).map(|()| 0)
    }
}

impl Run for EngineBenchArgs {
    fn wants_cuda(&self) -> bool {
        self.device.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        engine(self)
    }
}
