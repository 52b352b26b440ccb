//! The run configuration: a TOML file, `--set key=value` overrides and
//! command-line flags, merged in that order, then checked. Unknown keys,
//! wrong types and out-of-range values are errors that name the key. The
//! resolved configuration is written into the run directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use zftrain_data::loader::BadImages;
use zftrain_data::transform::{IMAGENET_MEAN, IMAGENET_STD};
use zftrain_data::Augment;
use zftrain_hooks::HookSpec;
use zftrain_model::{ArchName, InitScheme};

pub use zftrain_parallel::devices::MAX_DEVICES;
pub use zftrain_parallel::{KeyError, OptimConfig, Precision, ReducerChoice};

pub mod launcher;
mod machine;
mod origin;
mod validate;

pub use machine::NETWORK_KEYS;
pub use origin::{key_of, Override, Sources};
pub use zftrain_keys::KeyDecl;

/// Everything a training run needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Run name: the run directory is `<runs_dir>/<name>`.
    pub name: String,
    /// Where run directories go.
    pub runs_dir: PathBuf,
    /// Seed of initialization, data order, augmentation and dropout.
    pub seed: u64,
    /// The network.
    pub model: ModelConfig,
    /// The data.
    pub data: DataConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// SGD.
    pub optim: OptimConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Checkpoints.
    pub checkpoint: CheckpointConfig,
    /// The images the hooks look at.
    pub probe: ProbeConfig,
    /// Hooks (`[[hooks]]` tables), run in this order. A configuration
    /// without any gets the paper's set ([`HookSpec::paper_set`]);
    /// `hooks = []` (or `train --no-hooks`) runs none.
    pub hooks: Vec<HookSpec>,
    /// Several machines (one process per node; see docs/distributed.md).
    pub cluster: ClusterConfig,
}

zftrain_keys::section! {
    /// `[cluster]`: a run over several nodes, one process each, joined by a
    /// rendezvous at node 0.
    pub struct ClusterConfig in "cluster" {
        /// Nodes (processes); 1 = this process alone.
        nodes: usize = 1;
        /// This node's rank (0 = the node that writes the run).
        @machine node_rank: usize = 0;
        /// `host:port` where node 0 listens for the others.
        @machine rendezvous: String = "127.0.0.1:29400".into();
        /// Seconds to wait for every node to join, and how long a joined node
        /// may say nothing (not even a heartbeat) before the others stop.
        timeout_s: u64 = 300, valid |v| (1..=30 * 24 * 3600).contains(v) => "must be 1 s to 30 days";
        /// A file holding the cluster token (the same secret on every node);
        /// the `ZFTRAIN_CLUSTER_TOKEN` variable, when set, takes precedence.
        @machine token_file: Option<PathBuf> = None;
        /// Join without a token (`--insecure-cluster`): anyone who can reach
        /// the rendezvous port can join the run and read its weights.
        @machine insecure: bool = false;
    }
}

zftrain_keys::section! {
    /// `[probe]`: the fixed probe set of the hooks, evenly spaced validation
    /// images through the evaluation transform, decoded once when the run starts.
    pub struct ProbeConfig in "probe" {
        /// Number of images, evenly spaced over the validation set (0, or more
        /// than it has: all of them).
        images: usize = 64;
        /// Images per forward in the hooks.
        batch_size: usize = 16, valid |v| *v >= 1 => "must be at least 1";
        /// Training images, evenly spaced, that hooks mining the training set
        /// look at (the evolution hook's `source = "train"`; 0: all of them, as
        /// the paper did). Read only when such a hook is configured.
        train_images: usize = 10_000;
    }
}

zftrain_keys::section! {
    /// `[model]`.
    pub struct ModelConfig in "model" {
        /// Architecture (a built-in).
        arch: ArchName = ArchName::Zfnet;
        /// An architecture file (a TOML layer table) used instead of `arch`;
        /// an empty path means none. Its LRN and dropout layers are as written:
        /// `lrn` and `dropout` apply to the built-ins.
        #[serde(skip_serializing_if = "Option::is_none")]
        arch_file: Option<PathBuf> = None;
        /// Classes; 0 = as many as the training data has.
        classes: i64 = 0, valid |v| (0..=1_000_000).contains(v) => "must be 0 (from the data) to 1000000";
        /// LRN layers in zfnet and alexnet.
        lrn: bool = true;
        /// Dropout probability.
        dropout: f64 = 0.5, valid |v| (0.0..1.0).contains(v) => "must be in [0, 1)";
        /// Weight initialization.
        init: InitScheme = InitScheme::Pytorch;
        /// The first conv layer's weights drawn normal with this standard
        /// deviation instead of `init`'s (absent: as `init`). The demo uses ZF's
        /// 0.01 under He's scheme, so that layer 1 learns visibly in two epochs.
        #[serde(skip_serializing_if = "Option::is_none")]
        first_layer_std: Option<f64> = None, valid |v| v.is_none_or(|s| s > 0.0 && s <= 10.0) => "must be in (0, 10]";
        /// Fine-tuning: start from these weights (a `.safetensors` file, a
        /// checkpoint or a run directory's newest checkpoint) instead of a
        /// random draw, with a fresh optimizer and schedule. An empty path
        /// means none. A resumed run continues from its own checkpoint.
        #[serde(skip_serializing_if = "Option::is_none")]
        @machine init_from: Option<PathBuf> = None;
        /// Layers drawn fresh with `init` instead of taken from `init_from`
        /// (`["head"]`, or `train --new-head`: a classifier for the data's
        /// classes). Names: labels (`fc8`), modules (`classifier.6`) or `head`.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        reset_layers: Vec<String> = Vec::new();
        /// Layers whose parameters (and batch-norm statistics) never change:
        /// no gradient is computed for them, no update, no decay, no
        /// renormalization. Zeiler & Fergus's section 5 keeps layers 1-7.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        freeze: Vec<String> = Vec::new();
    }
}

