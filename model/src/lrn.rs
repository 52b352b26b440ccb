//! Local response normalization across channels, computed exactly as
//! PyTorch's `torch.nn.functional.local_response_norm` (libtorch has no
//! native op for it): an average of squares over a channel window, padded
//! with zeros, counted with the padding.

use tch::Tensor;

use crate::layer::LrnSpec;

/// `[N, C, H, W] -> [N, C, H, W]`:
/// `x / (k + alpha * mean_{window}(x^2)) ^ beta`, window of `size` channels.
///
/// Computed in fp32 whatever the input's kind (libtorch's CPU average pool
/// has no bf16 kernel, and the sum of squares wants the range); the result
/// has the input's kind.
pub fn local_response_norm(x: &Tensor, spec: &LrnSpec) -> Tensor {
    if x.kind() != tch::Kind::Float {
        return local_response_norm(&x.to_kind(tch::Kind::Float), spec).to_kind(x.kind());
    }
    let size = x.size();
    let (n, c) = (size[0], size[1]);
    let div = (x * x).view([n, 1, c, size[2], -1]);
    let div = div.constant_pad_nd([0, 0, 0, 0, spec.size / 2, (spec.size - 1) / 2]);
    let div = div
        .avg_pool3d(
            [spec.size, 1, 1],
            [1, 1, 1],
            [0, 0, 0],
            false,
            true,
            None::<i64>,
        )
        .squeeze_dim(1)
        .view(size.as_slice());
    let div = (div * spec.alpha + spec.k).pow_tensor_scalar(spec.beta);
    x / div
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula written out channel by channel.
    fn naive(x: &Tensor, spec: &LrnSpec) -> Tensor {
        let c = x.size()[1];
        let sq = x * x;
        let outs: Vec<Tensor> = (0..c)
            .map(|i| {
                let lo = (i - spec.size / 2).max(0);
                let hi = (i + (spec.size - 1) / 2).min(c - 1);
                let sum = sq.narrow(1, lo, hi - lo + 1).sum_dim_intlist(
                    [1i64].as_slice(),
                    true,
                    tch::Kind::Float,
                );
                x.narrow(1, i, 1)
                    / (sum * (spec.alpha / spec.size as f64) + spec.k).pow_tensor_scalar(spec.beta)
            })
            .collect();
        Tensor::cat(&outs, 1)
    }

    #[test]
    fn matches_the_written_out_formula() {
        let x = Tensor::randn([2, 7, 5, 4], tch::kind::FLOAT_CPU) * 30.0;
        for spec in [
            LrnSpec::ALEXNET,
            LrnSpec {
                size: 4,
                alpha: 1e-2,
                beta: 0.5,
                k: 1.0,
            },
        ] {
            let diff = (local_response_norm(&x, &spec) - naive(&x, &spec))
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff < 1e-5, "size {}: max difference {diff}", spec.size);
        }
    }

    #[test]
    fn normalizes_large_activations() {
        let x = Tensor::full([1, 5, 1, 1], 100.0, tch::kind::FLOAT_CPU);
        let y = local_response_norm(&x, &LrnSpec::ALEXNET);
        // centre channel: 100 / (2 + 1e-4 * 5 * 100^2)^0.75 = 100 / 7^0.75
        let want = 100.0 / 7f64.powf(0.75);
        assert!((y.double_value(&[0, 2, 0, 0]) - want).abs() < 1e-3);
    }
}
