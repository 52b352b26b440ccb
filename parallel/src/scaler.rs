//! Dynamic loss scaling for fp16 training (as PyTorch's `GradScaler`):
//! the loss is multiplied by `scale` before backward so small fp16
//! gradients do not flush to zero; after the all-reduce the gradients are
//! divided by it again (exactly, the scale being a power of two). A step
//! whose gradients hold an inf or NaN is skipped and the scale halved; after
//! `growth_interval` good steps in a row the scale doubles.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The scaler's state (saved in checkpoints with the trainer state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// Current scale.
    pub scale: f64,
    /// Good steps since the last change.
    pub good_steps: u64,
    /// Good steps before the scale doubles.
    pub growth_interval: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            good_steps: 0,
            growth_interval: 2000,
        }
    }
}

impl LossScaler {
    /// The loss to call backward on: `loss * scale` in fp32.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        loss.to_kind(Kind::Float) * self.scale
    }

    /// Divides `grads` by the current scale.
    pub fn unscale(&self, grads: &[Tensor]) {
        tch::no_grad(|| {
            for g in grads {
                let _ = g.shallow_clone().g_mul_scalar_(1.0 / self.scale);
            }
        });
    }

    /// Whether every gradient is finite.
    pub fn all_finite(grads: &[Tensor]) -> bool {
        tch::no_grad(|| {
            grads
                .iter()
                .all(|g| g.isfinite().all().int64_value(&[]) == 1)
        })
    }

    /// After a step: halve on overflow (the caller skipped the step), double
    /// after `growth_interval` good steps in a row.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    #[test]
    fn overflow_halves_good_steps_grow_and_unscaling_divides() {
        let mut s = LossScaler {
            scale: 8.0,
            good_steps: 0,
            growth_interval: 2,
        };
        let g = Tensor::from_slice(&[8.0f32, -16.0]);
        s.unscale(&[g.shallow_clone()]);
        assert_eq!(Vec::<f32>::try_from(&g).unwrap(), [1.0, -2.0]);
        assert!(LossScaler::all_finite(&[g]));
        s.update(true);
        assert_eq!((s.scale, s.good_steps), (8.0, 1));
        s.update(true);
        assert_eq!(
            (s.scale, s.good_steps),
            (16.0, 0),
            "doubled after 2 good steps"
        );
        let bad = Tensor::from_slice(&[1.0f32, f32::INFINITY]);
        assert!(!LossScaler::all_finite(&[
            Tensor::ones([2], FLOAT_CPU),
            bad
        ]));
        s.update(false);
        assert_eq!((s.scale, s.good_steps), (8.0, 0), "halved on overflow");
        assert_eq!(s.scale_loss(&Tensor::from(0.5f32)).double_value(&[]), 4.0);
    }
}
