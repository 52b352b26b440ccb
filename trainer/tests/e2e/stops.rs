//! A stop is honoured within seconds in every phase, as a batch scheduler
//! needs (SLURM, Kubernetes and spot instances give 30-60 s between SIGTERM
//! and SIGKILL): SIGTERM is sent once the phase's own progress line shows
//! it is under way (never after a wall-clock wait), and the test checks the
//! exit, what was checkpointed and that a resume redoes what was cut.
//! Each prints the seconds from the signal to the exit.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use crate::common::{ok, s};
use crate::faults::signal;
use crate::train::quick;

/// `zftrain args` with stdout's lines arriving on a channel.
fn spawn(args: &[String]) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (send, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

/// Waits for a line starting with `prefix` (a phase's progress line), or
/// fails if the process ends first; the lines before it.
fn wait_for(lines: &Receiver<String>, child: &mut Child, prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.starts_with(prefix) => return seen,
            Ok(line) => seen.push(line),
            Err(_) => {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("ended ({status}) before '{prefix}': {seen:#?}");
                }
            }
        }
    }
}

/// SIGTERM now; the exit status, the seconds to it and stderr.
fn terminate(child: Child, phase: &str) -> (ExitStatus, f64, String) {
    let sent = Instant::now();
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed().as_secs_f64();
    println!("stops: SIGTERM during {phase}: exit after {took:.1} s");
    (
        out.status,
        took,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn trainer_json(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("checkpoints/latest/trainer.json")).unwrap())
        .unwrap()
}

/// One epoch of one step on `data`, a progress line after every batch of
/// every pass (`train.log_every_s = 0`), hooks as `hooks` says.
fn args(dir: &Path, data: &Path, name: &str, hooks: bool) -> Vec<String> {
    let mut a = quick(dir, data, name, "zfnet-seed", "1");
    if hooks {
        a.retain(|x| x != "--no-hooks");
    }
    for set in [
        "train.max_steps_per_epoch=1",
        "train.log_every_s=0",
        "probe.batch_size=2",
    ] {
        a.extend(["--set".to_string(), set.to_string()]);
    }
    a
}

fn data(dir: &Path) -> PathBuf {
    crate::common::synth(dir, 2, 60, 64, 48)
}

#[test]
fn sigterm_during_validation_checkpoints_the_last_step_and_the_resume_validates() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let run = dir.path().join("runs/val");
    let (mut child, lines) = spawn(&args(dir.path(), &data, "val", false));
    wait_for(&lines, &mut child, "validation: ");
    let (status, took, err) = terminate(child, "validation");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(took < 60.0, "{took} s");
    // The checkpoint holds the epoch's last step, its end still to do.
    let state = trainer_json(&run);
    assert_eq!(
        (state["epoch"].as_u64(), state["batch"].as_u64()),
        (Some(0), Some(1))
    );
    let tb = crate::common::tensorboard(&run);
    assert!(
        tb["scalars"]["val/top1"].is_null(),
        "validation was not cut: {tb}"
    );
    let out = ok(&["train", "--resume", s(&run)]);
    assert!(out.contains("validation: 120/120 images in"), "{out}");
    let tb = crate::common::tensorboard(&run);
    assert_eq!(tb["scalars"]["val/top1"].as_array().map(Vec::len), Some(1));
    assert_eq!(trainer_json(&run)["epoch"].as_u64(), Some(1));
}

#[test]
fn sigterm_during_the_hooks_probe_pass_checkpoints_and_the_resume_runs_the_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let run = dir.path().join("runs/hooks");
    let mut a = args(dir.path(), &data, "hooks", true);
    a.extend(["--set", "probe.images=120"].map(String::from));
    let (mut child, lines) = spawn(&a);
    wait_for(&lines, &mut child, "probe pass: ");
    let (status, took, err) = terminate(child, "the hooks' probe pass");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(took < 60.0, "{took} s");
    assert!(
        !err.contains("hook failed") && !err.contains("reported; training goes on"),
        "{err}"
    );
    let state = trainer_json(&run);
    assert_eq!(
        (state["epoch"].as_u64(), state["batch"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(
        !run.join("hooks/deconv/epoch-001").exists(),
        "the deconv hook was not cut"
    );
    ok(&["train", "--resume", s(&run)]);
    assert!(
        run.join("hooks/deconv/epoch-001").is_dir(),
        "redone on resume"
    );
    assert_eq!(trainer_json(&run)["epoch"].as_u64(), Some(1));
    // The loggers come after the hooks: the cut end logged nothing, the
    // redone one logs the epoch once.
    let tb = crate::common::tensorboard(&run);
    assert_eq!(
        tb["scalars"]["val/top1"].as_array().map(Vec::len),
        Some(1),
        "{tb}"
    );
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let epoch_rows = csv.lines().filter(|l| l.split(',').nth(2) == Some("epoch"));
    assert_eq!(epoch_rows.count(), 1, "{csv}");
}

#[test]
fn sigterm_before_the_first_step_ends_at_once_and_packing_stops_too() {
    let dir = tempfile::tempdir().unwrap();
    // Camera-sized images, so the passes take a while on any machine.
    let data = crate::common::synth(dir.path(), 150, 1, 640, 480);
    // The per-pixel mean over every training image, a line per image.
    let mut a = args(dir.path(), &data, "mean", false);
    a.extend(
        [
            "--set",
            "data.pixel_mean=true",
            "--set",
            "data.pixel_mean_images=0",
        ]
        .map(String::from),
    );
    let (mut child, lines) = spawn(&a);
    wait_for(&lines, &mut child, "per-pixel mean: ");
    let (status, took, err) = terminate(child, "the per-pixel mean");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(took < 30.0, "{took} s");
    assert!(err.contains("stopped before the first step"), "{err}");
    let run = dir.path().join("runs/mean");
    assert!(
        !run.join("checkpoints/latest").exists(),
        "nothing trained, nothing saved"
    );
    // `data pack`: the signal's default action, at once; only the
    // hidden partial file is left, never a pack that looks whole.
    let pack = dir.path().join("train.zfpack");
    let (mut child, lines) = spawn(
        &[
            "data",
            "pack",
            "--src",
            s(&data.join("train")),
            "--out",
            s(&pack),
            "--log-every-s",
            "0",
        ]
        .map(String::from),
    );
    wait_for(&lines, &mut child, "packing: ");
    let (status, _, _) = terminate(child, "packing");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.signal() == Some(libc::SIGTERM) || status.code() == Some(130),
        "{status}"
    );
    assert!(!pack.exists(), "a pack cut short looks whole");
}
