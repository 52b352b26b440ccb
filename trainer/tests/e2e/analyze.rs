//! `zftrain analyze`: the three analyses on real JPEG files and a real
//! checkpoint, with answers known in advance (no transformation, no distance;
//! identical images, no disagreement), and clear errors for bad input.

use std::path::Path;

use crate::common::{fails, init, ok, s, synth};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_three_analyses_write_their_numbers_and_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 1, 3, 300, 240);
    let ck = dir.path().join("ck");
    init("zfnet-seed", "2", "4", &ck);
    let img = |c: &str, i: usize| data.join(format!("val/{c}/{i:05}.jpg"));
    let (a, b) = (img("00-disc", 0), img("01-square", 1));
    let out = dir.path().join("inv");
    let printed = ok(&[
        "analyze",
        "invariance",
        "--checkpoint",
        s(&ck),
        "--image",
        s(&a),
        "--image",
        s(&b),
        "--label",
        "0",
        "--label",
        "1",
        "--translations",
        "-20:20:20",
        "--scales",
        "1,1.5",
        "--rotations",
        "0,90",
        "--log-every-s",
        "0",
        "--out",
        s(&out),
    ]);
    assert!(
        printed.contains("2 images x 7 transformations"),
        "{printed}"
    );
    // Progress after each image (every 0 s), then the time taken.
    assert!(printed.contains("invariance: 7/14 images, "), "{printed}");
    assert!(
        printed.contains("invariance: 14/14 images in "),
        "{printed}"
    );
    let csv = read(&out.join("invariance.csv"));
    assert_eq!(csv.lines().count(), 1 + 2 * 7);
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let identity = matches!(
            (f[2], f[3]),
            ("translate_y", "0") | ("scale", "1") | ("rotate", "0")
        );
        let (d1, d7): (f64, f64) = (f[4].parse().unwrap(), f[5].parse().unwrap());
        if identity {
            assert!(d1 < 1e-5 && d7 < 1e-5, "{line}");
        } else {
            assert!(d1 > 1e-3, "{line}");
        }
    }
    let tb = crate::common::tensorboard(&out);
    assert!(
        tb["scalars"]["invariance/rotate/image1/layer7"].is_array(),
        "{tb}"
    );
    // The hook's tags too, each described.
    assert!(tb["images"]["analysis/invariance"].is_array(), "{tb}");
    assert!(
        tb["scalars"]["invariance/scale/layer7_mean"].is_array(),
        "{tb}"
    );
    crate::common::assert_described(&tb);

    let out = dir.path().join("occ");
    let printed = ok(&[
        "analyze",
        "occlusion",
        "--checkpoint",
        s(&ck),
        "--image",
        s(&a),
        "--size",
        "56",
        "--stride",
        "56",
        "--out",
        s(&out),
    ]);
    assert!(printed.contains("4x4 positions"), "{printed}");
    assert!(printed.contains("occlusion: 16/16 images in "), "{printed}");
    assert_eq!(read(&out.join("occlusion-0.csv")).lines().count(), 1 + 16);
    let png = image::open(out.join("occlusion-0.png")).unwrap();
    // Six panels under title bands; the heat maps with colour bars.
    assert_eq!(
        (png.width(), png.height()),
        (5 * 224 + 200 + 5 * 6, 24 + 224 + 34)
    );
    let tb = crate::common::tensorboard(&out);
    assert!(tb["images"]["analysis/occlusion/image0"].is_array(), "{tb}");
    assert!(
        tb["scalars"]["occlusion/image0/min_probability"].is_array(),
        "{tb}"
    );
    crate::common::assert_described(&tb);
    let summary: serde_json::Value =
        serde_json::from_str(&read(&out.join("occlusion.json"))).unwrap();
    assert_eq!(summary[0]["positions"], serde_json::json!([4, 4]));
    // The same on imported weights (a plain safetensors file with PyTorch names).
    let weights = dir.path().join("w.safetensors");
    crate::common::export(&ck, &weights);
    let out2 = dir.path().join("occ-weights");
    ok(&[
        "analyze",
        "occlusion",
        "--weights",
        s(&weights),
        "--arch",
        "zfnet-seed",
        "--classes",
        "2",
        "--image",
        s(&a),
        "--size",
        "56",
        "--stride",
        "56",
        "--out",
        s(&out2),
    ]);
    assert_eq!(
        read(&out2.join("occlusion-0.csv")),
        read(&out.join("occlusion-0.csv"))
    );

    // The same image three times: occluding the same place changes the
    // features identically (0); random places do not.
    let parts = dir.path().join("parts.json");
    let name = a.file_name().unwrap().to_str().unwrap();
    std::fs::copy(&a, dir.path().join(name)).unwrap();
    std::fs::write(
        &parts,
        format!(r#"{{"images": ["{name}", "{name}", "{name}"], "parts": {{"eye": [[90, 110, 50, 50], [90, 110, 50, 50], [90, 110, 50, 50]]}}}}"#),
    )
    .unwrap();
    let out = dir.path().join("corr");
    let printed = ok(&[
        "analyze",
        "correspondence",
        "--checkpoint",
        s(&ck),
        "--parts",
        s(&parts),
        "--out",
        s(&out),
    ]);
    let csv = read(&out.join("correspondence.csv"));
    assert!(
        csv.contains("eye,5,0.000000,0.000000,6") && csv.contains("eye,7,0.000000,0.000000,6"),
        "{csv}"
    );
    assert!(printed.contains("random"), "{printed}");
    // The distance with ties at zero left out, in the file and printed.
    assert_eq!(
        csv.lines().next(),
        Some("part,layer,mean,std,pairs,mean_untied,std_untied,untied_pairs")
    );
    assert!(printed.contains("ties at zero left out"), "{printed}");
    // 3 images for the part and for each of the 5 random draws.
    assert!(
        printed.contains("correspondence: 18/18 images in "),
        "{printed}"
    );
    let tb = crate::common::tensorboard(&out);
    assert!(tb["text"]["analysis/correspondence"].is_array(), "{tb}");
    assert_eq!(
        tb["scalars"]["correspondence/eye/layer5"][0][1], 0.0,
        "{tb}"
    );
    crate::common::assert_described(&tb);
    // Random boxes drawn inside an object box no larger than the part can
    // only fall on the part: the random row reads 0 too.
    std::fs::write(
        &parts,
        format!(r#"{{"images": ["{name}", "{name}", "{name}"], "parts": {{"eye": [[90, 110, 50, 50], [90, 110, 50, 50], [90, 110, 50, 50]]}}, "objects": [[90, 110, 50, 50], [90, 110, 50, 50], [90, 110, 50, 50]]}}"#),
    )
    .unwrap();
    let inside = dir.path().join("corr-objects");
    ok(&[
        "analyze",
        "correspondence",
        "--checkpoint",
        s(&ck),
        "--parts",
        s(&parts),
        "--out",
        s(&inside),
    ]);
    let csv = read(&inside.join("correspondence.csv"));
    assert!(csv.contains("random,5,0.000000,0.000000,30"), "{csv}");
    let anywhere = read(&out.join("correspondence.csv"));
    assert!(!anywhere.contains("random,5,0.000000,"), "{anywhere}");
}

#[test]
fn bad_analysis_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 1, 1, 300, 240);
    let ck = dir.path().join("ck");
    init("zfnet-seed", "2", "4", &ck);
    let a = data.join("val/00-disc/00000.jpg");
    let out = dir.path().join("o");
    let err = fails(&[
        "analyze",
        "occlusion",
        "--checkpoint",
        s(&ck),
        "--image",
        s(&a),
        "--label",
        "cow",
        "--out",
        s(&out),
    ]);
    assert!(err.contains("label 'cow'"), "{err}");
    let parts = dir.path().join("parts.json");
    let name = s(&a);
    let write = |json: String| std::fs::write(&parts, json).unwrap();
    let run = || {
        fails(&[
            "analyze",
            "correspondence",
            "--checkpoint",
            s(&ck),
            "--parts",
            s(&parts),
            "--out",
            s(&out),
        ])
    };
    write(format!(
        r#"{{"images": ["{name}"], "parts": {{"eye": [[0, 0, 10, 10]]}}}}"#
    ));
    assert!(run().contains("at least two images"));
    write(format!(
        r#"{{"images": ["{name}", "missing.jpg"], "parts": {{"eye": [[0, 0, 10, 10], [0, 0, 10, 10]]}}}}"#
    ));
    let err = run();
    assert!(
        err.contains("missing.jpg") && err.contains("does not exist"),
        "{err}"
    );
    // The image is 300x240: x = 0 falls outside the centre crop.
    write(format!(
        r#"{{"images": ["{name}", "{name}"], "parts": {{"eye": [[100, 0, 10, 10], [100, 100, 10, 10]]}}}}"#
    ));
    let err = run();
    assert!(
        err.contains("part 'eye'") && err.contains("outside the centre 224x224 crop"),
        "{err}"
    );
    // Object boxes: one per image, each large enough for the random box.
    let eye = "[[100, 100, 20, 20], [100, 100, 20, 20]]";
    write(format!(
        r#"{{"images": ["{name}", "{name}"], "parts": {{"eye": {eye}}}, "objects": [[100, 100, 40, 40]]}}"#
    ));
    let err = run();
    assert!(err.contains("1 object boxes for 2 images"), "{err}");
    write(format!(
        r#"{{"images": ["{name}", "{name}"], "parts": {{"eye": {eye}}}, "objects": [[100, 100, 40, 40], [100, 100, 5, 40]]}}"#
    ));
    let err = run();
    assert!(
        err.contains("image 1") && err.contains("object box"),
        "{err}"
    );
}