zftrain_keys::section! {
    /// `[data]`.
    pub struct DataConfig in "data" {
        /// Training images: an ImageFolder.
        @machine train: PathBuf = PathBuf::new();
        /// Validation images: an ImageFolder, or the image folder of `val_list`.
        @machine val: PathBuf = PathBuf::new();
        /// Optional list file (`path label` per line, paths relative to `val`)
        /// for a flat validation folder such as ImageNet's.
        @machine val_list: Option<PathBuf> = None;
        /// Training augmentation: `zf` (random crops of the centre square),
        /// `zf-fixed` (Zeiler & Fergus's 10 fixed sub-crops) or `rrc`.
        augment: Augment = Augment::Zf, valid |v| v.is_training() => "must be 'zf', 'zf-fixed' or 'rrc' for training";
        /// Krizhevsky's PCA lighting on the training images: the standard
        /// deviation of the multiples of ImageNet's colour principal components
        /// (0 = off; AlexNet's is 0.1).
        lighting: f32 = 0.0, valid |v| (0.0..=zftrain_data::transform::MAX_LIGHTING).contains(v) => "must be 0 (off) to 1 (AlexNet's is 0.1)";
        /// Validation: `eval` (the centre crop) or `ten-crop` (the softmax
        /// averaged over the four corners and the centre with their mirrors, as
        /// both papers' tables report).
        val_augment: Augment = Augment::Eval, valid |v| !v.is_training() => "must be 'eval' or 'ten-crop' for validation";
        /// Shorter side before cropping.
        resize: u32 = 256;
        /// Crop side (the network input).
        crop: u32 = 224, valid |v| *v >= 32 => "must be at least 32";
        /// Per-channel mean on `[0, 1]` pixels.
        mean: [f32; 3] = IMAGENET_MEAN;
        /// Per-channel standard deviation the values are divided by after the
        /// mean is subtracted (on `[0, 1]` pixels). `"pixels"` is `1/255` on
        /// every channel: raw 0..255 values minus the mean, the papers' (and
        /// Caffe's) input scale, about 58 times ImageNet's std.
        #[serde(deserialize_with = "std_or_pixels")]
        std: [f32; 3] = IMAGENET_STD, valid |v| v.iter().all(|s| *s > 0.0) => "must be positive";
        /// Subtract a per-pixel mean image of the training set's centre squares
        /// instead of `mean`, as Zeiler & Fergus did (`augment = "zf"` or
        /// `"zf-fixed"`).
        /// Estimated when the run starts and stored in every checkpoint.
        pixel_mean: bool = false;
        /// Training images (evenly spaced) the per-pixel mean is estimated from
        /// (0 = all).
        pixel_mean_images: usize = 10_000;
        /// Decoding threads (default: one per core).
        @machine workers: usize = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2), valid |v| (1..=1024).contains(v) => "must be 1 to 1024";
        /// Batches decoded ahead at most.
        @machine queue_depth: usize = 4, valid |v| (1..=1024).contains(v) => "must be 1 to 1024 (batches held in memory)";
        /// `skip` or `fail` on files that do not decode.
        bad_images: BadImages = BadImages::Skip;
        /// Largest image (pixels) decoded.
        max_pixels: u64 = 100_000_000, valid |v| *v >= 1 => "must be at least 1";
    }
}

