//! The replicas and the data-parallel step.

use crate::error::{fail, ParallelError, Result, ResultExt};
use tch::{Device, Kind, Tensor};
use zftrain_data::loader::replica_rows;
use zftrain_model::network::to_channels_last;
use zftrain_model::{Arch, DropoutStream, Network};

use std::sync::{Arc, Mutex};

use super::reduce::GradReducer;
use super::rendezvous::Link;
use super::scaler::LossScaler;
use super::workers::Workers;
use crate::optimizer::{OptimConfig, Sgd};
use zftrain_model::Model;

/// One replica: its parameters on its device and its optimizer.
struct Replica {
    model: Model,
    sgd: Sgd,
    device: Device,
}

/// What a step computed.
#[derive(Debug)]
pub struct StepOutput {
    /// Mean loss over the global batch.
    pub loss: f64,
    /// `[B, classes]` logits of the whole batch (fp32, on the CPU).
    pub logits: Tensor,
    /// L2 norm of the all-reduced gradient (before weight decay), if asked.
    pub grad_norm: Option<f64>,
    /// The optimizer step was skipped (loss scaling met an overflow).
    pub skipped: bool,
    /// Images in the global batch (all nodes).
    pub images: f64,
    /// Some node asked to stop after this step.
    pub stop: bool,
}

/// One replica's part of a step: the replica, its first global row, and its
/// images and labels (none when the batch is too small to reach it).
type Work<'a> = (&'a mut Replica, i64, Option<(Tensor, Tensor)>);

/// Forward and backward of one replica on its shard (none: zero gradients
/// only); its mean loss and its logits (fp32, detached).
fn replica_forward_backward(
    (r, first_row, shard): Work<'_>,
    opts: &StepOptions,
    scaler: Option<&LossScaler>,
) -> Option<(f64, Tensor)> {
    r.sgd.zero_grad();
    let (x, y) = shard?;
    // To a GPU the copies are asynchronous: from page-locked memory (the
    // prefetcher's) the host goes on to launch the forward pass; from
    // pageable memory CUDA stages the bytes before returning, so it is safe
    // either way. (Asking `is_pinned(device)` instead warns once per call
    // in libtorch 2.11: the argument is deprecated.)
    let non_blocking = r.device.is_cuda();
    let x = x
        .to_device_(r.device, x.kind(), non_blocking, false)
        .to_kind(opts.kind);
    let x = if opts.channels_last {
        to_channels_last(&x)
    } else {
        x
    };
    let y = y.to_device_(r.device, y.kind(), non_blocking, false);
    let logits = match opts.dropout_seed {
        Some(seed) => r
            .model
            .net
            .forward_seeded(&x, &DropoutStream { seed, first_row }),
        None => r.model.net.forward(&x, true),
    }
    .to_kind(Kind::Float);
    let loss = logits.cross_entropy_loss::<Tensor>(
        &y,
        None,
        tch::Reduction::Mean,
        -100,
        opts.label_smoothing,
    );
    match scaler {
        Some(scaler) => scaler.scale_loss(&loss).backward(),
        None => loss.backward(),
    }
    Some((loss.double_value(&[]), logits.detach()))
}

/// The settings of one [`DataParallel::step`].
#[derive(Debug, Clone, Copy)]
pub struct StepOptions {
    /// Compute kind: fp32, or bf16/fp16 with fp32 master weights.
    pub kind: Kind,
    /// Cross-entropy label smoothing.
    pub label_smoothing: f64,
    /// Learning rate of this step.
    pub lr: f64,
    /// Compute the gradient's norm.
    pub want_grad_norm: bool,
    /// Seed of the step's dropout masks ([`DropoutStream`]: the same masks
    /// whatever the replica count); `None`: libtorch's generator.
    pub dropout_seed: Option<u64>,
    /// Global batch row of this process's first image (multi-node runs:
    /// where this node's rows start).
    pub first_row: i64,
    /// This process wants to stop after this step (every node is told).
    pub stop: bool,
    /// Channels-last batches on the devices (a batch that is channels-last
    /// already stays as it is).
    pub channels_last: bool,
}

impl Default for StepOptions {
    fn default() -> StepOptions {
        StepOptions {
            kind: Kind::Float,
            label_smoothing: 0.0,
            lr: 0.01,
            want_grad_norm: false,
            dropout_seed: None,
            first_row: 0,
            stop: false,
            channels_last: false,
        }
    }
}

