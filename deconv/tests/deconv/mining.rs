//! The top-k miner against brute force, across batch sizes, with ties.

use tch::{Device, Tensor};
use zftrain_deconv::patch::crop_boxes;
use zftrain_deconv::{project, LayerChoice, Miner, MinerConfig, Target};
use zftrain_model::ArchName;

use crate::common::network;

fn choices() -> Vec<LayerChoice> {
    vec![
        LayerChoice {
            conv: 0,
            channels: vec![5, 0, 17],
        },
        LayerChoice {
            conv: 4,
            channels: vec![1, 2, 3, 4],
        },
    ]
}

fn mine(net: &zftrain_model::Network, probe: &Tensor, batch: i64, config: MinerConfig) -> Miner {
    let mut miner = Miner::new(net, &choices(), config, Device::Cpu).unwrap();
    let n = probe.size()[0];
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        miner.update(net, &probe.narrow(0, start, len)).unwrap();
        start += len;
    }
    miner
}

fn ints(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.flatten(0, -1)).unwrap()
}

#[test]
fn the_top_k_is_the_brute_force_top_k_whatever_the_batch_size() {
    let (_vs, net) = network(ArchName::Zfnet);
    let probe = crate::common::images(7, line!() as u64);
    let config = MinerConfig {
        k: 4,
        ..MinerConfig::default()
    };
    let a = mine(&net, &probe, 3, config.clone());
    let b = mine(&net, &probe, 7, config);
    let taps = tch::no_grad(|| net.forward_taps(&probe, false));
    for (la, lb) in a.layers().iter().zip(b.layers()) {
        assert_eq!(ints(&la.images), ints(&lb.images));
        assert_eq!(ints(&la.ys), ints(&lb.ys));
        assert_eq!(ints(&la.xs), ints(&lb.xs));
        let dv = (&la.values - &lb.values).abs().max().double_value(&[]);
        assert!(
            dv <= 1e-5 * la.values.abs().max().double_value(&[]),
            "values differ by {dv}"
        );
        // The forward of a batch of 3 and of 7 may round differently.
        let scale = la.projections.abs().max().double_value(&[]);
        let err = (&la.projections - &lb.projections)
            .abs()
            .max()
            .double_value(&[]);
        assert!(scale > 0.0 && err <= 1e-5 * scale, "{err} of {scale}");
        assert!(la.patches.isnan().equal(&lb.patches.isnan()));
        let tap = &taps.convs[la.conv];
        for (m, &c) in la.channels.iter().enumerate() {
            // Brute force: every image's maximum of map c, strongest first.
            let per_image = tap
                .select(1, c)
                .flatten(1, -1)
                .amax([1i64].as_slice(), false);
            let mut want: Vec<(f32, i64)> = Vec::<f32>::try_from(&per_image)
                .unwrap()
                .into_iter()
                .zip(0..)
                .collect();
            want.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            // The brute force ran on all 7 images at once, as miner `b` did
            // (a batch of 3 may round the last digit differently).
            let got_v = Vec::<f32>::try_from(lb.values.get(m as i64)).unwrap();
            let got_i = ints(&lb.images.get(m as i64));
            for slot in 0..4 {
                assert_eq!(
                    (got_v[slot], got_i[slot]),
                    want[slot],
                    "conv{} map {c} slot {slot}",
                    la.conv + 1
                );
                // The stored unit is where that maximum is.
                let (y, x) = (
                    lb.ys.int64_value(&[m as i64, slot as i64]),
                    lb.xs.int64_value(&[m as i64, slot as i64]),
                );
                assert_eq!(
                    tap.double_value(&[got_i[slot], c, y, x]) as f32,
                    got_v[slot]
                );
            }
        }
    }
}

#[test]
fn stored_projections_and_patches_are_the_receptive_field_crops() {
    let (_vs, net) = network(ArchName::Zfnet);
    let probe = crate::common::images(5, line!() as u64);
    let miner = mine(
        &net,
        &probe,
        2,
        MinerConfig {
            k: 3,
            ..MinerConfig::default()
        },
    );
    let taps = tch::no_grad(|| net.forward_taps(&probe, false));
    let layer = &miner.layers()[1];
    let (m, slot) = (2i64, 1i64);
    let t = Target {
        image: layer.images.int64_value(&[m, slot]),
        conv: layer.conv,
        channel: layer.channels[m as usize],
        y: layer.ys.int64_value(&[m, slot]),
        x: layer.xs.int64_value(&[m, slot]),
    };
    let full = tch::no_grad(|| project(&net, &taps, &[t], 1)).unwrap();
    let (top, left) = layer.field.origin(t.y, t.x);
    let want = crop_boxes(&full, layer.field.size, &[(0, top, left)], 0.0).get(0);
    let got = layer.projections.get(m).get(slot);
    let scale = want.abs().max().double_value(&[]);
    assert!(scale > 0.0);
    let err = (got - &want).abs().max().double_value(&[]) / scale;
    assert!(err < 1e-5, "relative error {err}");
    let patch = crop_boxes(&probe, layer.field.size, &[(t.image, top, left)], f64::NAN).get(0);
    let same = layer
        .patches
        .get(m)
        .get(slot)
        .nan_to_num(-99.0, None, None)
        .equal(&patch.nan_to_num(-99.0, None, None));
    assert!(same, "patch differs");
}

#[test]
fn ties_go_to_the_earlier_image_and_per_image_limits_hold() {
    let (_vs, net) = network(ArchName::Zfnet);
    // Five identical images: every candidate ties.
    let one = crate::common::images(1, line!() as u64);
    let probe = one.repeat([5, 1, 1, 1]);
    let config = MinerConfig {
        k: 3,
        project: false,
        ..MinerConfig::default()
    };
    let miner = mine(&net, &probe, 2, config);
    for layer in miner.layers() {
        for m in 0..layer.channels.len() as i64 {
            assert_eq!(
                ints(&layer.images.get(m)),
                [0, 1, 2],
                "conv{}",
                layer.conv + 1
            );
        }
    }
    // Two per image: each image's strongest value ties with the other
    // images', and beats its own second value.
    let config = MinerConfig {
        k: 4,
        per_image: 2,
        project: false,
        ..MinerConfig::default()
    };
    let miner = mine(&net, &probe, 3, config);
    let layer = &miner.layers()[0];
    let imgs = ints(&layer.images.get(0));
    assert_eq!(imgs, [0, 1, 2, 3], "ties between images go by image");
    let v = Vec::<f32>::try_from(layer.values.get(0)).unwrap();
    assert!(v.windows(2).all(|w| w[0] >= w[1]), "{v:?}");
}
