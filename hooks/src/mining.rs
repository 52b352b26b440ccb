//! The top-k miner over a streamed probe set, on every device of the run
//! (ZF Fig. 2 over the whole validation set): a first pass keeps the values
//! and places of the top k of every chosen map, each device on the batches
//! it takes; the devices' lists are merged exactly (the result equals one
//! device's over the whole set, ties to the lower probe index); a second
//! pass reads the winners' images alone again and projects them, spread
//! over the devices too. Memory: the lists, the crops and a few batches,
//! whatever the size of the probe set.

use std::collections::BTreeSet;

use zftrain_deconv::{crop_winners, Crops, LayerChoice, LayerTop, MinerConfig};

use crate::fan_out::on_devices;
use crate::shared::{ProbeNeed, SharedPass};
use crate::{HookContext, HookError};

/// The top-k lists of `choices` over `ctx`'s whole probe set, with their
/// projections and patches when `config.project` is on; on the CPU.
pub fn mine_probe(
    ctx: &HookContext<'_>,
    choices: &[LayerChoice],
    config: MinerConfig,
) -> Result<Vec<LayerTop>, HookError> {
    let devices = ctx.devices();
    // The first pass: taken from the pass the hooks due now share, or run
    // for these choices alone.
    let mut tops = match ctx.shared.and_then(|s| s.tops(choices, &config)) {
        Some(tops) => tops,
        None => {
            let need = ProbeNeed::Top {
                choices: choices.to_vec(),
                k: config.k,
                per_image: config.per_image,
            };
            SharedPass::run(ctx, &[need])?
                .tops(choices, &config)
                .ok_or_else(|| HookError::Probe("the pass did not cover its own choices".into()))?
        }
    };
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
