//! Hooks in training and in `zftrain visualize`: Deconvnet grids and filter
//! counts reach TensorBoard (read back by its own reader) and the run
//! directory; a failing hook is reported and training goes on unless it is
//! required.

use std::path::Path;

use crate::common::{fails, ok, s};
use crate::train::{quick, tiny_data};

/// Writes a config with a probe set of 4 images and `hooks` (TOML).
pub fn hooks_config(dir: &Path, hooks: &str) -> String {
    let path = dir.join("hooks.toml");
    std::fs::write(
        &path,
        format!("[probe]\nimages = 4\nbatch_size = 4\n\n{hooks}"),
    )
    .unwrap();
    s(&path).to_string()
}

/// `args` with the hooks of `config` (not `--no-hooks`).
pub fn with_config(mut args: Vec<String>, config: &str) -> Vec<String> {
    args.retain(|a| a != "--no-hooks");
    args.extend(["--config".to_string(), config.to_string()]);
    args
}

/// The quick one-epoch training flags for run `name` on `data`, with a
/// config of 4 probe images and `hooks` (TOML).
fn hooked(dir: &Path, data: &Path, name: &str, hooks: &str) -> Vec<String> {
    let config = hooks_config(dir, hooks);
    with_config(quick(dir, data, name, "zfnet-seed", "1"), &config)
}

const GRIDS: &str = r#"
[[hooks]]
kind = "deconv"
schedule = { every_epochs = 1 }
layers = [1, 5]
maps = 2
k = 2

[[hooks]]
kind = "dead_filters"
schedule = { epochs = [1] }

[[hooks]]
kind = "evolution"
schedule = { every_epochs = 1 }
layers = [1]
maps = 2
"#;

