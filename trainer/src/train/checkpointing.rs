//! Checkpoints of a run: `RUN/checkpoints/step-<global step>/` with the
//! weights (PyTorch names), the momentum buffers, the trainer state and the
//! resolved configuration; `RUN/checkpoints/latest` (a symlink) is moved
//! last. The newest `keep_last` checkpoints and the best one are kept.
//! Resuming picks the newest checkpoint that verifies and says which it
//! skipped.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;
use tch::Tensor;
use tracing::warn;
use zftrain_checkpoints::{assign_strict, read_safetensors, Checkpoint, Content, MANIFEST_FILE};

use zftrain_data::MeanImage;
use zftrain_hooks::HookState;
use zftrain_model::arch_file::table_difference;

use crate::config::RunConfig;
use crate::train::hooks::HOOK_PREFIX;
use crate::train::state::TrainerState;
use crate::weights::{ArchSpec, Model, WeightsInfo};
use zftrain_parallel::Sgd;

/// The momentum buffers file.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The trainer state file.
pub const TRAINER_FILE: &str = "trainer.json";
/// The configuration file inside a checkpoint.
pub const CONFIG_FILE: &str = "config.json";
/// The per-pixel mean image (runs with `data.pixel_mean`): one tensor
/// `mean_image`, `[3, S, S]` on `[0, 1]` pixels.
pub const MEAN_IMAGE_FILE: &str = "mean-image.safetensors";
/// Name of the link to the newest checkpoint.
pub const LATEST: &str = "latest";

/// The resolved configuration a run directory keeps.
pub const RUN_CONFIG_FILE: &str = "config.toml";

/// Whether the run directory `run` holds a checkpoint folder (`step-N`,
/// complete or not; half-written ones are hidden temporaries and do not
/// count).
pub fn has_checkpoints(run: &Path) -> bool {
    !step_dirs(&checkpoints_dir(run)).is_empty()
}

/// The checkpoints folder of a run.
pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

fn step_dirs(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let step = name.strip_prefix("step-")?.parse::<u64>().ok()?;
                    // Only real directories: a `step-N` link could point
                    // anywhere, and pruning must never follow one.
                    e.file_type().ok()?.is_dir().then(|| (step, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What a checkpoint holds.
pub struct Snapshot<'a> {
    /// The run's resolved configuration.
    pub config: &'a RunConfig,
    /// Replica 0's weights.
    pub model: &'a Model,
    /// What the weights are (architecture, classes, normalization).
    pub info: &'a WeightsInfo,
    /// Replica 0's momentum buffers.
    pub sgd: &'a Sgd,
    /// The trainer's position and history.
    pub state: &'a TrainerState,
    /// The per-pixel mean image, with `data.pixel_mean`.
    pub mean_image: Option<&'a MeanImage>,
    /// Hooks' (and other callbacks') states, as `(name, state)`.
    pub hook_states: &'a [(String, HookState)],
}

/// Writes a checkpoint of `snap` as `RUN/checkpoints/step-<global step>`
/// and moves `latest` to it (what to keep is the policy's: [`prune`]).
pub fn save(run_dir: &Path, snap: &Snapshot<'_>) -> Result<PathBuf> {
    let Snapshot {
        config,
        model,
        info,
        sgd,
        state,
        mean_image,
        hook_states,
    } = *snap;
    let dir = checkpoints_dir(run_dir);
    remove_stale_temporaries(&dir);
    let path = dir.join(format!("step-{:09}", state.global_step));
    let replace = match at_path(&path, state)? {
        AtPath::Nothing => false,
        AtPath::ThisPlace => return Ok(path),
        AtPath::AnotherPlace => true,
    };
    let weights = model.named_weights();
    let momentum = sgd.state();
    let trainer = serde_json::to_value(state)?;
    let config_json = serde_json::to_value(config)?;
    let meta_weights = info.to_metadata();
    let empty = Default::default();
    let mean_tensors = mean_image.map(mean_tensors).unwrap_or_default();
    let mut files = vec![
        (
            zftrain_checkpoints::WEIGHTS_FILE,
            Content::Tensors(&weights, &meta_weights),
        ),
        (OPTIMIZER_FILE, Content::Tensors(&momentum, &empty)),
        (TRAINER_FILE, Content::Json(&trainer)),
        (CONFIG_FILE, Content::Json(&config_json)),
    ];
    if mean_image.is_some() {
        files.push((MEAN_IMAGE_FILE, Content::Tensors(&mean_tensors, &empty)));
    }
    let hook_files: Vec<(String, String)> = hook_states
        .iter()
        .map(|(name, _)| {
            (
                format!("{HOOK_PREFIX}{name}.json"),
                format!("{HOOK_PREFIX}{name}.safetensors"),
            )
        })
        .collect();
    for ((json_name, tensors_name), (_, st)) in hook_files.iter().zip(hook_states) {
        files.push((json_name.as_str(), Content::Json(&st.json)));
        if !st.tensors.is_empty() {
            files.push((tensors_name.as_str(), Content::Tensors(&st.tensors, &empty)));
        }
    }
    let meta = json!({ "weights": info, "epoch": state.epoch, "batch": state.batch, "global_step": state.global_step });
    let written = match replace {
        true => Checkpoint::replace_files(&path, &files, meta),
        false => Checkpoint::write_files(&path, &files, meta).map(Some),
    }
    .with_context(|| format!("writing checkpoint {}", path.display()))?;
    if written.is_none() {
        warn!(
            checkpoint = %path.display(),
            "the file system cannot exchange folders atomically: the checkpoint of this step is kept as it was (a resume redoes the epoch's end)"
        );
    }
    point_latest(&dir, &path)?;
    Ok(path)
}

/// What the path of a new checkpoint holds already.
enum AtPath {
    Nothing,
    /// The checkpoint of this very place (a stop right after an epoch's
    /// end): kept.
    ThisPlace,
    /// The checkpoint of this step at another place (a stop before the
    /// epoch's end, then the resumed run's end at the same step): replaced,
    /// so the newest checkpoint always says where the run is.
    AnotherPlace,
}

/// What is at `path`, the checkpoint of `state`'s step; a folder there that
/// is not a zftrain checkpoint is someone's: refused, never replaced.
fn at_path(path: &Path, state: &TrainerState) -> Result<AtPath> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(AtPath::Nothing);
    }
    if !path.join(MANIFEST_FILE).is_file() {
        bail!(
            "{} is in the way of the checkpoint of step {} and is not a zftrain checkpoint (no {MANIFEST_FILE}): move it out of the run's checkpoints folder",
            path.display(),
            state.global_step
        );
    }
    Ok(match saved_place(path) {
        Some(place) if place == (state.epoch, state.batch as u64, state.global_step) => {
            AtPath::ThisPlace
        }
        _ => AtPath::AnotherPlace,
    })
}

