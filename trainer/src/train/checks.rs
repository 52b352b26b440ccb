//! What a run checks before it writes anything, in one place so that
//! `zftrain train --dry-run` makes the same checks by construction: the
//! [`Preflight`] (configuration, hooks and their state names, devices,
//! data, network, layer policy) and [`check_place`] (the run directory and
//! what the run starts from: the checkpoint it resumes or the weights it
//! fine-tunes). A run then joins the other nodes and claims the run
//! directory ([`Checked`]); a dry run reports and stops.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tch::Device;
use tracing::warn;
use zftrain_checkpoints::Checkpoint;
use zftrain_data::Dataset;
use zftrain_hooks::{Hook, Hooks};
use zftrain_model::Arch;

use crate::config::RunConfig;
use crate::devices::training_devices;
use crate::train::callbacks::Callback;
use crate::train::checkpointing::{find_resume, has_checkpoints};
use crate::train::lock::RunLock;
use crate::train::role::Role;
use crate::train::run_tree::check_run_tree;
use crate::train::setup;
use crate::train::transfer::{LayerPolicy, StartWeights};
use crate::weights::{ArchSpec, WeightsInfo};

/// Everything checked before the nodes join: the configuration, the hooks,
/// the devices, the data and the network.
pub(crate) struct Preflight {
    pub hooks: Hooks,
    pub devices: Vec<Device>,
    pub train_set: Dataset,
    pub val_set: Dataset,
    pub spec: ArchSpec,
    pub arch: Arch,
    pub info: WeightsInfo,
    pub policy: LayerPolicy,
}

impl Preflight {
    /// Checks the configuration, its hooks (the configured ones, then
    /// `extra`) and the state names of those and the caller's `callbacks`,
    /// the devices, the data and the network against the data.
    pub fn new(
        config: &RunConfig,
        extra: Vec<Box<dyn Hook>>,
        callbacks: &[Box<dyn Callback>],
    ) -> Result<Preflight> {
        config.validate()?;
        config.check_paths()?;
        let mut hooks = config.build_hooks()?;
        for hook in extra {
            hooks.register(hook)?;
        }
        check_state_names(&hooks, callbacks)?;
        // Devices first: a missing CUDA is an error before anything is written.
        let devices = training_devices(&config.train.gpus.ids(), config.train.cpu_replicas)?;
        let (train_set, val_set) = setup::datasets(config)?;
        let (spec, arch, arch_config) = setup::network(config, train_set.classes.len() as i64)?;
        let policy = LayerPolicy::resolve(config, &arch)?;
        let info = WeightsInfo {
            arch: spec.clone(),
            config: arch_config,
            mean: config.data.mean.map(f64::from),
            std: config.data.std.map(f64::from),
            class_names: Some(train_set.classes.clone()),
        };
        Ok(Preflight {
            hooks,
            devices,
            train_set,
            val_set,
            spec,
            arch,
            info,
            policy,
        })
    }
}

/// Images per class of `set`.
pub(crate) fn class_counts(set: &Dataset) -> Vec<usize> {
    let mut counts = vec![0usize; set.classes.len()];
    for s in &set.samples {
        if let Some(c) = counts.get_mut(s.label) {
            *c += 1;
        }
    }
    counts
}

/// Where a run writes and what it starts from.
pub(crate) struct Place {
    pub run_dir: PathBuf,
    /// The checkpoint resumed (on the node that keeps the run), with what
    /// was skipped finding it.
    pub resume_from: Option<(Checkpoint, Vec<String>)>,
    /// `model.init_from`, read and checked against the network (a new run
    /// on the node that keeps it).
    pub start_weights: Option<StartWeights>,
}

