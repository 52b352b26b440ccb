//! Measurements `zftrain bench` (and `cargo bench`) make of this machine:
//! training-step throughput through the real engine, on random input (the
//! compute alone) or on JPEG files through the training loader and the
//! prefetching of tensors (what training does), and Deconvnet projections on
//! a device against the CPU.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};
use zftrain_deconv::project::project_fields;
use zftrain_deconv::Target;
use zftrain_model::arch::ArchConfig;
use zftrain_model::network::to_channels_last;
use zftrain_model::{Arch, ArchName, InitScheme};

use zftrain_data::loader::LoaderConfig;
use zftrain_data::{Augment, Dataset, Loader, Transform};

use crate::config::{OptimConfig, ReducerChoice};
use crate::train::prefetch::{page_locked, Prefetch, TensorLayout};
use crate::weights::Model;
use zftrain_parallel::replica::seeded_uniform;
use zftrain_parallel::{reducer_for, DataParallel, LossScaler, NcclWatch, StepOptions};

/// A training-step benchmark.
#[derive(Debug, Clone)]
pub struct StepBenchConfig {
    /// The network.
    pub arch: ArchName,
    /// Global batch.
    pub batch: i64,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first (cuDNN's algorithm search, allocator warm-up).
    pub warmup: usize,
    /// Output classes.
    pub classes: i64,
    /// Devices, one replica each.
    pub devices: Vec<Device>,
    /// Gradient reduction.
    pub reducer: ReducerChoice,
    /// Batches from image files instead of random input.
    pub data: Option<DataBench>,
}

/// Training input from files for [`train_step_throughput`].
#[derive(Debug, Clone)]
pub struct DataBench {
    /// An ImageFolder or a pack.
    pub path: std::path::PathBuf,
    /// Loader threads.
    pub workers: usize,
    /// Augmentation.
    pub augment: Augment,
}

impl Default for StepBenchConfig {
    fn default() -> Self {
        StepBenchConfig {
            arch: ArchName::Zfnet,
            batch: 64,
            steps: 5,
            warmup: 2,
            classes: 1000,
            devices: vec![Device::Cpu],
            reducer: ReducerChoice::Auto,
            data: None,
        }
    }
}

/// A benchmark mode: `fp32`, `bf16` or `fp16`, optionally `-channels-last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Compute kind.
    pub kind: Kind,
    /// Channels-last batches.
    pub channels_last: bool,
}

impl std::str::FromStr for Mode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Mode> {
        let (base, channels_last) = match s.strip_suffix("-channels-last") {
            Some(b) => (b, true),
            None => (s, false),
        };
        let kind = match base {
            "fp32" => Kind::Float,
            "bf16" => Kind::BFloat16,
            "fp16" => Kind::Half,
            _ => bail!("unknown mode '{s}': fp32, bf16 or fp16, optionally with -channels-last"),
        };
        Ok(Mode {
            kind,
            channels_last,
        })
    }
}

