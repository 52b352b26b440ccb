//! Augmentations: from a decoded RGB image to normalized `[3, S, S]` float
//! crops, written straight into a batch buffer.
//!
//! - `zf` (Zeiler & Fergus / Krizhevsky): shorter side to 256, centre
//!   256x256, a random 224x224 crop inside it, horizontal flip with p = 0.5.
//! - `zf-fixed` (Zeiler & Fergus's section 3 as written): one of the 10
//!   fixed 224x224 sub-crops of that square (four corners and the centre,
//!   each with and without a flip), drawn uniformly per sample.
//! - `rrc` (torchvision's `RandomResizedCrop(224)`): a random crop of 8-100%
//!   of the area with aspect ratio 3/4..4/3, resized to 224x224, flip.
//! - `eval`: shorter side to 256, centre 224x224 crop (torchvision's
//!   `Resize(256)` + `CenterCrop(224)`).
//! - `ten-crop` (both papers' test time): the same 10 sub-crops as
//!   `zf-fixed`, all of them: a sample is 10 views, `[10, 3, S, S]`, whose
//!   softmax the evaluation averages.
//!
//! Krizhevsky's PCA lighting (`lighting` = the standard deviation of the
//! multiples, 0.1 in AlexNet; training augments only) adds one RGB shift per
//! image along the principal components of ImageNet's pixel colours.
//!
//! Then `(x / 255 - mean) / std` per channel, where `mean` is either one
//! value per channel or, as Zeiler & Fergus did, a per-pixel mean image of
//! the centre squares ([`MeanImage`]; not with `rrc`, whose crops have no
//! fixed place in that square). Randomness comes from the caller's
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

/// The eigenvalues of the covariance of ImageNet's RGB pixel values on
/// `[0, 1]` pixels, largest first, as fb.resnet.torch publishes them (and
/// torchvision's reference scripts and MXNet copy them; MXNet's are these
/// times 255).
pub const IMAGENET_EIGVAL: [f32; 3] = [0.2175, 0.0188, 0.0045];
/// The matching eigenvectors: column `j` is component `j`, row `c` its
/// weight on channel `c` (R, G, B).
pub const IMAGENET_EIGVEC: [[f32; 3]; 3] = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
];

/// The most the lighting's standard deviation may be (AlexNet's is 0.1).
pub const MAX_LIGHTING: f32 = 1.0;

const fn narrow(v: [f64; 3]) -> [f32; 3] {
    [v[0] as f32, v[1] as f32, v[2] as f32]
}

/// Which augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// The papers' random 224 crop of the centre 256 square, with flips.
    Zf,
    /// One of the 10 fixed sub-crops of the centre square (corners and
    /// centre, with and without a flip), as Zeiler & Fergus's section 3.
    ZfFixed,
    /// torchvision's RandomResizedCrop with flips.
    Rrc,
    /// Resize and centre crop, no randomness.
    Eval,
    /// All 10 fixed sub-crops of the centre square: 10 views per sample.
    TenCrop,
}

impl Augment {
    /// Whether this is a training augmentation (random).
    pub fn is_training(self) -> bool {
        matches!(self, Augment::Zf | Augment::ZfFixed | Augment::Rrc)
    }

    /// Whether its crops sit at fixed places in the centre square, so that
    /// a per-pixel mean of that square applies.
    pub fn in_centre_square(self) -> bool {
        self != Augment::Rrc
    }

    /// Views per sample: 10 for `ten-crop`, else 1.
    pub fn views(self) -> usize {
        if self == Augment::TenCrop {
            10
        } else {
            1
        }
    }
}

/// Where the output crop comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Size `(w, h)` the whole image is resized to first (`None`: no resize).
    pub resize: Option<(u32, u32)>,
    /// Crop `(x, y, w, h)` in the (resized) image.
    pub crop: (u32, u32, u32, u32),
    /// Mirror horizontally.
    pub flip: bool,
    /// The PCA lighting shift added to every pixel, per channel on `[0, 1]`
    /// pixels (zeros without lighting).
    pub light: [f32; 3],
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
    /// instead of `mean` (every augment but `rrc`; [`Transform::check`]
    /// refuses it with `rrc` or a side other than `resize`).
    #[serde(skip)]
    pub mean_image: Option<Arc<MeanImage>>,
    /// Standard deviation of the PCA lighting multiples (0: off; AlexNet's
    /// 0.1); training augments only.
    #[serde(default)]
    pub lighting: f32,
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
            lighting: 0.0,
        }
    }
}

