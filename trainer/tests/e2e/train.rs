//! `zftrain train` on the synthetic JPEG data set: every architecture takes
//! real steps, resume is bit-exact, bad input is refused before anything is
//! written, bad images are skipped and reported.

use std::path::{Path, PathBuf};

use crate::common::{fails, ok, s};

/// A tiny synthetic ImageFolder: 2 classes, 4 train and 2 val images each.
pub fn tiny_data(dir: &Path) -> PathBuf {
    crate::common::synth(dir, 4, 2, 80, 64)
}

/// Common flags: small batches, two steps per epoch, log every step, no
/// hooks (the tests of hooks add theirs).
pub fn quick(dir: &Path, data: &Path, name: &str, arch: &str, epochs: &str) -> Vec<String> {
    [
        "train",
        "--no-hooks",
        "--arch",
        arch,
        "--data",
        s(data),
        "--runs-dir",
        s(&dir.join("runs")),
        "--name",
        name,
        "--epochs",
        epochs,
        "--batch-size",
        "3",
        "--workers",
        "1",
        "--set",
        "train.max_steps_per_epoch=2",
        "--set",
        "train.log_every=1",
        "--set",
        "schedule.kind=constant",
        "--set",
        "train.threads=1",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn run(args: &[String]) -> String {
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn latest_weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("checkpoints/latest/weights.safetensors")).unwrap()
}

#[test]
fn the_synthetic_set_records_its_style_and_draws_the_noisy_one_on_request() {
    let d = tempfile::tempdir().unwrap();
    let clean = crate::common::synth(d.path(), 1, 1, 64, 48);
    let noisy = d.path().join("noisy");
    let out = ok(&[
        "data",
        "synth",
        "--out",
        s(&noisy),
        "--classes",
        "2",
        "--train-per-class",
        "1",
        "--val-per-class",
        "1",
        "--width",
        "64",
        "--height",
        "48",
        "--style",
        "noisy",
    ]);
    assert!(out.contains("noisy style"), "{out}");
    let style = |dir: &Path| {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("synth.json")).unwrap())
                .unwrap();
        json["style"].as_str().unwrap().to_string()
    };
    assert_eq!(
        (style(&clean), style(&noisy)),
        ("clean".into(), "noisy".into())
    );
    let file = "train/00-disc/00000.jpg";
    assert_ne!(
        std::fs::read(clean.join(file)).unwrap(),
        std::fs::read(noisy.join(file)).unwrap()
    );
    let err = fails(&[
        "data",
        "synth",
        "--out",
        s(&d.path().join("x")),
        "--style",
        "grainy",
    ]);
    assert!(err.contains("grainy"), "{err}");
}