/// The per-pixel mean image as a checkpoint holds it: `mean_image`,
/// `[3, side, side]`.
fn mean_tensors(m: &MeanImage) -> Vec<(String, Tensor)> {
    let s = m.side() as i64;
    vec![(
        "mean_image".to_string(),
        Tensor::from_slice(m.values()).view([3, s, s]),
    )]
}

/// Where the checkpoint `path` says its run was: `(epoch, batch,
/// global_step)` from its `trainer.json` (at most 1 MiB read), integers
/// only, so the comparison is exact.
fn saved_place(path: &Path) -> Option<(u64, u64, u64)> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs::File::open(path.join(TRAINER_FILE))
        .ok()?
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some((
        v["epoch"].as_u64()?,
        v["batch"].as_u64()?,
        v["global_step"].as_u64()?,
    ))
}

/// Removes what an earlier, killed process left half-written (hidden
/// `.step-*.tmp-*` directories and `.latest.tmp-*` links): only one trainer
/// writes a run's checkpoints, and those names are never loaded.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") {
            let p = e.path();
            let _ = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// Moves the `latest` symlink to `target` atomically (new link, then rename).
fn point_latest(dir: &Path, target: &Path) -> Result<()> {
    let name = target.file_name().context("checkpoint has a name")?;
    let tmp = dir.join(format!(".{LATEST}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp).with_context(|| format!("linking {}", tmp.display()))?;
    fs::rename(&tmp, dir.join(LATEST))
        .with_context(|| format!("updating {}", dir.join(LATEST).display()))?;
    Ok(())
}

/// Removes the checkpoints of `dir` (a run's `checkpoints/`) but the
/// newest `keep_last` and the one at `best_step`.
pub fn prune(dir: &Path, keep_last: usize, best_step: Option<u64>) -> Result<()> {
    // Never across a link: not a linked `checkpoints/`, not a linked step.
    if dir.is_symlink() {
        bail!(
            "{} is a symbolic link: zftrain prunes checkpoints only inside the run directory; remove the link",
            dir.display()
        );
    }
    // Only zftrain's own checkpoints: a folder that merely has the name
    // (someone's copy, notes) is neither counted nor removed.
    let all: Vec<(u64, PathBuf)> = step_dirs(dir)
        .into_iter()
        .filter(|(_, p)| !p.is_symlink() && p.join(MANIFEST_FILE).is_file())
        .collect();
    let cut = all.len().saturating_sub(keep_last);
    for (step, path) in &all[..cut] {
        if Some(*step) != best_step {
            // Renamed out of the way first (atomic), then deleted: a kill
            // during the deletion leaves a hidden temporary, which the next
            // save sweeps away, never a `step-N` without its manifest.
            let name = path.file_name().context("a checkpoint has a name")?;
            let doomed = dir.join(format!(
                ".{}.tmp-{}",
                name.to_string_lossy(),
                std::process::id()
            ));
            fs::rename(path, &doomed)
                .with_context(|| format!("moving old checkpoint {} aside", path.display()))?;
            fs::remove_dir_all(&doomed)
                .with_context(|| format!("removing old checkpoint {}", doomed.display()))?;
        }
    }
    Ok(())
}

/// Finds the checkpoint to resume from: `path` itself if it is a checkpoint,
/// else the newest checkpoint of the run directory `path` that verifies.
/// Returns it with a note for each newer one that was skipped; `None` for
/// a run directory that stopped before its first checkpoint was complete
/// (it trains from the start).
pub fn find_resume(path: &Path) -> Result<Option<(Checkpoint, Vec<String>)>> {
    if path.join(MANIFEST_FILE).exists() {
        let ck = Checkpoint::open(path)
            .with_context(|| format!("cannot resume from {}", path.display()))?;
        return Ok(Some((ck, Vec::new())));
    }
    let dir = checkpoints_dir(path);
    if !has_checkpoints(path) {
        if path.join(RUN_CONFIG_FILE).is_file() {
            // Stopped before its first checkpoint was complete.
            return Ok(None);
        }
        bail!(
            "{} is neither a checkpoint nor a run directory",
            path.display()
        );
    }
    let mut skipped = Vec::new();
    for (_, candidate) in step_dirs(&dir).into_iter().rev() {
        match Checkpoint::open(&candidate) {
            Ok(ck) => return Ok(Some((ck, skipped))),
            Err(e) => skipped.push(format!("skipping checkpoint {}: {e}", candidate.display())),
        }
    }
    bail!(
        "no usable checkpoint in {}{}",
        dir.display(),
        skipped
            .iter()
            .map(|s| format!("\n  {s}"))
            .collect::<String>()
    )
}

/// The per-pixel mean image stored in `ck`, if it has one.
pub fn read_mean_image(ck: &Checkpoint) -> Result<Option<MeanImage>> {
    let Some(path) = ck.file(MEAN_IMAGE_FILE) else {
        return Ok(None);
    };
    let (tensors, _) = read_safetensors(&path)?;
    let tensor = tensors
        .into_iter()
        .find(|(n, _)| n == "mean_image")
        .map(|(_, t)| t)
        .with_context(|| format!("{} has no tensor 'mean_image'", path.display()))?;
    let size = tensor.size();
    if size.len() != 3 || size[0] != 3 || size[1] != size[2] || tensor.kind() != tch::Kind::Float {
        bail!(
            "{}: 'mean_image' must be float32 [3, S, S], got {:?} {size:?}",
            path.display(),
            tensor.kind()
        );
    }
    let values = Vec::<f32>::try_from(tensor.flatten(0, -1))
        .with_context(|| format!("reading {}", path.display()))?;
    let mean = MeanImage::new(size[1] as u32, values)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Some(mean))
}

/// Restores weights, momentum and trainer state from `ck` into `model` and
/// `sgd`, after checking that the checkpoint is for the same architecture
/// and number of classes.
pub fn restore(
    ck: &Checkpoint,
    model: &Model,
    info: &WeightsInfo,
    sgd: &Sgd,
) -> Result<TrainerState> {
    let (tensors, meta) = read_safetensors(&ck.weights_path())?;
    let theirs = WeightsInfo::resolve(&ck.weights_path(), &meta, &Default::default(), &tensors)?;
    let (ours, others) = (info.arch_table()?, theirs.arch_table()?);
    let difference = match (&info.arch, &theirs.arch) {
        (ArchSpec::Builtin(a), ArchSpec::Builtin(b)) if a == b => None,
        (ArchSpec::Builtin(_), ArchSpec::Builtin(_)) => Some("another architecture".into()),
        _ => table_difference(&others, &ours),
    };
    if difference.is_some()
        || theirs.config.classes != info.config.classes
        || theirs.config.lrn != info.config.lrn
    {
        bail!(
            "checkpoint {} is for {}, this run is {}{}",
            ck.dir().display(),
            theirs.describe(),
            info.describe(),
            difference.map(|d| format!(": {d}")).unwrap_or_default()
        );
    }
    // The same number of classes under other names would remap every
    // label silently.
    if let (Some(theirs), Some(ours)) = (&theirs.class_names, &info.class_names) {
        if let Some(i) = (0..theirs.len().min(ours.len())).find(|&i| theirs[i] != ours[i]) {
            bail!(
                "checkpoint {} was trained on other classes: its class {i} is '{}', the data's is '{}' (the data's class folders changed; resuming would remap the labels)",
                ck.dir().display(),
                theirs[i],
                ours[i]
            );
        }
    }
    let momentum_path = ck
        .file(OPTIMIZER_FILE)
        .with_context(|| {
            format!(
                "{} has no optimizer state (weights only, as `zftrain init` and `zftrain import` write): start a new run from it with --init-from {}",
                ck.dir().display(),
                ck.dir().display()
            )
        })?;
    let (momentum, _) = read_safetensors(&momentum_path)?;
    let state: TrainerState = serde_json::from_value(ck.read_json(TRAINER_FILE)?)
        .with_context(|| format!("{}: bad trainer state", ck.dir().display()))?;
    state
        .check()
        .map_err(|e| anyhow::anyhow!("{}/{TRAINER_FILE}: {e}", ck.dir().display()))?;
    // Everything read and checked: now copy (strict loads change nothing on error).
    assign_strict(&ck.weights_path(), tensors, &model.named_weights())?;
    assign_strict(&momentum_path, momentum, &sgd.state())?;
    Ok(state)
}
