//! The built-in font and text drawn onto an image.

use std::sync::Once;

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{drawing, FigureError};

static FONT: Once = Once::new();

/// Registers the built-in DejaVu Sans as plotters' "sans-serif" (once);
/// every function here calls it, and so must code that draws with plotters
/// directly.
pub fn register_font() {
    FONT.call_once(|| {
        // The bytes are a valid TrueType font, checked by the tests.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../fonts/DejaVuSans.ttf"),
        );
    });
}

/// A piece of text to draw: where (its top-left corner, in pixels), how
/// big (the font size in pixels), in which colour, and on which background
/// box (none: the image shows through).
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// The text.
    pub text: String,
    /// Top-left corner.
    pub at: (i32, i32),
    /// Font size, pixels.
    pub size: f64,
    /// Text colour.
    pub color: [u8; 3],
    /// A filled box behind the text (padded by 1 pixel).
    pub background: Option<[u8; 3]>,
}

impl Label {
    /// Black text of `size` at `at`, no box.
    pub fn new(text: impl Into<String>, at: (i32, i32), size: f64) -> Label {
        Label {
            text: text.into(),
            at,
            size,
            color: [0, 0, 0],
            background: None,
        }
    }
}

/// Draws `labels` onto `image` (text past the edges is clipped).
pub fn draw_text(image: &mut RgbImage, labels: &[Label]) -> Result<(), FigureError> {
    register_font();
    let (w, h) = image.dimensions();
    let root = BitMapBackend::with_buffer(image.as_mut(), (w, h)).into_drawing_area();
    for label in labels {
        let font = ("sans-serif", label.size).into_font();
        if let Some([r, g, b]) = label.background {
            let (tw, th) = font.box_size(&label.text).map_err(drawing)?;
            let (x, y) = label.at;
            root.draw(&Rectangle::new(
                [(x - 1, y - 1), (x + tw as i32 + 1, y + th as i32 + 1)],
                RGBColor(r, g, b).filled(),
            ))
            .map_err(drawing)?;
        }
        let [r, g, b] = label.color;
        let style = font
            .color(&RGBColor(r, g, b))
            .pos(Pos::new(HPos::Left, VPos::Top));
        root.draw(&Text::new(label.text.clone(), label.at, style))
            .map_err(drawing)?;
    }
    root.present().map_err(drawing)
}

/// The width in pixels of `text` at font size `size`.
pub fn text_width(text: &str, size: f64) -> u32 {
    register_font();
    let font = ("sans-serif", size).into_font();
    font.box_size(text).map(|(w, _)| w).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_where_asked_on_its_box() {
        let mut img = RgbImage::from_pixel(80, 30, image::Rgb([255, 255, 255]));
        let label = Label {
            background: Some([0, 0, 200]),
            color: [255, 255, 255],
            ..Label::new("12.5", (40, 8), 12.0)
        };
        draw_text(&mut img, &[label]).unwrap();
        let blue = img.pixels().filter(|p| p.0 == [0, 0, 200]).count();
        assert!(blue > 100, "the box: {blue}");
        // Nothing left of the box.
        assert!(img
            .enumerate_pixels()
            .all(|(x, _, p)| x >= 38 || p.0 == [255, 255, 255]));
        let w = text_width("12.5", 12.0);
        assert!((15..40).contains(&w), "{w}");
        assert!(text_width("12.5 and more", 12.0) > w);
    }
}
