//! `zftrain train`: merge the config file, `--set` and flags; install the
//! interrupt handler; run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::cli::TrainArgs;
use crate::config::RunConfig;
use crate::train::checkpointing::RUN_CONFIG_FILE;
use crate::train::setup::RUN_ARCH_FILE;
use crate::train::{train, StopHandle, TrainOptions};

/// A TOML string literal for `--set`.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn path_str(p: &Path) -> String {
    quoted(&p.display().to_string())
}

/// The run directory of a `--resume` path (a run directory or a checkpoint in one).
fn resume_run_dir(path: &Path) -> Option<PathBuf> {
    if path.join(RUN_CONFIG_FILE).is_file() {
        return Some(path.to_path_buf());
    }
    let run = path.parent()?.parent()?;
    run.join(RUN_CONFIG_FILE)
        .is_file()
        .then(|| run.to_path_buf())
}

/// The overrides that the flags stand for, after the user's `--set`s.
fn overrides(args: &TrainArgs) -> Vec<String> {
    let mut sets = args.set.clone();
    if let Some(a) = args.arch {
        sets.push(format!("model.arch={}", quoted(a.as_str())));
        sets.push("model.arch_file=\"\"".into());
    }
    if let Some(f) = &args.arch_file {
        sets.push(format!("model.arch_file={}", path_str(f)));
    }
    if let Some(d) = &args.data {
        sets.push(format!("data.train={}", path_str(&d.join("train"))));
        sets.push(format!("data.val={}", path_str(&d.join("val"))));
    }
    if args.no_hooks {
        sets.push("hooks=[]".into());
    }
    if let Some(f) = &args.init_from {
        sets.push(format!("model.init_from={}", path_str(f)));
    }
    if args.new_head {
        sets.push("model.reset_layers=[\"head\"]".into());
    }
    if let Some(n) = &args.name {
        sets.push(format!("name={}", quoted(n)));
    }
    if let Some(r) = &args.runs_dir {
        sets.push(format!("runs_dir={}", path_str(r)));
    }
    for (key, value) in [
        ("train.epochs", args.epochs.map(|v| v.to_string())),
        ("train.batch_size", args.batch_size.map(|v| v.to_string())),
        ("optim.lr", args.lr.map(|v| format!("{v:?}"))),
        ("train.gpus", args.gpus.as_deref().map(gpus_value)),
        (
            "train.cpu_replicas",
            args.cpu_replicas.map(|v| v.to_string()),
        ),
        ("data.workers", args.workers.map(|v| v.to_string())),
        ("seed", args.seed.map(|v| v.to_string())),
        ("data.bad_images", args.bad_images.as_deref().map(quoted)),
        ("cluster.nodes", args.nodes.map(|v| v.to_string())),
        ("cluster.node_rank", args.node_rank.map(|v| v.to_string())),
        ("cluster.rendezvous", args.rendezvous.as_deref().map(quoted)),
    ] {
        if let Some(v) = value {
            sets.push(format!("{key}={v}"));
        }
    }
    sets
}

/// A resumed run's saved configuration may name programs (exec hooks): they
/// run only if the user names the run in `--trust-run-hooks` (a run
/// directory is data that anyone with write access could have changed).
fn check_saved_programs(config: &RunConfig, run: &Path, trusted: Option<&Path>) -> Result<()> {
    let programs = config.programs();
    if programs.is_empty() {
        return Ok(());
    }
    let same = |a: &Path| {
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        canon(a) == canon(run)
    };
    match trusted {
        Some(t) if same(t) => Ok(()),
        Some(t) => bail!(
            "--trust-run-hooks {} does not name the run being resumed ({})",
            t.display(),
            run.display()
        ),
        None => bail!(
            "{}: the saved configuration runs program(s) as exec hooks: {}. A run directory is data, so zftrain does not run the programs it names on --resume: read that file, then resume with --config FILE (your own configuration, with the hooks you want), or with --trust-run-hooks {}",
            run.join(RUN_CONFIG_FILE).display(),
            programs.join(", "),
            run.display()
        ),
    }
}

/// Runs `zftrain train`; returns the process exit code (130 after an interrupt).
pub fn run(args: &TrainArgs) -> Result<u8> {
    let mut sets = overrides(args);
    let saved_run = match &args.config {
        Some(_) => None,
        None => args.resume.as_deref().and_then(resume_run_dir),
    };
    let config_path = match (&args.config, &saved_run) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(run)) => {
            // The run's own resolved config; its name and place stay unless overridden.
            sets.insert(
                0,
                format!(
                    "runs_dir={}",
                    path_str(run.parent().unwrap_or(Path::new(".")))
                ),
            );
            sets.insert(
                1,
                format!(
                    "name={}",
                    quoted(
                        &run.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    )
                ),
            );
            // The table the run trained, kept in the run (the user's file
            // may have moved or changed since).
            let kept = run.join(RUN_ARCH_FILE);
            if kept.is_file() && args.arch.is_none() && args.arch_file.is_none() {
                sets.insert(2, format!("model.arch_file={}", path_str(&kept)));
            }
            Some(run.join(RUN_CONFIG_FILE))
        }
        (None, None) => None,
    };
    let config = RunConfig::load(config_path.as_deref(), &sets)?;
    if let Some(run) = &saved_run {
        check_saved_programs(&config, run, args.trust_run_hooks.as_deref())?;
    }
    // GPUs named only in the file: CUDA in before libtorch is asked anything.
    crate::devices::preload_cuda(!config.train.gpus.ids().is_empty());
    let stop = StopHandle::new();
    let on_signal = stop.clone();
    ctrlc::set_handler(move || {
        if on_signal.request() == 0 {
            eprintln!("\nzftrain: stopping after this step and writing a checkpoint (press Ctrl-C again to abort at once)");
        } else {
            eprintln!("\nzftrain: aborted");
            // At once: `exit` would run libtorch's static destructors while
            // the training thread still uses them (a segfault, seen in the
            // Ctrl-C-twice test). A checkpoint cut here is a hidden
            // temporary that is never loaded and the next save removes.
            // SAFETY: `_exit` ends the process without running any code.
            unsafe { libc::_exit(130) }
        }
    })?;
    let options = TrainOptions {
        resume: args.resume.clone(),
        stop,
        restart: args.restart,
        ..TrainOptions::default()
    };
    let outcome = train(config, options)?;
    if outcome.interrupted {
        return Ok(130);
    }
    let peak = crate::memory::peak_rss_mib()
        .map(|m| format!(", peak RSS {m:.0} MiB"))
        .unwrap_or_default();
    println!(
        "done: {} (tensorboard --logdir {}){peak}",
        outcome.run_dir.display(),
        outcome.run_dir.parent().unwrap_or(Path::new(".")).display()
    );
    Ok(0)
}

/// `--gpus 4` -> `4`, `--gpus 0,2` -> `[0,2]` (a TOML value for train.gpus).
fn gpus_value(flag: &str) -> String {
    if flag.contains(',') {
        format!("[{}]", flag.trim_matches(|c| c == '[' || c == ']'))
    } else {
        flag.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gpu_flag_becomes_a_count_or_a_list() {
        assert_eq!(super::gpus_value("4"), "4");
        assert_eq!(super::gpus_value("0,2"), "[0,2]");
    }
}
