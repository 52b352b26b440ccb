//! Gradient all-reduction across replicas behind one small trait: the
//! device-copy reduction here (CPU replicas, or GPUs without NCCL); NCCL
//! plugs in behind the same trait.

use anyhow::Result;
use tch::Tensor;

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
