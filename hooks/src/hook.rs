//! The `Hook` trait: named analyses that react to training events, with a
//! schedule and state that goes into checkpoints.

use tch::Tensor;

use crate::{HookContext, HookError, ProbeNeed, Schedule};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Before the first step (also on resume).
    TrainStart,
    /// After an optimizer step.
    StepEnd,
    /// After an epoch's training and validation.
    EpochEnd,
    /// After the checkpoint at an epoch's end was written.
    Checkpoint,
    /// When training ends (not when it is interrupted).
    TrainEnd,
}

/// What a hook asks of the trainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    /// Go on.
    #[default]
    Continue,
    /// Stop training after this event (a checkpoint is written).
    Stop,
}

/// State a hook keeps across checkpoints: named tensors and a JSON value.
#[derive(Debug, Default)]
pub struct HookState {
    /// Named tensors (saved as safetensors).
    pub tensors: Vec<(String, Tensor)>,
    /// Anything else.
    pub json: serde_json::Value,
}

/// The states a checkpoint holds, by name (a hook's state key, or the name
/// a trainer callback saved its state under). On resume each participant
/// takes its own out; what is left belongs to nobody configured now.
pub type SavedStates = std::collections::BTreeMap<String, HookState>;

/// A hook. Every event method defaults to doing nothing; the registry calls
/// a method only when the hook's [`Schedule`] says so (`on_train_start` and
/// `on_checkpoint` always).
pub trait Hook: Send {
    /// A short name (letters, digits, `-`, `_`): the folder of its files and
    /// the key of its state.
    fn name(&self) -> &str;

    /// When it runs.
    fn schedule(&self) -> &Schedule;

    /// The key its state is saved under in checkpoints (default: the name;
    /// override it to keep state across a rename).
    fn state_key(&self) -> String {
        self.name().to_string()
    }

    /// A failure of a required hook stops training; of others it is reported.
    fn required(&self) -> bool {
        false
    }

    /// What the hook will read off the probe set's conv outputs at `event`
    /// (default: nothing). When several hooks due at the same event need
    /// something, the registry streams the probe set once for all of them
    /// and hands the result over in [`HookContext::shared`], where
    /// [`crate::mine_probe`] finds it; a hook that reads the probe set in
    /// some other way says nothing here.
    fn probe_needs(
        &self,
        _event: Event,
        _ctx: &HookContext<'_>,
    ) -> Result<Vec<ProbeNeed>, HookError> {
        Ok(Vec::new())
    }

    /// Before the first step.
    fn on_train_start(&mut self, _ctx: &HookContext<'_>) -> Result<Control, HookError> {
        Ok(Control::Continue)
    }

    /// After a scheduled step.
    fn on_step_end(&mut self, _ctx: &HookContext<'_>) -> Result<Control, HookError> {
        Ok(Control::Continue)
    }

    /// After a scheduled epoch.
    fn on_epoch_end(&mut self, _ctx: &HookContext<'_>) -> Result<Control, HookError> {
        Ok(Control::Continue)
    }

    /// After the checkpoint at an epoch's end was written.
    fn on_checkpoint(&mut self, _ctx: &HookContext<'_>) -> Result<Control, HookError> {
        Ok(Control::Continue)
    }

    /// When training ends.
    fn on_train_end(&mut self, _ctx: &HookContext<'_>) -> Result<Control, HookError> {
        Ok(Control::Continue)
    }

    /// State to checkpoint (`None`: stateless). The state is a snapshot:
    /// it must not share a tensor the hook later changes in place (the
    /// trainer takes it before an epoch's end and saves it if a stop cuts
    /// that end short, so the resumed run redoes it from there).
    fn save_state(&self) -> Result<Option<HookState>, HookError> {
        Ok(None)
    }

    /// State from a checkpoint, handed back on resume.
    fn load_state(&mut self, _state: HookState) -> Result<(), HookError> {
        Ok(())
    }
}
