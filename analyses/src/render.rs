//! Pictures of the occlusion maps: a value per occluder position painted
//! over the image area (each pixel takes the position whose square is
//! centred nearest), as a heat map or as a class map.

use image::{Rgb, RgbImage};
use tch::{Kind, Tensor};

/// Where the occluder squares were: their top and left edges and side.
#[derive(Debug, Clone)]
pub struct Positions<'a> {
    /// Top edge of each row's square.
    pub tops: &'a [i64],
    /// Left edge of each column's square.
    pub lefts: &'a [i64],
    /// The square's side.
    pub size: i64,
    /// Image height.
    pub height: u32,
    /// Image width.
    pub width: u32,
}

fn nearest(edges: &[i64], size: i64, p: i64) -> usize {
    edges
        .iter()
        .enumerate()
        .min_by_key(|(_, &e)| (e + size / 2 - p).abs())
        .map_or(0, |(i, _)| i)
}

impl Positions<'_> {
    /// Paints pixel `(x, y)` with `color(row, col)` of its nearest position.
    pub fn paint(&self, color: impl Fn(usize, usize) -> [u8; 3]) -> RgbImage {
        let rows: Vec<usize> = (0..self.height as i64)
            .map(|y| nearest(self.tops, self.size, y))
            .collect();
        let cols: Vec<usize> = (0..self.width as i64)
            .map(|x| nearest(self.lefts, self.size, x))
            .collect();
        RgbImage::from_fn(self.width, self.height, |x, y| {
            Rgb(color(rows[y as usize], cols[x as usize]))
        })
    }
}

/// A dark-to-bright colour ramp (black, purple, red, yellow, white) at
/// `t` in `[0, 1]`.
pub fn ramp(t: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 5] = [
        [0.0, 0.0, 0.0],
        [90.0, 20.0, 120.0],
        [210.0, 50.0, 40.0],
        [250.0, 200.0, 40.0],
        [255.0, 255.0, 255.0],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let c = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f).round() as u8;
    [c(0), c(1), c(2)]
}

/// `rows x cols` values (row-major) as a heat map: the smallest black, the
/// largest white (or `range` if given, e.g. `(0, 1)` for probabilities).
pub fn heat_map(
    values: &[f64],
    cols: usize,
    at: &Positions,
    range: Option<(f64, f64)>,
) -> RgbImage {
    let (lo, hi) = range.unwrap_or_else(|| {
        values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            })
    });
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    at.paint(|r, c| ramp((values[r * cols + c] - lo) / span))
}

/// A distinct colour per class (hues spaced by the golden angle).
pub fn class_color(class: i64) -> [u8; 3] {
    let h = (class as f64 * 0.618_033_988_75).fract() * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let s = |v: f64| (40.0 + 200.0 * v).round() as u8;
    [s(r), s(g), s(b)]
}

/// `rows x cols` classes as a class map.
pub fn class_map(classes: &[i64], cols: usize, at: &Positions) -> RgbImage {
    at.paint(|r, c| class_color(classes[r * cols + c]))
}

/// `[3, H, W]` values in `[0, 1]` as an RGB image.
pub fn to_rgb(pixels: &Tensor) -> RgbImage {
    let size = pixels.size();
    let (h, w) = (size[1] as u32, size[2] as u32);
    let bytes = (pixels.clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .contiguous()
        .flatten(0, -1);
    let bytes = Vec::<u8>::try_from(&bytes).unwrap_or_default();
    RgbImage::from_raw(w, h, bytes).unwrap_or_else(|| RgbImage::new(w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pixel_takes_the_nearest_square_and_the_ramp_runs_dark_to_bright() {
        let at = Positions {
            tops: &[0, 4],
            lefts: &[0, 4],
            size: 4,
            height: 8,
            width: 8,
        };
        let img = heat_map(&[0.0, 1.0, 2.0, 3.0], 2, &at, None);
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(7, 7).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(6, 1).0, ramp(1.0 / 3.0));
        assert_ne!(class_color(1), class_color(2));
    }
}
