//! The architecture measures on networks whose answer is known, probed with
//! real photographs (scikit-image's sample photos, which `make setup` puts
//! in `.photos`) at the papers' input scale: first layers planted with
//! Gabor banks at chosen frequencies in AlexNet (11x11, stride 4, Nyquist
//! 0.125 cycle per pixel) and ZFNet (7x7, stride 2, Nyquist 0.25), white
//! banks, and a mix of white and structured filters. Each measure is read
//! beside its null.

use std::path::PathBuf;

use tch::{kind::FLOAT_CPU, Kind, Tensor};
use zftrain_hooks::builtin::{
    AliasingConfig, AliasingHook, AliasingReport, DeadFiltersConfig, DeadFiltersHook, Maps,
};
use zftrain_hooks::{MemorySink, TensorProbe};
use zftrain_model::{ArchName, Network};

use crate::common::{built, context};

/// The photographs `make setup` fetched.
fn photo_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.photos");
    assert!(
        dir.join(".zftrain-complete").exists(),
        "{} is missing: run `make setup` (scripts/setup fetches the sample photographs)",
        dir.display()
    );
    dir
}

/// Two `side x side` crops of each photograph (the centre and the top-left
/// quarter point), raw 0..255 values minus the set's per-channel mean (the
/// papers' input scale): `[2 * photos, 3, side, side]`.
fn photographs(side: i64) -> TensorProbe {
    let dir = photo_dir();
    let mut crops = Vec::new();
    for name in [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "camera.png",
    ] {
        let img = image::open(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_rgb8();
        let (w, h) = (img.width() as i64, img.height() as i64);
        let t = Tensor::from_slice(img.as_raw())
            .view([h, w, 3])
            .permute([2, 0, 1])
            .to_kind(Kind::Float);
        for (top, left) in [
            ((h - side) / 2, (w - side) / 2),
            ((h - side) / 4, (w - side) / 4),
        ] {
            crops.push(t.narrow(1, top, side).narrow(2, left, side));
        }
    }
    let images = Tensor::stack(&crops, 0);
    let mean = images.mean_dim([0i64, 2, 3].as_slice(), true, Kind::Float);
    TensorProbe {
        images: images - mean,
        batch_size: 4,
        mean: [0.5; 3],
        std: [1.0 / 255.0; 3],
        labels: None,
    }
}

/// `[f, 3, k, k]` Gabor filters of `freq` cycles per pixel, orientations
/// and phases spread over the bank, under a Gaussian of `k / 3`; unit norm.
fn gabor_bank(f: i64, k: i64, freq: f64) -> Tensor {
    let r = Tensor::arange(k, FLOAT_CPU) - (k - 1) as f64 / 2.0;
    let (y, x) = (r.view([k, 1]), r.view([1, k]));
    let sigma = k as f64 / 3.0;
    let envelope = (-(y.square() + x.square()) / (2.0 * sigma * sigma)).exp();
    let filters: Vec<Tensor> = (0..f)
        .map(|i| {
            let theta = std::f64::consts::PI * i as f64 / f as f64;
            let phase = 2.0 * std::f64::consts::PI * ((i * 7) % 11) as f64 / 11.0;
            let along = &x * theta.cos() + &y * theta.sin();
            let wave = (along * (2.0 * std::f64::consts::PI * freq) + phase).cos();
            let colour = Tensor::from_slice(&[1.0f32, 0.6 + 0.4 * ((i % 3) as f32 / 2.0), 0.8])
                .view([3, 1, 1]);
            (&envelope * wave).unsqueeze(0) * colour
        })
        .collect();
    unit(Tensor::stack(&filters, 0))
}

/// Each filter scaled to unit norm.
fn unit(w: Tensor) -> Tensor {
    let norm = w
        .square()
        .sum_dim_intlist([1i64, 2, 3].as_slice(), true, Kind::Float)
        .sqrt();
    w / norm
}

/// `net`'s first layer set to `bank` (scaled like a trained layer 1).
fn plant(net: &Network, bank: &Tensor) {
    tch::no_grad(|| {
        net.weight(0).unwrap().shallow_clone().copy_(&(bank * 0.05));
    });
}

/// The aliasing hook's report on the photographs (no grid unless asked).
fn measure(net: &Network, probe: &TensorProbe, grid_layer: usize) -> AliasingReport {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let ctx = context(net, probe, dir.path(), &sink, 1);
    AliasingHook::new(AliasingConfig {
        grid_layer,
        grid_maps: Maps::Count(32),
        images: 12,
        ..AliasingConfig::default()
    })
    .measure(&ctx)
    .unwrap()
}

/// `(aliasing, null)` of conv1.
fn conv1(r: &AliasingReport) -> (f64, f64) {
    assert_eq!(r.layers[0].label, "conv1");
    (r.layers[0].aliasing, r.layers[0].null)
}

/// The folded-back power separates what a stride really aliases from what
/// it does not: a 0.2 cycle/pixel bank is aliased at stride 4 (Nyquist
/// 0.125) and not at stride 2 (0.25), a 0.4 bank at both, a 0.08 bank at
/// neither; white banks read at their null; smooth banks under it.
#[test]
fn aliasing_reads_a_bank_aliased_exactly_where_its_frequency_exceeds_the_strides_nyquist() {
    let probe = photographs(160);
    let (_a, alexnet) = built(ArchName::Alexnet, 5);
    let (_z, zfnet) = built(ArchName::Zfnet, 5);
    let mut table = Vec::new();
    let mut read = |name: &str, freq: Option<f64>| {
        let mut row = Vec::new();
        for (net, k) in [(&alexnet, 11), (&zfnet, 7)] {
            let bank = match freq {
                Some(f) => gabor_bank(96, k, f),
                None => unit(zftrain_deconv::draws::normal(&[96, 3, k, k], 9)),
            };
            plant(net, &bank);
            row.push(conv1(&measure(net, &probe, 0)));
        }
        println!(
            "{name:>6}: stride 4 {:.3} (null {:.3}), stride 2 {:.3} (null {:.3})",
            row[0].0, row[0].1, row[1].0, row[1].1
        );
        table.push((name.to_string(), row.clone()));
        (row[0], row[1])
    };
    let aliased = |(a, null): (f64, f64)| a > 0.6 && a > null + 0.4;
    let clean = |(a, null): (f64, f64)| a < 0.2 && a < null + 0.1;
    let (s4, s2) = read("0.08", Some(0.08));
    assert!(clean(s4) && clean(s2), "0.08: {s4:?} {s2:?}");
    let (s4, s2) = read("0.2", Some(0.2));
    assert!(aliased(s4) && clean(s2), "0.2: {s4:?} {s2:?}");
    let (s4, s2) = read("0.4", Some(0.4));
    assert!(aliased(s4) && aliased(s2), "0.4: {s4:?} {s2:?}");
    let (s4, s2) = read("white", None);
    for (a, null) in [s4, s2] {
        assert!(
            (a - null).abs() < 0.05,
            "white: {a} against its null {null}"
        );
    }
}

/// `[f, 3, k, k]` high-frequency filters: random signs under a
/// checkerboard (AlexNet's black-and-white high-frequency filters: their
/// power sits near the corner frequency (0.5, 0.5), a point of every even
/// stride's lattice); unit norm.
fn checker_bank(f: i64, k: i64) -> Tensor {
    let idx = Tensor::arange(k, (Kind::Int64, tch::Device::Cpu));
    let checker = ((idx.view([k, 1]) + idx.view([1, k])).remainder(2) * 2 - 1).to_kind(Kind::Float);
    let signs = zftrain_deconv::draws::normal(&[f, 3, k, k], 3).sign();
    let r = Tensor::arange(k, FLOAT_CPU) - (k - 1) as f64 / 2.0;
    let g = (-(r.square()) / (2.0 * (k as f64 / 3.0).powi(2))).exp();
    unit(signs * checker * (g.view([k, 1]) * g.view([1, k])))
}

/// Layer 2's projections through a stride-4 layer 1 whose filters have
/// power at the stride lattice's frequencies show the lattice far above
/// its null; through a smooth layer 1 they do not. A narrow-band 0.4
/// cycle/pixel bank aliases (its outputs fold back) but puts little power
/// on the lattice itself: its grid is printed, not asserted.
#[test]
fn the_grid_is_high_through_a_stride_4_high_frequency_layer_1_and_absent_through_a_smooth_one() {
    let probe = photographs(160);
    let (_a, alexnet) = built(ArchName::Alexnet, 5);
    let grid = |bank: Tensor| {
        plant(&alexnet, &bank);
        let g = measure(&alexnet, &probe, 2).grid.unwrap();
        assert_eq!((g.label.as_str(), g.period), ("conv2", 4));
        g.contrast
    };
    let high = grid(checker_bank(96, 11));
    let smooth = grid(gabor_bank(96, 11, 0.05));
    let ring = grid(gabor_bank(96, 11, 0.4));
    let white = grid(unit(zftrain_deconv::draws::normal(&[96, 3, 11, 11], 9)));
    println!("grid (null): high-frequency {high:?}, smooth {smooth:?}, 0.4 gabor {ring:?}, white {white:?}");
    // The phase explains 4% of the high-frequency projections' variance,
    // five times its null; 0.02% of the smooth ones'.
    assert!(high.grid > 0.02 && high.grid > 3.0 * high.null, "{high:?}");
    assert!(
        smooth.grid < 0.005 && smooth.grid < 0.1 * high.grid,
        "{smooth:?}"
    );
}

/// `structureless` counts the white filters of a bank that mixes them with
/// Gabors of every frequency, and not the Gabors; `dominance` finds the one
/// filter scaled up.
#[test]
fn structureless_counts_the_white_filters_and_dominance_the_scaled_one() {
    let probe = photographs(96);
    let (_z, zfnet) = built(ArchName::Zfnet, 5);
    let white = unit(zftrain_deconv::draws::normal(&[32, 3, 7, 7], 4));
    let bank = Tensor::cat(
        &[
            white,
            gabor_bank(32, 7, 0.08),
            gabor_bank(16, 7, 0.2),
            gabor_bank(16, 7, 0.4),
        ],
        0,
    );
    let _ = bank.get(40).g_mul_scalar_(9.0);
    plant(&zfnet, &bank);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let ctx = context(&zfnet, &probe, dir.path(), &sink, 1);
    let layers = DeadFiltersHook::new(DeadFiltersConfig::default())
        .measure(&ctx)
        .unwrap();
    let l1 = &layers[0];
    println!(
        "structureless {} of 96 (32 white), threshold {:.3}, dominance {:.2}, never fire {}",
        l1.structureless, l1.structureless_threshold, l1.dominance, l1.dead
    );
    assert!(
        (29..=32).contains(&l1.structureless),
        "{}",
        l1.structureless
    );
    let gabors_flagged = l1.tap_correlation[32..]
        .iter()
        .filter(|&&r| r < l1.structureless_threshold)
        .count();
    assert_eq!(gabors_flagged, 0);
    assert!((l1.dominance - 9.0).abs() < 0.5, "{}", l1.dominance);
    // On mean-subtracted photographs every one of these fires somewhere.
    assert_eq!(l1.dead, 0);
}

/// The first LRN's divisor moves across positions when the inputs are in
/// the papers' units (raw pixels minus the mean) and sits at the constant
/// `k ^ beta` when they are 58 times smaller (ImageNet's std): the same
/// photographs, AlexNet with its paper's initialization.
#[test]
fn the_first_lrn_normalizes_at_the_papers_scale_and_is_constant_at_imagenet_std() {
    use zftrain_hooks::builtin::{LrnConfig, LrnHook};
    tch::manual_seed(2);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let config = zftrain_model::arch::ArchConfig {
        classes: 10,
        ..Default::default()
    };
    let arch = zftrain_model::Arch::builtin(ArchName::Alexnet, &config).unwrap();
    let net = Network::new(&vs.root(), arch, zftrain_model::InitScheme::Alexnet).unwrap();
    let papers = photographs(160);
    // ImageNet's std, the same mean: x / 255 / 0.226.
    let standardized = TensorProbe {
        images: &papers.images / (255.0 * 0.226),
        ..photographs(160)
    };
    let read = |probe: &TensorProbe| {
        let dir = tempfile::tempdir().unwrap();
        let sink = MemorySink::default();
        let ctx = context(&net, probe, dir.path(), &sink, 1);
        let l = LrnHook::new(LrnConfig::default()).measure(&ctx).unwrap();
        assert_eq!(l[0].label, "norm1");
        (l[0].mean, l[0].std / l[0].mean)
    };
    let (p_mean, p_cv) = read(&papers);
    let (s_mean, s_cv) = read(&standardized);
    println!("norm1 divisor: papers' scale mean {p_mean:.4} cv {p_cv:.2e}; ImageNet std mean {s_mean:.4} cv {s_cv:.2e}; k^beta = {:.4}", 2f64.powf(0.75));
    assert!(p_cv > 100.0 * s_cv, "{p_cv} against {s_cv}");
    assert!(
        s_cv < 1e-3 && (s_mean - 2f64.powf(0.75)).abs() < 1e-3,
        "{s_mean} {s_cv}"
    );
}
