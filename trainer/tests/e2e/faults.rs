//! Real processes stopped by real signals: SIGINT and SIGTERM checkpoint
//! and exit 130, and the run resumes to exactly the weights of an
//! uninterrupted one; SIGKILL at random moments (during steps, checkpoint
//! writes, TensorBoard flushes and hook output) never leaves a checkpoint
//! that resume would load half-written, loses at most the checkpoint
//! interval, and leaves a TensorBoard history its reader reads.

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
        "--no-hooks",
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
    // Through libc, not the `kill` program (minimal images lack procps).
    let number = match sig {
        "-TERM" => libc::SIGTERM,
        "-INT" => libc::SIGINT,
        "-KILL" => libc::SIGKILL,
        "-STOP" => libc::SIGSTOP,
        "-CONT" => libc::SIGCONT,
        other => panic!("no such signal in the tests: {other}"),
    };
    // SAFETY: signals a child process this test started.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, number) };
    assert_eq!(
        r,
        0,
        "kill {sig} {}: {}",
        child.id(),
        std::io::Error::last_os_error()
    );
}

/// Waits until the run's log shows a training step.
pub fn wait_for_step(run: &Path, child: &mut Child) {
    NewLog {
        path: run.join("train.log"),
        start: 0,
    }
    .wait_for_step(child);
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
        assert!(
            checkpoint_step(&run.join("checkpoints/latest")) >= 1,
            "{sig}"
        );
        ok(&["train", "--resume", s(&run)]);
        assert!(
            weights(&run) == weights(&dir.path().join("runs/straight")),
            "{sig}: resumed weights differ"
        );
    }
}

/// Trials of the SIGKILL loop: `ZFTRAIN_RELIABILITY_TRIALS` (`make
/// reliability` sets 24), 6 in `make test`.
fn trials() -> usize {
    std::env::var("ZFTRAIN_RELIABILITY_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

/// The `step=` of the last line of `text` that contains `what`.
fn last_step(text: &str, what: &str) -> Option<u64> {
    text.lines()
        .rev()
        .filter(|l| l.contains(what))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("step=")))
        .find_map(|v| v.parse().ok())
}

/// What a run's `train.log` gained since a point: the lines of one process.
struct NewLog {
    path: PathBuf,
    start: usize,
}

impl NewLog {
    fn at_end_of(run: &Path) -> NewLog {
        let path = run.join("train.log");
        let start = std::fs::metadata(&path).map_or(0, |m| m.len() as usize);
        NewLog { path, start }
    }

    fn text(&self) -> String {
        let log = std::fs::read(&self.path).unwrap_or_default();
        String::from_utf8_lossy(&log[self.start.min(log.len())..]).into_owned()
    }

    /// Waits until this process logged a training step.
    fn wait_for_step(&self, child: &mut Child) {
        self.wait_for_steps(child, 1);
    }

    /// Waits until this process logged `n` training steps. (The limit only
    /// ends a hung test; the waiting itself is for the log lines.)
    fn wait_for_steps(&self, child: &mut Child, n: usize) {
        let started = Instant::now();
        while self
            .text()
            .lines()
            .filter(|l| l.contains(" train "))
            .count()
            < n
        {
            assert!(
                child.try_wait().unwrap().is_none(),
                "training ended before {n} steps"
            );
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "fewer than {n} steps in 10 minutes"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A xorshift draw.
fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// The global step a checkpoint holds.
fn checkpoint_step(ck: &Path) -> u64 {
    let trainer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("trainer.json")).unwrap()).unwrap();
    trainer["global_step"].as_u64().unwrap()
}

/// Every visible checkpoint verifies (`latest` too); the newest step.
fn verify_checkpoints(run: &Path, trial: usize) -> Option<u64> {
    let ckdir = run.join("checkpoints");
    let mut newest = None;
    for e in std::fs::read_dir(&ckdir).into_iter().flatten() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(step) = name.strip_prefix("step-") {
            zftrain_checkpoints::Checkpoint::open(&p)
                .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
            newest = newest.max(step.parse::<u64>().ok());
        }
    }
    if ckdir.join("latest").exists() {
        zftrain_checkpoints::Checkpoint::open(&ckdir.join("latest"))
            .unwrap_or_else(|e| panic!("trial {trial}: latest: {e}"));
    }
    newest
}

