//! Mining in two passes, for probe sets too large to project as they
//! stream: the first pass keeps values and places only (a [`Miner`] with
//! `project = false`, one per device, each on its own shard), the shards'
//! lists are merged exactly ([`LayerTop::merge`]), and a second pass over
//! the winners' images alone forwards them again and crops their
//! projections and patches ([`crop_winners`]), batch by batch, on any
//! device. Memory is the top-k lists plus one batch, whatever the size of
//! the probe set; the result equals the one-pass [`Miner`] with
//! `project = true` on the same images.
//!
//! [`Miner`]: crate::Miner

use tch::{Device, Kind, Tensor};
use zftrain_model::{Network, Taps};

use crate::mine::LayerTop;
use crate::patch::crop_boxes;
use crate::project::{project_fields, Target};
use crate::DeconvError;

/// Projections and input patches of `targets` (all on one conv layer whose
/// units see `size x size` pixels), whose `image` indexes the rows of
/// `input` (`[N, C, H, W]`, the batch `taps` came from): `[T, C, R, R]`
/// each, on `input`'s device, in target order.
pub(crate) fn crop_targets(
    net: &Network,
    taps: &Taps,
    input: &Tensor,
    size: i64,
    targets: &[Target],
    max_batch: usize,
) -> Result<(Tensor, Tensor), DeconvError> {
    let fields = project_fields(net, taps, targets, max_batch)?;
    let proj = fields.pixels;
    if proj.size()[2] != size {
        return Err(DeconvError::Config(format!(
            "conv{}: the projection window is {} pixels, the receptive field {size}",
            targets[0].conv + 1,
            proj.size()[2]
        )));
    }
    let boxes: Vec<(i64, i64, i64)> = targets
        .iter()
        .zip(&fields.origins)
        .map(|(t, &(top, left))| (t.image, top, left))
        .collect();
    let patch = crop_boxes(&input.to_kind(Kind::Float), size, &boxes, f64::NAN);
    Ok((proj, patch))
}

/// One entry of a top-k list that holds an image: slot `slot` of map `map`
/// (its row in the list), found at `(y, x)` of probe image `image`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Winner {
    /// Row of the feature map in the list.
    pub map: i64,
    /// Rank among the map's top k.
    pub slot: i64,
    /// Probe-set index of the image.
    pub image: i64,
    /// Row of the unit.
    pub y: i64,
    /// Column of the unit.
    pub x: i64,
}

/// The winners of one layer's list, as plain values that any thread can
/// read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerWinners {
    /// Conv layer, 0-based in conv order.
    pub conv: usize,
    /// Side of the units' receptive field.
    pub field_size: i64,
    /// The list's feature maps.
    pub channels: Vec<i64>,
    /// Entries that hold an image.
    pub winners: Vec<Winner>,
}

/// Projections and patches of some winners of one layer's list.
#[derive(Debug)]
pub struct Crops {
    /// Position of the layer in the lists.
    pub layer: usize,
    /// `[T]` rows of the maps.
    pub maps: Vec<i64>,
    /// `[T]` slots.
    pub slots: Vec<i64>,
    /// `[T, C, R, R]` projections, on the CPU.
    pub projections: Tensor,
    /// `[T, C, R, R]` patches (NaN outside the image), on the CPU.
    pub patches: Tensor,
}

/// Projections and patches of the winners whose images are in a batch: the
/// rows of `input` (`[N, C, H, W]`, normalized) are the probe images
/// `indices` (ascending). One forward without gradients, then the
/// Deconvnet in groups of at most `max_batch` windows.
pub fn crop_winners(
    net: &Network,
    lists: &[LayerWinners],
    indices: &[i64],
    input: &Tensor,
    max_batch: usize,
) -> Result<Vec<Crops>, DeconvError> {
    tch::no_grad(|| {
        let arch = net.arch();
        let convs = arch.conv_indices();
        let mut wanted = Vec::new(); // (list, winners here, targets)
        for (li, list) in lists.iter().enumerate() {
            let mut here = Vec::new();
            let mut targets = Vec::new();
            for w in &list.winners {
                if let Ok(row) = indices.binary_search(&w.image) {
                    here.push(*w);
                    targets.push(Target {
                        image: row as i64,
                        conv: list.conv,
                        channel: list.channels[w.map as usize],
                        y: w.y,
                        x: w.x,
                    });
                }
            }
            if !targets.is_empty() {
                wanted.push((li, here, targets));
            }
        }
        let Some(top) = wanted
            .iter()
            .map(|(li, _, _)| arch.tap_index(convs[lists[*li].conv]))
            .max()
        else {
            return Ok(Vec::new());
        };
        let taps = net.forward_taps_to(input, false, top + 1);
        let mut out = Vec::new();
        for (li, here, targets) in wanted {
            let size = lists[li].field_size;
            let (proj, patch) = crop_targets(net, &taps, input, size, &targets, max_batch)?;
            out.push(Crops {
                layer: li,
                maps: here.iter().map(|w| w.map).collect(),
                slots: here.iter().map(|w| w.slot).collect(),
                projections: proj.to_kind(Kind::Float).to_device(Device::Cpu),
                patches: patch.to_device(Device::Cpu),
            });
        }
        Ok(out)
    })
}

