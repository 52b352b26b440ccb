//! A colour bar: the palette of a heat map from its lowest to its highest
//! value, with both values and the unit written under it, so a heat map
//! says what its colours mean.

use image::{Rgb, RgbImage};

use crate::text::{draw_text, text_width, Label};
use crate::FigureError;

/// A horizontal bar `width` pixels wide: `palette(t)` for `t` from 0 (left,
/// `low`) to 1 (right, `high`), 12 pixels tall, with `low`, `high` and
/// `unit` written under it (34 pixels in all).
pub fn colour_bar(
    palette: &dyn Fn(f64) -> [u8; 3],
    low: f64,
    high: f64,
    unit: &str,
    width: u32,
) -> Result<RgbImage, FigureError> {
    let (bar, height) = (12u32, 34u32);
    let width = width.max(40);
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let inner = width - 8;
    for x in 0..inner {
        let t = x as f64 / (inner - 1).max(1) as f64;
        let c = palette(t);
        for y in 2..2 + bar {
            img.put_pixel(4 + x, y, Rgb(c));
        }
    }
    let (lo, hi) = (number(low), number(high));
    let hi_x = (4 + inner) as i32 - text_width(&hi, 11.0) as i32;
    let unit_x = (width as i32 - text_width(unit, 11.0) as i32) / 2;
    draw_text(
        &mut img,
        &[
            Label::new(lo, (4, 17), 11.0),
            Label::new(hi, (hi_x, 17), 11.0),
            Label::new(unit, (unit_x, 17), 11.0),
        ],
    )?;
    Ok(img)
}

/// A value as a bar writes it: three significant digits.
fn number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_runs_the_palette_left_to_right_and_writes_its_range() {
        let grey = |t: f64| {
            let v = (t * 255.0).round() as u8;
            [v, v, v]
        };
        let img = colour_bar(&grey, 0.0, 1.0, "P(class)", 200).unwrap();
        assert_eq!(img.dimensions(), (200, 34));
        assert_eq!(img.get_pixel(4, 5).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(195, 5).0, [255, 255, 255]);
        assert!(img.get_pixel(100, 5).0[0].abs_diff(128) <= 2);
        // Text under the bar.
        let dark = (17..34)
            .flat_map(|y| (0..200).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
            .count();
        assert!(dark > 30, "{dark}");
        assert_eq!(number(0.5), "0.500");
        assert_eq!(number(1234.0), "1234");
        assert_eq!(number(2e-5), "2.00e-5");
    }
}