#[test]
fn every_architecture_trains_a_real_step_and_logs_to_tensorboard() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    for arch in ["zfnet-seed", "zfnet", "alexnet", "alexnet-tv"] {
        let out = run(&quick(dir.path(), &data, arch, arch, "1"));
        assert!(out.contains("epoch 1/1: train loss"), "{out}");
        let run_dir = dir.path().join("runs").join(arch);
        assert!(
            run_dir.join("checkpoints/latest/manifest.json").exists(),
            "{arch}"
        );
        assert_eq!(
            std::fs::read_to_string(run_dir.join("classes.txt")).unwrap(),
            "00-disc\n01-square\n"
        );
    }
    let got = crate::common::tensorboard(&dir.path().join("runs/zfnet"));
    let loss = got["scalars"]["train/loss"].as_array().unwrap();
    assert_eq!(
        loss.iter()
            .map(|e| e[0].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    for tag in [
        "train/top1",
        "train/lr",
        "train/images_per_sec",
        "val/loss",
        "val/top1",
        "val/top5",
    ] {
        assert!(got["scalars"][tag].is_array(), "missing {tag}");
    }
}

#[test]
fn two_epochs_equal_one_epoch_resumed_for_another_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    run(&quick(dir.path(), &data, "straight", "zfnet", "2"));
    run(&quick(dir.path(), &data, "resumed", "zfnet", "1"));
    let resumed = dir.path().join("runs/resumed");
    let out = ok(&["train", "--resume", s(&resumed), "--epochs", "2"]);
    assert!(
        out.contains("resumed from") && out.contains("epoch 2/2"),
        "{out}"
    );
    let straight = dir.path().join("runs/straight");
    assert!(
        latest_weights(&straight) == latest_weights(&resumed),
        "weights differ after resume"
    );
    let (a, b) = (
        crate::common::tensorboard(&straight),
        crate::common::tensorboard(&resumed),
    );
    for tag in ["train/loss", "train/top1", "val/loss", "val/top1"] {
        assert_eq!(a["scalars"][tag], b["scalars"][tag], "{tag}");
    }
    // metrics.csv, read by pandas: a row per logged step and per epoch, the
    // resumed run's the same as the straight one's (timings aside), and its
    // validation figures TensorBoard's.
    let (x, y) = (
        crate::common::metrics_csv(&straight),
        crate::common::metrics_csv(&resumed),
    );
    let steady = |rows: &[serde_json::Value]| -> Vec<serde_json::Value> {
        rows.iter()
            .map(|r| {
                let mut r = r.clone();
                let o = r.as_object_mut().unwrap();
                o.remove("images_per_sec");
                o.remove("eta_hours");
                r
            })
            .collect()
    };
    assert_eq!(steady(&x), steady(&y));
    let kinds: Vec<(i64, i64, &str)> = x
        .iter()
        .map(|r| {
            (
                r["step"].as_i64().unwrap(),
                r["epoch"].as_i64().unwrap(),
                r["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (1, 1, "train"),
            (2, 1, "train"),
            (2, 1, "epoch"),
            (3, 2, "train"),
            (4, 2, "train"),
            (4, 2, "epoch")
        ]
    );
    let val_top1: Vec<f64> = x
        .iter()
        .filter(|r| r["kind"] == "epoch")
        .map(|r| r["val_top1"].as_f64().unwrap())
        .collect();
    let tb_top1: Vec<f64> = a["scalars"]["val/top1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[1].as_f64().unwrap())
        .collect();
    for (c, t) in val_top1.iter().zip(&tb_top1) {
        assert!(
            (c - t).abs() < 1e-4,
            "csv {val_top1:?} vs tensorboard {tb_top1:?}"
        );
    }
    assert_eq!(val_top1.len(), 2);
    assert!(x[0]["val_top1"].is_null() && x[0]["lr"].as_f64().unwrap() > 0.0);
}

#[test]
fn config_errors_name_the_key_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let runs = dir.path().join("runs");
    let mut args = quick(dir.path(), &data, "x", "zfnet", "1");
    args.extend(["--set".into(), "optim.learning_rate=0.1".into()]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("learning_rate"), "{err}");
    let err = fails(&[
        "train",
        "--arch",
        "zfnet",
        "--data",
        s(&dir.path().join("nope")),
        "--runs-dir",
        s(&runs),
    ]);
    assert!(err.contains("--data") && err.contains("nope"), "{err}");
    let mut args = quick(dir.path(), &data, "x", "zfnet", "1");
    args.push("--lr=-1".into());
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("optim.lr"), "{err}");
    let mut args = quick(dir.path(), &data, "x", "zfnet", "1");
    args.extend(["--set", "data.pixel_mean=true", "--set", "data.augment=rrc"].map(String::from));
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("data.pixel_mean") && err.contains("zf"),
        "{err}"
    );
    assert!(!runs.exists(), "nothing created");
    run(&quick(dir.path(), &data, "x", "zfnet-seed", "1"));
    let err = fails(
        &quick(dir.path(), &data, "x", "zfnet-seed", "1")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        err.contains("already exists") && err.contains("--resume"),
        "{err}"
    );
    let mut args = quick(dir.path(), &data, "y", "alexnet", "1");
    args.extend(["--resume".into(), s(&runs.join("x")).into()]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("zfnet-seed") && err.contains("alexnet"),
        "{err}"
    );
}

