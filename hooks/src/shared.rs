//! One probe pass for all the hooks due at the same event. At an ImageNet
//! epoch the paper's hooks (Deconvnet grids, the evolution montage, dead
//! filters, aliasing) would each stream the 50,000 validation images through
//! the network; what they read off the conv outputs (the top k of chosen
//! maps, each filter's maximum and count of units above a threshold) can be
//! taken from one forward. Each hook says what it needs
//! ([`crate::Hook::probe_needs`]); the registry runs one [`SharedPass`] for
//! the union (every chosen map, the largest k) and hands it to the hooks in
//! [`crate::HookContext::shared`]; [`crate::mine_probe`] and the dead-filters
//! hook take their part from it, exactly what their own pass would have
//! found (a map's list does not depend on the other maps mined with it, and
//! the top k is the first k of a longer list in the same order).

use tch::{Kind, Tensor};
use zftrain_deconv::{LayerChoice, LayerTop, Miner, MinerConfig};
use zftrain_model::network::to_channels_last;

use crate::fan_out::on_devices;
use crate::{HookContext, HookError};

/// What a hook reads off the probe set's conv outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeNeed {
    /// Mining's first pass: the top `k` values and places of `choices`'
    /// maps, at most `per_image` of them from one image.
    Top {
        /// Layers and maps.
        choices: Vec<LayerChoice>,
        /// Activations per map.
        k: usize,
        /// At most this many from one image.
        per_image: usize,
    },
    /// Each conv layer's per-filter maximum and count of units above
    /// `threshold` (the dead-filters hook).
    FilterStats {
        /// An activation above it counts.
        threshold: f64,
    },
}

/// Per conv layer: each filter's largest activation and count of units
/// above a threshold, and the units seen (on the CPU once joined).
#[derive(Debug, Default)]
pub struct FilterSums {
    /// `[C]` per conv layer (conv order).
    pub maxes: Vec<Tensor>,
    /// `[C]` per conv layer, f64 counts.
    pub above: Vec<Tensor>,
    /// Units per filter seen, per conv layer.
    pub units: Vec<f64>,
}

impl FilterSums {
    /// Adds conv layer `conv`'s rectified output `t` (`[N, C, H, W]`) of a
    /// batch; layers come in conv order, from the first.
    pub fn add_layer(&mut self, conv: usize, t: &Tensor, threshold: f64) {
        let t = t.to_kind(Kind::Float);
        let s = t.size();
        let m = t.amax([0i64, 2, 3].as_slice(), false);
        // Per image in i32 first (exact: at most H*W units), then over the
        // batch in f64: 0.49 s instead of 0.86 s for conv1 of a batch of 128
        // on 2 cores (one sum straight to f64 over N, H, W).
        let a = t
            .gt(threshold)
            .sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Int)
            .sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
        let units = (s[0] * s[2] * s[3]) as f64;
        if conv == self.maxes.len() {
            self.maxes.push(m);
            self.above.push(a);
            self.units.push(units);
        } else {
            self.maxes[conv] = self.maxes[conv].maximum(&m);
            self.above[conv] = &self.above[conv] + a;
            self.units[conv] += units;
        }
    }

    /// Adds another device's sums (moved to the CPU).
    pub fn join(&mut self, other: FilterSums) {
        let cpu = |t: Tensor| t.to_device(tch::Device::Cpu);
        if self.maxes.is_empty() {
            self.maxes = other.maxes.into_iter().map(cpu).collect();
            self.above = other.above.into_iter().map(cpu).collect();
            self.units = other.units;
            return;
        }
        for (i, (m, a)) in other.maxes.into_iter().zip(other.above).enumerate() {
            self.maxes[i] = self.maxes[i].maximum(&cpu(m));
            self.above[i] = &self.above[i] + cpu(a);
            self.units[i] += other.units[i];
        }
    }
}

/// What one pass found for a set of needs.
#[derive(Debug, Default)]
pub struct SharedPass {
    /// Per `per_image`: the merged lists of the union of the choices, `k`
    /// the largest asked for.
    tops: Vec<(usize, usize, Vec<LayerTop>)>,
    /// Per threshold.
    stats: Vec<(f64, FilterSums)>,
}

/// A miner for each `per_image` of the needs: the union of its choices
/// (maps sorted, once each), the largest k.
fn mining_groups(needs: &[ProbeNeed]) -> Vec<(usize, usize, Vec<LayerChoice>)> {
    let mut groups: Vec<(usize, usize, Vec<LayerChoice>)> = Vec::new();
    for need in needs {
        let ProbeNeed::Top {
            choices,
            k,
            per_image,
        } = need
        else {
            continue;
        };
        let at = match groups.iter().position(|g| g.0 == *per_image) {
            Some(at) => at,
            None => {
                groups.push((*per_image, 0, Vec::new()));
                groups.len() - 1
            }
        };
        let group = &mut groups[at];
        group.1 = group.1.max(*k);
        for choice in choices {
            match group.2.iter_mut().find(|c| c.conv == choice.conv) {
                Some(c) => c.channels.extend(&choice.channels),
                None => group.2.push(choice.clone()),
            }
        }
    }
    for (_, _, choices) in &mut groups {
        choices.sort_by_key(|c| c.conv);
        for c in choices.iter_mut() {
            c.channels.sort_unstable();
            c.channels.dedup();
        }
    }
    groups
}

/// What one device keeps during the pass.
struct DeviceState {
    miners: Vec<Miner>,
    sums: Vec<FilterSums>,
}

