//! The streaming top-k miner (ZF Fig. 2): for every chosen feature map of
//! every chosen conv layer, the k strongest activations over a probe set,
//! at most `per_image` of them from one image (1, as in the paper).
//!
//! The probe set streams through once, batch by batch, without gradients.
//! Each batch's candidates (its per-image maxima) are merged with the current
//! top-k by a stable sort, so ties go to the earlier image whatever the batch
//! size. A candidate that enters the top-k is projected at once, with the
//! switches of the very forward that found it ([`crate::project`]), and its
//! projection and its image patch are kept cropped to the unit's receptive
//! field: nothing is recomputed afterwards, and memory is
//! `maps x k x 3 x field^2` per layer.

use tch::{Device, Kind, Tensor};
use zftrain_model::network::to_channels_last;
use zftrain_model::receptive::receptive_fields;
use zftrain_model::{Network, ReceptiveField};

use crate::project::Target;
use crate::winners::{crop_targets, Crops};
use crate::DeconvError;

/// Miner settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerConfig {
    /// Activations kept per feature map (9 in the paper).
    pub k: usize,
    /// At most this many of them from one image (1 in the paper).
    pub per_image: usize,
    /// Projections computed together at most.
    pub max_batch: usize,
    /// Project the winners and crop their patches (off: values and
    /// locations only, for statistics).
    pub project: bool,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            k: 9,
            per_image: 1,
            max_batch: 32,
            project: true,
        }
    }
}

/// Which feature maps of which conv layer to mine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerChoice {
    /// Conv layer, 0-based in conv order.
    pub conv: usize,
    /// Feature maps, in display order.
    pub channels: Vec<i64>,
}

/// The top-k of one layer so far.
#[derive(Debug)]
pub struct LayerTop {
    /// Conv layer, 0-based in conv order.
    pub conv: usize,
    /// The mined feature maps (`M` of them).
    pub channels: Vec<i64>,
    /// Receptive field of the layer's units.
    pub field: ReceptiveField,
    /// `[M, k]` activations, strongest first; `-inf` where nothing was found yet.
    pub values: Tensor,
    /// `[M, k]` probe-set image indices (`-1` where empty).
    pub images: Tensor,
    /// `[M, k]` rows of the units.
    pub ys: Tensor,
    /// `[M, k]` columns of the units.
    pub xs: Tensor,
    /// `[M, k, C_in, R, R]` projections cropped to the receptive field
    /// (`R = field.size`), zero outside the image.
    pub projections: Tensor,
    /// `[M, k, C_in, R, R]` input patches (normalized as the network saw
    /// them), NaN outside the image.
    pub patches: Tensor,
}

/// A batch's chosen maps, one slot per mined layer ([`Miner::take`]).
#[derive(Debug)]
pub struct Taken(Vec<Option<Tensor>>);

/// Streams a probe set and keeps the top-k of every chosen feature map.
#[derive(Debug)]
pub struct Miner {
    config: MinerConfig,
    layers: Vec<LayerTop>,
    seen: i64,
    /// The highest probe index fed so far.
    last: Option<i64>,
}

