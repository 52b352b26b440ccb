//! What the trainer remembers across a checkpoint, besides weights and
//! momentum: where it is (epoch, batch cursor, step), the best result, the
//! schedule's state. With the data order fixed by `(seed, epoch)` and the
//! dropout stream reseeded from `(seed, step)` every step, this is all a
//! resumed run needs to continue bit for bit.

use serde::{Deserialize, Serialize};

use crate::engine::scaler::LossScaler;
use crate::train::schedule::ScheduleState;

/// The trainer's position and history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// The epoch in progress (0-based).
    pub epoch: u64,
    /// The next batch of that epoch.
    pub batch: usize,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// Best validation top-1 so far.
    pub best_top1: f64,
    /// Step of the checkpoint with the best validation top-1.
    pub best_step: Option<u64>,
    /// Learning-rate schedule state.
    pub schedule: ScheduleState,
    /// Images left out because they did not decode.
    pub skipped_images: u64,
    /// The fp16 loss scaler's state.
    #[serde(default)]
    pub loss_scaler: Option<LossScaler>,
}
