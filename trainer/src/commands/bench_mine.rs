//! `zftrain bench mine`: the Deconvnet hook's mining (top-k of chosen maps
//! of every conv layer over a probe set, then the winners projected)
//! against plain evaluation (the forward to the logits) of the same images,
//! through the same streamed probe set, on the same devices, in one run.
//! Each pass's peak resident memory is measured on its own (the kernel's
//! high-water mark is reset before it), so running it at two probe sizes
//! shows whether memory grows with the probe set.

use std::time::Instant;

use crate::commands::Run;
use anyhow::{bail, Result};
use tch::{Device, Kind};
use zftrain_data::Dataset;
use zftrain_deconv::MinerConfig;
use zftrain_hooks::builtin::deconv_grid::{layer_choices, Maps};
use zftrain_hooks::{mine_probe, on_devices, HookContext, MemorySink, ProbeSet};
use zftrain_model::arch::ArchConfig;
use zftrain_model::network::to_channels_last;
use zftrain_model::{Arch, InitScheme, Model, Network};

use crate::cli::{named, DevicesArgs};
use crate::config::RunConfig;
use crate::memory::{peak_rss_mib, reset_peak_rss};
use crate::train::probe::LoaderProbe;
use clap::Args;
use std::path::PathBuf;
use zftrain_model::ArchName;

/// `zftrain bench mine`.
#[derive(Debug, Args)]
pub struct MineBenchArgs {
    /// An image folder (class folders of images), e.g. `imagenet/val`.
    #[arg(long)]
    pub data: PathBuf,
    /// Architecture (randomly initialized: mining costs the same whatever
    /// the weights).
    #[arg(long, value_parser = named::<ArchName>, default_value = "zfnet")]
    pub arch: ArchName,
    /// Output classes.
    #[arg(long, default_value_t = 1000)]
    pub classes: i64,
    /// Probe images, evenly spaced over the folder (0: all of them).
    #[arg(long, default_value_t = 0)]
    pub images: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Feature maps mined per conv layer (evenly spaced).
    #[arg(long, default_value_t = 16)]
    pub maps: usize,
    /// Activations kept per feature map.
    #[arg(long, default_value_t = 9)]
    pub k: usize,
    /// The devices.
    #[command(flatten)]
    pub devices: DevicesArgs,
    /// Passes to time, comma-separated: eval, mine, and values (mining's
    /// first pass alone: the top-k values and places, no projections).
    #[arg(long, default_value = "eval,mine")]
    pub passes: String,
}

/// One timed pass.
struct Pass {
    name: &'static str,
    seconds: f64,
    images: usize,
    peak_rss_mib: Option<f64>,
}

/// Runs the passes `args.passes` asks for and prints their table.
pub fn mine(args: &MineBenchArgs) -> Result<()> {
    let devices = args.devices.devices()?;
    let models = replica_models(args, &devices)?;
    let replicas: Vec<_> = models
        .iter()
        .zip(&devices)
        .map(|(m, &d)| (&m.net, d))
        .collect();
    let dataset = Dataset::open(&args.data)?;
    let mut config = RunConfig::default();
    config.probe.images = args.images;
    config.probe.batch_size = args.batch;
    config.data.workers = args.workers;
    let probe = LoaderProbe::new(&config, &dataset, None)?;
    let mut passes = Vec::new();
    for name in args.passes.split(',').map(str::trim) {
        reset_peak_rss();
        let start = Instant::now();
        let (name, images) = match name {
            "eval" => ("eval", evaluate(&replicas, &probe)?),
            "mine" => ("mine", mine_pass(args, &replicas, &probe, true)?),
            "values" => ("values", mine_pass(args, &replicas, &probe, false)?),
            other => bail!("--passes: '{other}' is not eval, mine or values"),
        };
        passes.push(Pass {
            name,
            seconds: start.elapsed().as_secs_f64(),
            images,
            peak_rss_mib: peak_rss_mib(),
        });
    }
    print_table(args, &devices, probe.len(), &passes);
    Ok(())
}

