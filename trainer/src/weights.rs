//! Moving parameters between networks and files.
//!
//! A weights file is a safetensors file with PyTorch's parameter names; the
//! `zftrain.*` keys of its metadata say which architecture and input
//! normalization it belongs to, so `predict` and `export` need no flags for
//! them. Files saved from PyTorch have no such keys; then the flags, or the
//! shape of the last linear layer's weight, tell.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::Device;
use tch::Tensor;
use zftrain_checkpoints::{assign_strict, read_safetensors, Checkpoint, Metadata};
use zftrain_model::arch::ArchConfig;
use zftrain_model::arch_file::{parse_arch, set_classes, table_difference, write_arch};
use zftrain_model::{Arch, ArchName, InitScheme};

pub use zftrain_model::Model;

/// What a command's flags say about an architecture (`--arch`,
/// `--arch-file`, `--classes`, `--no-lrn`); loading weights takes this, and
/// the command line builds it. Every field is optional: the weights' own
/// metadata fills in the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArchOverrides {
    /// A built-in architecture.
    pub arch: Option<ArchName>,
    /// The number of classes.
    pub classes: Option<i64>,
    /// Leave out the LRN layers of zfnet and alexnet.
    pub no_lrn: bool,
    /// An architecture file instead of a built-in.
    pub arch_file: Option<PathBuf>,
    /// Load non-finite values and negative variances (for forensics).
    pub allow_nonfinite: bool,
}

/// ImageNet's per-channel mean of `[0, 1]` RGB pixels (torchvision's).
pub const IMAGENET_MEAN: [f64; 3] = zftrain_data::transform::IMAGENET_MEAN_F64;
/// ImageNet's per-channel standard deviation (torchvision's).
pub const IMAGENET_STD: [f64; 3] = zftrain_data::transform::IMAGENET_STD_F64;

/// Where an architecture comes from: a built-in name, or a layer table read
/// from an architecture file (which then travels with the weights, so a
/// checkpoint never needs the file again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArchSpec {
    /// A built-in architecture; [`ArchConfig`] sets its classes, LRN and dropout.
    Builtin(ArchName),
    /// A table from a file: its layers as written, with the classes of
    /// [`ArchConfig`] (LRN and dropout are the file's own).
    Table(Arch),
}

impl ArchSpec {
    /// The architecture's name: the built-in's, or the one its file gives.
    pub fn name(&self) -> &str {
        match self {
            ArchSpec::Builtin(name) => name.as_str(),
            ArchSpec::Table(table) => &table.name,
        }
    }

    /// The table with `config`'s options, validated.
    pub fn table(&self, config: &ArchConfig) -> Result<Arch> {
        match self {
            ArchSpec::Builtin(name) => Ok(Arch::builtin(*name, config)?),
            ArchSpec::Table(table) => {
                let mut table = table.clone();
                set_classes(&mut table, config.classes)?;
                Ok(table)
            }
        }
    }

    /// The table with its own classes (a built-in's: 1000, LRN, default dropout).
    fn default_table(&self) -> Option<Arch> {
        match self {
            ArchSpec::Builtin(name) => Arch::builtin(*name, &ArchConfig::default()).ok(),
            ArchSpec::Table(table) => Some(table.clone()),
        }
    }
}

impl fmt::Display for ArchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchSpec::Builtin(name) => write!(f, "{name}"),
            ArchSpec::Table(table) => write!(f, "{} (architecture file)", table.name),
        }
    }
}

/// Reads and validates an architecture file.
pub fn read_arch_file(path: &Path) -> Result<Arch> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading architecture file {}", path.display()))?;
    Ok(parse_arch(&text, &path.display().to_string())?)
}

/// What a weights file or checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsInfo {
    /// The architecture.
    pub arch: ArchSpec,
    /// Its options (classes; LRN and dropout of a built-in).
    pub config: ArchConfig,
    /// Input mean per channel (on `[0, 1]` pixels).
    pub mean: [f64; 3],
    /// Input standard deviation per channel.
    pub std: [f64; 3],
    /// Class names, index = class, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
}

impl WeightsInfo {
    /// The safetensors metadata that records this info.
    pub fn to_metadata(&self) -> Metadata {
        let triple = |v: [f64; 3]| v.map(|x| x.to_string()).join(",");
        let mut m = BTreeMap::new();
        m.insert("format".into(), "pt".into());
        match &self.arch {
            ArchSpec::Builtin(name) => {
                m.insert("zftrain.arch".into(), name.to_string());
            }
            ArchSpec::Table(table) => {
                m.insert("zftrain.arch".into(), table.name.clone());
                m.insert("zftrain.arch_table".into(), write_arch(table));
            }
        }
        m.insert("zftrain.classes".into(), self.config.classes.to_string());
        m.insert("zftrain.lrn".into(), self.config.lrn.to_string());
        m.insert("zftrain.dropout".into(), self.config.dropout.to_string());
        m.insert("zftrain.mean".into(), triple(self.mean));
        m.insert("zftrain.std".into(), triple(self.std));
        if let Some(names) = &self.class_names {
            m.insert(
                "zftrain.class_names".into(),
                serde_json::to_string(names).expect("strings serialize"),
            );
        }
        m
    }