/// Checks the run directory (nothing in it, or in the run resumed from, is
/// a link or a FIFO), finds the checkpoint to `resume` and reads the start
/// weights. Whether an existing run directory may be started over
/// ([`may_start_over`]) is asked under the run's lock, so that a run in
/// progress is refused as in use (the dry run asks it directly). `keeps`: this node keeps the run (the others resume
/// nothing and start from what it sends).
pub(crate) fn check_place(
    config: &RunConfig,
    pre: &Preflight,
    run_dir: PathBuf,
    resume: Option<&Path>,
    keeps: bool,
) -> Result<Place> {
    if run_dir.exists() {
        check_run_tree(&run_dir)?;
    }
    if let Some(p) = resume.filter(|p| p.is_dir() && !p.starts_with(&run_dir)) {
        check_run_tree(p)?;
    }
    let resume_from = match resume {
        Some(p) if keeps => find_resume(p)?,
        _ => None,
    };
    let start_weights = match config.model.init_from() {
        Some(from) if keeps && resume_from.is_none() => Some(StartWeights::read(
            from,
            &pre.arch,
            &pre.policy,
            &pre.train_set.classes,
            &config.data,
        )?),
        _ => None,
    };
    Ok(Place {
        run_dir,
        resume_from,
        start_weights,
    })
}

/// What set-up establishes before anything is written: every check
/// passed, the other nodes joined, the run directory claimed.
pub(crate) struct Checked {
    pub pre: Preflight,
    pub role: Role,
    pub place: Place,
    /// This process's claim on the run directory.
    pub lock: RunLock,
}

impl Checked {
    /// The [`Preflight`], the other nodes joined, [`check_place`], then the
    /// run directory claimed (and set aside for a start over, where
    /// allowed).
    pub fn new(
        config: &RunConfig,
        extra: Vec<Box<dyn Hook>>,
        callbacks: &[Box<dyn Callback>],
        (resume, restart): (Option<&Path>, bool),
    ) -> Result<Checked> {
        let pre = Preflight::new(config, extra, callbacks)?;
        // Several nodes: join them before anything is written.
        let role = Role::join(config, &pre.devices, &pre.train_set, &pre.val_set)?;
        let keeps = role.keeps_the_run();
        let place = check_place(config, &pre, role.run_dir(config), resume, keeps)?;
        // One writer per run directory, from here to the end of the run.
        let existed = place.run_dir.exists();
        let lock = RunLock::acquire(&place.run_dir, !existed)?;
        if keeps && place.resume_from.is_none() && existed {
            start_over(&place.run_dir, resume.is_some() || restart)?;
        }
        Ok(Checked {
            pre,
            role,
            place,
            lock,
        })
    }
}

/// A run directory that exists where a run starts: allowed only when it
/// holds no checkpoint (a run stopped before its first one was complete)
/// and the user said so (`--resume` it, or `--restart`); checked again
/// under the run's lock. Its earlier TensorBoard events and hook outputs
/// move to `attempt-N/`, so nothing is lost and the new curves do not
/// overlay the old.
fn start_over(run_dir: &Path, allowed: bool) -> Result<()> {
    may_start_over(run_dir, allowed)?;
    let shown = run_dir.display();
    let attempt = setup::set_aside_attempt(run_dir)?;
    let note = format!("{shown} has no complete checkpoint: training it from the start (its earlier events are in {})", attempt.display());
    println!("{note}");
    warn!("{note}");
    Ok(())
}

/// Whether a run may start from the beginning in `run_dir`, which exists:
/// not when it holds a checkpoint, and only when `allowed` (`--resume` or
/// `--restart`).
pub(crate) fn may_start_over(run_dir: &Path, allowed: bool) -> Result<()> {
    let shown = run_dir.display();
    if has_checkpoints(run_dir) {
        bail!("run directory {shown} already exists: pass --resume {shown} to continue it, or choose another --name");
    }
    if !allowed {
        bail!("run directory {shown} already exists and has no complete checkpoint (it stopped before its first): pass --resume {shown} or --restart to train it from the start, or choose another --name");
    }
    Ok(())
}

/// The hooks' and the caller's callbacks' state names, checked for clashes
/// (a clash would let one state overwrite the other in every checkpoint).
fn check_state_names(hooks: &Hooks, callbacks: &[Box<dyn Callback>]) -> Result<()> {
    let mut names: Vec<String> = hooks.save_states()?.into_iter().map(|(n, _)| n).collect();
    for cb in callbacks {
        for (name, _) in cb.states()? {
            if names.contains(&name) {
                bail!(
                    "two callbacks (or hooks) save their state as '{name}'; give one another name"
                );
            }
            names.push(name);
        }
    }
    Ok(())
}