/// `analyze architecture` on AlexNet (stride 4) and ZFNet (stride 2):
/// a table row per conv layer of each with every measure beside its null;
/// fresh (random) weights read as noise: layer 1's aliasing at its
/// shuffled-taps null, nearly every layer-1 filter structureless, coverage
/// near white's 1; the figure with both networks, and a missing checkpoint
/// named.
#[test]
fn the_architecture_analysis_tables_both_networks_layer_by_layer() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 1, 4, 256, 192);
    let (a, b) = (dir.path().join("alexnet"), dir.path().join("zfnet"));
    init("alexnet", "2", "4", &a);
    init("zfnet", "2", "4", &b);
    let out = dir.path().join("arch");
    let printed = ok(&[
        "analyze",
        "architecture",
        "--a",
        s(&a),
        "--b",
        s(&b),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--probe-images",
        "8",
        "--maps",
        "4",
    ]);
    assert!(printed.contains("| network | layer |"), "{printed}");
    let csv = read(&out.join("architecture.csv"));
    let header = zftrain::commands::architecture::CSV_HEADER;
    assert_eq!(csv.lines().next().unwrap(), header);
    let names: Vec<&str> = header.split(',').skip(1).collect();
    // Each row: the quoted network name, then the other columns by name.
    let rows: Vec<std::collections::HashMap<&str, &str>> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let (_, rest) = l[1..].split_once("\",").expect("a quoted network name");
            names.iter().copied().zip(rest.split(',')).collect()
        })
        .collect();
    assert_eq!(rows.len(), 10, "{csv}");
    let num = |r: &std::collections::HashMap<&str, &str>, k: &str| -> f64 {
        r[k].parse()
            .unwrap_or_else(|_| panic!("{k} = {:?}: {csv}", r[k]))
    };
    let conv1: Vec<_> = rows.iter().filter(|r| r["layer"] == "conv1").collect();
    assert_eq!(conv1.len(), 2);
    assert_eq!((conv1[0]["stride"], conv1[1]["stride"]), ("4", "2"));
    for r in &conv1 {
        let (a, null) = (num(r, "aliasing"), num(r, "aliasing_null"));
        assert!(
            (a - null).abs() < 0.05,
            "random filters at their null: {a} {null}: {csv}"
        );
        assert!(num(r, "structureless") >= 0.9 * num(r, "filters"), "{csv}");
        for band in ["coverage_low", "coverage_mid", "coverage_high"] {
            assert!((num(r, band) - 1.0).abs() < 0.25, "{band}: {csv}");
        }
        assert_eq!(num(r, "dead"), 0.0, "{csv}");
        assert!(num(r, "dominance") >= 1.0, "{csv}");
    }
    let conv2: Vec<_> = rows.iter().filter(|r| r["layer"] == "conv2").collect();
    assert!(
        conv2
            .iter()
            .all(|r| num(r, "grid") >= 0.0 && num(r, "grid_null") >= 0.0),
        "a grid and its null for layer 2: {csv}"
    );
    assert!(rows
        .iter()
        .filter(|r| r["layer"] != "conv1")
        .all(|r| r["coverage_low"].is_empty()));
    let png = image::open(out.join("architecture.png")).unwrap();
    assert!(png.height() > 2 * 300, "both networks: {}", png.height());
    let err = fails(&[
        "analyze",
        "architecture",
        "--a",
        s(&dir.path().join("nope")),
        "--data",
        s(&data),
        "--out",
        s(&out),
    ]);
    assert!(err.contains("nope"), "{err}");
}
