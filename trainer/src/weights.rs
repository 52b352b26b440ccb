//! Moving parameters between networks and files.
//!
//! A weights file is a safetensors file with PyTorch's parameter names; the
//! `zftrain.*` keys of its metadata say which architecture and input
//! normalization it belongs to, so `predict` and `export` need no flags for
//! them. Files saved from PyTorch have no such keys; then the flags, or the
//! shape of the last linear layer's weight, tell.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Tensor};
use zftrain_checkpoints::{assign_strict, Metadata};
use zftrain_model::arch::ArchConfig;
use zftrain_model::{Arch, ArchName, InitScheme, Network};

use crate::cli::ArchArgs;

/// ImageNet's per-channel mean of `[0, 1]` RGB pixels (torchvision's).
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (torchvision's).
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// What a weights file or checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsInfo {
    /// The architecture.
    pub arch: ArchName,
    /// Its options (classes, LRN, dropout).
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
        m.insert("zftrain.arch".into(), self.arch.to_string());
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
        args: &ArchArgs,
        tensors: &[(String, Tensor)],
    ) -> Result<WeightsInfo> {
        let key = |k: &str| meta.get(&format!("zftrain.{k}"));
        let bad = |k: &str, v: &str| {
            anyhow::anyhow!(
                "{}: metadata key 'zftrain.{k}' has an invalid value '{v}'",
                path.display()
            )
        };
        let file_arch = key("arch")
            .map(|v| v.parse::<ArchName>().map_err(|_| bad("arch", v)))
            .transpose()?;
        let arch = match (args.arch, file_arch) {
            (Some(a), Some(f)) if a != f => bail!(
                "--arch {a} disagrees with {} (made for {f})",
                path.display()
            ),
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => bail!(
                "{} does not say its architecture: pass --arch",
                path.display()
            ),
        };
        let file_classes = key("classes")
            .map(|v| v.parse::<i64>().map_err(|_| bad("classes", v)))
            .transpose()?;
        let classes = match (args.classes, file_classes) {
            (Some(a), Some(f)) if a != f => bail!(
                "--classes {a} disagrees with {} ({f} classes)",
                path.display()
            ),
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) => infer_classes(arch, tensors).unwrap_or(1000),
        };
        let lrn = match key("lrn") {
            Some(v) => v.parse::<bool>().map_err(|_| bad("lrn", v))?,
            None => !args.no_lrn,
        };
        if args.no_lrn && lrn {
            bail!("--no-lrn disagrees with {} (made with LRN)", path.display());
        }
        let dropout = match key("dropout") {
            Some(v) => v.parse::<f64>().map_err(|_| bad("dropout", v))?,
            None => ArchConfig::default().dropout,
        };
        let triple = |k: &str, default: [f64; 3]| -> Result<[f64; 3]> {
            match key(k) {
                Some(v) => crate::cli::parse_triple(v).map_err(|_| bad(k, v)),
                None => Ok(default),
            }
        };
        let class_names = match key("class_names") {
            Some(v) => {
                Some(serde_json::from_str::<Vec<String>>(v).map_err(|_| bad("class_names", v))?)
            }
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

    /// The architecture table these weights belong to.
    pub fn arch_table(&self) -> Result<Arch> {
        Ok(Arch::builtin(self.arch, &self.config)?)
    }
}

/// Classes from the first dimension of the last linear layer's weight.
fn infer_classes(arch: ArchName, tensors: &[(String, Tensor)]) -> Option<i64> {
    let table = Arch::builtin(arch, &ArchConfig::default()).ok()?;
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

/// Architecture options from flags alone (for commands that start from nothing).
pub fn config_from_args(args: &ArchArgs) -> Result<(ArchName, ArchConfig)> {
    let arch = args
        .arch
        .context("--arch is required (zfnet-seed, zfnet, alexnet, alexnet-tv)")?;
    let config = ArchConfig {
        classes: args.classes.unwrap_or(1000),
        lrn: !args.no_lrn,
        ..ArchConfig::default()
    };
    Ok((arch, config))
}

/// A network and the variable store that owns its parameters.
#[derive(Debug)]
pub struct Model {
    /// Owns the parameters.
    pub vs: VarStore,
    /// The network.
    pub net: Network,
}

impl Model {
    /// A freshly initialized network of `arch` on `device`.
    pub fn new(arch: Arch, init: InitScheme, device: Device) -> Result<Model> {
        let vs = VarStore::new(device);
        let net = Network::new(&vs.root(), arch, init)?;
        Ok(Model { vs, net })
    }

    /// Parameters as `(PyTorch name, tensor)` in `state_dict` order.
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        let vars = self.vs.variables();
        self.net
            .arch()
            .param_names()
            .into_iter()
            .map(|(name, _)| {
                let t = vars
                    .get(&name)
                    .expect("every table parameter is a variable");
                (name, t.shallow_clone())
            })
            .collect()
    }

    /// Fills the parameters from `tensors` (read from `path`), strictly.
    pub fn assign(&self, path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
        assign_strict(path, tensors, &self.named_weights())?;
        Ok(())
    }
}
