//! `zftrain bench`: what this machine does per second, printed one line per
//! measurement so that scripts (`bench/train-step`, `scripts/gpu-check`) can
//! put it next to PyTorch's figures.

use anyhow::{bail, Context, Result};

use crate::benchmark::{
    nccl_smoke, projection_agreement, projection_batching, replicas_agreement,
    train_step_throughput, DataBench, Mode, StepBenchConfig,
};
use crate::cli::{
    DeconvBenchArgs, EngineBenchArgs, LoaderBenchArgs, ProjectionsBenchArgs, TrainStepBenchArgs,
};
use crate::config::ReducerChoice;
use crate::devices::{parse_gpus, training_devices};

fn parse_augment(name: &str) -> Result<zftrain_data::Augment> {
    use zftrain_data::Augment;
    Ok(match name {
        "zf" => Augment::Zf,
        "rrc" => Augment::Rrc,
        "eval" => Augment::Eval,
        other => bail!("--augment '{other}': zf, rrc or eval"),
    })
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
    let reducer = match args.reducer.as_str() {
        "auto" => ReducerChoice::Auto,
        "nccl" => ReducerChoice::Nccl,
        "copy" => ReducerChoice::Copy,
        other => bail!("--reducer '{other}': auto, nccl or copy"),
    };
    let devices = training_devices(&parse_gpus(&args.gpus)?, args.cpu_replicas)?;
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
        data: match &args.data {
            Some(path) => Some(DataBench {
                path: path.clone(),
                workers: args
                    .workers
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                augment: parse_augment(&args.augment)?,
            }),
            None => None,
        },
    };
    for (name, mode) in args.modes.split(',').zip(modes) {
        let ips = train_step_throughput(&config, mode).with_context(|| format!("mode {name}"))?;
        println!("zftrain {} {ips:.2}", name.trim());
    }
    Ok(())
}

/// Prints `batched <proj/s>`, `one-at-a-time <proj/s>` and `ratio <x>`.
pub fn projections(args: &ProjectionsBenchArgs) -> Result<()> {
    let device = match args.gpu {
        Some(g) => training_devices(&[g], 1)?[0],
        None => tch::Device::Cpu,
    };
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
    let device = training_devices(&[args.gpu], 1)?[0];
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
    let device = match args.gpu {
        Some(g) => training_devices(&[g], 1)?[0],
        None => tch::Device::Cpu,
    };
    let mut wrong = false;
    match args.gpu {
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
    let augment = parse_augment(&args.augment)?;
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
        args.augment,
        args.workers,
        images as f64 / seconds,
        peak_rss_mib().unwrap_or(0.0)
    );
    Ok(())
}
