//! `zftrain train`: merge the config file, `--set` and flags; install the
//! interrupt handler; run.

use std::path::{Path, PathBuf};

use crate::commands::Run;
use anyhow::{bail, Result};

use crate::cli::{name_of, named, DevicesArgs};
use crate::config::{Override, RunConfig};
use crate::train::checkpointing::RUN_CONFIG_FILE;
use crate::train::setup::RUN_ARCH_FILE;
use crate::train::{train, StopHandle, TrainOptions};
use clap::Args;
use zftrain_data::loader::BadImages;
use zftrain_model::ArchName;

/// `zftrain train`. Flags override `--set`, which overrides the config file.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A TOML run configuration (see configs/).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a configuration key: `--set optim.lr=0.02` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue a run: its directory (newest good checkpoint) or one checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Let the exec hooks saved in this run's config.toml run again on
    /// `--resume` (name the same run directory). Without it, a resumed run
    /// whose saved config runs programs is refused: a run directory is data,
    /// and what it names runs only when you say so (or pass `--config`).
    #[arg(long, value_name = "RUN_DIR", requires = "resume")]
    pub trust_run_hooks: Option<PathBuf>,
    /// Run no hooks (a configuration without `[[hooks]]` gets the paper's
    /// set: Deconvnet grids, evolution, dead filters, aliasing).
    #[arg(long)]
    pub no_hooks: bool,
    /// Start a run directory that stopped before its first checkpoint over
    /// from the beginning (one with checkpoints is never started over).
    #[arg(long, conflicts_with = "resume")]
    pub restart: bool,
    /// Fine-tune: start from these weights (a .safetensors file, a
    /// checkpoint or a run directory) with a fresh optimizer and schedule
    /// (model.init_from).
    #[arg(long, value_name = "FILE_OR_CHECKPOINT", conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// Draw the classifier (the last layer with parameters) fresh for the
    /// data's classes instead of taking it from --init-from
    /// (model.reset_layers = ["head"]).
    #[arg(long)]
    pub new_head: bool,
    /// Print the resolved configuration (file, --set and flags merged) as
    /// TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Check everything a run checks before its first step (configuration,
    /// hooks, devices, data with counts per class, network, start weights,
    /// run directory, free disk for the checkpoints), write nothing, exit 0
    /// or with the first problem.
    #[arg(long, conflicts_with = "resume")]
    pub dry_run: bool,
    /// Architecture (model.arch).
    #[arg(long, value_parser = named::<ArchName>)]
    pub arch: Option<ArchName>,
    /// An architecture file, a TOML layer table (model.arch_file).
    #[arg(long, conflicts_with = "arch")]
    pub arch_file: Option<PathBuf>,
    /// Data folder with train/ and val/ ImageFolders (data.train, data.val).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run name (name); the run directory is runs/<name>.
    #[arg(long)]
    pub name: Option<String>,
    /// Where run directories go (runs_dir).
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
    /// Epochs (train.epochs).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Batch size (train.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate (optim.lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// The devices.
    #[command(flatten)]
    pub devices: DevicesArgs,
    /// Decoding threads (data.workers).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Seed (seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// `skip` or `fail` on images that do not decode (data.bad_images).
    #[arg(long, value_parser = named::<BadImages>)]
    pub bad_images: Option<BadImages>,
    /// Nodes of a multi-node run, one process each (cluster.nodes).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// This node's rank, 0 to nodes - 1 (cluster.node_rank).
    #[arg(long)]
    pub node_rank: Option<usize>,
    /// host:port where node 0 listens for the others (cluster.rendezvous).
    #[arg(long)]
    pub rendezvous: Option<String>,
    /// Join the nodes without the cluster token (cluster.insecure): anyone
    /// who reaches the port can join and read the weights.
    #[arg(long)]
    pub insecure_cluster: bool,
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

/// The user's `--set`s, then the overrides that the flags stand for, each
/// with what the user typed (errors name it) and its value as clap parsed
/// it.
fn overrides(args: &TrainArgs) -> Vec<Override> {
    let mut sets: Vec<Override> = args.set.iter().map(|s| Override::set(s)).collect();
    sets.extend(named_flags(args));
    sets.extend(value_flags(args));
    sets
}

/// A path as a configuration value.
fn path_value(p: &Path) -> toml::Value {
    toml::Value::String(p.display().to_string())
}

