//! The command line answers the questions users ask: errors name the flag,
//! the `--set` or the file line that caused them; `--print-config` and
//! `--dry-run` check without training; paths given to the wrong flag get a
//! hint.

use crate::common::{fails, ok, s};
use crate::train::{quick, tiny_data};

fn run_fails(args: Vec<String>, extra: &[&str]) -> String {
    let mut a = args;
    a.extend(extra.iter().map(|x| x.to_string()));
    fails(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn errors_name_the_set_the_flag_or_the_file_line_that_caused_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_data(d);
    let base = || quick(d, &data, "blame", "zfnet-seed", "1");
    // A --set of the wrong type is the --set's fault, not the file's.
    let config = d.join("run.toml");
    std::fs::write(&config, "name = \"blame\"\n\n[optim]\nmomentum = 0.9\n").unwrap();
    let err = run_fails(base(), &["--config", s(&config), "--set", "optim.lr=abc"]);
    assert!(err.contains("--set optim.lr=abc:"), "{err}");
    assert!(!err.contains("run.toml"), "{err}");
    // A value out of range from a flag names the flag.
    let err = run_fails(base(), &["--lr=-1"]);
    assert!(
        err.contains("config key 'optim.lr'") && err.contains("(from --lr -1.0)"),
        "{err}"
    );
    // In a file: the file and the line.
    std::fs::write(
        &config,
        "name = \"blame\"\n\n[optim]\nmomentum = 0.9\nlr = \"fast\"\n",
    )
    .unwrap();
    let err = run_fails(base(), &["--config", s(&config)]);
    assert!(err.contains("run.toml") && err.contains("line 5"), "{err}");
    std::fs::write(&config, "[optim]\nmomentum = 1.5\n").unwrap();
    let err = run_fails(base(), &["--config", s(&config)]);
    assert!(
        err.contains("optim.momentum") && err.contains("run.toml line 2"),
        "{err}"
    );
    assert!(!d.join("runs/blame").exists());
}

#[test]
fn wrong_paths_get_the_path_named_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_data(d);
    let err = fails(&["train", "--resume", s(&d.join("typo"))]);
    assert!(
        err.contains("--resume") && err.contains("typo") && err.contains("no such"),
        "{err}"
    );
    let err = run_fails(
        quick(d, &data.join("train"), "hint", "zfnet-seed", "1"),
        &[],
    );
    assert!(
        err.contains(&format!("did you mean --data {}", data.display())),
        "{err}"
    );
    let err = run_fails(quick(d, &d.join("nowhere"), "hint", "zfnet-seed", "1"), &[]);
    assert!(err.contains("--data") && err.contains("nowhere"), "{err}");
}

#[test]
fn print_config_and_dry_run_check_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_data(d);
    let mut args = quick(d, &data, "dry", "zfnet-seed", "3");
    args.push("--print-config".into());
    let text = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let config: toml::Value = toml::from_str(&text).expect("--print-config prints TOML");
    assert_eq!(config["train"]["epochs"].as_integer(), Some(3));
    assert_eq!(config["model"]["arch"].as_str(), Some("zfnet-seed"));
    let mut args = quick(d, &data, "dry", "zfnet-seed", "3");
    args.push("--dry-run".into());
    let report = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for line in [
        "train: 8 images in 2 classes (4 to 4 per class)",
        "val: 4 images",
        "network: zfnet-seed",
        "disk:",
        "nothing written",
    ] {
        assert!(report.contains(line), "{line}: {report}");
    }
    assert!(
        !d.join("runs").exists(),
        "a dry run wrote {}",
        d.join("runs").display()
    );
    // The first problem ends it: a class without validation images.
    for f in std::fs::read_dir(data.join("val/01-square")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    // The run refuses it too (the same check, the same words).
    let dry = run_fails(quick(d, &data, "dry", "zfnet-seed", "3"), &["--dry-run"]);
    let real = run_fails(quick(d, &data, "dry", "zfnet-seed", "3"), &[]);
    for err in [&dry, &real] {
        assert!(
            err.contains("val/01-square") && err.contains("holds no"),
            "{err}"
        );
    }
    assert!(!d.join("runs").exists());
}

/// `ZFTRAIN_CPU_BF16` switches what `auto` takes the CPU to offer, either
/// way on any machine; another value is refused by name before anything is
/// written; without it, `auto` follows the CPU's flags.
#[test]
fn the_bf16_switch_decides_auto_either_way_and_a_bad_value_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_data(d);
    let mut args = quick(d, &data, "switch", "zfnet-seed", "1");
    args.push("--dry-run".into());
    let with = |value: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zftrain"));
        cmd.args(&args);
        match value {
            Some(v) => cmd.env("ZFTRAIN_CPU_BF16", v),
            None => cmd.env_remove("ZFTRAIN_CPU_BF16"),
        };
        cmd.output().expect("zftrain runs")
    };
    let line = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.contains("precision: "))
            .unwrap_or_else(|| panic!("no precision line: {text}"))
            .to_string()
    };
    let off = line(&with(Some("0")));
    assert!(off.contains("auto: fp32 (ZFTRAIN_CPU_BF16=0)"), "{off}");
    let on = line(&with(Some("1")));
    assert!(
        on.contains("auto: bf16") && on.contains("ZFTRAIN_CPU_BF16=1"),
        "{on}"
    );
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let native = flags.lines().filter(|l| l.starts_with("flags")).any(|l| {
        l.split_whitespace()
            .any(|f| f == "avx512_bf16" || f == "amx_bf16")
    });
    let detected = line(&with(None));
    let expected = if native {
        "auto: bf16"
    } else {
        "auto: fp32 (no bf16 instructions)"
    };
    assert!(detected.contains(expected), "{expected}: {detected}");
    let bad = with(Some("yes"));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("ZFTRAIN_CPU_BF16=yes"), "{err}");
    assert!(!d.join("runs").exists(), "nothing written");
}

