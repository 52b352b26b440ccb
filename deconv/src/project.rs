//! Projection of chosen activations back to pixel space (Zeiler & Fergus,
//! "Visualizing and Understanding Convolutional Networks", section 2.1).
//!
//! For a target unit (image, conv layer, channel, y, x) every other unit of
//! that layer's rectified output is set to zero, and the signal goes down the
//! layer table in reverse: a ReLU rectifies, a conv layer filters with its
//! own filters transposed (a transposed convolution with the same weights,
//! the same groups, no bias, and the output padding that restores the
//! recorded input size), a max-pool unpools with the switches recorded by the
//! forward pass that found the unit, adding where overlapping windows share a
//! switch ([`crate::unpool`]). LRN layers are passed through unchanged, as in
//! the paper; dropout is the identity in evaluation. A batch norm is folded
//! into the convolution before it (its evaluation-mode scale multiplies that
//! convolution's filters; its shift is a bias, which the Deconvnet leaves
//! out), so networks with batch norm project too. The pixel-level result
//! is not rectified.
//!
//! A unit's signal never leaves its receptive field, so each level is
//! computed on a window of the field's size there (one unit at the top,
//! `R x R` pixels at the bottom) instead of the whole feature map: for
//! layer 1 of ZFNet that is 7x7 pixels instead of 224x224. Targets are
//! projected together: grouped by layer, each group goes down in batches of
//! at most `max_batch` windows. Computed in fp32.

use tch::{Kind, Tensor};
use zftrain_model::{Arch, ConvSpec, LayerKind, Network, PoolSpec, Taps};

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

impl Target {
    /// The strongest unit of feature map `channel` of conv layer `conv`
    /// (0-based) in image `image` of `taps`.
    pub fn strongest(taps: &Taps, image: i64, conv: usize, channel: i64) -> Target {
        let tap = &taps.convs[conv];
        let w = tap.size()[3];
        let flat = tap
            .get(image)
            .get(channel)
            .flatten(0, -1)
            .argmax(0, false)
            .int64_value(&[]);
        Target {
            image,
            conv,
            channel,
            y: flat / w,
            x: flat % w,
        }
    }
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

/// Projections of targets that share one conv layer, each cropped to its
/// unit's receptive field.
#[derive(Debug)]
pub struct FieldProjections {
    /// `[T, C_in, R, R]`, `R` the receptive-field side of the layer's units;
    /// zero where the field leaves the image.
    pub pixels: Tensor,
    /// Input `(top, left)` of each field (may be negative).
    pub origins: Vec<(i64, i64)>,
}

/// Projects every target to the input: `[T, C_in, H, W]` in target order,
/// where `taps` come from `net.forward_taps(input, false)` (or
/// `forward_taps_to`) on `[N, C_in, H, W]`. Each projection is computed on
/// its receptive field only ([`project_fields`]) and pasted into the image.
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
    let (h, w) = (input[2], input[3]);
    let device = taps
        .convs
        .first()
        .map(|t| t.device())
        .unwrap_or(tch::Device::Cpu);
    let out = Tensor::zeros(
        [targets.len() as i64, input[1], h, w],
        (Kind::Float, device),
    );
    let mut layers: Vec<usize> = targets.iter().map(|t| t.conv).collect();
    layers.sort_unstable();
    layers.dedup();
    for conv in layers {
        let order: Vec<usize> = (0..targets.len())
            .filter(|&i| targets[i].conv == conv)
            .collect();
        let group: Vec<Target> = order.iter().map(|&i| targets[i]).collect();
        let fields = project_fields(net, taps, &group, max_batch)?;
        let r = fields.pixels.size()[2];
        for (j, (&i, &(top, left))) in order.iter().zip(&fields.origins).enumerate() {
            // The part of the field inside the image.
            let (y0, x0) = (top.max(0), left.max(0));
            let (y1, x1) = ((top + r).min(h), (left + r).min(w));
            if y1 <= y0 || x1 <= x0 {
                continue;
            }
            let src = fields
                .pixels
                .get(j as i64)
                .narrow(1, y0 - top, y1 - y0)
                .narrow(2, x0 - left, x1 - x0);
            out.get(i as i64)
                .narrow(1, y0, y1 - y0)
                .narrow(2, x0, x1 - x0)
                .copy_(&src);
        }
    }
    Ok(out)
}