/// The overrides of the flags that name a network, paths or a switch.
fn named_flags(args: &TrainArgs) -> Vec<Override> {
    let mut sets = Vec::new();
    if let Some(a) = args.arch {
        sets.push(Override::flag(
            "model.arch",
            a.as_str(),
            format!("--arch {a}"),
        ));
        sets.push(Override::flag("model.arch_file", "", format!("--arch {a}")));
    }
    if let Some(f) = &args.arch_file {
        let origin = format!("--arch-file {}", f.display());
        sets.push(Override::flag("model.arch_file", path_value(f), origin));
    }
    if let Some(d) = &args.data {
        let origin = format!("--data {}", d.display());
        sets.push(Override::flag(
            "data.train",
            path_value(&d.join("train")),
            &origin,
        ));
        sets.push(Override::flag(
            "data.val",
            path_value(&d.join("val")),
            origin,
        ));
    }
    if args.insecure_cluster {
        sets.push(Override::flag(
            "cluster.insecure",
            true,
            "--insecure-cluster",
        ));
    }
    if args.no_hooks {
        sets.push(Override::flag(
            "hooks",
            toml::Value::Array(Vec::new()),
            "--no-hooks",
        ));
    }
    if let Some(f) = &args.init_from {
        let origin = format!("--init-from {}", f.display());
        sets.push(Override::flag("model.init_from", path_value(f), origin));
    }
    if args.new_head {
        let head = toml::Value::Array(vec!["head".into()]);
        sets.push(Override::flag("model.reset_layers", head, "--new-head"));
    }
    if let Some(n) = &args.name {
        sets.push(Override::flag("name", n.as_str(), format!("--name {n}")));
    }
    if let Some(r) = &args.runs_dir {
        let origin = format!("--runs-dir {}", r.display());
        sets.push(Override::flag("runs_dir", path_value(r), origin));
    }
    sets
}

/// A count as a configuration value (one past TOML's integers is refused
/// by the key's type, naming the flag).
fn count(n: u64) -> toml::Value {
    match i64::try_from(n) {
        Ok(n) => toml::Value::Integer(n),
        Err(_) => toml::Value::String(n.to_string()),
    }
}

/// The overrides of the flags that set one value each: `(key, flag, value
/// as typed, value shown)`.
fn value_flags(args: &TrainArgs) -> Vec<Override> {
    let as_u64 = |v: usize| v as u64;
    let mut sets = Vec::new();
    let mut flag = |key: &str, name: &str, value: Option<(toml::Value, String)>| {
        if let Some((value, shown)) = value {
            sets.push(Override::flag(key, value, format!("{name} {shown}")));
        }
    };
    let n = |v: u64| (count(v), v.to_string());
    flag("train.epochs", "--epochs", args.epochs.map(n));
    flag(
        "train.batch_size",
        "--batch-size",
        args.batch_size.map(as_u64).map(n),
    );
    flag(
        "optim.lr",
        "--lr",
        args.lr.map(|v| (v.into(), format!("{v:?}"))),
    );
    let gpus = args.devices.gpus.as_ref();
    flag(
        "train.gpus",
        "--gpus",
        gpus.map(|g| (gpus_toml(g), gpus_value(g))),
    );
    let replicas = args.devices.cpu_replicas.map(as_u64).map(n);
    flag("train.cpu_replicas", "--cpu-replicas", replicas);
    flag("data.workers", "--workers", args.workers.map(as_u64).map(n));
    flag("seed", "--seed", args.seed.map(n));
    let bad = args
        .bad_images
        .as_ref()
        .map(|b| (name_of(b).into(), name_of(b)));
    flag("data.bad_images", "--bad-images", bad);
    flag("cluster.nodes", "--nodes", args.nodes.map(as_u64).map(n));
    flag(
        "cluster.node_rank",
        "--node-rank",
        args.node_rank.map(as_u64).map(n),
    );
    let rendezvous = args
        .rendezvous
        .as_ref()
        .map(|r| (r.as_str().into(), r.clone()));
    flag("cluster.rendezvous", "--rendezvous", rendezvous);
    sets
}

