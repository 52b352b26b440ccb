//! The packed data format: one file holding a data set's images, re-encoded
//! at a bounded size, their labels and the class names. The index, when the
//! pack is opened, and the images, as the loader asks, are read with `pread`
//! on the file the pack keeps open (no mapping), so a pack cut or rewritten
//! underneath a running loader gives an error that names it, never a SIGBUS.
//! Reading one file beats opening thousands (and re-encoding at shorter side
//! 256 shrinks each image a decoder must chew through).
//!
//! Layout: `ZFPACK01`, the images' JPEG bytes one after another, the index
//! (JSON: classes; per sample its offset, length, label and original name),
//! then a 32-byte footer: index offset (u64 LE), index length (u64 LE), FNV-1a
//! hash of the index (u64 LE), `ZFPACKOK`. A pack is written to a temporary
//! name and renamed when complete; one without its footer, or whose index
//! does not match its hash, is refused as incomplete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decode::decode_rgb;
use crate::{DataError, Dataset};

const MAGIC: &[u8; 8] = b"ZFPACK01";
const DONE: &[u8; 8] = b"ZFPACKOK";

/// One sample's place in the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// Byte offset of its JPEG.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Class index.
    pub label: usize,
    /// The file it came from, relative to the packed folder.
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    classes: Vec<String>,
    samples: Vec<PackEntry>,
}

/// An open pack.
pub struct Pack {
    path: PathBuf,
    file: File,
    /// The file's size when opened.
    len: u64,
    /// The samples.
    pub entries: Vec<PackEntry>,
    /// Class names.
    pub classes: Vec<String>,
}

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pack({}, {} images)",
            self.path.display(),
            self.entries.len()
        )
    }
}

impl PartialEq for Pack {
    fn eq(&self, other: &Pack) -> bool {
        self.path == other.path
    }
}

impl Eq for Pack {}

/// Checks a whole pack file's bytes (magic, footer, index range, index
/// checksum, entries inside the data) and returns its entries and classes;
/// the message says what is wrong. Never panics, whatever the bytes (fuzzed:
/// `fuzz/fuzz_targets/pack_index.rs`).
pub fn parse_layout(bytes: &[u8]) -> Result<(Vec<PackEntry>, Vec<String>), String> {
    read_layout(bytes.len() as u64, |at, len| {
        Ok(bytes[at as usize..(at + len) as usize].to_vec())
    })
}