impl Miner {
    /// A miner for `choices` of `net`'s conv layers, its tensors on `device`.
    pub fn new(
        net: &Network,
        choices: &[LayerChoice],
        config: MinerConfig,
        device: Device,
    ) -> Result<Miner, DeconvError> {
        if config.k == 0 || config.per_image == 0 {
            return Err(DeconvError::Config(format!(
                "k ({}) and per_image ({}) must be at least 1",
                config.k, config.per_image
            )));
        }
        let arch = net.arch();
        let convs = arch.conv_indices();
        let fields = receptive_fields(arch);
        let shapes = zftrain_model::shape::infer_shapes(arch)
            .map_err(|e| DeconvError::Config(e.to_string()))?;
        let mut layers = Vec::new();
        for choice in choices {
            let &index = convs.get(choice.conv).ok_or_else(|| {
                DeconvError::Config(format!(
                    "conv{} does not exist ({} has {} conv layers)",
                    choice.conv + 1,
                    arch.name,
                    convs.len()
                ))
            })?;
            let tap = arch.tap_index(index);
            let maps = shapes[tap].output[0];
            if let Some(c) = choice.channels.iter().find(|&&c| !(0..maps).contains(&c)) {
                return Err(DeconvError::Config(format!(
                    "conv{} has feature maps 0..{maps}, not {c}",
                    choice.conv + 1
                )));
            }
            let field = fields[tap].expect("conv layers are spatial");
            let (m, k) = (choice.channels.len() as i64, config.k as i64);
            let r = if config.project { field.size } else { 0 };
            let c_in = arch.input[0];
            layers.push(LayerTop {
                conv: choice.conv,
                channels: choice.channels.clone(),
                field,
                values: Tensor::full([m, k], f64::NEG_INFINITY, (Kind::Float, device)),
                images: Tensor::full([m, k], -1, (Kind::Int64, device)),
                ys: Tensor::zeros([m, k], (Kind::Int64, device)),
                xs: Tensor::zeros([m, k], (Kind::Int64, device)),
                projections: Tensor::zeros([m, k, c_in, r, r], (Kind::Float, device)),
                patches: Tensor::full([m, k, c_in, r, r], f64::NAN, (Kind::Float, device)),
            });
        }
        Ok(Miner {
            config,
            layers,
            seen: 0,
            last: None,
        })
    }

    /// The top-k so far, one entry per chosen layer.
    pub fn layers(&self) -> &[LayerTop] {
        &self.layers
    }

    /// The settings.
    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    /// Feeds the next `[N, C, H, W]` batch of the probe set (images numbered
    /// on from the previous batches). Runs the forward itself, in evaluation
    /// mode and without gradients, up to the highest chosen layer.
    pub fn update(&mut self, net: &Network, input: &Tensor) -> Result<(), DeconvError> {
        let n = input.size()[0];
        let indices: Vec<i64> = (self.seen..self.seen + n).collect();
        self.update_indexed(net, input, &indices)
    }

    /// Feeds a `[N, C, H, W]` batch whose rows are the probe-set images
    /// `indices`: ascending, and after every image fed before (ties go to
    /// the lower index, as [`Miner::update`] gives them to the earlier
    /// image). A shard of a probe set mined this way merges exactly with the
    /// other shards ([`LayerTop::merge`]).
    pub fn update_indexed(
        &mut self,
        net: &Network,
        input: &Tensor,
        indices: &[i64],
    ) -> Result<(), DeconvError> {
        let n = input.size()[0];
        self.check_indices(n, indices)?;
        if n == 0 {
            return Ok(());
        }
        tch::no_grad(|| self.update_inner(net, input, indices))?;
        self.seen += n;
        self.last = indices.last().copied();
        Ok(())
    }

    /// The deepest layer (an index into the architecture's layers) whose
    /// output the miner takes maps of: a forward for it goes that far.
    pub fn last_layer(&self, net: &Network) -> usize {
        let arch = net.arch();
        let convs = arch.conv_indices();
        self.layers
            .iter()
            .map(|l| arch.tap_index(convs[l.conv]))
            .max()
            .unwrap_or(0)
    }

    /// Empty slots for a batch's chosen maps ([`Miner::take`]).
    pub fn taker(&self) -> Taken {
        Taken(self.layers.iter().map(|_| None).collect())
    }

    /// Takes the chosen maps of conv layer `conv` (0-based in conv order)
    /// out of its rectified output `t` (`[N, C, H, W]`) of the batch being
    /// fed, so that a caller running one forward for several consumers (the
    /// hooks' shared probe pass) can hand each conv output to this miner and
    /// drop it at once.
    pub fn take(&self, taken: &mut Taken, conv: usize, t: &Tensor) {
        for (li, layer) in self.layers.iter().enumerate() {
            if layer.conv == conv {
                let channels = Tensor::from_slice(&layer.channels).to_device(t.device());
                taken.0[li] = Some(t.index_select(1, &channels).to_kind(Kind::Float));
            }
        }
    }