#[test]
fn a_per_pixel_mean_is_estimated_once_and_travels_with_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let mut args = quick(dir.path(), &data, "pm", "zfnet-seed", "1");
    args.extend(["--set", "data.pixel_mean=true"].map(String::from));
    let out = run(&args);
    assert!(out.contains("per-pixel mean of 8 training images"), "{out}");
    let run_dir = dir.path().join("runs/pm");
    let ck = run_dir.join("checkpoints/latest");
    assert!(ck.join("mean-image.safetensors").exists());
    let manifest = std::fs::read_to_string(ck.join("manifest.json")).unwrap();
    assert!(manifest.contains("mean-image.safetensors"), "{manifest}");
    // Resuming reads the mean back instead of estimating it again.
    let out = ok(&["train", "--resume", s(&run_dir), "--epochs", "2"]);
    assert!(
        out.contains("epoch 2/2") && !out.contains("per-pixel mean of"),
        "{out}"
    );
    // predict subtracts the same mean: its saved input differs from the
    // per-channel one of the exported weights by the mean image.
    let image = data.join("val/00-disc/00000.jpg");
    let with = dir.path().join("with.safetensors");
    ok(&[
        "predict",
        "--checkpoint",
        s(&ck),
        "--image",
        s(&image),
        "--save-input",
        s(&with),
    ]);
    let weights = dir.path().join("w.safetensors");
    ok(&["export", "--checkpoint", s(&ck), "--out", s(&weights)]);
    let without = dir.path().join("without.safetensors");
    ok(&[
        "predict",
        "--weights",
        s(&weights),
        "--image",
        s(&image),
        "--save-input",
        s(&without),
    ]);
    let input = |p: &Path| {
        zftrain_checkpoints::read_safetensors(p)
            .unwrap()
            .0
            .remove(0)
            .1
    };
    let diff = input(&with) - input(&without);
    let (mean, _) =
        zftrain_checkpoints::read_safetensors(&ck.join("mean-image.safetensors")).unwrap();
    // The centre 224 crop sits at (16, 16) in the 256 square.
    let m = mean[0].1.narrow(1, 16, 224).narrow(2, 16, 224);
    let channel_mean = tch::Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([1, 3, 1, 1]);
    let std = tch::Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([1, 3, 1, 1]);
    let want = (channel_mean - m.unsqueeze(0)) / std;
    let err = (diff - want).abs().max().double_value(&[]);
    assert!(err < 1e-4, "max |error| {err}");
}

#[test]
fn undecodable_images_are_skipped_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    std::fs::write(
        data.join("train/00-disc/00001.jpg"),
        b"\xff\xd8 not really a jpeg",
    )
    .unwrap();
    run(&quick(dir.path(), &data, "bad", "zfnet-seed", "1"));
    let log = std::fs::read_to_string(dir.path().join("runs/bad/train.log")).unwrap();
    assert!(
        log.contains("00-disc/00001.jpg") && log.contains("skipped"),
        "{log}"
    );
    let got = crate::common::tensorboard(&dir.path().join("runs/bad"));
    assert!(got["text"]["data/skipped_images"][0][1]
        .as_str()
        .unwrap()
        .contains("00001.jpg"));
    let mut args = quick(dir.path(), &data, "strict", "zfnet-seed", "1");
    args.extend([
        "--bad-images".into(),
        "fail".into(),
        "--set".into(),
        "train.max_steps_per_epoch=0".into(),
    ]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("bad image") && err.contains("00001.jpg"),
        "{err}"
    );
}

#[test]
fn a_diverging_loss_stops_the_run_without_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let mut args = quick(dir.path(), &data, "nan", "zfnet-seed", "1");
    args.extend([
        "--lr=1e12".into(),
        "--set".into(),
        "train.max_steps_per_epoch=3".into(),
    ]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("training loss became") && err.contains("without a checkpoint"),
        "{err}"
    );
    assert!(!dir.path().join("runs/nan/checkpoints/latest").exists());
    // TensorBoard's HParams dashboard shows the run as failed.
    let tb = crate::common::tensorboard(&dir.path().join("runs/nan"));
    assert_eq!(
        tb["hparams"]["_hparams_/session_end_info"]["sessionEndInfo"]["status"], "STATUS_FAILURE",
        "{}",
        tb["hparams"]
    );
}

#[test]
fn old_checkpoints_are_pruned_but_the_best_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let mut args = quick(dir.path(), &data, "prune", "zfnet-seed", "4");
    args.extend(["--set".into(), "checkpoint.keep_last=1".into()]);
    run(&args);
    let ck = dir.path().join("runs/prune/checkpoints");
    let trainer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("latest/trainer.json")).unwrap()).unwrap();
    let best = trainer["best_step"].as_u64().unwrap();
    let mut steps: Vec<String> = std::fs::read_dir(&ck)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    steps.sort();
    assert!(
        steps.contains(&format!("step-{best:09}")),
        "best {best} kept: {steps:?}"
    );
    assert!(
        steps.contains(&"step-000000008".to_string()),
        "newest kept: {steps:?}"
    );
    assert!(steps.len() <= 2, "{steps:?}");
}

