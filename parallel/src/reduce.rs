//! Gradient all-reduction across replicas behind one small trait: the
//! device-copy reduction (CPU replicas, or GPUs without NCCL), the same
//! across nodes over the rendezvous link (CPU nodes); NCCL
//! ([`super::nccl`]) plugs in behind the same trait.

use std::sync::{Arc, Mutex};

use crate::error::{ParallelError, Result};
use tch::{Device, Kind, Tensor};

use super::rendezvous::Link;

/// `train.reducer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReducerChoice {
    /// NCCL for two or more GPUs when it can be loaded, else `copy`.
    Auto,
    /// NCCL, or an error if it cannot be loaded.
    Nccl,
    /// Sums on the first device by copies (deterministic; CPU replicas).
    Copy,
}

/// Makes every replica's gradients the weighted sum of all replicas'.
pub trait GradReducer: Send {
    /// `grads[r][p]`: gradient of parameter `p` on replica `r` (each on its
    /// replica's device); `weights[r]`: the factor of replica `r`. Afterwards
    /// every `grads[r][p]` holds `sum_r weights[r] * grads[r][p]`.
    fn all_reduce(&self, grads: &[Vec<Tensor>], weights: &[f64]) -> Result<()>;

    /// A short name for logs.
    fn name(&self) -> &'static str;
}

/// Sums on replica 0's device in replica order (deterministic), then copies
/// the sum back to every replica.
#[derive(Debug, Default)]
pub struct CopyReducer;

impl GradReducer for CopyReducer {
    fn all_reduce(&self, grads: &[Vec<Tensor>], weights: &[f64]) -> Result<()> {
        let Some(first) = grads.first() else {
            return Ok(());
        };
        tch::no_grad(|| {
            for p in 0..first.len() {
                let device = first[p].device();
                let mut sum = &first[p] * weights[0];
                for (r, g) in grads.iter().enumerate().skip(1) {
                    sum += g[p].to_device(device) * weights[r];
                }
                for g in grads {
                    let mut g = g[p].shallow_clone();
                    g.copy_(&sum);
                }
            }
        });
        Ok(())
    }

    fn name(&self) -> &'static str {
        "device-copy"
    }
}

/// CPU nodes of a multi-node run: device copies within the node, then a
/// sum over the nodes through node 0 ([`Link::all_reduce_f32`], in node
/// order, so every node gets the same bits).
#[derive(Debug)]
pub struct LinkReducer {
    /// The other nodes.
    pub link: Arc<Mutex<Link>>,
}

impl GradReducer for LinkReducer {
    fn all_reduce(&self, grads: &[Vec<Tensor>], weights: &[f64]) -> Result<()> {
        CopyReducer.all_reduce(grads, weights)?;
        let Some(first) = grads.first() else {
            return Ok(());
        };
        let flat = tch::no_grad(|| {
            Tensor::cat(
                &first
                    .iter()
                    .map(|g| g.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
                    .collect::<Vec<_>>(),
                0,
            )
        });
        let mut values = Vec::<f32>::try_from(&flat)?;
        self.link
            .lock()
            .map_err(|_| ParallelError::Link("the node link is poisoned".into()))?
            .all_reduce_f32(&mut values)?;
        let sum = Tensor::from_slice(&values);
        tch::no_grad(|| {
            let mut offset = 0;
            for (p, g) in first.iter().enumerate() {
                let n = g.numel() as i64;
                let part = sum.narrow(0, offset, n).view(g.size().as_slice());
                for replica in grads {
                    let mut t = replica[p].shallow_clone();
                    t.copy_(&part);
                }
                offset += n;
            }
        });
        Ok(())
    }

    fn name(&self) -> &'static str {
        "device-copy + node link"
    }
}