/// Replicas of one network on several devices.
pub struct DataParallel {
    replicas: Vec<Replica>,
    /// Threads for two or more replicas.
    workers: Option<Workers>,
    reducer: Box<dyn GradReducer>,
    /// Dynamic loss scaling (fp16), if on.
    pub scaler: Option<LossScaler>,
    /// The other nodes of a multi-node run.
    link: Option<Arc<Mutex<Link>>>,
    /// Per parameter: whether it is updated (frozen ones and a zero
    /// learning-rate multiplier are not, and their gradients are not reduced).
    trainable: Vec<bool>,
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("devices", &self.devices())
            .field("reducer", &self.reducer.name())
            .finish()
    }
}

impl DataParallel {
    /// Replica 0 is initialized with `init` (from libtorch's current seed),
    /// every other replica receives a copy of its parameters.
    pub fn new(
        arch: Arch,
        init: impl Into<zftrain_model::InitConfig>,
        devices: &[Device],
        optim: OptimConfig,
        reducer: Box<dyn GradReducer>,
    ) -> Result<DataParallel> {
        if devices.is_empty() {
            fail!(Replica, "data parallelism needs at least one device");
        }
        let init = init.into();
        let mut replicas = Vec::new();
        for &device in devices {
            let model = Model::new(arch.clone(), init, device)?;
            let params: Vec<(String, Tensor)> = model
                .named_parameters()
                .into_iter()
                .map(|(n, t)| (n, t.set_requires_grad(true)))
                .collect();
            let sgd = Sgd::new(params, optim.clone());
            replicas.push(Replica { model, sgd, device });
        }
        let workers = if replicas.len() > 1 {
            Some(Workers::new(replicas.len()).context("starting the replica threads")?)
        } else {
            None
        };
        let trainable = vec![true; replicas[0].sgd.multipliers().len()];
        let dp = DataParallel {
            replicas,
            workers,
            reducer,
            scaler: None,
            link: None,
            trainable,
        };
        // Every gradient exists from the start (zeros), so that a replica or
        // a node without images in a step still takes part in the reduction.
        for r in &dp.replicas {
            let params = r.model.named_parameters();
            let zero = params
                .iter()
                .map(|(_, p)| p.sum(Kind::Float) * 0.0)
                .fold(Tensor::zeros([], (Kind::Float, r.device)), |a, b| a + b);
            zero.backward();
        }
        dp.broadcast_from_first();
        Ok(dp)
    }

    /// Joins the other nodes of a multi-node run: the step's loss, image
    /// count and stop request are summed over them (the gradients through
    /// the reducer, which must span them too).
    pub fn set_link(&mut self, link: Arc<Mutex<Link>>) {
        self.link = Some(link);
    }

    /// Fine-tuning: freezes the layers at `frozen` (indices into the table;
    /// see [`zftrain_model::Network::freeze`]) and multiplies the learning
    /// rate of the layers in `lr_mult`. Frozen layers and a multiplier of 0
    /// are never updated and their gradients are not reduced.
    pub fn set_layer_policy(&mut self, frozen: &[usize], lr_mult: &[(usize, f64)]) {
        let layers = self.replicas[0].model.net.arch().param_layers();
        let multipliers: Vec<f64> = layers
            .iter()
            .map(|layer| match frozen.contains(layer) {
                true => 0.0,
                false => lr_mult
                    .iter()
                    .find(|(l, _)| l == layer)
                    .map_or(1.0, |(_, m)| *m),
            })
            .collect();
        for r in &mut self.replicas {
            r.model.net.freeze(frozen);
            r.sgd.set_multipliers(&multipliers);
        }
        self.trainable = multipliers.iter().map(|&m| m != 0.0).collect();
    }