/// [`parse_layout`] on a file of `file_len` bytes read through
/// `read(offset, len)`, which is only asked for ranges inside the file: the
/// magic, the footer and the index (so no more than the file's size is
/// ever allocated).
fn read_layout(
    file_len: u64,
    read: impl Fn(u64, u64) -> Result<Vec<u8>, String>,
) -> Result<(Vec<PackEntry>, Vec<String>), String> {
    if file_len < 40 || read(0, 8)? != MAGIC {
        return Err("not a zftrain pack".into());
    }
    let footer = read(file_len - 32, 32)?;
    if &footer[24..] != DONE {
        return Err("an incomplete pack (its writing was interrupted?): write it again".into());
    }
    let word = |i: usize| u64::from_le_bytes(footer[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (at, len, hash) = (word(0), word(1), word(2));
    let end = at
        .checked_add(len)
        .filter(|&e| at >= 8 && e <= file_len - 32);
    if end.is_none() {
        return Err("the pack's index lies outside the file".into());
    }
    let index_bytes = read(at, len)?;
    if fnv(&index_bytes) != hash {
        return Err("the pack's index does not match its checksum".into());
    }
    let index: Index =
        serde_json::from_slice(&index_bytes).map_err(|e| format!("the pack's index: {e}"))?;
    for e in &index.samples {
        let inside = e.offset >= 8 && e.offset.checked_add(e.len).is_some_and(|x| x <= at);
        if !inside || e.label >= index.classes.len() {
            return Err(format!("the index entry of {} is out of range", e.name));
        }
    }
    Ok((index.samples, index.classes))
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Whether `path` is a pack file (by its first bytes).
pub fn is_pack(path: &Path) -> bool {
    let mut head = [0u8; 8];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .map(|_| &head == MAGIC)
        .unwrap_or(false)
}

impl Pack {
    /// Opens and checks a pack.
    pub fn open(path: &Path) -> Result<Pack, DataError> {
        let file = File::open(path).map_err(DataError::io("opening pack", path))?;
        let len = file
            .metadata()
            .map_err(DataError::io("reading pack", path))?
            .len();
        let (entries, classes) = read_layout(len, |at, n| {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; n as usize];
            file.read_exact_at(&mut buf, at)
                .map(|()| buf)
                .map_err(|e| format!("reading {n} bytes at {at}: {e}"))
        })
        .map_err(|m| DataError::layout(path, m))?;
        Ok(Pack {
            path: path.to_path_buf(),
            file,
            len,
            entries,
            classes,
        })
    }

    /// The JPEG bytes of sample `i`, read from the open file; an error
    /// names the pack when the file no longer holds them (cut, or replaced
    /// in place).
    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, String> {
        use std::os::unix::fs::FileExt;
        let e = &self.entries[i];
        let mut buf = vec![0u8; e.len as usize];
        self.file.read_exact_at(&mut buf, e.offset).map_err(|err| {
            format!(
                "{}: reading {} at byte {}: {err} (was the pack cut or rewritten while in use?)",
                self.path.display(),
                e.name,
                e.offset
            )
        })?;
        Ok(buf)
    }

    /// `Err` (naming the pack) when the open file is no longer the size it
    /// had when opened: it was cut or rewritten in place, and every image
    /// read from it now is suspect.
    pub fn check_unchanged(&self) -> Result<(), DataError> {
        let now = self
            .file
            .metadata()
            .map_err(DataError::io("reading pack", &self.path))?
            .len();
        if now != self.len {
            return Err(DataError::layout(
                &self.path,
                format!(
                    "the pack changed while in use ({} bytes when opened, {now} now): was it cut or rewritten? Write it again, then resume",
                    self.len
                ),
            ));
        }
        Ok(())
    }

    /// The pack as a data set (each sample's path names the pack and the
    /// original file, for messages).
    pub fn into_dataset(self) -> Dataset {
        let samples = self
            .entries
            .iter()
            .map(|e| crate::dataset::Sample {
                path: self.path.join(&e.name),
                label: e.label,
            })
            .collect();
        Dataset {
            source: self.path.clone(),
            classes: self.classes.clone(),
            samples,
            pack: Some(Arc::new(self)),
        }
    }
}

/// How images are re-encoded into a pack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackConfig {
    /// Images whose shorter side is longer are shrunk to this (0: keep).
    pub shorter_side: u32,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
    /// Encoding threads.
    pub threads: usize,
    /// Larger images are refused (pixels).
    pub max_pixels: u64,
}

impl Default for PackConfig {
    fn default() -> Self {
        PackConfig {
            shorter_side: 256,
            quality: 90,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_pixels: 100_000_000,
        }
    }
}

/// What a pack run did.
#[derive(Debug, Clone, PartialEq)]
pub struct PackReport {
    /// Images packed.
    pub images: usize,
    /// Files left out, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Bytes of the source images.
    pub source_bytes: u64,
    /// Bytes of the pack.
    pub pack_bytes: u64,
}

/// A re-encoded image and the size of its source file, or why not.
type Encoded = Result<(Vec<u8>, u64), String>;

fn reencode(path: &Path, config: &PackConfig) -> Encoded {
    let source_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let img = decode_rgb(path, config.max_pixels)?;
    let (w, h) = img.dimensions();
    let short = w.min(h);
    let img = if config.shorter_side > 0 && short > config.shorter_side {
        let (rw, rh) = crate::transform::shorter_side_to(w, h, config.shorter_side);
        crate::transform::resize_whole(&img, rw, rh)
    } else {
        img
    };
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, config.quality)
        .encode_image(&img)
        .map_err(|e| e.to_string())?;
    Ok((out, source_bytes))
}

/// Re-encodes the samples `range` of `dataset` on `config.threads`
/// threads; their results in order.
fn encode_window(
    dataset: &Dataset,
    range: std::ops::Range<usize>,
    config: &PackConfig,
) -> Vec<Encoded> {
    let (start, end) = (range.start, range.end);
    let next = AtomicUsize::new(start);
    let results: Vec<std::sync::Mutex<Option<Encoded>>> =
        (start..end).map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..config.threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let r = reencode(&dataset.samples[i].path, config);
                if let Ok(mut slot) = results[i - start].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err("not encoded".into()))
        })
        .collect()
}

