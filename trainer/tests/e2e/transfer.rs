//! Fine-tuning end to end: `train --init-from` a weights file or a
//! checkpoint, `--new-head` for other classes, `model.freeze` keeping
//! layers bit-identical, `optim.lr_mult`, and the refusals (a classifier
//! for other classes, other class names, unknown layers) before anything
//! is written.

use std::path::{Path, PathBuf};

use zftrain_checkpoints::read_safetensors;

use crate::common::{export, fails, init, interop, ok, s};
use crate::train::{quick, tiny_data};

/// A tensor of a safetensors file: name, shape, raw bytes.
type Stored = (String, Vec<i64>, Vec<u8>);

/// Every tensor of a safetensors file (in the file's order, not the
/// network's).
fn tensors(path: &Path) -> Vec<Stored> {
    let (ts, _) = read_safetensors(path).unwrap();
    ts.into_iter()
        .map(|(n, t)| {
            let mut b = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
            t.copy_data_u8(&mut b, t.numel());
            (n, t.size(), b)
        })
        .collect()
}

fn bytes_of<'a>(all: &'a [Stored], name: &str) -> &'a [u8] {
    &all.iter().find(|(n, _, _)| n == name).expect(name).2
}

/// The name of the first weight of the given shape's length whose second
/// dimension is `input` (conv1: 4-d from 3 channels; the classifier: 2-d
/// from 4096 features, the last such in the network being the head).
fn weight_named(all: &[Stored], dims: usize, input: i64, rows: Option<i64>) -> &str {
    &all.iter()
        .find(|(n, s, _)| {
            n.ends_with("weight")
                && s.len() == dims
                && s[1] == input
                && rows.is_none_or(|r| s[0] == r)
        })
        .expect("a weight of that shape")
        .0
}

/// The classifier's weight: `[classes, 4096]`.
fn head_weight(all: &[Stored], classes: i64) -> &str {
    weight_named(all, 2, 4096, Some(classes))
}

/// A synthetic data set of `classes` classes in `dir/NAME`.
fn data(dir: &Path, name: &str, classes: usize) -> PathBuf {
    let out = dir.join(name);
    let c = classes.to_string();
    ok(&[
        "data",
        "synth",
        "--out",
        s(&out),
        "--classes",
        &c,
        "--train-per-class",
        "3",
        "--val-per-class",
        "1",
        "--width",
        "80",
        "--height",
        "64",
    ]);
    out
}

