//! Local response normalization across channels, computed exactly as
//! PyTorch's `torch.nn.functional.local_response_norm` (libtorch has no
//! native op for it): an average of squares over a channel window, padded
//! with zeros, counted with the padding.

use tch::Tensor;

use crate::layer::LrnSpec;

/// `[N, C, H, W] -> [N, C, H, W]`:
/// `x / (k + alpha * mean_{window}(x^2)) ^ beta`, window of `size` channels.
pub fn local_response_norm(x: &Tensor, spec: &LrnSpec) -> Tensor {
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
