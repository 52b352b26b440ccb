//! Atomic writes: write under a temporary name in the same directory, flush
//! to disk, then rename over the target, so that a crash or a full disk
//! leaves either the old file or the new one, never a mixture.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::CheckpointError;

/// A temporary sibling of `path`: `.<name>.tmp-<pid>`.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Flushes a directory entry list to disk (after a rename into it).
pub fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(CheckpointError::io("syncing directory", dir))
}

/// Writes `bytes` to `path` atomically.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    write_with(path, |file| file.write_all(bytes))
}

/// Creates `path` atomically with `fill` writing its content.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), CheckpointError> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        fill(&mut file)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(CheckpointError::io("writing", path)(e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        CheckpointError::io("renaming into place", path)(e)
    })?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Puts the directory `new` (complete, under a hidden temporary name) in
/// the place of the existing directory `dir`, and removes the old one: one
/// `renameat2(RENAME_EXCHANGE)`, so `dir` is a complete directory at every
/// moment, then the old contents (now at `new`) are deleted (best effort).
/// Where the file system cannot exchange (NFS, many FUSE file systems),
/// nothing is replaced: `new` is removed, `dir` kept, and `false` returned;
/// a rename in two steps would leave a moment without `dir`.
pub fn replace_dir(new: &Path, dir: &Path) -> Result<bool, CheckpointError> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).ok();
    let (Some(from), Some(to)) = (c(new), c(dir)) else {
        return Err(CheckpointError::io("replacing", dir)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a path with a NUL byte",
        )));
    };
    // SAFETY: two valid C strings, relative to the current directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r != 0 {
        let err = std::io::Error::last_os_error();
        let _ = fs::remove_dir_all(new);
        return match err.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::EOPNOTSUPP) => Ok(false),
            _ => Err(CheckpointError::io("exchanging into place", dir)(err)),
        };
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    // Hidden and named `.tmp-`: a later save sweeps it if this fails.
    let _ = fs::remove_dir_all(new);
    Ok(true)
}
