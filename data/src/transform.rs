//! Augmentations: from a decoded RGB image to a normalized `[3, S, S]` float
//! crop, written straight into a batch buffer.
//!
//! - `zf` (Zeiler & Fergus / Krizhevsky): shorter side to 256, centre
//!   256x256, a random 224x224 crop inside it, horizontal flip with p = 0.5.
//! - `rrc` (torchvision's `RandomResizedCrop(224)`): a random crop of 8-100%
//!   of the area with aspect ratio 3/4..4/3, resized to 224x224, flip.
//! - `eval`: shorter side to 256, centre 224x224 crop (torchvision's
//!   `Resize(256)` + `CenterCrop(224)`).
//!
//! Then `(x / 255 - mean) / std` per channel, where `mean` is either one
//! value per channel or, as Zeiler & Fergus did, a per-pixel mean image of
//! the centre squares ([`MeanImage`]; `zf` and `eval` only, since `rrc` crops
//! have no fixed place in that square). Randomness comes from the caller's
//! generator, so a sample's crop depends only on its stream.

use std::sync::Arc;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::mean_image::MeanImage;
use crate::rng::SplitMix64;

/// ImageNet's per-channel mean on `[0, 1]` pixels (torchvision's), as
/// weights files record it: the one place these numbers are written.
pub const IMAGENET_MEAN_F64: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (torchvision's), as weights
/// files record it.
pub const IMAGENET_STD_F64: [f64; 3] = [0.229, 0.224, 0.225];
/// [`IMAGENET_MEAN_F64`] as the transforms use it.
pub const IMAGENET_MEAN: [f32; 3] = narrow(IMAGENET_MEAN_F64);
/// [`IMAGENET_STD_F64`] as the transforms use it.
pub const IMAGENET_STD: [f32; 3] = narrow(IMAGENET_STD_F64);

const fn narrow(v: [f64; 3]) -> [f32; 3] {
    [v[0] as f32, v[1] as f32, v[2] as f32]
}

/// Which augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// The papers' random 224 crop of the centre 256 square, with flips.
    Zf,
    /// torchvision's RandomResizedCrop with flips.
    Rrc,
    /// Resize and centre crop, no randomness.
    Eval,
}

/// Where the output crop comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Size `(w, h)` the whole image is resized to first (`None`: no resize).
    pub resize: Option<(u32, u32)>,
    /// Crop `(x, y, w, h)` in the (resized) image.
    pub crop: (u32, u32, u32, u32),
    /// Mirror horizontally.
    pub flip: bool,
}

/// An augmentation with its sizes and normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transform {
    /// Which augmentation.
    pub augment: Augment,
    /// Shorter side before cropping (`zf`, `eval`).
    pub resize: u32,
    /// Output side.
    pub crop: u32,
    /// Per-channel mean on `[0, 1]` pixels.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
    /// A per-pixel mean of the `resize` x `resize` centre squares, used
    /// instead of `mean` (`zf` and `eval`; [`Transform::check`] refuses it
    /// with `rrc` or a side other than `resize`).
    #[serde(skip)]
    pub mean_image: Option<Arc<MeanImage>>,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            augment: Augment::Eval,
            resize: 256,
            crop: 224,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            mean_image: None,
        }
    }
}

/// torchvision's `Resize(int)` output size: the shorter side becomes `target`.
pub fn shorter_side_to(w: u32, h: u32, target: u32) -> (u32, u32) {
    let t = target as u64;
    if w <= h {
        (target, (t * h as u64 / w as u64) as u32)
    } else {
        ((t * w as u64 / h as u64) as u32, target)
    }
}

impl Transform {
    /// Whether the settings fit together: a crop no larger than the resize,
    /// and a mean image only with `zf`/`eval` and of side `resize`.
    pub fn check(&self) -> Result<(), String> {
        if self.crop == 0 || self.crop > self.resize {
            return Err(format!(
                "crop {} must be between 1 and resize {}",
                self.crop, self.resize
            ));
        }
        if let Some(m) = &self.mean_image {
            if self.augment == Augment::Rrc {
                return Err("a per-pixel mean image needs augment zf (rrc crops anywhere)".into());
            }
            if m.side() != self.resize {
                return Err(format!(
                    "the mean image is {0}x{0}, the resize is {1}",
                    m.side(),
                    self.resize
                ));
            }
        }
        Ok(())
    }

    /// Floats per output sample: `3 * crop * crop`.
    pub fn sample_len(&self) -> usize {
        3 * self.crop as usize * self.crop as usize
    }

