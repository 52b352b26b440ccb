//! Checkpoint directories: `weights.safetensors` plus `manifest.json`, which
//! records the format version, what the trainer wants to remember (`meta`:
//! architecture, classes, epoch, ...) and the SHA-256 of every file.
//!
//! A checkpoint is assembled in a hidden temporary sibling directory and
//! renamed into place when complete, so a crash never leaves a directory
//! that [`Checkpoint::open`] accepts but that is incomplete. Opening verifies
//! every checksum and refuses file names that would leave the directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::Tensor;

use crate::atomic::{replace_dir, sync_dir, temp_sibling, write_file};
use crate::tensors::{write_safetensors, Metadata};
use crate::CheckpointError;

/// Version of the checkpoint layout this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The weights file inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The manifest file inside a checkpoint directory.
pub const MANIFEST_FILE: &str = "manifest.json";
const FORMAT_NAME: &str = "zftrain-checkpoint";

/// One file listed in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The manifest of a checkpoint directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `zftrain-checkpoint`.
    pub format: String,
    /// Layout version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// What the writer wants to remember (architecture, classes, epoch, ...).
    pub meta: serde_json::Value,
    /// Every file of the checkpoint with its checksum.
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    /// Parses and checks a manifest's bytes (`path` only names it in
    /// errors): the format and version, a weights file listed, every file
    /// name a plain name inside the directory. Never panics, whatever the
    /// bytes (fuzzed: `fuzz/fuzz_targets/manifest.rs`).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest, CheckpointError> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| CheckpointError::format(path, format!("not a zftrain manifest: {e}")))?;
        if manifest.format != FORMAT_NAME {
            return Err(CheckpointError::format(
                path,
                format!("format is '{}', expected '{FORMAT_NAME}'", manifest.format),
            ));
        }
        if manifest.version != FORMAT_VERSION {
            return Err(CheckpointError::format(
                path,
                format!("checkpoint version {} is not supported (this zftrain reads version {FORMAT_VERSION})", manifest.version),
            ));
        }
        if !manifest.files.contains_key(WEIGHTS_FILE) {
            return Err(CheckpointError::format(
                path,
                format!("lists no '{WEIGHTS_FILE}'"),
            ));
        }
        for name in manifest.files.keys() {
            check_file_name(path, name)?;
        }
        Ok(manifest)
    }
}

/// The content of one checkpoint file.
#[derive(Debug)]
pub enum Content<'a> {
    /// Named tensors with safetensors metadata.
    Tensors(&'a [(String, Tensor)], &'a Metadata),
    /// A JSON document.
    Json(&'a serde_json::Value),
}

/// An opened, verified checkpoint directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
    manifest: Manifest,
}