    /// Reads the `zftrain.*` keys of `meta` (from `path`), with `args`
    /// overriding or filling in. `tensors` are the file's tensors, used to
    /// infer the number of classes when neither says it.
    pub fn resolve(
        path: &Path,
        meta: &Metadata,
        args: &ArchOverrides,
        tensors: &[(String, Tensor)],
    ) -> Result<WeightsInfo> {
        let keys = MetaKeys { path, meta };
        let arch = resolve_arch(&keys, args)?;
        let classes = match (args.classes, keys.parse::<i64>("classes")?) {
            (Some(a), Some(f)) if a != f => bail!(
                "--classes {a} disagrees with {} ({f} classes)",
                path.display()
            ),
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) => infer_classes(&arch, tensors)
                .or_else(|| arch.default_table().and_then(|t| t.classes()))
                .unwrap_or(1000),
        };
        let lrn = keys.parse::<bool>("lrn")?.unwrap_or(!args.no_lrn);
        if args.no_lrn && lrn {
            bail!("--no-lrn disagrees with {} (made with LRN)", path.display());
        }
        let dropout = keys
            .parse::<f64>("dropout")?
            .unwrap_or(ArchConfig::default().dropout);
        let triple = |k: &str, default: [f64; 3]| -> Result<[f64; 3]> {
            match keys.get(k) {
                Some(v) => parse_triple(v).map_err(|_| keys.bad(k, v)),
                None => Ok(default),
            }
        };
        let class_names = match keys.get("class_names") {
            Some(v) => Some(
                serde_json::from_str::<Vec<String>>(v).map_err(|_| keys.bad("class_names", v))?,
            ),
            None => None,
        };
        Ok(WeightsInfo {
            arch,
            config: ArchConfig {
                classes,
                dropout,
                lrn,
            },
            mean: triple("mean", IMAGENET_MEAN)?,
            std: triple("std", IMAGENET_STD)?,
            class_names,
        })
    }

    /// `zfnet with 10 classes (lrn true)`, `tiny (architecture file) with 2 classes`.
    pub fn describe(&self) -> String {
        match &self.arch {
            ArchSpec::Builtin(name) => format!(
                "{name} with {} classes (lrn {})",
                self.config.classes, self.config.lrn
            ),
            table => format!("{table} with {} classes", self.config.classes),
        }
    }

    /// The architecture table these weights belong to.
    pub fn arch_table(&self) -> Result<Arch> {
        self.arch.table(&self.config)
    }
}

/// Classes from the first dimension of the last linear layer's weight.
fn infer_classes(arch: &ArchSpec, tensors: &[(String, Tensor)]) -> Option<i64> {
    let table = arch.default_table()?;
    let (last, _) = table
        .param_names()
        .into_iter()
        .rev()
        .find(|(n, s)| n.ends_with(".weight") && s.len() == 2)?;
    tensors
        .iter()
        .find(|(n, _)| *n == last)
        .map(|(_, t)| t.size()[0])
}

/// Opens a checkpoint or weights file and loads it into a fresh network,
/// strictly. `args` may fill in what the file does not say.
pub fn load_model(
    weights: Option<&Path>,
    checkpoint: Option<&Path>,
    args: &ArchOverrides,
) -> Result<(Model, WeightsInfo)> {
    let path = match (weights, checkpoint) {
        (Some(w), _) => w.to_path_buf(),
        (None, Some(c)) => Checkpoint::open(c)
            .with_context(|| format!("opening checkpoint {}", c.display()))?
            .weights_path(),
        (None, None) => bail!("pass --weights FILE or --checkpoint DIR"),
    };
    let (tensors, meta) = read_safetensors(&path)?;
    if !args.allow_nonfinite {
        check_values(&path, &tensors)?;
    }
    let info = WeightsInfo::resolve(&path, &meta, args, &tensors)?;
    let model = Model::new(info.arch_table()?, InitScheme::Pytorch, Device::Cpu)?;
    assign_strict(&path, tensors, &model.named_weights())?;
    Ok((model, info))
}

