//! What the GPU paths do on a machine without a GPU.
//!
//! - Against a full CUDA libtorch (the test environment's PyTorch) the binary
//!   says that no device is usable, and `scripts/gpu-check` stops at once.
//! - Against a stand-in CUDA library (`tests/standin/cuda_hooks.cpp`, built
//!   here against the headers of the libtorch the tests link), which
//!   registers libtorch's CUDA hooks with two devices and no kernels, GPU
//!   runs get past device detection and fail at the first tensor on the
//!   device, with a message that says so. libtorch keeps its first answer to
//!   "is there CUDA?" for the life of the process, so this only passes if
//!   zftrain loads the CUDA library before anything asks.
//! - `scripts/gpu-check --cpu` runs every stage within its budget, and with
//!   the stand-in it reports the failure at detection; either way its output
//!   folder holds only the summary and a small tarball of logs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::common::{python, s};

/// The `lib` folder of the test environment's PyTorch (a CUDA build).
fn torch_lib() -> PathBuf {
    let out = Command::new(python())
        .args([
            "-c",
            "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The stand-in CUDA library, compiled once per test run.
fn standin() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let libtorch = PathBuf::from(
            std::env::var("LIBTORCH").expect("LIBTORCH is set by .cargo/config.toml"),
        );
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/cuda_hooks.cpp");
        // Named as the library it stands in for, in a folder of its own.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("standin-cuda");
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("libtorch_cuda.so");
        let tmp = dir.join(format!("building-{}.so", std::process::id()));
        let include = libtorch.join("include");
        let out = Command::new("g++")
            .args(["-std=c++17", "-shared", "-fPIC", "-O0", "-w"])
            .arg(format!("-I{}", include.display()))
            .arg(format!(
                "-I{}",
                include.join("torch/csrc/api/include").display()
            ))
            .arg(&source)
            .arg(format!("-L{}", libtorch.join("lib").display()))
            .arg(format!("-Wl,-rpath,{}", libtorch.join("lib").display()))
            .args(["-ltorch_cpu", "-lc10", "-o"])
            .arg(&tmp)
            .output()
            .expect("g++ runs (scripts/setup installs it)");
        assert!(
            out.status.success(),
            "building the stand-in CUDA library:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &lib).unwrap();
        lib
    })
}

/// Runs `zftrain args` with the stand-in as its CUDA library.
fn with_standin(args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zftrain"));
    c.args(args).env("ZFTRAIN_LIBTORCH_CUDA", standin());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn failed_with(out: &Output) -> String {
    assert!(!out.status.success(), "it should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stand-in's two devices were found, and the first tensor on one failed.
fn past_detection(err: &str) {
    assert!(
        !err.contains("no usable device"),
        "detection failed: libtorch was asked about CUDA before its CUDA library was loaded: {err}"
    );
    assert!(
        err.contains("CUDA device 0 is visible but libtorch cannot make a tensor on it")
            && err.contains("standin-cuda/libtorch_cuda.so"),
        "{err}"
    );
}

#[test]
fn gpu_runs_load_cuda_before_asking_and_fail_clearly_at_the_first_tensor() {
    if crate::common::skip_with_cuda_libtorch(
        "gpu_runs_load_cuda_before_asking_and_fail_clearly_at_the_first_tensor",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = crate::train::tiny_data(dir.path());
    let runs = dir.path().join("runs");
    // `zftrain train` on the tiny data with `extra` flags, with the stand-in.
    let train = |extra: &[&str]| {
        let mut a = vec!["train", "--arch", "zfnet-seed", "--data", s(&data)];
        a.extend(["--runs-dir", s(&runs), "--epochs", "1"]);
        a.extend_from_slice(extra);
        with_standin(&a, &[])
    };
    // --gpus on the command line (the guard in main loads CUDA first).
    past_detection(&failed_with(&train(&["--gpus", "2", "--name", "flag"])));
    // GPUs named only in a config file (train loads CUDA once it read it).
    let config = dir.path().join("gpus.toml");
    std::fs::write(&config, "[train]\ngpus = 2\n").unwrap();
    past_detection(&failed_with(&train(&[
        "--config",
        s(&config),
        "--name",
        "file",
    ])));
    assert!(
        !runs.exists(),
        "nothing is written before the devices are checked"
    );
    // The benchmark and the engine check take the same path.
    let bench = [
        "bench",
        "train-step",
        "--gpus",
        "2",
        "--batch",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
    ];
    past_detection(&failed_with(&with_standin(&bench, &[])));
    past_detection(&failed_with(&with_standin(
        &["bench", "engine", "--gpu", "0"],
        &[],
    )));
    // Preloaded before the process starts, it is found as it is.
    let preload = [("LD_PRELOAD", s(standin()))];
    let out = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .args(bench)
        .envs(preload)
        .output()
        .unwrap();
    past_detection(&failed_with(&out));
    // More devices than there are, and none at all, are named as such.
    let err = failed_with(&train(&["--gpus", "3", "--name", "three"]));
    assert!(
        err.contains("asks for CUDA device 2 but 2 device(s) are visible"),
        "{err}"
    );
    let err = failed_with(&with_standin(&bench, &[("ZFTRAIN_STANDIN_DEVICES", "0")]));
    assert!(
        err.contains("standin-cuda/libtorch_cuda.so but CUDA reports no usable device"),
        "{err}"
    );
}

/// The files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The names in a `.tar.gz`.
fn tar_names(tarball: &Path) -> String {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(tarball)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `scripts/gpu-check args` with the test environment's Python.
fn gpu_check(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu-check");
    let mut c = Command::new(&script);
    c.args(args)
        .env("PYTHON", python())
        .env("ZFTRAIN_BIN", env!("CARGO_BIN_EXE_zftrain"));
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn a_cuda_libtorch_without_a_device_is_reported_and_gpu_check_stops_clearly() {
    let lib = torch_lib();
    let cuda = lib.join("libtorch_cuda.so");
    assert!(
        cuda.is_file(),
        "{} (the test environment has PyPI's CUDA torch)",
        cuda.display()
    );
    // No GPU to see (hidden on a machine that has one): libtorch_cuda.so
    // loads, CUDA finds no device.
    let out = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .args(["bench", "deconv", "--gpu", "0"])
        .env("LD_LIBRARY_PATH", &lib)
        .env("CUDA_VISIBLE_DEVICES", "")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("torch/lib/libtorch_cuda.so")
            && err.contains("no usable device"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = gpu_check(&[s(&out_dir)], &[("CUDA_VISIBLE_DEVICES", Path::new(""))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("CUDA is not available"), "{err}");
    let summary = std::fs::read_to_string(out_dir.join("summary.txt")).unwrap();
    assert!(summary.contains("not available"), "{summary}");
    assert_eq!(listing(&out_dir), ["logs.tar.gz", "summary.txt"]);
}

#[test]
fn gpu_check_with_the_stand_in_gets_past_detection_and_reports_the_failure() {
    if crate::common::skip_with_cuda_libtorch(
        "gpu_check_with_the_stand_in_gets_past_detection_and_reports_the_failure",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = gpu_check(
        &["--budget", "540", s(&out_dir)],
        &[("ZFTRAIN_LIBTORCH_CUDA", standin())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let summary = std::fs::read_to_string(out_dir.join("summary.txt")).unwrap();
    assert!(
        summary.contains("zftrain on the device")
            && summary.contains("FAILED")
            && summary.contains("CUDA device 0 is visible but libtorch cannot make a tensor"),
        "{summary}"
    );
    assert_eq!(listing(&out_dir), ["logs.tar.gz", "summary.txt"]);
    assert!(tar_names(&out_dir.join("logs.tar.gz")).contains("logs/detect.log"));
}

#[test]
fn gpu_check_dry_run_on_the_cpu_runs_every_stage_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = gpu_check(&["--cpu", "--budget", "540", s(&out_dir)], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    let summary = std::fs::read_to_string(out_dir.join("summary.txt")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{err}\n{summary}");
    for row in [
        "zftrain on the device",
        "NCCL",
        "2 replicas on one device vs 1",
        "train step fp32",
        "deconv hook",
        "train from JPEGs",
        "loader alone",
        "mining (5 layers x 16 maps) vs eval",
        "of a 540 s budget",
    ] {
        assert!(summary.contains(row), "no '{row}' row:\n{summary}");
    }
    assert!(!summary.contains("FAILED"), "{summary}");
    let total: u64 = summary
        .lines()
        .find_map(|l| l.strip_prefix("total"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(total < 540, "{summary}");
    // Only the summary and the logs come back; the JPEGs and runs stay in
    // the scratch folder, which is gone.
    assert_eq!(listing(&out_dir), ["logs.tar.gz", "summary.txt"]);
    let names = tar_names(&out_dir.join("logs.tar.gz"));
    for log in [
        "detect",
        "step",
        "engine",
        "pytorch",
        "hook",
        "jpeg-zftrain",
        "loaders",
        "mine",
    ] {
        assert!(names.contains(&format!("logs/{log}.log")), "{names}");
    }
    assert!(!names.contains(".jpg"), "{names}");
    let size = std::fs::metadata(out_dir.join("logs.tar.gz"))
        .unwrap()
        .len();
    assert!(size < 1 << 20, "logs.tar.gz is {size} bytes");
}
