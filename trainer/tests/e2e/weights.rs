//! `zftrain init`, `export`, `import`, `predict` on real files.

use std::path::Path;

use zftrain_checkpoints::read_safetensors;

use crate::common::{export, fails, init, interop, ok, s};

fn tensor_bytes(t: &tch::Tensor) -> Vec<u8> {
    let mut b = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
    t.copy_data_u8(&mut b, t.numel());
    b
}

#[test]
fn export_import_export_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init("zfnet", "7", "3", &d.join("a"));
    export(&d.join("a"), &d.join("a.safetensors"));
    ok(&[
        "import",
        "--weights",
        s(&d.join("a.safetensors")),
        "--out",
        s(&d.join("b")),
    ]);
    export(&d.join("b"), &d.join("b.safetensors"));
    let (a, meta_a) = read_safetensors(&d.join("a.safetensors")).unwrap();
    let (b, meta_b) = read_safetensors(&d.join("b.safetensors")).unwrap();
    assert_eq!(meta_a, meta_b);
    assert_eq!(meta_a["zftrain.arch"], "zfnet");
    assert_eq!(a.len(), 16);
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(tensor_bytes(ta) == tensor_bytes(tb), "{na} differs");
    }
}

#[test]
fn init_seeds_are_reproducible_and_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, seed) in [("a", "1"), ("b", "1"), ("c", "2")] {
        init("zfnet-seed", "5", seed, &d.join(name));
    }
    let w = |n: &str| std::fs::read(d.join(n).join("weights.safetensors")).unwrap();
    assert_eq!(w("a"), w("b"));
    assert_ne!(w("a"), w("c"));
}

/// A `torch.save` file (zip or bare pickle) is refused with the way to
/// convert it, never unpickled; the shipped converter makes it importable.
#[test]
fn a_torch_save_file_is_answered_with_how_to_convert_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pth-to-safetensors");
    for (name, extra, kind) in [
        ("zip.pth", None, "a zip archive"),
        ("legacy.pth", Some("legacy"), "a pickle"),
    ] {
        let pth = d.join(name);
        let mut args = vec!["save-random-pth", "alexnet-tv", "3", s(&pth)];
        args.extend(extra);
        interop(&args);
        let out = d.join(format!("{name}.ck"));
        let err = fails(&[
            "import",
            "--arch",
            "alexnet-tv",
            "--weights",
            s(&pth),
            "--out",
            s(&out),
        ]);
        assert!(
            err.contains(s(&pth))
                && err.contains(&format!("torch.save ({kind})"))
                && err.contains("scripts/pth-to-safetensors")
                && err.contains("weights_only=True"),
            "{err}"
        );
        assert!(!out.exists(), "nothing created on failure");
        let converted = d.join(format!("{name}.safetensors"));
        let run = std::process::Command::new(crate::common::python())
            .arg(&script)
            .arg(&pth)
            .arg(&converted)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        ok(&[
            "import",
            "--arch",
            "alexnet-tv",
            "--weights",
            s(&converted),
            "--out",
            s(&out),
        ]);
    }
}

#[test]
fn importing_the_wrong_architecture_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init("alexnet-tv", "3", "0", &d.join("tv"));
    export(&d.join("tv"), &d.join("tv.safetensors"));
    let err = fails(&[
        "import",
        "--arch",
        "alexnet",
        "--weights",
        s(&d.join("tv.safetensors")),
        "--out",
        s(&d.join("x")),
    ]);
    assert!(err.contains("--arch alexnet disagrees"), "{err}");
    // A file saved from PyTorch carries no metadata: the names and shapes decide.
    interop(&[
        "save-random",
        "alexnet-tv",
        "3",
        s(&d.join("plain.safetensors")),
    ]);
    let err = fails(&[
        "import",
        "--arch",
        "alexnet",
        "--weights",
        s(&d.join("plain.safetensors")),
        "--out",
        s(&d.join("x")),
    ]);
    assert!(
        err.contains("missing tensors: classifier.0.bias") && err.contains("unexpected tensors"),
        "{err}"
    );
    assert!(err.contains("features.3.weight"), "{err}");
    let err = fails(&[
        "import",
        "--arch",
        "alexnet-tv",
        "--classes",
        "5",
        "--weights",
        s(&d.join("plain.safetensors")),
        "--out",
        s(&d.join("x")),
    ]);
    assert!(
        err.contains("'classifier.6.weight'")
            && err.contains("[3, 4096]")
            && err.contains("[5, 4096]"),
        "{err}"
    );
    assert!(!d.join("x").exists(), "nothing created on failure");
    // Without --classes, the last layer's shape says 3.
    ok(&[
        "import",
        "--arch",
        "alexnet-tv",
        "--weights",
        s(&d.join("plain.safetensors")),
        "--out",
        s(&d.join("x")),
    ]);
    // An architecture file (1000 outputs in its table) with --classes 3
    // takes the same 3-class file, as the README says --classes does; 5
    // is refused naming the tensor.
    let table =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/archs/alexnet-tv.toml");
    let from_file = |classes: &str, out: &str| {
        crate::common::zftrain(&[
            "import",
            "--arch-file",
            s(&table),
            "--classes",
            classes,
            "--weights",
            s(&d.join("plain.safetensors")),
            "--out",
            s(&d.join(out)),
        ])
    };
    let three = from_file("3", "from-file");
    assert!(
        three.status.success(),
        "{}",
        String::from_utf8_lossy(&three.stderr)
    );
    assert!(String::from_utf8_lossy(&three.stdout).contains("3 classes"));
    let five = from_file("5", "from-file-5");
    let err = String::from_utf8_lossy(&five.stderr);
    assert!(
        !five.status.success() && err.contains("'classifier.6.weight'"),
        "{err}"
    );
}

