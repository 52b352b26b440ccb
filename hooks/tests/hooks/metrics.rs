//! The aliasing metrics on networks whose answer is known: a first layer
//! that is a stride-4 bank of high-frequency filters (what ZF found in
//! AlexNet) against a stride-2 bank of smooth ones (what ZFNet's smaller
//! stride and filters gave), and random networks.

use tch::{kind::FLOAT_CPU, Device, Kind, Tensor};
use zftrain_hooks::builtin::{AliasingConfig, AliasingHook, Maps};
use zftrain_hooks::{MemorySink, TensorProbe};
use zftrain_model::{ArchName, Network};

use crate::common::{built, context};

/// `[F, 3, k, k]` filters: random signs under a checkerboard (power near
/// the corners of the spectrum), or Gaussians times a slow cosine (power
/// near the centre); unit norm each.
fn bank(f: i64, k: i64, high: bool) -> Tensor {
    let r = Tensor::arange(k, FLOAT_CPU) - (k - 1) as f64 / 2.0;
    let w = if high {
        let idx = Tensor::arange(k, (Kind::Int64, Device::Cpu));
        let checker =
            ((idx.view([k, 1]) + idx.view([1, k])).remainder(2) * 2 - 1).to_kind(Kind::Float);
        Tensor::randn([f, 3, k, k], FLOAT_CPU).sign() * checker
    } else {
        let sigma = k as f64 / 4.0;
        let g = (-(r.square()) / (2.0 * sigma * sigma)).exp();
        let g = g.view([k, 1]) * g.view([1, k]);
        let phase = Tensor::rand([f, 3, 1, 1], FLOAT_CPU) * std::f64::consts::PI * 2.0;
        let wave = (r.view([1, 1, 1, k]) * 0.6 + phase).cos();
        g.view([1, 1, k, k]) * wave
    };
    let norm = w
        .square()
        .sum_dim_intlist([1i64, 2, 3].as_slice(), true, Kind::Float)
        .sqrt();
    w / norm
}

/// Smooth random images (blurred noise), like photographs' falling spectra.
fn smooth_probe(n: i64) -> TensorProbe {
    let noise = Tensor::randn([n, 3, 224, 224], FLOAT_CPU);
    TensorProbe {
        images: noise.avg_pool2d([9, 9], [1, 1], [4, 4], false, true, None::<i64>) * 3.0,
        batch_size: 4,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    }
}

/// `(conv1 above-Nyquist mean, conv2 grid score)`.
fn measure(net: &Network) -> (f64, f64) {
    tch::manual_seed(11);
    let probe = smooth_probe(8);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let ctx = context(net, &probe, dir.path(), &sink, 1);
    let hook = AliasingHook::new(AliasingConfig {
        grid_maps: Maps::Count(16),
        ..AliasingConfig::default()
    });
    let r = hook.measure(&ctx).unwrap();
    let conv1 = &r.above_nyquist[0].2;
    let mean = conv1.iter().sum::<f64>() / conv1.len() as f64;
    (mean, r.grid.unwrap().2)
}

/// The power fraction above Nyquist separates the two banks by two orders
/// of magnitude, and reads `1 - 1/s^2` for random (white) filters: the
/// share of the spectrum outside the square of side `1/s` around DC. The
/// grid score of layer 2's projections (their power in the stride
/// lattice's replicas) separates them as clearly.
#[test]
fn a_stride_4_high_frequency_first_layer_scores_worse_than_a_stride_2_smooth_one() {
    let (_a, alexnet) = built(ArchName::Alexnet, 5);
    let (_z, zfnet) = built(ArchName::Zfnet, 5);
    let random = (measure(&alexnet), measure(&zfnet));
    tch::no_grad(|| {
        alexnet
            .weight(0)
            .unwrap()
            .shallow_clone()
            .copy_(&(bank(96, 11, true) * 0.3));
        zfnet
            .weight(0)
            .unwrap()
            .shallow_clone()
            .copy_(&(bank(96, 7, false) * 0.3));
    });
    let (bad, good) = (measure(&alexnet), measure(&zfnet));
    println!(
        "(above Nyquist, grid score): random AlexNet {:?}, random ZFNet {:?}, high-frequency stride 4 {bad:?}, smooth stride 2 {good:?}",
        random.0, random.1
    );
    assert!(
        bad.0 > 0.9 && good.0 < 0.02,
        "above Nyquist: {bad:?} vs {good:?}"
    );
    assert!(
        (random.0 .0 - (1.0 - 1.0 / 16.0)).abs() < 0.02,
        "{random:?}"
    );
    assert!((random.1 .0 - (1.0 - 1.0 / 4.0)).abs() < 0.02, "{random:?}");
    assert!(
        bad.1 > 0.8 && good.1 < 0.1,
        "grid score: {bad:?} vs {good:?}"
    );
    // Random first layers put their projections at 0.7 to 1 times the
    // white-noise reading 1 - 1/s^2 (the smooth probe images weigh the
    // replicas down a little).
    let near_white = |score: f64, s: f64| {
        let white = 1.0 - 1.0 / (s * s);
        score > 0.7 * white && score < white + 0.02
    };
    assert!(
        near_white(random.0 .1, 4.0) && near_white(random.1 .1, 2.0),
        "{random:?}"
    );
}
