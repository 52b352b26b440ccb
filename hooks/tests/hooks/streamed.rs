//! The streamed miner (values on every device's share of the batches, an
//! exact merge, the winners projected in a second pass) against the
//! one-pass in-memory miner on the same images, on one and on two devices.

use tch::nn::VarStore;
use tch::{Device, Tensor};
use zftrain_deconv::{LayerChoice, LayerTop, Miner, MinerConfig};
use zftrain_hooks::{
    mine_probe, on_devices, HookContext, HookError, MemorySink, ProbeSet, TensorProbe,
};
use zftrain_model::Network;

use crate::common::{context, network, probe};

fn choices() -> Vec<LayerChoice> {
    vec![
        LayerChoice {
            conv: 0,
            channels: vec![3, 0, 40],
        },
        LayerChoice {
            conv: 4,
            channels: vec![7, 1, 100, 255],
        },
    ]
}

/// Today's miner: the probe set's batches in order, each winner projected
/// with its own forward's switches.
fn in_memory(net: &Network, probe: &TensorProbe, config: MinerConfig) -> Vec<LayerTop> {
    let mut miner = Miner::new(net, &choices(), config, Device::Cpu).unwrap();
    let set: &dyn ProbeSet = probe;
    for batch in set.batches() {
        miner.update(net, &batch.unwrap().images).unwrap();
    }
    miner.into_layers()
}

fn ints(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.flatten(0, -1)).unwrap()
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
}

