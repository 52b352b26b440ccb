//! An ImageNet-shaped tree for rehearsing a run at scale without ImageNet:
//! 1,000 class folders named like ImageNet's (`n00000000` ...), 100
//! training and 10 validation files per class by default, all hard links to
//! a few hundred real JPEG files (the synthetic set's pictures, ImageNet's
//! typical 500x375) in `sources/`. Listing, decoding, validation and the
//! hooks see exactly as many files as they would at that scale; the disk
//! holds only the sources.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::synth::{write_synthetic, SynthConfig};
use crate::DataError;

/// The tree's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapedConfig {
    /// Class folders in each split.
    pub classes: usize,
    /// Training files per class.
    pub train_per_class: usize,
    /// Validation files per class.
    pub val_per_class: usize,
    /// Distinct JPEG files the links point to.
    pub sources: usize,
    /// Their width.
    pub width: u32,
    /// Their height.
    pub height: u32,
    /// Seed of the pictures.
    pub seed: u64,
}

impl Default for ShapedConfig {
    fn default() -> Self {
        ShapedConfig {
            classes: 1000,
            train_per_class: 100,
            val_per_class: 10,
            sources: 300,
            width: 500,
            height: 375,
            seed: 0,
        }
    }
}

/// Writes the tree to `out` (which must not exist): `out/sources/` (the
/// JPEG files), `out/train/nCCCCCCCC/IIIII.jpg` and `out/val/...` (links
/// to them, spread over the sources in turn). Written beside `out` and
/// renamed into place, so an interrupted run leaves no half tree.
pub fn write_imagenet_shaped(out: &Path, config: &ShapedConfig) -> Result<(), DataError> {
    if config.classes == 0
        || config.train_per_class == 0
        || config.val_per_class == 0
        || config.sources == 0
    {
        return Err(DataError::layout(
            out,
            "classes, files per class and sources must each be at least 1",
        ));
    }
    if out.exists() {
        return Err(DataError::layout(
            out,
            "already exists; remove it or choose another folder",
        ));
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let tmp = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let result = (|| {
        // The synthetic set's ten classes, as many pictures as asked.
        let pictures = tmp.join("pictures");
        let per_class = config.sources.div_ceil(10);
        write_synthetic(
            &pictures,
            &SynthConfig {
                classes: 10,
                train_per_class: per_class,
                val_per_class: 1,
                width: config.width,
                height: config.height,
                seed: config.seed,
                ..SynthConfig::default()
            },
        )?;
        let sources = tmp.join("sources");
        fs::create_dir_all(&sources).map_err(DataError::io("creating", &sources))?;
        let mut files = Vec::new();
        for entry in crate::Dataset::image_folder(&pictures.join("train"))?
            .samples
            .into_iter()
            .take(config.sources)
        {
            let to = sources.join(format!("{:04}.jpg", files.len()));
            fs::rename(&entry.path, &to).map_err(DataError::io("moving", &entry.path))?;
            files.push(to);
        }
        fs::remove_dir_all(&pictures).map_err(DataError::io("removing", &pictures))?;
        let mut next = 0usize;
        for (split, per_class) in [
            ("train", config.train_per_class),
            ("val", config.val_per_class),
        ] {
            for class in 0..config.classes {
                let dir = tmp.join(split).join(format!("n{class:08}"));
                fs::create_dir_all(&dir).map_err(DataError::io("creating", &dir))?;
                for i in 0..per_class {
                    let link = dir.join(format!("{i:05}.jpg"));
                    let source = &files[next % files.len()];
                    next += 1;
                    fs::hard_link(source, &link).map_err(DataError::io("linking", &link))?;
                }
            }
        }
        fs::rename(&tmp, out).map_err(DataError::io("renaming into place", out))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dataset;

    #[test]
    fn the_tree_has_every_class_and_file_and_the_disk_only_the_sources() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("shaped");
        let config = ShapedConfig {
            classes: 30,
            train_per_class: 4,
            val_per_class: 2,
            sources: 7,
            width: 40,
            height: 30,
            seed: 1,
        };
        write_imagenet_shaped(&out, &config).unwrap();
        let train = Dataset::image_folder(&out.join("train")).unwrap();
        let val = Dataset::image_folder(&out.join("val")).unwrap();
        assert_eq!((train.classes.len(), train.len()), (30, 120));
        assert_eq!((val.classes.len(), val.len()), (30, 60));
        assert_eq!(train.classes[0], "n00000000");
        let inodes: std::collections::BTreeSet<u64> = train
            .samples
            .iter()
            .chain(&val.samples)
            .map(|s| fs::metadata(&s.path).unwrap().ino())
            .collect();
        assert_eq!(
            inodes.len(),
            7,
            "every file is a link to one of the 7 sources"
        );
        assert!(
            val.decode(0, u64::MAX).is_ok(),
            "the links are real JPEG files"
        );
        let err = write_imagenet_shaped(&out, &config)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists"), "{err}");
    }
}