    /// Node 0's weights and momentum to every node (then to every replica).
    pub fn broadcast_across_nodes(&self) -> Result<()> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        let first = &self.replicas[0];
        let tensors: Vec<Tensor> = first
            .model
            .named_weights()
            .into_iter()
            .chain(first.sgd.state())
            .map(|(_, t)| t)
            .collect();
        let flat = tch::no_grad(|| {
            Tensor::cat(
                &tensors
                    .iter()
                    .map(|t| t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
                    .collect::<Vec<_>>(),
                0,
            )
        });
        let bytes: Vec<u8> = Vec::<f32>::try_from(&flat)?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let got = link
            .lock()
            .map_err(|_| ParallelError::Link("the node link is poisoned".into()))?
            .broadcast(&bytes)?;
        if got.len() != bytes.len() {
            fail!(
                Replica,
                "node 0 sent {} bytes of weights, this node has {}: different networks?",
                got.len(),
                bytes.len()
            );
        }
        let values: Vec<f32> = got
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let flat = Tensor::from_slice(&values);
        tch::no_grad(|| {
            let mut offset = 0;
            for t in &tensors {
                let n = t.numel() as i64;
                let mut t = t.shallow_clone();
                t.copy_(&flat.narrow(0, offset, n).view(t.size().as_slice()));
                offset += n;
            }
        });
        self.broadcast_from_first();
        Ok(())
    }

    /// The devices, in replica order.
    pub fn devices(&self) -> Vec<Device> {
        self.replicas.iter().map(|r| r.device).collect()
    }

    /// Replica 0's model (checkpoints are written from it).
    pub fn primary(&self) -> &Model {
        &self.replicas[0].model
    }

    /// Replica 0's optimizer.
    pub fn primary_sgd(&self) -> &Sgd {
        &self.replicas[0].sgd
    }

    /// Copies replica 0's parameters and momentum buffers to the others
    /// (after construction, and after a checkpoint is loaded into replica 0).
    pub fn broadcast_from_first(&self) {
        let (first, rest) = self.replicas.split_first().expect("at least one replica");
        let src = first.model.named_weights();
        let src_m = first.sgd.state();
        tch::no_grad(|| {
            for r in rest {
                for ((_, s), (_, mut d)) in src.iter().zip(r.model.named_weights()) {
                    d.copy_(s);
                }
                for ((_, s), (_, mut d)) in src_m.iter().zip(r.sgd.state()) {
                    d.copy_(s);
                }
            }
        });
    }

    /// Replica 0's batch-norm running statistics to the other replicas
    /// (each saw only its shard; as PyTorch's DDP broadcasts rank 0's
    /// buffers). Nothing to do for networks without batch norm.
    fn share_buffers(&self) {
        let (first, rest) = self.replicas.split_first().expect("at least one replica");
        if rest.is_empty() {
            return;
        }
        let src = first.model.net.buffers();
        if src.is_empty() {
            return;
        }
        tch::no_grad(|| {
            for r in rest {
                for (s, mut d) in src.iter().zip(r.model.net.buffers()) {
                    d.copy_(s);
                }
            }
        });
    }

    /// One training step on `[B, 3, H, W]` images and `[B]` labels (on the
    /// CPU): shards of `ceil(B / replicas)` images, forward and backward on
    /// each replica's own thread, gradients all-reduced, then the same SGD
    /// step on every replica.
    pub fn step(
        &mut self,
        images: &Tensor,
        labels: &Tensor,
        opts: &StepOptions,
    ) -> Result<StepOutput> {
        if images.size()[0] == 0 && self.link.is_none() {
            fail!(Replica, "an empty batch");
        }
        let (counts, loss_sum, logits) = self.forward_backward(images, labels, opts)?;
        // Loss, images and stop requests of all nodes.
        let mut scalars = [loss_sum, counts.iter().sum(), opts.stop as u8 as f64];
        if let Some(link) = &self.link {
            link.lock()
                .map_err(|_| ParallelError::Link("the node link is poisoned".into()))?
                .all_reduce_f64(&mut scalars)?;
        }
        let [loss_sum, total, stop] = scalars;
        if total == 0.0 {
            // Every node's images of this batch failed to decode: no step.
            return Ok(StepOutput {
                loss: 0.0,
                logits: self.empty_logits(),
                grad_norm: None,
                skipped: true,
                images: 0.0,
                stop: stop > 0.0,
            });
        }
        let skipped = !self.reduce_gradients(&counts, total)?;
        let grad_norm = opts
            .want_grad_norm
            .then(|| self.replicas[0].sgd.grad_norm());
        if !skipped {
            self.sgd_step(opts.lr)?;
        }
        self.share_buffers();
        let logits = if logits.is_empty() {
            self.empty_logits()
        } else {
            Tensor::cat(&logits, 0)
        };
        Ok(StepOutput {
            loss: loss_sum / total,
            logits,
            grad_norm,
            skipped,
            images: total,
            stop: stop > 0.0,
        })
    }

