//! The registry: isolation of failing and panicking hooks, required hooks,
//! stop requests, state round trips.

use tch::Tensor;
use zftrain_hooks::{
    Control, Event, Hook, HookContext, HookError, HookState, Hooks, MemorySink, Recorded, Schedule,
};

use crate::common::{context, network, probe};

enum Behaviour {
    Fine,
    Fail,
    Panic,
    Stop,
}

struct Toy {
    name: String,
    schedule: Schedule,
    behaviour: Behaviour,
    required: bool,
    calls: u64,
}

impl Toy {
    fn boxed(name: &str, behaviour: Behaviour, required: bool) -> Box<dyn Hook> {
        Box::new(Toy {
            name: name.into(),
            schedule: Schedule::EveryEpochs(1),
            behaviour,
            required,
            calls: 0,
        })
    }
}

impl Hook for Toy {
    fn name(&self) -> &str {
        &self.name
    }
    fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    fn required(&self) -> bool {
        self.required
    }
    fn on_epoch_end(&mut self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        self.calls += 1;
        match self.behaviour {
            Behaviour::Fine => {
                ctx.sink
                    .scalar("toy/calls", ctx.epoch as i64, self.calls as f64)?;
                Ok(Control::Continue)
            }
            Behaviour::Fail => Err(HookError::failed(&self.name, "no luck")),
            Behaviour::Panic => panic!("boom in {}", self.name),
            Behaviour::Stop => Ok(Control::Stop),
        }
    }
    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        Ok(Some(HookState {
            tensors: vec![("calls".into(), Tensor::from(self.calls as i64))],
            json: serde_json::json!({ "calls": self.calls }),
        }))
    }
    fn load_state(&mut self, state: HookState) -> Result<(), HookError> {
        self.calls = state.json["calls"].as_u64().unwrap_or(0);
        Ok(())
    }
}

#[test]
fn failing_and_panicking_hooks_are_reported_and_the_others_still_run() {
    let (_vs, net) = network();
    let probe = probe(1);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let mut hooks = Hooks::new();
    hooks
        .register(Toy::boxed("fails", Behaviour::Fail, false))
        .unwrap();
    hooks
        .register(Toy::boxed("panics", Behaviour::Panic, false))
        .unwrap();
    hooks
        .register(Toy::boxed("fine", Behaviour::Fine, false))
        .unwrap();
    let ctx = context(&net, &probe, dir.path(), &sink, 1);
    let d = hooks.dispatch(Event::EpochEnd, &ctx).unwrap();
    assert_eq!(d.control, Control::Continue);
    assert_eq!(d.failures.len(), 2);
    assert!(
        d.failures[1].to_string().contains("boom in panics"),
        "{}",
        d.failures[1]
    );
    assert_eq!(d.ran.len(), 3);
    let items = sink.items.lock().unwrap().clone();
    assert!(items.contains(&Recorded::Scalar("toy/calls".into(), 1, 1.0)));
    assert!(items.iter().any(|s| matches!(s, Recorded::Text(t, 10, m) if t == "hooks/fails/error" && m.contains("no luck"))));
    assert!(items
        .iter()
        .any(|s| matches!(s, Recorded::Text(t, ..) if t == "hooks/panics/error")));
}

#[test]
fn a_required_hook_that_fails_stops_the_dispatch_with_its_error() {
    let (_vs, net) = network();
    let probe = probe(1);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let mut hooks = Hooks::new();
    hooks
        .register(Toy::boxed("must", Behaviour::Panic, true))
        .unwrap();
    let ctx = context(&net, &probe, dir.path(), &sink, 1);
    let err = hooks.dispatch(Event::EpochEnd, &ctx).unwrap_err();
    assert!(err.to_string().contains("hook 'must' panicked"), "{err}");
}

