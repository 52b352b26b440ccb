//! The built-in data set: a deterministic synthetic ImageFolder of real JPEG
//! files, so that the demo and the tests go through the same decoder and
//! pipeline as ImageNet.
//!
//! Each class is a shape or a texture (disc, square, triangle, ring, cross,
//! stripes, checkerboard, dots, ellipse, crescent), drawn in a random light
//! colour on a random dark background, at a random scale, position and rotation,
//! over clutter. Three styles: `clean` (the default; [`crate::scene`]:
//! anti-aliased, textures at several scales, no pixel noise), `noisy`
//! (clutter rectangles and per-pixel noise) and `leaves` (the clean objects
//! over a dead-leaves background, edges at every scale;
//! [`crate::leaves`]). Every image depends only on
//! `(seed, split, class, index)` and the style.

use std::fs;
use std::io::BufWriter;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, RgbImage};
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;
use crate::DataError;

/// The class names, in class order.
pub const CLASSES: [&str; 10] = [
    "disc", "square", "triangle", "ring", "cross", "stripes", "checker", "dots", "ellipse",
    "crescent",
];

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Number of classes (1 to 10).
    pub classes: usize,
    /// Training images per class.
    pub train_per_class: usize,
    /// Validation images per class.
    pub val_per_class: usize,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// JPEG quality.
    pub quality: u8,
    /// Seed.
    pub seed: u64,
    /// How the pictures are drawn.
    pub style: Style,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            classes: 10,
            train_per_class: 100,
            val_per_class: 20,
            width: 256,
            height: 192,
            quality: 90,
            seed: 0,
            style: Style::default(),
        }
    }
}

/// Whether `(u, v)` (object coordinates, the object spans about [-1, 1]) is
/// inside the shape of `class`; `frequency` scales the textures of stripes,
/// checker and dots (1 in the `noisy` style).
pub(crate) fn inside(class: usize, u: f64, v: f64, frequency: f64) -> bool {
    let r2 = u * u + v * v;
    let square = u.abs() < 0.9 && v.abs() < 0.9;
    match class {
        0 => r2 < 0.8,
        1 => u.abs() < 0.7 && v.abs() < 0.7,
        2 => (-0.8..0.7).contains(&v) && u.abs() < (0.7 - v) * 0.6,
        3 => (0.35..0.85).contains(&r2),
        4 => (u.abs() < 0.22 && v.abs() < 0.9) || (v.abs() < 0.22 && u.abs() < 0.9),
        5 => square && (u * 7.0 * frequency).sin() > 0.0,
        6 => {
            let f = 2.5 * frequency;
            square && ((u * f).floor() as i64 + (v * f).floor() as i64) % 2 == 0
        }
        7 => {
            square && {
                let (fu, fv) = (
                    (u * 2.0 * frequency).rem_euclid(1.0) - 0.5,
                    (v * 2.0 * frequency).rem_euclid(1.0) - 0.5,
                );
                fu * fu + fv * fv < 0.06
            }
        }
        8 => u * u / 0.9 + v * v / 0.15 < 1.0,
        _ => r2 < 0.8 && (u - 0.45).powi(2) + v * v > 0.45,
    }
}

fn colour(rng: &mut SplitMix64) -> [f64; 3] {
    [
        rng.uniform(0.0, 255.0),
        rng.uniform(0.0, 255.0),
        rng.uniform(0.0, 255.0),
    ]
}

/// How the pictures are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Anti-aliased shapes, textures at several scales, no pixel noise
    /// ([`crate::scene`]): what the demo trains on, so that its Deconvnet
    /// projections show edges and textures.
    #[default]
    Clean,
    /// Flat shapes over clutter rectangles with per-pixel noise (the first
    /// demo's pictures; kept to compare against).
    Noisy,
    /// The clean style's objects over a dead-leaves background
    /// ([`crate::leaves`]): occluding discs of every size, sharp edges at
    /// every scale, more variation at fine scales than `clean`.
    Leaves,
}

impl Style {
    /// Its name, as in `synth.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Style::Clean => "clean",
            Style::Noisy => "noisy",
            Style::Leaves => "leaves",
        }
    }
}

/// Renders one `noisy` picture of `class`.
pub fn render(class: usize, width: u32, height: u32, rng: &mut SplitMix64) -> RgbImage {
    // Light shapes on dark backgrounds, in random hues: with the contrast's
    // sign random as well, ZFNet needed several times the images to learn
    // the classes (val top-1 17% against 47% after one epoch of 3,000).
    let bg = colour(rng).map(|c| c * 0.45);
    let fg = colour(rng).map(|c| 140.0 + c * 0.45);
    let side = width.min(height) as f64;
    let radius = side * rng.uniform(0.22, 0.42);
    let cx = rng.uniform(radius * 0.8, width as f64 - radius * 0.8);
    let cy = rng.uniform(radius * 0.8, height as f64 - radius * 0.8);
    let angle = rng.uniform(0.0, std::f64::consts::TAU);
    let (sin, cos) = angle.sin_cos();
    let clutter: Vec<([f64; 4], [f64; 3])> = (0..rng.below(5) + 2)
        .map(|_| {
            let (x, y) = (
                rng.uniform(0.0, width as f64),
                rng.uniform(0.0, height as f64),
            );
            let (w, h) = (rng.uniform(4.0, side * 0.2), rng.uniform(4.0, side * 0.2));
            ([x, y, x + w, y + h], colour(rng))
        })
        .collect();
    let noise_seed = rng.next_u64();
    let mut noise = SplitMix64::new(noise_seed);
    RgbImage::from_fn(width, height, |x, y| {
        let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
        let mut c = bg;
        for (r, col) in &clutter {
            if px >= r[0] && px < r[2] && py >= r[1] && py < r[3] {
                c = *col;
            }
        }
        let (dx, dy) = ((px - cx) / radius, (py - cy) / radius);
        let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
        if inside(class, u, v, 1.0) {
            c = fg;
        }
        let n = noise.uniform(-18.0, 18.0);
        image::Rgb(c.map(|ch| (ch + n).clamp(0.0, 255.0) as u8))
    })
}

