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
