//! Real processes stopped by real signals: SIGINT and SIGTERM checkpoint
//! and exit 130, and the run resumes to exactly the weights of an
//! uninterrupted one; SIGKILL at random moments (during steps and checkpoint
//! writes) never leaves a checkpoint that resume would load half-written.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{ok, s};

fn data(dir: &Path, per_class: usize) -> PathBuf {
    crate::common::synth(dir, per_class, 1, 64, 48)
}

fn args(dir: &Path, data: &Path, name: &str, epochs: &str, steps: &str) -> Vec<String> {
    [
        "train",
        "--arch",
        "zfnet-seed",
        "--data",
        s(data),
        "--runs-dir",
        s(&dir.join("runs")),
        "--name",
        name,
        "--epochs",
        epochs,
        "--batch-size",
        "2",
        "--workers",
        "1",
        "--set",
        "train.log_every=1",
        "--set",
        "schedule.kind=constant",
        "--set",
        "train.threads=1",
        "--set",
        &format!("train.max_steps_per_epoch={steps}"),
        "--set",
        "checkpoint.keep_last=2",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until the run's log shows a training step.
pub fn wait_for_step(run: &Path, child: &mut Child) {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(run.join("train.log")).unwrap_or_default();
        if log
            .lines()
            .any(|l| l.contains(" train ") && l.contains("step="))
        {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before its first step"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no training step within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("checkpoints/latest/weights.safetensors")).unwrap()
}

#[test]
fn sigint_and_sigterm_checkpoint_exit_130_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 6);
    ok(&args(dir.path(), &data, "straight", "2", "0")
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    for (name, sig) in [("int", "-INT"), ("term", "-TERM")] {
        let run = dir.path().join("runs").join(name);
        let mut child = spawn(&args(dir.path(), &data, name, "2", "0"));
        wait_for_step(&run, &mut child);
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{sig}");
        let trainer: serde_json::Value = serde_json::from_slice(
            &std::fs::read(run.join("checkpoints/latest/trainer.json")).unwrap(),
        )
        .unwrap();
        assert!(trainer["global_step"].as_u64().unwrap() >= 1, "{trainer}");
        ok(&["train", "--resume", s(&run)]);
        assert!(
            weights(&run) == weights(&dir.path().join("runs/straight")),
            "{sig}: resumed weights differ"
        );
    }
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_half_written_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 2);
    let run = dir.path().join("runs/k");
    // One step per epoch: a checkpoint write every step, so kills land in them.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut first = true;
    for trial in 0..6 {
        let mut a = args(dir.path(), &data, "k", "1000", "1");
        if !first {
            a.extend(["--resume".to_string(), s(&run).to_string()]);
        }
        let mut child = spawn(&a);
        wait_for_step(&run, &mut child);
        while first && !run.join("checkpoints/latest").exists() {
            assert!(child.try_wait().unwrap().is_none(), "training ended early");
            std::thread::sleep(Duration::from_millis(20));
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(200 + rng % 2500));
        signal(&child, "-KILL");
        child.wait().unwrap();
        first = false;
        // Every checkpoint that is visible verifies; `latest`, if present, is one of them.
        let ckdir = run.join("checkpoints");
        for e in std::fs::read_dir(&ckdir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("step-") {
                zftrain_checkpoints::Checkpoint::open(&p)
                    .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
            }
        }
        if ckdir.join("latest").exists() {
            zftrain_checkpoints::Checkpoint::open(&ckdir.join("latest")).unwrap();
        }
        std::fs::write(run.join("train.log"), b"").unwrap();
    }
    // And the run resumes from the newest one.
    let mut a = args(dir.path(), &data, "k", "1", "1");
    a.extend(["--resume".to_string(), s(&run).to_string()]);
    let out = crate::common::zftrain(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("resumed from"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
