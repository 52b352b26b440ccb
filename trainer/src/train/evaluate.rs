//! Validation: loss, top-1 and top-5 of a network over a loader's epoch, in
//! evaluation mode without gradients.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use zftrain_data::Loader;

use crate::train::metrics::Running;
use crate::train::prefetch::{to_tensors, TensorLayout};
use crate::train::stop::StopHandle;
use crate::train::ticker::Ticker;
use crate::weights::Model;

/// Images left out of a pass, each with why.
pub type Skipped = Vec<(PathBuf, String)>;

/// Loss, top-1 and top-5 of `model` (on `device`) over `loader`, batches
/// laid out as `layout` says; and the files left out because they do not
/// decode. `ticker` hears of every batch. An epoch in which no image
/// decodes is an error. `None` when `stop` is requested before the pass
/// ends (it is looked at before every batch).
pub fn evaluate(
    model: &Model,
    device: Device,
    loader: &Loader,
    layout: &TensorLayout,
    ticker: &mut Ticker,
    stop: &StopHandle,
) -> Result<Option<(Running, Skipped)>> {
    let mut r = Running::default();
    let mut skipped = Vec::new();
    for batch in loader.epoch(0, 0) {
        if stop.requested() {
            return Ok(None);
        }
        let mut batch = batch?;
        ticker.add(batch.len() + batch.skipped.len());
        skipped.append(&mut batch.skipped);
        if batch.is_empty() {
            continue;
        }
        let (images, labels) = to_tensors(&batch, layout).context("a validation batch")?;
        loader.recycle(batch);
        tch::no_grad(|| {
            let logits = model
                .net
                .forward(&images.to_device(device), false)
                .to_kind(Kind::Float)
                .to_device(Device::Cpu);
            let loss =
                logits.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, 0.0);
            r.add(&logits, &labels, loss.double_value(&[]));
        });
    }
    if r.n == 0 {
        bail!(
            "no validation image could be decoded ({} files)",
            loader.dataset().len()
        );
    }
    Ok(Some((r, skipped)))
}
