//! Image files to normalized tensors for evaluation: decode (JPEG, PNG), to
//! RGB, resize the shorter side to 256 (bilinear with antialiasing, like
//! PIL's), centre crop 224x224, scale to `[0, 1]`, subtract the mean and
//! divide by the standard deviation per channel.

use std::path::Path;

use anyhow::{bail, Context, Result};
use image::imageops::FilterType;
use tch::{Kind, Tensor};

/// The evaluation transform.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalTransform {
    /// Target of the shorter side before cropping.
    pub resize: u32,
    /// Side of the centre crop.
    pub crop: u32,
    /// Per-channel mean on `[0, 1]` pixels.
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    pub std: [f64; 3],
}

impl Default for EvalTransform {
    fn default() -> Self {
        EvalTransform {
            resize: 256,
            crop: 224,
            mean: crate::weights::IMAGENET_MEAN,
            std: crate::weights::IMAGENET_STD,
        }
    }
}

impl EvalTransform {
    /// Loads `path` as a `[3, crop, crop]` float tensor.
    pub fn load(&self, path: &Path) -> Result<Tensor> {
        let img = image::ImageReader::open(path)
            .with_context(|| format!("opening image {}", path.display()))?
            .with_guessed_format()
            .with_context(|| format!("reading image {}", path.display()))?
            .decode()
            .with_context(|| format!("decoding image {}", path.display()))?
            .to_rgb8();
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            bail!("image {} is empty ({w}x{h})", path.display());
        }
        // torchvision's Resize(int): the shorter side becomes `resize`, the
        // longer one keeps the aspect ratio (truncated).
        let r = self.resize as u64;
        let (nw, nh) = if w <= h {
            (self.resize, (r * h as u64 / w as u64) as u32)
        } else {
            ((r * w as u64 / h as u64) as u32, self.resize)
        };
        let resized = image::imageops::resize(&img, nw, nh, FilterType::Triangle);
        if nw < self.crop || nh < self.crop {
            bail!(
                "image {} resized to {nw}x{nh} is smaller than the {} crop",
                path.display(),
                self.crop
            );
        }
        let (left, top) = ((nw - self.crop) / 2, (nh - self.crop) / 2);
        let cropped =
            image::imageops::crop_imm(&resized, left, top, self.crop, self.crop).to_image();
        let c = self.crop as i64;
        let hwc = Tensor::from_data_size(cropped.as_raw(), &[c, c, 3], Kind::Uint8);
        let chw = hwc.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0;
        let mean = Tensor::from_slice(&self.mean.map(|x| x as f32)).view([3, 1, 1]);
        let std = Tensor::from_slice(&self.std.map(|x| x as f32)).view([3, 1, 1]);
        Ok((chw - mean) / std)
    }
}
