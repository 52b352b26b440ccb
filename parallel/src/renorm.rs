//! Zeiler & Fergus's filter renormalization: after each update, every conv
//! filter whose RMS exceeds a fixed radius is rescaled to that radius (per
//! output filter, over all its weights).

use tch::Tensor;

/// Rescales the filters of a conv weight `[C_out, C_in, k, k]` whose RMS
/// exceeds `radius`; returns how many were rescaled, as a 0-dim int64
/// tensor on the weight's device (read it only when it is wanted: reading
/// waits for the device).
pub fn renormalize_filters(weight: &Tensor, radius: f64) -> Tensor {
    tch::no_grad(|| {
        let out = weight.size()[0];
        let rms = weight
            .view([out, -1])
            .square()
            .mean_dim([1i64].as_slice(), false, tch::Kind::Float)
            .sqrt();
        // Exactly 1 for the filters within the radius (a computed ratio can
        // be 1 + 1 ulp on some devices), so they are left bit-identical.
        let over = rms.gt(radius);
        let scale = (radius / &rms).where_self(&over, &rms.ones_like());
        let _ = weight
            .shallow_clone()
            .g_mul_(&scale.to_kind(weight.kind()).view([out, 1, 1, 1]));
        over.sum(tch::Kind::Int64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    #[test]
    fn only_filters_above_the_radius_shrink_to_it() {
        let w = Tensor::cat(
            &[
                Tensor::full([1, 2, 3, 3], 0.5, FLOAT_CPU),
                Tensor::full([1, 2, 3, 3], 0.05, FLOAT_CPU),
            ],
            0,
        );
        assert_eq!(renormalize_filters(&w, 0.1).int64_value(&[]), 1);
        let rms = |i: i64| {
            w.get(i)
                .square()
                .mean(tch::Kind::Float)
                .sqrt()
                .double_value(&[])
        };
        assert!((rms(0) - 0.1).abs() < 1e-6);
        // Within the radius: untouched, bit for bit.
        assert!(w.get(1).equal(&Tensor::full([2, 3, 3], 0.05, FLOAT_CPU)));
    }
}
