//! Fine-tuning: which layers a run freezes, draws fresh and steps at
//! another learning rate (`model.freeze`, `model.reset_layers`,
//! `optim.lr_mult`, resolved against the network's table before anything
//! is written), and starting from weights (`model.init_from`): every
//! tensor of the file goes into the fresh network except the reset
//! layers', strictly (names, shapes, the classes' names), so a file for
//! another network or other classes is refused, naming the tensor and
//! the way out (`--new-head`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use zftrain_checkpoints::{assign_strict, read_safetensors, Checkpoint, Metadata};
use zftrain_model::Arch;

use crate::config::{DataConfig, KeyError, RunConfig};

/// The key every error about the start weights names.
const INIT_FROM: &str = "model.init_from";
use crate::train::checkpointing::find_resume;
use zftrain_parallel::DataParallel;

/// The layers a run treats apart, as indices into its table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerPolicy {
    /// `model.freeze`.
    pub frozen: Vec<usize>,
    /// `model.reset_layers`.
    pub reset: Vec<usize>,
    /// `optim.lr_mult`: (layer, multiplier).
    pub lr_mult: Vec<(usize, f64)>,
}

impl LayerPolicy {
    /// Resolves the config's layer names against `arch`; an unknown name is
    /// an error naming the key and the layers that exist.
    pub fn resolve(config: &RunConfig, arch: &Arch) -> Result<LayerPolicy> {
        let m = &config.model;
        let frozen = arch.select_layers("model.freeze", &m.freeze)?;
        let reset = arch.select_layers("model.reset_layers", &m.reset_layers)?;
        let mut lr_mult = Vec::new();
        for (name, &mult) in &config.optim.lr_mult {
            let layer = arch.select_layer(&format!("optim.lr_mult.{name}"), name)?;
            if lr_mult.iter().any(|(l, _)| *l == layer) {
                return Err(KeyError::new(
                    "optim.lr_mult",
                    format!(
                        "two names for layer {} ({name} and another)",
                        arch.layers[layer].label
                    ),
                )
                .into());
            }
            lr_mult.push((layer, mult));
        }
        if !frozen.is_empty() && frozen.len() == arch.weighted_layers().len() {
            return Err(KeyError::new(
                "model.freeze",
                "freezes every layer with parameters: nothing would train",
            )
            .into());
        }
        Ok(LayerPolicy {
            frozen,
            reset,
            lr_mult,
        })
    }

    /// Labels of `layers` in `arch`, comma separated.
    fn labels(arch: &Arch, layers: &[usize]) -> String {
        let names: Vec<&str> = layers
            .iter()
            .map(|&i| arch.layers[i].label.as_str())
            .collect();
        names.join(", ")
    }

