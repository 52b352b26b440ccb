//! Unpooling as the exact adjoint of max-pool selection.
//!
//! A max-pool picks, for each output unit, one input position (its switch).
//! Its adjoint sends each output value back to that position, and where
//! overlapping windows (3x3, stride 2) picked the same position, the values
//! add. libtorch's `max_unpool2d` assigns instead (the last write wins), which
//! loses contributions on these networks; this is a scatter-add.

use tch::Tensor;

/// `[T, C, H', W']` values and `[T, C, H', W']` switches (flat `h * W + w`
/// into the pool's input plane) -> `[T, C, H, W]` with `(H, W) = input_size`.
pub fn unpool_adjoint(values: &Tensor, switches: &Tensor, input_size: [i64; 2]) -> Tensor {
    let size = values.size();
    let (t, c) = (size[0], size[1]);
    let plane = input_size[0] * input_size[1];
    let flat = Tensor::zeros([t, c, plane], (values.kind(), values.device()));
    flat.scatter_add(2, &switches.view([t, c, -1]), &values.reshape([t, c, -1]))
        .view([t, c, input_size[0], input_size[1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{kind::FLOAT_CPU, Kind};

    #[test]
    fn shared_switches_add_up() {
        // A 1x1x3x3 input whose centre is the maximum of both overlapping
        // 2x2 windows (stride 1 along x): both pooled values go to it.
        let x = Tensor::from_slice(&[0f32, 0., 0., 0., 5., 0., 0., 0., 0.]).view([1, 1, 3, 3]);
        let (y, idx) = x.max_pool2d_with_indices([2, 2], [1, 1], [0, 0], [1, 1], false);
        assert_eq!(
            Vec::<i64>::try_from(idx.flatten(0, -1)).unwrap(),
            [4, 4, 4, 4]
        );
        let g = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 1, 2, 2]);
        let up = unpool_adjoint(&g, &idx, [3, 3]);
        assert_eq!(up.double_value(&[0, 0, 1, 1]), 10.0);
        assert_eq!(up.sum(Kind::Float).double_value(&[]), 10.0);
        // libtorch's max_unpool2d keeps one of them only: the bug this avoids.
        let assigned = g.max_unpool2d(&idx, [3, 3]);
        assert!(assigned.double_value(&[0, 0, 1, 1]) < 10.0);
        let _ = y;
    }

    #[test]
    fn unpooling_is_the_adjoint_of_pooling() {
        // <pool(x) selected at switches, g> == <x, unpool(g)> for the selection map.
        tch::manual_seed(1);
        let x = Tensor::randn([2, 3, 13, 13], FLOAT_CPU);
        let (_, idx) = x.max_pool2d_with_indices([3, 3], [2, 2], [1, 1], [1, 1], false);
        let g = Tensor::randn(idx.size(), FLOAT_CPU);
        // The gradient of sum(maxpool(x) * g) with respect to x is the adjoint.
        let xg = x.set_requires_grad(true);
        let y = xg.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let grad = Tensor::run_backward(&[(&y * &g).sum(Kind::Float)], &[&xg], false, false);
        let up = unpool_adjoint(&g, &idx, [13, 13]);
        let diff = (up - &grad[0]).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
    }
}
