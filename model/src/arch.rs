//! An architecture: the ordered layer table plus the input it expects.
//!
//! The four built-in tables live in [`crate::archs`]; [`Arch::builtin`] picks
//! one by name. [`TableBuilder`] numbers PyTorch modules the way
//! `nn.Sequential` does, so parameter names come out as PyTorch's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::layer::{ConvSpec, Layer, LayerKind, LinearSpec, LrnSpec, PoolSpec};
use crate::{archs, ModelError};

/// The built-in architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchName {
    /// The seed article's PyTorch ZFNet (no LRN, classifier `features.{0..}`/`classifier.{0,3,5}`).
    ZfnetSeed,
    /// Zeiler & Fergus's ZFNet (their Fig. 3) with LRN as the contrast normalization.
    Zfnet,
    /// The dense single-tower AlexNet that Zeiler & Fergus replicated (96-256-384-384-256, LRN).
    Alexnet,
    /// torchvision's AlexNet (64-192-384-256-256, adaptive average pool), torchvision's names.
    AlexnetTv,
}

impl ArchName {
    /// All built-in architectures, in display order.
    pub const ALL: [ArchName; 4] = [
        ArchName::ZfnetSeed,
        ArchName::Zfnet,
        ArchName::Alexnet,
        ArchName::AlexnetTv,
    ];

    /// The name used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchName::ZfnetSeed => "zfnet-seed",
            ArchName::Zfnet => "zfnet",
            ArchName::Alexnet => "alexnet",
            ArchName::AlexnetTv => "alexnet-tv",
        }
    }
}

impl fmt::Display for ArchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArchName {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ArchName::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ModelError::UnknownArch {
                name: s.to_string(),
                known: ArchName::ALL.map(|a| a.as_str()).join(", "),
            })
    }
}

/// Options of a built-in architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchConfig {
    /// Number of output classes (`>= 1`).
    pub classes: i64,
    /// Dropout probability of the classifier's dropout layers.
    pub dropout: f64,
    /// Whether `zfnet` and `alexnet` have their LRN layers. Without them the
    /// module indices stay the same (as if the LRN were `nn.Identity`).
    pub lrn: bool,
}

impl Default for ArchConfig {
    fn default() -> Self {
        ArchConfig {
            classes: 1000,
            dropout: 0.5,
            lrn: true,
        }
    }
}

/// An architecture: a name, the input it expects and its layer table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Display name (`zfnet-seed`, ...).
    pub name: String,
    /// Expected input `[channels, height, width]`.
    pub input: [i64; 3],
    /// The layers in forward order.
    pub layers: Vec<Layer>,
}

impl Arch {
    /// A built-in architecture with the given options, validated.
    pub fn builtin(name: ArchName, config: &ArchConfig) -> Result<Arch, ModelError> {
        if config.classes < 1 {
            return Err(ModelError::BadClasses(config.classes));
        }
        if !(0.0..1.0).contains(&config.dropout) {
            return Err(ModelError::BadDropout(config.dropout));
        }
        let arch = match name {
            ArchName::ZfnetSeed => archs::zfnet_seed(config),
            ArchName::Zfnet => archs::zfnet(config),
            ArchName::Alexnet => archs::alexnet(config),
            ArchName::AlexnetTv => archs::alexnet_tv(config),
        };
        arch.validate()?;
        Ok(arch)
    }

    /// Checks that consecutive layers fit together for the declared input
    /// (channels, spatial sizes, flattened features).
    pub fn validate(&self) -> Result<(), ModelError> {
        crate::shape::infer_shapes(self).map(|_| ())
    }

    /// Every parameter's PyTorch name and shape, in `state_dict` order.
    pub fn param_names(&self) -> Vec<(String, Vec<i64>)> {
        self.layers.iter().flat_map(Layer::param_names).collect()
    }

    /// Every `state_dict` entry's PyTorch name and shape (parameters and
    /// batch-norm buffers), in PyTorch's order.
    pub fn state_names(&self) -> Vec<(String, Vec<i64>)> {
        self.layers.iter().flat_map(Layer::state_names).collect()
    }

    /// Total number of learnable scalars.
    pub fn param_count(&self) -> i64 {
        self.layers.iter().map(|l| l.kind.param_count()).sum()
    }