/// Projects targets that all lie on one conv layer, each on its receptive
/// field only: the signal of a unit never leaves the field, so every level
/// is computed on a window of the field's size at that level (one unit at
/// the top, `R x R` pixels at the bottom), for all targets at once, in
/// batches of `max_batch`.
pub fn project_fields(
    net: &Network,
    taps: &Taps,
    targets: &[Target],
    max_batch: usize,
) -> Result<FieldProjections, DeconvError> {
    let Some(first) = targets.first() else {
        return Err(DeconvError::Config("no targets".into()));
    };
    for t in targets {
        check_target(taps, t)?;
        if t.conv != first.conv {
            return Err(DeconvError::Config(format!(
                "project_fields takes targets of one layer: conv{} and conv{}",
                first.conv + 1,
                t.conv + 1
            )));
        }
    }
    let conv_index = net.arch().conv_indices()[first.conv];
    let mut pixels = Vec::new();
    let mut origins = Vec::new();
    for chunk in targets.chunks(max_batch.max(1)) {
        let (p, o) = project_window(net, taps, conv_index, chunk)?;
        pixels.push(p);
        origins.extend(o);
    }
    Ok(FieldProjections {
        pixels: Tensor::cat(&pixels, 0),
        origins,
    })
}

/// Checks that the Deconvnet can go from conv layer `conv_index` (an index
/// into the layer table) down to the pixels: every layer from its tap down
/// is a convolution, ReLU, LRN, batch norm, dropout or max-pool. The error
/// names the lowest layer that is not, and why.
pub fn check_reversible(arch: &Arch, conv_index: usize) -> Result<(), DeconvError> {
    for index in (0..=arch.tap_index(conv_index)).rev() {
        let layer = &arch.layers[index];
        let why = match &layer.kind {
            LayerKind::Conv(_)
            | LayerKind::Relu
            | LayerKind::Lrn(_)
            | LayerKind::BatchNorm(_)
            | LayerKind::Dropout { .. }
            | LayerKind::MaxPool(_) => continue,
            LayerKind::AdaptiveAvgPool { .. } => {
                "an adaptive average pool records no switches to unpool with"
            }
            LayerKind::Flatten => "a flatten below a conv layer has no spatial reverse",
            LayerKind::Linear(_) => "a linear layer below a conv layer has no spatial reverse",
        };
        return Err(DeconvError::Unsupported {
            index,
            label: layer.label.clone(),
            why: format!(
                "{} ({}) lies below {}: {why}",
                layer.label,
                layer.kind.torch_type(),
                arch.layers[conv_index].label
            ),
        });
    }
    Ok(())
}

/// `[T]` positions `start + 0..len` of every target, which of them lie in
/// `0..limit`, and the positions clamped into it.
fn positions(starts: &Tensor, len: i64, limit: i64) -> (Tensor, Tensor) {
    let pos =
        starts.unsqueeze(1) + Tensor::arange(len, (Kind::Int64, starts.device())).unsqueeze(0);
    let valid = pos.ge(0).logical_and(&pos.lt(limit));
    (valid, pos.clamp(0, limit - 1))
}

/// Where each target's projection lies in the plane reached so far: `[T]`
/// image indices, tops and lefts (which may lie in the padding), and the
/// window's size, shared by all targets.
struct Window {
    images: Tensor,
    tops: Tensor,
    lefts: Tensor,
    h: i64,
    w: i64,
}