#[test]
fn a_hook_can_stop_training_and_schedules_are_honoured() {
    let (_vs, net) = network();
    let probe = probe(1);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let mut hooks = Hooks::new();
    hooks
        .register(Toy::boxed("stopper", Behaviour::Stop, false))
        .unwrap();
    let ctx = context(&net, &probe, dir.path(), &sink, 1);
    assert_eq!(
        hooks.dispatch(Event::EpochEnd, &ctx).unwrap().control,
        Control::Stop
    );
    // Not at a step end: the schedule is per epoch.
    assert!(hooks.dispatch(Event::StepEnd, &ctx).unwrap().ran.is_empty());
    assert!(!hooks.wants(Event::StepEnd, 1, 10) && hooks.wants(Event::EpochEnd, 1, 10));
}

#[test]
fn state_round_trips_and_names_are_checked() {
    let (_vs, net) = network();
    let probe = probe(1);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let mut hooks = Hooks::new();
    hooks
        .register(Toy::boxed("fine", Behaviour::Fine, false))
        .unwrap();
    for epoch in 1..=3 {
        hooks
            .dispatch(
                Event::EpochEnd,
                &context(&net, &probe, dir.path(), &sink, epoch),
            )
            .unwrap();
    }
    let states = hooks.save_states().unwrap();
    let mut fresh = Hooks::new();
    fresh
        .register(Toy::boxed("fine", Behaviour::Fine, false))
        .unwrap();
    let mut saved: zftrain_hooks::SavedStates = states.into_iter().collect();
    saved.insert("gone".into(), HookState::default());
    fresh.load_states(&mut saved).unwrap();
    assert_eq!(
        saved.keys().collect::<Vec<_>>(),
        ["gone"],
        "the orphan is left"
    );
    fresh
        .dispatch(
            Event::EpochEnd,
            &context(&net, &probe, dir.path(), &sink, 4),
        )
        .unwrap();
    assert!(sink
        .items
        .lock()
        .unwrap()
        .contains(&Recorded::Scalar("toy/calls".into(), 4, 4.0)));
    let err = fresh
        .register(Toy::boxed("fine", Behaviour::Fine, false))
        .unwrap_err();
    assert!(err.to_string().contains("two hooks"), "{err}");
    let err = fresh
        .register(Toy::boxed("a/b", Behaviour::Fine, false))
        .unwrap_err();
    assert!(err.to_string().contains("letters, digits"), "{err}");
}

/// A hook whose work is cut short by a stop of the run: the request comes
/// in while it runs (as a signal would) and its probe pass then fails.
struct CutShort(std::sync::Arc<std::sync::atomic::AtomicBool>, Schedule);

impl Hook for CutShort {
    fn name(&self) -> &str {
        "cut_short"
    }
    fn schedule(&self) -> &Schedule {
        &self.1
    }
    fn on_epoch_end(&mut self, _ctx: &HookContext<'_>) -> Result<Control, HookError> {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        Err(HookError::Probe("a stop was requested".into()))
    }
}

#[test]
fn a_stop_during_a_hook_ends_the_dispatch_without_a_failure_and_runs_no_other_hook() {
    let (_vs, net) = network();
    let probe = probe(1);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut hooks = Hooks::new();
    hooks
        .register(Box::new(CutShort(asked.clone(), Schedule::EveryEpochs(1))))
        .unwrap();
    // Required: its failure would be the dispatch's error.
    hooks
        .register(Toy::boxed("after", Behaviour::Fine, true))
        .unwrap();
    let stopping = || asked.load(std::sync::atomic::Ordering::SeqCst);
    let ctx = HookContext {
        stop: Some(&stopping),
        ..context(&net, &probe, dir.path(), &sink, 1)
    };
    let d = hooks.dispatch(Event::EpochEnd, &ctx).unwrap();
    assert!(d.interrupted);
    assert!(d.failures.is_empty(), "{:?}", d.failures);
    assert_eq!(d.ran.len(), 1, "the hook after the stop did not run");
    assert!(sink.items.lock().unwrap().is_empty(), "nothing reported");
    // Without the stop, the same failure is reported.
    asked.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut hooks = Hooks::new();
    hooks
        .register(Toy::boxed("fails", Behaviour::Fail, false))
        .unwrap();
    let d = hooks.dispatch(Event::EpochEnd, &ctx).unwrap();
    assert!(!d.interrupted);
    assert_eq!(d.failures.len(), 1);
}
