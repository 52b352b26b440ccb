//! The built-in hooks on a real (random) ZFNet and probe set.

use zftrain_hooks::builtin::{DeadFiltersConfig, DeadFiltersHook};
use zftrain_hooks::{Event, Hook, HookSpec, Hooks, MemorySink, Recorded, Schedule};

use crate::common::{context, network, probe};

#[test]
fn the_deconv_hook_writes_grids_tensors_and_summaries_for_every_layer() {
    let (_vs, net) = network();
    let probe = probe(5);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let spec: HookSpec = serde_json::from_value(serde_json::json!({
        "kind": "deconv", "maps": 3, "k": 4, "schedule": { "epochs": [2] }
    }))
    .unwrap();
    let mut hooks = Hooks::new();
    hooks.register(spec.build().unwrap()).unwrap();
    hooks
        .dispatch(
            Event::EpochEnd,
            &context(&net, &probe, dir.path(), &sink, 1),
        )
        .unwrap();
    assert!(sink.tags().is_empty(), "epoch 1 is not scheduled");
    let d = hooks
        .dispatch(
            Event::EpochEnd,
            &context(&net, &probe, dir.path(), &sink, 2),
        )
        .unwrap();
    assert!(d.failures.is_empty(), "{:?}", d.failures);
    let out = dir.path().join("hooks/deconv/epoch-002");
    for l in 1..=5 {
        for kind in ["projections", "patches"] {
            assert!(
                sink.tags().contains(&format!("deconv/conv{l}/{kind}")),
                "conv{l} {kind}"
            );
        }
        let png = image::open(out.join(format!("conv{l}.png"))).unwrap();
        assert!(png.width() > 100 && png.height() > 50);
        let t = tch::Tensor::read_safetensors(out.join(format!("conv{l}.safetensors"))).unwrap();
        let get = |n: &str| t.iter().find(|(k, _)| k == n).unwrap().1.shallow_clone();
        assert_eq!(get("values").size(), [3, 4]);
        assert_eq!(get("channels").size(), [3]);
        let p = get("projections");
        assert_eq!(p.size()[..3], [3, 4, 3]);
        // As the hook's documentation says: f16 pictures, f32 activations.
        assert_eq!(p.kind(), tch::Kind::Half);
        assert_eq!(get("patches").kind(), tch::Kind::Half);
        assert_eq!(get("values").kind(), tch::Kind::Float);
        // Four images for k = 4 with one per image: every slot filled, strongest first.
        let imgs = Vec::<i64>::try_from(get("images").flatten(0, -1)).unwrap();
        assert!(imgs.iter().all(|&i| (0..5).contains(&i)));
        let v = Vec::<f32>::try_from(get("values").get(0)).unwrap();
        assert!(v.windows(2).all(|w| w[0] >= w[1]), "{v:?}");
    }
    // Layer 1 of ZFNet has 96 maps: 3 evenly spaced ones.
    let t = tch::Tensor::read_safetensors(out.join("conv1.safetensors")).unwrap();
    let ch = t
        .iter()
        .find(|(k, _)| k == "channels")
        .unwrap()
        .1
        .shallow_clone();
    assert_eq!(Vec::<i64>::try_from(ch).unwrap(), [0, 32, 64]);
    // The edge agreement: a scalar per layer and a row per layer in the CSV.
    let csv = std::fs::read_to_string(out.join("edge-agreement.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        Some(zftrain_hooks::builtin::deconv_grid::AGREEMENT_HEADER.trim_end()),
        lines.next()
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 5, "{csv}");
    for (l, row) in rows.iter().enumerate() {
        assert_eq!(row[0], format!("conv{}", l + 1));
        let matched: f64 = row[1].parse().unwrap();
        assert!((-1.0..=1.0).contains(&matched), "{csv}");
        let coarse: f64 = row[3].parse().unwrap();
        assert!((0.0..=1.0).contains(&coarse), "{csv}");
        assert!(row[4].parse::<usize>().unwrap() <= 12, "{csv}");
        assert!(sink
            .tags()
            .contains(&format!("deconv/conv{}/edge_agreement", l + 1)));
    }
}

#[test]
fn dead_and_degenerate_filters_are_counted() {
    let (_vs, net) = network();
    let probe = probe(3);
    // Kill filter 4 of conv1: zero weights and a negative bias.
    tch::no_grad(|| {
        let w = net.weight(0).unwrap();
        let _ = w.get(4).zero_();
        let _ = net.bias(0).unwrap().get(4).fill_(-1.0);
        // Filter 7: tiny weights (degenerate) but alive through its bias.
        let _ = w.get(7).fill_(1e-6);
        let _ = net.bias(0).unwrap().get(7).fill_(1.0);
    });
    let hook = DeadFiltersHook::new(DeadFiltersConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let ctx = context(&net, &probe, dir.path(), &sink, 1);
    let layers = hook.measure(&ctx).unwrap();
    assert_eq!(layers.len(), 5);
    let l1 = &layers[0];
    assert_eq!(l1.label, "conv1");
    assert_eq!(l1.max_activation[4], 0.0);
    assert_eq!(l1.activation_rate[4], 0.0);
    assert!(l1.dead >= 1);
    assert!(l1.activation_rate[7] > 0.99, "{}", l1.activation_rate[7]);
    assert_eq!(l1.degenerate, 2, "filters 4 (zero) and 7 (tiny)");
    let mut hook = hook;
    assert_eq!(hook.schedule(), &Schedule::default());
    hook.on_epoch_end(&ctx).unwrap();
    let items = sink.items.lock().unwrap().clone();
    assert!(items.iter().any(|s| matches!(s, Recorded::Scalar(t, 10, v) if t == "filters/conv1/dead" && *v == l1.dead as f64)));
    assert!(items.iter().any(
        |s| matches!(s, Recorded::Histogram(t, 10, v) if t == "filters/conv1/rms" && v.len() == 96)
    ));
}

#[test]
fn aliasing_reports_strided_layers_with_nulls_coverage_and_a_grid() {
    use zftrain_hooks::builtin::{AliasingConfig, AliasingHook};
    let (_vs, net) = network();
    let probe = probe(3);
    // Filter 0 of conv1 becomes a checkerboard: all it passes is at 0.5
    // cycle per pixel, past stride 2's Nyquist (0.25).
    tch::no_grad(|| {
        let k = 7;
        let r = tch::Tensor::arange(k, (tch::Kind::Int64, tch::Device::Cpu));
        let s = (r.view([k, 1]) + r.view([1, k]))
            .remainder(2)
            .to_kind(tch::Kind::Float)
            * 2.0
            - 1.0;
        net.weight(0)
            .unwrap()
            .get(0)
            .copy_(&(s.expand([3, k, k], true) * 0.1));
    });
    let hook = AliasingHook::new(AliasingConfig {
        grid_maps: zftrain_hooks::builtin::Maps::Count(8),
        images: 2,
        ..AliasingConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let ctx = context(&net, &probe, dir.path(), &sink, 3);
    let r = hook.measure(&ctx).unwrap();
    // ZFNet: conv1 and conv2 have stride 2.
    let strided: Vec<(&str, i64)> = r
        .layers
        .iter()
        .map(|l| (l.label.as_str(), l.stride))
        .collect();
    assert_eq!(strided, [("conv1", 2), ("conv2", 2)]);
    assert_eq!(r.layers[0].per_filter.len(), 96);
    assert!(
        r.layers[0].per_filter[0] > 0.9,
        "{}",
        r.layers[0].per_filter[0]
    );
    for l in &r.layers {
        assert!(
            (0.0..=1.0).contains(&l.aliasing) && (0.0..=1.0).contains(&l.null),
            "{l:?}"
        );
    }
    // Random (He) filters are white: their coverage is near 1 in each band.
    assert!(
        r.coverage.iter().all(|c| (c - 1.0).abs() < 0.25),
        "{:?}",
        r.coverage
    );
    let g = r.grid.clone().unwrap();
    assert_eq!((g.label.as_str(), g.period), ("conv2", 2));
    assert!(
        g.contrast.grid.is_finite() && g.contrast.null.is_finite(),
        "{g:?}"
    );
    // A deeper grid layer reads the lattice of layer 1's stride in pixels
    // (AlexNet's conv2 has stride 1; its conv1, stride 4).
    let (_va, alexnet) = crate::common::built(zftrain_model::ArchName::Alexnet, 3);
    let deeper = AliasingHook::new(AliasingConfig {
        grid_layer: 3,
        grid_maps: zftrain_hooks::builtin::Maps::Count(4),
        images: 1,
        ..AliasingConfig::default()
    });
    let sink3 = MemorySink::default();
    let g3 = deeper
        .measure(&context(&alexnet, &probe, dir.path(), &sink3, 3))
        .unwrap()
        .grid
        .unwrap();
    assert_eq!((g3.label.as_str(), g3.period), ("conv3", 4));
    let mut hook = hook;
    hook.on_epoch_end(&ctx).unwrap();
    for tag in [
        "aliasing/conv1/aliasing",
        "aliasing/conv1/aliasing_null",
        "aliasing/conv2/aliasing_per_filter",
        "aliasing/conv1/coverage_mid",
        "aliasing/conv2/grid",
        "aliasing/conv2/grid_null",
    ] {
        assert!(sink.tags().contains(&tag.to_string()), "{tag}");
    }
}

#[test]
fn feature_evolution_keeps_one_column_per_epoch_across_a_state_round_trip() {
    use zftrain_hooks::builtin::{EvolutionConfig, EvolutionHook, Maps};
    let (_vs, net) = network();
    let probe = probe(2);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let config = EvolutionConfig {
        layers: vec![1, 3],
        maps: Maps::Count(2),
        schedule: Schedule::EveryEpochs(1),
        ..EvolutionConfig::default()
    };
    let mut hook = EvolutionHook::new(config.clone());
    for epoch in 1..=2 {
        hook.on_epoch_end(&context(&net, &probe, dir.path(), &sink, epoch))
            .unwrap();
    }
    let montage =
        |l: u32| image::open(dir.path().join(format!("hooks/evolution/conv{l}.png"))).unwrap();
    let two = montage(1);
    // Resume: a fresh hook with the saved state adds a third column.
    let state = hook.save_state().unwrap().unwrap();
    assert_eq!(state.tensors[0].1.size()[..2], [2, 2]);
    let mut resumed = EvolutionHook::new(config);
    resumed.load_state(state).unwrap();
    resumed
        .on_epoch_end(&context(&net, &probe, dir.path(), &sink, 3))
        .unwrap();
    assert_eq!(resumed.epochs(), [1, 2, 3]);
    let three = montage(1);
    assert_eq!(three.height(), two.height(), "two feature maps down");
    // One more column of a tile (at least 64 pixels, for its caption) and
    // a gap; a fourth epoch adds the same again.
    let col = three.width() - two.width();
    assert!(
        (65..200).contains(&col),
        "one more column: {} -> {}",
        two.width(),
        three.width()
    );
    resumed
        .on_epoch_end(&context(&net, &probe, dir.path(), &sink, 4))
        .unwrap();
    assert_eq!(montage(1).width() - three.width(), col);
    assert!(montage(3).width() > 0);
    let images = sink
        .tags()
        .iter()
        .filter(|t| *t == "evolution/conv1")
        .count();
    assert_eq!(images, 4);
    // A state of the wrong shape is refused by name.
    let bad = zftrain_hooks::HookState {
        tensors: vec![(
            "conv1".into(),
            tch::Tensor::zeros([1, 2], (tch::Kind::Uint8, tch::Device::Cpu)),
        )],
        json: serde_json::json!({ "epochs": [1] }),
    };
    let err = EvolutionHook::new(EvolutionConfig::default())
        .load_state(bad)
        .unwrap_err();
    assert!(err.to_string().contains("'conv1'"), "{err}");
}

#[test]
fn dead_filters_on_a_network_without_conv_layers_is_an_error_not_a_panic() {
    let text = "name = \"mlp\"\ninput = [3, 224, 224]\n\n[[layers]]\nkind = \"flatten\"\n\n[[layers]]\nkind = \"linear\"\nout_features = 2\n";
    let arch = zftrain_model::arch_file::parse_arch(text, "mlp.toml").unwrap();
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let net =
        zftrain_model::Network::new(&vs.root(), arch, zftrain_model::InitScheme::Pytorch).unwrap();
    let probe = probe(2);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let ctx = context(&net, &probe, dir.path(), &sink, 1);
    let hook = DeadFiltersHook::new(DeadFiltersConfig::default());
    let err = hook.measure(&ctx).unwrap_err().to_string();
    assert!(err.contains("mlp has no conv layers"), "{err}");
}

#[test]
fn evolution_mines_the_training_images_when_asked_and_names_their_absence() {
    use zftrain_hooks::builtin::{EvolutionConfig, EvolutionHook, Maps, MiningSource};
    use zftrain_hooks::{HookContext, TensorProbe};
    let (_vs, net) = network();
    let (probe, other) = (probe(2), probe(3));
    let config = EvolutionConfig {
        // Layer 1's projection of one unit is its filter, whatever the
        // image: layer 3's depends on the image.
        layers: vec![3],
        maps: Maps::Count(2),
        ..EvolutionConfig::default()
    };
    let train = EvolutionConfig {
        source: MiningSource::Train,
        ..config.clone()
    };
    // The montage of one epoch mined from `images`, by `config`.
    let montage = |config: &EvolutionConfig, train_probe: Option<&TensorProbe>| {
        let dir = tempfile::tempdir().unwrap();
        let sink = MemorySink::default();
        let ctx = HookContext {
            train_probe: train_probe.map(|p| p as &dyn zftrain_hooks::ProbeSet),
            ..context(&net, &probe, dir.path(), &sink, 1)
        };
        EvolutionHook::new(config.clone())
            .on_epoch_end(&ctx)
            .map(|_| std::fs::read(dir.path().join("hooks/evolution/conv3.png")).unwrap())
    };
    let from_probe = montage(&config, Some(&other)).unwrap();
    // The training images being the probe's, the montage is the same;
    // other training images give another.
    assert!(montage(&train, Some(&probe)).unwrap() == from_probe);
    assert!(montage(&train, Some(&other)).unwrap() != from_probe);
    // It needs no share of the probe set's pass.
    let (dir, sink) = (tempfile::tempdir().unwrap(), MemorySink::default());
    let ctx = context(&net, &probe, dir.path(), &sink, 1);
    let needs = |c: &EvolutionConfig| {
        EvolutionHook::new(c.clone())
            .probe_needs(Event::EpochEnd, &ctx)
            .unwrap()
            .len()
    };
    assert_eq!((needs(&config), needs(&train)), (1, 0));
    let err = montage(&train, None).unwrap_err().to_string();
    assert!(
        err.contains("'evolution'") && err.contains("training images"),
        "{err}"
    );
}