    /// Draws the geometry for an image of `w` x `h`.
    pub fn geometry(&self, w: u32, h: u32, rng: &mut SplitMix64) -> Geometry {
        let c = self.crop;
        match self.augment {
            Augment::Eval => {
                let (rw, rh) = shorter_side_to(w, h, self.resize);
                Geometry {
                    resize: Some((rw, rh)),
                    crop: ((rw - c) / 2, (rh - c) / 2, c, c),
                    flip: false,
                }
            }
            Augment::Zf => {
                let (rw, rh) = shorter_side_to(w, h, self.resize);
                let (x0, y0) = ((rw - self.resize) / 2, (rh - self.resize) / 2);
                let room = (self.resize - c) as u64 + 1;
                let (dx, dy) = (rng.below(room) as u32, rng.below(room) as u32);
                Geometry {
                    resize: Some((rw, rh)),
                    crop: (x0 + dx, y0 + dy, c, c),
                    flip: rng.next_f64() < 0.5,
                }
            }
            Augment::Rrc => {
                let crop = random_resized_crop(w, h, rng);
                Geometry {
                    resize: None,
                    crop,
                    flip: rng.next_f64() < 0.5,
                }
            }
        }
    }

    /// Augments `img` into `out` (`3 * crop * crop` floats, CHW, normalized).
    pub fn apply(&self, img: &RgbImage, rng: &mut SplitMix64, out: &mut [f32]) {
        let g = self.geometry(img.width(), img.height(), rng);
        self.render(img, img.dimensions(), (0, 0), &g, out);
    }

    /// The crop's region in whole-image pixels, `(x, y, w, h)` of the
    /// `w` x `h` source, as fractions.
    fn source_crop(&self, w: u32, h: u32, g: &Geometry) -> (f64, f64, f64, f64) {
        let (x, y, cw, ch) = g.crop;
        let (fx, fy) = match g.resize {
            Some((rw, rh)) => (w as f64 / rw as f64, h as f64 / rh as f64),
            None => (1.0, 1.0),
        };
        (x as f64 * fx, y as f64 * fy, cw as f64 * fx, ch as f64 * fy)
    }

    /// The source pixels the output of `g` reads on a `w` x `h` image,
    /// `(x, y, w, h)`: the crop's region widened by the resampling filter's
    /// reach (plus two pixels), so that decoding only this part gives the
    /// same output as decoding everything.
    pub fn source_region(&self, w: u32, h: u32, g: &Geometry) -> (u32, u32, u32, u32) {
        let (x, y, cw, ch) = self.source_crop(w, h, g);
        // A bilinear filter shrinking by `s` reads `s` source pixels on each
        // side of a sample; enlarging, one.
        let s = (cw / self.crop as f64).max(ch / self.crop as f64).max(1.0);
        let pad = s.ceil() + 2.0;
        let x0 = (x - pad).floor().max(0.0) as u32;
        let y0 = (y - pad).floor().max(0.0) as u32;
        let x1 = ((x + cw + pad).ceil() as u32).min(w);
        let y1 = ((y + ch + pad).ceil() as u32).min(h);
        (
            x0,
            y0,
            x1.saturating_sub(x0).max(1),
            y1.saturating_sub(y0).max(1),
        )
    }

    /// Augments a decoded part of a `full`-sized image, `part`, whose
    /// top-left pixel is `origin` in the whole image, with the geometry `g`
    /// drawn for the whole image, into `out` (`3 * crop * crop` floats, CHW,
    /// normalized). `part` must hold [`Transform::source_region`].
    pub fn render(
        &self,
        part: &RgbImage,
        full: (u32, u32),
        origin: (u32, u32),
        g: &Geometry,
        out: &mut [f32],
    ) {
        assert_eq!(
            out.len(),
            self.sample_len(),
            "output slice has the wrong length"
        );
        let (x, y, _, _) = g.crop;
        // One resampling of just the source region the crop comes from:
        // the same pixels as resizing the whole image and cropping (the
        // filter still reads the source around the region), at a fraction
        // of the work (docs/benchmarks.md).
        let (sx, sy, sw, sh) = self.source_crop(full.0, full.1, g);
        let region = (sx - origin.0 as f64, sy - origin.1 as f64, sw, sh);
        let patch = resize_region(part, region, (self.crop, self.crop));
        let c = self.crop as usize;
        let plane = c * c;
        let scale: [f32; 3] = std::array::from_fn(|k| 1.0 / (255.0 * self.std[k]));
        let shift: [f32; 3] = std::array::from_fn(|k| self.mean[k] / self.std[k]);
        // Where the crop sits in the centre square, for the per-pixel mean.
        let mean_image = match (&self.mean_image, g.resize) {
            (Some(m), Some((rw, rh))) => Some((
                m,
                (x - (rw - self.resize) / 2) as usize,
                (y - (rh - self.resize) / 2) as usize,
            )),
            _ => None,
        };
        // One output plane at a time, one row at a time: contiguous writes.
        for (k, plane_out) in out.chunks_exact_mut(plane).enumerate() {
            for (row, (line, dst)) in patch
                .chunks_exact(3 * c)
                .zip(plane_out.chunks_exact_mut(c))
                .enumerate()
            {
                let values = line.iter().skip(k).step_by(3).map(|&v| v as f32);
                match mean_image {
                    Some((m, mx, my)) => {
                        for (col, value) in values.enumerate() {
                            let at = if g.flip { c - 1 - col } else { col };
                            dst[at] = (value / 255.0 - m.at(k, my + row, mx + col)) / self.std[k];
                        }
                    }
                    None if g.flip => {
                        for (d, value) in dst.iter_mut().rev().zip(values) {
                            *d = value * scale[k] - shift[k];
                        }
                    }
                    None => {
                        for (d, value) in dst.iter_mut().zip(values) {
                            *d = value * scale[k] - shift[k];
                        }
                    }
                }
            }
        }
    }
}