#[test]
fn deconv_grids_and_filter_counts_reach_tensorboard_and_visualize_reruns_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let args = hooked(dir.path(), &data, "grids", GRIDS);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let run = dir.path().join("runs/grids");
    for l in [1, 5] {
        assert!(run
            .join(format!("hooks/deconv/epoch-001/conv{l}.png"))
            .exists());
        assert!(run
            .join(format!("hooks/deconv/epoch-001/conv{l}.safetensors"))
            .exists());
    }
    assert!(!run.join("hooks/deconv/epoch-001/conv3.png").exists());
    // Layer 1's 96 filters of 7x7 (Fig. 6): 10 x 10 tiles of 28 pixels
    // under a title band.
    let filters = image::open(run.join("hooks/deconv/epoch-001/conv1-filters.png")).unwrap();
    assert_eq!((filters.width(), filters.height()), (291, 24 + 291));
    let tb = crate::common::tensorboard(&run);
    // One step axis: epoch 1 ends at global step 2, where validation, the
    // grids and the filter counts all are.
    let val_step = tb["scalars"]["val/top1"][0][0].as_i64();
    assert_eq!(val_step, Some(2), "{tb}");
    for tag in ["deconv/conv1/projections", "deconv/conv5/patches"] {
        let images = tb["images"][tag]
            .as_array()
            .unwrap_or_else(|| panic!("no {tag}: {tb}"));
        assert_eq!(
            images[0]["step"].as_i64(),
            val_step,
            "{tag} at epoch 1's end"
        );
        assert!(images[0]["width"].as_i64().unwrap() > 20, "{tag} width");
    }
    let dead = tb["scalars"]["filters/conv1/dead"].as_array().unwrap();
    assert_eq!(dead[0][0].as_i64(), val_step);
    assert_eq!(tb["images"]["filters/conv1"][0]["height"], 24 + 291, "{tb}");
    let epochs = tb["scalars"]["train/epoch"].as_array().unwrap();
    assert_eq!(*epochs.last().unwrap(), serde_json::json!([2, 1.0]));
    assert!(tb["histograms"]["filters/conv2/rms"].is_array(), "{tb}");
    let evolution = run.join("hooks/evolution/conv1.png");
    let one = image::open(&evolution).unwrap().width();
    let manifest = std::fs::read_to_string(run.join("checkpoints/latest/manifest.json")).unwrap();
    assert!(
        manifest.contains("hook-evolution.safetensors"),
        "{manifest}"
    );
    // Resume for a second epoch: the grids come again, dead filters do not,
    // and the evolution montage continues from the checkpointed state.
    let out = ok(&["train", "--resume", s(&run), "--epochs", "2"]);
    assert!(out.contains("epoch 2/2"), "{out}");
    assert!(run.join("hooks/deconv/epoch-002/conv5.png").exists());
    let two = image::open(&evolution).unwrap().width();
    assert!(
        two > one + one / 3,
        "montage {one} -> {two} px wide: one column per epoch"
    );
    // visualize on the checkpoint runs the checkpoint's own hooks once.
    let vis = dir.path().join("vis");
    let out = ok(&[
        "visualize",
        "--checkpoint",
        s(&run.join("checkpoints/latest")),
        "--data",
        s(&data),
        "--out",
        s(&vis),
    ]);
    assert!(out.contains("visualized 3 hooks on 4 images"), "{out}");
    assert!(vis.join("hooks/deconv/epoch-002/conv1.png").exists());
    let tb = crate::common::tensorboard(&vis);
    assert!(tb["images"]["deconv/conv1/projections"].is_array(), "{tb}");
    assert!(tb["scalars"]["filters/conv5/dead"].is_array(), "{tb}");
    // On plain weights (as exported for PyTorch) it runs the default hooks.
    let weights = dir.path().join("w.safetensors");
    ok(&[
        "export",
        "--checkpoint",
        s(&run.join("checkpoints/latest")),
        "--out",
        s(&weights),
    ]);
    let vis2 = dir.path().join("vis2");
    let out = ok(&[
        "visualize",
        "--weights",
        s(&weights),
        "--data",
        s(&data),
        "--out",
        s(&vis2),
        "--probe-images",
        "3",
    ]);
    assert!(
        out.contains("visualized 2 hooks on 3 images") && out.contains("epoch 0"),
        "{out}"
    );
    // 0 (or more than there are) is the whole validation set: 4 images.
    for n in ["0", "99"] {
        let vis = dir.path().join(format!("vis-{n}"));
        let args = [
            "visualize",
            "--weights",
            s(&weights),
            "--data",
            s(&data),
            "--out",
            s(&vis),
        ];
        let out = ok(&[&args[..], &["--probe-images", n]].concat());
        assert!(out.contains("visualized 2 hooks on 4 images"), "{n}: {out}");
    }
    assert!(vis2.join("hooks/deconv/epoch-000/conv5.png").exists());
    assert!(vis2
        .join("hooks/deconv/epoch-000/conv5.safetensors")
        .exists());
}

#[test]
fn a_failing_hook_is_reported_and_training_goes_on_unless_it_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let broken = "[[hooks]]\nkind = \"deconv\"\nschedule = { every_epochs = 1 }\nlayers = [1]\nmaps = [500]\n";
    let args = hooked(dir.path(), &data, "soft", broken);
    let out = crate::common::zftrain(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("hook 'deconv'") && stderr.contains("not 500"),
        "{stderr}"
    );
    let tb = crate::common::tensorboard(&dir.path().join("runs/soft"));
    let text = tb["text"]["hooks/deconv/error"].to_string();
    assert!(text.contains("not 500"), "{tb}");
    // Required: the run stops with the hook's error.
    let args = hooked(
        dir.path(),
        &data,
        "hard",
        &format!("{broken}required = true\n"),
    );
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("not 500") && err.contains("required"), "{err}");
}

