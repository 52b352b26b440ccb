//! Frequency measures for the aliasing analysis of ZF section 4 (Fig. 6):
//! how much of a strided filter's power lies above the stride's Nyquist
//! frequency (the part that subsampling folds back), where layer-1 filters
//! put their power, and how strongly a stride's periodic grid shows in
//! projections.
//!
//! Spectra are 2-D DFTs zero-padded to `n x n`; frequencies are in cycles
//! per pixel, in `[-0.5, 0.5)`.

use tch::{Device, Kind, Tensor};

/// Power spectra `[F, n, n]` of `[F, C, k, k]` filters (or images), summed
/// over the channels, zero-padded to `n x n`.
pub fn power_spectra(x: &Tensor, n: i64) -> Tensor {
    let f = x
        .to_kind(Kind::Float)
        .fft_fft2([n, n].as_slice(), [-2i64, -1].as_slice(), "backward");
    f.abs()
        .square()
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
}

/// `[n, n]` frequency grids `(fy, fx)` matching [`power_spectra`].
fn grids(n: i64, device: Device) -> (Tensor, Tensor) {
    let f = Tensor::fft_fftfreq(n, 1.0, (Kind::Float, device));
    (
        f.view([n, 1]).expand([n, n], true),
        f.view([1, n]).expand([n, n], true),
    )
}

/// Per filter, the fraction of its power at frequencies above the Nyquist
/// frequency of `stride` (`1 / (2 stride)` cycles per pixel, on either
/// axis): the power that subsampling by `stride` folds back. `[F]`; 0 for a
/// filter of zeros.
pub fn above_nyquist(weight: &Tensor, stride: i64, n: i64) -> Tensor {
    let p = power_spectra(weight, n);
    let (fy, fx) = grids(n, p.device());
    let nyquist = 0.5 / stride as f64;
    let above = fy
        .abs()
        .gt(nyquist)
        .logical_or(&fx.abs().gt(nyquist))
        .to_kind(Kind::Float);
    let total = p.sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float);
    let high = (&p * above).sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float);
    high / total.clamp_min(1e-30)
}

/// Per filter, the radial frequency (cycles per pixel, 0 to ~0.71) where
/// its power peaks. `[F]`.
pub fn dominant_frequency(weight: &Tensor, n: i64) -> Tensor {
    let p = power_spectra(weight, n);
    let (fy, fx) = grids(n, p.device());
    let radial = (fy.square() + fx.square()).sqrt().flatten(0, -1);
    let peak = p.flatten(1, -1).argmax(1, false);
    radial.index_select(0, &peak)
}

/// Fractions of filters whose dominant frequency is in the low, middle and
/// high third of `[0, 0.5]` cycles per pixel (the corners above 0.5 count as
/// high).
pub fn band_thirds(dominant: &Tensor) -> [f64; 3] {
    let n = dominant.numel().max(1) as f64;
    let count = |t: Tensor| t.to_kind(Kind::Float).sum(Kind::Float).double_value(&[]) / n;
    [
        count(dominant.lt(1.0 / 6.0)),
        count(dominant.ge(1.0 / 6.0).logical_and(&dominant.lt(1.0 / 3.0))),
        count(dominant.ge(1.0 / 3.0)),
    ]
}

