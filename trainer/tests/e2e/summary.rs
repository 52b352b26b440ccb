//! `zftrain summary`.

use crate::common::{fails, ok};

#[test]
fn seed_summary_prints_the_seeds_numbers() {
    let out = ok(&["summary", "--arch", "zfnet-seed", "--classes", "5"]);
    for needle in [
        "[-1, 96, 110, 110]",
        "14,208",
        "614,656",
        "885,120",
        "1,327,488",
        "884,992",
        "37,752,832",
        "16,781,312",
        "20,485",
        "[-1, 256, 6, 6]",
        "Total params: 58,281,093",
        "Params size (MB): 222.32",
        "Forward/backward pass size (MB): 11.57",
        "Total mult-adds (G): 1.16",
        "reports 1.22 G",
        "139 / 16",
    ] {
        assert!(out.contains(needle), "missing {needle:?}:\n{out}");
    }
}

#[test]
fn torchvision_alexnet_has_torchvisions_parameter_count() {
    let out = ok(&["summary", "--arch", "alexnet-tv"]);
    assert!(out.contains("Total params: 61,100,840"), "{out}");
}

#[test]
fn every_arch_summarizes_and_json_is_valid() {
    for arch in ["zfnet-seed", "zfnet", "alexnet", "alexnet-tv"] {
        let out = ok(&["summary", "--arch", arch, "--classes", "10", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["rows"].as_array().unwrap().last().unwrap()["output"],
            serde_json::json!([-1, 10]),
            "{arch}"
        );
    }
}

#[test]
fn bad_arch_and_classes_are_clear_errors() {
    let err = fails(&["summary", "--arch", "vgg99"]);
    assert!(err.contains("vgg99") && err.contains("zfnet-seed"), "{err}");
    let err = fails(&["summary", "--arch", "zfnet", "--classes", "0"]);
    assert!(err.contains("classes") && err.contains('0'), "{err}");
    let err = fails(&["summary"]);
    assert!(err.contains("--arch"), "{err}");
}

#[test]
fn an_architecture_file_summarizes_like_its_built_in_and_bad_files_are_named() {
    let archs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/archs");
    for arch in ["zfnet-seed", "zfnet", "alexnet", "alexnet-tv"] {
        let file = archs.join(format!("{arch}.toml"));
        let from_file = ok(&[
            "summary",
            "--arch-file",
            file.to_str().unwrap(),
            "--classes",
            "7",
        ]);
        let built_in = ok(&["summary", "--arch", arch, "--classes", "7"]);
        assert_eq!(from_file, built_in, "{arch}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("mine.toml");
    std::fs::write(
        &bad,
        "name = \"mine\"\ninput = [3, 32, 32]\n[[layers]]\nkind = \"conv\"\nout_channels = 8\nkernel = 3\nstrides = 2\n",
    )
    .unwrap();
    let err = fails(&["summary", "--arch-file", bad.to_str().unwrap()]);
    assert!(
        err.contains("mine.toml") && err.contains("layer 1 (conv)") && err.contains("'strides'"),
        "{err}"
    );
    let err = fails(&[
        "summary",
        "--arch-file",
        bad.to_str().unwrap(),
        "--arch",
        "zfnet",
    ]);
    assert!(err.contains("cannot be used with"), "{err}");
}
