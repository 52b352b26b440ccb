//! Our event files, read back by TensorBoard's own reader (EventAccumulator,
//! from the Python environment that `scripts/setup` makes).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use zftrain_tensorboard::SummaryWriter;

fn read_with_tensorboard(logdir: &Path) -> Value {
    let python = PathBuf::from(
        std::env::var("ZFTRAIN_PYTHON").expect("ZFTRAIN_PYTHON is set by .cargo/config.toml"),
    );
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (make test does)",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_events.py");
    let out = Command::new(python)
        .arg(script)
        .arg(logdir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tensorboard_reads_scalars_images_histograms_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SummaryWriter::create(dir.path()).unwrap();
    for step in 0..5 {
        w.scalar("train/loss", step, 2.5 / (step + 1) as f64)
            .unwrap();
    }
    // A 3x2 image whose every pixel is distinct, so a width/height or
    // HWC/CHW mix-up would show.
    let (width, height) = (3u32, 2u32);
    let rgb: Vec<u8> = (0..width * height * 3).map(|i| (i * 13) as u8).collect();
    w.image_rgb("deconv/conv1/projections", 7, width, height, &rgb)
        .unwrap();
    let values: Vec<f64> = (0..1000).map(|i| (i as f64 / 100.0).sin()).collect();
    w.histogram("filters/conv1/rms", 3, &values).unwrap();
    w.text("plugins/notes", 2, "dead filters: **3** of 96 — ünïcode")
        .unwrap();
    w.flush().unwrap();

    let got = read_with_tensorboard(dir.path());
    let loss = got["scalars"]["train/loss"].as_array().unwrap();
    assert_eq!(loss.len(), 5);
    for (step, e) in loss.iter().enumerate() {
        assert_eq!(e[0], step as i64);
        assert!((e[1].as_f64().unwrap() - 2.5 / (step + 1) as f64).abs() < 1e-6);
    }
    let img = &got["images"]["deconv/conv1/projections"][0];
    assert_eq!(
        (
            img["step"].as_i64(),
            img["width"].as_u64(),
            img["height"].as_u64()
        ),
        (Some(7), Some(3), Some(2))
    );
    let pixels: Vec<u8> = img["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(pixels, rgb);
    let h = &got["histograms"]["filters/conv1/rms"][0];
    assert_eq!(h["num"].as_f64(), Some(1000.0));
    let total: f64 = h["bucket"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert_eq!(total, 1000.0);
    assert_eq!(
        got["text"]["plugins/notes"][0],
        serde_json::json!([2, "dead filters: **3** of 96 — ünïcode"])
    );
}

#[test]
fn events_written_before_a_flush_are_visible_and_files_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SummaryWriter::create(dir.path()).unwrap();
    w.scalar("val/top1", 1, 0.25).unwrap();
    w.flush().unwrap();
    // A second writer in the same directory (a resumed run) adds its own file.
    let mut w2 = SummaryWriter::create(dir.path()).unwrap();
    w2.scalar("val/top1", 2, 0.5).unwrap();
    w2.flush().unwrap();
    let got = read_with_tensorboard(dir.path());
    assert_eq!(
        got["scalars"]["val/top1"],
        serde_json::json!([[1, 0.25], [2, 0.5]])
    );
}

#[test]
fn a_restart_marker_hides_the_interrupted_runs_later_steps() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SummaryWriter::create(dir.path()).unwrap();
    for step in 1..=5 {
        w.scalar("train/loss", step, step as f64).unwrap();
    }
    w.flush().unwrap();
    // Resumed from a checkpoint at step 3: steps 4 and 5 are logged again.
    let mut w2 = SummaryWriter::create(dir.path()).unwrap();
    w2.restart_at(4).unwrap();
    for step in 4..=6 {
        w2.scalar("train/loss", step, 10.0 * step as f64).unwrap();
    }
    w2.flush().unwrap();
    let got = read_with_tensorboard(dir.path());
    assert_eq!(
        got["scalars"]["train/loss"],
        serde_json::json!([
            [1, 1.0],
            [2, 2.0],
            [3, 3.0],
            [4, 40.0],
            [5, 50.0],
            [6, 60.0]
        ])
    );
}