zftrain_keys::section! {
    /// `[train]`.
    pub struct TrainConfig in "train" {
        /// Epochs to train.
        epochs: u64 = 90, valid |v| *v >= 1 => "must be at least 1";
        /// Images per step.
        batch_size: usize = 128, valid |v| (1..=1 << 20).contains(v) => "must be 1 to 1048576";
        /// Label smoothing in the cross-entropy (0 = off).
        label_smoothing: f64 = 0.0, valid |v| (0.0..1.0).contains(v) => "must be in [0, 1)";
        /// ZF's filter RMS renormalization radius after each step (0 = off).
        renorm_radius: f64 = 0.0, valid |v| v.is_finite() && *v >= 0.0 => "must be finite and >= 0";
        /// Log training scalars every this many steps.
        log_every: u64 = 20, valid |v| *v >= 1 => "must be at least 1";
        /// Off a terminal, print a progress line (step, loss, images/s, time
        /// left) every this many seconds (0: every step).
        log_every_s: f64 = 60.0, valid |v| v.is_finite() && *v >= 0.0 => "must be finite and >= 0 (seconds)";
        /// Stop each epoch after this many steps (0 = whole epoch); for quick checks.
        max_steps_per_epoch: u64 = 0;
        /// CPU threads for libtorch (0 = libtorch's default).
        @machine threads: usize = 0, valid |v| *v <= 4096 => "must be 0 (all cores) to 4096";
        /// GPUs: a count (`4`: devices 0 to 3; 0 = the CPU) or a list of
        /// device indices (`[0, 2]`).
        @machine gpus: Gpus = Gpus::Count(0);
        /// Replicas on the CPU (data parallel through the same engine as GPUs;
        /// for testing the engine on machines without them).
        @machine cpu_replicas: usize = 1;
        /// Arithmetic: `auto` (bf16 with fp32 master weights on GPUs and where
        /// the CPU has bf16 instructions, else fp32), `fp32`, `bf16`, or `fp16`
        /// with dynamic loss scaling (GPUs).
        precision: Precision = Precision::Auto;
        /// Lay batches (and the conv weights they meet) out channels-last
        /// (`NHWC` in memory): oneDNN's convolutions run faster on it, in bf16
        /// and in fp32 (see docs/benchmarks.md).
        channels_last: bool = true;
        /// How gradients are all-reduced across replicas: `auto` (NCCL for two
        /// or more GPUs when it loads, else device copies), `nccl`, or `copy`.
        reducer: ReducerChoice = ReducerChoice::Auto;
        /// Let cuDNN time its convolution algorithms on the first batches and
        /// keep the fastest (PyTorch's `cudnn.benchmark`; GPUs only).
        cudnn_benchmark: bool = true;
    }
}

zftrain_keys::section! {
    /// `[schedule]`.
    pub struct ScheduleConfig in "schedule" {
        /// Which schedule: `step`, `plateau`, `cosine` or `constant`.
        kind: ScheduleKind = ScheduleKind::Step;
        /// `step`: epochs between decays.
        step_epochs: u64 = 30, valid |v| *v >= 1 => "must be at least 1";
        /// Decay factor (`step`, `plateau`).
        gamma: f64 = 0.1, valid |v| *v > 0.0 && *v <= 1.0 => "must be in (0, 1]";
        /// `plateau`: epochs without improvement before a decay.
        patience: u64 = 3;
        /// Linear warm-up from 0 over this many epochs (fractions allowed).
        warmup_epochs: f64 = 0.0, valid |v| v.is_finite() && *v >= 0.0 => "must be >= 0 (fractions allowed)";
    }
}

zftrain_keys::section! {
    /// `[checkpoint]`.
    pub struct CheckpointConfig in "checkpoint" {
        /// Keep this many newest checkpoints (the best is kept as well).
        keep_last: usize = 3, valid |v| *v >= 1 => "must be at least 1";
        /// Also checkpoint every this many steps within an epoch (0: only at
        /// the end of each epoch). A crash loses at most this many steps.
        every_steps: u64 = 0;
        /// Also checkpoint when this many minutes have passed since the last
        /// checkpoint, within an epoch (0: off). A crash loses at most this
        /// much time.
        every_minutes: f64 = 0.0, valid |v| v.is_finite() && *v >= 0.0 => "must be finite and >= 0";
    }
}

impl ModelConfig {
    /// The weights to start from, if any (an empty path is none).
    pub fn init_from(&self) -> Option<&Path> {
        self.init_from
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// The initialization of a fresh network: `init`, with `first_layer_std`.
    pub fn init_config(&self) -> zftrain_model::InitConfig {
        zftrain_model::InitConfig {
            scheme: self.init,
            first_std: self.first_layer_std,
        }
    }
}

/// `data.std = "pixels"`: raw 0..255 values minus the mean.
pub const PIXELS_STD: [f32; 3] = [1.0 / 255.0; 3];

/// `data.std`: three numbers, or `"pixels"` for [`PIXELS_STD`].
fn std_or_pixels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[f32; 3], D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Std {
        Values([f32; 3]),
        Named(String),
    }
    let wanted = "three numbers or \"pixels\" (raw 0..255 values minus the mean)";
    match Std::deserialize(d) {
        Ok(Std::Values(v)) => Ok(v),
        Ok(Std::Named(name)) if name == "pixels" => Ok(PIXELS_STD),
        Ok(Std::Named(name)) => Err(serde::de::Error::custom(format!(
            "must be {wanted}, got \"{name}\""
        ))),
        Err(_) => Err(serde::de::Error::custom(format!("must be {wanted}"))),
    }
}

/// Which GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gpus {
    /// The first N devices (0: none, train on the CPU).
    Count(usize),
    /// These device indices.
    List(Vec<usize>),
}

