//! The hooks of a run and how events reach them: in registration order,
//! each call isolated, so that a hook that fails or panics is reported (as
//! the text summary `hooks/<name>/error`) and training goes on, unless the
//! hook is required.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::error::panic_message;
use crate::{Control, Event, Hook, HookContext, HookError, HookState, SavedStates, SharedPass};

/// What happened when an event was dispatched.
#[derive(Debug, Default)]
pub struct Dispatch {
    /// Stop training?
    pub control: Control,
    /// Hooks that failed (not required ones: reported, training goes on).
    pub failures: Vec<HookError>,
    /// Hooks that ran, with their time.
    pub ran: Vec<(String, Duration)>,
    /// The probe pass the hooks due shared, if one ran: the hooks it
    /// serves (at the last planned epoch's end, those due at the end of
    /// training too), and its time (not counted in theirs).
    pub shared: Option<(Vec<String>, Duration)>,
    /// A stop was requested ([`HookContext::stop`]) before every hook due
    /// had run: the rest did not run, and a failure after the request is
    /// taken for the stop (not reported).
    pub interrupted: bool,
}

/// The registered hooks.
#[derive(Default)]
pub struct Hooks {
    hooks: Vec<Box<dyn Hook>>,
    /// The epochs the run plans: at the end of the last one, the pass the
    /// epoch-end hooks share also serves the hooks due at the end of
    /// training ("and the last"), which run right after at the same step.
    planned_epochs: Option<u64>,
    /// That pass, with the epoch and step it was made at.
    kept: Option<(u64, u64, SharedPass)>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.hooks.iter().map(|h| h.name()))
            .finish()
    }
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Hooks {
        Hooks::default()
    }

    /// Adds a hook; names and state keys must be unique and plain (they
    /// become folder and file names).
    pub fn register(&mut self, hook: Box<dyn Hook>) -> Result<(), HookError> {
        let name = hook.name().to_string();
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        let bad = |message: &str| HookError::Config {
            hook: name.clone(),
            message: message.into(),
        };
        if !plain(&name) || !plain(&hook.state_key()) {
            return Err(bad(
                "a hook name or state key may hold only letters, digits, '-' and '_'",
            ));
        }
        if self.hooks.iter().any(|h| h.name() == name) {
            return Err(bad("two hooks have this name"));
        }
        if self.hooks.iter().any(|h| h.state_key() == hook.state_key()) {
            return Err(bad("two hooks have the same state key"));
        }
        if let Err(message) = hook.schedule().check() {
            return Err(HookError::Config {
                hook: name,
                message: format!("schedule: {message}"),
            });
        }
        self.hooks.push(hook);
        Ok(())
    }

    /// The run plans `epochs` epochs (see [`Hooks`]'s `planned_epochs`).
    pub fn plan_epochs(&mut self, epochs: u64) {
        self.planned_epochs = Some(epochs);
    }

    /// Number of hooks.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Whether any hook would run at this event (so the trainer can skip
    /// preparing a context).
    pub fn wants(&self, event: Event, epoch: u64, step: u64) -> bool {
        self.hooks
            .iter()
            .any(|h| due(h.as_ref(), event, epoch, step))
    }

    /// Sends `event` to every hook whose schedule matches. A required
    /// hook's failure is returned as the error; others are collected.
    pub fn dispatch(&mut self, event: Event, ctx: &HookContext<'_>) -> Result<Dispatch, HookError> {
        self.send(event, ctx, false)
    }

    /// Sends `event` to every hook, whatever its schedule (`zftrain
    /// visualize` runs them once on a checkpoint this way).
    pub fn dispatch_all(
        &mut self,
        event: Event,
        ctx: &HookContext<'_>,
    ) -> Result<Dispatch, HookError> {
        self.send(event, ctx, true)
    }

    fn send(
        &mut self,
        event: Event,
        ctx: &HookContext<'_>,
        all: bool,
    ) -> Result<Dispatch, HookError> {
        let mut out = Dispatch::default();
        let at = (ctx.epoch, ctx.step);
        let due_now: Vec<bool> = self
            .hooks
            .iter()
            .map(|h| all || due(h.as_ref(), event, ctx.epoch, ctx.step))
            .collect();
        // A pass kept at another step is stale; at this step it waits (other
        // events, a checkpoint's, come between) for the end of training.
        if matches!(&self.kept, Some((e, s, _)) if (*e, *s) != at) {
            self.kept = None;
        }
        let kept = match event {
            Event::TrainEnd => self.kept.take().map(|(_, _, pass)| pass),
            _ => None,
        };
        let ahead = self.ahead(event, ctx, &due_now, all);
        let (shared, wanting) = match kept {
            Some(pass) => (Some(Ok(pass)), Vec::new()),
            None => self.shared_pass(event, ctx, &due_now, &ahead, &mut out),
        };
        let keep = ahead.iter().any(|&a| a);
        let with_shared;
        let ctx = match &shared {
            Some(Ok(pass)) => {
                with_shared = HookContext {
                    shared: Some(pass),
                    ..*ctx
                };
                &with_shared
            }
            _ => ctx,
        };
        for (i, hook) in self.hooks.iter_mut().enumerate() {
            if !due_now[i] {
                continue;
            }
            if ctx.stopping() {
                out.interrupted = true;
                break;
            }
            let name = hook.name().to_string();
            let start = Instant::now();
            let result = match &shared {
                Some(Err(message)) if wanting.contains(&i) => Err(HookError::Probe(format!(
                    "the probe pass shared with the other hooks failed: {message}"
                ))
                .in_hook(&name)),
                _ => call_hook(hook.as_mut(), event, ctx),
            };
            out.ran.push((name.clone(), start.elapsed()));
            match result {
                Ok(Control::Stop) => out.control = Control::Stop,
                Ok(Control::Continue) => {}
                // Cut short by the stop (its probe pass ended): not a failure.
                Err(_) if ctx.stopping() => {
                    out.interrupted = true;
                    break;
                }
                Err(e) if hook.required() => return Err(e),
                Err(e) => {
                    let step = ctx.step as i64;
                    let _ = ctx
                        .sink
                        .text(&format!("hooks/{name}/error"), step, &e.to_string());
                    out.failures.push(e);
                }
            }
        }
        if let (true, Some(Ok(pass)), false) = (keep, shared, out.interrupted) {
            self.kept = Some((at.0, at.1, pass));
        }
        Ok(out)
    }

    /// At the end of the last planned epoch, the hooks not due now that are
    /// due at the end of training, right after (they join the pass).
    fn ahead(&self, event: Event, ctx: &HookContext<'_>, due_now: &[bool], all: bool) -> Vec<bool> {
        match (event, self.planned_epochs) {
            (Event::EpochEnd, Some(last)) if !all && ctx.epoch == last => self
                .hooks
                .iter()
                .enumerate()
                .map(|(i, h)| !due_now[i] && due(h.as_ref(), Event::TrainEnd, ctx.epoch, ctx.step))
                .collect(),
            _ => vec![false; self.hooks.len()],
        }
    }

    /// When two or more of the hooks due (`due_now`, and `ahead`: due at
    /// the end of training, right after) read the probe set's conv outputs,
    /// one pass for all of them (its time in `out.shared`), or why it
    /// failed; and the hooks due now that wanted it.
    fn shared_pass(
        &self,
        event: Event,
        ctx: &HookContext<'_>,
        due_now: &[bool],
        ahead: &[bool],
        out: &mut Dispatch,
    ) -> (Option<Result<SharedPass, String>>, Vec<usize>) {
        let mut needs = Vec::new();
        let mut wanting = Vec::new();
        let mut served = Vec::new();
        for (i, hook) in self.hooks.iter().enumerate() {
            let at = match (due_now[i], ahead[i]) {
                (true, _) => event,
                (false, true) => Event::TrainEnd,
                (false, false) => continue,
            };
            // A hook whose needs cannot be worked out runs its own pass
            // (and reports the same error there).
            let asked = catch_unwind(AssertUnwindSafe(|| hook.probe_needs(at, ctx)));
            if let Ok(Ok(n)) = asked {
                if !n.is_empty() {
                    if due_now[i] {
                        wanting.push(i);
                    }
                    served.push(i);
                    needs.extend(n);
                }
            }
        }
        if served.len() < 2 {
            return (None, Vec::new());
        }
        let start = Instant::now();
        let pass = match catch_unwind(AssertUnwindSafe(|| SharedPass::run(ctx, &needs))) {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(payload) => Err(format!("panicked: {}", panic_message(payload.as_ref()))),
        };
        out.shared = Some((
            served
                .iter()
                .map(|&i| self.hooks[i].name().to_string())
                .collect(),
            start.elapsed(),
        ));
        (Some(pass), wanting)
    }

    /// Every stateful hook's state, by state key.
    pub fn save_states(&self) -> Result<Vec<(String, HookState)>, HookError> {
        let mut out = Vec::new();
        for h in &self.hooks {
            if let Some(state) = h.save_state()? {
                out.push((h.state_key(), state));
            }
        }
        Ok(out)
    }

    /// Hands saved states back to the hooks: each hook takes the state
    /// under its state key out of `saved`; what is left there belongs to
    /// no hook configured now (the caller reports it).
    pub fn load_states(&mut self, saved: &mut SavedStates) -> Result<(), HookError> {
        for h in &mut self.hooks {
            if let Some(state) = saved.remove(&h.state_key()) {
                h.load_state(state)?;
            }
        }
        Ok(())
    }
}

