//! The index of a data set: which files, which labels.
//!
//! ImageFolder layout: `ROOT/<class>/**/*.{jpg,jpeg,png}` (extensions in any
//! case); class index = position of the class folder in sorted order, as
//! torchvision's `ImageFolder` does. Files are sorted, so the index is the
//! same on every machine. List form: one `relative/path label` per line, for
//! ImageNet's flat validation folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;

use crate::pack::{is_pack, Pack};
use crate::DataError;

/// One image and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// Class index.
    pub label: usize,
}

/// A list of samples and the class names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Where the data came from (folder or list file).
    pub source: PathBuf,
    /// Class names, index = class.
    pub classes: Vec<String>,
    /// The samples, in a stable order.
    pub samples: Vec<Sample>,
    /// The pack the images live in (`None`: files on disk).
    pub pack: Option<Arc<Pack>>,
}

/// Whether `path` has an image extension we read.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        .unwrap_or(false)
}

/// Every image file under `dir` (recursively), sorted, as
/// [`Dataset::image_folder`] lists a class folder.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    images_under(dir, &mut out)?;
    Ok(out)
}

/// Every image file under `dir`, sorted; symlinked folders are not followed
/// (no loops), symlinked files are. A link that leads nowhere (dangling, or
/// a loop) is listed too, so that the loader names it instead of it
/// vanishing from the data set unnoticed.
fn images_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(DataError::io("reading folder", dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(DataError::io("reading folder", dir))?;
    entries.sort();
    for path in entries {
        let meta = fs::symlink_metadata(&path).map_err(DataError::io("reading", &path))?;
        if meta.is_dir() {
            images_under(&path, out)?;
        } else if is_image(&path) && fs::metadata(&path).map_or(true, |m| !m.is_dir()) {
            out.push(path);
        }
    }
    Ok(())
}

impl Dataset {
    /// A pack file (`zftrain data pack`) or an ImageFolder.
    pub fn open(path: &Path) -> Result<Dataset, DataError> {
        if path.is_file() && is_pack(path) {
            return Ok(Pack::open(path)?.into_dataset());
        }
        Dataset::image_folder(path)
    }

    /// Decodes sample `i` to RGB (from the pack or its file), refusing
    /// images above `max_pixels` before allocating them.
    pub fn decode(&self, i: usize, max_pixels: u64) -> Result<RgbImage, String> {
        match &self.pack {
            Some(pack) => crate::decode::decode_rgb_bytes(&pack.bytes(i)?, max_pixels),
            None => crate::decode::decode_rgb(&self.samples[i].path, max_pixels),
        }
    }

    /// Decodes the part of sample `i` that `region(w, h)` asks for (see
    /// [`crate::decode::decode_region_bytes`]).
    pub fn decode_region(
        &self,
        i: usize,
        max_pixels: u64,
        region: impl FnOnce(u32, u32) -> (u32, u32, u32, u32),
    ) -> Result<crate::decode::Region, String> {
        match &self.pack {
            Some(pack) => crate::decode::decode_region_bytes(&pack.bytes(i)?, max_pixels, region),
            None => {
                let bytes = std::fs::read(&self.samples[i].path).map_err(|e| e.to_string())?;
                crate::decode::decode_region_bytes(&bytes, max_pixels, region)
            }
        }
    }

    /// Indexes an ImageFolder. Errors: a missing folder, no class folders, a
    /// class folder without images.
    pub fn image_folder(root: &Path) -> Result<Dataset, DataError> {
        let mut classes: Vec<(String, PathBuf)> = Vec::new();
        for entry in fs::read_dir(root).map_err(DataError::io("reading data folder", root))? {
            let entry = entry.map_err(DataError::io("reading data folder", root))?;
            let path = entry.path();
            if fs::symlink_metadata(&path)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    classes.push((name, path));
                }
            }
        }
        classes.sort();
        if classes.is_empty() {
            return Err(DataError::layout(
                root,
                "no class folders (expected ROOT/<class>/<image>.jpg)",
            ));
        }
        let mut samples = Vec::new();
        for (label, (_, dir)) in classes.iter().enumerate() {
            let mut files = Vec::new();
            images_under(dir, &mut files)?;
            if files.is_empty() {
                return Err(DataError::layout(
                    dir,
                    "class folder holds no .jpg, .jpeg or .png files",
                ));
            }
            samples.extend(files.into_iter().map(|path| Sample { path, label }));
        }
        Ok(Dataset {
            source: root.to_path_buf(),
            classes: classes.into_iter().map(|(n, _)| n).collect(),
            samples,
            pack: None,
        })
    }

    /// Reads a list file: `path label` per line (path relative to `root`,
    /// label an integer below `classes.len()`); blank lines and `#` comments
    /// are skipped.
    pub fn list_file(list: &Path, root: &Path, classes: Vec<String>) -> Result<Dataset, DataError> {
        let text = fs::read_to_string(list).map_err(DataError::io("reading list file", list))?;
        let mut samples = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |m: &str| DataError::layout(list, format!("line {}: {m}: '{line}'", n + 1));
            let (path, label) = line
                .rsplit_once(char::is_whitespace)
                .ok_or_else(|| bad("expected 'path label'"))?;
            let label: usize = label
                .parse()
                .map_err(|_| bad("the label is not a non-negative integer"))?;
            if label >= classes.len() {
                return Err(bad(&format!(
                    "label {label} is not below the {} classes",
                    classes.len()
                )));
            }
            samples.push(Sample {
                path: root.join(path.trim()),
                label,
            });
        }
        if samples.is_empty() {
            return Err(DataError::layout(list, "lists no images"));
        }
        Ok(Dataset {
            source: list.to_path_buf(),
            classes,
            samples,
            pack: None,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }

    #[test]
    fn classes_are_sorted_folders_and_files_are_sorted() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("zebra/b.JPG"));
        touch(&d.path().join("zebra/a.png"));
        touch(&d.path().join("ant/sub/c.jpeg"));
        touch(&d.path().join("ant/notes.txt"));
        let ds = Dataset::image_folder(d.path()).unwrap();
        assert_eq!(ds.classes, ["ant", "zebra"]);
        let names: Vec<(String, usize)> = ds
            .samples
            .iter()
            .map(|s| {
                (
                    s.path.strip_prefix(d.path()).unwrap().display().to_string(),
                    s.label,
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("ant/sub/c.jpeg".into(), 0),
                ("zebra/a.png".into(), 1),
                ("zebra/b.JPG".into(), 1)
            ]
        );
    }

    #[test]
    fn empty_class_folders_and_missing_folders_are_named() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("cat/1.jpg"));
        fs::create_dir_all(d.path().join("dog")).unwrap();
        let err = Dataset::image_folder(d.path()).unwrap_err().to_string();
        assert!(err.contains("dog") && err.contains("no .jpg"), "{err}");
        let err = Dataset::image_folder(&d.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = Dataset::image_folder(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no class folders"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("cat/1.jpg"));
        std::os::unix::fs::symlink(d.path().join("cat"), d.path().join("cat/loop")).unwrap();
        let ds = Dataset::image_folder(d.path()).unwrap();
        assert_eq!(ds.len(), 1);
    }

    #[test]
    fn list_files_are_parsed_with_line_numbers_in_errors() {
        let d = tempfile::tempdir().unwrap();
        let list = d.path().join("val.txt");
        fs::write(
            &list,
            "# ImageNet val\nILSVRC2012_val_00000001.JPEG 1\n\nx y.jpg 0\n",
        )
        .unwrap();
        let ds = Dataset::list_file(&list, d.path(), vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(
            ds.samples[0],
            Sample {
                path: d.path().join("ILSVRC2012_val_00000001.JPEG"),
                label: 1
            }
        );
        assert_eq!(ds.samples[1].path, d.path().join("x y.jpg"));
        fs::write(&list, "a.jpg 0\nb.jpg 7\n").unwrap();
        let err = Dataset::list_file(&list, d.path(), vec!["a".into(), "b".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("label 7"), "{err}");
    }
}
