//! Helpers: run the binary, run the PyTorch side of the interop checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `zftrain` with `args`; returns the output whatever the exit status.
pub fn zftrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .args(args)
        .output()
        .expect("zftrain runs")
}

/// Runs `zftrain` and asserts success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = zftrain(args);
    assert!(
        out.status.success(),
        "zftrain {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `zftrain`, asserts failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = zftrain(args);
    assert!(
        !out.status.success(),
        "zftrain {args:?} should fail, printed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8 output")
}

/// Says on stderr, past the test harness's capture, that `test` did not
/// run on this machine and why (`scripts/test` counts these lines).
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "skipped: {test}: {why}");
}

/// Whether the libtorch the tests link is a CUDA build (`scripts/setup
/// --cuda`, or `LIBTORCH` at a PyTorch install): then CUDA is already
/// there, and the tests of what happens without it, or with the stand-in
/// library, cannot run; each says so by name and returns.
pub fn skip_with_cuda_libtorch(test: &str) -> bool {
    let dir = std::env::var_os("LIBTORCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.libtorch"));
    let dir = match dir.is_relative() {
        true => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir),
        false => dir,
    };
    let cuda = dir.join("lib/libtorch_cuda.so");
    let linked = cuda.exists();
    if linked {
        skip(
            test,
            &format!(
                "the linked libtorch is a CUDA build ({} exists)",
                cuda.display()
            ),
        );
    }
    linked
}

/// The Python interpreter of the environment that `scripts/setup` made
/// (`.cargo/config.toml` points `ZFTRAIN_PYTHON` at it).
pub fn python() -> PathBuf {
    let p = PathBuf::from(
        std::env::var("ZFTRAIN_PYTHON").expect("ZFTRAIN_PYTHON is set by .cargo/config.toml"),
    );
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup (make test does)",
        p.display()
    );
    p
}

/// Runs `trainer/tests/python/interop.py` with `args`; asserts success, returns stdout.
pub fn interop(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "interop.py {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `path` as `&str` (test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Reads a run directory with TensorBoard's own reader (see
/// `tensorboard/tests/read_events.py`): scalars, images, histograms, text.
pub fn tensorboard(logdir: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tensorboard/tests/read_events.py");
    python_json(&[script.as_os_str(), logdir.as_os_str()])
}

/// What the Python environment prints as JSON when given `args`.
fn python_json<T: serde::de::DeserializeOwned>(args: &[&std::ffi::OsStr]) -> T {
    let out = Command::new(python())
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from Python")
}

/// Every tag in `tb` (what [`tensorboard`] read) carries a description,
/// the plugins' own records aside; returns how many tags it checked.
pub fn assert_described(tb: &serde_json::Value) -> usize {
    let descriptions = tb["descriptions"].as_object().expect("descriptions");
    let bare: Vec<&String> = descriptions
        .iter()
        .filter(|(tag, d)| {
            d.as_str() == Some("")
                && !tag.starts_with("_hparams_/")
                && *tag != "custom_scalars__config__"
        })
        .map(|(tag, _)| tag)
        .collect();
    assert!(bare.is_empty(), "tags without a description: {bare:?}");
    descriptions.len()
}

/// A run's `metrics.csv` as pandas reads it: one JSON object per row
/// (empty cells are `null`).
pub fn metrics_csv(run_dir: &Path) -> Vec<serde_json::Value> {
    let code = "import sys, pandas\n\
                frame = pandas.read_csv(sys.argv[1])\n\
                print(frame.to_json(orient='records'))";
    let csv = run_dir.join("metrics.csv");
    python_json(&["-c".as_ref(), code.as_ref(), csv.as_os_str()])
}

/// A synthetic ImageFolder of 2 classes in `dir/data` (real JPEG files).
pub fn synth(
    dir: &Path,
    train_per_class: usize,
    val_per_class: usize,
    width: u32,
    height: u32,
) -> PathBuf {
    let data = dir.join("data");
    let (t, v, w, h) = (
        train_per_class.to_string(),
        val_per_class.to_string(),
        width.to_string(),
        height.to_string(),
    );
    let args = [
        "data",
        "synth",
        "--out",
        s(&data),
        "--classes",
        "2",
        "--train-per-class",
        &t,
        "--val-per-class",
        &v,
    ];
    let size = ["--width", &w, "--height", &h];
    ok(&args.iter().chain(size.iter()).copied().collect::<Vec<_>>());
    data
}

/// `zftrain predict --json --save-input INPUT` for `images` with weights
/// given as `source` (`--weights FILE` or `--checkpoint DIR`); returns the JSON.
pub fn predict_json(source: [&str; 2], images: &[&Path], input: &Path) -> String {
    let mut args = vec![
        "predict",
        source[0],
        source[1],
        "--json",
        "--save-input",
        s(input),
    ];
    for image in images {
        args.extend(["--image", s(image)]);
    }
    ok(&args)
}

/// `zftrain init --arch ARCH --classes CLASSES --seed SEED --out OUT`.
pub fn init(arch: &str, classes: &str, seed: &str, out: &Path) {
    ok(&[
        "init",
        "--arch",
        arch,
        "--classes",
        classes,
        "--seed",
        seed,
        "--out",
        s(out),
    ]);
}

/// `zftrain export --checkpoint CHECKPOINT --out OUT`.
pub fn export(checkpoint: &Path, out: &Path) {
    ok(&["export", "--checkpoint", s(checkpoint), "--out", s(out)]);
}