/// An exec hook table running `argv` (TOML list) with `extra` keys.
fn exec_hook(name: &str, argv: &[&str], extra: &str) -> String {
    let list: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[[hooks]]\nkind = \"exec\"\nname = \"{name}\"\ncommand = [{}]\nschedule = {{ every_epochs = 1 }}\n{extra}\n",
        list.join(", ")
    )
}

#[test]
fn exec_plugins_get_a_bundle_and_their_results_reach_tensorboard() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let python = crate::common::python();
    let python = s(&python);
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins/filter_stats.py");
    let hooks = [
        exec_hook(
            "filter_stats",
            &[python, s(&plugin)],
            "layers = [1, 5]\nkeep_bundle = true",
        ),
        exec_hook(
            "crashes",
            &[
                python,
                "-c",
                "import sys; sys.stderr.write('bad things\\n'); sys.exit(3)",
            ],
            "",
        ),
        exec_hook(
            "hangs",
            &[python, "-c", "import time; time.sleep(600)"],
            "timeout_s = 1.0\nweights = false",
        ),
        exec_hook(
            "garbage",
            &[
                python,
                "-c",
                "import os; open(os.environ['ZFTRAIN_OUT'] + '/scalars.json', 'w').write('{nope')",
            ],
            "weights = false",
        ),
    ]
    .concat();
    let args = hooked(dir.path(), &data, "plugins", &hooks);
    let start = std::time::Instant::now();
    let out = crate::common::zftrain(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Not stopped, the hanging plugin alone would take 600 s; the bound
    // leaves a loaded machine room for the rest of the run.
    assert!(
        start.elapsed().as_secs() < 400,
        "the hanging plugin was not stopped: {:?}",
        start.elapsed()
    );
    for (hook, why) in [
        ("crashes", "bad things"),
        ("hangs", "timed out after 1 s"),
        ("garbage", "scalars.json"),
    ] {
        assert!(
            stderr.contains(&format!("hook '{hook}'")) && stderr.contains(why),
            "{hook}: {stderr}"
        );
    }
    let run = dir.path().join("runs/plugins");
    // Bundles go once their program ran (it failed, or was killed), unless kept.
    for hook in ["crashes", "hangs", "garbage"] {
        let epoch = run.join(format!("hooks/{hook}/epoch-001"));
        assert!(
            epoch.join("out").is_dir() && !epoch.join("bundle").exists(),
            "{hook}"
        );
    }
    let bundle = run.join("hooks/filter_stats/epoch-001/bundle");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["probe_images"], 4);
    assert_eq!(manifest["layers"][1]["label"], "conv5");
    assert_eq!(
        manifest["tensors"]["activations.safetensors"]["input"],
        serde_json::json!([4, 3, 224, 224])
    );
    let tb = crate::common::tensorboard(&run);
    let rms = tb["scalars"]["plugins/filter_stats/conv1/weight_rms"]
        .as_array()
        .unwrap();
    let epoch_end = tb["scalars"]["val/top1"][0][0].as_i64();
    assert_eq!(rms[0][0].as_i64(), epoch_end, "at epoch 1's end");
    assert!(rms[0][1].as_f64().unwrap() > 0.0);
    assert!(
        tb["scalars"]["plugins/filter_stats/conv5/active_fraction"].is_array(),
        "{tb}"
    );
    assert!(
        tb["images"]["plugins/filter_stats/weight_rms"].is_array(),
        "{tb}"
    );
    assert!(
        tb["text"]["plugins/filter_stats/summary"]
            .to_string()
            .contains("probe images"),
        "{tb}"
    );
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(
        log.contains("filter_stats: ") && log.contains("scalars"),
        "plugin stderr in the log"
    );
}

#[test]
fn an_exec_command_given_as_one_string_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let args = hooked(
        dir.path(),
        &data,
        "shell",
        "[[hooks]]\nkind = \"exec\"\ncommand = \"python3 plugin.py; rm -rf /\"\n",
    );
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("hooks[0]") && err.contains("as a list") && err.contains("never runs a shell"),
        "{err}"
    );
    assert!(!dir.path().join("runs/shell").exists());
}

