//! Image files as the network saw its validation images: the evaluation
//! transform of training (the run's shorter side and crop, 256 and 224 for
//! the papers' networks; the run's mean and std, and its per-pixel mean
//! image if it trained with one), shared by `predict`, `eval` and
//! `analyze`; and class labels given by name or index.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use tch::Tensor;
use zftrain_checkpoints::Checkpoint;
use zftrain_data::loader::decode_rgb;
use zftrain_data::rng::SplitMix64;
use zftrain_data::{Augment, Transform};

use crate::config::RunConfig;
use crate::train::checkpointing::{read_mean_image, CONFIG_FILE};
use crate::weights::WeightsInfo;

/// Largest image decoded, in pixels.
const MAX_PIXELS: u64 = 100_000_000;

/// The weights `source` names (with `arch`'s overrides), on CUDA device
/// `device`: what every command that runs a trained network loads.
pub fn load_on(
    source: &crate::cli::WeightsSource,
    arch: &crate::cli::ArchArgs,
    device: &crate::cli::DeviceArgs,
) -> Result<(crate::weights::Model, WeightsInfo, tch::Device)> {
    let device = device.device()?;
    let (mut model, info) = crate::weights::load_model(
        source.weights.as_deref(),
        source.checkpoint.as_deref(),
        &arch.overrides(),
    )?;
    model.vs.set_device(device);
    Ok((model, info, device))
}

/// The shorter side and crop the network was trained on: its run's
/// `data.resize` and `data.crop` when the checkpoint keeps its run
/// configuration, else the network's input side with the papers' ratio
/// (224 -> 256). A per-pixel mean image, when there is one, fixes the side.
pub fn input_sizes(checkpoint: Option<&Checkpoint>, info: &WeightsInfo) -> Result<(u32, u32)> {
    if let Some(ck) = checkpoint.filter(|c| c.file(CONFIG_FILE).is_some()) {
        // A configuration of another layout (an older zftrain) is no
        // reason to refuse the weights: the input side then decides.
        match serde_json::from_value::<RunConfig>(ck.read_json(CONFIG_FILE)?) {
            Ok(config) => return Ok((config.data.resize, config.data.crop)),
            Err(e) => eprintln!(
                "zftrain: {}/{CONFIG_FILE} does not read as a run configuration ({e}); cropping at the network's input side",
                ck.dir().display()
            ),
        }
    }
    let side = info.arch_table()?.input[1].max(1) as u32;
    Ok(((side as u64 * 256).div_ceil(224) as u32, side))
}

/// The evaluation transform for weights from `checkpoint` (if any) with
/// `info`: the centre crop (`augment` = `eval`) or its ten views
/// (`ten-crop`).
pub fn eval_transform(
    checkpoint: Option<&Path>,
    info: &WeightsInfo,
    augment: Augment,
) -> Result<Transform> {
    let checkpoint = checkpoint.map(Checkpoint::open).transpose()?;
    let mean_image = match &checkpoint {
        Some(ck) => read_mean_image(ck)?.map(Arc::new),
        None => None,
    };
    let (resize, crop) = input_sizes(checkpoint.as_ref(), info)?;
    let transform = Transform {
        augment,
        mean: info.mean.map(|x| x as f32),
        std: info.std.map(|x| x as f32),
        resize: mean_image.as_ref().map_or(resize, |m| m.side()),
        crop,
        mean_image,
        ..Transform::default()
    };
    transform.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(transform)
}

/// Decodes `path` and applies `transform`: a `[3, crop, crop]` tensor, or
/// `[views, 3, crop, crop]` for a transform of several views.
pub fn load_image(transform: &Transform, path: &Path) -> Result<Tensor> {
    let img = decode_rgb(path, MAX_PIXELS)
        .map_err(|m| anyhow::anyhow!("decoding image {}: {m}", path.display()))?;
    let mut buf = vec![0f32; transform.sample_len()];
    transform.apply(&img, &mut SplitMix64::new(0), &mut buf);
    let c = transform.crop as i64;
    let image = Tensor::from_slice(&buf);
    Ok(match transform.augment.views() as i64 {
        1 => image.view([3, c, c]),
        views => image.view([views, 3, c, c]),
    })
}

/// A class given as an index or as a name from `names`.
pub fn resolve_class(label: &str, names: Option<&[String]>, classes: i64) -> Result<i64> {
    if let Ok(i) = label.parse::<i64>() {
        if (0..classes).contains(&i) {
            return Ok(i);
        }
        bail!(
            "label {i} is not a class index of this network (0 to {})",
            classes - 1
        );
    }
    match names.and_then(|n| n.iter().position(|c| c == label)) {
        Some(i) => Ok(i as i64),
        None => {
            let known = names.map_or("none are stored with these weights".to_string(), |n| {
                let shown: Vec<&str> = n.iter().take(10).map(String::as_str).collect();
                format!(
                    "{}{}",
                    shown.join(", "),
                    if n.len() > 10 { ", ..." } else { "" }
                )
            });
            bail!("label '{label}' is not a class name of this network (names: {known})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_indices_or_names_and_others_are_named_in_the_error() {
        let names = vec!["cat".to_string(), "dog".to_string()];
        assert_eq!(resolve_class("1", Some(&names), 2).unwrap(), 1);
        assert_eq!(resolve_class("dog", Some(&names), 2).unwrap(), 1);
        let e = resolve_class("7", Some(&names), 2).unwrap_err().to_string();
        assert!(e.contains("label 7") && e.contains("0 to 1"), "{e}");
        let e = resolve_class("cow", Some(&names), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'cow'") && e.contains("cat, dog"), "{e}");
    }
}
