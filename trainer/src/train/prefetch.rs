//! Batches become tensors one step ahead, on a thread of their own: while
//! the devices run step N, batch N+1 is copied out of the loader's buffer
//! (which goes back to the loader for reuse) into a tensor, in page-locked
//! memory when training on CUDA so that the step's host-to-device copy is
//! asynchronous. The step loop then only launches work.

use std::sync::mpsc::{sync_channel, Receiver};

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};
use zftrain_data::loader::{EpochIter, Loader};
use zftrain_data::Batch;

/// How batches are laid out as tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorLayout {
    /// Output side of the crops.
    pub crop: u32,
    /// Compute kind (applied here for CPU training, on the device for CUDA).
    pub kind: Kind,
    /// Channels-last in memory (likewise).
    pub channels_last: bool,
    /// Training on CUDA: f32 batches in page-locked memory, converted on the
    /// device.
    pub pinned: bool,
}

/// A batch with its tensors; `batch.images` is empty (its buffer went back
/// to the loader), the rest of the batch (labels, skipped files) is kept.
pub struct Prepared {
    /// The batch, less its image buffer.
    pub batch: Batch,
    /// `[N, 3, crop, crop]`.
    pub images: Tensor,
    /// `[N]` class indices.
    pub labels: Tensor,
}

/// A page-locked copy of CPU tensor `t`, which a GPU copies from
/// asynchronously. Through `_pin_memory`, which takes the device type without
/// comment: `pin_memory(device)` is deprecated in libtorch 2.11 and writes a
/// warning to stderr on every call (tch always passes the device).
pub fn page_locked(t: &Tensor) -> Result<Tensor, tch::TchError> {
    t.f_internal_pin_memory(Device::Cuda(0))
}

/// `[N, 3, crop, crop]` images and `[N]` labels of `batch` laid out as asked.
pub fn to_tensors(batch: &Batch, layout: &TensorLayout) -> Result<(Tensor, Tensor), tch::TchError> {
    let c = layout.crop as i64;
    // A sample of several views (ten-crop) is several rows, one per view.
    let images = Tensor::from_slice(&batch.images).view([-1, 3, c, c]);
    let labels = Tensor::from_slice(&batch.labels);
    if layout.pinned {
        return Ok((page_locked(&images)?, page_locked(&labels)?));
    }
    let images = if layout.kind == Kind::Float {
        images
    } else {
        images.f_to_kind(layout.kind)?
    };
    let images = if layout.channels_last {
        zftrain_model::network::to_channels_last(&images)
    } else {
        images
    };
    Ok((images, labels))
}

/// The batches of an epoch, as tensors, prepared one ahead.
pub struct Prefetch {
    results: Receiver<Result<Prepared>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prefetch {
    /// Prepares the batches of `batches` (an epoch of `loader`) with `layout`.
    pub fn new(loader: &Loader, batches: EpochIter, layout: TensorLayout) -> Prefetch {
        // One prepared batch waits while the step runs; one more is made.
        let (tx, rx) = sync_channel(1);
        let loader = loader.clone();
        let thread = std::thread::spawn(move || {
            for batch in batches {
                let prepared = batch.map_err(anyhow::Error::from).and_then(|mut batch| {
                    let (images, labels) =
                        to_tensors(&batch, &layout).context("making a batch's tensors")?;
                    loader.recycle_images(std::mem::take(&mut batch.images));
                    Ok(Prepared {
                        batch,
                        images,
                        labels,
                    })
                });
                let failed = prepared.is_err();
                // The step loop stopped listening: stop (drops the epoch,
                // which stops the loader's workers).
                if tx.send(prepared).is_err() || failed {
                    break;
                }
            }
        });
        Prefetch {
            results: rx,
            thread: Some(thread),
        }
    }
}

impl Iterator for Prefetch {
    type Item = Result<Prepared>;