#[test]
fn version_says_what_the_binary_runs_on() {
    let out = ok(&["--version"]);
    for part in [
        "zftrain ",
        "tch 0.24.0 on libtorch 2.11.0",
        "CUDA: ",
        "cuDNN: ",
        "NCCL: ",
        "CPU: ",
        "avx2 ",
        "precision auto",
        "cache: ",
    ] {
        assert!(out.contains(part), "{part}: {out}");
    }
}

#[test]
fn completions_load_into_the_shells_and_know_the_flags() {
    let bash = ok(&["completions", "bash"]);
    assert!(
        bash.contains("--init-from") && bash.contains("--dry-run"),
        "bash script lacks the train flags"
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_zftrain"));
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "source <('{}' completions bash) && complete -p zftrain",
                bin.display()
            ),
        ])
        .output()
        .unwrap();
    let registered = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && registered.contains("zftrain"),
        "{registered}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ok(&["completions", "fish"]).contains("complete -c zftrain"));
    assert!(ok(&["completions", "zsh"]).contains("#compdef zftrain"));
    assert!(fails(&["completions", "tcsh"]).contains("tcsh"));
}

#[test]
fn rust_log_sets_the_level_of_train_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_data(d);
    let info_lines = |name: &str, level: Option<&str>| {
        let args = quick(d, &data, name, "zfnet-seed", "1");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zftrain"));
        cmd.args(&args).env_remove("RUST_LOG");
        if let Some(l) = level {
            cmd.env("RUST_LOG", l);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::read_to_string(d.join("runs").join(name).join("train.log")).unwrap();
        log.lines().filter(|l| l.contains(" INFO ")).count()
    };
    assert!(info_lines("default", None) > 0, "info is the default level");
    assert_eq!(
        info_lines("quiet", Some("warn")),
        0,
        "RUST_LOG=warn keeps info out"
    );
}

#[test]
fn predict_takes_folders_and_patterns_and_streams_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_data(d);
    let ck = d.join("ck");
    crate::common::init("zfnet-seed", "2", "3", &ck);
    let lines = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec![
            "predict",
            "--checkpoint",
            s(&ck),
            "--jsonl",
            "--batch-size",
            "3",
        ];
        args.extend_from_slice(extra);
        ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    };
    let all = lines(&[s(&data.join("val"))]);
    assert_eq!(all.len(), 4, "every image of the folder, in batches of 3");
    let images: Vec<&str> = all.iter().map(|v| v["image"].as_str().unwrap()).collect();
    let mut sorted = images.clone();
    sorted.sort();
    assert_eq!(images, sorted, "a folder's images in sorted order");
    let pattern = data.join("val/*/00000.jpg");
    let first = lines(&[s(&pattern)]);
    assert_eq!(first.len(), 2, "one image per class folder");
    // The same image, the same logits in another batch (predict computes
    // in fp32): up to the kernels' summation order, which depends on the
    // batch size and the CPU's vector width.
    let logits = |v: &serde_json::Value| -> Vec<f64> {
        v["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (a, b) = (logits(&first[0]), logits(&all[0]));
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let tolerance = 1e-4 * scale;
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= tolerance, "{a:?} vs {b:?}");
    }
    let err = fails(&[
        "predict",
        "--checkpoint",
        s(&ck),
        s(&data.join("val/*/*.gif")),
    ]);
    assert!(err.contains("no file matches"), "{err}");
}

/// `--dry-run` decides about the run directory with the run's own code: a
/// folder without a checkpoint is refused by both unless `--restart`, and
/// one with checkpoints by both, naming `--resume`.
#[test]
fn dry_run_and_the_run_agree_about_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_data(d);
    let run_dir = d.join("runs/pre");
    std::fs::create_dir_all(&run_dir).unwrap();
    let dry = run_fails(quick(d, &data, "pre", "zfnet-seed", "1"), &["--dry-run"]);
    let real = run_fails(quick(d, &data, "pre", "zfnet-seed", "1"), &[]);
    for err in [&dry, &real] {
        assert!(
            err.contains("no complete checkpoint") && err.contains("--restart"),
            "{err}"
        );
    }
    // (The refused run leaves its lock file; the dry run adds nothing.)
    let names = || {
        let mut v: Vec<_> = std::fs::read_dir(&run_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = names();
    let mut args = quick(d, &data, "pre", "zfnet-seed", "1");
    args.extend(["--dry-run".to_string(), "--restart".to_string()]);
    let report = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(report.contains("nothing written"), "{report}");
    assert_eq!(names(), before, "a dry run wrote into it");
    // A finished run.
    let args = quick(d, &data, "done", "zfnet-seed", "1");
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let dry = run_fails(quick(d, &data, "done", "zfnet-seed", "1"), &["--dry-run"]);
    let real = run_fails(quick(d, &data, "done", "zfnet-seed", "1"), &[]);
    for err in [&dry, &real] {
        assert!(
            err.contains("already exists") && err.contains("--resume"),
            "{err}"
        );
    }
}
