//! Weight initialization schemes.

use serde::{Deserialize, Serialize};
use tch::nn::Init;

use crate::layer::{Layer, LayerKind};

/// How a fresh network's parameters are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitScheme {
    /// PyTorch's defaults for `Conv2d` and `Linear`: weights and biases
    /// uniform in `±1/sqrt(fan_in)` (kaiming-uniform with `a = sqrt(5)`).
    #[default]
    Pytorch,
    /// Zeiler & Fergus: weights normal with std 1e-2, biases 0.
    Zf,
    /// Krizhevsky et al.: weights normal with std 1e-2, biases 1 in conv2,
    /// conv4, conv5, fc6 and fc7, 0 elsewhere.
    Alexnet,
    /// He et al.: weights normal with std `sqrt(2 / fan_in)`, biases 0. Keeps
    /// the signal's scale through the ReLUs, so training leaves the
    /// `ln(classes)` plateau quickly.
    Kaiming,
}

/// A scheme, and optionally another standard deviation for the first conv
/// layer's weights (normal, mean 0). A small first-layer draw (ZF's 1e-2
/// against He's 0.12 for 7x7x3) lets that layer's filters become what
/// training makes them within few steps instead of staying close to their
/// random start, which is what a Deconvnet projection shows through them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InitConfig {
    /// The scheme for every layer.
    pub scheme: InitScheme,
    /// The first conv layer's weight standard deviation instead.
    pub first_std: Option<f64>,
}

impl From<InitScheme> for InitConfig {
    fn from(scheme: InitScheme) -> Self {
        InitConfig {
            scheme,
            first_std: None,
        }
    }
}

impl InitConfig {
    /// `(weight init, bias init)` for one layer, `first` when it is the
    /// first conv layer; `None` for layers without parameters.
    pub fn for_layer(self, layer: &Layer, first: bool) -> Option<(Init, Init)> {
        let (weight, bias) = self.scheme.for_layer(layer)?;
        match (self.first_std, first) {
            (Some(stdev), true) => Some((Init::Randn { mean: 0.0, stdev }, bias)),
            _ => Some((weight, bias)),
        }
    }
}

impl InitScheme {
    /// `(weight init, bias init)` for one layer; `None` for layers without parameters.
    pub fn for_layer(self, layer: &Layer) -> Option<(Init, Init)> {
        let fan_in = match &layer.kind {
            LayerKind::Conv(c) => (c.in_channels / c.groups) * c.kernel * c.kernel,
            LayerKind::Linear(l) => l.in_features,
            _ => return None,
        };
        Some(match self {
            InitScheme::Pytorch => {
                let bound = 1.0 / (fan_in as f64).sqrt();
                let u = Init::Uniform {
                    lo: -bound,
                    up: bound,
                };
                (u, u)
            }
            InitScheme::Kaiming => (
                Init::Randn {
                    mean: 0.0,
                    stdev: (2.0 / fan_in as f64).sqrt(),
                },
                Init::Const(0.0),
            ),
            InitScheme::Zf => (
                Init::Randn {
                    mean: 0.0,
                    stdev: 1e-2,
                },
                Init::Const(0.0),
            ),
            InitScheme::Alexnet => {
                let one = matches!(
                    layer.label.as_str(),
                    "conv2" | "conv4" | "conv5" | "fc6" | "fc7"
                );
                (
                    Init::Randn {
                        mean: 0.0,
                        stdev: 1e-2,
                    },
                    Init::Const(if one { 1.0 } else { 0.0 }),
                )
            }
        })
    }
}
