//! One writer per run directory. A run takes an exclusive `flock` on
//! `RUN/lock` before it writes anything there and holds it to the end, so a
//! second `train` or `--resume` of the same run is refused with the PID of
//! the one writing (instead of the two deleting each other's checkpoint
//! temporaries and interleaving `train.log`). A new run creates its
//! directory with one `mkdir`, so two fresh starts with the same name cannot
//! both pass the "already exists" check. The kernel drops the lock when a
//! process dies however it dies; a PID left in the file by a crashed run is
//! taken over with a note.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The lock file of a run directory.
pub const LOCK_FILE: &str = "lock";

/// The exclusive claim on a run directory; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Claims `run_dir` for this process. `fresh`: the run is new, and its
    /// directory is created here with one `mkdir` (one that appeared since
    /// the caller looked is refused); else the directory exists or is
    /// created. Refused with the holder's PID while another process holds
    /// the lock.
    pub fn acquire(run_dir: &Path, fresh: bool) -> Result<RunLock> {
        let shown = run_dir.display();
        if let Some(parent) = run_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        match fs::create_dir(run_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists && fresh => bail!(
                "run directory {shown} was created by another process a moment ago (two runs with the same name?): choose another --name, or --resume {shown} once it is done"
            ),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {shown}")),
        }
        let path = run_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // Never through a link planted in the run directory, and never
            // waiting on a FIFO: a plain file or a refusal naming it.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => anyhow::anyhow!(
                    "{} is a symbolic link: zftrain does not lock or write through a link in a run directory; remove it",
                    path.display()
                ),
                _ => anyhow::Error::new(e).context(format!("opening {}", path.display())),
            })?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            bail!("{} is not a plain file: remove it", path.display());
        }
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let holder = holder(&mut file)
                    .map(|p| format!("process {p}"))
                    .unwrap_or_else(|| "another process".into());
                bail!(
                    "run directory {shown} is in use: {holder} holds {} (one process writes a run; wait for it to end or stop it)",
                    path.display()
                );
            }
            return Err(err).with_context(|| format!("locking {}", path.display()));
        }
        if let Some(pid) = holder(&mut file).filter(|&p| p != std::process::id()) {
            let note = format!(
                "{}: took over the lock of process {pid}, which ended without releasing it (killed or crashed)",
                path.display()
            );
            crate::say::warning(&note);
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(RunLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    /// An orderly end leaves the file empty (a PID left in it means the
    /// holder died); the kernel releases the lock with the descriptor.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// The PID written in a lock file (at most a few bytes are read).
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    Read::by_ref(file).take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_with_the_holders_pid_and_free_after_release() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("runs/a");
        let first = RunLock::acquire(&run, true).unwrap();
        let text = fs::read_to_string(first.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to open file descriptions: a second open in
        // this process conflicts as another process's would.
        let err = RunLock::acquire(&run, false).unwrap_err().to_string();
        assert!(
            err.contains("in use") && err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        let err = RunLock::acquire(&run, true).unwrap_err().to_string();
        assert!(err.contains("another process a moment ago"), "{err}");
        drop(first);
        assert_eq!(fs::read_to_string(run.join(LOCK_FILE)).unwrap(), "");
        RunLock::acquire(&run, false).unwrap();
    }
}
