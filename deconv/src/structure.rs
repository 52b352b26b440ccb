//! Filters without structure, and dominating filters (ZF Fig. 6 a-c).
//!
//! The paper's "dead" layer-1 features are filters with no spatial
//! structure: noise-like taps that respond to nothing in particular. A
//! filter that never fires (the `dead` count of the hooks) is a different
//! thing: on mean-subtracted images almost any non-zero layer-1 filter
//! fires somewhere, so that count reads 0 at layer 1 by construction.
//!
//! [`tap_correlation`] measures structure as the largest absolute lag-1
//! correlation of a filter's taps over the four neighbour directions
//! (right, down, and both diagonals), pooled over its input channels:
//! smooth and oriented filters (blobs, edges, gratings at any frequency)
//! correlate strongly in some direction; white noise does not. Its null is
//! the same statistic on Gaussian white filters of the same shape
//! ([`structure_threshold`]: the 99th percentile of a fixed draw), and a
//! filter under it is [`structureless`]: indistinguishable from noise. Each
//! channel's mean is taken out of the taps first: a flat tint over noise
//! is not a spatial arrangement (a small tint alone would otherwise carry a
//! noise filter over the threshold), while blobs, edges and gratings keep
//! their correlation.
//!
//! [`dominance`]: the largest filter RMS over the median (Fig. 6 a, "one
//! feature dominates", what feature scale clipping prevents).

use tch::{Kind, Tensor};

use crate::draws::normal;

/// The white filters drawn for the null.
const NULL_DRAWS: i64 = 2000;

/// Per filter of `[F, C, kh, kw]`, the largest `|lag-1 correlation|` of its
/// taps, each channel's mean taken out, over the four neighbour directions
/// (each the sum of products of neighbouring taps over the sum of squares,
/// over all channels). `[F]`, in `[0, 1]`; 0 for a filter that is flat in
/// every channel or a kernel of one tap.
pub fn tap_correlation(weight: &Tensor) -> Tensor {
    let w = weight.to_kind(Kind::Float);
    let w = &w - w.mean_dim([2i64, 3].as_slice(), true, Kind::Float);
    let size = w.size();
    let (f, kh, kw) = (size[0], size[2], size[3]);
    let energy = w
        .square()
        .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
        .clamp_min(1e-30);
    let pairs = |a: Tensor, b: Tensor| {
        (a * b)
            .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
            .abs()
            / &energy
    };
    let mut best = Tensor::zeros([f], (Kind::Float, w.device()));
    if kw > 1 {
        best = best.maximum(&pairs(w.narrow(3, 0, kw - 1), w.narrow(3, 1, kw - 1)));
    }
    if kh > 1 {
        best = best.maximum(&pairs(w.narrow(2, 0, kh - 1), w.narrow(2, 1, kh - 1)));
    }
    if kh > 1 && kw > 1 {
        let down_right = pairs(
            w.narrow(2, 0, kh - 1).narrow(3, 0, kw - 1),
            w.narrow(2, 1, kh - 1).narrow(3, 1, kw - 1),
        );
        let down_left = pairs(
            w.narrow(2, 0, kh - 1).narrow(3, 1, kw - 1),
            w.narrow(2, 1, kh - 1).narrow(3, 0, kw - 1),
        );
        best = best.maximum(&down_right).maximum(&down_left);
    }
    best
}

/// The most white-noise taps drawn for one null (the draws shrink for
/// large filters, down to [`MIN_DRAWS`]).
const MAX_TAPS: i64 = 4_000_000;

/// The fewest white filters a null is drawn from.
const MIN_DRAWS: i64 = 200;

/// The null of [`tap_correlation`] for filters of `[C, kh, kw]`: its 99th
/// percentile over a fixed draw of Gaussian white filters of that shape
/// (2000 of them, fewer for large filters, whose null is narrow: at most
/// four million taps). Computed once per shape and process.
pub fn structure_threshold(c: i64, kh: i64, kw: i64) -> f64 {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Known = Mutex<HashMap<(i64, i64, i64), f64>>;
    static KNOWN: OnceLock<Known> = OnceLock::new();
    let known = KNOWN.get_or_init(Default::default);
    if let Some(&t) = known
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(c, kh, kw))
    {
        return t;
    }
    let draws = (MAX_TAPS / (c * kh * kw).max(1)).clamp(MIN_DRAWS, NULL_DRAWS);
    let white = normal(&[draws, c, kh, kw], 0x5_7E0C);
    let r = tap_correlation(&white);
    let sorted = r.sort(0, false).0;
    let t = sorted.double_value(&[draws * 99 / 100]);
    known
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((c, kh, kw), t);
    t
}