/// The same freshly initialized network on every device.
fn replica_models(args: &MineBenchArgs, devices: &[Device]) -> Result<Vec<Model>> {
    let arch = Arch::builtin(
        args.arch,
        &ArchConfig {
            classes: args.classes,
            ..ArchConfig::default()
        },
    )?;
    tch::manual_seed(0);
    let mut models: Vec<Model> = Vec::new();
    for &device in devices {
        let mut model = Model::new(arch.clone(), InitScheme::Kaiming, device)?;
        if let Some(first) = models.first() {
            model.vs.copy(&first.vs)?;
        }
        models.push(model);
    }
    Ok(models)
}

/// One mining pass over the probe set (with the projections when
/// `project`); the images it read.
fn mine_pass(
    args: &MineBenchArgs,
    replicas: &[(&Network, Device)],
    probe: &LoaderProbe,
    project: bool,
) -> Result<usize> {
    // Mining writes nothing; hooks need a folder all the same.
    let dir = std::env::temp_dir();
    let sink = MemorySink::default();
    let ctx = HookContext {
        net: replicas[0].0,
        device: replicas[0].1,
        replicas,
        probe,
        train_probe: None,
        epoch: 0,
        step: 0,
        run_dir: &dir,
        sink: &sink,
        metrics: Default::default(),
        shared: None,
        stop: None,
    };
    let choices = layer_choices(ctx.net, &[], &Maps::Count(args.maps), "bench")?;
    let config = MinerConfig {
        k: args.k,
        project,
        ..MinerConfig::default()
    };
    mine_probe(&ctx, &choices, config)?;
    Ok(probe.len())
}

/// The passes' table, and mining's images/s against evaluation's.
fn print_table(args: &MineBenchArgs, devices: &[Device], n: usize, passes: &[Pass]) {
    let names: Vec<String> = devices
        .iter()
        .map(|&d| zftrain_hooks::fan_out::device_name(d))
        .collect();
    println!(
        "zftrain bench mine: {:?}, {n} images of {}, batch {}, {} workers, top {} of {} maps per conv layer, devices {}",
        args.arch,
        args.data.display(),
        args.batch,
        args.workers,
        args.k,
        args.maps,
        names.join(",")
    );
    println!("pass  images  seconds  images/s  peak-RSS-MiB");
    for p in passes {
        println!(
            "{:<5} {:>6} {:>8.1} {:>9.1} {:>13}",
            p.name,
            p.images,
            p.seconds,
            p.images as f64 / p.seconds.max(1e-9),
            p.peak_rss_mib
                .map(|m| format!("{m:.0}"))
                .unwrap_or("?".into())
        );
    }
    if let (Some(e), Some(m)) = (
        passes.iter().find(|p| p.name == "eval"),
        passes.iter().find(|p| p.name == "mine"),
    ) {
        println!(
            "mining/eval images/s: {:.2}",
            (m.images as f64 / m.seconds) / (e.images as f64 / e.seconds)
        );
    }
}

/// The forward to the logits of every probe image, spread over the
/// devices, as validation runs it by default (channels-last, bf16 where the
/// device has it: `train.precision = "auto"`); the number of images.
fn evaluate(replicas: &[(&zftrain_model::Network, Device)], probe: &LoaderProbe) -> Result<usize> {
    let probe: &dyn ProbeSet = probe;
    let gpu = replicas.iter().any(|(_, d)| d.is_cuda());
    let kind = zftrain_parallel::precision::Precision::Auto.compute_kind(gpu)?;
    let counts = on_devices(
        replicas,
        probe.batches(),
        &|_, _| Ok(0usize),
        &|count, net, device, batch| {
            let input = to_channels_last(&batch.images.to_device(device).to_kind(kind));
            let top = tch::no_grad(|| net.forward(&input, false).argmax(1, false));
            // The predictions reach the CPU, as validation's do.
            let _ = top.to_kind(Kind::Int64).to_device(Device::Cpu);
            *count += batch.indices.len();
            Ok(())
        },
    )?;
    Ok(counts.iter().sum())
}

impl Run for MineBenchArgs {
    fn wants_cuda(&self) -> bool {
        self.devices.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        mine(self).map(|()| 0)
    }
}