    /// Indices (into `layers`) of the conv layers, in order.
    pub fn conv_indices(&self) -> Vec<usize> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l.kind, LayerKind::Conv(_)))
            .map(|(i, _)| i)
            .collect()
    }

    /// Index of the layer whose output is the tap of conv layer `conv_index`:
    /// the ReLU right after it (or after its batch norm), else the batch
    /// norm, else the conv itself.
    pub fn tap_index(&self, conv_index: usize) -> usize {
        let mut tap = conv_index;
        if let Some(Layer {
            kind: LayerKind::BatchNorm(_),
            ..
        }) = self.layers.get(tap + 1)
        {
            tap += 1;
        }
        match self.layers.get(tap + 1) {
            Some(l) if l.kind == LayerKind::Relu => tap + 1,
            _ => tap,
        }
    }

    /// Number of classes (output features of the last linear layer).
    pub fn classes(&self) -> Option<i64> {
        self.layers.iter().rev().find_map(|l| match l.kind {
            LayerKind::Linear(s) => Some(s.out_features),
            _ => None,
        })
    }
}

/// Builds a layer table, numbering modules inside named sections the way
/// `nn.Sequential` numbers its children.
#[derive(Debug)]
pub(crate) struct TableBuilder {
    layers: Vec<Layer>,
    section: String,
    next: usize,
    channels: i64,
    features: i64,
}

impl TableBuilder {
    /// A table for RGB input.
    pub(crate) fn new() -> Self {
        TableBuilder {
            layers: Vec::new(),
            section: String::new(),
            next: 0,
            channels: 3,
            features: 0,
        }
    }

    /// Starts a new `nn.Sequential` named `name` (indices restart at 0).
    pub(crate) fn section(&mut self, name: &str) -> &mut Self {
        self.section = name.to_string();
        self.next = 0;
        self
    }

    fn push(&mut self, kind: LayerKind, label: String) -> &mut Self {
        let module = if self.section.is_empty() {
            None
        } else {
            Some(format!("{}.{}", self.section, self.next))
        };
        self.next += 1;
        self.layers.push(Layer {
            kind,
            label,
            module,
        });
        self
    }

    /// Skips one module index (an `nn.Identity` in PyTorch).
    pub(crate) fn skip(&mut self) -> &mut Self {
        self.next += 1;
        self
    }

    /// Conv with bias, dense.
    pub(crate) fn conv(
        &mut self,
        n: usize,
        out: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
    ) -> &mut Self {
        let spec = ConvSpec {
            in_channels: self.channels,
            out_channels: out,
            kernel,
            stride,
            padding,
            groups: 1,
            bias: true,
        };
        self.channels = out;
        self.push(LayerKind::Conv(spec), format!("conv{n}"))
    }

    /// ReLU labelled after layer `n`.
    pub(crate) fn relu(&mut self, n: usize) -> &mut Self {
        self.push(LayerKind::Relu, format!("relu{n}"))
    }

    /// Max-pool labelled after layer `n`.
    pub(crate) fn pool(&mut self, n: usize, kernel: i64, stride: i64, padding: i64) -> &mut Self {
        let spec = PoolSpec {
            kernel,
            stride,
            padding,
            ceil_mode: false,
        };
        self.push(LayerKind::MaxPool(spec), format!("pool{n}"))
    }

    /// LRN labelled after layer `n`, or a skipped index when `enabled` is false.
    pub(crate) fn lrn(&mut self, n: usize, enabled: bool) -> &mut Self {
        if enabled {
            self.push(LayerKind::Lrn(LrnSpec::ALEXNET), format!("norm{n}"))
        } else {
            self.skip()
        }
    }

    /// Adaptive average pool as a top-level module named `avgpool`.
    pub(crate) fn avgpool(&mut self, height: i64, width: i64) -> &mut Self {
        self.layers.push(Layer {
            kind: LayerKind::AdaptiveAvgPool { height, width },
            label: "avgpool".into(),
            module: Some("avgpool".into()),
        });
        self
    }

    /// Functional flatten (no module); `features` = flattened size.
    pub(crate) fn flatten(&mut self, features: i64) -> &mut Self {
        self.features = features;
        self.layers.push(Layer {
            kind: LayerKind::Flatten,
            label: "flatten".into(),
            module: None,
        });
        self
    }

    /// Linear with bias.
    pub(crate) fn linear(&mut self, n: usize, out: i64) -> &mut Self {
        let spec = LinearSpec {
            in_features: self.features,
            out_features: out,
            bias: true,
        };
        self.features = out;
        self.push(LayerKind::Linear(spec), format!("fc{n}"))
    }

