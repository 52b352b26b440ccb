//! Shape inference over a layer table: output shape, parameter count and
//! multiply-adds of every layer, with no tensors involved.
//!
//! The formulas are PyTorch's (`Conv2d`, `MaxPool2d` including `ceil_mode`,
//! `AdaptiveAvgPool2d`, `Linear`); a test checks them against real forwards.

use crate::layer::{ConvSpec, LayerKind, PoolSpec};
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
        let (next, mult_adds) =
            layer_output(&layer.kind, &shape).map_err(|message| ModelError::Shape {
                index,
                label: layer.label.clone(),
                message,
            })?;
        out.push(LayerShape {
            output: next.clone(),
            params: layer.kind.param_count(),
            mult_adds,
        });
        shape = next;
    }
    Ok(out)
}

/// `[C, H, W]` of a shape, or the error of a layer that needs one.
fn spatial(shape: &[i64]) -> Result<(i64, i64, i64), String> {
    match shape {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(format!("expects a [C, H, W] input, got {shape:?}")),
    }
}

/// What a layer of `kind` makes of `shape` (one sample): its output shape
/// and multiply-adds, or why it does not accept that input.
fn layer_output(kind: &LayerKind, shape: &[i64]) -> Result<(Vec<i64>, i64), String> {
    Ok(match kind {
        LayerKind::Conv(c) => conv_output(c, shape)?,
        LayerKind::MaxPool(p) => (pool_output(p, shape)?, 0),
        LayerKind::AdaptiveAvgPool { height, width } => {
            let (ch, _, _) = spatial(shape)?;
            (vec![ch, *height, *width], 0)
        }
        LayerKind::Relu | LayerKind::Dropout { .. } => (shape.to_vec(), 0),
        LayerKind::Lrn(spec) => {
            let (ch, _, _) = spatial(shape)?;
            if spec.size < 1 {
                return Err(format!("LRN size must be >= 1, got {}", spec.size));
            }
            if spec.groups < 1 || ch % spec.groups != 0 {
                return Err(format!(
                    "LRN groups {} must divide its {ch} channels",
                    spec.groups
                ));
            }
            (shape.to_vec(), 0)
        }
        LayerKind::BatchNorm(b) => {
            let (ch, _, _) = spatial(shape)?;
            if ch != b.features {
                return Err(format!(
                    "has {} features but receives {ch} channels",
                    b.features
                ));
            }
            if b.eps.is_nan() || b.eps <= 0.0 || !(0.0..=1.0).contains(&b.momentum) {
                return Err(format!(
                    "eps must be > 0 and momentum in [0, 1], got eps {} and momentum {}",
                    b.eps, b.momentum
                ));
            }
            (shape.to_vec(), 0)
        }
        LayerKind::Flatten => (vec![shape.iter().product()], 0),
        LayerKind::Linear(l) => {
            if shape.len() != 1 || shape[0] != l.in_features {
                return Err(format!(
                    "has {} input features but receives {shape:?}",
                    l.in_features
                ));
            }
            (vec![l.out_features], l.in_features * l.out_features)
        }
    })
}

/// A convolution's output shape and multiply-adds for `shape`.
fn conv_output(c: &ConvSpec, shape: &[i64]) -> Result<(Vec<i64>, i64), String> {
    let (ch, h, w) = spatial(shape)?;
    if ch != c.in_channels {
        return Err(format!(
            "has {} input channels but receives {ch} (input {shape:?})",
            c.in_channels
        ));
    }
    if c.groups < 1 || c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0 {
        return Err(format!(
            "groups {} must divide in channels {} and out channels {}",
            c.groups, c.in_channels, c.out_channels
        ));
    }
    if c.kernel < 1 || c.stride < 1 || c.padding < 0 {
        return Err("kernel and stride must be >= 1, padding >= 0".into());
    }
    let (oh, ow) = (
        window_out(h, c.kernel, c.stride, c.padding, false),
        window_out(w, c.kernel, c.stride, c.padding, false),
    );
    if oh < 1 || ow < 1 {
        return Err(format!(
            "kernel {} does not fit the input {shape:?}",
            c.kernel
        ));
    }
    let mult_adds = c.out_channels * oh * ow * (c.in_channels / c.groups) * c.kernel * c.kernel;
    Ok((vec![c.out_channels, oh, ow], mult_adds))
}