/// Calls `hook`'s method for `event`; a panic in it becomes the hook's
/// error, named.
fn call_hook(
    hook: &mut dyn Hook,
    event: Event,
    ctx: &HookContext<'_>,
) -> Result<Control, HookError> {
    let name = hook.name().to_string();
    let result = catch_unwind(AssertUnwindSafe(|| match event {
        Event::TrainStart => hook.on_train_start(ctx),
        Event::StepEnd => hook.on_step_end(ctx),
        Event::EpochEnd => hook.on_epoch_end(ctx),
        Event::Checkpoint => hook.on_checkpoint(ctx),
        Event::TrainEnd => hook.on_train_end(ctx),
    }));
    match result {
        Ok(r) => r.map_err(|e| e.in_hook(&name)),
        Err(payload) => Err(HookError::Panicked {
            hook: name,
            message: panic_message(payload.as_ref()),
        }),
    }
}

fn due(hook: &dyn Hook, event: Event, epoch: u64, step: u64) -> bool {
    let s = hook.schedule();
    match event {
        Event::TrainStart | Event::Checkpoint => true,
        Event::StepEnd => s.at_step_end(step),
        Event::EpochEnd => s.at_epoch_end(epoch),
        Event::TrainEnd => s.at_train_end(epoch),
    }
}
