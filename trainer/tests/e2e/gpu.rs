//! What the GPU paths do on a machine without a GPU: the binary runs against
//! a full CUDA libtorch (the test environment's PyTorch) and says that no
//! device is usable; `scripts/gpu-check` stops at once with a clear message.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::python;

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

#[test]
fn a_cuda_libtorch_without_a_device_is_reported_and_gpu_check_stops_clearly() {
    let lib = torch_lib();
    let cuda = lib.join("libtorch_cuda.so");
    assert!(
        cuda.is_file(),
        "{} (the test environment has PyPI's CUDA torch)",
        cuda.display()
    );
    // This machine has no GPU: libtorch_cuda.so loads, CUDA finds no device.
    let out = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .args(["bench", "deconv", "--gpu", "0"])
        .env("LD_LIBRARY_PATH", &lib)
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu-check");
    let started = std::time::Instant::now();
    let out = Command::new(&script)
        .arg(dir.path().join("out"))
        .env("PYTHON", python())
        .env("ZFTRAIN_BIN", env!("CARGO_BIN_EXE_zftrain"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("CUDA is not available"), "{err}");
    let summary = std::fs::read_to_string(dir.path().join("out/summary.txt")).unwrap();
    assert!(summary.contains("not available"), "{summary}");
    assert!(started.elapsed().as_secs() < 120, "it must not hang");
}
