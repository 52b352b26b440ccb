//! Figures drawn in Rust (plotters, into memory; the DejaVu Sans font is
//! built in, so no system fonts are needed): the invariance figure laid out
//! like Zeiler & Fergus's Fig. 5, columns vertical translation / scale /
//! rotation, rows layer-1 distance / layer-7 distance / class probability,
//! one curve per image.

use std::sync::Once;

use image::RgbImage;
use plotters::prelude::*;

use crate::invariance::InvariancePoint;
use crate::AnalysisError;

static FONT: Once = Once::new();

/// Registers the built-in font as plotters' "sans-serif" (once).
fn font() {
    FONT.call_once(|| {
        // The bytes are a valid TrueType font, checked by the tests.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../fonts/DejaVuSans.ttf"),
        );
    });
}

fn drawing<E: std::fmt::Debug>(e: E) -> AnalysisError {
    AnalysisError::Config(format!("drawing a figure: {e:?}"))
}

const COLUMNS: [(&str, &str); 3] = [
    ("translate_y", "vertical translation (pixels)"),
    ("scale", "scale (ratio)"),
    ("rotate", "rotation (degrees)"),
];
const ROWS: [&str; 3] = ["layer 1 distance", "layer 7 distance", "P(class)"];

/// The invariance figure (1260 x 900) for `points` of images named `names`.
pub fn invariance_figure(
    points: &[InvariancePoint],
    names: &[String],
) -> Result<RgbImage, AnalysisError> {
    font();
    let (w, h) = (1260u32, 900u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let panels = root.split_evenly((3, 3));
        for (k, panel) in panels.iter().enumerate() {
            let (row, (kind, x_desc)) = (k / 3, COLUMNS[k % 3]);
            let value = |p: &InvariancePoint| match row {
                0 => p.layer1,
                1 => p.layer7,
                _ => p.probability,
            };
            let mine: Vec<&InvariancePoint> =
                points.iter().filter(|p| p.warp.kind() == kind).collect();
            let (x0, x1) = mine
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                    (a.min(p.warp.amount()), b.max(p.warp.amount()))
                });
            let (x0, x1) = if x0.is_finite() && x1 > x0 {
                (x0, x1)
            } else {
                (x0.min(0.0), x0.max(0.0) + 1.0)
            };
            let y1 = match row {
                2 => 1.0,
                _ => mine.iter().map(|p| value(p)).fold(0.0, f64::max).max(1e-3) * 1.05,
            };
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{} / {}", ROWS[row], x_desc.split(' ').next().unwrap_or("")),
                    ("sans-serif", 17),
                )
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(x0..x1, 0f64..y1)
                .map_err(drawing)?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(ROWS[row])
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 13))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(drawing)?;
            for (i, name) in names.iter().enumerate() {
                let color = Palette99::pick(i);
                let series: Vec<(f64, f64)> = mine
                    .iter()
                    .filter(|p| p.image == i)
                    .map(|p| (p.warp.amount(), value(p)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(series, color.stroke_width(2)))
                    .map_err(drawing)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            if k == 0 {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 12))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(drawing)?;
            }
        }
        root.present().map_err(drawing)?;
    }
    RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| AnalysisError::Config("figure buffer of the wrong size".into()))
}

/// `image` with `title` written in a white band above it.
pub fn titled(image: &RgbImage, title: &str) -> Result<RgbImage, AnalysisError> {
    font();
    let band = 24u32;
    let (w, h) = (image.width(), image.height() + band);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.draw(&Text::new(
            title.to_string(),
            (4, 4),
            ("sans-serif", 15).into_font().color(&BLACK),
        ))
        .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    let mut out = RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| AnalysisError::Config("figure buffer of the wrong size".into()))?;
    image::imageops::replace(&mut out, image, 0, band as i64);
    Ok(out)
}

/// A legend: a colour swatch and a name per entry, one per line, `height`
/// pixels tall (entries that do not fit are summarized in a last line).
pub fn legend(entries: &[(String, [u8; 3])], height: u32) -> Result<RgbImage, AnalysisError> {
    font();
    let (w, line) = (200u32, 18i32);
    let mut buf = vec![255u8; (w * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, height)).into_drawing_area();
        let fit = ((height as i32 - 4) / line).max(1) as usize;
        let shown = if entries.len() > fit {
            fit - 1
        } else {
            entries.len()
        };
        for (k, (name, [r, g, b])) in entries.iter().take(shown).enumerate() {
            let y = 4 + k as i32 * line;
            root.draw(&Rectangle::new(
                [(4, y), (18, y + 13)],
                RGBColor(*r, *g, *b).filled(),
            ))
            .map_err(drawing)?;
            root.draw(&Text::new(
                name.clone(),
                (24, y),
                ("sans-serif", 13).into_font().color(&BLACK),
            ))
            .map_err(drawing)?;
        }
        if shown < entries.len() {
            let y = 4 + shown as i32 * line;
            let more = format!("... and {} more", entries.len() - shown);
            root.draw(&Text::new(
                more,
                (24, y),
                ("sans-serif", 13).into_font().color(&BLACK),
            ))
            .map_err(drawing)?;
        }
        root.present().map_err(drawing)?;
    }
    RgbImage::from_raw(w, height, buf)
        .ok_or_else(|| AnalysisError::Config("figure buffer of the wrong size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Warp;

    #[test]
    fn the_figure_has_curves_and_text() {
        let points: Vec<InvariancePoint> = [
            Warp::TranslateY(-10.0),
            Warp::TranslateY(10.0),
            Warp::Scale(1.0),
            Warp::Scale(1.5),
            Warp::Rotate(0.0),
            Warp::Rotate(90.0),
        ]
        .iter()
        .enumerate()
        .map(|(k, &warp)| InvariancePoint {
            image: 0,
            warp,
            layer1: k as f64 * 0.1,
            layer7: 0.05,
            probability: 0.5,
            top_class: 0,
        })
        .collect();
        let img = invariance_figure(&points, &["dog".into()]).unwrap();
        assert_eq!(img.dimensions(), (1260, 900));
        // Not blank: axes, labels and a coloured curve.
        let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
        let coloured = img
            .pixels()
            .filter(|p| p.0[0].abs_diff(p.0[1]) > 60 || p.0[1].abs_diff(p.0[2]) > 60)
            .count();
        assert!(
            dark > 2000 && coloured > 100,
            "dark {dark}, coloured {coloured}"
        );
    }

    #[test]
    fn titles_and_legends_draw_text_and_swatches() {
        let blank = RgbImage::from_pixel(100, 50, image::Rgb([255, 255, 255]));
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
}
