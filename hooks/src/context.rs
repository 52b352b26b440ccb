//! What a hook gets when it runs: the network in evaluation mode on its
//! device, the probe set, where training stands, the run directory and the
//! summary sink.

use std::path::Path;

use tch::{Device, Tensor};
use zftrain_model::Network;

use crate::{HookError, SharedPass, SummarySink};

/// A batch of probe images.
#[derive(Debug)]
pub struct ProbeBatch {
    /// Probe-set indices of the rows, ascending.
    pub indices: Vec<i64>,
    /// `[B, 3, H, W]` normalized images, on the CPU.
    pub images: Tensor,
}

/// The batches of a probe pass, in order.
pub type ProbeBatches<'a> = Box<dyn Iterator<Item = Result<ProbeBatch, HookError>> + 'a>;

/// A fixed set of images the hooks look at, in a fixed order, streamed in
/// batches of normalized `[B, 3, H, W]` tensors: a hook never holds the
/// whole set (it may be the 50,000 images of ImageNet's validation set).
pub trait ProbeSet {
    /// Number of images.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The images `indices` (ascending; `None`: all of them) in batches, in
    /// order. An image that cannot be read is left out (its file named in
    /// the log) or is the pass's error, as the set was configured.
    fn stream(&self, indices: Option<&[usize]>) -> ProbeBatches<'_>;
    /// Per-channel mean and std the images were normalized with (for
    /// showing patches).
    fn normalization(&self) -> ([f32; 3], [f32; 3]);
    /// The file image `i` was read from, when it was read from one.
    fn file(&self, i: usize) -> Option<std::path::PathBuf> {
        let _ = i;
        None
    }
    /// The true class of image `i` among the network's classes, when the
    /// set knows it (a run's validation images do; a folder whose classes
    /// are not the network's does not).
    fn label(&self, i: usize) -> Option<i64> {
        let _ = i;
        None
    }
}

impl dyn ProbeSet + '_ {
    /// Every image, in batches, in order.
    pub fn batches(&self) -> ProbeBatches<'_> {
        self.stream(None)
    }

    /// The images `indices` (any order, repeats allowed) as one
    /// `[N, 3, H, W]` tensor on the CPU; an index past the end, or an image
    /// that cannot be read, is an error.
    pub fn images(&self, indices: &[usize]) -> Result<Tensor, HookError> {
        let n = self.len();
        if let Some(bad) = indices.iter().find(|&&i| i >= n) {
            return Err(HookError::Probe(format!(
                "image {bad} does not exist (the probe set has {n})"
            )));
        }
        let mut wanted = indices.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut rows = Vec::new();
        let mut got = Vec::new();
        for batch in self.stream(Some(&wanted)) {
            let batch = batch?;
            rows.extend(batch.indices);
            got.push(batch.images);
        }
        let at = indices
            .iter()
            .map(|&i| {
                rows.binary_search(&(i as i64))
                    .map(|r| r as i64)
                    .map_err(|_| {
                        let file = self.file(i).map(|p| format!(" ({})", p.display()));
                        HookError::Probe(format!(
                            "image {i}{} could not be read",
                            file.unwrap_or_default()
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tensor::cat(&got, 0).index_select(0, &Tensor::from_slice(&at)))
    }
}

/// A probe set held in memory (tests, small sets).
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
    /// `[P]` true classes, when known.
    pub labels: Option<Vec<i64>>,
}

impl ProbeSet for TensorProbe {
    fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    fn stream(&self, indices: Option<&[usize]>) -> ProbeBatches<'_> {
        let all: Vec<i64>;
        let wanted: Vec<i64> = match indices {
            Some(v) => v.iter().map(|&i| i as i64).collect(),
            None => {
                all = (0..self.images.size()[0]).collect();
                all
            }
        };
        let b = self.batch_size.max(1) as usize;
        let chunks: Vec<Vec<i64>> = wanted.chunks(b).map(|c| c.to_vec()).collect();
        Box::new(chunks.into_iter().map(move |rows| {
            let images = self
                .images
                .f_index_select(0, &Tensor::from_slice(&rows))
                .map_err(HookError::Torch)?;
            Ok(ProbeBatch {
                indices: rows,
                images,
            })
        }))
    }

    fn normalization(&self) -> ([f32; 3], [f32; 3]) {
        (self.mean, self.std)
    }

    fn label(&self, i: usize) -> Option<i64> {
        self.labels.as_ref().and_then(|l| l.get(i).copied())
    }
}

/// The context of one hook call.
pub struct HookContext<'a> {
    /// The network, to be used in evaluation mode (`train = false`).
    pub net: &'a Network,
    /// Where the network's parameters live; probe batches go there.
    pub device: Device,
    /// The network on every device of the run, replica 0 (`net`, `device`)
    /// first; hooks that stream the probe set spread it over them
    /// ([`crate::on_devices`]). Empty: `net` alone.
    pub replicas: &'a [(&'a Network, Device)],
    /// The probe set.
    pub probe: &'a dyn ProbeSet,
    /// Evenly spaced training images, for hooks that mine the training set
    /// (the evolution hook's `source = "train"`, as the paper mined "across
    /// all training examples"); `None` where there are none (outside
    /// training, or when no hook asked for them).
    pub train_probe: Option<&'a dyn ProbeSet>,
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
    /// The probe pass shared by the hooks due at this event, when more than
    /// one needs one (set by the registry; `None` elsewhere).
    pub shared: Option<&'a SharedPass>,
    /// Whether a stop of the run was requested (`None`: never): the
    /// registry runs no further hook and takes a hook's failure after it
    /// for the stop; long work (an exec plugin) ends early.
    pub stop: Option<&'a (dyn Fn() -> bool + Sync)>,
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

impl<'a> HookContext<'a> {
    /// Whether a stop of the run was requested ([`HookContext::stop`]).
    pub fn stopping(&self) -> bool {
        self.stop.is_some_and(|asked| asked())
    }

    /// The networks to spread work over: [`HookContext::replicas`], or
    /// `net` on `device` when there are none.
    pub fn devices(&self) -> Vec<(&'a Network, Device)> {
        match self.replicas.is_empty() {
            true => vec![(self.net, self.device)],
            false => self.replicas.to_vec(),
        }
    }

    /// The folder for `hook`'s files, created if needed; refused when
    /// `hooks/` or `hooks/<hook>` is a link (a run directory is data: a
    /// hook writes and cleans up inside it, never through a link).
    pub fn output_dir(&self, hook: &str) -> Result<std::path::PathBuf, HookError> {
        let dir = self.run_dir.join("hooks").join(hook);
        self.plain_dir(hook, &dir)?;
        Ok(dir)
    }

    /// `dir` (a path below [`HookContext::output_dir`]) made a folder,
    /// refused when it or a folder on the way from the run directory is a
    /// link.
    pub fn plain_dir(&self, hook: &str, dir: &std::path::Path) -> Result<(), HookError> {
        // Before anything is created through a link, and after.
        refuse_links(self.run_dir, dir, hook)?;
        std::fs::create_dir_all(dir).map_err(HookError::io(dir))?;
        refuse_links(self.run_dir, dir, hook)
    }
}

/// Fails when any component of `path` below `root` is a symbolic link.
fn refuse_links(
    root: &std::path::Path,
    path: &std::path::Path,
    hook: &str,
) -> Result<(), HookError> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(());
    };
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(HookError::failed(
                hook,
                format!(
                    "{} is a symbolic link: hooks write and clean up inside the run directory, never through a link; remove it",
                    at.display()
                ),
            ));
        }
    }
    Ok(())
}