    /// Dropout labelled after layer `n`.
    pub(crate) fn dropout(&mut self, n: usize, p: f64) -> &mut Self {
        self.push(LayerKind::Dropout { p }, format!("drop{n}"))
    }

    /// The finished architecture.
    pub(crate) fn build(&mut self, name: &str) -> Arch {
        Arch {
            name: name.to_string(),
            input: [3, 224, 224],
            layers: std::mem::take(&mut self.layers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: ArchName, classes: i64) -> Arch {
        Arch::builtin(
            name,
            &ArchConfig {
                classes,
                ..ArchConfig::default()
            },
        )
        .unwrap()
    }

    fn names(arch: &Arch) -> Vec<String> {
        arch.param_names().into_iter().map(|(n, _)| n).collect()
    }

    fn expected(features: &[usize], classifier: &[usize]) -> Vec<String> {
        let mut v = Vec::new();
        for (section, idx) in [("features", features), ("classifier", classifier)] {
            for i in idx {
                v.push(format!("{section}.{i}.weight"));
                v.push(format!("{section}.{i}.bias"));
            }
        }
        v
    }

    #[test]
    fn zfnet_seed_parameter_names_are_the_seed_modules() {
        assert_eq!(
            names(&table(ArchName::ZfnetSeed, 5)),
            expected(&[0, 3, 6, 8, 10], &[0, 3, 5])
        );
    }

    #[test]
    fn alexnet_tv_parameter_names_are_torchvisions() {
        assert_eq!(
            names(&table(ArchName::AlexnetTv, 1000)),
            expected(&[0, 3, 6, 8, 10], &[1, 4, 6])
        );
    }

    #[test]
    fn zfnet_and_alexnet_number_lrn_as_modules() {
        assert_eq!(
            names(&table(ArchName::Zfnet, 1000)),
            expected(&[0, 4, 8, 10, 12], &[0, 3, 6])
        );
        assert_eq!(
            names(&table(ArchName::Alexnet, 1000)),
            expected(&[0, 4, 8, 10, 12], &[0, 3, 6])
        );
    }

    #[test]
    fn turning_lrn_off_keeps_parameter_names() {
        let config = ArchConfig {
            lrn: false,
            ..ArchConfig::default()
        };
        let no_lrn = Arch::builtin(ArchName::Zfnet, &config).unwrap();
        assert!(no_lrn
            .layers
            .iter()
            .all(|l| !matches!(l.kind, LayerKind::Lrn(_))));
        assert_eq!(names(&no_lrn), names(&table(ArchName::Zfnet, 1000)));
    }

    #[test]
    fn parameter_counts_match_the_papers_and_torchvision() {
        assert_eq!(table(ArchName::ZfnetSeed, 5).param_count(), 58_281_093);
        assert_eq!(table(ArchName::AlexnetTv, 1000).param_count(), 61_100_840);
        assert_eq!(table(ArchName::Alexnet, 1000).param_count(), 62_378_344);
        assert_eq!(table(ArchName::Zfnet, 1000).param_count(), 62_357_608);
    }

    #[test]
    fn seed_per_layer_parameter_counts() {
        let counts: Vec<i64> = table(ArchName::ZfnetSeed, 5)
            .layers
            .iter()
            .map(|l| l.kind.param_count())
            .filter(|&c| c > 0)
            .collect();
        assert_eq!(
            counts,
            [14_208, 614_656, 885_120, 1_327_488, 884_992, 37_752_832, 16_781_312, 20_485]
        );
    }

    #[test]
    fn zero_classes_and_unknown_names_are_refused() {
        let err = Arch::builtin(
            ArchName::Zfnet,
            &ArchConfig {
                classes: 0,
                ..ArchConfig::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("got 0"), "{err}");
        let err = "zfnet2".parse::<ArchName>().unwrap_err().to_string();
        assert!(
            err.contains("'zfnet2'") && err.contains("alexnet-tv"),
            "{err}"
        );
    }

    #[test]
    fn every_name_round_trips_through_from_str() {
        for name in ArchName::ALL {
            assert_eq!(name.as_str().parse::<ArchName>().unwrap(), name);
        }
    }

    #[test]
    fn taps_are_the_relus_after_convs() {
        let arch = table(ArchName::Zfnet, 10);
        for i in arch.conv_indices() {
            assert_eq!(arch.layers[arch.tap_index(i)].kind, LayerKind::Relu);
        }
        assert_eq!(arch.conv_indices().len(), 5);
        assert_eq!(arch.classes(), Some(10));
    }
}
