//! The top-k miner over a streamed probe set, on every device of the run
//! (ZF Fig. 2 over the whole validation set): a first pass keeps the values
//! and places of the top k of every chosen map, each device on the batches
//! it takes; the devices' lists are merged exactly (the result equals one
//! device's over the whole set, ties to the lower probe index); a second
//! pass reads the winners' images alone again and projects them, spread
//! over the devices too. Memory: the lists, the crops and a few batches,
//! whatever the size of the probe set.

use std::collections::BTreeSet;

use zftrain_deconv::{crop_winners, Crops, LayerChoice, LayerTop, Miner, MinerConfig};

use crate::devices::on_devices;
use crate::{HookContext, HookError};

/// The top-k lists of `choices` over `ctx`'s whole probe set, with their
/// projections and patches when `config.project` is on; on the CPU.
pub fn mine_probe(
    ctx: &HookContext<'_>,
    choices: &[LayerChoice],
    config: MinerConfig,
) -> Result<Vec<LayerTop>, HookError> {
    let devices = ctx.devices();
    let values_only = MinerConfig {
        project: false,
        ..config.clone()
    };
    // Checked once here, so that a bad choice is one error, not one per device.
    Miner::new(ctx.net, choices, values_only.clone(), tch::Device::Cpu)?;
    let miners = on_devices(
        &devices,
        ctx.probe.batches(),
        &|net, device| Ok(Miner::new(net, choices, values_only.clone(), device)?),
        &|miner, net, device, batch| {
            let images = batch.images.to_device(device);
            Ok(miner.update_indexed(net, &images, &batch.indices)?)
        },
    )?;
    let mut shards: Vec<Vec<LayerTop>> = choices.iter().map(|_| Vec::new()).collect();
    for miner in miners {
        for (i, top) in miner.into_layers().into_iter().enumerate() {
            shards[i].push(top);
        }
    }
    let mut tops = shards
        .into_iter()
        .map(LayerTop::merge)
        .collect::<Result<Vec<_>, _>>()?;
    if !config.project {
        return Ok(tops);
    }
    let lists = tops
        .iter()
        .map(|t| t.winners())
        .collect::<Result<Vec<_>, _>>()?;
    let wanted: BTreeSet<usize> = lists
        .iter()
        .flat_map(|l| l.winners.iter().map(|w| w.image as usize))
        .collect();
    let wanted: Vec<usize> = wanted.into_iter().collect();
    let channels = ctx.net.arch().input[0];
    for top in &mut tops {
        top.clear_crops(channels);
    }
    if wanted.is_empty() {
        return Ok(tops);
    }
    let crops = on_devices(
        &devices,
        ctx.probe.stream(Some(&wanted)),
        &|_, _| Ok(Vec::<Crops>::new()),
        &|found, net, device, batch| {
            let images = batch.images.to_device(device);
            found.extend(crop_winners(
                net,
                &lists,
                &batch.indices,
                &images,
                config.max_batch,
            )?);
            Ok(())
        },
    )?;
    for c in crops.iter().flatten() {
        tops[c.layer].put_crops(c);
    }
    Ok(tops)
}
