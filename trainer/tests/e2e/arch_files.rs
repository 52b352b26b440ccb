//! Architecture files end to end: a convnet written only in TOML trains on
//! the demo-style data, gets the Deconvnet grids, dead-filter counts and
//! aliasing metrics, and its checkpoints carry the table, so resuming,
//! exporting and visualizing need the file no more.

use std::path::{Path, PathBuf};

use crate::common::{fails, ok, s};
use crate::hooks::hooks_config;
use crate::train::{quick, tiny_data};

/// The example architecture shipped for users (10 classes as written).
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/archs/small-convnet.toml")
}

const HOOKS: &str = r#"
[[hooks]]
kind = "deconv"
schedule = { every_epochs = 1 }
layers = [1, 4]
maps = 2
k = 2

[[hooks]]
kind = "dead_filters"
schedule = { every_epochs = 1 }

[[hooks]]
kind = "aliasing"
schedule = { every_epochs = 1 }
"#;

/// `quick` flags with `--arch-file file` in place of `--arch`.
fn train_args(dir: &Path, data: &Path, file: &Path, config: &str) -> Vec<String> {
    let mut args = quick(dir, data, "mine", "zfnet", "1");
    let at = args.iter().position(|a| a == "--arch").unwrap();
    args.splice(at..at + 2, ["--arch-file".to_string(), s(file).to_string()]);
    crate::hooks::with_config(args, config)
}

#[test]
fn a_convnet_written_in_toml_trains_and_is_looked_inside_without_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    // The user's own copy, removed after the first epoch.
    let file = dir.path().join("mine.toml");
    std::fs::copy(example(), &file).unwrap();
    let config = hooks_config(dir.path(), HOOKS);
    // Two replicas: the batch norms' running statistics are shared after each step.
    let mut args = train_args(dir.path(), &data, &file, &config);
    args.extend(["--cpu-replicas".to_string(), "2".to_string()]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let run = dir.path().join("runs/mine");
    for l in [1, 4] {
        let grid = run.join(format!("hooks/deconv/epoch-001/conv{l}.png"));
        assert!(grid.exists(), "{}", grid.display());
    }
    let tb = crate::common::tensorboard(&run);
    for tag in ["deconv/conv1/projections", "deconv/conv4/patches"] {
        assert!(tb["images"][tag].is_array(), "no {tag}: {tb}");
    }
    for tag in ["filters/conv1/dead", "filters/conv4/dead"] {
        let dead = tb["scalars"][tag]
            .as_array()
            .unwrap_or_else(|| panic!("no {tag}"));
        let epoch_end = tb["scalars"]["val/top1"][0][0].as_i64();
        assert_eq!(dead[0][0].as_i64(), epoch_end, "{tag} at epoch 1's end");
    }
    assert!(
        tb["histograms"]["aliasing/conv1/aliasing_per_filter"].is_array(),
        "{tb}"
    );
    // The run keeps the table it trained, with the data's 2 classes.
    let kept = std::fs::read_to_string(run.join("arch.toml")).unwrap();
    assert!(kept.contains("name = \"small-convnet\""), "{kept}");
    assert!(kept.contains("out_features = 2"), "{kept}");
    assert!(kept.contains("kind = \"batch_norm\""), "{kept}");

    // Without the user's file: resume, export, visualize.
    std::fs::remove_file(&file).unwrap();
    let out = ok(&["train", "--resume", s(&run), "--epochs", "2"]);
    assert!(out.contains("epoch 2/2"), "{out}");
    assert!(run.join("hooks/deconv/epoch-002/conv4.png").exists());
    let weights = dir.path().join("mine.safetensors");
    ok(&[
        "export",
        "--checkpoint",
        s(&run.join("checkpoints/latest")),
        "--out",
        s(&weights),
    ]);
    // The batch norms trained: their running statistics and counters moved.
    let (tensors, _) = zftrain_checkpoints::read_safetensors(&weights).unwrap();
    let get = |n: &str| &tensors.iter().find(|(k, _)| k == n).unwrap().1;
    assert_eq!(
        get("bn1.num_batches_tracked").int64_value(&[]),
        4,
        "2 epochs x 2 steps"
    );
    assert!(
        get("bn2.running_mean")
            .abs()
            .sum(tch::Kind::Float)
            .double_value(&[])
            > 0.0
    );
    let vis = dir.path().join("vis");
    let out = ok(&[
        "visualize",
        "--weights",
        s(&weights),
        "--data",
        s(&data),
        "--out",
        s(&vis),
    ]);
    assert!(out.contains("visualized"), "{out}");
    assert!(vis.join("hooks/deconv").is_dir());
    let summary = ok(&["summary", "--arch-file", s(&run.join("arch.toml"))]);
    assert!(summary.contains("Total params: 1,080,130"), "{summary}");

    // A different table on these weights is refused, naming the layer.
    let other = dir.path().join("other.toml");
    let text = std::fs::read_to_string(example()).unwrap();
    std::fs::write(
        &other,
        text.replace("out_channels = 96", "out_channels = 80"),
    )
    .unwrap();
    let err = fails(&[
        "predict",
        "--weights",
        s(&weights),
        "--arch-file",
        s(&other),
        "--image",
        s(&data.join("val/00-disc/00000.jpg")),
    ]);
    assert!(
        err.contains("--arch-file") && err.contains("conv3"),
        "{err}"
    );
    // And a resume onto another table too.
    let err = fails(&[
        "train",
        "--resume",
        s(&run),
        "--arch-file",
        s(&other),
        "--epochs",
        "3",
    ]);
    assert!(err.contains("small-convnet"), "{err}");
}