    fn next(&mut self) -> Option<Self::Item> {
        self.results.recv().ok()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the channel first lets a thread blocked in `send` finish.
        let (_, closed) = sync_channel(0);
        self.results = closed;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zftrain_data::loader::LoaderConfig;
    use zftrain_data::synth::{write_synthetic, SynthConfig};
    use zftrain_data::{Augment, Dataset, Transform};

    /// What pinning a tensor for a GPU writes to stderr, in a child process
    /// (this test binary again): `deprecated_call` picks tch's
    /// `pin_memory(device)` instead of [`page_locked`]. Without a GPU the
    /// pinning itself fails; libtorch's warning, if any, comes first.
    fn stderr_of_pinning(deprecated_call: bool) -> String {
        let name = "train::prefetch::tests::pinning_for_a_gpu_writes_no_deprecation_warning";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(
                "ZFTRAIN_PIN_CHILD",
                if deprecated_call { "old" } else { "new" },
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn pinning_for_a_gpu_writes_no_deprecation_warning() {
        if let Ok(how) = std::env::var("ZFTRAIN_PIN_CHILD") {
            let t = Tensor::zeros([4], (Kind::Float, Device::Cpu));
            let _ = match how.as_str() {
                "old" => t.f_pin_memory(Device::Cuda(0)),
                _ => page_locked(&t),
            };
            return;
        }
        let err = stderr_of_pinning(false);
        assert!(!err.contains("deprecated"), "{err}");
        // The check can see the warning: the deprecated call writes it here.
        let err = stderr_of_pinning(true);
        assert!(err.contains("deprecated"), "{err}");
    }

    fn loader(dir: &std::path::Path) -> Loader {
        let config = SynthConfig {
            classes: 2,
            train_per_class: 5,
            val_per_class: 1,
            width: 80,
            height: 60,
            ..SynthConfig::default()
        };
        let dir = dir.join("synth");
        write_synthetic(&dir, &config).unwrap();
        let transform = Transform {
            augment: Augment::Zf,
            resize: 40,
            crop: 32,
            ..Transform::default()
        };
        let config = LoaderConfig {
            batch_size: 4,
            workers: 2,
            ..LoaderConfig::default()
        };
        Loader::new(
            Dataset::open(&dir.join("train")).unwrap(),
            transform,
            config,
        )
    }

    #[test]
    fn prefetched_tensors_are_the_loaders_batches_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let loader = loader(dir.path());
        let layout = TensorLayout {
            crop: 32,
            kind: Kind::BFloat16,
            channels_last: true,
            pinned: false,
        };
        let direct: Vec<Batch> = loader.epoch(3, 0).map(|b| b.unwrap()).collect();
        let prepared: Vec<Prepared> = Prefetch::new(&loader, loader.epoch(3, 0), layout)
            .map(|p| p.unwrap())
            .collect();
        assert_eq!(prepared.len(), direct.len());
        assert_eq!(direct.len(), 3, "10 images in batches of 4");
        for (p, d) in prepared.iter().zip(&direct) {
            assert!(
                p.batch.images.is_empty(),
                "the buffer went back to the loader"
            );
            assert_eq!((p.batch.index, &p.batch.labels), (d.index, &d.labels));
            let (images, labels) = to_tensors(d, &layout).unwrap();
            assert_eq!(p.images.kind(), Kind::BFloat16);
            assert_eq!(p.images.size(), [d.len() as i64, 3, 32, 32]);
            assert_eq!(p.images.stride()[1], 1, "channels-last in memory");
            assert!(p.images.equal(&images) && p.labels.equal(&labels));
        }
    }

    #[test]
    fn dropping_a_prefetch_midway_stops_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let loader = loader(dir.path());
        let layout = TensorLayout {
            crop: 32,
            kind: Kind::Float,
            channels_last: false,
            pinned: false,
        };
        let mut p = Prefetch::new(&loader, loader.epoch(0, 0), layout);
        assert!(p.next().unwrap().is_ok());
        // Drop joins the thread: this returns only if the thread stopped.
        drop(p);
        // The next epoch still works (the loader is not left busy).
        assert_eq!(
            Prefetch::new(&loader, loader.epoch(1, 0), layout).count(),
            3
        );
    }
}
