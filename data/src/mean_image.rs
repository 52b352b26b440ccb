//! The per-pixel mean image of Zeiler & Fergus's preprocessing: every
//! training image is resized (shorter side to 256), cropped to its centre
//! 256x256 square, and the mean of those squares is subtracted pixel by pixel
//! before the random 224 crop. The mean is estimated from evenly spaced
//! training images (all of them, or a cap such as 10,000 for ImageNet) in
//! parallel threads; the sum is kept in `f64`, so the estimate does not
//! depend on the thread count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use image::imageops::{self, FilterType};

use crate::transform::shorter_side_to;
use crate::{DataError, Dataset};

/// A `[3, side, side]` mean image on `[0, 1]` pixels, channel-major.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanImage {
    side: u32,
    values: Vec<f32>,
}

/// What estimating the mean found.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanEstimate {
    /// The mean image.
    pub mean: MeanImage,
    /// Images that went into it.
    pub used: usize,
    /// Images that did not decode, with the reason.
    pub skipped: Vec<(std::path::PathBuf, String)>,
}

impl MeanImage {
    /// A mean image from its `3 * side * side` values (channel-major).
    pub fn new(side: u32, values: Vec<f32>) -> Result<MeanImage, String> {
        let want = 3 * side as usize * side as usize;
        if side == 0 || values.len() != want {
            return Err(format!(
                "a {side}x{side} mean image needs {want} values, got {}",
                values.len()
            ));
        }
        if let Some(v) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(format!("mean image value {v} is outside [0, 1]"));
        }
        Ok(MeanImage { side, values })
    }

    /// Side of the square.
    pub fn side(&self) -> u32 {
        self.side
    }

    /// The values, `[3, side, side]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The mean at channel `k`, row `y`, column `x`.
    pub fn at(&self, k: usize, y: usize, x: usize) -> f32 {
        let s = self.side as usize;
        self.values[(k * s + y) * s + x]
    }

    /// The average of each channel (what per-channel subtraction would use).
    pub fn channel_means(&self) -> [f32; 3] {
        let plane = self.values.len() / 3;
        std::array::from_fn(|k| {
            let sum: f64 = self.values[k * plane..(k + 1) * plane]
                .iter()
                .map(|&v| v as f64)
                .sum();
            (sum / plane as f64) as f32
        })
    }

    /// Estimates the mean of up to `max_images` evenly spaced images of
    /// `dataset` (0 = all), with `threads` decoding threads; `progress`
    /// hears of every image read (decoded or not). Files that do not decode
    /// are skipped and listed; none decoding at all is an error.
    pub fn estimate(
        dataset: &Dataset,
        side: u32,
        max_images: usize,
        max_pixels: u64,
        threads: usize,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<MeanEstimate, DataError> {
        let n = dataset.len();
        let take = if max_images == 0 {
            n
        } else {
            max_images.min(n)
        };
        let picks: Vec<usize> = (0..take).map(|i| i * n / take.max(1)).collect();
        let plane = side as usize * side as usize;
        let next = AtomicUsize::new(0);
        let total = Mutex::new((vec![0f64; 3 * plane], 0usize, Vec::new()));
        std::thread::scope(|scope| {
            for _ in 0..threads.max(1) {
                scope.spawn(|| {
                    let mut sum = vec![0f64; 3 * plane];
                    let (mut used, mut skipped) = (0usize, Vec::new());
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&pick) = picks.get(i) else { break };
                        let path = &dataset.samples[pick].path;
                        match dataset.decode(pick, max_pixels) {
                            Ok(img) => {
                                let (rw, rh) = shorter_side_to(img.width(), img.height(), side);
                                let resized = imageops::resize(&img, rw, rh, FilterType::Triangle);
                                let (x0, y0) = ((rw - side) / 2, (rh - side) / 2);
                                let square = imageops::crop_imm(&resized, x0, y0, side, side);
                                for (p, px) in square.to_image().pixels().enumerate() {
                                    for k in 0..3 {
                                        sum[k * plane + p] += px.0[k] as f64;
                                    }
                                }
                                used += 1;
                            }
                            Err(message) => skipped.push((path.clone(), message)),
                        }
                        progress(1);
                    }
                    let mut total = total.lock().unwrap_or_else(|e| e.into_inner());
                    total.0.iter_mut().zip(&sum).for_each(|(t, s)| *t += s);
                    total.1 += used;
                    total.2.extend(skipped);
                });
            }
        });
        let (sum, used, mut skipped) = total.into_inner().unwrap_or_else(|e| e.into_inner());
        if used == 0 {
            return Err(DataError::layout(
                &dataset.source,
                format!("none of the {take} images picked for the per-pixel mean decodes"),
            ));
        }
        skipped.sort();
        let values = sum
            .iter()
            .map(|s| (s / (255.0 * used as f64)) as f32)
            .collect();
        Ok(MeanEstimate {
            mean: MeanImage { side, values },
            used,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{write_synthetic, SynthConfig};

    #[test]
    fn the_mean_of_the_synthetic_set_does_not_depend_on_threads() {
        let dir = tempfile::tempdir().unwrap();
        let config = SynthConfig {
            classes: 2,
            train_per_class: 3,
            val_per_class: 1,
            width: 96,
            height: 64,
            ..SynthConfig::default()
        };
        write_synthetic(&dir.path().join("s"), &config).unwrap();
        let data = Dataset::image_folder(&dir.path().join("s/train")).unwrap();
        let one = MeanImage::estimate(&data, 32, 0, 1 << 20, 1, &|_| ()).unwrap();
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let count = |n: usize| {
            seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let three = MeanImage::estimate(&data, 32, 0, 1 << 20, 3, &count).unwrap();
        assert_eq!(
            seen.into_inner(),
            data.len(),
            "progress hears of every image"
        );
        assert_eq!(one.used, 6);
        assert_eq!(one.mean, three.mean);
        // The mean of the first image alone is that image's centre square.
        let first = MeanImage::estimate(&data, 32, 1, 1 << 20, 2, &|_| ()).unwrap();
        assert_eq!(first.used, 1);
        let img = data.decode(0, 1 << 20).unwrap();
        let resized = imageops::resize(&img, 48, 32, FilterType::Triangle);
        let px = resized.get_pixel(8 + 5, 7).0;
        let got = first.mean.at(1, 7, 5);
        assert!((got - px[1] as f32 / 255.0).abs() < 1e-6, "{got} vs {px:?}");
        assert_ne!(one.mean, first.mean);
    }

    #[test]
    fn a_mean_image_of_the_wrong_size_or_range_is_refused() {
        assert!(MeanImage::new(2, vec![0.5; 12]).is_ok());
        let err = MeanImage::new(2, vec![0.5; 11]).unwrap_err();
        assert!(err.contains("needs 12 values"), "{err}");
        let err = MeanImage::new(1, vec![0.5, 2.0, 0.1]).unwrap_err();
        assert!(err.contains("outside [0, 1]"), "{err}");
    }
}
