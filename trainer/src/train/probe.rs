//! The probe set of a run: `probe.images` evenly spaced validation images
//! (0, or more than there are: all of them) through the evaluation
//! transform, streamed through the data loader's worker threads in
//! batches, in order. Nothing is held but the batches in flight, so mining
//! the 50,000 images of ImageNet's validation set needs no more memory than
//! mining 64. Files that do not decode are named in the log and left out
//! (`data.bad_images = "skip"`) or end the pass with an error that names
//! them (`"fail"`); a pass says how far it is every `train.log_every_s`
//! seconds.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{bail, Result};
use tch::Tensor;
use tracing::warn;
use zftrain_data::{Augment, Dataset, Loader, LoaderConfig, MeanImage, Transform};
use zftrain_hooks::{HookError, ProbeBatch, ProbeBatches, ProbeSet};

use crate::config::RunConfig;
use crate::train::stop::StopHandle;
use crate::train::ticker::Ticker;

/// The probe images of a run, read from their files on every pass.
#[derive(Debug)]
pub struct LoaderProbe {
    /// The chosen samples, in probe order.
    images: Dataset,
    transform: Transform,
    loader: LoaderConfig,
    crop: i64,
    mean: [f32; 3],
    std: [f32; 3],
    log_every_s: f64,
    /// Passes end (with an error) once it is requested.
    stop: StopHandle,
    /// Whether the images' classes are the network's (their labels are
    /// then the true classes the analyses follow).
    labelled: bool,
}

impl LoaderProbe {
    /// The same probe set, whose passes end at the next batch once `stop`
    /// is requested (the pass's error then says so).
    pub fn stopped_by(self, stop: &StopHandle) -> LoaderProbe {
        LoaderProbe {
            stop: stop.clone(),
            ..self
        }
    }

    /// The same probe set, whose labels are the network's classes when
    /// `labelled` (a run's validation set; a folder whose class names are
    /// the weights'): the occlusion and invariance hooks then follow the
    /// true class.
    pub fn labelled(self, labelled: bool) -> LoaderProbe {
        LoaderProbe { labelled, ..self }
    }

    /// `config.probe.images` evenly spaced samples of `val` (0: all), with
    /// the run's mean image if it has one.
    pub fn new(
        config: &RunConfig,
        val: &Dataset,
        mean_image: Option<Arc<MeanImage>>,
    ) -> Result<LoaderProbe> {
        Self::evenly(config, val, mean_image, config.probe.images)
    }

    /// `count` evenly spaced samples of `images` (0, or more than it has:
    /// all), through the evaluation transform with the run's mean image if
    /// it has one.
    pub fn evenly(
        config: &RunConfig,
        val: &Dataset,
        mean_image: Option<Arc<MeanImage>>,
        count: usize,
    ) -> Result<LoaderProbe> {
        let d = &config.data;
        let n = val.len();
        if n == 0 {
            bail!(
                "the probe set would be empty: {} has no images",
                val.source.display()
            );
        }
        let take = match count {
            0 => n,
            k => k.min(n),
        };
        let images = with_samples(val, (0..take).map(|i| i * n / take));
        let mean = match &mean_image {
            Some(m) => m.channel_means(),
            None => d.mean,
        };
        Ok(LoaderProbe {
            images,
            transform: d.transform(Augment::Eval, mean_image)?,
            loader: LoaderConfig {
                batch_size: config.probe.batch_size,
                workers: d.workers,
                queue_depth: d.queue_depth,
                shuffle: false,
                drop_last: false,
                seed: config.seed,
                bad_images: d.bad_images,
                max_pixels: d.max_pixels,
                shard: None,
            },
            crop: d.crop as i64,
            mean,
            std: d.std,
            log_every_s: config.train.log_every_s,
            stop: StopHandle::new(),
            labelled: false,
        })
    }
}

impl ProbeSet for LoaderProbe {
    fn len(&self) -> usize {
        self.images.len()
    }

    fn stream(&self, indices: Option<&[usize]>) -> ProbeBatches<'_> {
        let picked: Vec<usize> = match indices {
            Some(v) => v.iter().copied().filter(|&i| i < self.len()).collect(),
            None => (0..self.len()).collect(),
        };
        let subset = with_samples(&self.images, picked.iter().copied());
        let ticker = Rc::new(RefCell::new(Ticker::new(
            "probe pass",
            picked.len(),
            self.log_every_s,
        )));
        let last = Rc::clone(&ticker);
        let loader = Loader::new(subset, self.transform.clone(), self.loader.clone());
        let crop = self.crop;
        let batches = loader.epoch(0, 0);
        let stop = self.stop.clone();
        Box::new(
            batches
                .filter_map(move |batch| {
                    if stop.requested() {
                        return Some(Err(HookError::Probe(
                            "the run is stopping: probe pass cut short".into(),
                        )));
                    }
                    let batch = match batch {
                        Ok(b) => b,
                        Err(e) => return Some(Err(HookError::Probe(e.to_string()))),
                    };
                    ticker.borrow_mut().add(batch.len() + batch.skipped.len());
                    for (file, why) in &batch.skipped {
                        warn!(file = %file.display(), reason = %why, "probe image skipped");
                    }
                    if batch.is_empty() {
                        return None;
                    }
                    let n = batch.len() as i64;
                    let images = Tensor::from_slice(&batch.images).view([n, 3, crop, crop]);
                    Some(Ok(ProbeBatch {
                        indices: batch.positions.iter().map(|&p| picked[p] as i64).collect(),
                        images,
                    }))
                })
                .chain(std::iter::from_fn(move || {
                    last.borrow().finish();
                    None
                })),
        )
    }

    fn normalization(&self) -> ([f32; 3], [f32; 3]) {
        (self.mean, self.std)
    }

    fn file(&self, i: usize) -> Option<PathBuf> {
        self.images.samples.get(i).map(|s| s.path.clone())
    }

    fn label(&self, i: usize) -> Option<i64> {
        let sample = self.images.samples.get(i).filter(|_| self.labelled)?;
        Some(sample.label as i64)
    }
}

/// `base`'s samples `picked`, in that order, with its classes and source.
fn with_samples(base: &Dataset, picked: impl Iterator<Item = usize>) -> Dataset {
    Dataset {
        source: base.source.clone(),
        classes: base.classes.clone(),
        samples: picked.map(|i| base.samples[i].clone()).collect(),
        pack: base.pack.clone(),
    }
}
