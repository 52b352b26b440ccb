//! Fixed pseudo-random draws for the measures' nulls: Gaussian white
//! filters and tap permutations that depend only on a seed, computed from a
//! hash ([`zftrain_model::dropout::mix64`]) and never from libtorch's
//! generator, so that measuring a network in the middle of a run neither
//! changes the run's random stream nor reads differently from one call to
//! the next.

use tch::Tensor;
use zftrain_model::dropout::mix64;

/// Uniform in `(0, 1)` from draw `i` of stream `seed`.
fn uniform(seed: u64, i: u64) -> f64 {
    ((mix64(seed ^ mix64(i)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// `shape` standard normal draws (Box-Muller), `f32` on the CPU.
pub fn normal(shape: &[i64], seed: u64) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n as u64)
        .map(|i| {
            let (u1, u2) = (uniform(seed, 2 * i), uniform(seed, 2 * i + 1));
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect();
    Tensor::from_slice(&v).view(shape)
}

/// `[F, C, k, k]` filters with each filter's `k x k` positions permuted
/// (one permutation per filter, the same for all its input channels): the
/// same taps and norm, the spatial arrangement destroyed.
pub fn shuffled_taps(weight: &Tensor, seed: u64) -> Tensor {
    let size = weight.size();
    let (f, c, kh, kw) = (size[0], size[1], size[2], size[3]);
    let taps = kh * kw;
    let mut order = Vec::with_capacity((f * taps) as usize);
    for filter in 0..f as u64 {
        let mut keyed: Vec<(u64, i64)> = (0..taps)
            .map(|t| (mix64(seed ^ mix64(filter << 32 | t as u64)), t))
            .collect();
        keyed.sort_unstable();
        order.extend(keyed.into_iter().map(|(_, t)| t));
    }
    let index = Tensor::from_slice(&order)
        .view([f, 1, taps])
        .expand([f, c, taps], true)
        .to_device(weight.device());
    weight
        .reshape([f, c, taps])
        .gather(2, &index, false)
        .view([f, c, kh, kw])
        .to_kind(weight.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{kind::FLOAT_CPU, Kind};

    #[test]
    fn normal_draws_are_standard_and_fixed_by_the_seed() {
        let a = normal(&[20_000], 7);
        let mean = a.mean(Kind::Double).double_value(&[]);
        let std = a.std(true).double_value(&[]);
        assert!(
            mean.abs() < 0.03 && (std - 1.0).abs() < 0.03,
            "{mean} {std}"
        );
        assert!(a.equal(&normal(&[20_000], 7)));
        assert!(!a.equal(&normal(&[20_000], 8)));
    }

    #[test]
    fn shuffling_keeps_every_filters_taps_and_moves_them() {
        let w = Tensor::randn([5, 3, 4, 4], FLOAT_CPU);
        let s = shuffled_taps(&w, 1);
        let sorted = |t: &Tensor| t.reshape([5, -1]).sort(1, false).0;
        assert!(sorted(&w).allclose(&sorted(&s), 0.0, 0.0, false));
        assert!(!w.equal(&s));
        // The same permutation for every input channel of a filter.
        let pos = Tensor::arange(16, FLOAT_CPU)
            .view([1, 1, 4, 4])
            .expand([2, 3, 4, 4], true);
        let p = shuffled_taps(&pos, 3);
        assert!(p.get(0).get(0).equal(&p.get(0).get(2)));
        assert!(!p.get(0).equal(&p.get(1)));
    }
}
