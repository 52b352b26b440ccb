//! The analyses' outputs as files and pictures, shared by the `zftrain
//! analyze` commands and the hooks: CSV tables, the correspondence table as
//! text, and the occlusion figure's panels.

use std::fmt::Write as _;

use image::RgbImage;
use tch::Tensor;
use zftrain_deconv::render::{side_by_side, stretch, Stretch};

use crate::correspondence::CorrespondenceRow;
use crate::invariance::InvariancePoint;
use crate::occlusion::OcclusionMap;
use crate::render::{class_color, class_map, heat_map, ramp, to_rgb, Positions};
use crate::AnalysisError;
use zftrain_figures::{colour_bar, legend, stacked, titled};

/// `invariance.csv`: one row per transformed image; `names[i]` names image `i`.
pub fn invariance_csv(points: &[InvariancePoint], names: &[String]) -> String {
    let mut csv = String::from(
        "image,name,transform,amount,layer1_distance,layer7_distance,class,probability,top_class\n",
    );
    for p in points {
        let name = names
            .get(p.image)
            .map_or("", String::as_str)
            .replace('"', "'");
        let _ = writeln!(
            csv,
            "{},\"{name}\",{},{},{:.6},{:.6},{},{:.6},{}",
            p.image,
            p.warp.kind(),
            p.warp.amount(),
            p.layer1,
            p.layer7,
            p.class,
            p.probability,
            p.top_class
        );
    }
    csv
}

/// `occlusion-<i>.csv`: one row per occluder position; `probability` is the
/// followed class's (`class`: the true label when given, else the
/// unoccluded image's top class, `predicted`).
pub fn occlusion_csv(m: &OcclusionMap) -> String {
    let mut csv = String::from(
        "row,col,top,left,activation,probability,top_class,top_probability,class,predicted\n",
    );
    for r in 0..m.rows {
        for c in 0..m.cols {
            let k = r * m.cols + c;
            let (t, left) = m.position(r, c);
            let _ = writeln!(
                csv,
                "{r},{c},{t},{left},{:.6},{:.6},{},{:.6},{},{}",
                m.activation[k],
                m.probability[k],
                m.top_class[k],
                m.top_probability[k],
                m.class,
                m.predicted
            );
        }
    }
    csv
}

/// The occlusion figure: the input (`[3, H, W]` in `[0, 1]`), the followed
/// map's total activation and the class probability (each a heat map with
/// its colour bar: the range and unit under the palette), the most probable
/// class with its legend, and the map's Deconvnet projection, side by side
/// with titles; `name` names a class.
pub fn occlusion_figure(
    m: &OcclusionMap,
    input: &Tensor,
    square: i64,
    layer: usize,
    name: &dyn Fn(i64) -> String,
) -> Result<RgbImage, AnalysisError> {
    let size = input.size();
    let at = Positions {
        tops: &m.tops,
        lefts: &m.lefts,
        size: square,
        height: size[1] as u32,
        width: size[2] as u32,
    };
    let mut classes = m.top_class.clone();
    classes.sort_unstable();
    classes.dedup();
    let entries: Vec<(String, [u8; 3])> =
        classes.iter().map(|&c| (name(c), class_color(c))).collect();
    let (lo, hi) = m
        .activation
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let width = size[2] as u32;
    let title = if m.predicted == m.class {
        format!("input: {}", name(m.class))
    } else {
        format!("input: {} (predicted {})", name(m.class), name(m.predicted))
    };
    let panels = [
        titled(&to_rgb(input), &title)?,
        stacked(
            &titled(
                &heat_map(&m.activation, m.cols, &at, None),
                &format!("layer {layer}, map {}: activation", m.channel),
            )?,
            &colour_bar(&ramp, lo, hi, "summed over the map", width)?,
        ),
        stacked(
            &titled(
                &heat_map(&m.probability, m.cols, &at, Some((0.0, 1.0))),
                &format!("P({})", name(m.class)),
            )?,
            &colour_bar(&ramp, 0.0, 1.0, "probability", width)?,
        ),
        titled(&class_map(&m.top_class, m.cols, &at), "most probable class")?,
        titled(&legend(&entries, size[1] as u32)?, "")?,
        titled(
            &to_rgb(&stretch(&m.projection.unsqueeze(0), Stretch::default()).get(0)),
            &format!("map {}: projection", m.channel),
        )?,
    ];
    let (first, rest) = panels.split_first().expect("six panels");
    Ok(rest
        .iter()
        .fold(first.clone(), |acc, p| side_by_side(&acc, p, 6)))
}

/// The correspondence table: CSV, and text with one row per part (in
/// `parts` order) and a column per layer, `mean ± std`, then the same with
/// ties at zero left out.
pub fn correspondence_tables(
    rows: &[CorrespondenceRow],
    parts: &[String],
    layers: &[usize],
) -> (String, String) {
    let mut csv = String::from("part,layer,mean,std,pairs,mean_untied,std_untied,untied_pairs\n");
    let mut table = format!("{:<16}", "part");
    for layer in layers {
        let _ = write!(table, " {:>16}", format!("layer {layer}"));
    }
    table.push('\n');
    for name in parts {
        let _ = write!(table, "{name:<16}");
        for r in rows.iter().filter(|r| &r.part == name) {
            let _ = writeln!(
                csv,
                "{},{},{:.6},{:.6},{},{:.6},{:.6},{}",
                r.part,
                r.layer,
                r.mean,
                r.std,
                r.pairs,
                r.mean_untied,
                r.std_untied,
                r.untied_pairs
            );
            let _ = write!(table, " {:>16}", format!("{:.4} ± {:.4}", r.mean, r.std));
        }
        table.push('\n');
    }
    table.push_str("ties at zero left out (dimensions that changed in both images):\n");
    for name in parts {
        let _ = write!(table, "{name:<16}");
        for r in rows.iter().filter(|r| &r.part == name) {
            let cell = format!("{:.4} ± {:.4}", r.mean_untied, r.std_untied);
            let _ = write!(table, " {cell:>16}");
        }
        table.push('\n');
    }
    (csv, table)
}