impl SharedPass {
    /// Streams `ctx`'s probe set once over its devices and serves `needs`.
    pub fn run(ctx: &HookContext<'_>, needs: &[ProbeNeed]) -> Result<SharedPass, HookError> {
        let groups = mining_groups(needs);
        let mut thresholds: Vec<f64> = Vec::new();
        for need in needs {
            if let ProbeNeed::FilterStats { threshold } = need {
                if !thresholds.contains(threshold) {
                    thresholds.push(*threshold);
                }
            }
        }
        let last = last_layer(ctx, &groups, !thresholds.is_empty())?;
        let states = on_devices(
            &ctx.devices(),
            ctx.probe.batches(),
            &|net, device| {
                let miners = groups
                    .iter()
                    .map(|(p, k, choices)| Miner::new(net, choices, group_config(*p, *k), device))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(DeviceState {
                    miners,
                    sums: thresholds.iter().map(|_| FilterSums::default()).collect(),
                })
            },
            &|state, net, device, batch| {
                let input = to_channels_last(&batch.images.to_device(device));
                let mut taken: Vec<_> = state.miners.iter().map(|m| m.taker()).collect();
                let DeviceState { miners, sums } = state;
                tch::no_grad(|| {
                    net.for_each_conv_to(&input, last + 1, |conv, t| {
                        for (miner, taken) in miners.iter().zip(&mut taken) {
                            miner.take(taken, conv, t);
                        }
                        for (sums, &threshold) in sums.iter_mut().zip(&thresholds) {
                            sums.add_layer(conv, t, threshold);
                        }
                    })
                });
                for (miner, taken) in miners.iter_mut().zip(taken) {
                    miner.update_taken(taken, &batch.indices)?;
                }
                Ok(())
            },
        )?;
        merge(&groups, thresholds, states)
    }

    /// The top lists (values and places, no crops) of `choices` as mining
    /// them alone with `config` would find them, if the pass covered them.
    pub fn tops(&self, choices: &[LayerChoice], config: &MinerConfig) -> Option<Vec<LayerTop>> {
        let (_, _, layers) = self
            .tops
            .iter()
            .find(|(p, k, _)| *p == config.per_image && *k >= config.k)?;
        let k = config.k as i64;
        choices
            .iter()
            .map(|choice| {
                let top = layers.iter().find(|t| t.conv == choice.conv)?;
                let rows = choice
                    .channels
                    .iter()
                    .map(|c| top.channels.iter().position(|t| t == c).map(|p| p as i64))
                    .collect::<Option<Vec<i64>>>()?;
                let rows = Tensor::from_slice(&rows);
                let pick = |t: &Tensor| t.index_select(0, &rows).narrow(1, 0, k);
                let empty = |t: &Tensor| {
                    let s = t.size();
                    Tensor::zeros(
                        [rows.size()[0], k, s[2], s[3], s[4]],
                        (Kind::Float, t.device()),
                    )
                };
                Some(LayerTop {
                    conv: top.conv,
                    channels: choice.channels.clone(),
                    field: top.field,
                    values: pick(&top.values),
                    images: pick(&top.images),
                    ys: pick(&top.ys),
                    xs: pick(&top.xs),
                    projections: empty(&top.projections),
                    patches: empty(&top.patches),
                })
            })
            .collect()
    }

    /// The filter sums at `threshold`, if the pass counted them.
    pub fn filter_stats(&self, threshold: f64) -> Option<&FilterSums> {
        self.stats
            .iter()
            .find(|(t, _)| *t == threshold)
            .map(|(_, s)| s)
    }
}

/// The mining miner configuration of a group: values and places only.
fn group_config(per_image: usize, k: usize) -> MinerConfig {
    MinerConfig {
        k,
        per_image,
        project: false,
        ..MinerConfig::default()
    }
}

/// The last layer the pass must reach: the deepest layer mined, and the
/// last conv layer's tap when filter statistics are asked for. The choices
/// are checked here, once (a bad one is one error, not one per device).
fn last_layer(
    ctx: &HookContext<'_>,
    groups: &[(usize, usize, Vec<LayerChoice>)],
    stats: bool,
) -> Result<usize, HookError> {
    let mut last = 0;
    for (per_image, k, choices) in groups {
        let miner = Miner::new(
            ctx.net,
            choices,
            group_config(*per_image, *k),
            tch::Device::Cpu,
        )?;
        last = last.max(miner.last_layer(ctx.net));
    }
    if stats {
        let arch = ctx.net.arch();
        let Some(&conv) = arch.conv_indices().last() else {
            return Err(HookError::Probe(format!(
                "{} has no conv layers to count filters of",
                arch.name
            )));
        };
        last = last.max(arch.tap_index(conv));
    }
    Ok(last)
}

/// Every device's tops and filter sums, merged into the pass's answers.
fn merge(
    groups: &[(usize, usize, Vec<LayerChoice>)],
    thresholds: Vec<f64>,
    states: Vec<DeviceState>,
) -> Result<SharedPass, HookError> {
    let mut shards: Vec<Vec<Vec<LayerTop>>> = groups
        .iter()
        .map(|(_, _, choices)| choices.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut stats: Vec<FilterSums> = thresholds.iter().map(|_| FilterSums::default()).collect();
    for state in states {
        for (g, miner) in state.miners.into_iter().enumerate() {
            for (i, top) in miner.into_layers().into_iter().enumerate() {
                shards[g][i].push(top);
            }
        }
        for (total, part) in stats.iter_mut().zip(state.sums) {
            total.join(part);
        }
    }
    let mut tops = Vec::new();
    for ((per_image, k, _), layers) in groups.iter().zip(shards) {
        let merged = layers
            .into_iter()
            .map(LayerTop::merge)
            .collect::<Result<Vec<_>, _>>()?;
        tops.push((*per_image, *k, merged));
    }
    Ok(SharedPass {
        tops,
        stats: thresholds.into_iter().zip(stats).collect(),
    })
}
