//! The analysis hooks (invariance, occlusion, correspondence) on a real
//! (random) ZFNet and probe set: their files, their summaries, and their
//! errors for probe images that do not exist and incomplete settings.

use zftrain_hooks::{Dispatch, Event, HookSpec, Hooks, MemorySink, TensorProbe};
use zftrain_model::Network;

use crate::common::{context, network, probe};

/// Builds the hooks of `specs` (JSON) and sends them the end of epoch 1.
fn run_epoch_end(
    specs: serde_json::Value,
    net: &Network,
    probe: &TensorProbe,
    dir: &std::path::Path,
    sink: &MemorySink,
) -> Dispatch {
    let mut hooks = Hooks::new();
    for spec in specs.as_array().unwrap() {
        let spec: HookSpec = serde_json::from_value(spec.clone()).unwrap();
        hooks.register(spec.build().unwrap()).unwrap();
    }
    hooks
        .dispatch(Event::EpochEnd, &context(net, probe, dir, sink, 1))
        .unwrap()
}

#[test]
fn the_analysis_hooks_write_figures_tables_and_summaries() {
    let (_vs, net) = network();
    let probe = probe(4);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let specs = serde_json::json!([
        { "kind": "invariance", "images": [0, 3], "translations": [0, 30], "scales": [1.0, 1.5], "rotations": [0, 45] },
        { "kind": "occlusion", "images": [1], "size": 112, "stride": 56 },
        { "kind": "correspondence", "images": [0, 1, 2], "random_draws": 1,
          "parts": { "centre": [[80, 80, 60, 60], [80, 80, 60, 60], [80, 80, 60, 60]] },
          "objects": [[40, 40, 140, 140], [40, 40, 140, 140], [40, 40, 140, 140]] }
    ]);
    let d = run_epoch_end(specs, &net, &probe, dir.path(), &sink);
    assert!(d.failures.is_empty(), "{:?}", d.failures);
    let hooks_dir = dir.path().join("hooks");
    for file in [
        "invariance/epoch-001/invariance.png",
        "invariance/epoch-001/invariance.csv",
        "occlusion/epoch-001/occlusion-1.png",
        "occlusion/epoch-001/occlusion-1.csv",
        "correspondence/epoch-001/correspondence.csv",
        "correspondence/epoch-001/correspondence.txt",
    ] {
        assert!(hooks_dir.join(file).is_file(), "{file}");
    }
    // 2 images x 6 transformations; 3 x 3 positions.
    let csv =
        std::fs::read_to_string(hooks_dir.join("invariance/epoch-001/invariance.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12);
    let csv =
        std::fs::read_to_string(hooks_dir.join("occlusion/epoch-001/occlusion-1.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 9);
    let tags = sink.tags();
    for tag in [
        "analysis/invariance",
        "invariance/translate_y/layer7_mean",
        "analysis/occlusion/image1",
        "occlusion/image1/min_probability",
        "analysis/correspondence",
        "correspondence/centre/layer5",
        "correspondence/random/layer7",
    ] {
        assert!(tags.contains(&tag.to_string()), "{tag} in {tags:?}");
    }
}

#[test]
fn missing_probe_images_and_incomplete_parts_are_named() {
    let (_vs, net) = network();
    let probe = probe(2);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let specs = serde_json::json!([{ "kind": "occlusion", "images": [5] }]);
    let d = run_epoch_end(specs, &net, &probe, dir.path(), &sink);
    let e = d.failures[0].to_string();
    assert!(
        e.contains("'occlusion'") && e.contains("probe image 5 does not exist"),
        "{e}"
    );
    let spec: HookSpec =
        serde_json::from_value(serde_json::json!({ "kind": "correspondence", "images": [0] }))
            .unwrap();
    let e = spec.build().err().unwrap().to_string();
    assert!(e.contains("two or more probe images"), "{e}");
    // Object boxes are checked when the run starts, not at the first epoch.
    let spec: HookSpec = serde_json::from_value(serde_json::json!({
        "kind": "correspondence", "images": [0, 1],
        "parts": { "eye": [[0, 0, 10, 10], [0, 0, 10, 10]] },
        "objects": [[0, 0, 50, 50]]
    }))
    .unwrap();
    let e = spec.build().err().unwrap().to_string();
    assert!(e.contains("objects gives 1 boxes for 2 images"), "{e}");
}

/// Column `name` of every row of a CSV file.
fn column(path: &std::path::Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| l.split(',').nth(at).unwrap().to_string())
        .collect()
}

#[test]
fn occlusion_and_invariance_follow_the_true_label_with_the_prediction_beside_it() {
    let (_vs, net) = network();
    let unlabelled = probe(2);
    // The network's own top class of each image, and a label that is not it.
    let probs =
        tch::no_grad(|| net.forward(&unlabelled.images, false)).softmax(-1, tch::Kind::Float);
    let predicted: Vec<i64> = Vec::try_from(probs.argmax(-1, false)).unwrap();
    let labels: Vec<i64> = predicted.iter().map(|p| (p + 3) % 10).collect();
    let specs = serde_json::json!([
        { "kind": "invariance", "images": [0, 1], "translations": [0, 30], "scales": [1.0], "rotations": [0] },
        { "kind": "occlusion", "images": [1], "size": 112, "stride": 56 }
    ]);
    for (probe, follows) in [
        (
            TensorProbe {
                images: unlabelled.images.shallow_clone(),
                ..probe(0)
            },
            &predicted,
        ),
        (
            TensorProbe {
                images: unlabelled.images.shallow_clone(),
                labels: Some(labels.clone()),
                ..probe(0)
            },
            &labels,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sink = MemorySink::default();
        let d = run_epoch_end(specs.clone(), &net, &probe, dir.path(), &sink);
        assert!(d.failures.is_empty(), "{:?}", d.failures);
        let hooks = dir.path().join("hooks");
        let occluded = hooks.join("occlusion/epoch-001/occlusion-1.csv");
        assert!(column(&occluded, "class")
            .iter()
            .all(|c| *c == follows[1].to_string()));
        assert!(column(&occluded, "predicted")
            .iter()
            .all(|c| *c == predicted[1].to_string()));
        // The identity rows' probability is the followed class's on the
        // original image.
        let invariance = hooks.join("invariance/epoch-001/invariance.csv");
        let (images, classes) = (column(&invariance, "image"), column(&invariance, "class"));
        let (amounts, p) = (
            column(&invariance, "amount"),
            column(&invariance, "probability"),
        );
        for k in 0..images.len() {
            let i: usize = images[k].parse().unwrap();
            assert_eq!(classes[k], follows[i].to_string(), "row {k}");
            if amounts[k] == "0" {
                let want = probs.double_value(&[i as i64, follows[i]]);
                let got: f64 = p[k].parse().unwrap();
                assert!((got - want).abs() < 1e-5, "image {i}: {got} vs {want}");
            }
        }
    }
}