/// Packs `dataset` into `out` (written as `out.partial`, renamed when
/// complete), on `config.threads` threads, in windows so that memory stays
/// bounded; `progress(done, total)` after each window.
pub fn write_pack(
    dataset: &Dataset,
    out: &Path,
    config: &PackConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<PackReport, DataError> {
    if !(1..=100).contains(&config.quality) {
        return Err(DataError::layout(
            out,
            format!("quality {} is not between 1 and 100", config.quality),
        ));
    }
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let file = File::create(&partial).map_err(DataError::io("creating", &partial))?;
    let mut w = BufWriter::new(file);
    let io = |e| DataError::Io {
        action: "writing",
        path: partial.clone(),
        source: e,
    };
    w.write_all(MAGIC).map_err(io)?;
    let mut offset = MAGIC.len() as u64;
    let mut entries = Vec::new();
    let mut report = PackReport {
        images: 0,
        skipped: Vec::new(),
        source_bytes: 0,
        pack_bytes: 0,
    };
    let root = &dataset.source;
    let total = dataset.samples.len();
    let window = 64 * config.threads.max(1);
    for start in (0..total).step_by(window) {
        let end = (start + window).min(total);
        for (k, result) in encode_window(dataset, start..end, config)
            .into_iter()
            .enumerate()
        {
            let sample = &dataset.samples[start + k];
            match result {
                Ok((bytes, source)) => {
                    w.write_all(&bytes).map_err(io)?;
                    let name = sample.path.strip_prefix(root).unwrap_or(&sample.path);
                    entries.push(PackEntry {
                        offset,
                        len: bytes.len() as u64,
                        label: sample.label,
                        name: name.to_string_lossy().into_owned(),
                    });
                    offset += bytes.len() as u64;
                    report.images += 1;
                    report.source_bytes += source;
                }
                Err(why) => report.skipped.push((sample.path.clone(), why)),
            }
        }
        progress(end, total);
    }
    let index = serde_json::to_vec(&Index {
        classes: dataset.classes.clone(),
        samples: entries,
    })
    .map_err(|e| DataError::layout(out, e.to_string()))?;
    w.write_all(&index).map_err(io)?;
    for v in [offset, index.len() as u64, fnv(&index)] {
        w.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    w.write_all(DONE).map_err(io)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    report.pack_bytes = offset + index.len() as u64 + 32;
    std::fs::rename(&partial, out).map_err(DataError::io("renaming into place", out))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{write_synthetic, SynthConfig};

    #[test]
    fn a_pack_holds_every_image_at_the_bounded_size_and_a_cut_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            classes: 2,
            train_per_class: 3,
            val_per_class: 1,
            width: 400,
            height: 300,
            ..Default::default()
        };
        write_synthetic(&d.path().join("s"), &cfg).unwrap();
        let folder = Dataset::image_folder(&d.path().join("s/train")).unwrap();
        let out = d.path().join("train.zfpack");
        let mut calls = 0;
        let report = write_pack(
            &folder,
            &out,
            &PackConfig {
                threads: 2,
                ..PackConfig::default()
            },
            |done, total| {
                calls += 1;
                assert!(done <= total);
            },
        )
        .unwrap();
        assert_eq!((report.images, report.skipped.len(), calls), (6, 0, 1));
        assert!(is_pack(&out) && !d.path().join("train.zfpack.partial").exists());
        let packed = Dataset::open(&out).unwrap();
        assert_eq!(packed.classes, folder.classes);
        assert_eq!(packed.samples.len(), 6);
        for i in 0..6 {
            assert_eq!(packed.samples[i].label, folder.samples[i].label);
            let img = packed.decode(i, 1 << 30).unwrap();
            assert_eq!(img.dimensions(), (341, 256), "shorter side 256");
        }
        // Cut short: no footer. Flipped index byte: checksum.
        let bytes = std::fs::read(&out).unwrap();
        let cut = d.path().join("cut.zfpack");
        std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
        let e = Dataset::open(&cut).unwrap_err().to_string();
        assert!(
            e.contains("incomplete pack") && e.contains("cut.zfpack"),
            "{e}"
        );
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 40] ^= 1;
        std::fs::write(&cut, &flipped).unwrap();
        let e = Dataset::open(&cut).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
    }
}
