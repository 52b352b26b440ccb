//! `zftrain train --dry-run`: every check a run makes before its first
//! step, by the run's own code (`train/checks.rs`), and nothing
//! written: the configuration, the hooks, the devices, the data (images
//! per class), the network against the data, the layers it freezes and the
//! weights it starts from, the run directory; then free disk space for the
//! checkpoints it keeps. Exits with the first problem. It does not join
//! other nodes (`cluster.nodes > 1`): each node's dry run checks its own
//! side.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::RunConfig;
use crate::train::checks::{check_place, class_counts, may_start_over, Preflight};

/// What a dry run found, one line each; `restart` as the run would get it
/// (`--dry-run` does not go with `--resume`).
pub fn dry_run(config: &RunConfig, restart: bool) -> Result<Vec<String>> {
    let pre = Preflight::new(config, Vec::new(), &[])?;
    let run_dir = config.run_dir();
    let place = check_place(config, &pre, run_dir.clone(), None, true)?;
    if run_dir.exists() {
        may_start_over(&run_dir, restart)?;
    }
    let mut report = vec![format!("hooks: {}", pre.hooks.len())];
    report.push(format!("devices: {:?}", pre.devices));
    let gpu = pre.devices.iter().any(|d| d.is_cuda());
    report.push(format!(
        "precision: {}",
        config.train.precision.describe(gpu)?
    ));
    for (name, set) in [("train", &pre.train_set), ("val", &pre.val_set)] {
        let counts = class_counts(set);
        let (min, max) = (
            counts.iter().min().copied().unwrap_or(0),
            counts.iter().max().copied().unwrap_or(0),
        );
        report.push(format!(
            "{name}: {} images in {} classes ({min} to {max} per class) from {}",
            set.len(),
            set.classes.len(),
            set.source.display()
        ));
        if let Some(empty) = counts.iter().position(|&c| c == 0) {
            anyhow::bail!(
                "{}: class {:?} has no {name} images",
                set.source.display(),
                set.classes[empty]
            );
        }
    }
    let arch = &pre.arch;
    report.push(format!(
        "network: {} with {} classes, {} parameters",
        pre.spec,
        pre.train_set.classes.len(),
        arch.param_count()
    ));
    if let Some(line) = pre.policy.describe(arch) {
        report.push(format!("fine-tuning: {line}"));
    }
    if let (Some(from), Some(_)) = (config.model.init_from(), &place.start_weights) {
        report.push(format!("starts from: {} (fits)", from.display()));
    }
    report.push(format!("run directory: {}", run_dir.display()));
    // Weights and momentum in fp32, for the kept checkpoints, the best and
    // the one being written.
    let per_checkpoint = arch.param_count() as u64 * 4 * 2;
    let kept = config.checkpoint.keep_last as u64 + 2;
    let need = per_checkpoint * kept;
    match free_bytes(&config.runs_dir) {
        Some(free) if free < need => bail!(
            "{} has {} free; {kept} checkpoints of {} need {}",
            config.runs_dir.display(),
            gib(free),
            gib(per_checkpoint),
            gib(need)
        ),
        Some(free) => report.push(format!(
            "disk: {} free at {}, {kept} checkpoints of {} need {}",
            gib(free),
            config.runs_dir.display(),
            gib(per_checkpoint),
            gib(need)
        )),
        None => report.push(format!(
            "disk: free space at {} unknown",
            config.runs_dir.display()
        )),
    }
    Ok(report)
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Free bytes for an unprivileged writer on the file system of `path` (or
/// of its nearest existing ancestor: the runs folder may not exist yet).
fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    while !p.exists() {
        p = match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed struct the call fills in.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}
