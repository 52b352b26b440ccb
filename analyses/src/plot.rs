//! Figures drawn in Rust (plotters, into memory, with the font that
//! `zftrain-figures` builds in): the invariance figure laid out
//! like Zeiler & Fergus's Fig. 5, a row of transformed examples on top,
//! then columns vertical translation / scale / rotation, rows layer-1
//! distance / layer-7 distance / class probability, one curve per image.

use image::RgbImage;
use plotters::prelude::*;

use crate::invariance::InvariancePoint;
use crate::AnalysisError;

fn drawing<E: std::fmt::Debug>(e: E) -> AnalysisError {
    AnalysisError::Config(format!("drawing a figure: {e:?}"))
}

const COLUMNS: [(&str, &str); 3] = [
    ("translate_y", "vertical translation (pixels)"),
    ("scale", "scale (ratio)"),
    ("rotate", "rotation (degrees)"),
];
const ROWS: [&str; 3] = ["layer 1 distance", "layer 7 distance", "P(class)"];

/// The invariance figure for `points` of images named `names`: with an
/// `example` (`[3, H, W]` in `[0, 1]`, the first image as shown), the row
/// of transformed examples of the paper's Fig. 5 on top (five amounts per
/// kind, from the points' own, captioned), then the 1260 x 900 curves.
pub fn invariance_figure(
    points: &[InvariancePoint],
    names: &[String],
    example: Option<&tch::Tensor>,
) -> Result<RgbImage, AnalysisError> {
    let curves = invariance_curves(points, names)?;
    match example {
        Some(image) => Ok(zftrain_figures::stacked(
            &example_row(image, points, curves.width())?,
            &curves,
        )),
        None => Ok(curves),
    }
}

/// Five transformed copies of `image` per kind of transformation (evenly
/// spread over the amounts in `points`), each captioned with its amount,
/// under the column of curves of its kind; `width` pixels wide.
fn example_row(
    image: &tch::Tensor,
    points: &[InvariancePoint],
    width: u32,
) -> Result<RgbImage, AnalysisError> {
    let column = width / 3;
    let (per, gap) = (5u32, 6u32);
    let thumb = (column - (per + 1) * gap) / per;
    let mut row = RgbImage::from_pixel(width, thumb + 24 + 6, image::Rgb([255, 255, 255]));
    let mut labels = Vec::new();
    for (k, (kind, _)) in COLUMNS.iter().enumerate() {
        let mut amounts: Vec<crate::geometry::Warp> = Vec::new();
        for p in points.iter().filter(|p| p.warp.kind() == *kind) {
            if !amounts.contains(&p.warp) {
                amounts.push(p.warp);
            }
        }
        if amounts.is_empty() {
            continue;
        }
        let picks: Vec<usize> = (0..per as usize)
            .map(|i| i * (amounts.len() - 1) / (per as usize - 1))
            .collect();
        let mut picks = picks;
        picks.dedup();
        for (slot, &i) in picks.iter().enumerate() {
            let warp = amounts[i];
            let moved = warp.apply(&image.unsqueeze(0)).get(0);
            let small = image::imageops::resize(
                &crate::render::to_rgb(&moved),
                thumb,
                thumb,
                image::imageops::FilterType::Triangle,
            );
            let x = k as u32 * column + gap + slot as u32 * (thumb + gap);
            image::imageops::replace(&mut row, &small, x as i64, 4);
            let text = match warp {
                crate::geometry::Warp::TranslateY(v) => format!("{v:+.0} px"),
                crate::geometry::Warp::Scale(v) => format!("x{v:.2}"),
                crate::geometry::Warp::Rotate(v) => format!("{v:.0}°"),
            };
            labels.push(zftrain_figures::Label::new(
                text,
                (x as i32, (thumb + 8) as i32),
                12.0,
            ));
        }
    }
    zftrain_figures::draw_text(&mut row, &labels)?;
    Ok(row)
}

/// The 1260 x 900 curves: a column per kind of transformation, a row per
/// measure, a curve per image.
fn invariance_curves(
    points: &[InvariancePoint],
    names: &[String],
) -> Result<RgbImage, AnalysisError> {
    zftrain_figures::text::register_font();
    let (w, h) = (1260u32, 900u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        for (k, panel) in root.split_evenly((3, 3)).iter().enumerate() {
            draw_panel(panel, k, points, names)?;
        }
        root.present().map_err(drawing)?;
    }
    RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| AnalysisError::Config("figure buffer of the wrong size".into()))
}

/// The range of the amounts of `mine`: one amount gives a unit range
/// around it, none (a kind not run) 0 to 1, never an infinite range
/// (plotters would not end).
fn amount_range(mine: &[&InvariancePoint]) -> (f64, f64) {
    let (x0, x1) = mine
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.warp.amount()), b.max(p.warp.amount()))
        });
    match (x0.is_finite(), x1 > x0) {
        (true, true) => (x0, x1),
        (true, false) => (x0.min(0.0), x0.max(0.0) + 1.0),
        (false, _) => (0.0, 1.0),
    }
}

/// Panel `k` (row: the measure, column: the kind of transformation), a
/// curve per image; the first panel carries the legend.
fn draw_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, plotters::coord::Shift>,
    k: usize,
    points: &[InvariancePoint],
    names: &[String],
) -> Result<(), AnalysisError> {
    let (row, (kind, x_desc)) = (k / 3, COLUMNS[k % 3]);
    let value = |p: &InvariancePoint| match row {
        0 => p.layer1,
        1 => p.layer7,
        _ => p.probability,
    };
    let mine: Vec<&InvariancePoint> = points.iter().filter(|p| p.warp.kind() == kind).collect();
    let (x0, x1) = amount_range(&mine);
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
    Ok(())
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
            class: 0,
            probability: 0.5,
            top_class: 0,
        })
        .collect();
        let img = invariance_figure(&points, &["dog".into()], None).unwrap();
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
    fn an_example_image_adds_the_row_of_transformed_copies_on_top() {
        use tch::{Device, Kind, Tensor};
        let points: Vec<InvariancePoint> = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
            .iter()
            .map(|&d| InvariancePoint {
                image: 0,
                warp: Warp::Rotate(d),
                layer1: d / 100.0,
                layer7: 0.05,
                class: 0,
                probability: 0.5,
                top_class: 0,
            })
            .collect();
        // A red image: its copies are red, rotated ones with black corners.
        let red = Tensor::zeros([3, 64, 64], (Kind::Float, Device::Cpu));
        let _ = red.get(0).fill_(1.0);
        let img = invariance_figure(&points, &["red".into()], Some(&red)).unwrap();
        let thumb = (420 - 6 * 6) / 5;
        assert_eq!(img.dimensions(), (1260, thumb + 30 + 900));
        // Rotation is the third column: its first copy (0 degrees) all red.
        let (x, y) = (2 * 420 + 6 + thumb / 2, 4 + thumb / 2);
        assert_eq!(img.get_pixel(x, y).0, [255, 0, 0]);
        // The other columns had no points: white.
        assert_eq!(img.get_pixel(6 + thumb / 2, y).0, [255, 255, 255]);
    }
}
