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
