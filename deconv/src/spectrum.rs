//! Spectral building blocks of the architecture measures (ZF section 4,
//! Fig. 6), and layer 1's frequency coverage.
//!
//! Frequencies are in cycles per pixel, in `[-0.5, 0.5)`, from
//! `torch.fft.fftfreq`. Maps are Hann-windowed before their DFT where their
//! edges are not zero ([`hann`]), so that the jump from one edge to the
//! other (the DFT is periodic) adds no power at high frequencies.
//!
//! [`coverage`] answers ZF's "a mix of extremely high and low frequency
//! information, with little coverage of the mid frequencies": the pooled
//! power of the unit-norm bank in three radial bands, each divided by the
//! share white noise puts there, so that a white bank reads 1, 1, 1 (its
//! own null) and a bank that skips the middle band reads well under 1 there.

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

/// `[h, w]` frequency grids `(fy, fx)` of an `h x w` DFT.
pub fn frequencies(h: i64, w: i64, device: Device) -> (Tensor, Tensor) {
    let fy = Tensor::fft_fftfreq(h, 1.0, (Kind::Float, device));
    let fx = Tensor::fft_fftfreq(w, 1.0, (Kind::Float, device));
    (
        fy.view([h, 1]).expand([h, w], true),
        fx.view([1, w]).expand([h, w], true),
    )
}

/// `[h, w]` mask, 1 where `|fy|` or `|fx|` exceeds the Nyquist frequency
/// `1 / (2 stride)` of a subsampling by `stride`: what it folds back.
pub fn outside_nyquist(h: i64, w: i64, stride: i64, device: Device) -> Tensor {
    let (fy, fx) = frequencies(h, w, device);
    let nyquist = 0.5 / stride.max(1) as f64;
    fy.abs()
        .gt(nyquist)
        .logical_or(&fx.abs().gt(nyquist))
        .to_kind(Kind::Float)
}

/// `[h, w]` separable Hann window (periodic form, so its DFT has three taps).
pub fn hann(h: i64, w: i64, device: Device) -> Tensor {
    let win = |n: i64| Tensor::hann_window_periodic(n, true, (Kind::Float, device));
    win(h).view([h, 1]) * win(w).view([1, w])
}

/// The radial band edges of [`coverage`], cycles per pixel: low is below
/// `1/6`, middle below `1/3`, high the rest (up to the corners at 0.71).
pub const BAND_EDGES: [f64; 2] = [1.0 / 6.0, 1.0 / 3.0];

/// Layer 1's frequency coverage: the power of the `[F, C, k, k]` bank, each
/// filter scaled to unit norm, pooled over filters, in the low, middle and
/// high radial bands ([`BAND_EDGES`]) of an `n x n` DFT (at least the
/// kernel's size); each share divided
/// by white noise's (the band's share of the DFT's bins: 0.087, 0.262,
/// 0.651 for `n = 64`). White filters read `[1, 1, 1]`; smooth filters
/// read above 1 low and near 0 high; a bank without mid frequencies reads
/// well under 1 in the middle. A bank of zeros reads `[0, 0, 0]`.
pub fn coverage(weight: &Tensor, n: i64) -> [f64; 3] {
    let w = weight.to_kind(Kind::Float);
    // Never crop the filters.
    let size = w.size();
    let n = n.max(size[2]).max(size[3]);
    let norm = w
        .square()
        .sum_dim_intlist([1i64, 2, 3].as_slice(), true, Kind::Float)
        .sqrt()
        .clamp_min(1e-30);
    let p = power_spectra(&(w / norm), n).sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
    let (fy, fx) = frequencies(n, n, p.device());
    let radial = (fy.square() + fx.square()).sqrt();
    let bands = [
        radial.lt(BAND_EDGES[0]),
        radial
            .ge(BAND_EDGES[0])
            .logical_and(&radial.lt(BAND_EDGES[1])),
        radial.ge(BAND_EDGES[1]),
    ];
    let total = p.sum(Kind::Double).double_value(&[]);
    let bins = (n * n) as f64;
    bands.map(|band| {
        if total <= 0.0 {
            return 0.0;
        }
        let band = band.to_kind(Kind::Float);
        let share = (&p * &band).sum(Kind::Double).double_value(&[]) / total;
        let white = band.sum(Kind::Double).double_value(&[]) / bins;
        share / white
    })
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

    #[test]
    fn white_filters_cover_every_band_at_one_and_smooth_ones_only_the_low() {
        let white = Tensor::randn([256, 3, 11, 11], FLOAT_CPU);
        let w = coverage(&white, 64);
        assert!(w.iter().all(|r| (r - 1.0).abs() < 0.05), "white: {w:?}");
        let smooth = coverage(&gaussian(11, 2.0).expand([4, 3, 11, 11], true), 64);
        assert!(smooth[0] > 5.0 && smooth[2] < 0.01, "smooth: {smooth:?}");
        assert_eq!(
            coverage(&Tensor::zeros([2, 3, 5, 5], FLOAT_CPU), 32),
            [0.0; 3]
        );
    }

    #[test]
    fn the_nyquist_mask_keeps_the_central_cell_only() {
        let m = outside_nyquist(8, 8, 4, Device::Cpu);
        // fftfreq(8) = 0, 1/8, 2/8, 3/8, -4/8, ...: |f| <= 1/8 is inside.
        let inside = 64.0 - m.sum(Kind::Double).double_value(&[]);
        assert_eq!(inside, 9.0);
        assert_eq!(
            outside_nyquist(8, 8, 1, Device::Cpu)
                .sum(Kind::Double)
                .double_value(&[]),
            0.0
        );
    }
}
