//! The loader: decode and augment in worker threads, hand out batches in a
//! fixed order.
//!
//! The epoch's order is a permutation drawn from `(seed, epoch)`; each
//! sample's augmentation draws from `(seed, epoch, position)`. Workers take
//! whole batches from a job channel and send them back over a channel; the
//! consumer puts them back in order. At most `queue_depth` batches are in
//! flight (decoding or waiting), so memory stays bounded whatever the speed
//! of the training loop. Starting an epoch at batch `k` gives exactly the
//! batches `k..` of the uninterrupted epoch, which is what resume needs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;
use crate::{DataError, Dataset, Transform};

/// What to do with a file that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadImages {
    /// Leave it out of its batch, and report it in [`Batch::skipped`].
    #[default]
    Skip,
    /// Stop with an error that names the file.
    Fail,
}

/// Loader settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Decoding threads.
    pub workers: usize,
    /// Batches in flight at most.
    pub queue_depth: usize,
    /// Shuffle every epoch (training) or keep the index order (evaluation).
    pub shuffle: bool,
    /// Drop a last, incomplete batch.
    pub drop_last: bool,
    /// Seed of the epoch order and the augmentations.
    pub seed: u64,
    /// Bad files: skip or fail.
    pub bad_images: BadImages,
    /// Images with more pixels than this are refused before decoding.
    pub max_pixels: u64,
    /// Load only this process's rows of every batch (multi-node runs); the
    /// augmentations stay those of the rows' places in the whole batch.
    #[serde(default)]
    pub shard: Option<Shard>,
}

/// A process's part of every batch: the rows of replicas
/// `first..first + count` of `of` replicas in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// The process's first replica.
    pub first: usize,
    /// Its replicas.
    pub count: usize,
    /// Replicas of all processes.
    pub of: usize,
}

impl Shard {
    /// The rows of a batch of `n` that belong to this process: the batch is
    /// cut into `ceil(n / replicas)` rows per replica (the engine's split),
    /// over at most `n` replicas.
    pub fn rows(&self, n: usize) -> std::ops::Range<usize> {
        let first = replica_rows(n, self.of, self.first);
        match self.count {
            0 => first.start..first.start,
            c => first.start..replica_rows(n, self.of, self.first + c - 1).end,
        }
    }
}

/// The one rule that cuts a batch of `n` rows over `replicas`: replica `i`
/// gets rows `i * per .. (i + 1) * per` (clipped to `n`), `per = ceil(n /
/// min(replicas, n))`; a batch smaller than the replica count uses the first
/// `n` replicas. The loader cuts a node's rows with it and the engine its
/// replicas' shards, so that a replica's rows are the same whether its
/// node's loader or the engine cut them.
pub fn replica_rows(n: usize, replicas: usize, i: usize) -> std::ops::Range<usize> {
    let active = replicas.min(n).max(1);
    let per = n.div_ceil(active);
    (i * per).min(n)..((i + 1) * per).min(n)
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 128,
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            queue_depth: 4,
            shuffle: true,
            drop_last: false,
            seed: 0,
            bad_images: BadImages::Skip,
            max_pixels: 100_000_000,
            shard: None,
        }
    }
}

/// A batch, ready to become tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Epoch it belongs to.
    pub epoch: u64,
    /// Its position in the epoch.
    pub index: usize,
    /// `[N, 3, crop, crop]` normalized pixels.
    pub images: Vec<f32>,
    /// `[N]` class indices.
    pub labels: Vec<i64>,
    /// `[N]` the rows' samples: indices into the data set.
    pub positions: Vec<usize>,
    /// Files left out, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl Batch {
    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether every sample was skipped.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

pub use crate::decode::decode_rgb;

/// Batches of a data set.
#[derive(Debug, Clone)]
pub struct Loader {
    dataset: Arc<Dataset>,
    transform: Arc<Transform>,
    config: LoaderConfig,
    pool: BufferPool,
}

/// Image buffers of batches already used, for the next batches: a batch of
/// 64 is 38.5 MB, and a fresh one costs page faults and zeroing on every
/// page (about a tenth of the loader's time in a profile).
#[derive(Clone, Default)]
struct BufferPool(Arc<Mutex<Vec<Vec<f32>>>>);

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let free = self.0.lock().map(|v| v.len()).unwrap_or(0);
        write!(f, "BufferPool({free} free)")
    }
}

