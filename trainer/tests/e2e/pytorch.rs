//! Our weights in PyTorch and PyTorch's in ours: `load_state_dict(strict=True)`
//! works and the logits agree with `zftrain predict` on the same input
//! (within 1e-4 relative), in both directions, for every architecture.

use crate::common::{export, fails, init, interop, ok, predict_json, s};

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
    pytorch_in_ours_with(dir.path(), arch, &["--arch", arch], classes);
}

/// Random PyTorch weights of `arch` (interop.py's name) imported with
/// `flags`, strictly, into the checkpoint `d/ck`; zftrain's logits and
/// probabilities on a JPEG equal PyTorch's.
fn pytorch_in_ours_with(d: &std::path::Path, arch: &str, flags: &[&str], classes: &str) {
    interop(&["jpeg", s(&d.join("photo.jpg"))]);
    interop(&[
        "save-random",
        arch,
        classes,
        s(&d.join("torch.safetensors")),
    ]);
    let (weights, ck) = (d.join("torch.safetensors"), d.join("ck"));
    let mut args = vec!["import"];
    args.extend_from_slice(flags);
    args.extend(["--weights", s(&weights), "--out", s(&ck)]);
    ok(&args);
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

/// VGG16 as torchvision builds it, through the shipped architecture file:
/// the weights load strictly, give torchvision's probabilities, and the
/// Deconvnet projects its first and last conv layers.
#[test]
fn torchvision_vgg16_weights_load_strictly_predict_the_same_and_are_projected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/archs/vgg16.toml");
    pytorch_in_ours_with(d, "vgg16", &["--arch-file", s(&file)], "1000");
    let data = crate::common::synth(d, 1, 1, 96, 80);
    let config = d.join("vis.toml");
    std::fs::write(
        &config,
        "[probe]\nimages = 2\nbatch_size = 2\n\n[[hooks]]\nkind = \"deconv\"\nschedule = { every_epochs = 1 }\nlayers = [1, 13]\nmaps = 2\nk = 1\n",
    )
    .unwrap();
    let out = ok(&[
        "visualize",
        "--checkpoint",
        s(&d.join("ck")),
        "--data",
        s(&data),
        "--config",
        s(&config),
        "--out",
        s(&d.join("vis")),
    ]);
    assert!(out.contains("visualized 1 hooks on 2 images"), "{out}");
    // Named by the file's labels: VGG's conv1_1 ... conv5_3.
    for l in ["conv1_1", "conv5_3"] {
        let grid = d.join(format!("vis/hooks/deconv/epoch-000/{l}.png"));
        assert!(grid.exists(), "{}: {out}", grid.display());
    }
    // A checkpoint of another table is refused by name: VGG11's file on VGG16's weights.
    let vgg11 = file.with_file_name("vgg11.toml");
    let err = fails(&[
        "predict",
        "--checkpoint",
        s(&d.join("ck")),
        "--arch-file",
        s(&vgg11),
        "--image",
        s(&d.join("photo.jpg")),
    ]);
    assert!(err.contains("disagrees") && err.contains("layer"), "{err}");
}

/// A batch-norm network: torchvision's VGG11-BN with trained-like running
/// statistics loads strictly (buffers and the int64 counter included),
/// predicts what torchvision predicts, and its export loads back into
/// torchvision strictly with the same predictions.
#[test]
fn torchvision_vgg11_bn_weights_and_buffers_round_trip_and_predict_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/archs/vgg11-bn.toml");
    pytorch_in_ours_with(d, "vgg11_bn", &["--arch-file", s(&file)], "1000");
    let exported = d.join("ours.safetensors");
    export(&d.join("ck"), &exported);
    let report = interop(&[
        "check",
        "vgg11_bn",
        s(&exported),
        s(&d.join("input.safetensors")),
        s(&d.join("pred.json")),
    ]);
    eprintln!("{report}");
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
    for name in [
        "vgg11", "vgg13", "vgg16", "vgg19", "vgg11-bn", "vgg13-bn", "vgg16-bn", "vgg19-bn",
    ] {
        let file = archs.join(format!("{name}.toml"));
        let ours: serde_json::Value =
            serde_json::from_str(&ok(&["summary", "--arch-file", s(&file), "--json"])).unwrap();
        let theirs: serde_json::Value =
            serde_json::from_str(&interop(&["tv-params", &name.replace('-', "_")])).unwrap();
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

/// `zftrain export --format torchscript` of a fresh network from `flags`
/// (`--arch NAME` or `--arch-file FILE`): `torch.jit.load` alone runs it
/// and gives `zftrain predict`'s logits within 1e-5 relative, for a batch
/// of two and of one; the JSON beside it names the input and classes.
fn torchscript_agrees(flags: &[&str], classes: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    interop(&["jpeg", s(&d.join("photo.jpg"))]);
    let ck = d.join("ck");
    let mut args = vec!["init"];
    args.extend_from_slice(flags);
    args.extend(["--classes", classes, "--seed", "9", "--out", s(&ck)]);
    ok(&args);
    let module = d.join("model.pt");
    let out = ok(&[
        "export",
        "--checkpoint",
        s(&d.join("ck")),
        "--format",
        "torchscript",
        "--out",
        s(&module),
    ]);
    assert!(out.contains("torch.jit.load"), "{out}");
    let about: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("model.pt.json")).unwrap()).unwrap();
    assert_eq!(about["classes"].to_string(), classes);
    assert_eq!(about["format"], "torchscript");
    let photo = d.join("photo.jpg");
    let json = predict_json(
        ["--checkpoint", s(&d.join("ck"))],
        &[&photo, &photo],
        &d.join("input.safetensors"),
    );
    std::fs::write(d.join("pred.json"), json).unwrap();
    let report = interop(&[
        "check-script",
        s(&module),
        s(&d.join("input.safetensors")),
        s(&d.join("pred.json")),
    ]);
    eprintln!("{report}");
}

#[test]
fn torchscript_exports_of_the_builtins_run_in_pytorch_with_the_same_logits() {
    torchscript_agrees(&["--arch", "zfnet"], "10");
    torchscript_agrees(&["--arch", "zfnet-seed"], "5");
}

#[test]
fn torchscript_exports_of_architecture_files_run_in_pytorch_with_the_same_logits() {
    let archs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/archs");
    torchscript_agrees(&["--arch-file", s(&archs.join("alexnet-2gpu.toml"))], "10");
    torchscript_agrees(&["--arch-file", s(&archs.join("vgg11-bn.toml"))], "10");
}
