//! The training session as a library, the way a program that embeds
//! zftrain uses it: callbacks hear every event in order, hooks see the
//! step's loss, learning rate and the last validation metrics, a stop
//! handle stops after the step it is used in, a callback's stop request
//! ends the run after its epoch, a callback's state comes back on resume,
//! and the shipped custom-hook example runs.

use std::path::Path;
use std::sync::{Arc, Mutex};

use zftrain::config::RunConfig;
use zftrain::train::callbacks::{
    Callback, CheckpointKind, Context, EpochReport, Requests, StepReport,
};
use zftrain::train::{train, StopHandle, TrainOptions};
use zftrain_hooks::{
    Control, Hook, HookContext, HookError, HookState, Metrics, SavedStates, Schedule,
};

use crate::common::synth;

type Log = Arc<Mutex<Vec<String>>>;

/// Writes down every event; may ask the stop handle after one step, or ask
/// to stop at the end of one epoch.
#[derive(Default)]
struct Recorder {
    log: Log,
    signal_after_step: Option<(u64, StopHandle)>,
    stop_at_epoch: Option<u64>,
}

impl Recorder {
    fn note(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }
}

impl Callback for Recorder {
    fn on_train_start(&mut self, ctx: &Context<'_>) -> anyhow::Result<Requests> {
        self.note(format!("start {}", ctx.state.global_step));
        Ok(Requests::NONE)
    }
    fn on_epoch_start(&mut self, ctx: &Context<'_>) -> anyhow::Result<()> {
        self.note(format!("epoch_start {}", ctx.state.epoch));
        Ok(())
    }
    fn on_step_end(&mut self, ctx: &Context<'_>, s: &StepReport<'_>) -> anyhow::Result<Requests> {
        assert!(s.loss.is_finite() && s.lr > 0.0 && s.images > 0);
        self.note(format!("step {}", ctx.state.global_step));
        if let Some((n, handle)) = &self.signal_after_step {
            if ctx.state.global_step == *n {
                handle.request();
            }
        }
        Ok(Requests::NONE)
    }
    fn on_train_epoch_end(&mut self, _ctx: &Context<'_>) -> anyhow::Result<()> {
        self.note("trained".into());
        Ok(())
    }
    fn on_epoch_end(
        &mut self,
        _ctx: &Context<'_>,
        e: &EpochReport<'_>,
    ) -> anyhow::Result<Requests> {
        self.note(format!("epoch_end {} val={}", e.epoch, e.val.is_some()));
        Ok(match self.stop_at_epoch == Some(e.epoch) {
            true => Requests::stop(),
            false => Requests::NONE,
        })
    }
    fn on_checkpoint(
        &mut self,
        ctx: &Context<'_>,
        path: &Path,
        kind: CheckpointKind,
    ) -> anyhow::Result<()> {
        assert!(path.join("manifest.json").is_file(), "{}", path.display());
        self.note(format!("checkpoint {kind:?} {}", ctx.state.global_step));
        Ok(())
    }
    fn on_train_end(&mut self, _ctx: &Context<'_>) -> anyhow::Result<()> {
        self.note("end".into());
        Ok(())
    }
}

/// A hook that keeps the metrics it is given after every step.
struct MetricsSeen(Arc<Mutex<Vec<(u64, Metrics)>>>, Schedule);

impl Hook for MetricsSeen {
    fn name(&self) -> &str {
        "metrics_seen"
    }
    fn schedule(&self) -> &Schedule {
        &self.1
    }
    fn on_step_end(&mut self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        self.0.lock().unwrap().push((ctx.step, ctx.metrics));
        Ok(Control::Continue)
    }
}