impl BufferPool {
    /// A buffer to fill: its old contents stay (they are overwritten).
    fn take(&self) -> Vec<f32> {
        self.0
            .lock()
            .map(|mut v| v.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Keeps `buffer` unless `keep` buffers are kept already.
    fn give(&self, buffer: Vec<f32>, keep: usize) {
        if let Ok(mut free) = self.0.lock() {
            if free.len() < keep && buffer.capacity() > 0 {
                free.push(buffer);
            }
        }
    }
}

struct Job {
    epoch: u64,
    index: usize,
    /// Row in the whole batch of `positions[0]`.
    first_row: usize,
    positions: Vec<usize>,
}

impl Loader {
    /// A loader over `dataset` with `transform`.
    pub fn new(dataset: Dataset, transform: Transform, config: LoaderConfig) -> Loader {
        Loader {
            dataset: Arc::new(dataset),
            transform: Arc::new(transform),
            config,
            pool: BufferPool::default(),
        }
    }

    /// Hands a used batch back so that its image buffer serves a later batch
    /// (optional: batches not given back are freed as usual).
    pub fn recycle(&self, batch: Batch) {
        self.recycle_images(batch.images);
    }

    /// [`Loader::recycle`] with a batch's image buffer alone.
    pub fn recycle_images(&self, images: Vec<f32>) {
        let keep = self.config.workers.max(1) + self.config.queue_depth.max(1) + 2;
        self.pool.give(images, keep);
    }

    /// The data set.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The transform.
    pub fn transform(&self) -> &Transform {
        &self.transform
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch_size.max(1));
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The sample order of `epoch`: indices into the data set.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        if self.config.shuffle {
            SplitMix64::for_stream(&[self.config.seed, epoch, 0x0DE2])
                .permutation(self.dataset.len())
        } else {
            (0..self.dataset.len()).collect()
        }
    }

    /// The batches of `epoch` from batch `start` on, decoded in worker threads.
    pub fn epoch(&self, epoch: u64, start: usize) -> EpochIter {
        let order = self.order(epoch);
        let b = self.config.batch_size.max(1);
        let end = self.batches_per_epoch();
        let (job_tx, job_rx) = unbounded::<Job>();
        let (res_tx, res_rx) = unbounded();
        let workers = (0..self.config.workers.max(1))
            .map(|_| {
                let (jobs, results) = (job_rx.clone(), res_tx.clone());
                let (dataset, transform, config, pool) = (
                    self.dataset.clone(),
                    self.transform.clone(),
                    self.config.clone(),
                    self.pool.clone(),
                );
                std::thread::spawn(move || {
                    let describe = |job: &Job| describe_files(&dataset, &job.positions);
                    let prepare =
                        |job: Job| load_batch(&dataset, &transform, &config, job, pool.take());
                    work(&jobs, &results, prepare, describe);
                })
            })
            .collect();
        let mut it = EpochIter {
            jobs: Some(job_tx),
            results: res_rx,
            pending: BTreeMap::new(),
            next: start.min(end),
            dispatched: start.min(end),
            end,
            depth: self.config.queue_depth.max(1),
            order,
            batch_size: b,
            epoch,
            shard: self.config.shard,
            workers,
        };
        it.dispatch();
        it
    }
}

/// The results a worker sends: a batch's index and the batch or its error.
type Outcome = (usize, Result<Batch, DataError>);

/// A worker's loop: prepares the batch of every job it receives until the
/// jobs or the results close. A panic while preparing one (a bug, or a
/// decoder that panics on some file) becomes that batch's error, naming
/// its files: otherwise the batch would be lost and the epoch would wait
/// for it forever.
fn work(
    jobs: &Receiver<Job>,
    results: &Sender<Outcome>,
    prepare: impl Fn(Job) -> Result<Batch, DataError>,
    describe: impl Fn(&Job) -> String,
) {
    for job in jobs.iter() {
        let (index, epoch, files) = (job.index, job.epoch, describe(&job));
        let batch = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prepare(job)))
            .unwrap_or_else(|payload| {
                Err(DataError::Panicked {
                    epoch,
                    batch: index,
                    files,
                    message: panic_message(payload.as_ref()),
                })
            });
        if results.send((index, batch)).is_err() {
            break;
        }
    }
}