/// Quotes `arg` for a POSIX shell.
fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

#[test]
fn progress_is_a_bar_on_a_terminal_and_timed_lines_off_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let with = |name: &str, seconds: &str| {
        let mut args = quick(dir.path(), &data, name, "zfnet-seed", "2");
        args.extend(["--set".into(), format!("train.log_every_s={seconds}")]);
        args
    };
    // Off a terminal: no bar; the session's first step, then a line every
    // train.log_every_s seconds.
    let quiet = run(&with("quiet", "1e9"));
    let steps: Vec<&str> = quiet
        .lines()
        .filter(|l| l.contains(" img/s, left: "))
        .collect();
    assert_eq!(steps.len(), 1, "{quiet}");
    assert!(steps[0].starts_with("epoch 1/2 step 1 (1/2): "), "{quiet}");
    let mut args = with("lines", "0");
    args.extend(["--set".into(), "data.pixel_mean=true".into()]);
    let lines = run(&args);
    assert!(lines.contains("per-pixel mean: 8/8 images, "), "{lines}");
    let progress: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains(" img/s, left: epoch "))
        .collect();
    assert_eq!(
        progress.len(),
        4,
        "a line per step of 2 epochs of 2 steps: {lines}"
    );
    assert!(
        progress[0].starts_with("epoch 1/2 step 1 (1/2): loss "),
        "{lines}"
    );
    assert!(
        progress[3].starts_with("epoch 2/2 step 4 (2/2): loss "),
        "{lines}"
    );
    assert!(progress[3].contains("left: epoch 0s, run 0s"), "{lines}");
    // Validation reports its progress the same way (4 images, batches of 3).
    let val: Vec<&str> = lines
        .lines()
        .filter(|l| l.starts_with("validation: "))
        .collect();
    assert_eq!(
        val.len(),
        6,
        "2 batches and a last line in each of 2 epochs: {lines}"
    );
    assert!(
        val[0].starts_with("validation: 3/4 images, ")
            && val[1].starts_with("validation: 4/4 images, ")
            && val[2].starts_with("validation: 4/4 images in "),
        "{lines}"
    );
    let tb = crate::common::tensorboard(&dir.path().join("runs/lines"));
    let eta = tb["scalars"]["train/eta_hours"]
        .as_array()
        .expect("train/eta_hours");
    assert_eq!(eta.len(), 4, "{eta:?}");
    // `script` runs the command on a pseudo-terminal and copies what it shows.
    let mut command = vec![shell_quote(env!("CARGO_BIN_EXE_zftrain"))];
    command.extend(
        quick(dir.path(), &data, "tty", "zfnet-seed", "1")
            .iter()
            .map(|a| shell_quote(a)),
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command.join(" "), "/dev/null"])
        .output()
        .expect("script (util-linux) runs");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    for part in ["epoch 1/1", "loss ", "top1 ", " img/s", "left: epoch "] {
        assert!(shown.contains(part), "no {part:?} in {shown:?}");
    }
}

/// Every tensor of a run's latest weights.
pub fn weights_of(run: &Path) -> Vec<(String, tch::Tensor)> {
    let path = run.join("checkpoints/latest/weights.safetensors");
    let mut t = zftrain_checkpoints::read_safetensors(&path).unwrap().0;
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn cpu_replicas_train_the_same_model_and_a_run_resumes_on_another_replica_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    // fp32 (bf16 rounds differently for other shard sizes); dropout on: its
    // masks are drawn per row of the global batch, whatever the replicas.
    let fp32 = ["--set", "train.precision=\"fp32\""].map(String::from);
    let mut one = quick(dir.path(), &data, "one", "zfnet-seed", "2");
    one.extend(fp32.clone());
    run(&one);
    let mut two = quick(dir.path(), &data, "two", "zfnet-seed", "1");
    two.extend(fp32);
    two.extend(["--cpu-replicas".to_string(), "2".to_string()]);
    run(&two);
    let resumed = dir.path().join("runs/two");
    ok(&[
        "train",
        "--resume",
        s(&resumed),
        "--epochs",
        "2",
        "--cpu-replicas",
        "1",
    ]);
    let (a, b) = (
        weights_of(&dir.path().join("runs/one")),
        weights_of(&resumed),
    );
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        let scale = x.abs().max().double_value(&[]).max(1e-12);
        let err = (x - y).abs().max().double_value(&[]) / scale;
        assert!(err < 1e-5, "{name}: relative difference {err}");
    }
    let mut bad = quick(dir.path(), &data, "bad", "zfnet-seed", "1");
    bad.extend(["--cpu-replicas".to_string(), "4".to_string()]);
    let err = fails(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("train.cpu_replicas") && err.contains("batch_size (3)"),
        "{err}"
    );
}