/// 16 training images, 3 steps of 4 per epoch, a checkpoint every 2 steps.
fn config(dir: &Path, name: &str, epochs: u64) -> RunConfig {
    let data = dir.join("data");
    if !data.exists() {
        synth(dir, 8, 4, 48, 48);
    }
    let sets: Vec<String> = vec![
        format!("name=\"{name}\""),
        format!("runs_dir=\"{}\"", dir.join("runs").display()),
        "model.arch=\"zfnet-seed\"".into(),
        format!("data.train=\"{}\"", data.join("train").display()),
        format!("data.val=\"{}\"", data.join("val").display()),
        "data.workers=1".into(),
        format!("train.epochs={epochs}"),
        "train.batch_size=4".into(),
        "train.max_steps_per_epoch=3".into(),
        "checkpoint.every_steps=2".into(),
        "probe.images=2".into(),
        "hooks=[]".into(),
    ];
    RunConfig::load(None, &sets).unwrap()
}

#[test]
fn callbacks_hear_every_event_in_order_and_hooks_see_the_latest_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let log = Arc::clone(&recorder.log);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = MetricsSeen(Arc::clone(&seen), Schedule::EverySteps(1));
    let options = TrainOptions {
        hooks: vec![Box::new(hook)],
        callbacks: vec![Box::new(recorder)],
        ..TrainOptions::default()
    };
    let outcome = train(config(dir.path(), "events", 2), options).unwrap();
    assert!(!outcome.interrupted);
    assert_eq!(outcome.state.global_step, 6);
    let expected = [
        "start 0",
        "epoch_start 0",
        "step 1",
        "step 2",
        "checkpoint Periodic 2",
        "step 3",
        "trained",
        "epoch_end 1 val=true",
        "checkpoint EpochEnd 3",
        "epoch_start 1",
        "step 4",
        "checkpoint Periodic 4",
        "step 5",
        "step 6",
        "trained",
        "epoch_end 2 val=true",
        "checkpoint EpochEnd 6",
        "end",
    ];
    assert_eq!(*log.lock().unwrap(), expected);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    for (step, m) in seen.iter() {
        assert!(
            m.loss.is_some_and(f64::is_finite) && m.lr.is_some_and(|lr| lr > 0.0),
            "{m:?}"
        );
        // Validation metrics exist from the first epoch's end on.
        assert_eq!(m.val_top1.is_some(), *step > 3, "step {step}: {m:?}");
        assert_eq!(m.val_top5.is_some() && m.val_loss.is_some(), *step > 3);
    }
}

#[test]
fn a_stop_handle_stops_after_its_step_with_a_checkpoint_and_a_callback_after_its_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let stop = StopHandle::new();
    let recorder = Recorder {
        signal_after_step: Some((1, stop.clone())),
        ..Recorder::default()
    };
    let log = Arc::clone(&recorder.log);
    let options = TrainOptions {
        stop,
        callbacks: vec![Box::new(recorder)],
        ..TrainOptions::default()
    };
    let outcome = train(config(dir.path(), "signalled", 2), options).unwrap();
    assert!(outcome.interrupted);
    assert_eq!(outcome.state.global_step, 1);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "start 0",
            "epoch_start 0",
            "step 1",
            "trained",
            "checkpoint Stop 1"
        ]
    );
    assert!(outcome
        .run_dir
        .join("checkpoints/step-000000001/manifest.json")
        .is_file());

    let recorder = Recorder {
        stop_at_epoch: Some(1),
        ..Recorder::default()
    };
    let log = Arc::clone(&recorder.log);
    let options = TrainOptions {
        callbacks: vec![Box::new(recorder)],
        ..TrainOptions::default()
    };
    let outcome = train(config(dir.path(), "asked", 3), options).unwrap();
    assert!(!outcome.interrupted, "a request is not a signal");
    assert_eq!((outcome.state.epoch, outcome.state.global_step), (1, 3));
    let log = log.lock().unwrap();
    assert_eq!(log.last().unwrap(), "checkpoint EpochEnd 3", "{log:?}");
    assert!(
        !log.contains(&"end".to_string()),
        "a stopped run does not end: {log:?}"
    );
}

/// Counts the steps it has heard of, across resumes: the count is its
/// state, saved in every checkpoint and taken back on resume.
struct StepCounter {
    name: String,
    steps: Arc<Mutex<u64>>,
    /// The count each session started from.
    starts: Arc<Mutex<Vec<u64>>>,
}

