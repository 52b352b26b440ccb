//! `zftrain init`, `export` and `import`: weights between checkpoints and
//! plain safetensors files with PyTorch's names.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use tch::Device;
use zftrain_checkpoints::{write_safetensors, Checkpoint};
use zftrain_model::InitScheme;

use crate::cli::{ExportArgs, ExportFormat, ImportArgs, InitArgs};
use crate::weights::{
    config_from_args, load_model, ArchOverrides, Model, WeightsInfo, IMAGENET_MEAN, IMAGENET_STD,
};

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
    let model = Model::new(arch, InitScheme::from(args.init), Device::Cpu)?;
    let info = WeightsInfo {
        arch: spec,
        config,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        class_names: None,
    };
    let init: InitScheme = args.init.into();
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