    /// Cuts the batch into shards and runs forward and backward on every
    /// replica (on their threads when there are several); each replica's
    /// image count, the sum of their losses times their counts, and the
    /// replicas' logits on the CPU.
    fn forward_backward(
        &mut self,
        images: &Tensor,
        labels: &Tensor,
        opts: &StepOptions,
    ) -> Result<(Vec<f64>, f64, Vec<Tensor>)> {
        let b = images.size()[0] as usize;
        let n = self.replicas.len();
        // Shards are cut here (a batch smaller than the replica count, the
        // last of an epoch, leaves the last replicas with zero gradients);
        // tensors may move to a thread, not be shared.
        let work: Vec<Work<'_>> = self
            .replicas
            .iter_mut()
            .enumerate()
            .map(|(i, r)| {
                let rows = replica_rows(b, n, i);
                let (start, len) = (rows.start as i64, rows.len() as i64);
                let shard =
                    (len > 0).then(|| (images.narrow(0, start, len), labels.narrow(0, start, len)));
                (r, opts.first_row + start, shard)
            })
            .collect();
        let scaler = self.scaler.clone();
        let run = |w: Work<'_>| replica_forward_backward(w, opts, scaler.as_ref());
        // One replica runs on the calling thread; several on their own
        // persistent threads.
        let results: Vec<Result<Option<(f64, Tensor)>, String>> = match &self.workers {
            Some(workers) => workers.run(work, &run),
            None => work.into_iter().map(|w| Ok(run(w))).collect(),
        };
        let (mut counts, mut loss_sum, mut logits) = (Vec::new(), 0.0, Vec::new());
        for (i, r) in results.into_iter().enumerate() {
            match r.map_err(|e| {
                ParallelError::Replica(format!("replica {i} failed in its step: {e}"))
            })? {
                Some((loss, l)) => {
                    let count = l.size()[0] as f64;
                    loss_sum += loss * count;
                    counts.push(count);
                    logits.push(l.to_device(Device::Cpu));
                }
                None => counts.push(0.0),
            }
        }
        Ok((counts, loss_sum, logits))
    }

    /// All-reduces the gradients, each replica's weighted by its share of
    /// the `total` images (so the result is the gradient of the global
    /// batch's mean loss), and unscales them under fp16 loss scaling;
    /// whether they are finite (an overflow skips the step).
    fn reduce_gradients(&mut self, counts: &[f64], total: f64) -> Result<bool> {
        let weights: Vec<f64> = counts.iter().map(|c| c / total).collect();
        let grads: Vec<Vec<Tensor>> = self
            .replicas
            .iter()
            .map(|r| {
                r.model
                    .named_parameters()
                    .into_iter()
                    .zip(&self.trainable)
                    .filter(|(_, &t)| t)
                    .map(|((_, p), _)| p.grad())
                    .collect()
            })
            .collect();
        if grads.len() > 1 || self.link.is_some() {
            self.reducer.all_reduce(&grads, &weights)?;
        }
        let Some(scaler) = self.scaler.as_mut() else {
            return Ok(true);
        };
        // Every replica holds the same gradients now.
        for g in &grads {
            scaler.unscale(g);
        }
        let finite = LossScaler::all_finite(&grads[0]);
        scaler.update(finite);
        Ok(finite)
    }

    /// The same SGD step on every replica, each on its own thread (see
    /// docs/distributed.md for why not one step and a broadcast).
    fn sgd_step(&mut self, lr: f64) -> Result<()> {
        let sgd_step = |r: &mut Replica| r.sgd.step(lr);
        match &self.workers {
            Some(workers) => {
                let replicas: Vec<&mut Replica> = self.replicas.iter_mut().collect();
                for (i, r) in workers.run(replicas, &sgd_step).into_iter().enumerate() {
                    r.map_err(|e| {
                        ParallelError::Replica(format!(
                            "replica {i} failed in its optimizer step: {e}"
                        ))
                    })?;
                }
            }
            None => self.replicas.iter_mut().for_each(sgd_step),
        }
        Ok(())
    }

