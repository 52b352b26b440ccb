//! What an exec plugin leaves running is ended with it, even a daemon that
//! double-forked and called `setsid()` (out of the plugin's process group,
//! so the group kill misses it). zftrain makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`, Linux 3.4+): a descendant orphaned by its
//! parent's exit is re-parented to zftrain instead of init. After a plugin
//! ends (or is killed at its deadline), [`end_orphans`] kills and reaps
//! every such orphan, round after round until none is left (killing one
//! orphans its children, which then come to zftrain in turn).
//!
//! Which processes are the plugin's: zftrain's children whose environment
//! carries [`MARK_VAR`] with this run's [`mark`] (every plugin run is started
//! with a mark of its own, and descendants inherit it) and that are not one
//! of the plugins being run now ([`Running`] registers them). The plugin's
//! own group, killed whole, is reaped by group ([`reap_group`]). A descendant that clears its environment
//! before it is orphaned, or a system without the subreaper (not Linux),
//! lets a daemon escape: then only the deadline on the plugin's pipes
//! holds, and the run goes on without waiting for it.

use std::collections::HashSet;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Set in every plugin's environment (to [`mark`]: this process's pid and
/// the run's serial number): how its orphaned descendants are told from
/// other children, and from another plugin run's.
pub const MARK_VAR: &str = "ZFTRAIN_PLUGIN_OF";

/// A mark no other plugin run of this process has: `PID:SERIAL`.
pub fn mark() -> String {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}:{n}", std::process::id())
}

/// Reaps what is left of the process group `group` (killed whole), which
/// came to this process as its subreaper: its zombies would stay else.
pub fn reap_group(group: i32, within: Duration) {
    let start = Instant::now();
    while start.elapsed() < within {
        let mut status = 0;
        // SAFETY: waits for children of this process in group `group`.
        let r = unsafe { libc::waitpid(-group, &mut status, libc::WNOHANG) };
        match r {
            0 => std::thread::sleep(Duration::from_millis(5)),
            r if r > 0 => {}
            _ => return, // ECHILD: none left
        }
    }
}

/// The plugins being run now (their pids): never taken for orphans.
static RUNNING: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Makes this process the subreaper of its descendants (once); whether
/// it is.
pub fn become_subreaper() -> bool {
    static SET: Once = Once::new();
    SET.call_once(|| {
        // SAFETY: prctl with integer arguments changes only this process's
        // subreaper attribute.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    });
    let mut on: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer.
    let r = unsafe {
        libc::prctl(
            libc::PR_GET_CHILD_SUBREAPER,
            &mut on as *mut libc::c_int,
            0,
            0,
            0,
        )
    };
    r == 0 && on != 0
}

/// A plugin's pid, registered while it runs.
#[derive(Debug)]
pub struct Running(i32);

impl Running {
    /// Registers `pid` as a plugin being run.
    pub fn new(pid: i32) -> Running {
        let mut set = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        set.get_or_insert_with(HashSet::new).insert(pid);
        Running(pid)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut set = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = set.as_mut() {
            s.remove(&self.0);
        }
    }
}

/// The pids whose parent is this process and that carry `mark`, but the
/// plugins being run.
fn orphans(mark: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let running = RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !running.contains(pid))
        .filter(|&pid| parent_of(pid) == Some(me) && marked(pid, mark))
        .collect()
}

/// Whether `/proc/PID/environ` holds `MARK_VAR=mark`.
fn marked(pid: i32, mark: &str) -> bool {
    let want = format!("{MARK_VAR}={mark}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|&b| b == 0).any(|v| v == want.as_bytes()))
        .unwrap_or(false)
}

/// The parent pid in `/proc/PID/stat` (after the command name, which may
/// hold spaces and parentheses: the last ')' ends it).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Kills and reaps the orphans carrying `mark` re-parented to this
/// process, until none is left or `within` has passed; how many were ended.
pub fn end_orphans(mark: &str, within: Duration) -> usize {
    let start = Instant::now();
    let mut ended = 0;
    loop {
        let found = orphans(mark);
        if found.is_empty() || start.elapsed() >= within {
            return ended;
        }
        for &pid in &found {
            // SAFETY: signals a process that is this process's child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        for pid in found {
            // Reaped, so its children come to this process and the next
            // round finds them; a process in uninterruptible sleep is left
            // after `within`.
            while start.elapsed() < within {
                let mut status = 0;
                // SAFETY: waits for one specific child of this process.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r != 0 {
                    ended += 1;
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_past_a_command_name_with_spaces_and_parentheses() {
        // This process's own line: its parent is the test harness's.
        let me = std::process::id() as i32;
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() };
        assert_eq!(parent_of(me), Some(parent));
        // A name such as "a) b (c" cannot shift the fields.
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a) 1 2 (c");
        std::os::unix::fs::symlink("/bin/sleep", &odd).unwrap();
        let mut child = std::process::Command::new(&odd).arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        assert_eq!(parent_of(pid), Some(me));
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn an_orphan_is_ended_only_with_its_own_runs_mark() {
        become_subreaper();
        let (mine, other) = (mark(), mark());
        assert_ne!(mine, other);
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("orphan.pid");
        // The shell exits at once; its background sleep is orphaned and
        // comes to this process.
        let status = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("sleep 60 & echo $! > '{}'", pid_file.display()),
            ])
            .env(MARK_VAR, &mine)
            .status()
            .unwrap();
        assert!(status.success());
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists();
        assert!(alive());
        assert_eq!(
            end_orphans(&other, Duration::from_secs(2)),
            0,
            "another run's mark"
        );
        assert!(alive());
        assert_eq!(end_orphans(&mine, Duration::from_secs(10)), 1);
        assert!(!alive(), "killed and reaped");
    }
}
