//! A run directory is data: whoever could write it before a `--resume` may
//! have planted links in it (`lock` to a file of the user's, `checkpoints`
//! to someone's folder, `hooks/deconv` anywhere) or FIFOs that hang an
//! `open`. Before a run reads or writes an existing run directory, every
//! entry in it is looked at without following links ([`check_run_tree`]):
//! anything but plain files and folders is refused, naming the entry, so
//! nothing the run then opens, renames, prunes or cleans up can lead
//! outside it. The one link zftrain itself makes, `checkpoints/latest`
//! (and its temporary while it is moved), must point at a sibling name.
//!
//! The walk is bounded ([`MAX_ENTRIES`], [`MAX_DEPTH`]) so a planted tree
//! of millions of entries is refused rather than walked for hours.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::train::checkpointing::LATEST;

/// The most entries a run directory may hold (a year of epochs with every
/// hook, the atlas and its attempts is well under this).
pub const MAX_ENTRIES: usize = 1_000_000;
/// The deepest folder nesting below the run directory.
pub const MAX_DEPTH: usize = 16;

/// Refuses `run_dir` when anything in it, at any depth, is a symbolic
/// link (but `checkpoints/latest` to a sibling), a FIFO, a socket or a
/// device, naming it; or when it holds more than [`MAX_ENTRIES`] entries
/// or nests deeper than [`MAX_DEPTH`]. `run_dir` itself is the user's
/// choice and may be a link.
pub fn check_run_tree(run_dir: &Path) -> Result<()> {
    let mut seen = 0usize;
    walk(run_dir, run_dir, 0, &mut seen)
}

fn walk(root: &Path, dir: &Path, depth: usize, seen: &mut usize) -> Result<()> {
    if depth > MAX_DEPTH {
        bail!(
            "{}: folders nested more than {MAX_DEPTH} deep in run directory {}; a run makes nothing like it (refused)",
            dir.display(),
            root.display()
        );
    }
    // A folder or entry that vanished while it was walked (a run at work
    // on this directory, which its lock then names) is passed over.
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && depth > 0 => return Ok(()),
        other => other.with_context(|| format!("reading {}", dir.display()))?,
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        *seen += 1;
        if *seen > MAX_ENTRIES {
            bail!(
                "run directory {} holds more than {MAX_ENTRIES} entries; a run makes nothing like it (refused)",
                root.display()
            );
        }
        let path = entry.path();
        // `DirEntry::file_type` does not follow links.
        let kind = match entry.file_type() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            other => other.with_context(|| format!("reading {}", path.display()))?,
        };
        if kind.is_dir() {
            walk(root, &path, depth + 1, seen)?;
        } else if kind.is_symlink() {
            if !is_latest_link(root, &path) {
                let to = fs::read_link(&path)
                    .map(|t| format!(" (to {})", t.display()))
                    .unwrap_or_default();
                bail!(
                    "{} is a symbolic link{to}: zftrain writes, prunes and cleans up run directory {} and never through a link; remove the link (or copy what it points to in its place) and resume again",
                    path.display(),
                    root.display()
                );
            }
        } else if !kind.is_file() {
            bail!(
                "{} is not a plain file or folder (a FIFO, socket or device): run directory {} holds only what zftrain writes; remove it and resume again",
                path.display(),
                root.display()
            );
        }
    }
    Ok(())
}

/// `checkpoints/latest` (or its temporary `.latest.tmp-PID`) pointing at
/// a plain sibling name such as `step-000000120`.
fn is_latest_link(root: &Path, path: &Path) -> bool {
    let in_checkpoints = path.parent() == Some(&root.join("checkpoints"));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let named = name.is_some_and(|n| n == LATEST || n.starts_with(&format!(".{LATEST}.tmp-")));
    let target = fs::read_link(path).ok();
    let sibling = target.is_some_and(|t| {
        let mut parts = t.components();
        matches!(
            (parts.next(), parts.next()),
            (Some(std::path::Component::Normal(_)), None)
        )
    });
    in_checkpoints && named && sibling
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn run_with_latest() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let ck = d.path().join("checkpoints");
        fs::create_dir_all(ck.join("step-000000001")).unwrap();
        fs::write(ck.join("step-000000001/manifest.json"), "{}").unwrap();
        symlink("step-000000001", ck.join(LATEST)).unwrap();
        fs::create_dir_all(d.path().join("hooks/deconv/epoch-001")).unwrap();
        fs::write(d.path().join("train.log"), "").unwrap();
        d
    }

    #[test]
    fn a_run_with_only_its_latest_link_passes() {
        let d = run_with_latest();
        check_run_tree(d.path()).unwrap();
    }

    #[test]
    fn a_link_anywhere_is_refused_by_name() {
        let outside = tempfile::tempdir().unwrap();
        let precious = outside.path().join("precious.txt");
        fs::write(&precious, "keep me").unwrap();
        for (at, to) in [
            ("lock", precious.clone()),
            ("train.log", precious.clone()),
            ("hooks/deconv/epoch-002", outside.path().to_path_buf()),
            ("checkpoints/step-000000009", outside.path().to_path_buf()),
        ] {
            let d = run_with_latest();
            let _ = fs::remove_file(d.path().join(at));
            symlink(&to, d.path().join(at)).unwrap();
            let err = check_run_tree(d.path()).unwrap_err().to_string();
            assert!(
                err.contains(at) && err.contains("symbolic link"),
                "{at}: {err}"
            );
        }
        // The folder `checkpoints` itself, and `latest` leading out of it.
        let d = tempfile::tempdir().unwrap();
        symlink(outside.path(), d.path().join("checkpoints")).unwrap();
        assert!(check_run_tree(d.path()).is_err());
        let d = run_with_latest();
        let latest = d.path().join("checkpoints").join(LATEST);
        fs::remove_file(&latest).unwrap();
        symlink(outside.path(), &latest).unwrap();
        assert!(check_run_tree(d.path()).is_err());
        fs::remove_file(&latest).unwrap();
        symlink("../../x", &latest).unwrap();
        assert!(check_run_tree(d.path()).is_err());
        // A `latest` anywhere else is no exception.
        let d = run_with_latest();
        symlink("step-000000001", d.path().join("hooks").join(LATEST)).unwrap();
        assert!(check_run_tree(d.path()).is_err());
        assert_eq!(fs::read_to_string(&precious).unwrap(), "keep me");
    }

    #[test]
    fn a_fifo_is_refused_by_name_without_opening_it() {
        let d = run_with_latest();
        let fifo = d.path().join("train.log.fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = check_run_tree(d.path()).unwrap_err().to_string();
        assert!(
            err.contains("train.log.fifo") && err.contains("FIFO"),
            "{err}"
        );
    }

    #[test]
    fn nesting_past_the_bound_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let deep = (0..=MAX_DEPTH + 1).fold(d.path().to_path_buf(), |p, i| p.join(i.to_string()));
        fs::create_dir_all(&deep).unwrap();
        let err = check_run_tree(d.path()).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
    }
}
