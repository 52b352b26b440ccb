//! The layer kinds an architecture table is made of, with their hyper-parameters.
//!
//! These are plain data: no tensors. [`crate::Network`] turns a table of them
//! into parameters and a forward pass; [`crate::shape`] and
//! [`crate::receptive`] compute shapes and receptive fields from them alone.

use serde::{Deserialize, Serialize};

/// A 2-D convolution (square kernel, equal stride and padding on both axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSpec {
    /// Input channels.
    pub in_channels: i64,
    /// Output channels (filters).
    pub out_channels: i64,
    /// Kernel size (height = width).
    pub kernel: i64,
    /// Stride.
    pub stride: i64,
    /// Zero padding on every side.
    pub padding: i64,
    /// Groups (1 = dense).
    pub groups: i64,
    /// Whether the layer has a bias.
    pub bias: bool,
}

/// Local response normalization across channels, in PyTorch's convention:
/// `b = a / (k + alpha / size * sum_{window} a^2) ^ beta`.
///
/// Krizhevsky et al. write `alpha` multiplying the plain sum of squares, so
/// their `alpha = 1e-4, n = 5` is `alpha = 5e-4, size = 5` here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrnSpec {
    /// Number of neighbouring channels in the window.
    pub size: i64,
    /// Scale (PyTorch's convention: divided by `size`).
    pub alpha: f64,
    /// Exponent.
    pub beta: f64,
    /// Additive constant.
    pub k: f64,
    /// Channel groups normalized apart: the window never crosses from one
    /// group's channels to the next (Krizhevsky's two towers each
    /// normalized their own maps). 1 = all channels together, as PyTorch's
    /// `LocalResponseNorm`.
    #[serde(default = "one_group")]
    pub groups: i64,
}

fn one_group() -> i64 {
    1
}

impl LrnSpec {
    /// The LRN of Krizhevsky et al. (k = 2, n = 5, alpha = 1e-4, beta = 0.75).
    pub const ALEXNET: LrnSpec = LrnSpec {
        size: 5,
        alpha: 5e-4,
        beta: 0.75,
        k: 2.0,
        groups: 1,
    };
}

/// A max-pool (square window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Window size.
    pub kernel: i64,
    /// Stride.
    pub stride: i64,
    /// Implicit padding (with -inf) on every side.
    pub padding: i64,
    /// Round output sizes up instead of down.
    pub ceil_mode: bool,
}

/// Batch normalization over the channels of `[N, C, H, W]` (PyTorch's
/// `BatchNorm2d`): batch statistics in training (which update the running
/// ones), the running statistics in evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchNormSpec {
    /// Channels (`num_features`).
    pub features: i64,
    /// Added to the variance.
    pub eps: f64,
    /// Weight of the newest batch in the running statistics.
    pub momentum: f64,
    /// Whether the layer has a learnable scale (`weight`) and shift (`bias`).
    pub affine: bool,
}

/// A fully connected layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearSpec {
    /// Input features.
    pub in_features: i64,
    /// Output features.
    pub out_features: i64,
    /// Whether the layer has a bias.
    pub bias: bool,
}

/// What a layer computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerKind {
    /// 2-D convolution, `[N, C_in, H, W] -> [N, C_out, H', W']`.
    Conv(ConvSpec),
    /// Rectified linear unit, shape-preserving.
    Relu,
    /// Local response normalization, shape-preserving.
    Lrn(LrnSpec),
    /// Batch normalization, shape-preserving; folded into the convolution
    /// before it for the Deconvnet.
    BatchNorm(BatchNormSpec),
    /// Max-pool, `[N, C, H, W] -> [N, C, H', W']`; records switches in the tap forward.
    MaxPool(PoolSpec),
    /// Adaptive average pool to a fixed output size.
    AdaptiveAvgPool {
        /// Output height.
        height: i64,
        /// Output width.
        width: i64,
    },
    /// `[N, C, H, W] -> [N, C*H*W]`.
    Flatten,
    /// Dropout with drop probability `p` (active only in training).
    Dropout {
        /// Drop probability.
        p: f64,
    },
    /// Fully connected, `[N, in] -> [N, out]`.
    Linear(LinearSpec),
}