    /// One line for the log and the terminal: what is frozen, reset, scaled.
    pub fn describe(&self, arch: &Arch) -> Option<String> {
        let mut parts = Vec::new();
        if !self.frozen.is_empty() {
            parts.push(format!("frozen: {}", Self::labels(arch, &self.frozen)));
        }
        if !self.reset.is_empty() {
            parts.push(format!("drawn fresh: {}", Self::labels(arch, &self.reset)));
        }
        for (layer, m) in &self.lr_mult {
            parts.push(format!(
                "{} at {m}x the learning rate",
                arch.layers[*layer].label
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// The weights file `path` stands for: the file itself, a checkpoint's
/// weights, or the newest usable checkpoint's of a run directory; with
/// the checkpoint, when it is one.
pub fn weights_file(path: &Path) -> Result<(PathBuf, Option<Checkpoint>)> {
    if path.is_file() {
        return Ok((path.to_path_buf(), None));
    }
    let (ck, skipped) = find_resume(path)
        .map_err(|e| e.context(path.display().to_string()))
        .context(KeyError::about(INIT_FROM))?
        .ok_or_else(|| {
            KeyError::new(
                INIT_FROM,
                format!(
                    "run directory {} has no complete checkpoint yet",
                    path.display()
                ),
            )
        })?;
    for s in skipped {
        crate::say::warning(&s);
    }
    Ok((ck.weights_path(), Some(ck)))
}

/// Weights to start from, read and checked against the network's table
/// before anything is written: [`StartWeights::read`], then
/// [`StartWeights::load`] into the engine.
pub struct StartWeights {
    file: PathBuf,
    /// The checkpoint the weights are from, when they are (its per-pixel
    /// mean image normalizes the new data as the weights were trained).
    pub checkpoint: Option<Checkpoint>,
    /// The file's tensors less the reset layers', in the network's order.
    tensors: Vec<(String, tch::Tensor)>,
    note: String,
}

impl StartWeights {
    /// Reads `from` (see [`weights_file`]) for a network of `arch`: every
    /// `state_dict` entry but those of the reset layers must be there with
    /// its shape, and nothing else; `classes` are the run's class names (a
    /// file that records other names is refused unless its classifier is
    /// reset).
    pub fn read(
        from: &Path,
        arch: &Arch,
        policy: &LayerPolicy,
        classes: &[String],
        data: &DataConfig,
    ) -> Result<StartWeights> {
        let (file, checkpoint) = weights_file(from)?;
        let (tensors, meta) = read_safetensors(&file)?;
        crate::weights::check_values(&file, &tensors).context(KeyError::about(INIT_FROM))?;
        if !data.pixel_mean {
            warn_on_normalization(&file, &meta, data);
        }
        let head = arch.weighted_layers().last().copied();
        if !head.is_some_and(|h| policy.reset.contains(&h)) {
            check_class_names(&file, &meta, classes)?;
        }
        let names = arch.state_names();
        let layers = arch.state_layers();
        let reset = |name: &str| {
            names
                .iter()
                .zip(&layers)
                .any(|((n, _), l)| n == name && policy.reset.contains(l))
        };
        // Shapes first, for an error that says what to do about a classifier.
        check_shapes(&file, arch, policy, &tensors, classes.len())?;
        let kept: Vec<(String, tch::Tensor)> =
            tensors.into_iter().filter(|(n, _)| !reset(n)).collect();
        // Names: what assign_strict checks, on a network-less dry run.
        let wanted: Vec<&str> = names
            .iter()
            .filter(|(n, _)| !reset(n))
            .map(|(n, _)| n.as_str())
            .collect();
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| !kept.iter().any(|(n, _)| n == w))
            .collect();
        let extra: Vec<&str> = kept
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !wanted.contains(n))
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            return Err(KeyError::new(
                INIT_FROM,
                format!(
                    "{} does not fit this run's {} (missing: {}; not in the network: {})",
                    file.display(),
                    arch.name,
                    shorten(&missing),
                    shorten(&extra)
                ),
            )
            .into());
        }
        let note = format!(
            "initialized from {}: {} tensors loaded{}",
            file.display(),
            kept.len(),
            match policy.reset.is_empty() {
                true => String::new(),
                false => format!(", {} drawn fresh", LayerPolicy::labels(arch, &policy.reset)),
            }
        );
        Ok(StartWeights {
            file,
            checkpoint,
            tensors: kept,
            note,
        })
    }

    /// Copies the weights into replica 0 of `dp`, then every replica (the
    /// reset layers keep their fresh draw).
    pub fn load(self, dp: &DataParallel) -> Result<()> {
        let targets: Vec<(String, tch::Tensor)> = dp
            .primary()
            .named_weights()
            .into_iter()
            .filter(|(n, _)| self.tensors.iter().any(|(m, _)| m == n))
            .collect();
        assign_strict(&self.file, self.tensors, &targets)
            .map_err(|e| anyhow::Error::new(e).context(format!("loading {}", self.file.display())))
            .context(KeyError::about(INIT_FROM))?;
        dp.broadcast_from_first();
        crate::say::notice(&self.note);
        Ok(())
    }
}

/// Every tensor of `tensors` that the network has (but the reset layers')
/// has its shape; an error says what to do about a classifier of another
/// size (`classes`: the run's).
fn check_shapes(
    file: &Path,
    arch: &Arch,
    policy: &LayerPolicy,
    tensors: &[(String, tch::Tensor)],
    classes: usize,
) -> Result<()> {
    let names = arch.state_names();
    let layers = arch.state_layers();
    let head = arch.weighted_layers().last().copied();
    for ((name, shape), layer) in names.iter().zip(&layers) {
        let Some((_, src)) = tensors.iter().find(|(n, _)| n == name) else {
            continue;
        };
        if policy.reset.contains(layer) || src.size() == *shape {
            continue;
        }
        let label = &arch.layers[*layer].label;
        let hint = match Some(*layer) == head {
            true => format!("; {label} is the classifier: pass --new-head (model.reset_layers = [\"head\"]) to draw it fresh for this data's {} classes", classes),
            false => format!("; it belongs to {label}: the file is for another network, or add {label} to model.reset_layers"),
        };
        return Err(KeyError::new(
            INIT_FROM,
            format!(
                "{} has tensor '{name}' of shape {:?}, this run's network needs {shape:?}{hint}",
                file.display(),
                src.size()
            ),
        )
        .into());
    }
    Ok(())
}

/// Says so when the run normalizes its input otherwise than the file
/// records its weights were trained with (the features would see shifted
/// input; often intended, so not an error).
fn warn_on_normalization(file: &Path, meta: &Metadata, data: &DataConfig) {
    for (key, ours) in [("mean", data.mean), ("std", data.std)] {
        let Some(theirs) = meta
            .get(&format!("zftrain.{key}"))
            .and_then(|v| crate::weights::parse_triple(v).ok())
        else {
            continue;
        };
        if theirs
            .iter()
            .zip(ours)
            .any(|(t, o)| (t - f64::from(o)).abs() > 1e-6)
        {
            let note = format!(
                "{} was trained with data.{key} = {theirs:?}, this run uses {ours:?}",
                file.display()
            );
            crate::say::warning(&note);
        }
    }
}

/// At most five names, then how many more; `none` for none.
fn shorten(names: &[&str]) -> String {
    match names.len() {
        0 => "none".into(),
        n if n <= 5 => names.join(", "),
        n => format!("{} and {} more", names[..5].join(", "), n - 5),
    }
}

/// A weights file that records its class names must name the run's
/// classes in the same order (else its classifier's outputs would mean
/// other classes, silently).
fn check_class_names(file: &Path, meta: &Metadata, classes: &[String]) -> Result<()> {
    let Some(text) = meta.get("zftrain.class_names") else {
        return Ok(());
    };
    let theirs: Vec<String> = serde_json::from_str(text).with_context(|| {
        format!(
            "{}: metadata key 'zftrain.class_names' is not a list of names",
            file.display()
        )
    })?;
    if theirs.len() != classes.len() {
        // The classifier's shape tells (with the hint about --new-head).
        return Ok(());
    }
    if let Some(i) = (0..classes.len()).find(|&i| theirs[i] != classes[i]) {
        return Err(KeyError::new(
            INIT_FROM,
            format!(
                "{} was trained on other classes (its class {i} is '{}', this data's is '{}'): pass --new-head to draw the classifier fresh for this data",
                file.display(),
                theirs[i],
                classes[i]
            ),
        )
        .into());
    }
    Ok(())
}