/// Recomputes the manifest's checksum of `name` in checkpoint `ck` after
/// an edit, as anyone who can write the folder can.
pub fn reseal(ck: &Path, name: &str) {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(ck.join(name)).unwrap();
    let path = ck.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    manifest["files"][name] = serde_json::json!({ "sha256": sha, "bytes": bytes.len() });
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

#[test]
fn programs_named_in_a_run_directory_or_a_checkpoint_never_run_without_the_users_say() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let args = hooked(
        dir.path(),
        &data,
        "shared",
        "[[hooks]]\nkind = \"dead_filters\"\nschedule = { every_epochs = 1 }\n",
    );
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let run = dir.path().join("runs/shared");
    // Someone with write access to the shared run adds an exec hook that
    // leaves a mark, to the run's config.toml and (resealed) to its
    // checkpoint's config.json.
    let mark = dir.path().join("ran");
    let python = crate::common::python();
    let argv = [
        s(&python),
        "-c",
        &format!("open({:?}, 'w').write('ran')", s(&mark)),
    ];
    let saved = run.join("config.toml");
    let mut text = std::fs::read_to_string(&saved).unwrap();
    text.push('\n');
    text.push_str(&exec_hook("evil", &argv, "weights = false"));
    std::fs::write(&saved, text).unwrap();
    let ck = std::fs::canonicalize(run.join("checkpoints/latest")).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("config.json")).unwrap()).unwrap();
    cfg["hooks"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "kind": "exec", "name": "evil", "command": argv, "weights": false,
            "schedule": { "every_epochs": 1 },
        }));
    std::fs::write(ck.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    reseal(&ck, "config.json");
    // Visualizing the checkpoint runs its analyses but not its program.
    let vis = dir.path().join("vis");
    let out = ok(&[
        "visualize",
        "--checkpoint",
        s(&ck),
        "--data",
        s(&data),
        "--out",
        s(&vis),
    ]);
    assert!(
        out.contains("not running exec hook 'evil'") && out.contains("visualized 1 hooks"),
        "{out}"
    );
    assert!(!mark.exists(), "visualize ran the checkpoint's program");
    // Resuming the run is refused, naming the hook and the way out.
    let err = fails(&["train", "--resume", s(&run), "--epochs", "2"]);
    assert!(
        err.contains("config.toml") && err.contains("'evil'") && err.contains("--trust-run-hooks"),
        "{err}"
    );
    assert!(!mark.exists(), "resume ran the run's program");
    let other = dir.path().join("runs");
    let err = fails(&[
        "train",
        "--resume",
        s(&run),
        "--epochs",
        "2",
        "--trust-run-hooks",
        s(&other),
    ]);
    assert!(err.contains("does not name the run"), "{err}");
    assert!(!mark.exists());
    // Named by the user, the run's hooks run.
    ok(&[
        "train",
        "--resume",
        s(&run),
        "--epochs",
        "2",
        "--trust-run-hooks",
        s(&run),
    ]);
    assert!(mark.exists(), "the trusted run's hook did not run");
}