/// Images per second of whole training steps (forward, backward,
/// all-reduce, SGD with momentum and weight decay) in `mode`: from random
/// input held on the CPU and copied to the devices each step, or, with
/// `b.data`, from files through the loader and the prefetch thread as
/// training does (timed from the first step after the warm-up ones, so the
/// loader's start-up is left out).
pub fn train_step_throughput(b: &StepBenchConfig, mode: Mode) -> Result<f64> {
    if mode.kind == Kind::Half && b.devices.iter().any(|d| !d.is_cuda()) {
        bail!("fp16 needs GPUs (its loss scaling is for CUDA)");
    }
    tch::manual_seed(0);
    let arch = Arch::builtin(
        b.arch,
        &ArchConfig {
            classes: b.classes,
            ..ArchConfig::default()
        },
    )?;
    let side = arch.input[1];
    let optim = OptimConfig {
        lr: 1e-3,
        momentum: 0.9,
        weight_decay: 5e-4,
        ..OptimConfig::default()
    };
    let reducer = reducer_for(&b.devices, b.reducer, NcclWatch::default())?;
    let mut dp = DataParallel::new(arch, InitScheme::Kaiming, &b.devices, optim, reducer)?;
    if mode.kind == Kind::Half {
        dp.scaler = Some(LossScaler::default());
    }
    let opts = StepOptions {
        kind: mode.kind,
        lr: 1e-3,
        dropout_seed: Some(1),
        channels_last: mode.channels_last,
        ..StepOptions::default()
    };
    let layout = TensorLayout {
        crop: side as u32,
        kind: mode.kind,
        channels_last: mode.channels_last,
        pinned: b.devices.iter().any(|d| d.is_cuda()),
    };
    let mut batches = match &b.data {
        None => random_batches(b, mode, layout)?,
        Some(data) => file_batches(b, data, layout)?,
    };
    let mut step = |what: &str| -> Result<()> {
        let (x, y) = batches.next().context("no more batches")??;
        dp.step(&x, &y, &opts)
            .with_context(|| format!("a {what} step"))?;
        Ok(())
    };
    for _ in 0..b.warmup {
        step("warm-up")?;
    }
    let start = Instant::now();
    for _ in 0..b.steps {
        // The loss is read back each step, which waits for the devices.
        step("timed")?;
    }
    Ok((b.batch as usize * b.steps) as f64 / start.elapsed().as_secs_f64())
}

/// Endless `(images, labels)` batches of a step benchmark.
type Batches = Box<dyn Iterator<Item = Result<(Tensor, Tensor)>>>;

/// The same random batch every step, in the step's layout (page-locked
/// for GPUs).
fn random_batches(b: &StepBenchConfig, mode: Mode, layout: TensorLayout) -> Result<Batches> {
    let side = layout.crop as i64;
    let x = Tensor::randn([b.batch, 3, side, side], (Kind::Float, Device::Cpu));
    let x = x.to_kind(mode.kind);
    let x = if mode.channels_last {
        to_channels_last(&x)
    } else {
        x
    };
    let y = Tensor::randint(b.classes, [b.batch], (Kind::Int64, Device::Cpu));
    let (x, y) = if layout.pinned {
        (page_locked(&x)?, page_locked(&y)?)
    } else {
        (x, y)
    };
    Ok(Box::new(std::iter::repeat_with(move || {
        Ok((x.shallow_clone(), y.shallow_clone()))
    })))
}

/// Batches from `data`'s files through the loader and the prefetch thread,
/// epoch after epoch, as training makes them.
fn file_batches(b: &StepBenchConfig, data: &DataBench, layout: TensorLayout) -> Result<Batches> {
    let dataset = Dataset::open(&data.path)?;
    if dataset.classes.len() as i64 > b.classes {
        bail!(
            "{} has {} classes, more than --classes {}",
            data.path.display(),
            dataset.classes.len(),
            b.classes
        );
    }
    let transform = Transform {
        augment: data.augment,
        crop: layout.crop,
        ..Transform::default()
    };
    let config = LoaderConfig {
        batch_size: b.batch as usize,
        workers: data.workers,
        drop_last: true,
        ..LoaderConfig::default()
    };
    let loader = Loader::new(dataset, transform, config);
    if loader.batches_per_epoch() == 0 {
        bail!("{} holds less than one batch", data.path.display());
    }
    Ok(Box::new((0u64..).flat_map(move |epoch| {
        let batches = loader.epoch(epoch, 0);
        Prefetch::new(&loader, batches, layout).map(|p| p.map(|p| (p.images, p.labels)))
    })))
}

/// Projections per second, batched against one target at a time.
#[derive(Debug, Clone, Copy)]
pub struct BatchingFigures {
    /// Targets projected in each timed pass.
    pub targets: usize,
    /// `project_fields` with up to `max_batch` targets per pass (the top-k
    /// miner's path).
    pub batched: f64,
    /// The same code called with one target at a time.
    pub one_at_a_time: f64,
}

