//! The synthetic set's `leaves` pictures: the class object of the `clean`
//! style over a dead-leaves background. Dead leaves (Matheron; Lee, Mumford
//! & Huang 2001): opaque discs fall on the picture one over another, with
//! radii drawn from a density proportional to `r^-3`, here between 1 and a
//! quarter of the shorter side. In the model's scale-invariant limit that
//! law gives photographs' statistics (a power spectrum falling as `1/f^2`);
//! with the radii bounded and the class object on top, what is measured
//! here (a test) is that the pictures hold more of their variation at fine
//! scales than the `clean` style's, with sharp edges at every scale: power
//! at high frequencies for a strided first layer to fold, which the clean
//! style's gradients and few pieces of clutter lack. Anti-aliased like
//! `clean` (3x3 samples per pixel); no pixel noise.

use image::RgbImage;

use crate::rng::SplitMix64;
use crate::synth::inside;

/// Samples per pixel along each axis.
const SUPER: usize = 3;

/// A radius from the density `∝ r^-3` on `[lo, hi]` (inverse transform).
fn radius(rng: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
    let (a, b) = (lo.powi(-2), hi.powi(-2));
    (a - rng.next_f64() * (a - b)).powf(-0.5)
}

/// Renders one `leaves` picture of `class`.
pub fn render_leaves(class: usize, width: u32, height: u32, rng: &mut SplitMix64) -> RgbImage {
    let (w, h) = (width as usize * SUPER, height as usize * SUPER);
    let s = SUPER as f64;
    let side = width.min(height) as f64;
    // Dark-to-mid colours for the leaves, light ones for the object (the
    // demo's contrast): the class stays the brightest thing in the picture.
    let mut samples = vec![[0f64; 3]; w * h];
    let base = [0; 3].map(|_| rng.uniform(20.0, 120.0));
    samples.iter_mut().for_each(|p| *p = base);
    // Enough leaves to cover the picture several times over: the mean
    // leaf covers about 24 pixels at a side of 192, and these cover the
    // picture's area about six times (the base shows through e^-6 of it).
    let leaves = (48.0 * width as f64 * height as f64 / side).round() as usize;
    for _ in 0..leaves {
        let r = radius(rng, 1.0, side / 4.0) * s;
        let (cx, cy) = (rng.uniform(0.0, w as f64), rng.uniform(0.0, h as f64));
        let colour = [0; 3].map(|_| rng.uniform(15.0, 140.0));
        let (y0, y1) = (
            (cy - r).max(0.0) as usize,
            ((cy + r).ceil() as usize).min(h),
        );
        let (x0, x1) = (
            (cx - r).max(0.0) as usize,
            ((cx + r).ceil() as usize).min(w),
        );
        for y in y0..y1 {
            let dy = y as f64 + 0.5 - cy;
            for x in x0..x1 {
                let dx = x as f64 + 0.5 - cx;
                if dx * dx + dy * dy < r * r {
                    samples[y * w + x] = colour;
                }
            }
        }
    }
    // The class object on top, placed and shaded as in the clean style.
    let fg = [0; 3].map(|_| rng.uniform(150.0, 255.0));
    let radius = side * rng.uniform(0.22, 0.42);
    let (wf, hf) = (width as f64, height as f64);
    let cx = rng.uniform(radius * 0.8, wf - radius * 0.8);
    let cy = rng.uniform(radius * 0.8, hf - radius * 0.8);
    let (sin, cos) = rng.uniform(0.0, std::f64::consts::TAU).sin_cos();
    let frequency = rng.uniform(0.7, 1.6);
    for y in 0..h {
        for x in 0..w {
            let (px, py) = ((x as f64 + 0.5) / s, (y as f64 + 0.5) / s);
            let (dx, dy) = ((px - cx) / radius, (py - cy) / radius);
            let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
            if inside(class, u, v, frequency) {
                let shade = 0.9 + 0.1 * u.clamp(-1.0, 1.0);
                samples[y * w + x] = fg.map(|c| c * shade);
            }
        }
    }
    RgbImage::from_fn(width, height, |x, y| {
        let mut sum = [0.0; 3];
        for oy in 0..SUPER {
            for ox in 0..SUPER {
                let c = samples[(y as usize * SUPER + oy) * w + x as usize * SUPER + ox];
                (0..3).for_each(|i| sum[i] += c[i]);
            }
        }
        let n = (SUPER * SUPER) as f64;
        image::Rgb(sum.map(|v| (v / n).round().clamp(0.0, 255.0) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slope of log D(d) against log d, D(d) the mean squared
    /// difference of the grey values `d` pixels apart (horizontally and
    /// vertically), over d = 1, 2, 4, 8, 16: the lower, the more of the
    /// pictures' variation lies at fine scales (2 for smooth ramps, 0 for
    /// white noise).
    fn structure_slope(images: &[RgbImage]) -> f64 {
        let lags = [1usize, 2, 4, 8, 16];
        let d: Vec<f64> = lags
            .iter()
            .map(|&lag| {
                let (mut sum, mut n) = (0.0, 0.0);
                for img in images {
                    let grey = |x: u32, y: u32| {
                        let p = img.get_pixel(x, y);
                        (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0
                    };
                    let l = lag as u32;
                    for y in 0..img.height() - l {
                        for x in 0..img.width() - l {
                            let g = grey(x, y);
                            sum += (grey(x + l, y) - g).powi(2) + (grey(x, y + l) - g).powi(2);
                            n += 2.0;
                        }
                    }
                }
                sum / n
            })
            .collect();
        let xs: Vec<f64> = lags.iter().map(|&l| (l as f64).ln()).collect();
        let ys: Vec<f64> = d.iter().map(|v| v.ln()).collect();
        let (mx, my) = (xs.iter().sum::<f64>() / 5.0, ys.iter().sum::<f64>() / 5.0);
        let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let var: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        cov / var
    }

    #[test]
    fn leaves_pictures_vary_more_at_fine_scales_than_clean_ones() {
        let draw = |f: fn(usize, u32, u32, &mut SplitMix64) -> RgbImage| -> Vec<RgbImage> {
            (0..6)
                .map(|i| f(i % 10, 160, 120, &mut SplitMix64::new(40 + i as u64)))
                .collect()
        };
        // More of the leaves pictures' variation is at fine scales: D(d)
        // grows slower with d than the clean style's, whose few large
        // shapes and gradients put theirs at coarse scales (measured 0.84
        // against 1.19 for these six pictures each).
        let leaves = structure_slope(&draw(render_leaves));
        let clean = structure_slope(&draw(crate::scene::render_clean));
        assert!((0.5..1.05).contains(&leaves), "leaves slope {leaves}");
        assert!(
            clean > leaves + 0.15,
            "clean slope {clean}, leaves {leaves}"
        );
    }

    #[test]
    fn radii_follow_the_inverse_cube_law() {
        // P(r > x) for density ∝ r^-3 on [1, 40]: (x^-2 - 40^-2) / (1 - 40^-2).
        let mut rng = SplitMix64::new(5);
        let r: Vec<f64> = (0..100_000).map(|_| radius(&mut rng, 1.0, 40.0)).collect();
        assert!(r.iter().all(|&v| (1.0..=40.0).contains(&v)));
        for x in [1.5f64, 3.0, 10.0] {
            let want = (x.powi(-2) - 40f64.powi(-2)) / (1.0 - 40f64.powi(-2));
            let got = r.iter().filter(|&&v| v > x).count() as f64 / r.len() as f64;
            assert!((got - want).abs() < 0.005, "P(r > {x}): {got} vs {want}");
        }
    }
}
