//! Shape inference over a layer table: output shape, parameter count and
//! multiply-adds of every layer, with no tensors involved.
//!
//! The formulas are PyTorch's (`Conv2d`, `MaxPool2d` including `ceil_mode`,
//! `AdaptiveAvgPool2d`, `Linear`); a test checks them against real forwards.

use crate::layer::LayerKind;
use crate::{Arch, ModelError};

/// What one layer produces for the architecture's declared input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerShape {
    /// Output shape without the batch dimension: `[C, H, W]` or `[F]`.
    pub output: Vec<i64>,
    /// Learnable scalars of the layer.
    pub params: i64,
    /// Multiply-adds for one sample (conv and linear layers only).
    pub mult_adds: i64,
}

/// Output size of a convolution or pooling window along one axis.
pub fn window_out(size: i64, kernel: i64, stride: i64, padding: i64, ceil_mode: bool) -> i64 {
    let span = size + 2 * padding - kernel;
    if span < 0 {
        return 0;
    }
    let mut out = if ceil_mode {
        (span + stride - 1) / stride + 1
    } else {
        span / stride + 1
    };
    // PyTorch: the last window must start inside the input or left padding.
    if ceil_mode && (out - 1) * stride >= size + padding {
        out -= 1;
    }
    out
}

/// Infers every layer's output for `arch.input`, checking that each layer
/// accepts what the previous one produced.
pub fn infer_shapes(arch: &Arch) -> Result<Vec<LayerShape>, ModelError> {
    let mut shape: Vec<i64> = arch.input.to_vec();
    let mut out = Vec::with_capacity(arch.layers.len());
    for (index, layer) in arch.layers.iter().enumerate() {
        let err = |message: String| ModelError::Shape {
            index,
            label: layer.label.clone(),
            message,
        };
        let spatial = |shape: &[i64]| -> Result<(i64, i64, i64), ModelError> {
            match shape {
                [c, h, w] => Ok((*c, *h, *w)),
                _ => Err(err(format!("expects a [C, H, W] input, got {shape:?}"))),
            }
        };
        let mut mult_adds = 0;
        let next = match &layer.kind {
            LayerKind::Conv(c) => {
                let (ch, h, w) = spatial(&shape)?;
                if ch != c.in_channels {
                    return Err(err(format!(
                        "has {} input channels but receives {ch} (input {shape:?})",
                        c.in_channels
                    )));
                }
                if c.groups < 1 || c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0 {
                    return Err(err(format!(
                        "groups {} must divide in channels {} and out channels {}",
                        c.groups, c.in_channels, c.out_channels
                    )));
                }
                if c.kernel < 1 || c.stride < 1 || c.padding < 0 {
                    return Err(err("kernel and stride must be >= 1, padding >= 0".into()));
                }
                let (oh, ow) = (
                    window_out(h, c.kernel, c.stride, c.padding, false),
                    window_out(w, c.kernel, c.stride, c.padding, false),
                );
                if oh < 1 || ow < 1 {
                    return Err(err(format!(
                        "kernel {} does not fit the input {shape:?}",
                        c.kernel
                    )));
                }
                mult_adds =
                    c.out_channels * oh * ow * (c.in_channels / c.groups) * c.kernel * c.kernel;
                vec![c.out_channels, oh, ow]
            }
            LayerKind::MaxPool(p) => {
                let (ch, h, w) = spatial(&shape)?;
                if p.kernel < 1 || p.stride < 1 || p.padding < 0 || 2 * p.padding > p.kernel {
                    return Err(err(format!(
                        "pool kernel {} stride {} padding {}: need kernel, stride >= 1 and padding <= kernel / 2",
                        p.kernel, p.stride, p.padding
                    )));
                }
                let (oh, ow) = (
                    window_out(h, p.kernel, p.stride, p.padding, p.ceil_mode),
                    window_out(w, p.kernel, p.stride, p.padding, p.ceil_mode),
                );
                if oh < 1 || ow < 1 {
                    return Err(err(format!(
                        "pool window {} does not fit the input {shape:?}",
                        p.kernel
                    )));
                }
                vec![ch, oh, ow]
            }
            LayerKind::AdaptiveAvgPool { height, width } => {
                let (ch, _, _) = spatial(&shape)?;
                vec![ch, *height, *width]
            }
            LayerKind::Relu | LayerKind::Lrn(_) | LayerKind::Dropout { .. } => shape.clone(),
            LayerKind::Flatten => vec![shape.iter().product()],
            LayerKind::Linear(l) => {
                if shape.len() != 1 || shape[0] != l.in_features {
                    return Err(err(format!(
                        "has {} input features but receives {shape:?}",
                        l.in_features
                    )));
                }
                mult_adds = l.in_features * l.out_features;
                vec![l.out_features]
            }
        };
        if let LayerKind::Lrn(spec) = &layer.kind {
            spatial(&shape)?;
            if spec.size < 1 {
                return Err(err(format!("LRN size must be >= 1, got {}", spec.size)));
            }
        }
        out.push(LayerShape {
            output: next.clone(),
            params: layer.kind.param_count(),
            mult_adds,
        });
        shape = next;
    }
    Ok(out)
}