/// Deconvnet projections of conv layer `layer` (1-based) of ZFNet on
/// `device`: random He weights, 8 random images, `targets` targets (the
/// strongest unit of `targets / 8` feature maps of each image), batched
/// against a loop of single projections; each timed after one untimed pass,
/// the device synchronized at the end.
pub fn projection_batching(
    device: Device,
    layer: usize,
    targets: usize,
    max_batch: usize,
) -> Result<BatchingFigures> {
    tch::manual_seed(0);
    let arch = Arch::builtin(ArchName::Zfnet, &ArchConfig::default())?;
    let convs = 5;
    if layer == 0 || layer > convs {
        bail!("--layer {layer}: ZFNet's conv layers are 1 to {convs}");
    }
    let model = Model::new(arch, InitScheme::Kaiming, device)?;
    let input = Tensor::randn([8, 3, 224, 224], (Kind::Float, device));
    let taps = tch::no_grad(|| model.net.forward_taps(&input, false));
    let maps = taps.convs[layer - 1].size()[1];
    let per_image = targets.div_ceil(8).max(1) as i64;
    let list: Vec<Target> = (0..targets as i64)
        .map(|i| Target::strongest(&taps, i % 8, layer - 1, (i / 8) * maps / per_image))
        .collect();
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let time = |f: &dyn Fn() -> Result<()>| -> Result<f64> {
        f()?;
        sync();
        let start = Instant::now();
        f()?;
        sync();
        Ok(list.len() as f64 / start.elapsed().as_secs_f64())
    };
    let batched = time(&|| {
        tch::no_grad(|| project_fields(&model.net, &taps, &list, max_batch))?;
        Ok(())
    })?;
    let one_at_a_time = time(&|| {
        for t in &list {
            tch::no_grad(|| project_fields(&model.net, &taps, std::slice::from_ref(t), 1))?;
        }
        Ok(())
    })?;
    Ok(BatchingFigures {
        targets: list.len(),
        batched,
        one_at_a_time,
    })
}

/// One conv layer's projections on the CPU and on a device.
#[derive(Debug, Clone)]
pub struct ProjectionAgreement {
    /// Conv layer, 1-based.
    pub layer: usize,
    /// Targets projected.
    pub targets: usize,
    /// Seconds on the CPU.
    pub cpu_seconds: f64,
    /// Seconds on the device (after one untimed pass).
    pub device_seconds: f64,
    /// `max |cpu - device| / max |cpu|`.
    pub relative_difference: f64,
}

/// Projects the strongest unit of `per_layer` feature maps of every conv
/// layer of ZFNet (random He weights, 4 random images) on the CPU and on
/// `device`, with the same weights, and compares.
pub fn projection_agreement(device: Device, per_layer: i64) -> Result<Vec<ProjectionAgreement>> {
    tch::manual_seed(0);
    let arch = Arch::builtin(ArchName::Zfnet, &ArchConfig::default())?;
    let cpu = Model::new(arch.clone(), InitScheme::Kaiming, Device::Cpu)?;
    let dev = Model::new(arch, InitScheme::Kaiming, device)?;
    tch::no_grad(|| {
        for ((_, s), (_, mut d)) in cpu.named_weights().iter().zip(dev.named_weights()) {
            d.copy_(s);
        }
    });
    let images = Tensor::randn([4, 3, 224, 224], (Kind::Float, Device::Cpu));
    let cpu_taps = tch::no_grad(|| cpu.net.forward_taps(&images, false));
    let dev_taps = tch::no_grad(|| dev.net.forward_taps(&images.to_device(device), false));
    let mut out = Vec::new();
    for (conv, tap) in cpu_taps.convs.iter().enumerate() {
        let c = tap.size()[1];
        let targets: Vec<Target> = (0..per_layer.min(c))
            .map(|i| Target::strongest(&cpu_taps, i % 4, conv, i * c / per_layer.min(c)))
            .collect();
        let timed = |net: &Model, taps| -> Result<(Tensor, f64)> {
            let start = Instant::now();
            let p = tch::no_grad(|| project_fields(&net.net, taps, &targets, 64))?.pixels;
            let p = p.to_device(Device::Cpu);
            Ok((p, start.elapsed().as_secs_f64()))
        };
        let (on_cpu, cpu_seconds) = timed(&cpu, &cpu_taps)?;
        let _warm_up = timed(&dev, &dev_taps)?;
        let (on_dev, device_seconds) = timed(&dev, &dev_taps)?;
        let scale = on_cpu.abs().max().double_value(&[]).max(f64::MIN_POSITIVE);
        let diff = (&on_cpu - &on_dev).abs().max().double_value(&[]);
        out.push(ProjectionAgreement {
            layer: conv + 1,
            targets: targets.len(),
            cpu_seconds,
            device_seconds,
            relative_difference: diff / scale,
        });
    }
    Ok(out)
}