fn sha256_file(path: &Path) -> Result<FileEntry, CheckpointError> {
    let mut file = fs::File::open(path).map_err(CheckpointError::io("reading", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(CheckpointError::io("reading", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(FileEntry { sha256, bytes })
}

/// A manifest file name must be a plain name inside the directory.
fn check_file_name(manifest: &Path, name: &str) -> Result<(), CheckpointError> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).components().count() == 1;
    if plain {
        Ok(())
    } else {
        Err(CheckpointError::format(
            manifest,
            format!("file name '{name}' points outside the checkpoint directory"),
        ))
    }
}

impl Checkpoint {
    /// Writes a new checkpoint directory `dir` holding `weights` (with
    /// safetensors metadata `weights_meta`) and `meta` in the manifest.
    /// Refuses to overwrite an existing `dir`.
    pub fn write(
        dir: &Path,
        weights: &[(String, Tensor)],
        weights_meta: &Metadata,
        meta: serde_json::Value,
    ) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::write_files(
            dir,
            &[(WEIGHTS_FILE, Content::Tensors(weights, weights_meta))],
            meta,
        )
    }

    /// Writes a new checkpoint directory `dir` with the given files (which
    /// must include [`WEIGHTS_FILE`]) and `meta` in the manifest: assembled
    /// under a temporary name, synced, then renamed into place. Refuses to
    /// overwrite an existing `dir`.
    pub fn write_files(
        dir: &Path,
        files: &[(&str, Content<'_>)],
        meta: serde_json::Value,
    ) -> Result<Checkpoint, CheckpointError> {
        if dir.exists() {
            return Err(CheckpointError::io("creating checkpoint", dir)(
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists"),
            ));
        }
        if !files.iter().any(|(n, _)| *n == WEIGHTS_FILE) {
            return Err(CheckpointError::format(
                dir,
                format!("a checkpoint needs '{WEIGHTS_FILE}'"),
            ));
        }
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(CheckpointError::io("creating directory", parent))?;
        let tmp = temp_sibling(dir);
        let _ = fs::remove_dir_all(&tmp);
        let result = (|| {
            fs::create_dir(&tmp).map_err(CheckpointError::io("creating directory", &tmp))?;
            let mut entries = BTreeMap::new();
            for (name, content) in files {
                check_file_name(dir, name)?;
                let path = tmp.join(name);
                match content {
                    Content::Tensors(tensors, metadata) => {
                        write_safetensors(&path, tensors, metadata)?
                    }
                    Content::Json(value) => {
                        let json = serde_json::to_vec_pretty(value).expect("JSON values serialize");
                        write_file(&path, &json)?
                    }
                }
                entries.insert(name.to_string(), sha256_file(&path)?);
            }
            let manifest = Manifest {
                format: FORMAT_NAME.into(),
                version: FORMAT_VERSION,
                meta,
                files: entries,
            };
            let json = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
            write_file(&tmp.join(MANIFEST_FILE), &json)?;
            fs::rename(&tmp, dir).map_err(CheckpointError::io("renaming into place", dir))?;
            sync_dir(parent)?;
            Ok(manifest)
        })();
        match result {
            Ok(manifest) => Ok(Checkpoint {
                dir: dir.to_path_buf(),
                manifest,
            }),
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// Writes the checkpoint `dir` as [`Checkpoint::write_files`] does,
    /// replacing one already there atomically (assembled under a hidden
    /// name, then exchanged with it: [`replace_dir`]), so `dir` is a whole
    /// checkpoint at every moment. `None`: the file system cannot exchange
    /// folders, and the checkpoint already there was kept.
    pub fn replace_files(
        dir: &Path,
        files: &[(&str, Content<'_>)],
        meta: serde_json::Value,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        if !dir.exists() {
            return Checkpoint::write_files(dir, files, meta).map(Some);
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let next = dir.with_file_name(format!(".{name}.tmp-next-{}", std::process::id()));
        let _ = fs::remove_dir_all(&next);
        let written = Checkpoint::write_files(&next, files, meta)?;
        Ok(replace_dir(&next, dir)?.then(|| Checkpoint {
            dir: dir.to_path_buf(),
            manifest: written.manifest,
        }))
    }

    /// Reads a JSON file of the checkpoint (verified by [`Checkpoint::open`]).
    pub fn read_json(&self, name: &str) -> Result<serde_json::Value, CheckpointError> {
        if !self.manifest.files.contains_key(name) {
            return Err(CheckpointError::format(
                self.dir.join(MANIFEST_FILE),
                format!("lists no '{name}'"),
            ));
        }
        let path = self.dir.join(name);
        let bytes = fs::read(&path).map_err(CheckpointError::io("reading", &path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| CheckpointError::format(&path, format!("not valid JSON: {e}")))
    }

    /// Path of a file of the checkpoint, if the manifest lists it.
    pub fn file(&self, name: &str) -> Option<PathBuf> {
        self.manifest
            .files
            .contains_key(name)
            .then(|| self.dir.join(name))
    }

    /// Opens `dir`, checking the manifest and every file's checksum.
    pub fn open(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text =
            fs::read(&manifest_path).map_err(CheckpointError::io("reading", &manifest_path))?;
        let manifest = Manifest::parse(&text, &manifest_path)?;
        for (name, entry) in &manifest.files {
            check_file_name(&manifest_path, name)?;
            let path = dir.join(name);
            // A link inside a checkpoint could make it read any file.
            let plain = fs::symlink_metadata(&path)
                .map_err(CheckpointError::io("reading", &path))?
                .file_type()
                .is_file();
            if !plain {
                return Err(CheckpointError::format(
                    &path,
                    "not a plain file (a link or a directory); checkpoint files must be plain files in the checkpoint's directory",
                ));
            }
            let got = sha256_file(&path)?;
            if got.sha256 != entry.sha256 || got.bytes != entry.bytes {
                return Err(CheckpointError::Checksum {
                    path,
                    expected: entry.sha256.clone(),
                    got: got.sha256,
                });
            }
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Path of the weights file.
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(WEIGHTS_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    fn weights() -> Vec<(String, Tensor)> {
        vec![("fc.weight".into(), Tensor::randn([3, 4], FLOAT_CPU))]
    }

    #[test]
    fn a_checkpoint_is_replaced_whole_and_nothing_else_is_left() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("step-000000001");
        let w = weights();
        let files = |epoch: u64| serde_json::json!({ "epoch": epoch });
        let content = [(WEIGHTS_FILE, Content::Tensors(&w, &Metadata::new()))];
        Checkpoint::write_files(&dir, &content, files(0)).unwrap();
        assert!(
            Checkpoint::write_files(&dir, &content, files(1)).is_err(),
            "never overwritten"
        );
        // ext4, xfs, btrfs and tmpfs exchange folders (Linux 3.15 and
        // later); where the file system cannot, the old one is kept whole.
        let expected = match Checkpoint::replace_files(&dir, &content, files(1)).unwrap() {
            Some(ck) => {
                assert_eq!(ck.manifest().meta["epoch"], 1);
                1
            }
            None => {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "skipped: a_checkpoint_is_replaced_whole (the exchange): {} cannot exchange folders",
                    root.path().display()
                );
                0
            }
        };
        assert_eq!(
            Checkpoint::open(&dir).unwrap().manifest().meta["epoch"],
            expected
        );
        let left: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("step-000000001")]);
    }

    #[test]
    fn write_then_open_verifies_and_keeps_meta() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ckpt");
        let meta = serde_json::json!({ "epoch": 3 });
        Checkpoint::write(&dir, &weights(), &Metadata::new(), meta.clone()).unwrap();
        let ck = Checkpoint::open(&dir).unwrap();
        assert_eq!(ck.manifest().meta, meta);
        assert!(ck.weights_path().exists());
        let left: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("ckpt")],
            "no temporary directory left behind"
        );
    }

    #[test]
    fn an_existing_directory_is_not_overwritten() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ckpt");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("mine.txt"), b"keep").unwrap();
        let err = Checkpoint::write(&dir, &weights(), &Metadata::new(), serde_json::json!({}))
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(fs::read(dir.join("mine.txt")).unwrap(), b"keep");
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ckpt");
        Checkpoint::write(&dir, &weights(), &Metadata::new(), serde_json::json!({})).unwrap();
        let path = dir.join(WEIGHTS_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        fs::write(&path, bytes).unwrap();
        let err = Checkpoint::open(&dir).unwrap_err().to_string();
        assert!(
            err.contains("checksum mismatch") && err.contains(WEIGHTS_FILE),
            "{err}"
        );
    }

    #[test]
    fn manifest_paths_outside_the_directory_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ckpt");
        Checkpoint::write(&dir, &weights(), &Metadata::new(), serde_json::json!({})).unwrap();
        fs::write(root.path().join("secret"), b"x").unwrap();
        let mpath = dir.join(MANIFEST_FILE);
        let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
        m["files"]["../secret"] = serde_json::json!({ "sha256": "00", "bytes": 1 });
        fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
        let err = Checkpoint::open(&dir).unwrap_err().to_string();
        assert!(
            err.contains("'../secret'") && err.contains("outside"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_a_link_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ck");
        Checkpoint::write(&ck, &weights(), &Metadata::new(), serde_json::json!({})).unwrap();
        let outside = dir.path().join("outside.safetensors");
        fs::rename(ck.join(WEIGHTS_FILE), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, ck.join(WEIGHTS_FILE)).unwrap();
        let err = Checkpoint::open(&ck).unwrap_err().to_string();
        assert!(
            err.contains(WEIGHTS_FILE) && err.contains("not a plain file"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_manifest_names_the_path() {
        let root = tempfile::tempdir().unwrap();
        let err = Checkpoint::open(root.path()).unwrap_err().to_string();
        assert!(err.contains(MANIFEST_FILE), "{err}");
    }
}
