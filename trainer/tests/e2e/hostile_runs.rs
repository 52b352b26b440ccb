//! A run directory someone else could write is data: links and FIFOs
//! planted in it before a `--resume` are refused by name, and nothing
//! outside the run is truncated, written or pruned.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::common::{ok, s, zftrain};
use crate::train::{quick, tiny_data};

/// A one-epoch run `name` on the tiny data set in `d`: its directory.
fn trained_run(d: &Path, name: &str) -> std::path::PathBuf {
    let data = tiny_data(d);
    let args = quick(d, &data, name, "zfnet-seed", "1");
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    d.join("runs").join(name)
}

/// `train --resume run --epochs 2`: the error text, after asserting failure.
fn resume_refused(run: &Path) -> String {
    let out = zftrain(&["train", "--resume", s(run), "--epochs", "2"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "resumed through a planted link: {err}"
    );
    err
}

#[test]
fn links_and_fifos_planted_in_a_run_directory_are_refused_and_nothing_outside_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = trained_run(d, "A");
    // What an attacker points the links at.
    let outside = d.join("outside");
    std::fs::create_dir_all(outside.join("project/bundle")).unwrap();
    std::fs::create_dir_all(outside.join("project/out")).unwrap();
    std::fs::write(outside.join("project/bundle/keep.txt"), "mine").unwrap();
    std::fs::write(outside.join("project/out/keep.txt"), "mine").unwrap();
    let precious = outside.join("precious.txt");
    std::fs::write(&precious, "precious").unwrap();
    let foreign = outside.join("checkpoints");
    copy_dir(
        &run.join("checkpoints/latest"),
        &foreign.join("step-000000001"),
    );

    let plant = |at: &str, to: &Path| {
        let link = run.join(at);
        // Moved out of the run while the link stands in its place.
        let moved = d.join(format!("moved-{}", at.replace('/', "_")));
        if std::fs::symlink_metadata(&link).is_ok() {
            std::fs::rename(&link, &moved).unwrap();
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        symlink(to, &link).unwrap();
        let err = resume_refused(&run);
        assert!(
            err.contains(at) && err.contains("symbolic link"),
            "{at}: {err}"
        );
        std::fs::remove_file(&link).unwrap();
        if std::fs::symlink_metadata(&moved).is_ok() {
            std::fs::rename(&moved, &link).unwrap();
        }
    };
    plant("lock", &precious);
    plant("train.log", &precious);
    plant("hooks/deconv", &outside);
    plant("checkpoints", &foreign);
    plant("hooks/stats/epoch-002", &outside.join("project"));
    // A FIFO where the log goes would hang an open.
    let log = run.join("train.log");
    std::fs::rename(&log, d.join("moved-log")).unwrap();
    let c = std::ffi::CString::new(s(&log)).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let err = resume_refused(&run);
    assert!(err.contains("train.log") && err.contains("FIFO"), "{err}");
    std::fs::remove_file(&log).unwrap();

    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "precious");
    assert!(
        foreign.join("step-000000001/manifest.json").is_file(),
        "pruned"
    );
    for f in ["project/bundle/keep.txt", "project/out/keep.txt"] {
        assert_eq!(
            std::fs::read_to_string(outside.join(f)).unwrap(),
            "mine",
            "{f}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        3,
        "nothing written into the linked folder"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A folder that merely has a checkpoint's name is someone's: when the run
/// reaches its step it is refused by name, never replaced or deleted.
#[test]
fn a_foreign_folder_named_like_the_next_checkpoint_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = trained_run(d, "F");
    // Epoch 1 ended at step 2; step 3 is the next checkpoint.
    let foreign = run.join("checkpoints/step-000000003");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let out = zftrain(&[
        "train",
        "--resume",
        s(&run),
        "--epochs",
        "2",
        "--set",
        "checkpoint.every_steps=1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("step-000000003") && err.contains("not a zftrain checkpoint"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine"
    );
}