/// A panic's message, when it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// `first/file.jpg and N more` for a batch's samples.
fn describe_files(dataset: &Dataset, positions: &[usize]) -> String {
    match positions.first().and_then(|&i| dataset.samples.get(i)) {
        Some(first) if positions.len() > 1 => {
            format!("{} and {} more", first.path.display(), positions.len() - 1)
        }
        Some(first) => first.path.display().to_string(),
        None => "no files".into(),
    }
}

fn load_batch(
    dataset: &Dataset,
    transform: &Transform,
    config: &LoaderConfig,
    job: Job,
    mut images: Vec<f32>,
) -> Result<Batch, DataError> {
    let per = transform.sample_len();
    // A recycled buffer keeps its length: only a tail it never had is zeroed.
    let full = per * job.positions.len();
    if images.len() < full {
        images.resize(full, 0.0);
    }
    let mut filled = 0;
    let mut labels = Vec::with_capacity(job.positions.len());
    let mut positions = Vec::with_capacity(job.positions.len());
    let mut skipped = Vec::new();
    for (k, &sample_index) in job.positions.iter().enumerate() {
        let sample = &dataset.samples[sample_index];
        let position = (job.index * config.batch_size.max(1) + job.first_row + k) as u64;
        let mut rng = SplitMix64::for_stream(&[config.seed, job.epoch, position, 0xA06]);
        // The crop is drawn as soon as the size is known, so that only its
        // part of the image is decoded.
        let mut geometry = None;
        let decoded = dataset.decode_region(sample_index, config.max_pixels, |w, h| {
            let g = transform.geometry(w, h, &mut rng);
            let region = transform.source_region(w, h, &g);
            geometry = Some(g);
            region
        });
        match decoded {
            Ok(part) => {
                let (w, h) = part.full;
                let g = geometry.unwrap_or_else(|| transform.geometry(w, h, &mut rng));
                let out = &mut images[filled..filled + per];
                transform.render(&part.pixels, part.full, part.origin, &g, out);
                filled += per;
                labels.push(sample.label as i64);
                positions.push(sample_index);
            }
            Err(message) => {
                // A pack cut underneath is no bad image: it stops the run.
                if let Some(pack) = &dataset.pack {
                    pack.check_unchanged()?;
                }
                match config.bad_images {
                    BadImages::Skip => skipped.push((sample.path.clone(), message)),
                    BadImages::Fail => {
                        return Err(DataError::BadImage {
                            path: sample.path.clone(),
                            message,
                        })
                    }
                }
            }
        }
    }
    images.truncate(filled);
    Ok(Batch {
        epoch: job.epoch,
        index: job.index,
        images,
        labels,
        positions,
        skipped,
    })
}

/// The batches of one epoch, in order. Dropping it stops the workers.
pub struct EpochIter {
    jobs: Option<Sender<Job>>,
    results: Receiver<Outcome>,
    pending: BTreeMap<usize, Result<Batch, DataError>>,
    next: usize,
    dispatched: usize,
    end: usize,
    depth: usize,
    order: Vec<usize>,
    batch_size: usize,
    epoch: u64,
    shard: Option<Shard>,
    workers: Vec<JoinHandle<()>>,
}

