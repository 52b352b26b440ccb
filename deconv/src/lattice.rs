//! Lattice artefacts in projections (the grid of ZF Fig. 6 d): how much of
//! a layer-2 projection's variation the pixel phase of the stride lattice
//! below it explains.
//!
//! A transposed convolution of stride `s` places its filters on a lattice
//! of period `s`. Its coefficients are rectified (non-negative), so their
//! sum reaches every pixel through the same filter taps at the same phase
//! `(y mod s, x mod s)`: where the filters have power at the lattice's
//! frequencies (`(i / s, j / s)`, e.g. black-and-white high-frequency
//! filters), pixels of one phase are systematically brighter or darker than
//! the others, the visible grid; smooth filters (and filters whose power
//! lies between the lattice's frequencies) leave the phases alike.
//!
//! [`lattice_contrast`] measures it as the share of a projection's variance
//! (per channel, about its mean) that lies between the `s x s` phase means:
//! the analysis-of-variance share of the phase, which equals (Parseval over
//! the phases) the share of its power at the lattice's frequencies other
//! than zero. 0 to 1: about `1 / M` for noise (`M` pixels per phase: 0.007
//! for a 48-pixel crop at period 4), 0 for smooth projections, 1 for a pure
//! lattice pattern. Its null is the same share at a period the network does
//! not have (`s + 1`): each of its phases mixes all of the lattice's, so a
//! grid of period `s` reads near 0 there, while whatever else a phase split
//! explains on these projections (their envelope, their size) reads alike.

use tch::{Kind, Tensor};

/// The lattice contrast of projections and its null.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatticeContrast {
    /// The phase share at the stride's period.
    pub grid: f64,
    /// The same at period `s + 1`.
    pub null: f64,
}

/// The lattice contrast of `[T, C, H, W]` projections at `period` (see the
/// module doc), mean over the projections with any variation; `None` when
/// none has, `period < 2`, or the projections are smaller than `period + 1`.
pub fn lattice_contrast(projections: &Tensor, period: i64) -> Option<LatticeContrast> {
    let size = projections.size();
    if period < 2 || size[0] == 0 || size[2].min(size[3]) < period + 1 {
        return None;
    }
    let x = projections.to_kind(Kind::Double);
    let varied = x
        .flatten(2, -1)
        .var_dim([2i64].as_slice(), false, false)
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
        .gt(1e-30)
        .nonzero()
        .squeeze_dim(1);
    if varied.numel() == 0 {
        return None;
    }
    let x = x.index_select(0, &varied);
    Some(LatticeContrast {
        grid: phase_share(&x, period),
        null: phase_share(&x, period + 1),
    })
}

/// Mean over `[T, C, H, W]` projections of the share of their variance
/// (channels pooled) between the `period x period` phase means, on the
/// top-left crop whose sides are multiples of `period`.
fn phase_share(x: &Tensor, period: i64) -> f64 {
    let size = x.size();
    let (t, c) = (size[0], size[1]);
    let (h, w) = (size[2] / period * period, size[3] / period * period);
    let x = x.narrow(2, 0, h).narrow(3, 0, w);
    let total = x
        .flatten(2, -1)
        .var_dim([2i64].as_slice(), false, false)
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
    let phases = x
        .reshape([t, c, h / period, period, w / period, period])
        .mean_dim([2i64, 4].as_slice(), false, Kind::Double)
        .flatten(2, -1);
    let between = phases
        .var_dim([2i64].as_slice(), false, false)
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
    (between / total.clamp_min(1e-300))
        .mean(Kind::Double)
        .double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    #[test]
    fn noise_reads_near_zero_at_any_period_and_a_lattice_reads_high_at_its_own() {
        tch::manual_seed(0);
        let noise = Tensor::randn([16, 3, 64, 64], FLOAT_CPU);
        for period in [2, 3, 4, 5] {
            let v = lattice_contrast(&noise, period).unwrap();
            assert!(v.grid < 0.03 && v.null < 0.03, "noise at {period}: {v:?}");
        }
        // Dots every 4 pixels, plus as much noise.
        let r = Tensor::arange(64, (Kind::Int64, tch::Device::Cpu));
        let on = r.remainder(4).eq(0).to_kind(Kind::Float);
        let dots = (on.view([64, 1]) * on.view([1, 64])).view([1, 1, 64, 64]);
        let gridded = dots * 4.0 + Tensor::randn([16, 3, 64, 64], FLOAT_CPU);
        let v = lattice_contrast(&gridded, 4).unwrap();
        assert!(v.grid > 0.3 && v.null < 0.03, "{v:?}");
        // A period-2 checkerboard is a period-4 lattice pattern too.
        let checker = (r.view([64, 1]) + r.view([1, 64]))
            .remainder(2)
            .to_kind(Kind::Float);
        let v = lattice_contrast(&checker.view([1, 1, 64, 64]), 4).unwrap();
        assert!(v.grid > 0.99 && v.null < 0.05, "{v:?}");
        // Smooth projections read near 0 and at their null.
        let k = Tensor::arange(13, FLOAT_CPU) - 6.0;
        let g = (-(k.square()) / 8.0).exp();
        let g = (g.view([13, 1]) * g.view([1, 13]))
            .view([1, 1, 13, 13])
            .repeat([3, 1, 1, 1]);
        let smooth = noise.conv2d(&g, None::<Tensor>, [1, 1], [6, 6], [1, 1], 3);
        let s = lattice_contrast(&smooth, 4).unwrap();
        assert!(s.grid < 0.01 && (s.grid - s.null).abs() < 0.01, "{s:?}");
        assert_eq!(
            lattice_contrast(&Tensor::zeros([2, 3, 8, 8], FLOAT_CPU), 2),
            None
        );
        assert_eq!(lattice_contrast(&noise, 1), None);
    }
}