#[test]
fn asking_for_gpus_without_cuda_says_what_was_looked_for_and_creates_nothing() {
    if crate::common::skip_with_cuda_libtorch(
        "asking_for_gpus_without_cuda_says_what_was_looked_for_and_creates_nothing",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let mut args = quick(dir.path(), &data, "gpu", "zfnet-seed", "1");
    args.extend(["--gpus".to_string(), "1".to_string()]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("libtorch_cuda.so")
            && err.contains("ZFTRAIN_LIBTORCH_CUDA")
            && err.contains("--gpus 0"),
        "{err}"
    );
    // A file that is not a library: the loader's own message.
    let fake = dir.path().join("libtorch_cuda.so");
    std::fs::write(&fake, b"not a library").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .args(&args)
        .env("ZFTRAIN_LIBTORCH_CUDA", &fake)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("loading") && err.contains(s(&fake)),
        "{err}"
    );
    let mut both = quick(dir.path(), &data, "both", "zfnet-seed", "1");
    both.extend(["--gpus", "1", "--cpu-replicas", "2"].map(String::from));
    let err = fails(&both.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("train.cpu_replicas") && err.contains("train.gpus = 0"),
        "{err}"
    );
    assert!(!dir.path().join("runs").exists(), "nothing created");
}

#[test]
fn a_packed_data_set_trains_like_a_folder_and_a_cut_pack_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let packs = dir.path().join("packs");
    std::fs::create_dir_all(&packs).unwrap();
    for split in ["train", "val"] {
        let out = ok(&[
            "data",
            "pack",
            "--src",
            s(&data.join(split)),
            "--out",
            s(&packs.join(format!("{split}.zfpack"))),
            "--threads",
            "2",
            "--log-every-s",
            "0",
        ]);
        assert!(
            out.contains("packed") && out.contains("0 left out"),
            "{out}"
        );
        // Off a terminal (here), a line per image at --log-every-s 0.
        let n = if split == "train" { 8 } else { 4 };
        assert!(out.contains(&format!("packing: {n}/{n} images, ")), "{out}");
    }
    // Without --data (the flag would override data.train and data.val).
    let without_data = |name: &str| {
        let mut a = quick(dir.path(), &data, name, "zfnet-seed", "1");
        let i = a.iter().position(|x| x == "--data").unwrap();
        a.drain(i..i + 2);
        a
    };
    let mut args = without_data("packed");
    args.extend([
        "--set".to_string(),
        format!("data.train={:?}", s(&packs.join("train.zfpack"))),
        "--set".to_string(),
        format!("data.val={:?}", s(&packs.join("val.zfpack"))),
    ]);
    let out = run(&args);
    assert!(out.contains("epoch 1/1: train loss"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("runs/packed/classes.txt")).unwrap(),
        "00-disc\n01-square\n"
    );
    // A pack cut short (an interrupted copy) is refused, naming the file.
    let bytes = std::fs::read(packs.join("train.zfpack")).unwrap();
    std::fs::write(packs.join("train.zfpack"), &bytes[..bytes.len() / 2]).unwrap();
    let mut again = without_data("cut");
    again.extend([
        "--set".to_string(),
        format!("data.train={:?}", s(&packs.join("train.zfpack"))),
        "--set".to_string(),
        format!("data.val={:?}", s(&packs.join("val.zfpack"))),
    ]);
    let err = fails(&again.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("train.zfpack") && err.contains("incomplete pack"),
        "{err}"
    );
}