/// `zftrain --arch ... --data ...` (no command: training) with no hooks
/// named runs the paper's set: grids and evolution at epoch 1 and at the
/// end (epoch 3 is not in the paper's list), dead filters and aliasing
/// every epoch.
#[test]
fn flags_alone_train_with_the_papers_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let mut args = quick(dir.path(), &data, "paper", "zfnet-seed", "3");
    args.retain(|a| a != "train" && a != "--no-hooks");
    args.extend(["--set".into(), "probe.images=2".into()]);
    let out = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("epoch 3/3: train loss"), "{out}");
    let run = dir.path().join("runs/paper");
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for kind in ["deconv", "evolution", "dead_filters", "aliasing"] {
        assert!(
            saved.contains(&format!("kind = \"{kind}\"")),
            "{kind}: {saved}"
        );
    }
    let grids: Vec<String> = std::fs::read_dir(run.join("hooks/deconv"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        grids,
        ["epoch-001", "epoch-002", "epoch-003"],
        "1, 2 of the paper's list and the last"
    );
    let tb = crate::common::tensorboard(&run);
    let dead = tb["scalars"]["filters/conv1/dead"]
        .as_array()
        .expect("dead filters");
    assert_eq!(dead.len(), 3, "every epoch: {dead:?}");
    assert!(tb["images"]["deconv/conv1/projections"].is_array(), "{tb}");
    assert!(tb["images"]["evolution/conv1"].is_array(), "{tb}");
    assert!(
        tb["scalars"]["aliasing/conv2/grid"].is_array()
            && tb["scalars"]["aliasing/conv2/grid_null"].is_array()
            && tb["scalars"]["aliasing/conv1/aliasing_null"].is_array()
            && tb["scalars"]["filters/conv1/structureless"].is_array(),
        "{tb}"
    );
    // Laid out for the paper: every tag described, the custom-scalars
    // layout opening on training, hparams with what the run resolved and
    // a session that ended in success.
    assert!(crate::common::assert_described(&tb) > 20);
    assert_eq!(
        tb["layout"]["category"][0]["title"],
        "Training and validation"
    );
    let hp = &tb["hparams"];
    let start = &hp["_hparams_/session_start_info"]["sessionStartInfo"]["hparams"];
    // `auto` (the default) resolved by the rule the docs state: bf16 where
    // the CPU has bf16 instructions or ZFTRAIN_CPU_BF16=1, fp32 elsewhere.
    let expected = match zftrain_parallel::precision::cpu_has_bf16() {
        true => "bf16",
        false => "fp32",
    };
    assert_eq!(start["precision"], expected, "{hp}");
    assert_eq!(start["devices_per_node"], 1.0);
    assert_eq!(start["nodes"], 1.0);
    assert_eq!(start["classes"], 2.0);
    assert_eq!(start["first_layer_std"], "as init");
    let end = &hp["_hparams_/session_end_info"]["sessionEndInfo"];
    assert_eq!(end["status"], "STATUS_SUCCESS", "{hp}");
    let metrics = &hp["_hparams_/experiment"]["experiment"]["metricInfos"];
    assert_eq!(metrics[0]["name"]["tag"], "val/best_top1");
    let best = tb["scalars"]["val/best_top1"].as_array().unwrap();
    let top1 = tb["scalars"]["val/top1"].as_array().unwrap();
    let running_max = top1
        .iter()
        .fold(0.0f64, |m, e| m.max(e[1].as_f64().unwrap()));
    assert_eq!(best.last().unwrap()[1].as_f64().unwrap(), running_max);
}