/// Targets all on conv layer `conv_index` (index into the layer table):
/// `[T, C_in, R, R]` and the field origins.
fn project_window(
    net: &Network,
    taps: &Taps,
    conv_index: usize,
    targets: &[Target],
) -> Result<(Tensor, Vec<(i64, i64)>), DeconvError> {
    let arch = net.arch();
    let (mut g, mut win) = unit_signals(&taps.convs[targets[0].conv], targets);
    let device = g.device();
    for index in (0..=arch.tap_index(conv_index)).rev() {
        let layer = &arch.layers[index];
        let below = &taps.input_sizes[index];
        g = match &layer.kind {
            LayerKind::Relu => g.relu(),
            LayerKind::Lrn(_) | LayerKind::Dropout { .. } => g,
            // Folded into the convolution below: an evaluation-mode batch
            // norm scales channel c by weight_c / sqrt(running_var_c + eps),
            // which is that convolution's filter c scaled (its shift only
            // moves the bias, which the Deconvnet leaves out). Transposing
            // the folded filters equals scaling here and transposing the
            // plain ones.
            LayerKind::BatchNorm(_) => {
                let scale = net
                    .norm_scale(index)
                    .expect("batch-norm layers have a scale");
                g * scale.to_device(device).view([1, -1, 1, 1])
            }
            LayerKind::Conv(c) => {
                let weight = net
                    .weight(index)
                    .expect("conv layers have weights")
                    .to_kind(Kind::Float);
                reverse_conv(&g, &weight, c, &mut win, (below[2], below[3]))
            }
            LayerKind::MaxPool(p) => {
                let switch = taps
                    .switches
                    .iter()
                    .find(|sw| sw.layer == index)
                    .expect("the tap forward records every max-pool");
                reverse_pool(&g, &switch.indices, p, &mut win, below[3])
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
    let tops = Vec::<i64>::try_from(win.tops.to_device(tch::Device::Cpu))?;
    let lefts = Vec::<i64>::try_from(win.lefts.to_device(tch::Device::Cpu))?;
    Ok((g, tops.into_iter().zip(lefts).collect()))
}

/// `[T, C, 1, 1]`: each target's unit with its activation in `tap`, all
/// other activations of the layer zero; and the 1x1 window at the unit.
fn unit_signals(tap: &Tensor, targets: &[Target]) -> (Tensor, Window) {
    let device = tap.device();
    let ints = |f: fn(&Target) -> i64| {
        Tensor::from_slice(&targets.iter().map(f).collect::<Vec<_>>()).to_device(device)
    };
    let (images, channels) = (ints(|t| t.image), ints(|t| t.channel));
    let (tops, lefts) = (ints(|t| t.y), ints(|t| t.x));
    let n = targets.len() as i64;
    let values = tap
        .index(&[Some(&images), Some(&channels), Some(&tops), Some(&lefts)])
        .to_kind(Kind::Float);
    let mut g = Tensor::zeros([n, tap.size()[1], 1, 1], (Kind::Float, device));
    let rows = Tensor::arange(n, (Kind::Int64, device));
    let zero = Tensor::zeros([n], (Kind::Int64, device));
    let _ = g.index_put_(
        &[Some(&rows), Some(&channels), Some(&zero), Some(&zero)],
        &values,
        false,
    );
    let win = Window {
        images,
        tops,
        lefts,
        h: 1,
        w: 1,
    };
    (g, win)
}

/// Through a convolution: the transposed filters, the window grown to the
/// plane below (`below`: its height and width), positions in the padding
/// zeroed, for they are not pixels of that plane.
fn reverse_conv(
    g: &Tensor,
    weight: &Tensor,
    c: &ConvSpec,
    win: &mut Window,
    below: (i64, i64),
) -> Tensor {
    let up = g.conv_transpose2d(
        weight,
        None::<Tensor>,
        [c.stride; 2],
        [0, 0],
        [0, 0],
        c.groups,
        [1, 1],
    );
    win.tops = &win.tops * c.stride - c.padding;
    win.lefts = &win.lefts * c.stride - c.padding;
    win.h = (win.h - 1) * c.stride + c.kernel;
    win.w = (win.w - 1) * c.stride + c.kernel;
    let (vr, _) = positions(&win.tops, win.h, below.0);
    let (vc, _) = positions(&win.lefts, win.w, below.1);
    let mask = (vr.unsqueeze(2).logical_and(&vc.unsqueeze(1)))
        .unsqueeze(1)
        .to_kind(Kind::Float);
    up * mask
}

/// Through a max pool: each window position sent to where its switch (the
/// forward's argmax, `[N, C, H, W]` flat indices into the plane below,
/// `below_w` wide) points, the window grown to the pool's input.
fn reverse_pool(
    g: &Tensor,
    switches: &Tensor,
    p: &PoolSpec,
    win: &mut Window,
    below_w: i64,
) -> Tensor {
    let device = g.device();
    let (n, h, w) = (g.size()[0], win.h, win.w);
    let out = switches.size();
    let (vr, pr) = positions(&win.tops, h, out[2]);
    let (vc, pc) = positions(&win.lefts, w, out[3]);
    let chans = Tensor::arange(g.size()[1], (Kind::Int64, device));
    let idx = switches.index(&[
        Some(win.images.view([n, 1, 1, 1])),
        Some(chans.view([1, -1, 1, 1])),
        Some(pr.view([n, 1, h, 1])),
        Some(pc.view([n, 1, 1, w])),
    ]);
    let valid = vr.view([n, 1, h, 1]).logical_and(&vc.view([n, 1, 1, w]));
    let g = g * valid.to_kind(Kind::Float);
    win.tops = &win.tops * p.stride - p.padding;
    win.lefts = &win.lefts * p.stride - p.padding;
    let (nh, nw) = ((h - 1) * p.stride + p.kernel, (w - 1) * p.stride + p.kernel);
    // Switch (absolute in the input plane) -> position in the window.
    let sy = idx.divide_scalar_mode(below_w, "floor") - win.tops.view([n, 1, 1, 1]);
    let sx = idx.remainder(below_w) - win.lefts.view([n, 1, 1, 1]);
    let local = (sy * nw + sx).clamp(0, nh * nw - 1);
    win.h = nh;
    win.w = nw;
    unpool_adjoint(&g, &local, [nh, nw])
}