/// Refuses what the flags name but cannot be: a `--resume` path that does
/// not exist, a `--data` folder without `train/` (with the parent to use
/// when it was `DIR/train` itself).
fn check_flag_paths(args: &TrainArgs) -> Result<()> {
    if let Some(r) = &args.resume {
        if !r.exists() {
            bail!(
                "--resume {}: no such run directory or checkpoint",
                r.display()
            );
        }
    }
    let Some(d) = &args.data else {
        return Ok(());
    };
    if d.join("train").is_dir() {
        return Ok(());
    }
    if !d.exists() {
        bail!("--data {}: no such folder", d.display());
    }
    let parent = d.parent().filter(|p| p.join("train").is_dir());
    match (d.file_name().and_then(|n| n.to_str()), parent) {
        (Some("train" | "val"), Some(p)) => bail!(
            "--data {} has no train/ folder: --data takes the folder that holds train/ and val/; did you mean --data {}?",
            d.display(),
            p.display()
        ),
        _ => bail!(
            "--data {} has no train/ folder (--data takes a folder with train/ and val/ ImageFolders)",
            d.display()
        ),
    }
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
    check_flag_paths(args)?;
    // torchrun's or SLURM's variables first: the user's --set and flags win.
    let mut sets = crate::config::launcher::overrides(|k| std::env::var(k).ok())?;
    sets.extend(overrides(args));
    let saved_run = match &args.config {
        Some(_) => None,
        None => args.resume.as_deref().and_then(resume_run_dir),
    };
    if let Some(run) = &saved_run {
        // Before anything in it is read: no links, no FIFOs.
        crate::train::run_tree::check_run_tree(run)?;
    }
    let config_path = match (&args.config, &saved_run) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(run)) => Some(resume_in_place(args, run, &mut sets)),
        (None, None) => None,
    };
    let (mut config, sources) = RunConfig::load_sourced(config_path.as_deref(), &sets)?;
    if let Some(run) = &saved_run {
        drop_saved_network(&mut config, &sets, run);
    }
    // Checked here too (the session checks again) to name where a bad
    // value came from.
    config.validate().map_err(|e| sources.blame(e))?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(0);
    }
    config.check_paths().map_err(|e| sources.blame(e))?;
    if config.cluster.nodes > 1 {
        // Before anything is written: a cluster needs its token.
        crate::train::cluster::token(&config.cluster)?;
    }
    if let Some(run) = &saved_run {
        check_saved_programs(&config, run, args.trust_run_hooks.as_deref())?;
    }
    // GPUs named only in the file: CUDA in before libtorch is asked anything.
    crate::devices::preload_cuda(!config.train.gpus.ids().is_empty());
    if args.dry_run {
        let report = crate::train::dry_run::dry_run(&config, args.restart);
        for line in report.map_err(|e| sources.blame(e))? {
            println!("{line}");
        }
        println!("dry run: everything checked, nothing written");
        return Ok(0);
    }
    let options = TrainOptions {
        resume: args.resume.clone(),
        stop: stop_on_signals()?,
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

/// `--resume RUN` without `--config`: the run's own resolved config, its
/// name and place kept unless overridden (the `sets` it needs go first),
/// with the architecture table kept in the run. Its config file.
fn resume_in_place(args: &TrainArgs, run: &Path, sets: &mut Vec<Override>) -> PathBuf {
    let origin = format!("--resume {}", run.display());
    let runs_dir = path_value(run.parent().unwrap_or(Path::new(".")));
    sets.insert(0, Override::flag("runs_dir", runs_dir, &origin));
    let name = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    sets.insert(1, Override::flag("name", name, &origin));
    // The table the run trained, kept in the run (the user's file may have
    // moved or changed since).
    let kept = run.join(RUN_ARCH_FILE);
    if kept.is_file() && args.arch.is_none() && args.arch_file.is_none() {
        sets.insert(
            2,
            Override::flag("model.arch_file", path_value(&kept), &origin),
        );
    }
    run.join(RUN_CONFIG_FILE)
}

/// A run directory is data: where the run listens or connects and with
/// which token (or none) come from this command line, never from `run`;
/// each saved setting dropped is named.
fn drop_saved_network(config: &mut RunConfig, sets: &[Override], run: &Path) {
    for dropped in config.forget_saved_network(sets) {
        let note = format!(
            "{}: the saved {dropped} is not used on --resume (a run directory does not choose the network); give it on the command line to use it",
            run.join(RUN_CONFIG_FILE).display()
        );
        crate::say::warning(&note);
    }
}

/// Ctrl-C and SIGTERM ask the returned handle to stop; before the first
/// step they end the process at once; a second one aborts.
fn stop_on_signals() -> Result<StopHandle> {
    let stop = StopHandle::new();
    let on_signal = stop.clone();
    ctrlc::set_handler(move || {
        if !on_signal.armed() {
            // Indexing, the per-pixel mean, the probe set, the cluster:
            // nothing trained yet, nothing to checkpoint, nothing to wait for.
            eprintln!("\nzftrain: stopped before the first step (nothing to checkpoint; run again, with --resume if the run directory was made)");
            // SAFETY: as below, `_exit` runs no code.
            unsafe { libc::_exit(130) }
        }
        if on_signal.request() == 0 {
            eprintln!("\nzftrain: stopping within a step or a batch and writing a checkpoint (press Ctrl-C again to abort at once)");
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
    Ok(stop)
}

/// `--gpus` as the configuration value `train.gpus` (a count or a list).
fn gpus_toml(gpus: &crate::config::Gpus) -> toml::Value {
    match gpus {
        crate::config::Gpus::Count(n) => count(*n as u64),
        crate::config::Gpus::List(ids) => {
            toml::Value::Array(ids.iter().map(|&i| count(i as u64)).collect())
        }
    }
}

/// `--gpus 4` -> `4`, `--gpus 0,2` -> `[0,2]` (as the flag is shown in errors).
fn gpus_value(gpus: &crate::config::Gpus) -> String {
    match gpus {
        crate::config::Gpus::Count(n) => n.to_string(),
        crate::config::Gpus::List(ids) => {
            let ids: Vec<String> = ids.iter().map(usize::to_string).collect();
            format!("[{}]", ids.join(","))
        }
    }
}

impl Run for TrainArgs {
    fn wants_cuda(&self) -> bool {
        self.devices.wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        run(self)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gpu_flag_becomes_a_count_or_a_list() {
        use crate::config::Gpus;
        assert_eq!(super::gpus_value(&Gpus::Count(4)), "4");
        assert_eq!(super::gpus_value(&Gpus::List(vec![0, 2])), "[0,2]");
    }
}