fn train(args: Vec<String>, extra: &[&str]) -> String {
    let mut a = args;
    a.extend(extra.iter().map(|x| x.to_string()));
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

fn train_fails(args: Vec<String>, extra: &[&str]) -> String {
    let mut a = args;
    a.extend(extra.iter().map(|x| x.to_string()));
    fails(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

const FEATURES: &str =
    "model.freeze=[\"conv1\",\"conv2\",\"conv3\",\"conv4\",\"conv5\",\"fc6\",\"fc7\"]";

/// Zeiler & Fergus's section 5 in small: 1000-class weights, a new
/// 5-class softmax, layers 1-7 frozen. The frozen tensors come out of
/// training bit-identical to the file's (weight decay and ZF's
/// renormalization included), the new head trains, and the run records
/// where it started.
#[test]
fn a_new_head_trains_on_five_classes_from_1000_class_weights_with_layers_1_to_7_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 1000-class weights made by PyTorch (the seed's class), imported.
    let torch_file = d.join("torch.safetensors");
    interop(&["save-random", "zfnet-seed", "1000", s(&torch_file)]);
    ok(&[
        "import",
        "--arch",
        "zfnet-seed",
        "--weights",
        s(&torch_file),
        "--out",
        s(&d.join("imagenet")),
    ]);
    export(&d.join("imagenet"), &d.join("imagenet.safetensors"));
    let five = data(d, "five", 5);
    let file = d.join("imagenet.safetensors");
    let base = quick(d, &five, "transfer", "zfnet-seed", "2");
    // The 1000-class classifier does not fit: refused with the way out,
    // before the run directory exists.
    let err = train_fails(base.clone(), &["--init-from", s(&file)]);
    assert!(
        err.contains(&format!("'{}'", head_weight(&tensors(&file), 1000))),
        "{err}"
    );
    assert!(err.contains("--new-head"), "{err}");
    assert!(
        !d.join("runs/transfer").exists(),
        "a refused run wrote its directory"
    );
    let out = train(
        base,
        &[
            "--init-from",
            s(&file),
            "--new-head",
            "--set",
            FEATURES,
            "--set",
            "optim.lr_mult={ fc8 = 10 }",
            "--set",
            "train.renorm_radius=0.01",
        ],
    );
    assert!(out.contains("initialized from"), "{out}");
    assert!(out.contains("fc8 drawn fresh"), "{out}");
    assert!(
        out.contains("frozen: conv1, conv2, conv3, conv4, conv5, fc6, fc7"),
        "{out}"
    );
    let run = d.join("runs/transfer");
    let before = tensors(&file);
    let after = tensors(&run.join("checkpoints/latest/weights.safetensors"));
    let head = head_weight(&after, 5)
        .trim_end_matches("weight")
        .to_string();
    for (name, _, bytes) in &after {
        if name.starts_with(&head) {
            continue;
        }
        assert!(
            bytes_of(&before, name) == bytes.as_slice(),
            "frozen {name} changed"
        );
    }
    // The head is the data's: 5 classes, and it moved from its fresh draw.
    let (ts, meta) = read_safetensors(&run.join("checkpoints/latest/weights.safetensors")).unwrap();
    let head = &ts
        .iter()
        .find(|(n, _)| *n == format!("{head}weight"))
        .unwrap()
        .1;
    assert_eq!(head.size(), vec![5, 4096]);
    assert_eq!(meta["zftrain.classes"], "5");
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let config: toml::Value = toml::from_str(&text).unwrap();
    let model = &config["model"];
    assert_eq!(model["init_from"].as_str(), Some(s(&file)), "{text}");
    assert_eq!(model["reset_layers"].as_array().unwrap().len(), 1, "{text}");
    assert_eq!(model["freeze"].as_array().unwrap().len(), 7, "{text}");
    assert_eq!(
        config["optim"]["lr_mult"]["fc8"].as_float(),
        Some(10.0),
        "{text}"
    );
    let first = d.join("runs/transfer/checkpoints");
    let steps: Vec<_> = std::fs::read_dir(&first).unwrap().flatten().collect();
    assert!(steps.len() >= 2, "two epochs, two checkpoints: {steps:?}");
}

/// Without freezing, every layer trains from the file; a zero multiplier
/// keeps one layer as it was; a checkpoint (not only a file) can be the
/// start; a start from other classes with the same count is refused by
/// their names.
#[test]
fn init_from_a_checkpoint_trains_every_layer_and_checks_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let two = tiny_data(d);
    // The source subtracts a per-pixel mean of one image; the tuned run
    // takes that mean over (it would estimate it from all eight).
    let mean = [
        "--set",
        "data.augment=\"zf\"",
        "--set",
        "data.pixel_mean=true",
    ];
    let mut source_args = mean.to_vec();
    source_args.extend(["--set", "data.pixel_mean_images=1"]);
    train(quick(d, &two, "source", "zfnet-seed", "1"), &source_args);
    let source = d.join("runs/source");
    let start = tensors(&source.join("checkpoints/latest/weights.safetensors"));
    let mut tuned_args = mean.to_vec();
    tuned_args.extend([
        "--init-from",
        s(&source),
        "--set",
        "optim.lr_mult={ conv1 = 0.0 }",
    ]);
    let out = train(quick(d, &two, "tuned", "zfnet-seed", "1"), &tuned_args);
    assert!(out.contains("the weights this run starts from"), "{out}");
    let mean_image = |run: &str| {
        std::fs::read(
            d.join(run)
                .join("checkpoints/latest/mean-image.safetensors"),
        )
        .unwrap()
    };
    assert!(
        mean_image("runs/source") == mean_image("runs/tuned"),
        "the mean was estimated anew"
    );
    let tuned = tensors(&d.join("runs/tuned/checkpoints/latest/weights.safetensors"));
    let (conv1, conv2, head) = (
        weight_named(&start, 4, 3, None),
        weight_named(&start, 4, 96, None),
        head_weight(&start, 2),
    );
    assert!(
        bytes_of(&tuned, conv1) == bytes_of(&start, conv1),
        "conv1 at 0x moved"
    );
    assert!(
        bytes_of(&tuned, conv2) != bytes_of(&start, conv2),
        "conv2 did not train"
    );
    assert!(
        bytes_of(&tuned, head) != bytes_of(&start, head),
        "the head did not train"
    );
    // The same number of classes under other names: the head would mean
    // other things, so it is refused unless drawn fresh.
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    for split in ["train", "val"] {
        let from = two.join(split);
        let to = other.join(split);
        std::fs::create_dir_all(&to).unwrap();
        for (i, class) in std::fs::read_dir(&from).unwrap().flatten().enumerate() {
            std::fs::rename(class.path(), to.join(format!("renamed-{i}"))).unwrap();
        }
    }
    let err = train_fails(
        quick(d, &other, "renamed", "zfnet-seed", "1"),
        &["--init-from", s(&source)],
    );
    assert!(
        err.contains("other classes") && err.contains("--new-head"),
        "{err}"
    );
    assert!(!d.join("runs/renamed").exists());
    train(
        quick(d, &other, "renamed", "zfnet-seed", "1"),
        &["--init-from", s(&source), "--new-head"],
    );
}

/// Layer names that do not exist, a reset without a start, a missing
/// start and resuming a weights-only checkpoint are refused with the key
/// or the way out, before anything is written.
#[test]
fn fine_tuning_mistakes_are_refused_by_key_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let two = tiny_data(d);
    init("zfnet-seed", "2", "1", &d.join("init"));
    let base = || quick(d, &two, "bad", "zfnet-seed", "1");
    for (extra, wanted) in [
        (
            vec!["--set", "model.freeze=[\"fc9\"]"],
            vec!["model.freeze", "'fc9'", "conv1, conv2", "head"],
        ),
        (
            vec!["--set", "optim.lr_mult={ relu1 = 2 }"],
            vec!["optim.lr_mult.relu1", "'relu1'"],
        ),
        (
            vec!["--set", "optim.lr_mult={ fc8 = -1 }"],
            vec!["optim.lr_mult.fc8", "-1"],
        ),
        (vec!["--new-head"], vec!["model.reset_layers", "--init-from"]),
        (
            vec!["--init-from", "/nowhere/weights.safetensors"],
            vec!["model.init_from", "/nowhere/weights.safetensors", "does not exist"],
        ),
        (
            vec!["--set", "model.freeze=[\"conv1\",\"conv2\",\"conv3\",\"conv4\",\"conv5\",\"fc6\",\"fc7\",\"fc8\"]"],
            vec!["model.freeze", "nothing would train"],
        ),
    ] {
        let err = train_fails(base(), &extra);
        for w in wanted {
            assert!(err.contains(w), "{extra:?}: {err}");
        }
        assert!(!d.join("runs/bad").exists(), "{extra:?} wrote the run directory");
    }
    // `--resume` of weights only points at --init-from.
    let mut args = base();
    args.extend(["--resume".to_string(), s(&d.join("init")).to_string()]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("no optimizer state") && err.contains("--init-from"),
        "{err}"
    );
}