impl StepCounter {
    fn new(name: &str) -> StepCounter {
        StepCounter {
            name: name.into(),
            steps: Arc::default(),
            starts: Arc::default(),
        }
    }
}

impl Callback for StepCounter {
    fn on_train_start(&mut self, _ctx: &Context<'_>) -> anyhow::Result<Requests> {
        let steps = *self.steps.lock().unwrap();
        self.starts.lock().unwrap().push(steps);
        Ok(Requests::NONE)
    }
    fn on_step_end(&mut self, _ctx: &Context<'_>, _s: &StepReport<'_>) -> anyhow::Result<Requests> {
        *self.steps.lock().unwrap() += 1;
        Ok(Requests::NONE)
    }
    fn states(&self) -> anyhow::Result<Vec<(String, HookState)>> {
        let json = serde_json::json!({ "steps": *self.steps.lock().unwrap() });
        Ok(vec![(
            self.name.clone(),
            HookState {
                tensors: Vec::new(),
                json,
            },
        )])
    }
    fn load_states(&mut self, saved: &mut SavedStates) -> anyhow::Result<()> {
        if let Some(state) = saved.remove(&self.name) {
            let steps = state.json["steps"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("{}: no step count", self.name))?;
            *self.steps.lock().unwrap() = steps;
        }
        Ok(())
    }
}

#[test]
fn a_stateful_callback_gets_its_state_back_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let stop = StopHandle::new();
    let recorder = Recorder {
        signal_after_step: Some((2, stop.clone())),
        ..Recorder::default()
    };
    let counter = StepCounter::new("step_counter");
    let options = TrainOptions {
        stop,
        callbacks: vec![Box::new(recorder), Box::new(counter)],
        ..TrainOptions::default()
    };
    let outcome = train(config(dir.path(), "counted", 2), options).unwrap();
    assert!(outcome.interrupted);
    assert_eq!(outcome.state.global_step, 2);
    let saved = outcome
        .run_dir
        .join("checkpoints/step-000000002/hook-step_counter.json");
    assert!(saved.is_file(), "{}", saved.display());

    // A new process would build a new callback: it starts from 0 and is
    // given 2 back before the first step.
    let counter = StepCounter::new("step_counter");
    let (steps, starts) = (Arc::clone(&counter.steps), Arc::clone(&counter.starts));
    let options = TrainOptions {
        resume: Some(outcome.run_dir.clone()),
        callbacks: vec![Box::new(counter)],
        ..TrainOptions::default()
    };
    let outcome = train(config(dir.path(), "counted", 2), options).unwrap();
    assert!(!outcome.interrupted);
    assert_eq!(
        *starts.lock().unwrap(),
        [2],
        "restored before on_train_start"
    );
    assert_eq!(*steps.lock().unwrap(), outcome.state.global_step);
    assert_eq!(outcome.state.global_step, 6);

    // Two states under one name would overwrite each other: refused
    // before anything is written.
    let options = TrainOptions {
        callbacks: vec![
            Box::new(StepCounter::new("twice")),
            Box::new(StepCounter::new("twice")),
        ],
        ..TrainOptions::default()
    };
    let err = match train(config(dir.path(), "clash", 1), options) {
        Ok(_) => panic!("two states named 'twice' accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("'twice'"), "{err}");
    assert!(
        !dir.path().join("runs/clash").exists(),
        "the run directory was written"
    );
}

#[allow(dead_code)]
#[path = "../../../examples/custom_hook.rs"]
mod custom_hook;

#[test]
fn the_custom_hook_example_trains_and_writes_its_means() {
    let (_, text) = custom_hook::run(None).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 1, "one epoch, one row: {text}");
    let fields: Vec<&str> = rows[0].split(',').collect();
    assert_eq!(fields[0], "1", "{text}");
    assert_eq!(
        fields.len(),
        1 + 5,
        "epoch and zfnet-seed's 5 conv layers: {text}"
    );
    for f in &fields[1..] {
        let mean: f64 = f.parse().unwrap();
        assert!(
            mean.is_finite() && mean > 0.0,
            "a mean rectified activation: {text}"
        );
    }
}