/// Plugins are bounded: one that forks a grandchild and hangs is killed
/// with its whole process group at the timeout (the grandchild too), a
/// stderr with a byte that is not UTF-8 still shows its message, and 8 MB
/// of stderr leave train.log small.
#[test]
fn plugins_are_killed_as_a_group_and_their_stderr_is_capped_and_kept_readable() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let pid_file = dir.path().join("grandchild.pid");
    let python = crate::common::python();
    let python = s(&python);
    // The grandchild does not hold the plugin's stderr: only killing the
    // group ends it.
    let fork = format!(
        "sleep 300 2>/dev/null & echo $! > '{}'; exec sleep 300",
        pid_file.display()
    );
    // A daemon: double-forked, in a session of its own (out of the group),
    // holding the plugin's stderr open for 10 minutes.
    let daemon_pid = dir.path().join("daemon.pid");
    let daemon = format!(
        "(setsid sh -c 'echo $$ > \"{}\"; exec sleep 600' &); exec sleep 300",
        daemon_pid.display()
    );
    let hooks = [
        exec_hook(
            "forks",
            &["sh", "-c", &fork],
            "timeout_s = 2.0\nweights = false",
        ),
        exec_hook(
            "daemon",
            &["sh", "-c", &daemon],
            "timeout_s = 2.0\nweights = false",
        ),
        exec_hook(
            "bytes",
            &[
                python,
                "-c",
                "import sys; sys.stderr.buffer.write(b'\\xff broken plugin\\n'); sys.exit(2)",
            ],
            "weights = false",
        ),
        exec_hook(
            "chatty",
            &[
                python,
                "-c",
                "import sys; [sys.stderr.write('x' * 999 + '\\n') for _ in range(8000)]",
            ],
            "weights = false",
        ),
    ]
    .concat();
    let args = hooked(dir.path(), &data, "bounded", &hooks);
    let start = std::time::Instant::now();
    let out = crate::common::zftrain(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Waiting for the daemon would take its 600 s.
    assert!(
        start.elapsed().as_secs() < 400,
        "the run waited for the daemon: {:?}",
        start.elapsed()
    );
    assert!(
        stderr.contains("hook 'daemon'") && stderr.contains("timed out after 2 s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hook 'forks'") && stderr.contains("timed out after 2 s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hook 'bytes'") && stderr.contains("broken plugin"),
        "{stderr}"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let alive = std::path::Path::new("/proc").join(pid.trim());
    let zombie_or_gone = !alive.exists()
        || std::fs::read_to_string(alive.join("stat")).is_ok_and(|s| s.contains(") Z "));
    assert!(
        zombie_or_gone,
        "the plugin's grandchild {} outlived it",
        pid.trim()
    );
    let daemon = std::fs::read_to_string(&daemon_pid).expect("the daemon started");
    assert!(
        !std::path::Path::new("/proc").join(daemon.trim()).exists(),
        "the daemon {} that left the plugin's group outlived it",
        daemon.trim()
    );
    let log = std::fs::metadata(dir.path().join("runs/bounded/train.log"))
        .unwrap()
        .len();
    assert!(
        log < 1 << 20,
        "train.log grew to {log} bytes from 8 MB of plugin stderr"
    );
}

/// A checkpoint from `zftrain init` (or `import`) has no run configuration:
/// `visualize --checkpoint` runs the default hooks on it.
#[test]
fn visualize_runs_the_default_hooks_on_an_init_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_data(d);
    crate::common::init("zfnet-seed", "2", "1", &d.join("ck"));
    let out = ok(&[
        "visualize",
        "--checkpoint",
        s(&d.join("ck")),
        "--data",
        s(&data),
        "--out",
        s(&d.join("vis")),
        "--probe-images",
        "2",
    ]);
    assert!(out.contains("visualized 2 hooks on 2 images"), "{out}");
    assert!(d.join("vis/hooks/deconv/epoch-000/conv1.png").exists());
}

#[test]
fn the_evolution_hook_mines_a_training_subset_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let hooks = r#"
[[hooks]]
kind = "evolution"
schedule = { every_epochs = 1 }
layers = [3]
maps = 2
source = "train"
"#;
    let mut args = hooked(dir.path(), &data, "evo", hooks);
    args.extend(["--set", "probe.train_images=3"].map(String::from));
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let run = dir.path().join("runs/evo");
    assert!(run.join("hooks/evolution/conv3.png").is_file());
    // Three of the eight training images were set aside for it.
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    let ready = log
        .lines()
        .find(|l| l.contains("training images for the hooks ready"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(ready.contains("images=3"), "{ready}");
    // visualize has no training images: the hook says so, and the others
    // still run.
    let out = crate::common::zftrain(&[
        "visualize",
        "--checkpoint",
        s(&run.join("checkpoints/latest")),
        "--data",
        s(&data.join("val")),
        "--out",
        s(&dir.path().join("vis")),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'evolution'") && stderr.contains("needs the training images"),
        "{stderr}"
    );
}