#[test]
fn tensorboard_reads_our_hparams() {
    use zftrain_tensorboard::HParamValue;
    let dir = tempfile::tempdir().unwrap();
    let mut w = SummaryWriter::create(dir.path()).unwrap();
    let hp = vec![
        ("arch".to_string(), HParamValue::Text("zfnet".into())),
        ("lr".to_string(), HParamValue::Number(0.01)),
        ("lrn".to_string(), HParamValue::Bool(true)),
    ];
    w.hparams(&hp, &["val/top1", "val/loss"]).unwrap();
    w.scalar("val/top1", 1, 0.5).unwrap();
    w.flush().unwrap();
    let got = read_with_tensorboard(dir.path());
    let session = &got["hparams"]["_hparams_/session_start_info"]["sessionStartInfo"]["hparams"];
    // protobuf's JSON form writes google.protobuf.Value as the plain value.
    assert_eq!(session["arch"], serde_json::json!("zfnet"));
    assert_eq!(session["lr"], serde_json::json!(0.01));
    assert_eq!(session["lrn"], serde_json::json!(true));
    let metrics = &got["hparams"]["_hparams_/experiment"]["experiment"]["metricInfos"];
    assert_eq!(metrics[0]["name"]["tag"], "val/top1");
    assert_eq!(
        got["hparams"]["_hparams_/experiment"]["experiment"]["hparamInfos"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

fn describe(tag: &str) -> Option<&'static str> {
    match tag {
        "val/top1" => Some("validation top-1 accuracy, percent"),
        t if t.starts_with("filters/") => Some("dead filters of a layer"),
        _ => None,
    }
}

#[test]
fn descriptions_the_custom_scalars_layout_and_the_session_end_reach_tensorboard() {
    use zftrain_tensorboard::{Category, Chart, Layout, SessionStatus};
    let dir = tempfile::tempdir().unwrap();
    let mut w = SummaryWriter::create(dir.path()).unwrap();
    w.set_descriptions(describe);
    w.hparams(&[], &["val/top1"]).unwrap();
    let layout = Layout {
        version: 0,
        category: vec![
            Category::new(
                "Training",
                vec![Chart::lines("top-1", &["train/top1", "val/top1"])],
            ),
            Category::new(
                "Dead filters",
                vec![Chart::lines("dead", &[r"filters/conv\d+/dead"])],
            ),
        ],
    };
    w.custom_scalars(&layout).unwrap();
    for step in 1..=2 {
        w.scalar("val/top1", step, 10.0 * step as f64).unwrap();
        w.histogram("filters/conv1/rms", step, &[1.0, 2.0]).unwrap();
        w.scalar("train/loss", step, 1.0).unwrap();
    }
    w.session_end(SessionStatus::Success).unwrap();
    w.flush().unwrap();
    let got = read_with_tensorboard(dir.path());
    let d = &got["descriptions"];
    assert_eq!(d["val/top1"], "validation top-1 accuracy, percent");
    assert_eq!(d["filters/conv1/rms"], "dead filters of a layer");
    assert_eq!(d["train/loss"], "", "no description, none written");
    // The described tags are still read as scalars and histograms.
    assert_eq!(
        got["scalars"]["val/top1"],
        serde_json::json!([[1, 10.0], [2, 20.0]])
    );
    assert_eq!(
        got["histograms"]["filters/conv1/rms"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let categories = got["layout"]["category"].as_array().unwrap();
    assert_eq!(categories[0]["title"], "Training");
    assert_eq!(
        categories[1]["chart"][0]["multiline"]["tag"],
        serde_json::json!([r"filters/conv\d+/dead"])
    );
    assert_eq!(
        got["hparams"]["_hparams_/session_end_info"]["sessionEndInfo"]["status"],
        "STATUS_SUCCESS"
    );
    let metric = &got["hparams"]["_hparams_/experiment"]["experiment"]["metricInfos"][0];
    assert_eq!(metric["description"], "validation top-1 accuracy, percent");
}
