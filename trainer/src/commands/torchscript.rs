//! `zftrain export --format torchscript`: the network's evaluation forward
//! traced by libtorch into a TorchScript module that `torch.jit.load` runs
//! with no Python class of the network (architecture files, the two-tower
//! AlexNet and zfnet-seed included), with a JSON file beside it for what a
//! module cannot say: the input size, its normalization and the classes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use tch::{CModule, Kind, Tensor};
use zftrain_checkpoints::atomic::{sync_dir, temp_sibling, write_file};

use crate::weights::{Model, WeightsInfo};

/// A TorchScript class name for an architecture's name (`zfnet-seed` ->
/// `zfnet_seed`: TorchScript takes identifiers only).
fn module_name(arch: &str) -> String {
    let name: String = arch
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    match name.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => name,
        _ => format!("net_{name}"),
    }
}

/// The description written beside `out`: `OUT.json`.
pub fn sidecar_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    out.with_file_name(name)
}

/// Traces `model` (evaluation mode: dropout off, batch norm on its running
/// statistics) on a batch of two zero images and writes the module to
/// `out` atomically, then `OUT.json`. The traced graph keeps the batch
/// dimension free; the image size is the architecture's.
pub fn export(model: &Model, info: &WeightsInfo, out: &Path) -> Result<()> {
    let arch = model.net.arch();
    let [c, h, w] = arch.input;
    let example = Tensor::zeros([2, c, h, w], (Kind::Float, tch::Device::Cpu));
    // Weights go into the trace as constants, which must not require
    // gradients.
    for (_, t) in model.named_weights() {
        let _ = t.set_requires_grad(false);
    }
    let net = &model.net;
    let module = tch::no_grad(|| {
        CModule::create_by_tracing(&module_name(&arch.name), "forward", &[example], &mut |xs| {
            vec![net.forward(&xs[0], false)]
        })
    })
    .with_context(|| format!("tracing {} into TorchScript", arch.name))?;
    let tmp = temp_sibling(out);
    let saved = module
        .save(&tmp)
        .with_context(|| format!("writing {}", out.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))
        });
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(out.parent().unwrap_or(Path::new(".")))?;
    let about = json!({
        "format": "torchscript",
        "arch": info.arch.name(),
        "input": [c, h, w],
        "input_layout": "[N, 3, H, W] float32 RGB, (x / 255 - mean) / std",
        "mean": info.mean,
        "std": info.std,
        "classes": info.config.classes,
        "class_names": info.class_names,
    });
    let text = serde_json::to_string_pretty(&about).expect("JSON values serialize");
    write_file(&sidecar_path(out), text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn architecture_names_become_torchscript_identifiers() {
        assert_eq!(super::module_name("zfnet-seed"), "zfnet_seed");
        assert_eq!(super::module_name("alexnet-2gpu"), "alexnet_2gpu");
        assert_eq!(super::module_name("2tower net"), "net_2tower_net");
        assert_eq!(super::module_name(""), "net_");
    }
}