/// A layer's filters against the white-noise null.
#[derive(Debug, Clone, PartialEq)]
pub struct Structure {
    /// Per filter: its [`tap_correlation`].
    pub correlation: Vec<f64>,
    /// Per filter: whether that is under the null ([`structure_threshold`]).
    pub structureless: Vec<bool>,
    /// The null's 99th percentile (0 for kernels of one tap).
    pub threshold: f64,
}

/// Each filter's [`tap_correlation`] and whether it is under the
/// white-noise null. Kernels of one tap have no spatial structure to test:
/// none is structureless.
pub fn structureless(weight: &Tensor) -> Structure {
    let size = weight.size();
    let (c, kh, kw) = (size[1], size[2], size[3]);
    let correlation = Vec::<f64>::try_from(
        tap_correlation(weight)
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .unwrap_or_default();
    if kh * kw < 2 {
        let structureless = vec![false; correlation.len()];
        return Structure {
            correlation,
            structureless,
            threshold: 0.0,
        };
    }
    let threshold = structure_threshold(c, kh, kw);
    Structure {
        structureless: correlation.iter().map(|&r| r < threshold).collect(),
        correlation,
        threshold,
    }
}

/// The largest filter RMS over the median filter RMS of `[F, ...]`
/// (1 when all are alike; 0 when the median filter is all zeros and so is
/// the largest; infinite when only the median is).
pub fn dominance(weight: &Tensor) -> f64 {
    let rms = weight
        .to_kind(Kind::Double)
        .flatten(1, -1)
        .square()
        .mean_dim([1i64].as_slice(), false, Kind::Double)
        .sqrt();
    let mut v = Vec::<f64>::try_from(rms.to_device(tch::Device::Cpu)).unwrap_or_default();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let (max, median) = (v[v.len() - 1], v[v.len() / 2]);
    if max == 0.0 {
        0.0
    } else {
        max / median
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    #[test]
    fn white_filters_are_structureless_and_gratings_at_any_frequency_are_not() {
        let k = 11;
        let white = Tensor::randn([200, 3, k, k], FLOAT_CPU);
        let Structure {
            structureless: flags,
            threshold: thr,
            ..
        } = structureless(&white);
        let count = flags.iter().filter(|&&f| f).count();
        assert!(
            count >= 190,
            "{count} of 200 white filters, threshold {thr}"
        );
        let r = Tensor::arange(k, FLOAT_CPU);
        let gratings: Vec<Tensor> = [0.05, 0.2, 0.25, 0.4, 0.5]
            .iter()
            .flat_map(|f| {
                // Diagonal and along x, at frequency f.
                let w = 2.0 * std::f64::consts::PI * f;
                let diagonal = ((r.view([k, 1]) + r.view([1, k])) * w).cos();
                let along_x = (r.view([1, k]) * w).cos().expand([k, k], true);
                [diagonal, along_x].map(|g| g.view([1, 1, k, k]).expand([1, 3, k, k], true))
            })
            .collect();
        let flags = structureless(&Tensor::cat(&gratings, 0)).structureless;
        assert_eq!(flags, [false; 10]);
        assert_eq!(
            structureless(&Tensor::zeros([3, 4, 1, 1], FLOAT_CPU)).structureless,
            [false; 3]
        );
    }

    #[test]
    fn one_large_filter_dominates() {
        let w = Tensor::ones([5, 3, 3, 3], FLOAT_CPU);
        assert_eq!(dominance(&w), 1.0);
        let _ = w.get(2).g_mul_scalar_(7.0);
        assert!((dominance(&w) - 7.0).abs() < 1e-9);
        assert_eq!(dominance(&Tensor::zeros([4, 1, 2, 2], FLOAT_CPU)), 0.0);
    }
}