#[test]
fn sigkill_at_random_moments_loses_at_most_the_checkpoint_interval() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 8);
    let run = dir.path().join("runs/k");
    // Epochs of 8 steps, a checkpoint every 2 steps and at each epoch's
    // end, TensorBoard flushed with each, and a hook writing files and
    // summaries after every epoch: kills land in steps, checkpoint writes,
    // flushes and hook output.
    let config = dir.path().join("hooks.toml");
    std::fs::write(
        &config,
        "[checkpoint]\nevery_steps = 2\nkeep_last = 2\n\n[probe]\nimages = 2\nbatch_size = 2\n\n\
         [[hooks]]\nkind = \"dead_filters\"\nschedule = { every_epochs = 1 }\n",
    )
    .unwrap();
    let interval = 2u64;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let (n, mut resumed, mut worst_loss) = (trials(), 0usize, 0u64);
    let mut killed_at: Option<u64> = None;
    for trial in 0..n {
        let a = args(dir.path(), &data, "k", "100000", "8");
        let mut a = crate::hooks::with_config(a, s(&config));
        if trial > 0 {
            a.extend(["--resume".to_string(), s(&run).to_string()]);
        }
        let log = NewLog::at_end_of(&run);
        let mut child = spawn(&a);
        log.wait_for_step(&mut child);
        // The first process runs until there is a checkpoint to resume from.
        while trial == 0 && !run.join("checkpoints/latest").exists() {
            assert!(child.try_wait().unwrap().is_none(), "training ended early");
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(before) = killed_at {
            // Where this process resumed, against the last step the killed
            // one logged.
            let from = last_step(&log.text(), "resumed")
                .unwrap_or_else(|| panic!("trial {trial}: no resume in the log"));
            assert!(
                from <= before + 1,
                "trial {trial}: resumed at {from} after {before}"
            );
            worst_loss = worst_loss.max(before.saturating_sub(from));
            resumed += 1;
        }
        // The kill comes after a drawn number of this process's steps (1 to
        // 10: some trials cross a periodic checkpoint or an epoch's end and
        // its hook, some do not), then a drawn moment within the next step
        // (a checkpoint write, a flush, hook output or the step itself).
        // What is checked holds wherever it lands: the draws only spread
        // the kills over the phases, whatever the machine's speed.
        let steps = 1 + next(&mut rng) % 10;
        log.wait_for_steps(&mut child, steps as usize);
        std::thread::sleep(Duration::from_millis(next(&mut rng) % 400));
        signal(&child, "-KILL");
        child.wait().unwrap();
        killed_at = last_step(&log.text(), " train ");
        verify_checkpoints(&run, trial);
    }
    // The run resumes once more, and its whole TensorBoard history (every
    // process's event file, the last record of each cut by a kill) reads
    // with TensorBoard's own reader.
    let mut a = args(dir.path(), &data, "k", "100000", "8");
    a.extend(["--resume".to_string(), s(&run).to_string()]);
    let log = NewLog::at_end_of(&run);
    let mut child = spawn(&a);
    log.wait_for_step(&mut child);
    signal(&child, "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    // TensorBoard is flushed before each checkpoint: every step up to the
    // newest one has its loss point, whatever the kills cut.
    let newest = checkpoint_step(&run.join("checkpoints/latest"));
    let tb = crate::common::tensorboard(&run);
    let steps: std::collections::BTreeSet<u64> = tb["scalars"]["train/loss"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p[0].as_u64())
        .collect();
    let missing: Vec<u64> = (1..=newest).filter(|s| !steps.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "steps up to checkpoint {newest} without a loss point in TensorBoard: {missing:?}"
    );
    println!(
        "reliability: SIGKILL trials {n}, resumes {}/{}, steps lost at most {worst_loss} \
         (checkpoint every {interval} steps), TensorBoard loss points for all {newest} checkpointed steps",
        resumed + 1,
        n
    );
    assert!(
        worst_loss <= interval,
        "lost {worst_loss} steps, more than the interval {interval}"
    );
}

/// A tmpfs of `size` mounted at `at` for the life of the value (root only);
/// `None` where mounting is not allowed.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", s(at)])
            .stderr(Stdio::null())
            .status();
        status
            .ok()
            .filter(|s| s.success())
            .map(|_| Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let o = format!("remount,size={size}");
        let status = Command::new("mount")
            .args(["-o", &o, s(&self.0)])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_while_checkpointing_is_a_clear_error_and_the_last_checkpoint_survives() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 2);
    let small = dir.path().join("small");
    let run = small.join("runs/d");
    // One checkpoint of this network is 445 MB (weights and momentum): a
    // 700 MB tmpfs holds the first and runs out in the second. Without the
    // right to mount, a 100 MB file-size limit makes the same write fail.
    let tmpfs = Tmpfs::mount(&small.join("runs"), "700m");
    let train = |epochs: &str| {
        let mut a = args(&small, &data, "d", epochs, "1");
        if run.join("checkpoints").exists() {
            a.extend(["--resume".to_string(), s(&run).to_string()]);
        }
        a
    };
    ok(&train("1").iter().map(String::as_str).collect::<Vec<_>>());
    let second = train("2");
    let out = match tmpfs {
        Some(_) => Command::new(env!("CARGO_BIN_EXE_zftrain"))
            .args(&second)
            .output()
            .unwrap(),
        None => Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 102400; trap '' XFSZ; exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_zftrain"))
            .args(&second)
            .output()
            .unwrap(),
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second checkpoint fitted: {err}");
    let why = if tmpfs.is_some() {
        "No space left on device"
    } else {
        "File too large"
    };
    assert!(
        err.contains(why) && err.contains("checkpoints"),
        "the error does not say what and where: {err}"
    );
    // Nothing half-written is visible; the first checkpoint is whole and
    // still the latest.
    let ckdir = run.join("checkpoints");
    let steps: Vec<String> = std::fs::read_dir(&ckdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "latest")
        .collect();
    assert_eq!(steps, ["step-000000001"], "{steps:?}");
    zftrain_checkpoints::Checkpoint::open(&ckdir.join("latest")).unwrap();
    assert_eq!(
        std::fs::read_link(ckdir.join("latest")).unwrap(),
        Path::new("step-000000001")
    );
    // With room again the run resumes from it and finishes.
    if let Some(t) = &tmpfs {
        t.resize("1400m");
    }
    let text = ok(&train("2").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        text.contains("resumed from") && text.contains("step 1)"),
        "{text}"
    );
    println!(
        "reliability: full disk ({}) during a checkpoint: refused with '{why}', step 1 intact, resumed",
        if tmpfs.is_some() { "700 MB tmpfs" } else { "file-size limit" }
    );
}

#[test]
fn ctrl_c_twice_aborts_at_once_and_leaves_only_whole_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 8);
    let run = dir.path().join("runs/twice");
    let trials = (trials() / 2).max(3);
    // A first checkpoint, so that every trial resumes.
    ok(&args(dir.path(), &data, "twice", "1", "2")
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    for trial in 0..trials {
        let mut a = args(dir.path(), &data, "twice", "100000", "8");
        a.extend(["--resume".to_string(), s(&run).to_string()]);
        let log = NewLog::at_end_of(&run);
        let mut child = spawn(&a);
        log.wait_for_step(&mut child);
        signal(&child, "-INT");
        // The second Ctrl-C lands while the first one's checkpoint is being
        // written, or just before or after.
        std::thread::sleep(Duration::from_millis(30 * trial as u64));
        signal(&child, "-INT");
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "trial {trial}: {status:?}");
        verify_checkpoints(&run, trial);
    }
    // Whatever the second Ctrl-C cut, the run resumes from a whole one.
    let mut a = args(dir.path(), &data, "twice", "1", "8");
    a.extend(["--resume".to_string(), s(&run).to_string()]);
    let out = crate::common::zftrain(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("resumed from"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("reliability: Ctrl-C twice, {trials} trials: exit 130 at once, no half-written checkpoint, resumed");
}

/// One writer per run directory: while a run trains, a `--resume` of it
/// and a fresh start with its name are refused with the trainer's PID and
/// change nothing; after the trainer is killed (SIGKILL, no clean-up) the
/// next `--resume` takes the lock over with a note and finishes.
#[test]
fn a_run_being_trained_is_refused_to_a_second_process_and_taken_over_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 6);
    let run = dir.path().join("runs/locked");
    let mut child = spawn(&args(dir.path(), &data, "locked", "1000", "0"));
    wait_for_step(&run, &mut child);
    let pid = child.id().to_string();
    let log_before = std::fs::read_to_string(run.join("train.log")).unwrap();
    for second in [
        vec!["train".to_string(), "--resume".into(), s(&run).into()],
        args(dir.path(), &data, "locked", "1", "0"),
    ] {
        let err = crate::common::fails(&second.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            err.contains("in use") && err.contains(&format!("process {pid}")),
            "{err}"
        );
    }
    let log_after = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(
        log_after.starts_with(&log_before) && !log_after[log_before.len()..].contains("resumed"),
        "the refused process wrote to train.log"
    );
    signal(&child, "-KILL");
    child.wait().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .args([
            "train",
            "--resume",
            s(&run),
            "--epochs",
            "1",
            "--set",
            "train.max_steps_per_epoch=1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("took over the lock of process {pid}")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("lock")).unwrap(),
        "",
        "released at the end"
    );
}

/// A pack cut in place while a run trains from it (an rsync or a copy
/// over the same name) ends the run with an error naming the pack, not
/// with SIGBUS.
#[test]
fn a_pack_cut_while_training_from_it_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 6);
    let pack = dir.path().join("train.zfpack");
    ok(&[
        "data",
        "pack",
        "--src",
        s(&data.join("train")),
        "--out",
        s(&pack),
    ]);
    let mut a = args(dir.path(), &data, "packed", "1000", "0");
    // The pack for training (--data would set the folder).
    let at = a.iter().position(|x| x == "--data").unwrap();
    a.drain(at..at + 2);
    for (key, path) in [("data.train", pack.clone()), ("data.val", data.join("val"))] {
        a.extend([
            "--set".to_string(),
            format!("{key}={:?}", path.display().to_string()),
        ]);
    }
    let run = dir.path().join("runs/packed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .args(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_step(&run, &mut child);
    let len = std::fs::metadata(&pack).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "ended by a signal? {:?}: {err}",
        out.status
    );
    assert!(
        err.contains("train.zfpack") && err.contains("changed while in use"),
        "{err}"
    );
}
