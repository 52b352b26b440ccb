//! The Deconvnet projection checked against its gradient formulation: going
//! down layer by layer, every conv is reversed by libtorch's own conv
//! backward and every max-pool by its own max-pool backward (both at the
//! recorded layer input), ReLUs pass only positive signal, LRN passes
//! through. Nothing of `deconv::project` (transposed convolutions, output
//! padding, scatter-add unpooling) is shared with this reference.

use tch::{kind::FLOAT_CPU, Kind, Tensor};
use zftrain_deconv::{project, Target};
use zftrain_model::{ArchName, LayerKind, Network};

use crate::common::network;

/// The gradient formulation for one target.
fn reference(net: &Network, input: &Tensor, t: &Target) -> Tensor {
    let arch = net.arch();
    let conv_index = arch.conv_indices()[t.conv];
    let top = arch.tap_index(conv_index);
    let image = input.narrow(0, t.image, 1);
    let tap = net.forward_taps_to(&image, false, top + 1).logits;
    let mut g = tap.zeros_like();
    let v = tap.double_value(&[0, t.channel, t.y, t.x]);
    let _ = g.get(0).get(t.channel).get(t.y).get(t.x).fill_(v);
    for index in (0..=top).rev() {
        let x_in = net
            .forward_taps_to(&image, false, index)
            .logits
            .detach()
            .set_requires_grad(true);
        g = match &arch.layers[index].kind {
            LayerKind::Relu => g.relu(),
            LayerKind::Lrn(_) | LayerKind::Dropout { .. } => g,
            LayerKind::Conv(c) => {
                let w = net.weight(index).unwrap().detach();
                let y = x_in.conv2d(
                    &w,
                    None::<Tensor>,
                    [c.stride; 2],
                    [c.padding; 2],
                    [1, 1],
                    c.groups,
                );
                Tensor::run_backward(&[(&y * &g).sum(Kind::Float)], &[&x_in], false, false)
                    .remove(0)
            }
            LayerKind::MaxPool(p) => {
                let y = x_in.max_pool2d(
                    [p.kernel; 2],
                    [p.stride; 2],
                    [p.padding; 2],
                    [1, 1],
                    p.ceil_mode,
                );
                Tensor::run_backward(&[(&y * &g).sum(Kind::Float)], &[&x_in], false, false)
                    .remove(0)
            }
            LayerKind::BatchNorm(_) => {
                // The evaluation-mode layer itself, differentiated.
                let y = net.forward_range(&x_in, index..index + 1);
                Tensor::run_backward(&[(&y * &g).sum(Kind::Float)], &[&x_in], false, false)
                    .remove(0)
            }
            other => panic!("unexpected layer {other:?}"),
        };
    }
    g.squeeze_dim(0)
}

fn check(name: ArchName) {
    let (_vs, net) = network(name);
    check_net(&net);
}

fn check_net(net: &Network) {
    let name = net.arch().name.clone();
    let input = crate::common::images(2, line!() as u64);
    let taps = tch::no_grad(|| net.forward_taps(&input, false));
    // In every layer: the strongest unit of the layer (so it is positive), in image 1.
    let targets: Vec<Target> = (0..5)
        .map(|conv| {
            let tap = taps.convs[conv].get(1);
            let flat = tap.flatten(0, -1).argmax(0, false).int64_value(&[]);
            let (h, w) = (tap.size()[1], tap.size()[2]);
            Target {
                image: 1,
                conv,
                channel: flat / (h * w),
                y: flat % (h * w) / w,
                x: flat % w,
            }
        })
        .collect();
    let got = tch::no_grad(|| project(net, &taps, &targets, 2)).unwrap();
    assert_eq!(got.size(), [5, 3, 224, 224]);
    for (i, t) in targets.iter().enumerate() {
        let want = reference(net, &input, t);
        let scale = want.abs().max().double_value(&[]);
        assert!(scale > 0.0, "{name:?} {t}: empty reference");
        let err = (got.get(i as i64) - &want).abs().max().double_value(&[]) / scale;
        assert!(err < 1e-5, "{name:?} {t}: relative error {err}");
    }
}

#[test]
fn zfnet_projections_equal_the_gradient_formulation() {
    check(ArchName::Zfnet);
}

#[test]
fn alexnet_projections_restore_the_stride_4_input_size_and_equal_the_gradient_formulation() {
    check(ArchName::Alexnet);
}

#[test]
fn the_two_tower_alexnet_file_reverses_its_grouped_convolutions() {
    let (_vs, net) = crate::common::network_from_file("alexnet-2gpu.toml");
    let grouped = net
        .arch()
        .layers
        .iter()
        .filter(|l| matches!(&l.kind, LayerKind::Conv(c) if c.groups == 2))
        .count();
    assert_eq!(grouped, 3);
    check_net(&net);
}

