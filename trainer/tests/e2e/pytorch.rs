//! Our weights in PyTorch and PyTorch's in ours: `load_state_dict(strict=True)`
//! works and the logits agree with `zftrain predict` on the same input
//! (within 1e-4 relative), in both directions, for every architecture.

use crate::common::{export, init, interop, ok, predict_json, s};

/// zftrain makes the weights; PyTorch loads them strictly and agrees.
fn ours_in_pytorch(arch: &str, classes: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    interop(&["jpeg", s(&d.join("photo.jpg"))]);
    init(arch, classes, "5", &d.join("ck"));
    export(&d.join("ck"), &d.join("w.safetensors"));
    let photo = d.join("photo.jpg");
    let json = predict_json(
        ["--weights", s(&d.join("w.safetensors"))],
        &[&photo, &photo],
        &d.join("input.safetensors"),
    );
    std::fs::write(d.join("pred.json"), json).unwrap();
    let report = interop(&[
        "check",
        arch,
        s(&d.join("w.safetensors")),
        s(&d.join("input.safetensors")),
        s(&d.join("pred.json")),
    ]);
    eprintln!("{report}");
}

/// PyTorch makes the weights; zftrain imports them and agrees.
fn pytorch_in_ours(arch: &str, classes: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    interop(&["jpeg", s(&d.join("photo.jpg"))]);
    interop(&[
        "save-random",
        arch,
        classes,
        s(&d.join("torch.safetensors")),
    ]);
    ok(&[
        "import",
        "--arch",
        arch,
        "--weights",
        s(&d.join("torch.safetensors")),
        "--out",
        s(&d.join("ck")),
    ]);
    let photo = d.join("photo.jpg");
    let json = predict_json(
        ["--checkpoint", s(&d.join("ck"))],
        &[&photo],
        &d.join("input.safetensors"),
    );
    std::fs::write(d.join("pred.json"), json).unwrap();
    let report = interop(&[
        "check",
        arch,
        s(&d.join("torch.safetensors")),
        s(&d.join("input.safetensors")),
        s(&d.join("pred.json")),
    ]);
    eprintln!("{report}");
}

#[test]
fn zfnet_seed_weights_load_into_the_seed_class() {
    ours_in_pytorch("zfnet-seed", "5");
}

#[test]
fn alexnet_tv_weights_load_into_torchvision() {
    ours_in_pytorch("alexnet-tv", "1000");
}

#[test]
fn zfnet_and_alexnet_with_lrn_agree_with_pytorch() {
    ours_in_pytorch("zfnet", "10");
    ours_in_pytorch("alexnet", "10");
}

#[test]
fn torchvision_weights_import_and_predict_the_same() {
    pytorch_in_ours("alexnet-tv", "1000");
}

#[test]
fn seed_class_weights_import_and_predict_the_same() {
    pytorch_in_ours("zfnet-seed", "5");
}

#[test]
fn eval_preprocessing_matches_torchvision_transforms() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    interop(&["jpeg", s(&d.join("photo.jpg"))]);
    init("zfnet-seed", "5", "0", &d.join("ck"));
    ok(&[
        "predict",
        "--checkpoint",
        s(&d.join("ck")),
        "--image",
        s(&d.join("photo.jpg")),
        "--save-input",
        s(&d.join("input.safetensors")),
    ]);
    eprintln!(
        "{}",
        interop(&[
            "preprocess",
            s(&d.join("photo.jpg")),
            s(&d.join("input.safetensors"))
        ])
    );
}

#[test]
fn the_shipped_vgg_files_have_torchvisions_modules_and_parameter_counts() {
    let archs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/archs");
    for name in ["vgg11", "vgg13", "vgg16", "vgg19"] {
        let file = archs.join(format!("{name}.toml"));
        let ours: serde_json::Value =
            serde_json::from_str(&ok(&["summary", "--arch-file", s(&file), "--json"])).unwrap();
        let theirs: serde_json::Value =
            serde_json::from_str(&interop(&["tv-params", name])).unwrap();
        assert_eq!(ours["total_params"], theirs["total"], "{name}");
        let mut modules = serde_json::Map::new();
        for row in ours["rows"].as_array().unwrap() {
            if row["params"].as_i64().unwrap_or(0) > 0 {
                modules.insert(
                    row["module"].as_str().unwrap().to_string(),
                    row["params"].clone(),
                );
            }
        }
        assert_eq!(
            serde_json::Value::Object(modules),
            theirs["modules"],
            "{name}"
        );
    }
}