/// Places equal; values and crops equal up to the rounding of another
/// memory layout or batch (NaN where the patch leaves the image, in both).
fn assert_same(streamed: &[LayerTop], reference: &[LayerTop]) {
    assert_eq!(streamed.len(), reference.len());
    for (s, r) in streamed.iter().zip(reference) {
        let conv = r.conv + 1;
        assert_eq!(ints(&s.images), ints(&r.images), "conv{conv} images");
        assert_eq!(ints(&s.ys), ints(&r.ys), "conv{conv} rows");
        assert_eq!(ints(&s.xs), ints(&r.xs), "conv{conv} columns");
        // The first pass runs channels-last convolutions: the same values
        // up to their rounding.
        let (sv, rv) = (floats(&s.values), floats(&r.values));
        for (a, b) in sv.iter().zip(&rv) {
            assert!(
                a == b || (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "conv{conv} values: {sv:?} vs {rv:?}"
            );
        }
        for (what, a, b) in [
            ("projections", &s.projections, &r.projections),
            ("patches", &s.patches, &r.patches),
        ] {
            assert_eq!(a.size(), b.size(), "conv{conv} {what}");
            assert_eq!(
                ints(&a.isnan().to_kind(tch::Kind::Int64)),
                ints(&b.isnan().to_kind(tch::Kind::Int64)),
                "conv{conv} {what}: NaN in other places"
            );
            let scale = b.nan_to_num(0.0, None, None).abs().max().double_value(&[]);
            let diff = (a - b)
                .nan_to_num(0.0, None, None)
                .abs()
                .max()
                .double_value(&[]);
            assert!(scale > 0.0, "conv{conv} {what} are all zero");
            assert!(
                diff <= 1e-4 * scale,
                "conv{conv} {what} differ by {diff} (scale {scale})"
            );
        }
    }
}

/// A copy of `net` with its own parameters (a second replica).
fn replica(net: &Network, vs: &VarStore) -> (VarStore, Network) {
    let mut copy = VarStore::new(Device::Cpu);
    let other = Network::new(
        &copy.root(),
        net.arch().clone(),
        zftrain_model::InitScheme::Kaiming,
    )
    .unwrap();
    copy.copy(vs).unwrap();
    (copy, other)
}

fn streamed(
    net: &Network,
    replicas: &[(&Network, Device)],
    probe: &TensorProbe,
    config: MinerConfig,
) -> Vec<LayerTop> {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let ctx = HookContext {
        replicas,
        ..context(net, probe, dir.path(), &sink, 1)
    };
    mine_probe(&ctx, &choices(), config).unwrap()
}

#[test]
fn the_streamed_miner_equals_the_in_memory_miner_on_one_device() {
    let (_vs, net) = network();
    let probe = probe(7);
    for per_image in [1, 2] {
        let config = MinerConfig {
            k: 4,
            per_image,
            ..MinerConfig::default()
        };
        let reference = in_memory(&net, &probe, config.clone());
        assert_same(&streamed(&net, &[], &probe, config), &reference);
    }
}

#[test]
fn two_devices_mine_what_one_does_with_ties_to_the_lower_index() {
    let (vs, net) = network();
    let (_copy, other) = replica(&net, &vs);
    // Images 0..4 again as 4..8: every value ties with the one four earlier.
    let first = probe(4);
    let probe = TensorProbe {
        images: Tensor::cat(
            &[&first.images, &first.images, &first.images.narrow(0, 0, 1)],
            0,
        ),
        batch_size: 1,
        ..first
    };
    let config = MinerConfig {
        k: 6,
        ..MinerConfig::default()
    };
    let reference = in_memory(&net, &probe, config.clone());
    let both = [(&net, Device::Cpu), (&other, Device::Cpu)];
    let got = streamed(&net, &both, &probe, config);
    assert_same(&got, &reference);
    // Every value ties with its copy's: the lower index comes first.
    for top in &got {
        let (images, values) = (ints(&top.images), floats(&top.values));
        let ties = (1..images.len())
            .filter(|&i| i % 6 != 0 && values[i] == values[i - 1])
            .inspect(|&i| assert!(images[i - 1] < images[i], "{images:?}"))
            .count();
        assert!(ties >= top.channels.len(), "few ties: {values:?}");
    }
}

#[test]
fn lists_shorter_than_k_stay_empty_in_both_miners() {
    let (_vs, net) = network();
    let probe = probe(3);
    let config = MinerConfig {
        k: 5,
        ..MinerConfig::default()
    };
    let got = streamed(&net, &[], &probe, config.clone());
    assert_same(&got, &in_memory(&net, &probe, config));
    for top in &got {
        // 3 images, k = 5: two empty slots per map, NaN patches there.
        let images = ints(&top.images);
        assert_eq!(
            images.iter().filter(|&&i| i == -1).count(),
            2 * top.channels.len()
        );
    }
}

#[test]
fn a_device_that_fails_or_panics_during_a_pass_is_named_and_ends_it() {
    let (vs, net) = network();
    let (_copy, other) = replica(&net, &vs);
    let probe = probe(6);
    let set: &dyn ProbeSet = &probe;
    let both = [(&net, Device::Cpu), (&other, Device::Cpu)];
    // By address: a network is not Sync, the closures run on the devices' threads.
    let other_at = &other as *const Network as usize;
    let second = move |n: &Network| n as *const Network as usize == other_at;
    let err = on_devices(
        &both,
        set.batches(),
        &|n, _| match second(n) {
            true => Err(HookError::Probe("out of memory".into())),
            false => Ok(0usize),
        },
        &|count, _, _, batch| {
            *count += batch.indices.len();
            Ok(())
        },
    )
    .unwrap_err()
    .to_string();
    assert_eq!(err, "on cpu: probe set: out of memory");
    // Whichever device takes the second batch (one device may take them all).
    let err = on_devices(&both, set.batches(), &|_, _| Ok(()), &|_, _, _, batch| {
        if batch.indices.contains(&2) {
            panic!("a kernel failed");
        }
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("on cpu: ") && err.contains("panicked: a kernel failed"),
        "{err}"
    );
    // Both devices work: every image once, whichever device took it.
    let counts = on_devices(
        &both,
        set.batches(),
        &|_, _| Ok(0usize),
        &|count, _, _, batch| {
            *count += batch.indices.len();
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(counts.iter().sum::<usize>(), 6);
}

#[test]
fn a_single_device_works_on_the_calling_thread_and_its_failures_are_named() {
    let (_vs, net) = network();
    let probe = probe(6);
    let set: &dyn ProbeSet = &probe;
    let one = [(&net, Device::Cpu)];
    let caller = std::thread::current().id();
    let threads = on_devices(
        &one,
        set.batches(),
        &|_, _| Ok(Vec::new()),
        &|seen, _, _, _| {
            seen.push(std::thread::current().id());
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(threads.len(), 1);
    assert!(!threads[0].is_empty());
    assert!(threads[0].iter().all(|&t| t == caller));
    let err = on_devices(&one, set.batches(), &|_, _| Ok(()), &|_, _, _, _| {
        Err(HookError::Probe("out of memory".into()))
    })
    .unwrap_err()
    .to_string();
    assert_eq!(err, "on cpu: probe set: out of memory");
    let err = on_devices(&one, set.batches(), &|_, _| Ok(()), &|_, _, _, _| {
        panic!("a kernel failed")
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("on cpu: ") && err.contains("panicked: a kernel failed"),
        "{err}"
    );
}