/// What [`nccl_smoke`] found.
#[derive(Debug, Clone)]
pub struct NcclSmoke {
    /// Where NCCL was loaded from.
    pub library: String,
    /// Its version (e.g. 23200 for 2.32.0).
    pub version: i32,
    /// Largest difference of the weighted all-reduce from `weight * x`.
    pub all_reduce_error: f64,
    /// Largest difference of the broadcast from its input.
    pub broadcast_error: f64,
}

/// NCCL on one GPU, one rank: the communicator made, a weighted all-reduce
/// (the reducer's own path: scale, sum, wait with the error polling) and a
/// broadcast of 1 Mi floats, checked against what they must give.
pub fn nccl_smoke(gpu: usize) -> Result<NcclSmoke> {
    use zftrain_parallel::{GradReducer, Nccl, NcclReducer};
    let nccl = Nccl::open()?;
    let (library, version) = (nccl.path.clone(), nccl.version);
    let reducer = NcclReducer::local(nccl, &[gpu], NcclWatch::default())?;
    let device = Device::Cuda(gpu);
    let x = Tensor::arange(1 << 20, (Kind::Float, device)) / 1024.0;
    let weight = 0.375;
    let g = x.copy();
    reducer.all_reduce(&[vec![g.shallow_clone()]], &[weight])?;
    let all_reduce_error = (&g - &x * weight).abs().max().double_value(&[]);
    let b = x.copy();
    reducer.broadcast(&[vec![b.shallow_clone()]])?;
    let broadcast_error = (&b - &x).abs().max().double_value(&[]);
    Ok(NcclSmoke {
        library,
        version,
        all_reduce_error,
        broadcast_error,
    })
}

/// Two replicas of ZFNet-seed on one `device` (the replica threads and the
/// device-copy reducer) against one replica: the largest difference of any
/// weight tensor's update after `steps` fp32 steps with dropout on, relative
/// to the update (L2 norms); errors if the two replicas drift apart.
pub fn replicas_agreement(device: Device, steps: usize, batch: i64) -> Result<f64> {
    updates_difference(device, steps, batch, &|| {
        Box::new(zftrain_parallel::CopyReducer)
    })
}

