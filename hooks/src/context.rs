//! What a hook gets when it runs: the network in evaluation mode on its
//! device, the probe set, where training stands, the run directory and the
//! summary sink.

use std::path::Path;

use tch::{Device, Tensor};
use zftrain_model::Network;

use crate::{HookError, SummarySink};

/// A fixed set of images the hooks look at, in a fixed order, streamed in
/// batches of normalized `[B, 3, H, W]` tensors.
pub trait ProbeSet {
    /// Number of images.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The batches, in order, on `device`.
    fn batches(&self, device: Device) -> Box<dyn Iterator<Item = Result<Tensor, HookError>> + '_>;
    /// Per-channel mean and std the images were normalized with (for
    /// showing patches).
    fn normalization(&self) -> ([f32; 3], [f32; 3]);
}

/// A probe set held in memory.
#[derive(Debug)]
pub struct TensorProbe {
    /// `[P, 3, H, W]` normalized images.
    pub images: Tensor,
    /// Images per batch.
    pub batch_size: i64,
    /// Per-channel mean used to normalize them.
    pub mean: [f32; 3],
    /// Per-channel std used to normalize them.
    pub std: [f32; 3],
}

impl ProbeSet for TensorProbe {
    fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    fn batches(&self, device: Device) -> Box<dyn Iterator<Item = Result<Tensor, HookError>> + '_> {
        let n = self.images.size()[0];
        let b = self.batch_size.max(1);
        Box::new((0..n).step_by(b as usize).map(move |start| {
            Ok(self
                .images
                .narrow(0, start, b.min(n - start))
                .to_device(device))
        }))
    }

    fn normalization(&self) -> ([f32; 3], [f32; 3]) {
        (self.mean, self.std)
    }
}

/// The context of one hook call.
pub struct HookContext<'a> {
    /// The network, to be used in evaluation mode (`train = false`).
    pub net: &'a Network,
    /// Where the network's parameters live; probe batches go there.
    pub device: Device,
    /// The probe set.
    pub probe: &'a dyn ProbeSet,
    /// Epochs completed (1-based at an epoch end; 0 before training).
    pub epoch: u64,
    /// Optimizer steps completed.
    pub step: u64,
    /// The run directory (hooks write their files under `hooks/<name>/`).
    pub run_dir: &'a Path,
    /// Summaries go here.
    pub sink: &'a dyn SummarySink,
    /// What training measured last (all `None` outside training, as in
    /// `zftrain visualize`).
    pub metrics: Metrics,
}

/// What training measured last, as a hook sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    /// The latest step's mean loss over its global batch.
    pub loss: Option<f64>,
    /// The learning rate of the latest step.
    pub lr: Option<f64>,
    /// The latest validation loss.
    pub val_loss: Option<f64>,
    /// The latest validation top-1 accuracy, in `[0, 1]`.
    pub val_top1: Option<f64>,
    /// The latest validation top-5 accuracy, in `[0, 1]`.
    pub val_top5: Option<f64>,
}

impl HookContext<'_> {
    /// The folder for `hook`'s files, created if needed.
    pub fn output_dir(&self, hook: &str) -> Result<std::path::PathBuf, HookError> {
        let dir = self.run_dir.join("hooks").join(hook);
        std::fs::create_dir_all(&dir).map_err(HookError::io(&dir))?;
        Ok(dir)
    }
}