/// The file in a written set's folder that records how it was made (the
/// [`SynthConfig`] as JSON), so that a script can tell a set of one style
/// from another.
pub const RECORD_FILE: &str = "synth.json";

/// Picture `class` in `config`'s style and size, drawn from `rng`.
fn picture(config: &SynthConfig, class: usize, rng: &mut SplitMix64) -> RgbImage {
    let (w, h) = (config.width, config.height);
    match config.style {
        Style::Clean => crate::scene::render_clean(class, w, h, rng),
        Style::Noisy => render(class, w, h, rng),
        Style::Leaves => crate::leaves::render_leaves(class, w, h, rng),
    }
}

/// `img` as a JPEG file at `path`.
fn write_jpeg(path: &Path, img: &RgbImage, quality: u8) -> Result<(), DataError> {
    let file = fs::File::create(path).map_err(DataError::io("creating", path))?;
    JpegEncoder::new_with_quality(BufWriter::new(file), quality)
        .encode(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgb8,
        )
        .map_err(|e| DataError::Encode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Writes the data set to `out/train/<class>/*.jpg` and `out/val/<class>/*.jpg`,
/// and its configuration to `out/synth.json` ([`RECORD_FILE`]).
/// It is assembled in a temporary sibling folder and renamed into place, so
/// `out` is either complete or absent. Refuses an existing `out`.
pub fn write_synthetic(out: &Path, config: &SynthConfig) -> Result<(), DataError> {
    if !(1..=CLASSES.len()).contains(&config.classes) {
        return Err(DataError::layout(
            out,
            format!(
                "classes must be 1 to {}, got {}",
                CLASSES.len(),
                config.classes
            ),
        ));
    }
    if config.width < 16
        || config.height < 16
        || config.train_per_class == 0
        || config.val_per_class == 0
    {
        return Err(DataError::layout(
            out,
            "need images of at least 16x16 and at least one per class and split",
        ));
    }
    if out.exists() {
        return Err(DataError::layout(
            out,
            "already exists; remove it or choose another folder",
        ));
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let tmp = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let result = (|| {
        for (split, per_class, split_id) in [
            ("train", config.train_per_class, 1u64),
            ("val", config.val_per_class, 2),
        ] {
            for (class, class_name) in CLASSES.iter().enumerate().take(config.classes) {
                let dir = tmp.join(split).join(format!("{class:02}-{class_name}"));
                fs::create_dir_all(&dir).map_err(DataError::io("creating", &dir))?;
                for i in 0..per_class {
                    let stream = [config.seed, split_id, class as u64, i as u64];
                    let img = picture(config, class, &mut SplitMix64::for_stream(&stream));
                    write_jpeg(&dir.join(format!("{i:05}.jpg")), &img, config.quality)?;
                }
            }
        }
        let record = tmp.join(RECORD_FILE);
        let json = serde_json::to_string_pretty(config).expect("a SynthConfig serializes");
        fs::write(&record, json + "\n").map_err(DataError::io("writing", &record))?;
        fs::rename(&tmp, out).map_err(DataError::io("renaming into place", out))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::{Loader, LoaderConfig};
    use crate::{Augment, Dataset, Transform};

    fn small() -> SynthConfig {
        SynthConfig {
            classes: 3,
            train_per_class: 4,
            val_per_class: 2,
            width: 64,
            height: 48,
            ..Default::default()
        }
    }

    #[test]
    fn synthetic_set_is_a_deterministic_image_folder() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        write_synthetic(&a, &small()).unwrap();
        write_synthetic(&b, &small()).unwrap();
        let ds = Dataset::image_folder(&a.join("train")).unwrap();
        assert_eq!(ds.classes, ["00-disc", "01-square", "02-triangle"]);
        assert_eq!(ds.len(), 12);
        assert_eq!(Dataset::image_folder(&a.join("val")).unwrap().len(), 6);
        let record: SynthConfig =
            serde_json::from_str(&fs::read_to_string(a.join(RECORD_FILE)).unwrap()).unwrap();
        assert_eq!(record, small());
        assert!(fs::read_to_string(a.join(RECORD_FILE))
            .unwrap()
            .contains(r#""style": "clean""#));
        for s in &ds.samples {
            let rel = s.path.strip_prefix(&a).unwrap();
            assert_eq!(
                fs::read(&s.path).unwrap(),
                fs::read(b.join(rel)).unwrap(),
                "{}",
                rel.display()
            );
        }
        let err = write_synthetic(&a, &small()).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
    }

    #[test]
    fn the_loader_decodes_the_jpegs() {
        let d = tempfile::tempdir().unwrap();
        write_synthetic(&d.path().join("s"), &small()).unwrap();
        let ds = Dataset::image_folder(&d.path().join("s/train")).unwrap();
        let t = Transform {
            augment: Augment::Zf,
            resize: 64,
            crop: 56,
            ..Transform::default()
        };
        let loader = Loader::new(
            ds,
            t,
            LoaderConfig {
                batch_size: 5,
                workers: 2,
                ..Default::default()
            },
        );
        let batches: Vec<_> = loader.epoch(0, 0).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [5, 5, 2]
        );
        assert!(batches
            .iter()
            .all(|b| b.skipped.is_empty() && b.images.len() == b.len() * 3 * 56 * 56));
    }
}
