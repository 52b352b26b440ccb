//! Running sums for loss and top-k accuracy.

use tch::{Kind, Tensor};

/// Sums over the samples seen so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Running {
    /// Samples.
    pub n: u64,
    /// Sum of per-sample losses.
    pub loss: f64,
    /// Correct top-1.
    pub top1: u64,
    /// Correct top-5.
    pub top5: u64,
}

impl Running {
    /// Adds a batch: `logits [N, C]`, `labels [N]`, mean loss over the batch.
    pub fn add(&mut self, logits: &Tensor, labels: &Tensor, mean_loss: f64) {
        let n = labels.size()[0];
        let k = logits.size()[1].min(5);
        let (_, top) = logits.topk(k, 1, true, true);
        let hits = top.eq_tensor(&labels.unsqueeze(1));
        self.top1 += hits.narrow(1, 0, 1).sum(Kind::Int64).int64_value(&[]) as u64;
        self.top5 += hits.sum(Kind::Int64).int64_value(&[]) as u64;
        self.loss += mean_loss * n as f64;
        self.n += n as u64;
    }

    /// Mean loss.
    pub fn mean_loss(&self) -> f64 {
        self.loss / self.n.max(1) as f64
    }

    /// Top-1 accuracy in [0, 1].
    pub fn top1(&self) -> f64 {
        self.top1 as f64 / self.n.max(1) as f64
    }

    /// Top-5 accuracy in [0, 1].
    pub fn top5(&self) -> f64 {
        self.top5 as f64 / self.n.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_top1_and_top5() {
        let logits = Tensor::from_slice(&[
            0.9f32, 0.1, 0.0, 0.0, 0.0, 0.0, 0.1, 0.9, 0.0, 0.0, 0.0, -1.0,
        ])
        .view([2, 6]);
        let labels = Tensor::from_slice(&[0i64, 5]);
        let mut r = Running::default();
        r.add(&logits, &labels, 1.5);
        assert_eq!((r.n, r.top1, r.top5), (2, 1, 1));
        assert_eq!(r.mean_loss(), 1.5);
    }
}
