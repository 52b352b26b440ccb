//! `zftrain init`, `export` and `import`: weights between checkpoints and
//! plain safetensors files with PyTorch's names.

use std::path::Path;

use crate::commands::Run;
use anyhow::{Context, Result};
use serde_json::json;
use tch::Device;
use zftrain_checkpoints::{write_safetensors, Checkpoint};
use zftrain_model::InitScheme;

use crate::cli::{named, ArchArgs};
use crate::weights::{
    config_from_args, load_model, ArchOverrides, Model, WeightsInfo, IMAGENET_MEAN, IMAGENET_STD,
};
use clap::Args;
use std::path::PathBuf;

/// `zftrain init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The architecture and its options.
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Initialization scheme: pytorch (PyTorch's defaults), zf (N(0,
    /// 1e-2), biases 0), alexnet (N(0, 1e-2), biases 1 in conv2, conv4,
    /// conv5, fc6, fc7) or kaiming (He et al.: N(0, 2 / fan_in)).
    #[arg(long, default_value = "pytorch", value_parser = named::<InitScheme>)]
    pub init: InitScheme,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Checkpoint directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// `zftrain export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Checkpoint directory.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// File to write.
    #[arg(long)]
    pub out: PathBuf,
    /// `safetensors` (the weights with PyTorch's names) or `torchscript`
    /// (the traced network, for `torch.jit.load`; a JSON file with the
    /// input size, normalization and classes goes beside it as OUT.json).
    #[arg(long, default_value = "safetensors", value_parser = named::<ExportFormat>)]
    pub format: ExportFormat,
}

/// What `zftrain export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// The weights as a safetensors file with PyTorch's parameter names.
    Safetensors,
    /// A TorchScript module of the network (weights included).
    Torchscript,
}

/// `zftrain import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The architecture and its options.
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Safetensors file with PyTorch parameter names.
    #[arg(long)]
    pub weights: PathBuf,
    /// Per-channel input mean the weights were trained with (r,g,b, on [0, 1] pixels).
    #[arg(long, value_parser = crate::weights::parse_triple)]
    pub mean: Option<[f64; 3]>,
    /// Per-channel input standard deviation (r,g,b).
    #[arg(long, value_parser = crate::weights::parse_triple)]
    pub std: Option<[f64; 3]>,
    /// Checkpoint directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes `model` as a new checkpoint directory `out`.
fn write_checkpoint(
    out: &Path,
    model: &Model,
    info: &WeightsInfo,
    source: serde_json::Value,
) -> Result<()> {
    let meta = json!({ "weights": info, "source": source });
    Checkpoint::write(out, &model.named_weights(), &info.to_metadata(), meta)
        .with_context(|| format!("writing checkpoint {}", out.display()))?;
    Ok(())
}

/// `zftrain init`.
pub fn init(args: &InitArgs) -> Result<()> {
    let (spec, config) = config_from_args(&args.arch.overrides())?;
    let arch = spec.table(&config)?;
    tch::manual_seed(args.seed);
    let model = Model::new(arch, args.init, Device::Cpu)?;
    let info = WeightsInfo {
        arch: spec,
        config,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        class_names: None,
    };
    let init: InitScheme = args.init;
    write_checkpoint(
        &args.out,
        &model,
        &info,
        json!({ "init": init, "seed": args.seed }),
    )?;
    println!(
        "wrote {} ({}, {} classes, {init:?} init, seed {})",
        args.out.display(),
        info.arch,
        info.config.classes,
        args.seed
    );
    Ok(())
}

/// `zftrain export`.
pub fn export(args: &ExportArgs) -> Result<()> {
    let (model, info) = load_model(None, Some(&args.checkpoint), &ArchOverrides::default())?;
    if args.format == ExportFormat::Torchscript {
        super::torchscript::export(&model, &info, &args.out)?;
        println!(
            "wrote {} (TorchScript of {}, {} classes; model = torch.jit.load(path); logits = model(x) for x of [N, {}]) and {}",
            args.out.display(),
            info.arch,
            info.config.classes,
            model.net.arch().input.map(|v| v.to_string()).join(", "),
            super::torchscript::sidecar_path(&args.out).display()
        );
        return Ok(());
    }
    write_safetensors(&args.out, &model.named_weights(), &info.to_metadata())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} ({} tensors, PyTorch names; load with model.load_state_dict(safetensors.torch.load_file(path), strict=True))",
        args.out.display(),
        model.named_weights().len()
    );
    Ok(())
}

/// `zftrain import`.
pub fn import(args: &ImportArgs) -> Result<()> {
    let (model, mut info) = load_model(Some(&args.weights), None, &args.arch.overrides())?;
    if let Some(mean) = args.mean {
        info.mean = mean;
    }
    if let Some(std) = args.std {
        anyhow::ensure!(
            std.iter().all(|s| *s > 0.0),
            "--std values must be positive, got {std:?}"
        );
        info.std = std;
    }
    let source = json!({ "imported_from": args.weights.display().to_string() });
    write_checkpoint(&args.out, &model, &info, source)?;
    println!(
        "wrote {} ({}, {} classes) from {}",
        args.out.display(),
        info.arch,
        info.config.classes,
        args.weights.display()
    );
    Ok(())
}

impl Run for InitArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        init(self).map(|()| 0)
    }
}

impl Run for ExportArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        export(self).map(|()| 0)
    }
}

impl Run for ImportArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        import(self).map(|()| 0)
    }
}
