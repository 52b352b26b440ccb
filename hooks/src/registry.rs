//! The hooks of a run and how events reach them: in registration order,
//! each call isolated, so that a hook that fails or panics is reported (as
//! the text summary `hooks/<name>/error`) and training goes on, unless the
//! hook is required.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::{Control, Event, Hook, HookContext, HookError, HookState};

/// What happened when an event was dispatched.
#[derive(Debug, Default)]
pub struct Dispatch {
    /// Stop training?
    pub control: Control,
    /// Hooks that failed (not required ones: reported, training goes on).
    pub failures: Vec<HookError>,
    /// Hooks that ran, with their time.
    pub ran: Vec<(String, Duration)>,
}

/// The registered hooks.
#[derive(Default)]
pub struct Hooks {
    hooks: Vec<Box<dyn Hook>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.hooks.iter().map(|h| h.name()))
            .finish()
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
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
        for hook in &mut self.hooks {
            if !all && !due(hook.as_ref(), event, ctx.epoch, ctx.step) {
                continue;
            }
            let name = hook.name().to_string();
            let start = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| match event {
                Event::TrainStart => hook.on_train_start(ctx),
                Event::StepEnd => hook.on_step_end(ctx),
                Event::EpochEnd => hook.on_epoch_end(ctx),
                Event::Checkpoint => hook.on_checkpoint(ctx),
                Event::TrainEnd => hook.on_train_end(ctx),
            }));
            let result = match result {
                Ok(r) => r.map_err(|e| e.in_hook(&name)),
                Err(payload) => Err(HookError::Panicked {
                    hook: name.clone(),
                    message: panic_message(payload.as_ref()),
                }),
            };
            out.ran.push((name.clone(), start.elapsed()));
            match result {
                Ok(Control::Stop) => out.control = Control::Stop,
                Ok(Control::Continue) => {}
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
        Ok(out)
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

    /// Hands saved states back to the hooks with the same state keys; states
    /// of hooks no longer configured are returned (the caller reports them).
    pub fn load_states(
        &mut self,
        states: Vec<(String, HookState)>,
    ) -> Result<Vec<String>, HookError> {
        let mut orphans = Vec::new();
        for (name, state) in states {
            match self.hooks.iter_mut().find(|h| h.state_key() == name) {
                Some(h) => h.load_state(state)?,
                None => orphans.push(name),
            }
        }
        Ok(orphans)
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
