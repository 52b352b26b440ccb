//! The ImageNet rehearsal (`bench/imagenet-shaped`), small: an
//! ImageNet-shaped tree of 100 class folders (hard links to real JPEG
//! files) trained with the shipped `configs/zfnet-imagenet.toml` and all of
//! its hooks on the whole validation set, two epochs of two steps; the
//! script's figures and the run's outputs are checked.

use std::path::Path;
use std::process::Command;

#[test]
fn the_imagenet_rehearsal_runs_the_shipped_config_with_every_hook_and_reports_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let keep = dir.path().join("run");
    let out = Command::new("bash")
        .arg(root.join("bench/imagenet-shaped"))
        .args([
            "--classes",
            "100",
            "--train-per-class",
            "10",
            "--val-per-class",
            "1",
        ])
        .args([
            "--steps",
            "2",
            "--epochs",
            "2",
            "--batch",
            "8",
            "--workers",
            "2",
        ])
        .arg("--keep")
        .arg(&keep)
        .env("ZFTRAIN_BIN", env!("CARGO_BIN_EXE_zftrain"))
        .env("ZFTRAIN_CACHE", dir.path().join("cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figure = |label: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no '{label}' line:\n{text}"));
        line[label.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no figure in '{line}'"))
    };
    assert!(figure("time to the first step (s)") > 0.0);
    assert!(figure("peak RSS (MiB)") > 100.0);
    for epoch in [1, 2] {
        assert!(text.contains(&format!("validation {epoch} ")), "{text}");
        // One pass over the validation set for the four hooks, then each
        // hook's own part (dead filters: nothing left to do, 0.0 s).
        assert!(figure(&format!("shared probe pass, epoch {epoch} (s)")) > 0.0);
        for hook in ["deconv", "evolution", "dead_filters", "aliasing", "lrn"] {
            assert!(figure(&format!("hook {hook}, epoch {epoch} (s)")) >= 0.0);
        }
        // The grids of every conv layer, over the whole validation set.
        let grids = keep.join(format!("runs/rehearsal/hooks/deconv/epoch-{epoch:03}"));
        assert!(figure(&format!("disk: hooks/deconv/epoch-{epoch:03} (MB)")) > 1.0);
        for layer in 1..=5 {
            assert!(grids.join(format!("conv{layer}.png")).is_file(), "{text}");
        }
    }
    assert!(
        text.contains("100/100 images in"),
        "the whole validation set:\n{text}"
    );
    assert!(figure("disk: the run in all (MB)") > 100.0);
}