/// How much of `[T, C, H, W]` projections' power lies in the replicas that a
/// stride of `period` pixels makes: a transposed convolution of stride `s`
/// places its filter on a lattice of period `s`, so the output's spectrum is
/// the coefficients' spectrum, repeated around every lattice frequency
/// `(i / s, j / s)`, times the filter's. Smooth filters damp the repeats
/// (no visible grid); filters with power above `1 / (2 s)` keep them (the
/// grid of ZF Fig. 6 d). Measured per projection as the fraction of power
/// outside the central cell `|fy|, |fx| <= 1 / (2 s)` (zero-padded to `n`,
/// which must be at least the projections' size), averaged over the
/// projections with any power. Near 0 for smooth projections; `1 - 1 / s^2`
/// (0.94 at period 4, 0.75 at 2) for white noise or projections through
/// random filters; above that when the filters are high-frequency. Fine
/// detail that is not a grid counts too, so compare networks on the same
/// probe images. 0 for `period < 2` or no projections.
pub fn grid_score(projections: &Tensor, period: i64, n: i64) -> f64 {
    if period < 2 || projections.size()[0] == 0 {
        return 0.0;
    }
    // Energy in pixels equals energy in the spectrum (Parseval): no second DFT.
    let powered = projections
        .to_kind(Kind::Float)
        .square()
        .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
        .gt(1e-30);
    let kept = powered.nonzero().squeeze_dim(1);
    if kept.numel() == 0 {
        return 0.0;
    }
    above_nyquist(&projections.index_select(0, &kept), period, n)
        .mean(Kind::Double)
        .double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    fn gaussian(k: i64, sigma: f64) -> Tensor {
        let r = Tensor::arange(k, FLOAT_CPU) - (k - 1) as f64 / 2.0;
        let g = (-(r.square()) / (2.0 * sigma * sigma)).exp();
        (g.view([k, 1]) * g.view([1, k])).view([1, 1, k, k])
    }

    fn checkerboard(k: i64) -> Tensor {
        let r = Tensor::arange(k, (Kind::Int64, Device::Cpu));
        let s = (r.view([k, 1]) + r.view([1, k]))
            .remainder(2)
            .to_kind(Kind::Float)
            * 2.0
            - 1.0;
        s.view([1, 1, k, k])
    }

    #[test]
    fn a_smooth_filter_keeps_its_power_below_nyquist_and_a_checkerboard_does_not() {
        let smooth = above_nyquist(&gaussian(11, 3.0), 4, 64).double_value(&[0]);
        let checker = above_nyquist(&checkerboard(11), 4, 64).double_value(&[0]);
        assert!(smooth < 0.01, "gaussian: {smooth}");
        assert!(checker > 0.95, "checkerboard: {checker}");
        // Stride 1 folds nothing back.
        assert_eq!(
            above_nyquist(&checkerboard(11), 1, 64).double_value(&[0]),
            0.0
        );
        assert_eq!(
            above_nyquist(&Tensor::zeros([1, 3, 5, 5], FLOAT_CPU), 2, 32).double_value(&[0]),
            0.0
        );
    }

    #[test]
    fn dominant_frequencies_fall_in_their_thirds() {
        let low = gaussian(7, 2.0);
        let high = checkerboard(7);
        // A cosine of 0.25 cycles per pixel along x: the middle third.
        let x = Tensor::arange(7, FLOAT_CPU);
        let mid = (x * (2.0 * std::f64::consts::PI * 0.25))
            .cos()
            .view([1, 1, 1, 7])
            .expand([1, 1, 7, 7], true);
        let filters = Tensor::cat(&[low, mid.contiguous(), high], 0);
        let d = dominant_frequency(&filters, 64);
        let v = Vec::<f32>::try_from(&d).unwrap();
        assert!(
            v[0] < 0.05 && (v[1] - 0.25).abs() < 0.02 && v[2] > 0.6,
            "{v:?}"
        );
        assert_eq!(band_thirds(&d), [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
    }

    #[test]
    fn a_period_4_grid_scores_far_above_a_clean_projection() {
        tch::manual_seed(0);
        // Smooth random blobs (box-blurred twice, so no sidelobes to speak of).
        let noise = Tensor::randn([8, 3, 64, 64], FLOAT_CPU);
        let blur = |x: &Tensor| x.avg_pool2d([9, 9], [1, 1], [4, 4], false, true, None::<i64>);
        let clean = blur(&blur(&noise));
        let r = Tensor::arange(64, (Kind::Int64, Device::Cpu));
        let on = r.remainder(4).eq(0).to_kind(Kind::Float);
        let grid = (on.view([64, 1]) * on.view([1, 64])).view([1, 1, 64, 64]) * 0.2;
        let gridded = &clean + grid;
        let a = grid_score(&clean, 4, 64);
        let b = grid_score(&gridded, 4, 64);
        let white = grid_score(&Tensor::randn([8, 3, 64, 64], FLOAT_CPU), 4, 64);
        println!("clean {a}, gridded {b}, white {white}");
        assert!(a < 0.05, "clean: {a}");
        assert!(b > 0.25 && b > 10.0 * a, "gridded {b} vs clean {a}");
        assert!((white - 15.0 / 16.0).abs() < 0.02, "white: {white}");
        // Projections with no power (units that never fired) do not count.
        let with_empty = Tensor::cat(
            &[
                clean.shallow_clone(),
                Tensor::zeros([4, 3, 64, 64], FLOAT_CPU),
            ],
            0,
        );
        assert!((grid_score(&with_empty, 4, 64) - a).abs() < 1e-6);
        assert_eq!(grid_score(&clean, 1, 64), 0.0);
    }
}