/// A max pool's output shape for `shape`.
fn pool_output(p: &PoolSpec, shape: &[i64]) -> Result<Vec<i64>, String> {
    let (ch, h, w) = spatial(shape)?;
    if p.kernel < 1 || p.stride < 1 || p.padding < 0 || 2 * p.padding > p.kernel {
        return Err(format!(
            "pool kernel {} stride {} padding {}: need kernel, stride >= 1 and padding <= kernel / 2",
            p.kernel, p.stride, p.padding
        ));
    }
    let (oh, ow) = (
        window_out(h, p.kernel, p.stride, p.padding, p.ceil_mode),
        window_out(w, p.kernel, p.stride, p.padding, p.ceil_mode),
    );
    if oh < 1 || ow < 1 {
        return Err(format!(
            "pool window {} does not fit the input {shape:?}",
            p.kernel
        ));
    }
    Ok(vec![ch, oh, ow])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchConfig;
    use crate::{ArchName, InitScheme, Network};

    #[test]
    fn seed_output_shapes_are_the_seed_table() {
        let arch = Arch::builtin(
            ArchName::ZfnetSeed,
            &ArchConfig {
                classes: 5,
                ..Default::default()
            },
        )
        .unwrap();
        let shapes: Vec<Vec<i64>> = infer_shapes(&arch)
            .unwrap()
            .into_iter()
            .map(|s| s.output)
            .collect();
        let expect: Vec<Vec<i64>> = vec![
            vec![96, 110, 110],
            vec![96, 110, 110],
            vec![96, 55, 55],
            vec![256, 26, 26],
            vec![256, 26, 26],
            vec![256, 13, 13],
            vec![384, 13, 13],
            vec![384, 13, 13],
            vec![384, 13, 13],
            vec![384, 13, 13],
            vec![256, 13, 13],
            vec![256, 13, 13],
            vec![256, 6, 6],
            vec![9216],
            vec![4096],
            vec![4096],
            vec![4096],
            vec![4096],
            vec![4096],
            vec![5],
        ];
        assert_eq!(shapes, expect);
    }

    #[test]
    fn inferred_shapes_equal_real_forward_shapes() {
        for name in ArchName::ALL {
            let arch = Arch::builtin(
                name,
                &ArchConfig {
                    classes: 7,
                    ..Default::default()
                },
            )
            .unwrap();
            let inferred = infer_shapes(&arch).unwrap();
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let net = Network::new(&vs.root(), arch.clone(), InitScheme::Pytorch).unwrap();
            let taps = net.forward_taps(
                &tch::Tensor::randn([2, 3, 224, 224], tch::kind::FLOAT_CPU),
                false,
            );
            for (k, conv) in arch.conv_indices().into_iter().enumerate() {
                let mut want = vec![2];
                want.extend(&inferred[conv].output);
                assert_eq!(taps.convs[k].size(), want, "{name} conv {k}");
            }
            for sw in &taps.switches {
                let mut want = vec![2];
                want.extend(&inferred[sw.layer].output);
                assert_eq!(sw.indices.size(), want, "{name} pool at {}", sw.layer);
            }
            assert_eq!(taps.logits.size(), vec![2, 7], "{name}");
        }
    }

    #[test]
    fn ceil_mode_matches_pytorch() {
        // PyTorch: MaxPool2d(3, 2, ceil_mode=True) on 6 -> 3 (not 4: the last
        // window would start in the padding).
        assert_eq!(window_out(6, 3, 2, 0, true), 3);
        assert_eq!(window_out(7, 3, 2, 0, true), 3);
        assert_eq!(window_out(8, 3, 2, 0, true), 4);
        assert_eq!(window_out(13, 3, 2, 0, false), 6);
        assert_eq!(window_out(224, 11, 4, 2, false), 55);
    }

    #[test]
    fn a_linear_that_does_not_fit_names_the_layer_and_both_sizes() {
        let mut arch = Arch::builtin(ArchName::ZfnetSeed, &ArchConfig::default()).unwrap();
        arch.input = [3, 192, 192];
        let err = arch.validate().unwrap_err().to_string();
        assert!(
            err.contains("fc6") && err.contains("9216") && err.contains("6400"),
            "{err}"
        );
    }
}