impl Gpus {
    /// The device indices.
    pub fn ids(&self) -> Vec<usize> {
        match self {
            Gpus::Count(n) => (0..*n).collect(),
            Gpus::List(v) => v.clone(),
        }
    }
}

/// The schedule kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `step_epochs`.
    Step,
    /// Multiply by `gamma` when validation top-1 has not improved for `patience` epochs.
    Plateau,
    /// Cosine from the base rate to 0 over the run.
    Cosine,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            name: "run".into(),
            runs_dir: "runs".into(),
            seed: 0,
            model: ModelConfig::default(),
            data: DataConfig::default(),
            train: TrainConfig::default(),
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::default(),
            checkpoint: CheckpointConfig::default(),
            probe: ProbeConfig::default(),
            hooks: HookSpec::paper_set(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl ModelConfig {
    /// The architecture: the table of `arch_file` when one is set, else the
    /// built-in `arch`.
    pub fn arch_spec(&self) -> anyhow::Result<crate::weights::ArchSpec> {
        use crate::weights::{read_arch_file, ArchSpec};
        match &self.arch_file {
            Some(path) if !path.as_os_str().is_empty() => Ok(ArchSpec::Table(
                read_arch_file(path).context(KeyError::about("model.arch_file"))?,
            )),
            _ => Ok(ArchSpec::Builtin(self.arch)),
        }
    }
}

impl DataConfig {
    /// The transform of these settings with `augment` (and the run's
    /// per-pixel mean image, if it has one), checked.
    pub fn transform(
        &self,
        augment: Augment,
        mean_image: Option<std::sync::Arc<zftrain_data::MeanImage>>,
    ) -> Result<zftrain_data::Transform> {
        let t = zftrain_data::Transform {
            augment,
            resize: self.resize,
            crop: self.crop,
            mean: self.mean,
            std: self.std,
            mean_image,
            lighting: if augment.is_training() {
                self.lighting
            } else {
                0.0
            },
        };
        t.check()
            .map_err(|e| anyhow::anyhow!("data settings ({augment:?}): {e}"))?;
        Ok(t)
    }
}

impl TrainConfig {
    /// Whether the step that makes `global_step` steps in all logs its
    /// training scalars (every `log_every`-th): the one place the logging
    /// cadence is decided (the engine computes the gradient norm on these
    /// steps, the metrics logger writes them).
    pub fn logs_step(&self, global_step: u64) -> bool {
        global_step % self.log_every == 0
    }
}

/// Parses `value` as a TOML value (`0.1`, `true`, `"x"`, `[1, 2]`), or as a
/// bare string when it is not one (`zfnet`, `runs/a`).
fn parse_value(value: &str) -> toml::Value {
    let doc = format!("v = {value}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

/// Sets `key` (dotted: `optim.lr`) in `table` to `value`, the text parsed
/// as [`Override::set`] does.
pub fn set_key(table: &mut toml::Table, key: &str, value: &str) -> Result<()> {
    set_value(table, key, parse_value(value))
}

/// Sets `key` (dotted: `optim.lr`) in `table` to `value`.
pub fn set_value(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("bad key '{key}' in --set (expected section.key=value)");
    }
    let (last, sections) = parts.split_last().expect("non-empty");
    let mut t = table;
    for s in sections {
        let entry = t
            .entry(s.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .with_context(|| format!("--set {key}: '{s}' is not a section"))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}

impl RunConfig {
    /// The top level's own keys (each section declares its own with it;
    /// `hooks` has its tables, docs/tensorboard.md and README describe
    /// them). A test holds this list to the struct's fields.
    pub const KEYS: &'static [KeyDecl] = &[
        KeyDecl {
            key: "name",
            doc: " Run name: the run directory is `<runs_dir>/<name>`.",
            range: "a plain folder name",
            machine: true,
        },
        KeyDecl {
            key: "runs_dir",
            doc: " Where run directories go.",
            range: "",
            machine: true,
        },
        KeyDecl {
            key: "seed",
            doc: " Seed of initialization, data order, augmentation and dropout.",
            range: "",
            machine: false,
        },
    ];

    /// Every key of the configuration as declared: the top level's, then
    /// each section's in the file's order.
    pub fn keys() -> Vec<KeyDecl> {
        [
            RunConfig::KEYS,
            ModelConfig::KEYS,
            DataConfig::KEYS,
            TrainConfig::KEYS,
            OptimConfig::KEYS,
            ScheduleConfig::KEYS,
            CheckpointConfig::KEYS,
            ProbeConfig::KEYS,
            ClusterConfig::KEYS,
        ]
        .concat()
    }

    /// README's table of keys, made from their declarations: each key with
    /// its default (as a configuration file writes it; a doc that says
    /// `(default: ...)` says it instead), its doc and its range. A test
    /// holds README to it.
    pub fn keys_markdown() -> String {
        let defaults = toml::Value::try_from(RunConfig::default()).expect("defaults serialize");
        let mut out = String::from("| key | default | what |\n|---|---|---|\n");
        for k in RunConfig::keys() {
            let doc = k.doc.trim().replace('|', "\\|");
            let default = match doc.contains("(default: ") {
                true => "see what".to_string(),
                false => k
                    .key
                    .split('.')
                    .try_fold(&defaults, |v, part| v.get(part))
                    .map_or("none".to_string(), zftrain_keys::shown),
            };
            let range = match k.range {
                "" => String::new(),
                r => format!(" Range: {r}."),
            };
            let machine = if k.machine {
                " Set by each machine of a cluster."
            } else {
                ""
            };
            out.push_str(&format!(
                "| `{}` | `{default}` | {doc}{range}{machine} |\n",
                k.key
            ));
        }
        out
    }

    /// Reads `path` (if any) and applies the `key=value` overrides (the
    /// values are checked apart: [`RunConfig::validate`]).
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<RunConfig> {
        let sourced: Vec<Override> = overrides.iter().map(|o| Override::set(o)).collect();
        Ok(RunConfig::load_sourced(path, &sourced)?.0)
    }

    /// Parses a configuration file's text (not yet validated). Never
    /// panics, whatever the text (fuzzed: `fuzz/fuzz_targets/config.rs`).
    pub fn from_toml(text: &str, what: &str) -> Result<RunConfig> {
        let table = text
            .parse::<toml::Table>()
            .with_context(|| format!("config {what} is not valid TOML"))?;
        RunConfig::from_table(table, what)
    }

    fn from_table(table: toml::Table, what: &str) -> Result<RunConfig> {
        RunConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
            .with_context(|| format!("invalid configuration in {what}"))
    }

    /// Checks every section's values; an error names the key. The data
    /// folders are [`RunConfig::check_paths`]'s to check, the hooks
    /// [`RunConfig::build_hooks`]'s.
    pub fn validate(&self) -> Result<()> {
        validate::require(
            !self.name.is_empty()
                && !self.name.contains(['/', '\\'])
                && self.name != "."
                && self.name != "..",
            "name",
            || format!("'{}' must be a plain folder name", self.name),
        )?;
        self.model.validate()?;
        self.data.validate()?;
        self.train.validate()?;
        validate::validate_optim(&self.optim)?;
        self.schedule.validate()?;
        self.checkpoint.validate()?;
        self.probe.validate()?;
        self.cluster.validate()
    }

    /// Checks that the data folders (and list file) exist.
    pub fn check_paths(&self) -> Result<()> {
        self.data.check_paths()?;
        if let Some(from) = self.model.init_from() {
            validate::require(from.exists(), "model.init_from", || {
                format!(
                    "{} does not exist (a .safetensors file, a checkpoint or a run directory)",
                    from.display()
                )
            })?;
        }
        Ok(())
    }

    /// Builds the `[[hooks]]` (an error names `hooks[i]`).
    pub fn build_hooks(&self) -> Result<zftrain_hooks::Hooks> {
        let mut hooks = zftrain_hooks::Hooks::new();
        for (i, spec) in self.hooks.iter().enumerate() {
            spec.build()
                .and_then(|h| hooks.register(h))
                .map_err(|e| KeyError::new(format!("hooks[{i}]"), e.to_string()))?;
        }
        Ok(hooks)
    }

    /// The run directory.
    pub fn run_dir(&self) -> PathBuf {
        self.runs_dir.join(&self.name)
    }

    /// The programs its exec hooks would run (see [`HookSpec::program`]).
    pub fn programs(&self) -> Vec<String> {
        self.hooks.iter().filter_map(HookSpec::program).collect()
    }

    /// Leaves out the hooks that run programs; returns what they were.
    pub fn drop_programs(&mut self) -> Vec<String> {
        let programs = self.programs();
        self.hooks.retain(|h| h.program().is_none());
        programs
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, sets: &[&str]) -> Result<RunConfig> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        RunConfig::load(
            Some(&p),
            &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    /// Every leaf of `value` as (dotted key, value).
    fn leaves(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&key, v, out);
                }
            }
            v => out.push((prefix.to_string(), v.clone())),
        }
    }

    /// A table holding only `key` (dotted) = `value`.
    fn only(key: &str, value: toml::Value) -> toml::Table {
        let mut table = toml::Table::new();
        let parts: Vec<&str> = key.split('.').collect();
        let (last, sections) = parts.split_last().unwrap();
        let mut t = &mut table;
        for s in sections {
            t = t
                .entry(s.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap();
        }
        t.insert(last.to_string(), value);
        table
    }

    #[test]
    fn every_key_of_the_configuration_is_declared_once() {
        let mut config = RunConfig::default();
        config.model.arch_file = Some("a.toml".into());
        config.model.first_layer_std = Some(0.01);
        config.model.init_from = Some("w.safetensors".into());
        config.model.reset_layers = vec!["head".into()];
        config.model.freeze = vec!["conv1".into()];
        config.optim.lr_mult.insert("fc8".into(), 10.0);
        config.data.val_list = Some("val.txt".into());
        config.cluster.token_file = Some("token".into());
        let mut fields = Vec::new();
        leaves("", &toml::Value::try_from(&config).unwrap(), &mut fields);
        let declared: Vec<&str> = RunConfig::keys().iter().map(|k| k.key).collect();
        let mut seen = std::collections::BTreeSet::new();
        for (key, _) in fields.iter().filter(|(k, _)| !k.starts_with("hooks")) {
            // A table-valued key (optim.lr_mult) holds its entries.
            let owner = declared
                .iter()
                .find(|d| key == *d || key.starts_with(&format!("{d}.")))
                .unwrap_or_else(|| panic!("{key} is a field but not declared"));
            seen.insert(*owner);
        }
        let mut all: Vec<&str> = declared.clone();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), declared.len(), "a key declared twice");
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            all,
            "declared but not a field"
        );
        for k in RunConfig::keys() {
            assert!(!k.doc.trim().is_empty(), "{} has no doc", k.key);
        }
    }

    #[test]
    fn without_hooks_a_run_gets_the_papers_set_and_the_shipped_configs_spell_it_out() {
        assert_eq!(load("", &[]).unwrap().hooks, HookSpec::paper_set());
        assert!(load("", &["hooks=[]"]).unwrap().hooks.is_empty());
        assert!(load("hooks = []\n", &[]).unwrap().hooks.is_empty());
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        for name in [
            "zfnet-imagenet.toml",
            "alexnet-imagenet.toml",
            "zfnet-seed-flowers.toml",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(text.contains("[[hooks]]"), "{name} spells its hooks out");
            let c = RunConfig::load(Some(&dir.join(name)), &[]).unwrap();
            assert_eq!(c.hooks, HookSpec::paper_set(), "{name}");
        }
    }

    #[test]
    fn std_pixels_is_the_papers_scale_and_the_imagenet_configs_use_it() {
        let c = load("[data]\nstd = \"pixels\"\n", &[]).unwrap();
        assert_eq!(c.data.std, PIXELS_STD);
        assert_eq!(load("", &["data.std=pixels"]).unwrap().data.std, PIXELS_STD);
        let err = load("[data]\nstd = \"raw\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("std = \"raw\"") && err.contains("three numbers or \"pixels\""),
            "{err}"
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        for name in [
            "zfnet-imagenet.toml",
            "alexnet-imagenet.toml",
            "zfnet-transfer.toml",
        ] {
            let c = RunConfig::load(Some(&dir.join(name)), &[]).unwrap();
            assert_eq!(c.data.std, PIXELS_STD, "{name}");
            assert!(c.data.pixel_mean, "{name}");
        }
    }

    #[test]
    fn nodes_share_every_key_but_the_machine_settings() {
        let mut base = RunConfig::default();
        base.data.val_list = Some("val.txt".into());
        base.model.init_from = Some("start.safetensors".into());
        base.cluster.token_file = Some("token".into());
        let full = toml::Value::try_from(&base).unwrap();
        let mut keys = Vec::new();
        leaves("", &full, &mut keys);
        let mut machine_seen = Vec::new();
        let mut tried = 0;
        for (key, value) in &keys {
            let changed = match value {
                toml::Value::Integer(i) => toml::Value::Integer(i + 1),
                toml::Value::Float(f) => toml::Value::Float(f + 0.25),
                toml::Value::Boolean(b) => toml::Value::Boolean(!b),
                toml::Value::String(s) => toml::Value::String(format!("{s}x")),
                _ => continue,
            };
            let mut table = full.as_table().unwrap().clone();
            set_key(&mut table, key, &changed.to_string()).unwrap();
            // Values that do not parse (an enum's name with an x) are not
            // configurations at all.
            let Ok(other) = RunConfig::deserialize(toml::Value::Table(table)) else {
                continue;
            };
            tried += 1;
            let own = RunConfig::machine_keys().contains(&key.as_str());
            assert_eq!(
                other.shared() == base.shared(),
                own,
                "{key}: {}",
                if own {
                    "a machine setting changed what nodes share"
                } else {
                    "nodes would not have to agree on it"
                }
            );
            if own {
                machine_seen.push(key.clone());
            }
        }
        machine_seen.sort();
        let mut all: Vec<String> = RunConfig::machine_keys()
            .into_iter()
            .map(String::from)
            .collect();
        all.sort();
        assert_eq!(
            machine_seen, all,
            "every machine setting is a key of the config"
        );
        assert!(tried >= 40, "only {tried} keys changed");
    }

    #[test]
    fn every_key_with_a_wrong_type_is_refused_naming_the_key() {
        let full = toml::Value::try_from(RunConfig::default()).unwrap();
        let mut keys = Vec::new();
        leaves("", &full, &mut keys);
        assert!(keys.len() >= 40, "only {} keys", keys.len());
        for (key, value) in &keys {
            let wrong = match value {
                toml::Value::String(_) => toml::Value::Integer(7),
                toml::Value::Array(_) => toml::Value::Boolean(true),
                _ => toml::Value::String("seven".into()),
            };
            let table = toml::Value::Table(only(key, wrong.clone()));
            let err = match RunConfig::deserialize(table) {
                Ok(_) => panic!("{key} = {wrong} accepted"),
                Err(e) => e.to_string(),
            };
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                err.contains(leaf),
                "{key} = {wrong}: '{err}' does not name it"
            );
        }
        // And a key no section has.
        for (key, unknown) in [
            ("optim.lrr", "lrr"),
            ("trian.epochs", "trian"),
            ("model.arch_file_x", "arch_file_x"),
            ("typo", "typo"),
        ] {
            let table = toml::Value::Table(only(key, toml::Value::Integer(1)));
            let err = RunConfig::deserialize(table).unwrap_err().to_string();
            assert!(err.contains(unknown), "{key}: {err}");
        }
        println!(
            "reliability: config: {} keys with a wrong type and 4 unknown keys refused by name",
            keys.len()
        );
    }

    #[test]
    fn out_of_range_numbers_are_refused_naming_the_key_or_accepted_never_a_panic() {
        let full = toml::Value::try_from(RunConfig::default()).unwrap();
        let mut keys = Vec::new();
        leaves("", &full, &mut keys);
        let here = std::env::temp_dir();
        let mut refused = 0;
        let mut tried = 0;
        for (key, value) in &keys {
            let extremes: Vec<toml::Value> = match value {
                toml::Value::Integer(_) => [-1i64, 0, i64::MAX].map(toml::Value::Integer).to_vec(),
                toml::Value::Float(_) => [-1.0, 0.0, 1e300, f64::NAN, f64::INFINITY]
                    .map(toml::Value::Float)
                    .to_vec(),
                _ => continue,
            };
            for v in extremes {
                tried += 1;
                let table = toml::Value::Table(only(key, v.clone()));
                let leaf = key.rsplit('.').next().unwrap();
                let result = std::panic::catch_unwind(|| {
                    let mut c = RunConfig::deserialize(table).map_err(|e| e.to_string())?;
                    c.data.train = here.clone();
                    c.data.val = here.clone();
                    c.validate().map_err(|e| format!("{e:#}"))
                });
                match result {
                    Err(_) => panic!("{key} = {v}: panicked"),
                    Ok(Err(err)) => {
                        assert!(err.contains(leaf), "{key} = {v}: '{err}' does not name it");
                        refused += 1;
                    }
                    Ok(Ok(())) => {
                        if std::env::var_os("ZFTRAIN_SHOW_ACCEPTED").is_some() {
                            println!("accepted {key} = {v}");
                        }
                    }
                }
            }
        }
        assert!(
            tried >= 60 && refused >= tried / 3,
            "{refused} of {tried} refused"
        );
        println!("reliability: config: {tried} extreme numbers, {refused} refused by name, the rest accepted, no panic");
    }

    #[test]
    fn a_first_layer_std_must_be_positive_and_finite() {
        let mut c = RunConfig::default();
        for bad in [0.0, -0.01, f64::NAN, f64::INFINITY, 1e6] {
            c.model.first_layer_std = Some(bad);
            let err = format!("{:#}", c.model.validate().unwrap_err());
            assert!(err.contains("model.first_layer_std"), "{bad}: {err}");
        }
        c.model.first_layer_std = Some(0.01);
        c.model.validate().unwrap();
        let init = c.model.init_config();
        assert_eq!((init.scheme, init.first_std), (c.model.init, Some(0.01)));
    }

    #[test]
    fn every_shipped_config_loads_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let data = tempfile::tempdir().unwrap();
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let sets = [
                format!("data.train={}", data.path().display()),
                format!("data.val={}", data.path().display()),
                // The transfer config's start (checked to exist).
                format!("model.init_from={}", data.path().display()),
            ];
            let c = RunConfig::load(Some(&path), &sets)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            c.validate()
                .and_then(|()| c.check_paths())
                .and_then(|()| c.build_hooks().map(|_| ()))
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            seen += 1;
        }
        assert!(seen >= 4, "only {seen} configs in {}", dir.display());
    }

    #[test]
    fn gpus_are_a_count_or_a_list_without_repeats() {
        let c = load("", &["train.gpus=[0, 2]"]).unwrap();
        assert_eq!(c.train.gpus, Gpus::List(vec![0, 2]));
        assert_eq!(c.train.gpus.ids(), [0, 2]);
        let c = load("[train]\ngpus = 3\n", &[]).unwrap();
        assert_eq!(c.train.gpus.ids(), [0, 1, 2]);
        let mut c = load("", &["train.gpus=[1, 1]"]).unwrap();
        c.data.train = std::env::temp_dir();
        c.data.val = std::env::temp_dir();
        let err = format!("{:#}", c.validate().unwrap_err());
        assert!(err.contains("train.gpus") && err.contains("twice"), "{err}");
        let mut c = load("", &["train.precision=\"fp16\""]).unwrap();
        c.data.train = std::env::temp_dir();
        c.data.val = std::env::temp_dir();
        let err = format!("{:#}", c.validate().unwrap_err());
        assert!(
            err.contains("train.precision") && err.contains("GPUs"),
            "{err}"
        );
    }

    #[test]
    fn overrides_beat_the_file_and_values_are_typed() {
        let c = load(
            "[optim]\nlr = 0.1\n[model]\narch = \"alexnet\"\n",
            &["optim.lr=0.5", "model.arch=zfnet-seed", "train.epochs=3"],
        )
        .unwrap();
        assert_eq!(c.optim.lr, 0.5);
        assert_eq!(c.model.arch, ArchName::ZfnetSeed);
        assert_eq!(c.train.epochs, 3);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let err = format!(
            "{:#}",
            load("[optim]\nlearning_rate = 0.1\n", &[]).unwrap_err()
        );
        assert!(err.contains("learning_rate"), "{err}");
        let err = format!("{:#}", load("", &["train.epochs=\"many\""]).unwrap_err());
        assert!(err.contains("epochs") || err.contains("many"), "{err}");
        let err = format!("{:#}", load("", &["model.arch=vgg"]).unwrap_err());
        assert!(err.contains("vgg"), "{err}");
        let err = format!("{:#}", load("[data\n", &[]).unwrap_err());
        assert!(err.contains("c.toml"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().display().to_string();
        let base = [format!("data.train={p}"), format!("data.val={p}")];
        for (set, key) in [
            ("optim.lr=-1", "optim.lr"),
            ("optim.momentum=1.5", "optim.momentum"),
            ("train.batch_size=0", "train.batch_size"),
            ("model.dropout=1", "model.dropout"),
            ("data.augment=eval", "data.augment"),
            ("data.augment=ten-crop", "data.augment"),
            ("data.val_augment=zf", "data.val_augment"),
            ("data.lighting=1.5", "data.lighting"),
            ("data.lighting=-0.1", "data.lighting"),
            ("name=a/b", "name"),
        ] {
            let mut sets = base.to_vec();
            sets.push(set.to_string());
            let err = RunConfig::load(None, &sets)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("'{key}'")), "{set}: {err}");
        }
        let err = RunConfig::load(None, &["data.train=/nonexistent/zf".to_string()])
            .unwrap()
            .check_paths()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/zf"), "{err}");
    }

    #[test]
    fn resolved_config_round_trips_through_toml() {
        let c = load("name = \"x\"\n", &["optim.lr=0.02"]).unwrap();
        let back: RunConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn an_arch_file_replaces_the_builtin_and_its_errors_name_the_key_and_file() {
        use crate::weights::ArchSpec;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("net.toml");
        std::fs::write(
            &file,
            "name = \"net\"\ninput = [3, 8, 8]\n[[layers]]\nkind = \"conv\"\nout_channels = 2\nkernel = 3\n[[layers]]\nkind = \"flatten\"\n[[layers]]\nkind = \"linear\"\nout_features = 5\n",
        )
        .unwrap();
        let set = format!(
            "model.arch_file={}",
            toml::Value::String(file.display().to_string())
        );
        let c = load("", &[&set]).unwrap();
        match c.model.arch_spec().unwrap() {
            ArchSpec::Table(t) => assert_eq!((t.name.as_str(), t.classes()), ("net", Some(5))),
            other => panic!("{other:?}"),
        }
        // The setting survives the run directory's config.toml.
        let back: RunConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back.model.arch_file.as_deref(), Some(file.as_path()));
        // An empty path is none: the built-in again.
        let c = load("", &[&set, "model.arch_file=\"\""]).unwrap();
        assert_eq!(
            c.model.arch_spec().unwrap(),
            ArchSpec::Builtin(ArchName::Zfnet)
        );
        // A missing file and a bad one are named with the key.
        let error_of = |path: &Path| {
            let set = format!(
                "model.arch_file={}",
                toml::Value::String(path.display().to_string())
            );
            let spec = load("", &[&set]).unwrap().model.arch_spec();
            format!("{:#}", spec.unwrap_err())
        };
        let err = error_of(&dir.path().join("gone.toml"));
        assert!(
            err.contains("model.arch_file") && err.contains("gone.toml"),
            "{err}"
        );
        std::fs::write(
            &file,
            "name = \"net\"\ninput = [3, 8, 8]\n[[layers]]\nkind = \"convolution\"\n",
        )
        .unwrap();
        let err = error_of(&file);
        assert!(
            err.contains("net.toml") && err.contains("unknown kind 'convolution'"),
            "{err}"
        );
    }

    #[test]
    fn every_shipped_run_config_loads_and_names_an_architecture_that_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut seen = 0;
        for entry in std::fs::read_dir(root.join("configs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let mut c = RunConfig::load(Some(&path), &[])
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            if let Some(file) = &c.model.arch_file {
                c.model.arch_file = Some(root.join(file));
            }
            let spec = c
                .model
                .arch_spec()
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            // The layers it freezes, resets and scales exist.
            let arch_config = zftrain_model::arch::ArchConfig {
                classes: 10,
                ..Default::default()
            };
            let table = spec.table(&arch_config).unwrap();
            crate::train::transfer::LayerPolicy::resolve(&c, &table)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            seen += 1;
        }
        assert!(seen >= 5, "{seen} configs");
    }
}