impl LayerKind {
    /// The kind's name in architecture files (its serde tag).
    pub fn name(&self) -> &'static str {
        match self {
            LayerKind::Conv(_) => "conv",
            LayerKind::Relu => "relu",
            LayerKind::Lrn(_) => "lrn",
            LayerKind::BatchNorm(_) => "batch_norm",
            LayerKind::MaxPool(_) => "max_pool",
            LayerKind::AdaptiveAvgPool { .. } => "adaptive_avg_pool",
            LayerKind::Flatten => "flatten",
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::Linear(_) => "linear",
        }
    }

    /// The PyTorch module class this layer corresponds to.
    pub fn torch_type(&self) -> &'static str {
        match self {
            LayerKind::Conv(_) => "Conv2d",
            LayerKind::Relu => "ReLU",
            LayerKind::Lrn(_) => "LocalResponseNorm",
            LayerKind::BatchNorm(_) => "BatchNorm2d",
            LayerKind::MaxPool(_) => "MaxPool2d",
            LayerKind::AdaptiveAvgPool { .. } => "AdaptiveAvgPool2d",
            LayerKind::Flatten => "Flatten",
            LayerKind::Dropout { .. } => "Dropout",
            LayerKind::Linear(_) => "Linear",
        }
    }

    /// Shapes of the learnable parameters, as `(suffix, shape)` pairs in
    /// PyTorch's order (`weight` then `bias`).
    pub fn param_shapes(&self) -> Vec<(&'static str, Vec<i64>)> {
        match self {
            LayerKind::Conv(c) => {
                let mut v = vec![(
                    "weight",
                    vec![c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel],
                )];
                if c.bias {
                    v.push(("bias", vec![c.out_channels]));
                }
                v
            }
            LayerKind::Linear(l) => {
                let mut v = vec![("weight", vec![l.out_features, l.in_features])];
                if l.bias {
                    v.push(("bias", vec![l.out_features]));
                }
                v
            }
            LayerKind::BatchNorm(b) if b.affine => {
                vec![("weight", vec![b.features]), ("bias", vec![b.features])]
            }
            _ => Vec::new(),
        }
    }

    /// Shapes of the buffers (state that is no parameter), in PyTorch's
    /// `state_dict` order after the parameters: a batch norm's
    /// `running_mean`, `running_var` (float) and `num_batches_tracked`
    /// (an int64 scalar).
    pub fn buffer_shapes(&self) -> Vec<(&'static str, Vec<i64>)> {
        match self {
            LayerKind::BatchNorm(b) => vec![
                ("running_mean", vec![b.features]),
                ("running_var", vec![b.features]),
                ("num_batches_tracked", vec![]),
            ],
            _ => Vec::new(),
        }
    }

    /// Number of learnable scalars.
    pub fn param_count(&self) -> i64 {
        self.param_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<i64>())
            .sum()
    }
}

/// One row of an architecture table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// What the layer computes.
    pub kind: LayerKind,
    /// Short human name: `conv1`, `relu1`, `pool1`, `norm1`, `fc6`, `drop6`, ...
    pub label: String,
    /// PyTorch module path (`features.0`, `classifier.6`, `avgpool`); parameters
    /// are named `<module>.weight` and `<module>.bias`. `None` for functional
    /// steps that are no module in PyTorch (the flatten in `forward`).
    pub module: Option<String>,
}

impl Layer {
    /// Full PyTorch names of this layer's parameters with their shapes.
    pub fn param_names(&self) -> Vec<(String, Vec<i64>)> {
        self.named(self.kind.param_shapes())
    }

    /// Full PyTorch names of this layer's `state_dict` entries (parameters,
    /// then buffers) with their shapes.
    pub fn state_names(&self) -> Vec<(String, Vec<i64>)> {
        let mut all = self.kind.param_shapes();
        all.extend(self.kind.buffer_shapes());
        self.named(all)
    }

    fn named(&self, shapes: Vec<(&'static str, Vec<i64>)>) -> Vec<(String, Vec<i64>)> {
        let Some(module) = &self.module else {
            return Vec::new();
        };
        shapes
            .into_iter()
            .map(|(suffix, shape)| (format!("{module}.{suffix}"), shape))
            .collect()
    }
}
