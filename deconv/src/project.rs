//! Projection of chosen activations back to pixel space (Zeiler & Fergus,
//! section 2.1; SPEC.md section 3).
//!
//! For a target unit (image, conv layer, channel, y, x) every other unit of
//! that layer's rectified output is set to zero, and the signal goes down the
//! layer table in reverse: a ReLU rectifies, a conv layer filters with its
//! own filters transposed (a transposed convolution with the same weights,
//! the same groups, no bias, and the output padding that restores the
//! recorded input size), a max-pool unpools with the switches recorded by the
//! forward pass that found the unit, adding where overlapping windows share a
//! switch ([`crate::unpool`]). LRN layers are passed through unchanged, as in
//! the paper; dropout is the identity in evaluation. The pixel-level result
//! is not rectified.
//!
//! Targets are projected together: grouped by layer, each group goes down in
//! batches of at most `max_batch` targets (the memory of one batch is that of
//! a backward pass of `max_batch` images). Computed in fp32.

use tch::{Kind, Tensor};
use zftrain_model::{LayerKind, Network, Taps};

use crate::unpool::unpool_adjoint;
use crate::DeconvError;

/// One unit to project: `image` indexes the batch the taps came from, `conv`
/// the conv layers in order (0 = layer 1), `channel` the feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Image in the batch.
    pub image: i64,
    /// Conv layer, 0-based in conv order.
    pub conv: usize,
    /// Feature map.
    pub channel: i64,
    /// Row in the feature map.
    pub y: i64,
    /// Column in the feature map.
    pub x: i64,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "image {} / conv{} / channel {} / ({}, {})",
            self.image,
            self.conv + 1,
            self.channel,
            self.y,
            self.x
        )
    }
}

/// Checks that `t` exists in `taps`.
fn check_target(taps: &Taps, t: &Target) -> Result<(), DeconvError> {
    let bad = |message: String| DeconvError::BadTarget {
        target: t.to_string(),
        message,
    };
    let tap = taps.convs.get(t.conv).ok_or_else(|| {
        bad(format!(
            "the forward recorded {} conv layers",
            taps.convs.len()
        ))
    })?;
    let s = tap.size();
    for (name, v, n) in [
        ("image", t.image, s[0]),
        ("channel", t.channel, s[1]),
        ("y", t.y, s[2]),
        ("x", t.x, s[3]),
    ] {
        if !(0..n).contains(&v) {
            return Err(bad(format!("{name} {v} is outside 0..{n}")));
        }
    }
    Ok(())
}

/// Projects every target to the input: `[T, C_in, H, W]` in target order,
/// where `taps` come from `net.forward_taps(input, false)` (or
/// `forward_taps_to`) on `[N, C_in, H, W]`.
pub fn project(
    net: &Network,
    taps: &Taps,
    targets: &[Target],
    max_batch: usize,
) -> Result<Tensor, DeconvError> {
    for t in targets {
        check_target(taps, t)?;
    }
    let input = taps
        .input_sizes
        .first()
        .ok_or_else(|| DeconvError::Config("the forward recorded no layers".into()))?;
    let device = taps
        .convs
        .first()
        .map(|t| t.device())
        .unwrap_or(tch::Device::Cpu);
    let mut out = Tensor::zeros(
        [targets.len() as i64, input[1], input[2], input[3]],
        (Kind::Float, device),
    );
    let convs = net.arch().conv_indices();
    let mut layers: Vec<usize> = targets.iter().map(|t| t.conv).collect();
    layers.sort_unstable();
    layers.dedup();
    for conv in layers {
        let order: Vec<usize> = (0..targets.len())
            .filter(|&i| targets[i].conv == conv)
            .collect();
        for chunk in order.chunks(max_batch.max(1)) {
            let group: Vec<Target> = chunk.iter().map(|&i| targets[i]).collect();
            let pixels = project_layer(net, taps, convs[conv], &group)?;
            let at = Tensor::from_slice(&chunk.iter().map(|&i| i as i64).collect::<Vec<_>>())
                .to_device(device);
            let _ = out.index_copy_(0, &at, &pixels);
        }
    }
    Ok(out)
}

/// Targets all on conv layer `conv_index` (index into the layer table).
fn project_layer(
    net: &Network,
    taps: &Taps,
    conv_index: usize,
    targets: &[Target],
) -> Result<Tensor, DeconvError> {
    let arch = net.arch();
    let tap = &taps.convs[targets[0].conv];
    let device = tap.device();
    let ints = |f: fn(&Target) -> i64| {
        Tensor::from_slice(&targets.iter().map(f).collect::<Vec<_>>()).to_device(device)
    };
    let (images, channels, ys, xs) = (
        ints(|t| t.image),
        ints(|t| t.channel),
        ints(|t| t.y),
        ints(|t| t.x),
    );
    let n = targets.len() as i64;
    let s = tap.size();
    // Keep only the target unit of each map.
    let values = tap
        .index(&[Some(&images), Some(&channels), Some(&ys), Some(&xs)])
        .to_kind(Kind::Float);
    let mut g = Tensor::zeros([n, s[1], s[2], s[3]], (Kind::Float, device));
    let rows = Tensor::arange(n, (Kind::Int64, device));
    let _ = g.index_put_(
        &[Some(rows), Some(channels), Some(ys), Some(xs)],
        &values,
        false,
    );
    for index in (0..=arch.tap_index(conv_index)).rev() {
        let layer = &arch.layers[index];
        g = match &layer.kind {
            LayerKind::Relu => g.relu(),
            LayerKind::Lrn(_) | LayerKind::Dropout { .. } => g,
            LayerKind::Conv(c) => {
                let weight = net
                    .weight(index)
                    .expect("conv layers have weights")
                    .to_kind(Kind::Float);
                let want = &taps.input_sizes[index];
                let got = g.size();
                let pad = |axis: usize| {
                    want[axis + 2] - ((got[axis + 2] - 1) * c.stride - 2 * c.padding + c.kernel)
                };
                let (ph, pw) = (pad(0), pad(1));
                if !(0..c.stride.max(1)).contains(&ph) || !(0..c.stride.max(1)).contains(&pw) {
                    return Err(DeconvError::Unsupported {
                        index,
                        label: layer.label.clone(),
                        why: format!(
                            "no output padding restores {:?} from {:?}",
                            &want[2..],
                            &got[2..]
                        ),
                    });
                }
                g.conv_transpose2d(
                    &weight,
                    None::<Tensor>,
                    [c.stride; 2],
                    [c.padding; 2],
                    [ph, pw],
                    c.groups,
                    [1, 1],
                )
            }
            LayerKind::MaxPool(_) => {
                let switch = taps
                    .switches
                    .iter()
                    .find(|sw| sw.layer == index)
                    .expect("the tap forward records every max-pool");
                let idx = switch.indices.index_select(0, &images);
                unpool_adjoint(&g, &idx, switch.input_size)
            }
            other => {
                return Err(DeconvError::Unsupported {
                    index,
                    label: layer.label.clone(),
                    why: format!("{} has no Deconvnet reverse", other.torch_type()),
                })
            }
        };
    }
    Ok(g)
}
