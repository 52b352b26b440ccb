//! Hostile input from users and files: image folders full of traps
//! (truncated, empty, mislabelled, decompression bombs, CMYK, grey, 16-bit,
//! odd names, link loops) train without stopping, with every refused file
//! named; the packer does the same.

use std::path::Path;
use std::process::Command;

use crate::common::{ok, python, s};
use crate::train::{quick, tiny_data};

/// Writes the traps into `class` (an ImageFolder class folder that already
/// holds good JPEGs); returns (names that must decode, names that must be
/// refused).
fn plant_traps(class: &Path) -> (Vec<&'static str>, Vec<&'static str>) {
    let good = std::fs::read(class.join("00000.jpg")).unwrap();
    // PIL writes the formats a camera or a scanner would: CMYK and grey
    // JPEG, a 16-bit PNG; and a PNG that declares 100,000 x 100,000 pixels
    // (40 GB decoded) in a few bytes.
    let script = r#"
import struct, sys, zlib
from PIL import Image
d = sys.argv[1]
Image.new("CMYK", (64, 48), (10, 200, 30, 5)).save(d + "/cmyk.jpg", quality=90)
Image.new("L", (64, 48), 120).save(d + "/grey.jpg")
Image.new("I;16", (64, 48), 40000).save(d + "/sixteen.png")
Image.new("RGB", (64, 48), (0, 90, 200)).save(d + "/png-named.jpg", format="PNG")
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
idat = zlib.compress(b"\0" * 64)
open(d + "/bomb.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
"#;
    let out = Command::new(python())
        .args(["-c", script, s(class)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(class.join("empty.jpg"), b"").unwrap();
    std::fs::write(class.join("truncated.jpg"), &good[..good.len() / 3]).unwrap();
    for name in ["with space.jpg", "ünïcödé.jpg", "new\nline.jpg"] {
        std::fs::write(class.join(name), &good).unwrap();
    }
    // A folder link back to its parent (a loop) and a file link to itself.
    std::os::unix::fs::symlink(class, class.join("loop")).unwrap();
    std::os::unix::fs::symlink(class.join("self.jpg"), class.join("self.jpg")).unwrap();
    (
        vec![
            "cmyk.jpg",
            "grey.jpg",
            "sixteen.png",
            "png-named.jpg",
            "with space.jpg",
            "ünïcödé.jpg",
            "line.jpg",
        ],
        vec!["bomb.png", "empty.jpg", "self.jpg"],
    )
}

#[test]
fn hostile_images_are_decoded_or_refused_by_name_and_training_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let (decode, refuse) = plant_traps(&data.join("train/00-disc"));
    let mut args = quick(dir.path(), &data, "hostile", "zfnet-seed", "1");
    let at = args.iter().position(|a| a == "--batch-size").unwrap();
    args[at + 1] = "8".into();
    args.extend(
        [
            "--set",
            "train.max_steps_per_epoch=0",
            "--set",
            "data.max_pixels=1000000",
        ]
        .map(String::from),
    );
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let run = dir.path().join("runs/hostile");
    let tb = crate::common::tensorboard(&run);
    let skipped: String = tb["text"]["data/skipped_images"]
        .as_array()
        .expect("skipped images reported to TensorBoard")
        .iter()
        .map(|e| e[1].as_str().unwrap_or_default().to_string())
        .collect();
    for name in &refuse {
        assert!(skipped.contains(name), "{name} not reported: {skipped}");
    }
    assert!(
        skipped.contains("100000x100000 pixels exceed the limit of 1000000"),
        "{skipped}"
    );
    for name in &decode {
        assert!(!skipped.contains(name), "{name} was refused: {skipped}");
    }
    // The packer reads the same folder: it packs what decodes and names
    // the rest.
    let out = ok(&[
        "data",
        "pack",
        "--src",
        s(&data.join("train")),
        "--out",
        s(&dir.path().join("train.zfpack")),
    ]);
    assert!(out.contains("left out"), "{out}");
    println!(
        "reliability: hostile images: {} decoded, {} refused by name, training and packing went on",
        decode.len(),
        refuse.len()
    );
}

#[test]
fn foreign_files_in_a_run_directory_are_left_alone_by_resume_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let train = |epochs: &str, resume: bool| {
        let mut a = quick(dir.path(), &data, "own", "zfnet-seed", epochs);
        a.extend(["--set", "checkpoint.keep_last=1"].map(String::from));
        if resume {
            a.extend([
                "--resume".to_string(),
                s(&dir.path().join("runs/own")).to_string(),
            ]);
        }
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    train("1", false);
    let run = dir.path().join("runs/own");
    // A user's notes, a copy of a checkpoint's name that is no checkpoint,
    // a file among the checkpoints, a hidden file, a picture beside the hooks.
    let foreign = [
        run.join("notes.txt"),
        run.join("checkpoints/README"),
        run.join("checkpoints/.keep"),
        run.join("checkpoints/step-000000000/mine.txt"),
        run.join("analysis by hand/figure.png"),
    ];
    for (i, f) in foreign.iter().enumerate() {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, format!("foreign {i}")).unwrap();
    }
    let out = train("3", true);
    assert!(out.contains("resumed from"), "{out}");
    for (i, f) in foreign.iter().enumerate() {
        assert_eq!(
            std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())),
            format!("foreign {i}")
        );
    }
    // Pruning kept one checkpoint of its own (plus the best), no more.
    let own = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            p.join("manifest.json").exists() && !p.is_symlink()
        })
        .count();
    assert!((1..=2).contains(&own), "{own} checkpoints kept");
}