/// The whole of `img` resampled to `width x height` (as [`resize_region`]).
pub(crate) fn resize_whole(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let region = (0.0, 0.0, img.width() as f64, img.height() as f64);
    let bytes = resize_region(img, region, (width, height));
    RgbImage::from_raw(width, height, bytes).expect("width x height RGB bytes")
}

/// The region `(left, top, width, height)` of `img` (source pixels,
/// fractional) resampled to `size` (width, height) RGB bytes with a bilinear
/// (triangle) filter whose support widens when shrinking, as PIL's and so
/// torchvision's resize does.
fn resize_region(img: &RgbImage, region: (f64, f64, f64, f64), size: (u32, u32)) -> Vec<u8> {
    use fast_image_resize as fr;
    let (left, top, width, height) = region;
    let src =
        fr::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fr::PixelType::U8x3)
            .expect("an RgbImage's buffer holds width x height RGB pixels");
    let mut dst = fr::images::Image::new(size.0, size.1, fr::PixelType::U8x3);
    let options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
        .crop(left, top, width, height);
    thread_local! {
        // The resizer keeps its buffers between images of a worker thread.
        static RESIZER: std::cell::RefCell<fr::Resizer> = std::cell::RefCell::new(fr::Resizer::new());
    }
    RESIZER.with(|r| {
        r.borrow_mut()
            .resize(&src, &mut dst, &options)
            .expect("source and destination are both U8x3")
    });
    dst.into_vec()
}