/// [`replicas_agreement`] with the two replicas' reducer made by `reducer`.
fn updates_difference(
    device: Device,
    steps: usize,
    batch: i64,
    reducer: &dyn Fn() -> Box<dyn zftrain_parallel::GradReducer>,
) -> Result<f64> {
    use zftrain_parallel::CopyReducer;
    let arch = Arch::builtin(
        ArchName::ZfnetSeed,
        &ArchConfig {
            classes: 10,
            ..ArchConfig::default()
        },
    )?;
    let optim = OptimConfig {
        lr: 1e-3,
        momentum: 0.9,
        weight_decay: 5e-4,
        ..OptimConfig::default()
    };
    let side = arch.input[1];
    // The updates (weights after the steps less the initial ones), which a
    // wrong reduction changes by their own size.
    let train = |devices: &[Device]| -> Result<Vec<(String, Tensor)>> {
        let mut dp = DataParallel::new(
            arch.clone(),
            InitScheme::Kaiming,
            devices,
            optim.clone(),
            if devices.len() == 1 {
                Box::new(CopyReducer)
            } else {
                reducer()
            },
        )?;
        // Weights and inputs from our own generator: libtorch's is global,
        // and other threads (tests) may draw from it meanwhile.
        let initial: Vec<Tensor> = tch::no_grad(|| {
            let weights = dp.primary().named_weights().into_iter().enumerate();
            weights
                .map(|(i, (_, mut w))| {
                    let fan_in: i64 = w.size()[1..].iter().product::<i64>().max(1);
                    let init = seeded_uniform(&w.size(), i as u64, (6.0 / fan_in as f64).sqrt());
                    w.copy_(&init.to_device(w.device()));
                    init
                })
                .collect()
        });
        dp.broadcast_from_first();
        for step in 0..steps as i64 {
            // Inputs and a rate that keep the loss near ln(10): a diverging
            // run would amplify rounding differences into large ones.
            let x = seeded_uniform(&[batch, 3, side, side], 1000 + step as u64, 0.5);
            let y = Tensor::arange(batch, (Kind::Int64, Device::Cpu)).remainder(10);
            let opts = StepOptions {
                lr: 1e-4,
                dropout_seed: Some(7 + step as u64),
                ..StepOptions::default()
            };
            dp.step(&x, &y, &opts)?;
            dp.check_in_sync()?;
        }
        let weights = dp.primary().named_weights().into_iter().zip(&initial);
        Ok(weights
            .map(|((name, w), init)| (name, w.to_device(Device::Cpu) - init))
            .collect())
    };
    let one = train(&[device])?;
    let two = train(&[device, device])?;
    let mut worst = 0.0f64;
    for ((name, a), (_, b)) in one.iter().zip(&two) {
        let scale = a.norm().double_value(&[]).max(1e-30);
        let diff = (a - b).norm().double_value(&[]) / scale;
        if !diff.is_finite() {
            bail!("{name}: not finite after {steps} steps");
        }
        worst = worst.max(diff);
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zftrain_parallel::{CopyReducer, GradReducer};

    #[test]
    fn modes_parse_and_unknown_ones_are_named() {
        let m: Mode = "bf16-channels-last".parse().unwrap();
        assert_eq!((m.kind, m.channels_last), (Kind::BFloat16, true));
        let m: Mode = "fp32".parse().unwrap();
        assert_eq!((m.kind, m.channels_last), (Kind::Float, false));
        let e = "int8".parse::<Mode>().unwrap_err().to_string();
        assert!(e.contains("'int8'"), "{e}");
    }

    #[test]
    fn the_cpu_agrees_with_itself_and_fp16_needs_gpus() {
        let a = projection_agreement(Device::Cpu, 2).unwrap();
        assert_eq!(a.len(), 5);
        assert!(
            a.iter()
                .all(|l| l.relative_difference == 0.0 && l.targets == 2),
            "{a:?}"
        );
        let b = StepBenchConfig {
            batch: 2,
            steps: 1,
            warmup: 0,
            classes: 3,
            arch: ArchName::ZfnetSeed,
            ..StepBenchConfig::default()
        };
        let e = train_step_throughput(&b, "fp16".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("fp16 needs GPUs"), "{e}");
        assert!(train_step_throughput(&b, "fp32".parse().unwrap()).unwrap() > 0.0);
    }

    /// Sums the replicas' gradients without their weights: the gradient of
    /// the sum of the shards' mean losses, twice the right one.
    struct Unweighted;

    impl GradReducer for Unweighted {
        fn all_reduce(
            &self,
            grads: &[Vec<Tensor>],
            weights: &[f64],
        ) -> zftrain_parallel::Result<()> {
            CopyReducer.all_reduce(grads, &vec![1.0; weights.len()])
        }
        fn name(&self) -> &'static str {
            "unweighted"
        }
    }

    #[test]
    fn the_engine_check_passes_two_replicas_and_catches_a_wrong_reduction() {
        let right = replicas_agreement(Device::Cpu, 1, 8).unwrap();
        assert!(right < 1e-3, "{right}");
        let wrong = updates_difference(Device::Cpu, 1, 8, &|| Box::new(Unweighted)).unwrap();
        assert!(wrong > 0.5, "a doubled gradient went unnoticed: {wrong}");
    }
}