    /// `[0, classes]` logits, for a step without images here.
    fn empty_logits(&self) -> Tensor {
        let classes = self.replicas[0]
            .model
            .named_parameters()
            .last()
            .map_or(0, |(_, b)| b.size()[0]);
        Tensor::zeros([0, classes], (Kind::Float, Device::Cpu))
    }

    /// ZF's filter RMS renormalization of every conv layer that is not
    /// frozen, on every replica; the filters it rescaled on replica 0 (the
    /// replicas hold the same weights), over all layers, as a 0-dim int64
    /// tensor not yet read from its device.
    pub fn renormalize(&self, radius: f64) -> Tensor {
        let mut clipped: Option<Tensor> = None;
        for (n, r) in self.replicas.iter().enumerate() {
            let net = &r.model.net;
            for i in net.arch().conv_indices() {
                if net.is_frozen(i) {
                    continue;
                }
                if let Some(w) = net.weight(i) {
                    let count = crate::renorm::renormalize_filters(w, radius);
                    if n == 0 {
                        clipped = Some(match clipped.take() {
                            Some(c) => c + count,
                            None => count,
                        });
                    }
                }
            }
        }
        clipped.unwrap_or_else(|| Tensor::zeros([], (Kind::Int64, Device::Cpu)))
    }

    /// Errors if any replica's parameters differ from replica 0's (a cheap
    /// checksum per replica: the sum of all parameters in f64).
    pub fn check_in_sync(&self) -> Result<()> {
        let sum = |m: &Model| -> f64 {
            tch::no_grad(|| {
                m.named_weights()
                    .iter()
                    .map(|(_, t)| t.sum(Kind::Double).double_value(&[]))
                    .sum()
            })
        };
        let reference = sum(&self.replicas[0].model);
        for (i, r) in self.replicas.iter().enumerate().skip(1) {
            let s = sum(&r.model);
            if s != reference {
                fail!(
                    Replica,
                    "replica {i} drifted from replica 0: parameter checksum {s} vs {reference}"
                );
            }
        }
        Ok(())
    }
}

impl DataParallel {
    /// Replica 0's network.
    pub fn net(&self) -> &Network {
        &self.replicas[0].model.net
    }

    /// Every replica's network with its device, replica 0 first (for work
    /// spread over the devices outside a step, such as the hooks' probe
    /// passes).
    pub fn nets(&self) -> Vec<(&Network, Device)> {
        self.replicas
            .iter()
            .map(|r| (&r.model.net, r.device))
            .collect()
    }
}