/// Refuses weights that no training produces: a NaN or infinite value in
/// any floating-point tensor, a negative batch-norm `running_var` (which
/// would make its normalization NaN). The error names the file and tensor.
pub fn check_values(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    tch::no_grad(|| {
        for (name, t) in tensors {
            if !t.is_floating_point() {
                continue;
            }
            let bad = t
                .isfinite()
                .logical_not()
                .sum(tch::Kind::Int64)
                .int64_value(&[]);
            if bad > 0 {
                bail!(
                    "{}: tensor '{name}' has {bad} NaN or infinite values (pass --allow-nonfinite to load it anyway, for forensics)",
                    path.display()
                );
            }
            if name.ends_with("running_var") && t.numel() > 0 {
                let min = t.min().double_value(&[]);
                if min < 0.0 {
                    bail!(
                        "{}: tensor '{name}' has a negative variance ({min}) (pass --allow-nonfinite to load it anyway)",
                        path.display()
                    );
                }
            }
        }
        Ok(())
    })
}

/// Parses `a,b,c` into three numbers.
pub fn parse_triple(s: &str) -> Result<[f64; 3], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let values: Result<Vec<f64>, _> = parts.iter().map(|p| p.parse::<f64>()).collect();
    match values {
        Ok(v) if v.len() == 3 && v.iter().all(|x| x.is_finite()) => Ok([v[0], v[1], v[2]]),
        _ => Err(format!(
            "expected three comma-separated numbers like 0.485,0.456,0.406, got '{s}'"
        )),
    }
}

/// Architecture options from flags alone (for commands that start from nothing).
pub fn config_from_args(args: &ArchOverrides) -> Result<(ArchSpec, ArchConfig)> {
    if let Some(path) = &args.arch_file {
        let table = read_arch_file(path)?;
        let config = ArchConfig {
            classes: args.classes.or_else(|| table.classes()).unwrap_or(1000),
            ..ArchConfig::default()
        };
        return Ok((ArchSpec::Table(table), config));
    }
    let arch = args.arch.context(
        "--arch (zfnet-seed, zfnet, alexnet, alexnet-tv) or --arch-file FILE is required",
    )?;
    let config = ArchConfig {
        classes: args.classes.unwrap_or(1000),
        lrn: !args.no_lrn,
        ..ArchConfig::default()
    };
    Ok((ArchSpec::Builtin(arch), config))
}

/// The `zftrain.*` metadata keys of a weights file, read with errors that
/// name the file and the key.
struct MetaKeys<'a> {
    path: &'a Path,
    meta: &'a Metadata,
}

impl MetaKeys<'_> {
    fn get(&self, k: &str) -> Option<&String> {
        self.meta.get(&format!("zftrain.{k}"))
    }

    fn bad(&self, k: &str, v: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: metadata key 'zftrain.{k}' has an invalid value '{v}'",
            self.path.display()
        )
    }

    /// The key parsed as `T`, `None` when absent.
    fn parse<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>> {
        self.get(k)
            .map(|v| v.parse::<T>().map_err(|_| self.bad(k, v)))
            .transpose()
    }
}

/// The architecture the file says and the flags say, which must agree
/// when both speak.
fn resolve_arch(keys: &MetaKeys<'_>, args: &ArchOverrides) -> Result<ArchSpec> {
    let path = keys.path;
    let file_arch = match keys.get("arch_table") {
        Some(text) => Some(ArchSpec::Table(parse_arch(
            text,
            &format!("{} (metadata key 'zftrain.arch_table')", path.display()),
        )?)),
        None => keys.parse::<ArchName>("arch")?.map(ArchSpec::Builtin),
    };
    let flag_arch = match (&args.arch_file, args.arch) {
        (Some(f), _) => Some(ArchSpec::Table(read_arch_file(f)?)),
        (None, Some(a)) => Some(ArchSpec::Builtin(a)),
        (None, None) => None,
    };
    let flag = || match &args.arch_file {
        Some(f) => format!("--arch-file {}", f.display()),
        None => format!("--arch {}", args.arch.map(|a| a.as_str()).unwrap_or("")),
    };
    Ok(match (flag_arch, file_arch) {
        (Some(a), Some(f)) => {
            let differs = match (&a, &f) {
                (ArchSpec::Builtin(x), ArchSpec::Builtin(y)) => {
                    (x != y).then(|| format!("made for {y}"))
                }
                _ => match (a.default_table(), f.default_table()) {
                    (Some(x), Some(y)) => {
                        table_difference(&x, &y).map(|d| format!("made for {f}: {d}"))
                    }
                    _ => Some(format!("made for {f}")),
                },
            };
            if let Some(why) = differs {
                bail!("{} disagrees with {} ({why})", flag(), path.display());
            }
            f
        }
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => bail!(
            "{} does not say its architecture: pass --arch or --arch-file",
            path.display()
        ),
    })
}