#[test]
fn predict_reports_top5_for_a_jpeg_and_refuses_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    interop(&["jpeg", s(&d.join("photo.jpg"))]);
    init("zfnet-seed", "5", "0", &d.join("ck"));
    let out = ok(&[
        "predict",
        "--checkpoint",
        s(&d.join("ck")),
        "--image",
        s(&d.join("photo.jpg")),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let top = v[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    let total: f64 = top.iter().map(|g| g["probability"].as_f64().unwrap()).sum();
    assert!(
        (total - 1.0).abs() < 1e-5,
        "5 of 5 classes sum to 1, got {total}"
    );
    assert_eq!(v[0]["logits"].as_array().unwrap().len(), 5);

    std::fs::write(d.join("broken.jpg"), b"\xff\xd8\xff\xe0 truncated").unwrap();
    let err = fails(&[
        "predict",
        "--checkpoint",
        s(&d.join("ck")),
        "--image",
        s(&d.join("broken.jpg")),
    ]);
    assert!(err.contains("broken.jpg"), "{err}");
    let err = fails(&[
        "predict",
        "--checkpoint",
        s(&d.join("nope")),
        "--image",
        s(&d.join("photo.jpg")),
    ]);
    assert!(
        err.contains("nope") && err.contains("manifest.json"),
        "{err}"
    );
}

/// Weights no training produces (a NaN, a negative batch-norm variance)
/// are refused by import, predict and --init-from, naming the tensor;
/// `--allow-nonfinite` loads them for forensics.
#[test]
fn nonfinite_weights_and_negative_variances_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let arch = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/archs/small-convnet.toml");
    ok(&[
        "init",
        "--arch-file",
        s(&arch),
        "--classes",
        "3",
        "--out",
        s(&d.join("ck")),
    ]);
    export(&d.join("ck"), &d.join("w.safetensors"));
    let (tensors, meta) = read_safetensors(&d.join("w.safetensors")).unwrap();
    let corrupt = |out: &str, pick: &dyn Fn(&str) -> bool, value: f64| -> String {
        let mut name = String::new();
        let changed: Vec<(String, tch::Tensor)> = tensors
            .iter()
            .map(|(n, t)| {
                let t = t.copy();
                if name.is_empty() && pick(n) {
                    name = n.clone();
                    let _ = t.flatten(0, -1).get(0).fill_(value);
                }
                (n.clone(), t)
            })
            .collect();
        zftrain_checkpoints::write_safetensors(&d.join(out), &changed, &meta).unwrap();
        name
    };
    let nan = corrupt("nan.safetensors", &|n| n.ends_with(".weight"), f64::NAN);
    let var = corrupt("var.safetensors", &|n| n.ends_with("running_var"), -1.0);
    assert!(!var.is_empty(), "the architecture has a batch norm");
    for (file, name, why) in [
        ("nan.safetensors", &nan, "NaN or infinite"),
        ("var.safetensors", &var, "negative variance"),
    ] {
        let path = d.join(file);
        let err = fails(&[
            "import",
            "--weights",
            s(&path),
            "--out",
            s(&d.join(format!("{file}.ck"))),
        ]);
        assert!(
            err.contains(&format!("tensor '{name}'")) && err.contains(why),
            "{err}"
        );
        assert!(!d.join(format!("{file}.ck")).exists());
        let err = fails(&["predict", "--weights", s(&path), s(&arch)]);
        assert!(err.contains(&format!("tensor '{name}'")), "{err}");
    }
    ok(&[
        "import",
        "--weights",
        s(&d.join("nan.safetensors")),
        "--allow-nonfinite",
        "--out",
        s(&d.join("forensics")),
    ]);
}
