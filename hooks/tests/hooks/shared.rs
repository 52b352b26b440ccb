//! The probe pass the hooks due at an event share: the same summaries and
//! files as each hook's own pass, one pass instead of four, and a pass that
//! fails fails the hooks that needed it, not the others.

use std::path::Path;

use zftrain_hooks::builtin::{
    AliasingConfig, AliasingHook, DeadFiltersConfig, DeadFiltersHook, DeconvGridConfig,
    DeconvGridHook, EvolutionConfig, EvolutionHook, Maps,
};
use zftrain_hooks::{
    Control, Event, Hook, HookContext, HookError, Hooks, MemorySink, ProbeBatch, ProbeBatches,
    ProbeSet, Schedule, TensorProbe,
};

use crate::common::{context, network, probe};

/// The paper's four probe-reading hooks, with overlapping map choices.
fn paper_hooks() -> Vec<Box<dyn Hook>> {
    let every = Schedule::EveryEpochs(1);
    vec![
        Box::new(DeconvGridHook::new(DeconvGridConfig {
            schedule: every.clone(),
            maps: Maps::Count(4),
            k: 3,
            ..DeconvGridConfig::default()
        })),
        Box::new(EvolutionHook::new(EvolutionConfig {
            schedule: every.clone(),
            layers: vec![1, 2, 5],
            maps: Maps::Count(3),
            ..EvolutionConfig::default()
        })),
        Box::new(DeadFiltersHook::new(DeadFiltersConfig {
            schedule: every.clone(),
            ..DeadFiltersConfig::default()
        })),
        Box::new(AliasingHook::new(AliasingConfig {
            schedule: every,
            grid_maps: Maps::Count(6),
            ..AliasingConfig::default()
        })),
    ]
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hooks_sharing_one_probe_pass_write_what_their_own_passes_write() {
    let (_vs, net) = network();
    let probe = probe(7);
    let (shared_dir, own_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (shared_sink, own_sink) = (MemorySink::default(), MemorySink::default());

    let mut together = Hooks::new();
    for hook in paper_hooks() {
        together.register(hook).unwrap();
    }
    let ctx = context(&net, &probe, shared_dir.path(), &shared_sink, 1);
    let d = together.dispatch(Event::EpochEnd, &ctx).unwrap();
    assert!(d.failures.is_empty(), "{:?}", d.failures);
    let (names, _) = d.shared.expect("four hooks due: one shared pass");
    assert_eq!(names, ["deconv", "evolution", "dead_filters", "aliasing"]);

    let ctx = context(&net, &probe, own_dir.path(), &own_sink, 1);
    for hook in paper_hooks() {
        let mut alone = Hooks::new();
        alone.register(hook).unwrap();
        let d = alone.dispatch(Event::EpochEnd, &ctx).unwrap();
        assert!(d.failures.is_empty(), "{:?}", d.failures);
        assert!(d.shared.is_none(), "one hook runs its own pass");
    }

    let (shared, own) = (
        shared_sink.items.lock().unwrap(),
        own_sink.items.lock().unwrap(),
    );
    assert!(shared.len() > 20, "{} summaries", shared.len());
    assert_eq!(*shared, *own);
    let (shared_files, own_files) = (files(shared_dir.path()), files(own_dir.path()));
    assert!(shared_files
        .iter()
        .any(|(p, _)| p.ends_with(".safetensors")));
    assert_eq!(
        shared_files.iter().map(|f| &f.0).collect::<Vec<_>>(),
        own_files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((path, a), (_, b)) in shared_files.iter().zip(&own_files) {
        assert!(a == b, "{path} differs");
    }
}

/// A probe set whose second batch cannot be read.
struct BrokenProbe(TensorProbe);

impl ProbeSet for BrokenProbe {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn stream(&self, indices: Option<&[usize]>) -> ProbeBatches<'_> {
        let batches: Vec<Result<ProbeBatch, HookError>> = self.0.stream(indices).collect();
        Box::new(batches.into_iter().enumerate().map(|(i, b)| match i {
            1 => Err(HookError::Probe(
                "val/n01/broken.JPEG: not a JPEG file".into(),
            )),
            _ => b,
        }))
    }

    fn normalization(&self) -> ([f32; 3], [f32; 3]) {
        self.0.normalization()
    }
}

/// A hook that reads nothing of the probe set.
struct NoProbe;

impl Hook for NoProbe {
    fn name(&self) -> &str {
        "no_probe"
    }

    fn schedule(&self) -> &Schedule {
        &Schedule::EveryEpochs(1)
    }

    fn on_epoch_end(&mut self, ctx: &HookContext<'_>) -> Result<Control, HookError> {
        ctx.sink.scalar("hooks/no_probe/ran", 1, 1.0)?;
        Ok(Control::Continue)
    }
}

#[test]
fn a_failing_shared_pass_fails_the_hooks_that_needed_it_and_no_other() {
    let (_vs, net) = network();
    let broken = BrokenProbe(probe(6));
    let unused = probe(1);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let ctx = HookContext {
        probe: &broken,
        train_probe: None,
        ..context(&net, &unused, dir.path(), &sink, 1)
    };
    let mut hooks = Hooks::new();
    for hook in paper_hooks() {
        hooks.register(hook).unwrap();
    }
    hooks.register(Box::new(NoProbe)).unwrap();
    let d = hooks.dispatch(Event::EpochEnd, &ctx).unwrap();
    assert!(d.shared.is_some());
    assert_eq!(
        sink.tags(),
        [
            "hooks/deconv/error",
            "hooks/evolution/error",
            "hooks/dead_filters/error",
            "hooks/aliasing/error",
            "hooks/no_probe/ran"
        ],
        "the four failures are reported, the hook that reads no probe ran"
    );
    // Aliasing's layer-2 projections come from the shared pass.
    assert_eq!(d.failures.len(), 4, "{:?}", d.failures);
    for e in &d.failures {
        let text = e.to_string();
        assert!(
            text.contains("the probe pass shared with the other hooks failed")
                && text.contains("broken.JPEG"),
            "{text}"
        );
    }
    assert_eq!(d.ran.len(), 5, "each hook is still reported as run");
}

/// A probe set that counts its passes over the whole set.
struct Counted(TensorProbe, std::cell::Cell<usize>);

impl ProbeSet for Counted {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn stream(&self, indices: Option<&[usize]>) -> ProbeBatches<'_> {
        if indices.is_none() {
            self.1.set(self.1.get() + 1);
        }
        self.0.stream(indices)
    }

    fn normalization(&self) -> ([f32; 3], [f32; 3]) {
        self.0.normalization()
    }
}

#[test]
fn at_the_last_planned_epoch_the_hooks_due_at_the_end_of_training_share_the_epoch_end_pass() {
    let (_vs, net) = network();
    let counted = Counted(probe(5), Default::default());
    let unused = probe(1);
    let dir = tempfile::tempdir().unwrap();
    let sink = MemorySink::default();
    let at = |epoch: u64, step: u64| HookContext {
        probe: &counted,
        train_probe: None,
        step,
        ..context(&net, &unused, dir.path(), &sink, epoch)
    };
    let mut hooks = Hooks::new();
    hooks
        .register(Box::new(DeconvGridHook::new(DeconvGridConfig {
            schedule: Schedule::EpochsAndLast(vec![1]),
            maps: Maps::Count(2),
            k: 2,
            ..DeconvGridConfig::default()
        })))
        .unwrap();
    hooks
        .register(Box::new(DeadFiltersHook::new(DeadFiltersConfig {
            schedule: Schedule::EveryEpochs(1),
            ..DeadFiltersConfig::default()
        })))
        .unwrap();
    hooks.plan_epochs(2);

    // Epoch 2 is the last: the grids (due at the end of training) join.
    let d = hooks.dispatch(Event::EpochEnd, &at(2, 20)).unwrap();
    assert_eq!(d.shared.unwrap().0, ["deconv", "dead_filters"]);
    assert_eq!(d.ran.len(), 1, "only dead filters ran at the epoch's end");
    hooks.dispatch(Event::Checkpoint, &at(2, 20)).unwrap();
    let d = hooks.dispatch(Event::TrainEnd, &at(2, 20)).unwrap();
    assert!(d.failures.is_empty(), "{:?}", d.failures);
    assert!(d.shared.is_none(), "no second pass");
    assert_eq!(d.ran.len(), 1, "the grids ran at the end of training");
    assert!(dir.path().join("hooks/deconv/epoch-002").is_dir());
    assert_eq!(
        counted.1.get(),
        1,
        "one pass over the probe set for both events"
    );

    // A run that ends elsewhere (a stop) gets a pass of its own.
    hooks.dispatch(Event::EpochEnd, &at(2, 20)).unwrap();
    hooks.dispatch(Event::TrainEnd, &at(2, 21)).unwrap();
    assert_eq!(counted.1.get(), 3);
}
