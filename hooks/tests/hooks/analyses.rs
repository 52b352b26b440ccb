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
          "parts": { "centre": [[80, 80, 60, 60], [80, 80, 60, 60], [80, 80, 60, 60]] } }
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
}