    /// Merges a batch's maps, all taken with [`Miner::take`], into the
    /// top-k lists; its rows are the probe images `indices` (as for
    /// [`Miner::update_indexed`]). Only for a miner that does not project
    /// (`config.project = false`): a projection needs the forward's switches.
    pub fn update_taken(&mut self, taken: Taken, indices: &[i64]) -> Result<(), DeconvError> {
        if self.config.project {
            return Err(DeconvError::Config(
                "a miner that projects runs its own forward (update_indexed)".into(),
            ));
        }
        let n = indices.len() as i64;
        if let Some(t) = taken.0.iter().flatten().find(|t| t.size()[0] != n) {
            return Err(DeconvError::Config(format!(
                "a batch of {} images came with {n} probe indices",
                t.size()[0]
            )));
        }
        self.check_indices(n, indices)?;
        if n == 0 {
            return Ok(());
        }
        tch::no_grad(|| self.merge(taken, indices))?;
        self.seen += n;
        self.last = indices.last().copied();
        Ok(())
    }

    /// Probe indices of a batch of `n` images: one each, ascending, after
    /// every image fed before.
    fn check_indices(&self, n: i64, indices: &[i64]) -> Result<(), DeconvError> {
        if indices.len() as i64 != n {
            return Err(DeconvError::Config(format!(
                "a batch of {n} images came with {} probe indices",
                indices.len()
            )));
        }
        let after_last = match (indices.first(), self.last) {
            (Some(&first), Some(last)) => first > last,
            _ => true,
        };
        if indices.windows(2).any(|w| w[0] >= w[1]) || !after_last {
            return Err(DeconvError::Config(format!(
                "probe indices must ascend from batch to batch (after {:?}: {:?}..)",
                self.last,
                indices.first()
            )));
        }
        Ok(())
    }

    /// The top-k lists, for merging with other shards' or keeping.
    pub fn into_layers(self) -> Vec<LayerTop> {
        self.layers
    }

    fn update_inner(
        &mut self,
        net: &Network,
        input: &Tensor,
        indices: &[i64],
    ) -> Result<(), DeconvError> {
        let top = self.last_layer(net);
        // The switches only for projecting; without them, a pool is
        // cheaper, convolutions run channels-last (faster on the CPU), and
        // each layer's output is dropped as soon as its maps are taken.
        let mut taken = self.taker();
        let taps = if self.config.project {
            let taps = net.forward_taps_to(input, false, top + 1);
            for (conv, t) in taps.convs.iter().enumerate() {
                self.take(&mut taken, conv, t);
            }
            Some(taps)
        } else {
            net.for_each_conv_to(&to_channels_last(input), top + 1, |conv, t| {
                self.take(&mut taken, conv, t)
            });
            None
        };
        let (targets, slots) = self.merge(taken, indices)?;
        match &taps {
            Some(taps) if !targets.is_empty() => self.crop_new(net, taps, input, &targets, &slots),
            _ => Ok(()),
        }
    }

