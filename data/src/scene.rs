//! The synthetic set's `clean` pictures: the same ten classes as the
//! `noisy` ones, drawn so that a Deconvnet projection has structure to show.
//! No per-pixel noise (a projection through the switches would reproduce
//! it); edges anti-aliased (3x3 samples per pixel); the class textures
//! (stripes, checker, dots) at a random scale each, over a background of
//! a soft colour gradient and clutter: flat shapes and patches of gratings
//! with periods from 4 to 24 pixels at random orientations, so that layers
//! see edges, corners and textures at several scales. The class object is
//! the light one, with a gentle shading across it.

use image::RgbImage;

use crate::rng::SplitMix64;
use crate::synth::inside;

/// A piece of clutter: a rotated rectangle or a disc, flat or with a grating.
struct Clutter {
    centre: (f64, f64),
    half: (f64, f64),
    rotation: (f64, f64),
    disc: bool,
    colour: [f64; 3],
    /// `(period in pixels, second colour)` of a grating across the shape.
    grating: Option<(f64, [f64; 3])>,
}

impl Clutter {
    fn draw(rng: &mut SplitMix64, width: f64, height: f64) -> Clutter {
        let side = width.min(height);
        let grating = (rng.next_f64() < 0.5).then(|| (rng.uniform(4.0, 24.0), mid_colour(rng)));
        let angle = rng.uniform(0.0, std::f64::consts::TAU);
        Clutter {
            centre: (rng.uniform(0.0, width), rng.uniform(0.0, height)),
            half: (rng.uniform(0.04, 0.2) * side, rng.uniform(0.04, 0.2) * side),
            rotation: angle.sin_cos(),
            disc: rng.next_f64() < 0.3,
            colour: mid_colour(rng),
            grating,
        }
    }

    /// Its colour at `(x, y)`, if it covers the point.
    fn at(&self, x: f64, y: f64) -> Option<[f64; 3]> {
        let (sin, cos) = self.rotation;
        let (dx, dy) = (x - self.centre.0, y - self.centre.1);
        let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
        let (a, b) = self.half;
        let covered = if self.disc {
            (u / a).powi(2) + (v / a).powi(2) < 1.0
        } else {
            u.abs() < a && v.abs() < b
        };
        if !covered {
            return None;
        }
        Some(match self.grating {
            Some((period, other)) if (u / period).rem_euclid(1.0) < 0.5 => other,
            _ => self.colour,
        })
    }
}

fn mid_colour(rng: &mut SplitMix64) -> [f64; 3] {
    [0; 3].map(|_| rng.uniform(20.0, 150.0))
}

/// Renders one `clean` picture of `class`.
pub fn render_clean(class: usize, width: u32, height: u32, rng: &mut SplitMix64) -> RgbImage {
    let (w, h) = (width as f64, height as f64);
    let dark = |rng: &mut SplitMix64| [0; 3].map(|_| rng.uniform(0.0, 110.0));
    let (bg0, bg1) = (dark(rng), dark(rng));
    let (gs, gc) = rng.uniform(0.0, std::f64::consts::TAU).sin_cos();
    let fg = [0; 3].map(|_| rng.uniform(150.0, 255.0));
    let side = w.min(h);
    let radius = side * rng.uniform(0.22, 0.42);
    let cx = rng.uniform(radius * 0.8, w - radius * 0.8);
    let cy = rng.uniform(radius * 0.8, h - radius * 0.8);
    let (sin, cos) = rng.uniform(0.0, std::f64::consts::TAU).sin_cos();
    let frequency = rng.uniform(0.7, 1.6);
    let clutter: Vec<Clutter> = (0..rng.below(5) + 2)
        .map(|_| Clutter::draw(rng, w, h))
        .collect();
    let diagonal = (w * w + h * h).sqrt();
    let colour_at = |x: f64, y: f64| -> [f64; 3] {
        let (dx, dy) = ((x - cx) / radius, (y - cy) / radius);
        let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
        if inside(class, u, v, frequency) {
            // Lit from one side: 0.8 to 1 of the colour across the object.
            let shade = 0.9 + 0.1 * u.clamp(-1.0, 1.0);
            return fg.map(|c| c * shade);
        }
        if let Some(c) = clutter.iter().rev().find_map(|k| k.at(x, y)) {
            return c;
        }
        let t = ((x - w / 2.0) * gc + (y - h / 2.0) * gs) / diagonal + 0.5;
        [0, 1, 2].map(|i| bg0[i] + (bg1[i] - bg0[i]) * t)
    };
    const SAMPLES: [f64; 3] = [1.0 / 6.0, 0.5, 5.0 / 6.0];
    RgbImage::from_fn(width, height, |x, y| {
        let mut sum = [0.0; 3];
        for oy in SAMPLES {
            for ox in SAMPLES {
                let c = colour_at(x as f64 + ox, y as f64 + oy);
                for i in 0..3 {
                    sum[i] += c[i];
                }
            }
        }
        image::Rgb(sum.map(|s| (s / 9.0).round().clamp(0.0, 255.0) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean absolute difference between horizontal neighbours, and the
    /// fraction of neighbour pairs that differ at all.
    fn roughness(img: &RgbImage) -> (f64, f64) {
        let (mut total, mut differ, mut n) = (0.0, 0usize, 0usize);
        for y in 0..img.height() {
            for x in 1..img.width() {
                let (a, b) = (img.get_pixel(x - 1, y), img.get_pixel(x, y));
                let d: f64 = (0..3).map(|i| (a[i] as f64 - b[i] as f64).abs()).sum();
                total += d;
                differ += usize::from(d > 3.0);
                n += 1;
            }
        }
        (total / n as f64, differ as f64 / n as f64)
    }

    #[test]
    fn clean_pictures_are_flat_between_their_edges_and_noisy_ones_are_not() {
        for class in 0..10 {
            let clean = render_clean(class, 128, 96, &mut SplitMix64::new(class as u64));
            let noisy = crate::synth::render(class, 128, 96, &mut SplitMix64::new(class as u64));
            let (_, clean_differ) = roughness(&clean);
            let (_, noisy_differ) = roughness(&noisy);
            // Clean: most neighbours equal but for the gradient's slow steps
            // and the edges; noisy: nearly every pair differs.
            assert!(
                clean_differ < 0.3 && noisy_differ > 0.8,
                "class {class}: clean {clean_differ}, noisy {noisy_differ}"
            );
        }
    }
}