/// The CPU architecture experiment's networks (112x112 inputs, fixed fully
/// connected sizes) train, and every command that reads images afterwards
/// (predict, eval, analyze architecture) crops them as the run did.
#[test]
fn networks_of_another_input_size_are_fed_their_runs_crop_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/experiments/cpu-zfnet.toml");
    let mut args = quick(dir.path(), &data, "small", "zfnet", "1");
    let at = args.iter().position(|a| a == "--arch").unwrap();
    args.splice(
        at..at + 2,
        ["--arch-file".to_string(), s(&file).to_string()],
    );
    args.extend(["--set", "data.resize=128", "--set", "data.crop=112"].map(String::from));
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ck = dir.path().join("runs/small/checkpoints/latest");
    let input = dir.path().join("input.safetensors");
    ok(&[
        "predict",
        "--checkpoint",
        s(&ck),
        "--image",
        s(&data.join("val/00-disc/00000.jpg")),
        "--save-input",
        s(&input),
    ]);
    let x = zftrain_checkpoints::read_safetensors(&input)
        .unwrap()
        .0
        .remove(0)
        .1;
    assert_eq!(x.size(), [1, 3, 112, 112]);
    let eval = ok(&[
        "eval",
        "--checkpoint",
        s(&ck),
        "--data",
        s(&data.join("val")),
        "--ten-crop",
    ]);
    assert!(eval.contains("4 images (ten-crop; 0 skipped)"), "{eval}");
    let out = dir.path().join("arch");
    ok(&[
        "analyze",
        "architecture",
        "--a",
        s(&ck),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--probe-images",
        "4",
    ]);
    let csv = std::fs::read_to_string(out.join("architecture.csv")).unwrap();
    assert!(
        csv.contains("cpu-zfnet") && csv.contains(",conv1,2,96,"),
        "{csv}"
    ); // visualize's default hooks on a run that had none.
    let vis = dir.path().join("vis");
    let out = ok(&[
        "visualize",
        "--checkpoint",
        s(&ck),
        "--data",
        s(&data),
        "--out",
        s(&vis),
    ]);
    assert!(out.contains("visualized"), "{out}");
    assert!(vis.join("hooks/deconv").is_dir());
}