/// A run directory whose process stopped before its first checkpoint was
/// complete (here: its checkpoints removed, a half-written one left) is
/// neither lost nor in the way: `--resume` or `--restart` trains it from
/// the start, the earlier events move to `attempt-N/`; a run with
/// checkpoints is never started over.
#[test]
fn a_run_that_stopped_before_its_first_checkpoint_starts_over_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let runs = dir.path().join("runs");
    let args = quick(dir.path(), &data, "cut", "zfnet-seed", "1");
    let cut_short = || {
        let ck = runs.join("cut/checkpoints");
        std::fs::remove_dir_all(&ck).unwrap();
        std::fs::create_dir_all(ck.join(".step-000000001.tmp-99")).unwrap();
    };
    run(&args);
    cut_short();
    // The same command again: refused, saying how to go on.
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("no complete checkpoint")
            && err.contains("--restart")
            && err.contains("--resume"),
        "{err}"
    );
    let out = ok(&["train", "--resume", s(&runs.join("cut"))]);
    assert!(
        out.contains("no complete checkpoint: training it from the start"),
        "{out}"
    );
    assert!(out.contains("epoch 1/1: train loss"), "{out}");
    assert!(runs.join("cut/checkpoints/latest/manifest.json").is_file());
    let events = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("events.out")
            })
            .count()
    };
    assert_eq!(
        events(&runs.join("cut/attempt-1")),
        1,
        "the first attempt's events, set aside"
    );
    assert_eq!(events(&runs.join("cut")), 1, "this attempt's events");
    // --restart does the same for a fresh command line...
    cut_short();
    let mut again = args.clone();
    again.push("--restart".into());
    let out = run(&again);
    assert!(out.contains("attempt-2"), "{out}");
    // ... but never starts over a run with checkpoints.
    let err = fails(&again.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("already exists") && err.contains("--resume"),
        "{err}"
    );
    assert!(runs.join("cut/checkpoints/latest/manifest.json").is_file());
}

/// The same number of classes under other names: resuming would remap
/// every label silently, so it is refused naming the first difference.
#[test]
fn a_resume_on_renamed_class_folders_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    run(&quick(dir.path(), &data, "renamed", "zfnet-seed", "1"));
    for split in ["train", "val"] {
        std::fs::rename(
            data.join(split).join("01-square"),
            data.join(split).join("01-zigzag"),
        )
        .unwrap();
    }
    let mut args = quick(dir.path(), &data, "renamed", "zfnet-seed", "2");
    args.extend([
        "--resume".to_string(),
        s(&dir.path().join("runs/renamed")).to_string(),
    ]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("other classes") && err.contains("'01-square'") && err.contains("'01-zigzag'"),
        "{err}"
    );
}

/// A resealed `trainer.json` whose step counter is u64::MAX (anyone who can
/// write the folder can reseal a manifest) is refused by name instead of
/// wrapping the step.
#[test]
fn a_step_counter_beyond_reach_in_a_checkpoint_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    run(&quick(dir.path(), &data, "counter", "zfnet-seed", "1"));
    let run_dir = dir.path().join("runs/counter");
    let ck = std::fs::canonicalize(run_dir.join("checkpoints/latest")).unwrap();
    let path = ck.join("trainer.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["global_step"] = serde_json::json!(u64::MAX);
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    crate::hooks::reseal(&ck, "trainer.json");
    let mut args = quick(dir.path(), &data, "counter", "zfnet-seed", "2");
    args.extend(["--resume".to_string(), s(&ck).to_string()]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("trainer.json") && err.contains("'global_step'"),
        "{err}"
    );
}

/// With filter renormalization on, every logged step says how many conv
/// filters it rescaled: all of them with a radius no filter fits under,
/// none with one every filter fits under; without it, no such curve.
#[test]
fn the_filters_renormalization_rescaled_are_logged_at_each_logged_step() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let clipped = |name: &str, radius: Option<&str>| {
        let mut args = quick(dir.path(), &data, name, "zfnet", "1");
        if let Some(r) = radius {
            args.extend(["--set".into(), format!("train.renorm_radius={r}")]);
        }
        run(&args);
        let tb = crate::common::tensorboard(&dir.path().join("runs").join(name));
        tb["scalars"]["train/renorm_clipped"]
            .as_array()
            .map(|a| a.iter().map(|e| e[1].as_f64().unwrap()).collect::<Vec<_>>())
    };
    // ZFNet's conv layers: 96 + 256 + 384 + 384 + 256 filters.
    // The first step rescales all; the second those its update moved past
    // the radius again.
    let tight = clipped("tight", Some("1e-6")).unwrap();
    assert_eq!(tight.len(), 2);
    assert_eq!(tight[0], 1376.0);
    assert!(tight[1] > 0.0 && tight[1] <= 1376.0, "{tight:?}");
    assert_eq!(clipped("loose", Some("100")), Some(vec![0.0, 0.0]));
    assert_eq!(clipped("off", None), None);
}

