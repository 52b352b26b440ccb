//! Titles, margins and legends around an image.

use image::{Rgb, RgbImage};

use crate::text::{draw_text, Label};
use crate::FigureError;

/// `image` with `title` written in a white band above it.
pub fn titled(image: &RgbImage, title: &str) -> Result<RgbImage, FigureError> {
    let band = 24u32;
    let mut out = with_margins(image, [0, band, 0, 0], [255, 255, 255]);
    draw_text(&mut out, &[Label::new(title, (4, 4), 15.0)])?;
    Ok(out)
}

/// `image` inside margins `[left, top, right, bottom]` of colour `bg`.
pub fn with_margins(image: &RgbImage, margins: [u32; 4], bg: [u8; 3]) -> RgbImage {
    let [l, t, r, b] = margins;
    let mut out = RgbImage::from_pixel(image.width() + l + r, image.height() + t + b, Rgb(bg));
    image::imageops::replace(&mut out, image, l as i64, t as i64);
    out
}

/// `top` above `bottom`, left-aligned, on white.
pub fn stacked(top: &RgbImage, bottom: &RgbImage) -> RgbImage {
    let w = top.width().max(bottom.width());
    let mut out = RgbImage::from_pixel(w, top.height() + bottom.height(), Rgb([255, 255, 255]));
    image::imageops::replace(&mut out, top, 0, 0);
    image::imageops::replace(&mut out, bottom, 0, top.height() as i64);
    out
}

/// A legend: a colour swatch and a name per entry, one per line, `height`
/// pixels tall (entries that do not fit are summarized in a last line).
pub fn legend(entries: &[(String, [u8; 3])], height: u32) -> Result<RgbImage, FigureError> {
    let (w, line) = (200u32, 18i32);
    let mut img = RgbImage::from_pixel(w, height.max(1), Rgb([255, 255, 255]));
    let fit = ((height as i32 - 4) / line).max(1) as usize;
    let shown = if entries.len() > fit {
        fit - 1
    } else {
        entries.len()
    };
    let mut labels = Vec::new();
    for (k, (name, color)) in entries.iter().take(shown).enumerate() {
        let y = 4 + k as i32 * line;
        for dy in 0..13 {
            for dx in 0..14 {
                let (x, yy) = (4 + dx, y as u32 + dy);
                if x < img.width() && yy < img.height() {
                    img.put_pixel(x, yy, Rgb(*color));
                }
            }
        }
        labels.push(Label::new(name.clone(), (24, y), 13.0));
    }
    if shown < entries.len() {
        let y = 4 + shown as i32 * line;
        labels.push(Label::new(
            format!("... and {} more", entries.len() - shown),
            (24, y),
            13.0,
        ));
    }
    draw_text(&mut img, &labels)?;
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_legends_draw_text_and_swatches() {
        let blank = RgbImage::from_pixel(100, 50, Rgb([255, 255, 255]));
        let t = titled(&blank, "probability").unwrap();
        assert_eq!(t.dimensions(), (100, 74));
        assert!(t.pixels().any(|p| p.0[0] < 100), "the title is drawn");
        let entries: Vec<(String, [u8; 3])> = (0..20)
            .map(|i| (format!("class {i}"), [200, 30, 30]))
            .collect();
        let l = legend(&entries, 100).unwrap();
        let red = l.pixels().filter(|p| p.0 == [200, 30, 30]).count();
        // 5 lines fit: 4 swatches and "... and 16 more".
        assert_eq!(red, 4 * 14 * 13, "{red}");
    }

    #[test]
    fn stacked_images_keep_their_pixels() {
        let a = RgbImage::from_pixel(3, 2, Rgb([1, 1, 1]));
        let b = RgbImage::from_pixel(5, 1, Rgb([2, 2, 2]));
        let s = stacked(&a, &b);
        assert_eq!(s.dimensions(), (5, 3));
        assert_eq!(
            (
                s.get_pixel(0, 0).0,
                s.get_pixel(4, 2).0,
                s.get_pixel(4, 0).0
            ),
            ([1; 3], [2; 3], [255; 3])
        );
    }

    #[test]
    fn margins_surround_the_image() {
        let img = RgbImage::from_pixel(3, 2, Rgb([9, 9, 9]));
        let m = with_margins(&img, [1, 2, 3, 4], [255, 255, 255]);
        assert_eq!(m.dimensions(), (7, 8));
        assert_eq!(m.get_pixel(1, 2).0, [9, 9, 9]);
        assert_eq!(m.get_pixel(0, 0).0, [255, 255, 255]);
    }
}