/// torchvision's `RandomResizedCrop.get_params` with scale (0.08, 1) and
/// ratio (3/4, 4/3): `(x, y, w, h)`.
fn random_resized_crop(width: u32, height: u32, rng: &mut SplitMix64) -> (u32, u32, u32, u32) {
    let area = width as f64 * height as f64;
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.uniform(0.08, 1.0);
        let ratio = rng.uniform(lo, hi).exp();
        let w = (target * ratio).sqrt().round() as u32;
        let h = (target / ratio).sqrt().round() as u32;
        if w > 0 && h > 0 && w <= width && h <= height {
            let y = rng.below((height - h) as u64 + 1) as u32;
            let x = rng.below((width - w) as u64 + 1) as u32;
            return (x, y, w, h);
        }
    }
    // Fallback: the central crop with the ratio clamped into range.
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < 3.0 / 4.0 {
        (
            width,
            ((width as f64 / (3.0 / 4.0)).round() as u32).min(height),
        )
    } else if in_ratio > 4.0 / 3.0 {
        (
            ((height as f64 * (4.0 / 3.0)).round() as u32).min(width),
            height,
        )
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform(augment: Augment) -> Transform {
        Transform {
            augment,
            ..Transform::default()
        }
    }

    #[test]
    fn eval_geometry_is_torchvisions_resize_and_centre_crop() {
        let g = transform(Augment::Eval).geometry(500, 375, &mut SplitMix64::new(0));
        assert_eq!(
            g,
            Geometry {
                resize: Some((341, 256)),
                crop: (58, 16, 224, 224),
                flip: false
            }
        );
    }

    #[test]
    fn zf_crops_stay_inside_the_centre_square_and_flip_half_the_time() {
        let t = transform(Augment::Zf);
        let mut rng = SplitMix64::new(3);
        let mut flips = 0;
        let (mut min_x, mut max_x) = (u32::MAX, 0);
        for _ in 0..2000 {
            let g = t.geometry(500, 375, &mut rng);
            assert_eq!(g.resize, Some((341, 256)));
            let (x, y, w, h) = g.crop;
            assert_eq!((w, h), (224, 224));
            // centre square: x in [42, 42 + 32], y in [0, 32]
            assert!((42..=74).contains(&x) && y <= 32, "{:?}", g.crop);
            min_x = min_x.min(x);
            max_x = max_x.max(x);
            flips += g.flip as u32;
        }
        assert_eq!((min_x, max_x), (42, 74), "every offset reachable");
        assert!((900..1100).contains(&flips), "{flips} flips of 2000");
    }

    #[test]
    fn rrc_crops_are_inside_the_image_with_bounded_ratio() {
        let t = transform(Augment::Rrc);
        let mut rng = SplitMix64::new(9);
        for _ in 0..2000 {
            let (x, y, w, h) = t.geometry(500, 375, &mut rng).crop;
            assert!(x + w <= 500 && y + h <= 375 && w > 0 && h > 0);
            let r = w as f64 / h as f64;
            assert!((0.74..=1.35).contains(&r), "ratio {r}");
            assert!((w * h) as f64 >= 0.079 * 500.0 * 375.0 * 0.95);
        }
    }

    #[test]
    fn apply_normalizes_and_flips_pixels() {
        // Left half red, right half blue, 300x300: after eval, column 0 is red.
        let img = RgbImage::from_fn(300, 300, |x, _| {
            if x < 150 {
                [255, 0, 0].into()
            } else {
                [0, 0, 255].into()
            }
        });
        let t = Transform {
            mean: [0.5; 3],
            std: [0.5; 3],
            ..transform(Augment::Eval)
        };
        let mut out = vec![0f32; t.sample_len()];
        t.apply(&img, &mut SplitMix64::new(0), &mut out);
        let plane = 224 * 224;
        assert_eq!(out[0], 1.0); // red channel, (0, 0): (1 - 0.5) / 0.5
        assert_eq!(out[2 * plane], -1.0); // blue channel, (0, 0)
        assert_eq!(out[2 * plane + 223], 1.0); // blue channel, (0, 223)
                                               // zf with a flip mirrors the columns.
        let zf = Transform {
            mean: [0.5; 3],
            std: [0.5; 3],
            ..transform(Augment::Zf)
        };
        let mut rng = SplitMix64::new(0);
        let flipped = loop {
            let mut probe = rng.clone();
            if zf.geometry(300, 300, &mut probe).flip {
                break rng;
            }
            rng.next_u64();
        };
        zf.apply(&img, &mut flipped.clone(), &mut out);
        assert_eq!(
            out[0], -1.0,
            "after a flip the red channel starts with blue's side"
        );
    }

    #[test]
    fn a_per_pixel_mean_is_subtracted_where_the_crop_sits_before_the_flip() {
        // A gradient image 341x256 (already the resized size of 500x375).
        let img = RgbImage::from_fn(341, 256, |x, y| [(x % 256) as u8, y as u8, 7].into());
        // Mean image: channel 0 = column / 256, channel 1 = 0.25, channel 2 = row / 256.
        let side = 256usize;
        let mut values = vec![0f32; 3 * side * side];
        for y in 0..side {
            for x in 0..side {
                values[y * side + x] = x as f32 / 256.0;
                values[side * side + y * side + x] = 0.25;
                values[2 * side * side + y * side + x] = y as f32 / 256.0;
            }
        }
        let mean = Arc::new(MeanImage::new(256, values).unwrap());
        let t = Transform {
            std: [1.0; 3],
            mean_image: Some(mean.clone()),
            ..transform(Augment::Zf)
        };
        t.check().unwrap();
        let mut rng = SplitMix64::new(5);
        let plane = 224 * 224;
        let mut out = vec![0f32; t.sample_len()];
        for _ in 0..20 {
            let g = t.geometry(341, 256, &mut rng.clone());
            t.apply(&img, &mut rng, &mut out);
            let (x, y, _, _) = g.crop;
            let (mx, my) = ((x - 42) as usize, y as usize);
            // Output column 0 holds source column 0 (or 223 when flipped).
            let src = if g.flip { 223 } else { 0 };
            let want = ((x as usize + src) % 256) as f32 / 255.0 - mean.at(0, my, mx + src);
            assert!(
                (out[0] - want).abs() < 1e-5,
                "{:?}: {} vs {want}",
                g,
                out[0]
            );
            let want = 7.0 / 255.0 - mean.at(2, my + 3, mx + src);
            assert!((out[2 * plane + 3 * 224] - want).abs() < 1e-5);
        }
        // rrc and a mean image of another size are refused.
        let rrc = Transform {
            mean_image: Some(mean),
            ..transform(Augment::Rrc)
        };
        assert!(rrc.check().unwrap_err().contains("needs augment zf"));
        let small = Transform {
            resize: 128,
            crop: 112,
            ..t
        };
        assert!(small.check().unwrap_err().contains("256x256"));
    }
}
