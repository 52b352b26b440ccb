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
//! carries [`MARK_VAR`] (every plugin is started with it, and descendants
//! inherit it) and that are not one of the plugins being run now
//! ([`Running`] registers them). A descendant that clears its environment
//! before it is orphaned, or a system without the subreaper (not Linux),
//! lets a daemon escape: then only the deadline on the plugin's pipes
//! holds, and the run goes on without waiting for it.

use std::collections::HashSet;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Set in every plugin's environment (to this process's pid): how its
/// orphaned descendants are told from other children.
pub const MARK_VAR: &str = "ZFTRAIN_PLUGIN_OF";

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

/// The pids whose parent is this process, but the plugins being run.
fn orphans() -> Vec<i32> {
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
        .filter(|&pid| parent_of(pid) == Some(me) && marked(pid, me))
        .collect()
}

/// Whether `/proc/PID/environ` holds `MARK_VAR=me`.
fn marked(pid: i32, me: i32) -> bool {
    let want = format!("{MARK_VAR}={me}");
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

/// Kills and reaps the orphans re-parented to this process, until none is
/// left or `within` has passed; how many were ended.
pub fn end_orphans(within: Duration) -> usize {
    let start = Instant::now();
    let mut ended = 0;
    loop {
        let found = orphans();
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
