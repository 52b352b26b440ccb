//! Aliasing of a strided conv layer on real inputs (ZF section 4, Fig. 6):
//! the share of the layer's stride-1 output power that lies outside the
//! Nyquist band of its stride, i.e. the energy its subsampling folds back
//! onto lower frequencies.
//!
//! Why the output and not the filters: subsampling folds what the layer
//! produces, which is the filter's response times the input's spectrum.
//! Photographs put little power at high frequencies, so a white (random)
//! filter's output is mostly low frequency and folds little, while a filter
//! tuned to a frequency above the Nyquist band folds nearly all it passes.
//! A measure of the filters alone (their power above Nyquist) reads highest
//! for white noise and depends on the stride by construction.
//!
//! The null beside it ([`FoldedPower::add`] on [`crate::draws::shuffled_taps`]):
//! the same inputs through the same filters with their taps spatially
//! shuffled (same norms, structure destroyed). A layer reads above its null
//! when its filters' structure pushes power past Nyquist; near it when the
//! filters are as good as noise; below it when they are smooth.
//!
//! The output is taken without the bias and without each map's spatial
//! mean (constants add power at zero frequency only: the bias, and the
//! input's mean through the filter's sum, which on the non-negative inputs
//! of deeper layers would swamp the rest), and Hann-windowed
//! ([`crate::spectrum::hann`]).

use tch::{Kind, Tensor};

use crate::spectrum::{hann, outside_nyquist};

/// Per-filter power sums of one layer's stride-1 output over the inputs
/// added so far: outside the stride's Nyquist band, and in all.
#[derive(Debug, Default)]
pub struct FoldedPower {
    outside: Option<Tensor>,
    total: Option<Tensor>,
}

impl FoldedPower {
    /// Adds `input` `[N, C, H, W]` (the layer's input) convolved at stride 1
    /// with `weight` `[F, C / groups, k, k]`; `stride` is the layer's.
    /// One image at a time (an AlexNet conv1 output at stride 1 on one
    /// 224-pixel image is 96 x 214 x 214). An input smaller than the kernel
    /// (a layer that only works through its padding) adds nothing.
    pub fn add(&mut self, input: &Tensor, weight: &Tensor, groups: i64, stride: i64) {
        let w = weight.to_kind(Kind::Float).to_device(input.device());
        let (i, k) = (input.size(), w.size());
        if i[2] < k[2] || i[3] < k[3] {
            return;
        }
        for n in 0..i[0] {
            let x = input.narrow(0, n, 1).to_kind(Kind::Float);
            let y = x.conv2d(&w, None::<Tensor>, [1, 1], [0, 0], [1, 1], groups);
            let y = &y - y.mean_dim([2i64, 3].as_slice(), true, Kind::Float);
            let size = y.size();
            let (h, wd) = (size[2], size[3]);
            let device = y.device();
            let p = (&y * hann(h, wd, device))
                .fft_fft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward")
                .abs()
                .square();
            let mask = outside_nyquist(h, wd, stride, device);
            let sum = |t: &Tensor| {
                t.sum_dim_intlist([0i64, 2, 3].as_slice(), false, Kind::Double)
                    .to_device(tch::Device::Cpu)
            };
            let (out, all) = (sum(&(&p * mask)), sum(&p));
            self.outside = Some(match self.outside.take() {
                Some(o) => o + out,
                None => out,
            });
            self.total = Some(match self.total.take() {
                Some(t) => t + all,
                None => all,
            });
        }
    }

    /// Per filter, the share of its output power outside the Nyquist band
    /// (`None` for a filter whose output had no power, or before any input).
    pub fn shares(&self) -> Vec<Option<f64>> {
        let (Some(o), Some(t)) = (&self.outside, &self.total) else {
            return Vec::new();
        };
        let o = Vec::<f64>::try_from(o).unwrap_or_default();
        let t = Vec::<f64>::try_from(t).unwrap_or_default();
        o.iter()
            .zip(&t)
            .map(|(&o, &t)| (t > 1e-30).then(|| o / t))
            .collect()
    }

    /// The mean share over the filters whose output had power (`None` if
    /// none had).
    pub fn mean_share(&self) -> Option<f64> {
        let v: Vec<f64> = self.shares().into_iter().flatten().collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    /// One filter: a cosine of `f` cycles per pixel along x under a
    /// Gaussian, on all three channels.
    fn grating(f: f64, k: i64) -> Tensor {
        let r = Tensor::arange(k, FLOAT_CPU) - (k - 1) as f64 / 2.0;
        let g = (-(r.square()) / (2.0 * (k as f64 / 4.0).powi(2))).exp();
        let wave = (&r * (2.0 * std::f64::consts::PI * f)).cos();
        (g.view([k, 1]) * (g * wave).view([1, k]))
            .view([1, 1, k, k])
            .expand([1, 3, k, k], true)
            .contiguous()
    }

    #[test]
    fn a_grating_folds_back_at_a_stride_whose_band_it_exceeds_and_not_at_one_it_fits() {
        let input = Tensor::randn([2, 3, 48, 48], FLOAT_CPU);
        let share = |f: f64, stride: i64| {
            let mut p = FoldedPower::default();
            p.add(&input, &grating(f, 11), 1, stride);
            p.mean_share().unwrap()
        };
        // Nyquist is 0.125 at stride 4 and 0.25 at stride 2; on white
        // input the Gaussian's bandwidth (0.06) puts a tail past 0.25.
        assert!(share(0.2, 4) > 0.9, "{}", share(0.2, 4));
        assert!(share(0.2, 2) < 0.2, "{}", share(0.2, 2));
        assert!(share(0.05, 4) < 0.1, "{}", share(0.05, 4));
        assert_eq!(share(0.4, 1), 0.0);
        assert_eq!(FoldedPower::default().mean_share(), None);
        let mut small = FoldedPower::default();
        small.add(
            &Tensor::randn([1, 3, 4, 4], FLOAT_CPU),
            &grating(0.2, 5),
            1,
            2,
        );
        assert_eq!(small.mean_share(), None);
        let mut zero = FoldedPower::default();
        zero.add(&input, &Tensor::zeros([2, 3, 5, 5], FLOAT_CPU), 1, 2);
        assert_eq!(zero.shares(), [None, None]);
    }
}