#[test]
fn batch_norms_fold_into_their_convolutions_in_the_projections() {
    let (_vs, net) = crate::common::network_from_file("vgg11-bn.toml");
    // Statistics as after training (the identity batch norm of a fresh
    // network would hide a missing fold), from a formula rather than the
    // shared random generator.
    tch::no_grad(|| {
        for (name, mut t) in net.named_state() {
            let i = Tensor::arange(t.numel() as i64, (Kind::Float, t.device()));
            if name.ends_with("running_var") || name.ends_with(".weight") && t.dim() == 1 {
                t.copy_(&((i * 0.7).sin().abs() * 2.7 + 0.3));
            } else if name.ends_with("running_mean") || name.ends_with(".bias") && t.dim() == 1 {
                t.copy_(&((i * 1.3).cos() * 0.2));
            }
        }
    });
    let bn = net
        .arch()
        .layers
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::BatchNorm(_)))
        .count();
    assert_eq!(bn, 8);
    check_net(&net);
}

#[test]
fn layers_the_deconvnet_cannot_reverse_are_named_before_projecting() {
    let text = "name = \"pooled\"\ninput = [3, 32, 32]\n[[layers]]\nkind = \"conv\"\nout_channels = 4\nkernel = 3\n[[layers]]\nkind = \"relu\"\n[[layers]]\nkind = \"adaptive_avg_pool\"\nheight = 8\nwidth = 8\n[[layers]]\nkind = \"conv\"\nout_channels = 4\nkernel = 3\n[[layers]]\nkind = \"flatten\"\n[[layers]]\nkind = \"linear\"\nout_features = 2\n";
    let arch = zftrain_model::arch_file::parse_arch(text, "pooled.toml").unwrap();
    let convs = arch.conv_indices();
    zftrain_deconv::check_reversible(&arch, convs[0]).unwrap();
    let err = zftrain_deconv::check_reversible(&arch, convs[1])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("avgpool1 (AdaptiveAvgPool2d) lies below conv2")
            && err.contains("no switches"),
        "{err}"
    );
}

#[test]
fn a_projection_stays_inside_the_units_receptive_field() {
    let (_vs, net) = network(ArchName::Zfnet);
    let input = crate::common::images(1, line!() as u64);
    let taps = tch::no_grad(|| net.forward_taps(&input, false));
    let conv = 2;
    // The strongest unit of the layer, away from the border.
    let tap = taps.convs[conv].get(0).narrow(1, 3, 7).narrow(2, 3, 7);
    let flat = tap.flatten(0, -1).argmax(0, false).int64_value(&[]);
    let t = Target {
        image: 0,
        conv,
        channel: flat / 49,
        y: 3 + flat % 49 / 7,
        x: 3 + flat % 7,
    };
    let p = tch::no_grad(|| project(&net, &taps, &[t], 1))
        .unwrap()
        .get(0);
    let rf = zftrain_model::receptive::receptive_fields(net.arch())
        [net.arch().tap_index(net.arch().conv_indices()[conv])]
    .unwrap();
    let (top, left) = rf.origin(t.y, t.x);
    let mask = Tensor::zeros([224, 224], FLOAT_CPU);
    let (y0, x0) = (top.max(0), left.max(0));
    let (y1, x1) = ((top + rf.size).min(224), (left + rf.size).min(224));
    let _ = mask
        .narrow(0, y0, y1 - y0)
        .narrow(1, x0, x1 - x0)
        .fill_(1.0);
    let outside = (p
        .abs()
        .sum_dim_intlist([0i64].as_slice(), false, Kind::Float)
        * (mask.ones_like() - &mask))
        .sum(Kind::Float)
        .double_value(&[]);
    let inside = p.abs().sum(Kind::Float).double_value(&[]);
    assert!(
        inside > 0.0 && outside == 0.0,
        "inside {inside}, outside {outside}"
    );
}

#[test]
fn targets_outside_the_network_are_refused_by_name() {
    let (_vs, net) = network(ArchName::ZfnetSeed);
    let taps =
        tch::no_grad(|| net.forward_taps(&Tensor::zeros([1, 3, 224, 224], FLOAT_CPU), false));
    let bad = Target {
        image: 0,
        conv: 1,
        channel: 999,
        y: 0,
        x: 0,
    };
    let err = project(&net, &taps, &[bad], 4).unwrap_err().to_string();
    assert!(
        err.contains("channel 999") && err.contains("conv2"),
        "{err}"
    );
}