/// A reproducible `shape` tensor of f32 draws, uniform on `[-bound,
/// bound]`, from `seed` alone (whatever libtorch's generator holds): the
/// inputs and weights of the engine's checks.
pub fn seeded_uniform(shape: &[i64], seed: u64, bound: f64) -> Tensor {
    let mut rng = zftrain_data::rng::SplitMix64::new(seed);
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.uniform(-bound, bound) as f32).collect();
    Tensor::from_slice(&v).view(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CopyReducer;
    use zftrain_model::arch::ArchConfig;
    use zftrain_model::{ArchName, InitScheme};

    /// A tensor of `shape` with values drawn from `seed` (our own generator:
    /// tests run in parallel threads and libtorch's generator is global).
    fn run(
        replicas: usize,
        steps: usize,
        scaler: Option<LossScaler>,
        dropout: f64,
    ) -> (Vec<f64>, Vec<(String, Tensor)>) {
        let arch = Arch::builtin(
            ArchName::ZfnetSeed,
            &ArchConfig {
                classes: 4,
                dropout,
                ..ArchConfig::default()
            },
        )
        .unwrap();
        let optim = OptimConfig {
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 5e-4,
            ..OptimConfig::default()
        };
        let devices = vec![Device::Cpu; replicas];
        let mut dp = DataParallel::new(
            arch,
            InitScheme::Kaiming,
            &devices,
            optim,
            Box::new(CopyReducer),
        )
        .unwrap();
        // The same weights in every run, whatever other tests do meanwhile.
        tch::no_grad(|| {
            for (i, (_, mut w)) in dp.primary().named_weights().into_iter().enumerate() {
                let fan_in: i64 = w.size()[1..].iter().product::<i64>().max(1);
                w.copy_(&seeded_uniform(
                    &w.size(),
                    i as u64,
                    (3.0 / fan_in as f64).sqrt(),
                ));
            }
        });
        dp.broadcast_from_first();
        dp.scaler = scaler;
        let mut losses = Vec::new();
        for step in 0..steps as u64 {
            let x = seeded_uniform(&[8, 3, 224, 224], 1000 + step, 1.5);
            let y = Tensor::from_slice(&[0i64, 1, 2, 3, 3, 2, 1, 0]).roll([step as i64], [0]);
            let opts = StepOptions {
                lr: 1e-3,
                want_grad_norm: step == 0,
                dropout_seed: Some(77 + step),
                ..StepOptions::default()
            };
            let out = dp.step(&x, &y, &opts).unwrap();
            assert_eq!(out.grad_norm.is_some(), step == 0);
            assert_eq!(out.logits.size(), [8, 4]);
            losses.push(out.loss);
            dp.check_in_sync().unwrap();
        }
        let weights = dp.primary().named_weights();
        (losses, weights)
    }

    #[test]
    fn one_two_and_four_cpu_replicas_train_the_same_model_with_dropout_on() {
        // The weights' updates are compared, as L2 norms per tensor. How
        // far rounding moves them depends on the CPU's kernels (oneDNN picks
        // others for other shard sizes and instruction sets): up to 1.4% of
        // an update on an AVX2 machine after 3 steps, where single weights
        // differed by 5e-5 of the largest; a wrong reduction (a doubled or
        // a missing shard's gradient) changes an update by half or more.
        let (_, w0) = run(1, 0, None, 0.5);
        let (l1, w1) = run(1, 3, None, 0.5);
        for n in [2, 4] {
            let (ln, wn) = run(n, 3, None, 0.5);
            for (a, b) in l1.iter().zip(&ln) {
                assert!(
                    (a - b).abs() <= 1e-5 * a.abs(),
                    "{n} replicas: loss {b} vs {a}"
                );
            }
            for (((name, a), (_, b)), (_, w)) in w1.iter().zip(&wn).zip(&w0) {
                let (da, db) = (a - w, b - w);
                let scale = da.norm().double_value(&[]).max(1e-30);
                let err = (&da - &db).norm().double_value(&[]) / scale;
                assert!(
                    err < 0.1,
                    "{n} replicas: {name}'s update differs by {err} (relative)"
                );
            }
        }
    }

    #[test]
    fn loss_scaling_by_a_power_of_two_changes_nothing_and_an_overflow_skips_the_step() {
        let (plain, w_plain) = run(2, 2, None, 0.0);
        let scaler = LossScaler {
            scale: 1024.0,
            ..LossScaler::default()
        };
        let (scaled, w_scaled) = run(2, 2, Some(scaler), 0.0);
        assert_eq!(plain, scaled);
        for ((name, a), (_, b)) in w_plain.iter().zip(&w_scaled) {
            assert!(a.equal(b), "{name} differs with loss scaling");
        }
        // An infinite scale overflows: no step, weights as initialized, scale halved.
        let (_, w0) = run(1, 0, None, 0.0);
        let huge = LossScaler {
            scale: f64::MAX,
            ..LossScaler::default()
        };
        let (_, w_huge) = run(1, 1, Some(huge), 0.0);
        for ((name, a), (_, b)) in w0.iter().zip(&w_huge) {
            assert!(a.equal(b), "{name} changed although the step overflowed");
        }
    }

    #[test]
    fn nodes_without_images_take_part_and_a_batch_empty_everywhere_is_no_step() {
        use crate::rendezvous::{rendezvous, NodeInfo, RendezvousConfig};
        use crate::LinkReducer;
        let address = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let node = |rank: usize| {
            let address = address.clone();
            std::thread::spawn(move || {
                let rv = RendezvousConfig {
                    nodes: 2,
                    node_rank: rank,
                    address,
                    timeout: std::time::Duration::from_secs(20),
                    token: crate::auth::Token::new(b"replica test"),
                };
                let me = NodeInfo {
                    node_rank: rank,
                    nodes: 2,
                    replicas: 1,
                    gpu: false,
                    fingerprint: 1,
                };
                let link = Arc::new(Mutex::new(rendezvous(&rv, me, || unreachable!()).unwrap()));
                let arch = Arch::builtin(
                    ArchName::ZfnetSeed,
                    &ArchConfig {
                        classes: 3,
                        dropout: 0.0,
                        ..ArchConfig::default()
                    },
                )
                .unwrap();
                let reducer = Box::new(LinkReducer {
                    link: Arc::clone(&link),
                });
                let mut dp = DataParallel::new(
                    arch,
                    InitScheme::Kaiming,
                    &[Device::Cpu],
                    OptimConfig::default(),
                    reducer,
                )
                .unwrap();
                dp.set_link(link);
                dp.broadcast_across_nodes().unwrap();
                let opts = StepOptions::default();
                let none = (
                    Tensor::zeros([0, 3, 224, 224], (Kind::Float, Device::Cpu)),
                    Tensor::zeros([0], (Kind::Int64, Device::Cpu)),
                );
                let before = dp.primary().named_weights()[0].1.copy();
                let empty = dp.step(&none.0, &none.1, &opts).unwrap();
                assert!(empty.skipped && empty.images == 0.0);
                assert!(dp.primary().named_weights()[0].1.equal(&before), "no step");
                // Node 0 has two images, node 1 none: both step the same.
                let out = if rank == 0 {
                    let x = seeded_uniform(&[2, 3, 224, 224], 5, 1.0);
                    dp.step(&x, &Tensor::from_slice(&[0i64, 2]), &opts).unwrap()
                } else {
                    dp.step(&none.0, &none.1, &opts).unwrap()
                };
                assert_eq!(
                    (out.images, out.logits.size()[0]),
                    (2.0, if rank == 0 { 2 } else { 0 })
                );
                dp.primary().named_weights()[0].1.copy()
            })
        };
        let (a, b) = (node(0), node(1));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(a.equal(&b), "the nodes' weights agree");
    }

    #[test]
    fn a_drifted_replica_is_detected() {
        tch::manual_seed(1);
        let arch = Arch::builtin(
            ArchName::ZfnetSeed,
            &ArchConfig {
                classes: 2,
                ..ArchConfig::default()
            },
        )
        .unwrap();
        let devices = [Device::Cpu, Device::Cpu];
        let dp = DataParallel::new(
            arch,
            InitScheme::Kaiming,
            &devices,
            OptimConfig::default(),
            Box::new(CopyReducer),
        )
        .unwrap();
        dp.check_in_sync().unwrap();
        tch::no_grad(|| {
            let (_, w) = dp.replicas[1].model.named_weights().remove(0);
            let _ = w.get(0).get(0).get(0).get(0).fill_(123.0);
        });
        let err = dp.check_in_sync().unwrap_err().to_string();
        assert!(err.contains("replica 1 drifted"), "{err}");
    }

    #[test]
    fn replicas_share_the_first_replicas_batch_norm_statistics_after_a_step() {
        let text = "name = \"bn\"\ninput = [3, 8, 8]\n[[layers]]\nkind = \"conv\"\nout_channels = 4\nkernel = 3\n[[layers]]\nkind = \"batch_norm\"\n[[layers]]\nkind = \"relu\"\n[[layers]]\nkind = \"flatten\"\n[[layers]]\nkind = \"linear\"\nout_features = 2\n";
        let arch = zftrain_model::arch_file::parse_arch(text, "bn.toml").unwrap();
        let mut dp = DataParallel::new(
            arch,
            InitScheme::Kaiming,
            &[Device::Cpu, Device::Cpu],
            OptimConfig::default(),
            Box::new(CopyReducer),
        )
        .unwrap();
        // Different images in each replica's shard: different batch statistics.
        let x = seeded_uniform(&[4, 3, 8, 8], 5, 1.0)
            + Tensor::from_slice(&[0.0f32, 0.0, 3.0, 3.0]).view([4, 1, 1, 1]);
        let y = Tensor::from_slice(&[0i64, 1, 0, 1]);
        dp.step(&x, &y, &StepOptions::default()).unwrap();
        let first = dp.replicas[0].model.net.buffers();
        let second = dp.replicas[1].model.net.buffers();
        assert_eq!(first.len(), 3);
        assert!(
            first[0].abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "statistics moved"
        );
        for (a, b) in first.iter().zip(&second) {
            assert!(a.equal(b), "{a} vs {b}");
        }
        dp.check_in_sync().unwrap();
    }
}
