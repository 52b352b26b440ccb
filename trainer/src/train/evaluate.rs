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

/// The logits of `[n * views, classes]` rows (each sample's views
/// together) as `[n, classes]` log-probabilities of the views' mean
/// softmax, as both papers averaged their 10 crops; one view's logits are
/// kept as they are (the same softmax, loss and ranks).
pub fn average_views(logits: &Tensor, n: i64) -> Tensor {
    let (rows, classes) = (logits.size()[0], logits.size()[1]);
    if rows == n {
        return logits.shallow_clone();
    }
    let views = rows / n.max(1);
    logits
        .log_softmax(-1, Kind::Float)
        .view([n, views, classes])
        .logsumexp([1], false)
        - (views as f64).ln()
}

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
            let logits = average_views(&logits, labels.size()[0]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_views_softmax_is_averaged_per_sample() {
        // Two samples of three views over four classes.
        let logits = Tensor::from_slice(&[
            2.0f32, 0.0, 0.0, 0.0, /**/ 0.0, 3.0, 0.0, 0.0, /**/ 1.0, 1.0, 0.0,
            0.0, //
            0.0, 0.0, 5.0, 0.0, /**/ 0.0, 0.0, 0.0, 1.0, /**/ 0.0, 0.0, 4.0, 4.0,
        ])
        .view([6, 4]);
        let got = average_views(&logits, 2).exp();
        let want = logits.softmax(-1, Kind::Float).view([2, 3, 4]).mean_dim(
            [1].as_slice(),
            false,
            Kind::Float,
        );
        let diff = (&got - &want).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{got:?} vs {want:?}");
        // Sample 0: views disagree, the mean puts class 1 first.
        assert_eq!(got.get(0).argmax(0, false).int64_value(&[]), 1);
        // One view per sample: the logits as they are.
        let one = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        assert_eq!(average_views(&one, 2), one);
    }
}