/// torchvision's `Resize(int)` output size: the shorter side becomes `target`.
pub fn shorter_side_to(w: u32, h: u32, target: u32) -> (u32, u32) {
    // The long side saturates rather than wraps (an extreme aspect ratio).
    let t = target as u64;
    let long = |a: u32, b: u32| (t * a as u64 / b.max(1) as u64).min(u32::MAX as u64) as u32;
    if w <= h {
        (target, long(h, w))
    } else {
        (long(w, h), target)
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
        if !(0.0..=MAX_LIGHTING).contains(&self.lighting) {
            return Err(format!(
                "lighting {} must be between 0 and {MAX_LIGHTING}",
                self.lighting
            ));
        }
        if self.lighting > 0.0 && !self.augment.is_training() {
            return Err(format!(
                "lighting is a training augmentation, not for {:?}",
                self.augment
            ));
        }
        if let Some(m) = &self.mean_image {
            if !self.augment.in_centre_square() {
                return Err(
                    "a per-pixel mean image needs augment zf or zf-fixed (rrc crops anywhere)"
                        .into(),
                );
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

    /// Floats per output sample: `views * 3 * crop * crop`.
    pub fn sample_len(&self) -> usize {
        self.augment.views() * self.view_len()
    }

    /// Floats per view: `3 * crop * crop`.
    pub fn view_len(&self) -> usize {
        3 * self.crop as usize * self.crop as usize
    }

    /// The 10 fixed sub-crops of the centre square: `(x, y)` in the square
    /// and whether mirrored; the four corners, then the centre, each
    /// unmirrored then mirrored.
    pub fn fixed_crops(&self) -> [((u32, u32), bool); 10] {
        let r = self.resize - self.crop;
        let places = [(0, 0), (r, 0), (0, r), (r, r), (r / 2, r / 2)];
        std::array::from_fn(|i| (places[i / 2], i % 2 == 1))
    }

    /// One PCA lighting shift, on `[0, 1]` pixels: `eigvec * (alpha *
    /// eigval)` with `alpha ~ N(0, lighting)` per component (zeros without
    /// lighting, and nothing drawn).
    fn draw_light(&self, rng: &mut SplitMix64) -> [f32; 3] {
        if self.lighting <= 0.0 {
            return [0.0; 3];
        }
        let alpha: [f32; 3] =
            std::array::from_fn(|j| rng.normal() as f32 * self.lighting * IMAGENET_EIGVAL[j]);
        std::array::from_fn(|c| (0..3).map(|j| IMAGENET_EIGVEC[c][j] * alpha[j]).sum())
    }

    /// Draws the geometry for an image of `w` x `h`. For `ten-crop` it is
    /// the centre square, which [`Transform::render`] cuts into the views.
    pub fn geometry(&self, w: u32, h: u32, rng: &mut SplitMix64) -> Geometry {
        let c = self.crop;
        let at = |resize: (u32, u32), crop, flip, light| Geometry {
            resize: Some(resize),
            crop,
            flip,
            light,
        };
        // The centre square's place (not for rrc, which crops the original).
        let square = || {
            let (rw, rh) = shorter_side_to(w, h, self.resize);
            ((rw, rh), (rw - self.resize) / 2, (rh - self.resize) / 2)
        };
        match self.augment {
            Augment::Eval => {
                let ((rw, rh), _, _) = square();
                at(
                    (rw, rh),
                    ((rw - c) / 2, (rh - c) / 2, c, c),
                    false,
                    [0.0; 3],
                )
            }
            Augment::TenCrop => {
                let (size, x0, y0) = square();
                at(size, (x0, y0, self.resize, self.resize), false, [0.0; 3])
            }
            Augment::Zf => {
                let ((rw, rh), x0, y0) = square();
                let room = (self.resize - c) as u64 + 1;
                let (dx, dy) = (rng.below(room) as u32, rng.below(room) as u32);
                let flip = rng.next_f64() < 0.5;
                at(
                    (rw, rh),
                    (x0 + dx, y0 + dy, c, c),
                    flip,
                    self.draw_light(rng),
                )
            }
            Augment::ZfFixed => {
                let ((rw, rh), x0, y0) = square();
                let ((dx, dy), flip) = self.fixed_crops()[rng.below(10) as usize];
                at(
                    (rw, rh),
                    (x0 + dx, y0 + dy, c, c),
                    flip,
                    self.draw_light(rng),
                )
            }
            Augment::Rrc => {
                let crop = random_resized_crop(w, h, rng);
                let flip = rng.next_f64() < 0.5;
                Geometry {
                    resize: None,
                    crop,
                    flip,
                    light: self.draw_light(rng),
                }
            }
        }
    }

    /// Augments `img` into `out` ([`Transform::sample_len`] floats: the
    /// views one after the other, each CHW, normalized).
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
    /// drawn for the whole image, into `out` ([`Transform::sample_len`]
    /// floats: the views one after the other, each CHW, normalized). `part`
    /// must hold [`Transform::source_region`].
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
        let (x, y, cw, ch) = g.crop;
        // One resampling of just the source region the crop comes from:
        // the same pixels as resizing the whole image and cropping (the
        // filter still reads the source around the region), at a fraction
        // of the work (docs/benchmarks.md).
        let (sx, sy, sw, sh) = self.source_crop(full.0, full.1, g);
        let region = (sx - origin.0 as f64, sy - origin.1 as f64, sw, sh);
        // Where the patch sits in the centre square, for the per-pixel mean.
        let in_square = g
            .resize
            .map(|(rw, rh)| (x - (rw - self.resize) / 2, y - (rh - self.resize) / 2));
        if self.augment == Augment::TenCrop {
            let patch = resize_region(part, region, (cw, ch));
            let views = out.chunks_exact_mut(self.view_len());
            for (view, ((dx, dy), flip)) in views.zip(self.fixed_crops()) {
                let square = in_square.map(|(mx, my)| (mx + dx, my + dy));
                let window = Window {
                    patch: &patch,
                    width: cw,
                    at: (dx, dy),
                };
                self.normalize(window, square, flip, g.light, view);
            }
        } else {
            let patch = resize_region(part, region, (self.crop, self.crop));
            let window = Window {
                patch: &patch,
                width: self.crop,
                at: (0, 0),
            };
            self.normalize(window, in_square, g.flip, g.light, out);
        }
    }

    /// Writes the `crop` x `crop` window of RGB bytes into `out` (CHW):
    /// mirrored when `flip`, shifted by the lighting `light`, minus the
    /// mean (the mean image's window at `square` in the centre square, when
    /// there is one) and divided by the std.
    fn normalize(
        &self,
        window: Window,
        square: Option<(u32, u32)>,
        flip: bool,
        light: [f32; 3],
        out: &mut [f32],
    ) {
        let c = self.crop as usize;
        let plane = c * c;
        let scale: [f32; 3] = std::array::from_fn(|k| 1.0 / (255.0 * self.std[k]));
        let shift: [f32; 3] = std::array::from_fn(|k| (self.mean[k] - light[k]) / self.std[k]);
        let mean_image = self.mean_image.as_ref().zip(square);
        let stride = 3 * window.width as usize;
        let first = window.at.1 as usize * stride + 3 * window.at.0 as usize;
        let lines = window.patch[first..].chunks(stride).map(|l| &l[..3 * c]);
        // One output plane at a time, one row at a time: contiguous writes.
        for (k, plane_out) in out.chunks_exact_mut(plane).enumerate() {
            for (row, (line, dst)) in lines.clone().zip(plane_out.chunks_exact_mut(c)).enumerate() {
                let values = line.iter().skip(k).step_by(3).map(|&v| v as f32);
                match mean_image {
                    Some((m, (mx, my))) => {
                        let (mx, my) = (mx as usize, my as usize + row);
                        for (col, value) in values.enumerate() {
                            let at = if flip { c - 1 - col } else { col };
                            dst[at] =
                                (value / 255.0 + light[k] - m.at(k, my, mx + col)) / self.std[k];
                        }
                    }
                    None if flip => {
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

/// A window of resampled RGB bytes: `patch` is `width` pixels wide and the
/// window's top-left pixel is `at`.
#[derive(Clone, Copy)]
struct Window<'a> {
    patch: &'a [u8],
    width: u32,
    at: (u32, u32),
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
                flip: false,
                light: [0.0; 3],
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

    #[test]
    fn zf_fixed_draws_each_of_the_ten_sub_crops_and_nothing_else() {
        let t = transform(Augment::ZfFixed);
        let mut rng = SplitMix64::new(4);
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..5000 {
            let g = t.geometry(500, 375, &mut rng);
            assert_eq!(g.resize, Some((341, 256)));
            let (x, y, w, h) = g.crop;
            assert_eq!((w, h), (224, 224));
            *seen.entry((x, y, g.flip)).or_insert(0u32) += 1;
        }
        // The centre square of 341x256 starts at x = 42; its corners are 32
        // apart and its centre 16 in.
        let mut want: Vec<(u32, u32, bool)> = Vec::new();
        for (x, y) in [(42, 0), (74, 0), (42, 32), (74, 32), (58, 16)] {
            want.extend([(x, y, false), (x, y, true)]);
        }
        want.sort();
        assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), want);
        for (crop, n) in &seen {
            assert!((400..600).contains(n), "{crop:?} drawn {n} times of 5000");
        }
    }

    /// The output of `t` on `img` with a fresh generator.
    fn output(t: &Transform, img: &RgbImage) -> Vec<f32> {
        let mut out = vec![0f32; t.sample_len()];
        t.apply(img, &mut SplitMix64::new(0), &mut out);
        out
    }

    #[test]
    fn ten_crop_views_are_the_corners_and_centre_with_their_mirrors() {
        let img = crate::synth::render(2, 500, 375, &mut SplitMix64::new(8));
        let ten = transform(Augment::TenCrop);
        let views = output(&ten, &img);
        let len = ten.view_len();
        assert_eq!(views.len(), 10 * len);
        let view = |i: usize| &views[i * len..(i + 1) * len];
        let worst = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        // View 8, the unmirrored centre, is the evaluation crop (one level
        // of 255 is 0.017 after normalization: resampling may round apart).
        let eval = output(&transform(Augment::Eval), &img);
        assert!(worst(view(8), &eval) < 0.02, "{}", worst(view(8), &eval));
        // Odd views mirror the even ones.
        let c = 224;
        for v in (0..10).step_by(2) {
            let mirrored: Vec<f32> = view(v)
                .chunks(c)
                .flat_map(|row| row.iter().rev().cloned())
                .collect();
            assert_eq!(mirrored.as_slice(), view(v + 1), "view {v}");
        }
        // Each view is the crop a zf-fixed draw of it gives, per-pixel mean
        // included.
        let side = 256;
        let values = (0..3 * side * side)
            .map(|i| (i % 977) as f32 / 977.0)
            .collect();
        let mean = Some(Arc::new(MeanImage::new(256, values).unwrap()));
        let ten = Transform {
            mean_image: mean.clone(),
            ..ten
        };
        let views = output(&ten, &img);
        let view = |i: usize| &views[i * len..(i + 1) * len];
        let fixed = Transform {
            mean_image: mean,
            ..transform(Augment::ZfFixed)
        };
        let mut rng = SplitMix64::new(1);
        let mut matched = [false; 10];
        for _ in 0..200 {
            let g = fixed.geometry(500, 375, &mut rng);
            let mut one = vec![0f32; fixed.sample_len()];
            fixed.render(&img, (500, 375), (0, 0), &g, &mut one);
            let i = (0..10).find(|&i| worst(view(i), &one) < 0.02);
            matched[i.expect("a zf-fixed crop is one of the ten views")] = true;
        }
        assert!(matched.iter().all(|&m| m), "{matched:?}");
    }

    #[test]
    fn pca_lighting_shifts_each_image_along_imagenets_principal_components() {
        let grey = RgbImage::from_pixel(300, 300, [128, 128, 128].into());
        let t = Transform {
            mean: [0.0; 3],
            std: [1.0; 3],
            lighting: 0.1,
            ..transform(Augment::Zf)
        };
        t.check().unwrap();
        let plane = 224 * 224;
        let mut rng = SplitMix64::new(2);
        let mut along = [Vec::new(), Vec::new(), Vec::new()];
        let mut out = vec![0f32; t.sample_len()];
        for _ in 0..4000 {
            t.apply(&grey, &mut rng, &mut out);
            // One shift per image: every pixel of a channel moves alike.
            let shift: [f32; 3] = std::array::from_fn(|k| out[k * plane] - 128.0 / 255.0);
            for k in 0..3 {
                let p = &out[k * plane..(k + 1) * plane];
                assert!(p.iter().all(|v| (v - p[0]).abs() < 1e-6));
            }
            for (j, a) in along.iter_mut().enumerate() {
                a.push(
                    (0..3)
                        .map(|c| IMAGENET_EIGVEC[c][j] * shift[c])
                        .sum::<f32>(),
                );
            }
        }
        // Its part along component j has std 0.1 x eigenvalue j.
        for (j, a) in along.iter().enumerate() {
            let n = a.len() as f32;
            let sd = (a.iter().map(|v| v * v).sum::<f32>() / n).sqrt();
            let want = 0.1 * IMAGENET_EIGVAL[j];
            assert!(
                (sd / want - 1.0).abs() < 0.06,
                "component {j}: {sd} vs {want}"
            );
        }
        // Without lighting the pixels are the mean-free grey, and the crops
        // and flips drawn are the same as with it.
        let off = Transform {
            lighting: 0.0,
            ..t.clone()
        };
        for seed in 0..50 {
            let (mut a, mut b) = (SplitMix64::new(seed), SplitMix64::new(seed));
            let (ga, gb) = (t.geometry(300, 300, &mut a), off.geometry(300, 300, &mut b));
            assert_eq!((ga.crop, ga.flip), (gb.crop, gb.flip));
            assert_eq!(gb.light, [0.0; 3]);
        }
        // Evaluation refuses it, and so does a value out of range.
        let eval = Transform {
            lighting: 0.1,
            ..transform(Augment::Eval)
        };
        assert!(eval.check().unwrap_err().contains("training augmentation"));
        let big = Transform { lighting: 2.0, ..t };
        assert!(big.check().unwrap_err().contains("lighting 2"));
    }
}