    /// Merges a batch's taken maps (rows: probe images `indices`) into the
    /// lists; when projecting, the entries new in the lists, as projection
    /// targets (rows of the batch) with their (layer, map, slot).
    #[allow(clippy::type_complexity)]
    fn merge(
        &mut self,
        mut taken: Taken,
        indices: &[i64],
    ) -> Result<(Vec<Target>, Vec<(usize, i64, i64)>), DeconvError> {
        let n = indices.len() as i64;
        let (k, p) = (self.config.k as i64, self.config.per_image as i64);
        let mut targets = Vec::new();
        let mut slots = Vec::new(); // (layer, map, slot) of each target
        for (li, layer) in self.layers.iter_mut().enumerate() {
            let device = layer.values.device();
            let act = taken.0[li].take().ok_or_else(|| {
                DeconvError::Config(format!("conv{} was not reached", layer.conv + 1))
            })?;
            let s = act.size();
            let (m, w) = (s[1], s[3]);
            let per = p.min(s[2] * w);
            let (cand_v, cand_pos) = image_candidates(&act.reshape([n, m, -1]), per);
            // [M, N * per], image-major so that ties keep image order.
            let cand_v = cand_v.permute([1, 0, 2]).reshape([m, -1]);
            let cand_pos = cand_pos.permute([1, 0, 2]).reshape([m, -1]);
            let cand_img = Tensor::from_slice(indices)
                .to_device(device)
                .repeat_interleave_self_int(per, None, None)
                .unsqueeze(0)
                .expand([m, n * per], true);
            let all_v = Tensor::cat(&[&layer.values, &cand_v], 1);
            let (_, order) = all_v.sort_stable(true, 1, true);
            let keep = order.narrow(1, 0, k);
            let pick =
                |old: &Tensor, new: &Tensor| Tensor::cat(&[old, new], 1).gather(1, &keep, false);
            layer.values = all_v.gather(1, &keep, false);
            layer.images = pick(&layer.images, &cand_img);
            layer.ys = pick(&layer.ys, &cand_pos.divide_scalar_mode(w, "floor"));
            layer.xs = pick(&layer.xs, &cand_pos.remainder(w));
            if !self.config.project {
                continue;
            }
            // Carry the kept old entries' crops to their new slots.
            let rows = Tensor::arange(m, (Kind::Int64, device))
                .unsqueeze(1)
                .expand([m, k], true);
            let old = keep.clamp_max(k - 1);
            layer.projections = layer.projections.index(&[Some(&rows), Some(&old)]);
            layer.patches = layer.patches.index(&[Some(&rows), Some(&old)]);
            // Entries from this batch, in (map, slot) order.
            let keep_v = Vec::<i64>::try_from(keep.flatten(0, -1).to_device(Device::Cpu))
                .map_err(DeconvError::Torch)?;
            let img = Vec::<i64>::try_from(layer.images.flatten(0, -1).to_device(Device::Cpu))?;
            let ys = Vec::<i64>::try_from(layer.ys.flatten(0, -1).to_device(Device::Cpu))?;
            let xs = Vec::<i64>::try_from(layer.xs.flatten(0, -1).to_device(Device::Cpu))?;
            for (i, &from) in keep_v.iter().enumerate() {
                if from >= k {
                    let (map, slot) = (i as i64 / k, i as i64 % k);
                    let row = indices.binary_search(&img[i]).map_err(|_| {
                        DeconvError::Config(format!("image {} is not in the batch", img[i]))
                    })?;
                    targets.push(Target {
                        image: row as i64,
                        conv: layer.conv,
                        channel: layer.channels[map as usize],
                        y: ys[i],
                        x: xs[i],
                    });
                    slots.push((li, map, slot));
                }
            }
        }
        Ok((targets, slots))
    }

    /// Projections and patches of this batch's new entries (`targets`, at
    /// `slots` = (layer, map, slot)), put in their slots.
    fn crop_new(
        &mut self,
        net: &Network,
        taps: &zftrain_model::Taps,
        input: &Tensor,
        targets: &[Target],
        slots: &[(usize, i64, i64)],
    ) -> Result<(), DeconvError> {
        for (li, layer) in self.layers.iter_mut().enumerate() {
            let mine: Vec<usize> = (0..targets.len()).filter(|&i| slots[i].0 == li).collect();
            if mine.is_empty() {
                continue;
            }
            let group: Vec<Target> = mine.iter().map(|&i| targets[i]).collect();
            let (projections, patches) = crop_targets(
                net,
                taps,
                input,
                layer.field.size,
                &group,
                self.config.max_batch,
            )?;
            layer.put_crops(&Crops {
                layer: li,
                maps: mine.iter().map(|&i| slots[i].1).collect(),
                slots: mine.iter().map(|&i| slots[i].2).collect(),
                projections,
                patches,
            });
        }
        Ok(())
    }
}

/// Each image's `per` strongest units of each map of `act` (`[N, M, H*W]`):
/// values and flat positions, `[N, M, per]`, strongest first, ties to the
/// lower position. One is the first maximum (a reduction, much cheaper
/// than the stable sort that more need).
fn image_candidates(act: &Tensor, per: i64) -> (Tensor, Tensor) {
    if per == 1 {
        // argmax gives the first of equal maxima.
        let pos = act.argmax(2, true);
        (act.gather(2, &pos, false), pos)
    } else {
        let (v, pos) = act.sort_stable(true, 2, true);
        (v.narrow(2, 0, per), pos.narrow(2, 0, per))
    }
}