impl EpochIter {
    fn dispatch(&mut self) {
        let Some(jobs) = &self.jobs else { return };
        while self.dispatched < self.end && self.dispatched < self.next + self.depth {
            let i = self.dispatched;
            let lo = i * self.batch_size;
            let hi = (lo + self.batch_size).min(self.order.len());
            let rows = match &self.shard {
                Some(shard) => shard.rows(hi - lo),
                None => 0..hi - lo,
            };
            let job = Job {
                epoch: self.epoch,
                index: i,
                first_row: rows.start,
                positions: self.order[lo + rows.start..lo + rows.end].to_vec(),
            };
            if jobs.send(job).is_err() {
                break;
            }
            self.dispatched += 1;
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        loop {
            if let Some(batch) = self.pending.remove(&self.next) {
                self.next += 1;
                self.dispatch();
                return Some(batch);
            }
            match self.results.recv() {
                Ok((i, batch)) => {
                    self.pending.insert(i, batch);
                }
                Err(_) => {
                    // Every worker is gone (a worker catches its panics, so
                    // this is not expected): an error, never an epoch that
                    // quietly ends early.
                    let batch = self.next;
                    self.next = self.end;
                    return Some(Err(DataError::Panicked {
                        epoch: self.epoch,
                        batch,
                        files: "unknown".into(),
                        message: "every loader worker stopped".into(),
                    }));
                }
            }
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.jobs = None;
        // Unblock any worker: drain what they send until all have stopped.
        let (_tx, rx) = unbounded();
        let results = std::mem::replace(&mut self.results, rx);
        drop(results);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{write_synthetic, SynthConfig};
    use crate::Augment;
    use std::path::Path;

    #[test]
    fn a_panic_while_preparing_a_batch_is_that_batchs_error_naming_its_files() {
        let (_d, ds) = setup();
        let (job_tx, job_rx) = unbounded();
        let (res_tx, res_rx) = unbounded();
        for index in 0..3 {
            let positions = vec![index * 2, index * 2 + 1];
            let job = Job {
                epoch: 4,
                index,
                first_row: 0,
                positions,
            };
            job_tx.send(job).unwrap();
        }
        drop(job_tx);
        let prepare = |job: Job| {
            if job.index == 1 {
                panic!("decoder bug on purpose");
            }
            Ok(Batch {
                epoch: job.epoch,
                index: job.index,
                images: Vec::new(),
                labels: Vec::new(),
                positions: Vec::new(),
                skipped: Vec::new(),
            })
        };
        // The worker survives the panic and goes on with the next job.
        work(&job_rx, &res_tx, prepare, |job| {
            describe_files(&ds, &job.positions)
        });
        drop(res_tx);
        let results: Vec<Outcome> = res_rx.iter().collect();
        assert_eq!(results.len(), 3);
        assert!(results[0].1.is_ok() && results[2].1.is_ok());
        let err = results[1].1.as_ref().unwrap_err().to_string();
        let first = ds.samples[2].path.display().to_string();
        assert!(
            err.contains("panicked preparing batch 1 of epoch 4")
                && err.contains(&format!("{first} and 1 more"))
                && err.contains("decoder bug on purpose"),
            "{err}"
        );
    }

    fn setup() -> (tempfile::TempDir, Dataset) {
        let d = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            classes: 2,
            train_per_class: 7,
            val_per_class: 1,
            width: 40,
            height: 30,
            ..Default::default()
        };
        write_synthetic(&d.path().join("s"), &cfg).unwrap();
        let ds = Dataset::image_folder(&d.path().join("s/train")).unwrap();
        (d, ds)
    }

    fn loader(ds: &Dataset, workers: usize, bad: BadImages) -> Loader {
        let t = Transform {
            augment: Augment::Zf,
            resize: 32,
            crop: 24,
            ..Transform::default()
        };
        Loader::new(
            ds.clone(),
            t,
            LoaderConfig {
                batch_size: 3,
                workers,
                queue_depth: 2,
                seed: 11,
                bad_images: bad,
                ..Default::default()
            },
        )
    }

    fn all(l: &Loader, epoch: u64, start: usize) -> Vec<Batch> {
        l.epoch(epoch, start).collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn replica_rows_cover_the_batch_in_order_and_shards_are_their_union() {
        for n in 0..20 {
            for replicas in 1..7 {
                let rows: Vec<_> = (0..replicas)
                    .map(|i| replica_rows(n, replicas, i))
                    .collect();
                assert_eq!(rows[0].start, 0);
                assert_eq!(rows[replicas - 1].end, n, "n {n}, {replicas} replicas");
                for pair in rows.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start, "n {n}, {replicas} replicas");
                }
                // Equal shares but the last non-empty one; no more replicas
                // used than rows.
                let used = rows.iter().filter(|r| !r.is_empty()).count();
                assert!(used <= n.max(1) && rows[0].len() == n.div_ceil(replicas.min(n).max(1)));
                for first in 0..replicas {
                    for count in 1..=replicas - first {
                        let shard = Shard {
                            first,
                            count,
                            of: replicas,
                        };
                        assert_eq!(
                            shard.rows(n),
                            rows[first].start..rows[first + count - 1].end
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn shards_of_every_batch_put_back_together_give_the_whole_batch() {
        let (_d, ds) = setup();
        let whole = all(&loader(&ds, 2, BadImages::Skip), 1, 0);
        // Replicas 0 | 1, 2 of three: the engine's split of each batch.
        let parts: Vec<Vec<Batch>> = [(0, 1), (1, 2)]
            .iter()
            .map(|&(first, count)| {
                let mut l = loader(&ds, 2, BadImages::Skip);
                l.config.shard = Some(Shard {
                    first,
                    count,
                    of: 3,
                });
                all(&l, 1, 0)
            })
            .collect();
        assert_eq!(whole.len(), parts[0].len());
        for (i, w) in whole.iter().enumerate() {
            let mut images = parts[0][i].images.clone();
            images.extend(&parts[1][i].images);
            let mut labels = parts[0][i].labels.clone();
            labels.extend(&parts[1][i].labels);
            assert_eq!((&images, &labels), (&w.images, &w.labels), "batch {i}");
        }
        // The last batch of 14 images is 2 images: replica 2 has none.
        let shard = Shard {
            first: 2,
            count: 1,
            of: 3,
        };
        assert_eq!(shard.rows(2), 2..2);
        assert_eq!(shard.rows(8), 6..8);
        assert_eq!(
            Shard {
                first: 0,
                count: 1,
                of: 3
            }
            .rows(8),
            0..3
        );
    }

    #[test]
    fn batches_depend_only_on_seed_and_epoch_not_on_workers() {
        let (_d, ds) = setup();
        let one = all(&loader(&ds, 1, BadImages::Skip), 2, 0);
        let three = all(&loader(&ds, 3, BadImages::Skip), 2, 0);
        assert_eq!(one, three);
        assert_eq!(
            one.iter().map(|b| b.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        let other_epoch = all(&loader(&ds, 2, BadImages::Skip), 3, 0);
        assert_ne!(one, other_epoch);
        let mut labels: Vec<i64> = one.iter().flat_map(|b| b.labels.clone()).collect();
        labels.sort();
        assert_eq!(
            labels,
            [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
            "every sample once"
        );
    }

    #[test]
    fn starting_mid_epoch_gives_the_rest_of_the_same_epoch() {
        let (_d, ds) = setup();
        let l = loader(&ds, 2, BadImages::Skip);
        assert_eq!(all(&l, 4, 2), all(&l, 4, 0)[2..].to_vec());
        assert!(all(&l, 4, 99).is_empty());
    }

    #[test]
    fn bad_files_are_skipped_and_named_or_fail_the_epoch() {
        let (_d, mut ds) = setup();
        let bad = ds.samples[3].path.clone();
        fs_truncate(&bad);
        let zero = ds.samples[5].path.clone();
        std::fs::write(&zero, b"").unwrap();
        ds.samples[6].path = ds.samples[6].path.with_extension("missing.jpg");
        let batches = all(&loader(&ds, 2, BadImages::Skip), 0, 0);
        let skipped: Vec<PathBuf> = batches
            .iter()
            .flat_map(|b| b.skipped.iter().map(|(p, _)| p.clone()))
            .collect();
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped.contains(&bad) && skipped.contains(&zero));
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 11);
        // Each row says which sample it is: every sample but the bad three,
        // once, with its own label.
        let mut kept: Vec<usize> = batches.iter().flat_map(|b| b.positions.clone()).collect();
        for b in &batches {
            for (&p, &label) in b.positions.iter().zip(&b.labels) {
                assert_eq!(ds.samples[p].label as i64, label);
            }
        }
        kept.sort();
        let expected: Vec<usize> = (0..ds.len()).filter(|i| ![3, 5, 6].contains(i)).collect();
        assert_eq!(kept, expected);
        let err = loader(&ds, 2, BadImages::Fail)
            .epoch(0, 0)
            .find_map(|b| b.err())
            .unwrap()
            .to_string();
        assert!(err.starts_with("bad image "), "{err}");
    }

    fn fs_truncate(p: &Path) {
        let bytes = std::fs::read(p).unwrap();
        std::fs::write(p, &bytes[..bytes.len() / 3]).unwrap();
    }

    #[test]
    fn huge_declared_sizes_are_refused_before_decoding() {
        let (_d, ds) = setup();
        let err = decode_rgb(&ds.samples[0].path, 100).unwrap_err();
        assert!(
            err.contains("40x30") && err.contains("limit of 100"),
            "{err}"
        );
    }

    #[test]
    fn dropping_an_epoch_early_stops_the_workers() {
        let (_d, ds) = setup();
        let l = loader(&ds, 2, BadImages::Skip);
        let mut it = l.epoch(0, 0);
        assert!(it.next().is_some());
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(it); // joins the workers
            let _ = done.send(());
        });
        assert!(
            wait.recv_timeout(std::time::Duration::from_secs(30))
                .is_ok(),
            "workers did not stop"
        );
    }
}