impl LayerTop {
    /// The lists of several shards of one probe set merged into the list of
    /// the whole set, on the CPU: entries ordered by value (strongest
    /// first), then probe index, then row and column, which is the order
    /// one miner fed the whole set in index order keeps; the first `k` stay.
    /// Crops (if the shards have them) move with their entries.
    pub fn merge(parts: Vec<LayerTop>) -> Result<LayerTop, DeconvError> {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Err(DeconvError::Config("no lists to merge".into()));
        };
        let first = first.to_cpu();
        let rest: Vec<LayerTop> = parts.map(|p| p.to_cpu()).collect();
        if rest.is_empty() {
            return Ok(first);
        }
        let k = first.values.size()[1];
        for p in &rest {
            if p.conv != first.conv || p.channels != first.channels || p.values.size()[1] != k {
                return Err(DeconvError::Config(format!(
                    "cannot merge the list of conv{} ({} maps, k = {k}) with conv{}'s ({} maps, k = {})",
                    first.conv + 1,
                    first.channels.len(),
                    p.conv + 1,
                    p.channels.len(),
                    p.values.size()[1]
                )));
            }
        }
        let all: Vec<&LayerTop> = std::iter::once(&first).chain(&rest).collect();
        let cat = |f: fn(&LayerTop) -> &Tensor| {
            Tensor::cat(&all.iter().map(|t| f(t)).collect::<Vec<_>>(), 1)
        };
        let (values, images, ys, xs) = (
            cat(|t| &t.values),
            cat(|t| &t.images),
            cat(|t| &t.ys),
            cat(|t| &t.xs),
        );
        // Stable sorts from the least significant key to the most.
        let mut order = Tensor::arange(values.size()[1], (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .expand_as(&values)
            .contiguous();
        for (key, descending) in [
            (&xs, false),
            (&ys, false),
            (&images, false),
            (&values, true),
        ] {
            let (_, by) = key
                .gather(1, &order, false)
                .sort_stable(true, 1, descending);
            order = order.gather(1, &by, false);
        }
        let keep = order.narrow(1, 0, k);
        let pick = |t: &Tensor| t.gather(1, &keep, false);
        let crops = first.projections.numel() > 0;
        let (projections, patches) = if crops {
            let m = values.size()[0];
            let rows = Tensor::arange(m, (Kind::Int64, Device::Cpu))
                .unsqueeze(1)
                .expand([m, k], true);
            let at = |t: Tensor| t.index(&[Some(&rows), Some(&keep)]);
            (at(cat(|t| &t.projections)), at(cat(|t| &t.patches)))
        } else {
            (
                first.projections.shallow_clone(),
                first.patches.shallow_clone(),
            )
        };
        Ok(LayerTop {
            conv: first.conv,
            channels: first.channels.clone(),
            field: first.field,
            values: pick(&values),
            images: pick(&images),
            ys: pick(&ys),
            xs: pick(&xs),
            projections,
            patches,
        })
    }

    /// The list on the CPU.
    pub fn to_cpu(&self) -> LayerTop {
        let cpu = |t: &Tensor| t.to_device(Device::Cpu);
        LayerTop {
            conv: self.conv,
            channels: self.channels.clone(),
            field: self.field,
            values: cpu(&self.values),
            images: cpu(&self.images),
            ys: cpu(&self.ys),
            xs: cpu(&self.xs),
            projections: cpu(&self.projections),
            patches: cpu(&self.patches),
        }
    }

    /// The entries that hold an image, as plain values.
    pub fn winners(&self) -> Result<LayerWinners, DeconvError> {
        let k = self.values.size()[1];
        let flat = |t: &Tensor| Vec::<i64>::try_from(t.flatten(0, -1).to_device(Device::Cpu));
        let (images, ys, xs) = (flat(&self.images)?, flat(&self.ys)?, flat(&self.xs)?);
        let winners = (0..images.len())
            .filter(|&i| images[i] >= 0)
            .map(|i| Winner {
                map: i as i64 / k,
                slot: i as i64 % k,
                image: images[i],
                y: ys[i],
                x: xs[i],
            })
            .collect();
        Ok(LayerWinners {
            conv: self.conv,
            field_size: self.field.size,
            channels: self.channels.clone(),
            winners,
        })
    }

    /// Empty crops of the list's shape (`[M, k, channels, R, R]`: zero
    /// projections, NaN patches) on the CPU, to be filled by
    /// [`LayerTop::put_crops`].
    pub fn clear_crops(&mut self, channels: i64) {
        let s = self.values.size();
        let r = self.field.size;
        let shape = [s[0], s[1], channels, r, r];
        self.projections = Tensor::zeros(shape, (Kind::Float, Device::Cpu));
        self.patches = Tensor::full(shape, f64::NAN, (Kind::Float, Device::Cpu));
    }

    /// Puts `crops` (of this list) in their slots.
    pub fn put_crops(&mut self, crops: &Crops) {
        let device = self.projections.device();
        let maps = Tensor::from_slice(&crops.maps).to_device(device);
        let slots = Tensor::from_slice(&crops.slots).to_device(device);
        let _ = self.projections.index_put_(
            &[Some(&maps), Some(&slots)],
            &crops.projections.to_device(device),
            false,
        );
        let _ = self.patches.index_put_(
            &[Some(&maps), Some(&slots)],
            &crops.patches.to_device(device),
            false,
        );
    }
}