/// The last row's value of `column` in a run's metrics.csv.
fn last_metric(run_dir: &Path, column: &str) -> f64 {
    let text = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == column).unwrap();
    let row = lines
        .rfind(|l| !l.split(',').nth(at).unwrap_or("").is_empty())
        .unwrap_or_else(|| panic!("no {column} in {text}"));
    row.split(',').nth(at).unwrap().parse().unwrap()
}

#[test]
fn ten_crop_validation_eval_and_predict_average_the_same_ten_views() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    // Zeiler & Fergus's fixed sub-crops, Krizhevsky's lighting, validation
    // on ten crops.
    let mut args = quick(dir.path(), &data, "ten", "zfnet-seed", "1");
    args.extend(
        [
            "--set",
            "data.augment=\"zf-fixed\"",
            "--set",
            "data.lighting=0.1",
            "--set",
            "data.val_augment=\"ten-crop\"",
        ]
        .map(String::from),
    );
    run(&args);
    let run_dir = dir.path().join("runs/ten");
    let ck = run_dir.join("checkpoints/latest");
    let config = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    assert!(
        config.contains("augment = \"zf-fixed\"")
            && config.contains("lighting = 0.1")
            && config.contains("val_augment = \"ten-crop\""),
        "{config}"
    );
    // `eval --ten-crop` is the validation pass: the same loss and top-1.
    let eval = |ten: bool| -> serde_json::Value {
        let mut a = vec!["eval", "--checkpoint", s(&ck), "--data"];
        let val = data.join("val");
        a.push(s(&val));
        a.extend(["--json", "--batch-size", "7"]);
        if ten {
            a.push("--ten-crop");
        }
        serde_json::from_str(&ok(&a)).unwrap()
    };
    let ten = eval(true);
    assert_eq!(ten["crops"], "ten-crop");
    assert_eq!(ten["images"], 4);
    let loss = ten["loss"].as_f64().unwrap();
    let val_loss = last_metric(&run_dir, "val_loss");
    assert!((loss - val_loss).abs() < 1e-4, "{loss} vs {val_loss}");
    assert_eq!(
        ten["top1"].as_f64().unwrap(),
        last_metric(&run_dir, "val_top1")
    );
    // The centre crop alone is another measurement.
    let one = eval(false);
    assert_eq!(one["crops"], "eval");
    assert!(
        (one["loss"].as_f64().unwrap() - loss).abs() > 1e-6,
        "{one} {ten}"
    );
    // predict --ten-crop: the same top-1 over the validation images, and
    // its input is ten views per image, odd views mirroring even ones.
    let input = dir.path().join("ten.safetensors");
    let val = data.join("val");
    let out = ok(&[
        "predict",
        "--checkpoint",
        s(&ck),
        s(&val),
        "--ten-crop",
        "--json",
        "--save-input",
        s(&input),
    ]);
    let predictions: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let hits = predictions
        .iter()
        .filter(|p| {
            let image = p["image"].as_str().unwrap();
            let class = p["top"][0]["class"].as_i64().unwrap();
            image.contains(&format!("/{:02}-", class))
        })
        .count();
    assert_eq!(hits as f64 / 4.0, ten["top1"].as_f64().unwrap(), "{out}");
    let x = zftrain_checkpoints::read_safetensors(&input)
        .unwrap()
        .0
        .remove(0)
        .1;
    assert_eq!(x.size(), [4, 10, 3, 224, 224]);
    let mirrored = x.narrow(1, 0, 1).flip([4]);
    assert_eq!(mirrored, x.narrow(1, 1, 1));
    assert_ne!(x.narrow(1, 0, 1), x.narrow(1, 2, 1));
    // A folder whose classes are not the network's is refused, naming them.
    let other = dir.path().join("other");
    for class in ["yak", "zebra"] {
        std::fs::create_dir_all(other.join(class)).unwrap();
        std::fs::copy(
            data.join("val/00-disc/00000.jpg"),
            other.join(class).join("a.jpg"),
        )
        .unwrap();
    }
    let err = fails(&["eval", "--checkpoint", s(&ck), "--data", s(&other)]);
    assert!(
        err.contains("class") && err.contains("the weights"),
        "{err}"
    );
}
