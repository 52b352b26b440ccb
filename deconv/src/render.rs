//! Rendering mined units the way the paper shows them: each projection's
//! contrast stretched around zero (zero stays mid-grey; the paper only says
//! contrast was "artificially enhanced"), the k units of a feature map as a
//! square tile block (3x3 for k = 9), blocks in a grid; image patches the
//! same way, with the parts of a receptive field outside the image grey;
//! and a first layer's filters as the paper's Fig. 6 shows them.

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::DeconvError;

/// How a projection is scaled to `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Stretch {
    /// `0.5 + v / (2 max|v|)`: the largest magnitude reaches black or white.
    Max,
    /// `0.5 + v / (2 q)` clipped, `q` the given percentile (0-100) of `|v|`:
    /// a few extreme pixels do not wash out the rest.
    Percentile {
        /// Percentile of `|v|` mapped to full contrast.
        percentile: f64,
    },
}

impl Default for Stretch {
    fn default() -> Self {
        Stretch::Percentile { percentile: 99.5 }
    }
}

/// Display settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RenderConfig {
    /// Contrast stretch of projections.
    pub stretch: Stretch,
    /// Tiles are scaled up (nearest neighbour) to at least this many pixels.
    pub min_tile: u32,
    /// Pixels between tiles of one feature map.
    pub gap: u32,
    /// Pixels between feature maps.
    pub map_gap: u32,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            stretch: Stretch::default(),
            min_tile: 48,
            gap: 1,
            map_gap: 6,
        }
    }
}

/// `[..., C, R, R]` projections -> the same shape in `[0, 1]`, each
/// `[C, R, R]` stretched on its own.
pub fn stretch(projections: &Tensor, how: Stretch) -> Tensor {
    let size = projections.size();
    let n: i64 = size[..size.len() - 3].iter().product();
    let flat = projections.to_kind(Kind::Float).reshape([n, -1]);
    let scale = match how {
        Stretch::Max => flat.abs().amax([1i64].as_slice(), true),
        Stretch::Percentile { percentile } => {
            flat.abs()
                .quantile_scalar((percentile / 100.0).clamp(0.0, 1.0), 1, true, "linear")
        }
    };
    // A projection of zeros stays grey.
    let scale = scale.clamp_min(1e-12);
    ((flat / (scale * 2.0)) + 0.5)
        .clamp(0.0, 1.0)
        .reshape(size.as_slice())
}

/// `[..., C, R, R]` normalized image patches -> `[0, 1]` pixels:
/// `x * std + mean` per channel, NaN (outside the image) grey.
pub fn denormalize(patches: &Tensor, mean: [f32; 3], std: [f32; 3]) -> Tensor {
    let dev = patches.device();
    let mean = Tensor::from_slice(&mean).to_device(dev).view([3, 1, 1]);
    let std = Tensor::from_slice(&std).to_device(dev).view([3, 1, 1]);
    let x = patches.to_kind(Kind::Float) * std + mean;
    x.nan_to_num(0.5, None, None).clamp(0.0, 1.0)
}

/// Lays out `[M, k, 3, R, R]` tiles in `[0, 1]`: each map a square block of
/// its k tiles (row-major, strongest first), the blocks in a square grid.
/// `present` (`[M, k]` bool, optional) leaves empty slots background.
pub fn tile_grid(
    tiles: &Tensor,
    present: Option<&Tensor>,
    config: &RenderConfig,
) -> Result<RgbImage, DeconvError> {
    let size = tiles.size();
    if size.len() != 5 || size[2] != 3 {
        return Err(DeconvError::Config(format!(
            "tiles must be [maps, k, 3, R, R], got {size:?}"
        )));
    }
    let (maps, k, r) = (size[0] as u32, size[1] as u32, size[3] as u32);
    let zoom = config.min_tile.div_ceil(r.max(1)).max(1);
    let tile = r * zoom;
    let per_side = (k as f64).sqrt().ceil() as u32;
    let block = per_side * tile + (per_side - 1) * config.gap;
    let cols = (maps as f64).sqrt().ceil().max(1.0) as u32;
    let rows = maps.div_ceil(cols).max(1);
    let width = cols * block + (cols + 1) * config.map_gap;
    let height = rows * block + (rows + 1) * config.map_gap;
    let mut img = RgbImage::from_pixel(width, height, Rgb([24, 24, 24]));
    let pixels: Vec<u8> = Vec::<f32>::try_from(
        (tiles.to_kind(Kind::Float).to_device(Device::Cpu) * 255.0)
            .round()
            .clamp(0.0, 255.0)
            .flatten(0, -1),
    )?
    .into_iter()
    .map(|v| v as u8)
    .collect();
    let present: Option<Vec<bool>> = present
        .map(|p| Vec::<bool>::try_from(p.to_device(Device::Cpu).flatten(0, -1)))
        .transpose()?;
    let plane = (r * r) as usize;
    for m in 0..maps {
        let (bx, by) = (m % cols, m / cols);
        let x0 = config.map_gap + bx * (block + config.map_gap);
        let y0 = config.map_gap + by * (block + config.map_gap);
        for j in 0..k {
            let i = (m * k + j) as usize;
            if present.as_ref().is_some_and(|p| !p[i]) {
                continue;
            }
            let (tx, ty) = (j % per_side, j / per_side);
            let ox = x0 + tx * (tile + config.gap);
            let oy = y0 + ty * (tile + config.gap);
            let base = i * 3 * plane;
            for y in 0..tile {
                for x in 0..tile {
                    let p = ((y / zoom) * r + x / zoom) as usize;
                    let c = |ch: usize| pixels[base + ch * plane + p];
                    img.put_pixel(ox + x, oy + y, Rgb([c(0), c(1), c(2)]));
                }
            }
        }
    }
    Ok(img)
}

/// Lays out `[rows, cols, 3, R, R]` tiles in `[0, 1]` as a plain table
/// (for example feature maps down, epochs across).
pub fn tile_table(tiles: &Tensor, config: &RenderConfig) -> Result<RgbImage, DeconvError> {
    let size = tiles.size();
    if size.len() != 5 || size[2] != 3 {
        return Err(DeconvError::Config(format!(
            "tiles must be [rows, cols, 3, R, R], got {size:?}"
        )));
    }
    // One block per tile: a grid of rows x cols single-tile maps.
    let (rows, cols) = (size[0], size[1]);
    let flat = tiles.reshape([rows * cols, 1, 3, size[3], size[4]]);
    let r = size[3] as u32;
    let zoom = config.min_tile.div_ceil(r.max(1)).max(1);
    let tile = r * zoom;
    let gap = config.gap.max(1);
    let (w, h) = (
        cols as u32 * (tile + gap) + gap,
        rows as u32 * (tile + gap) + gap,
    );
    let mut img = RgbImage::from_pixel(w, h, Rgb([24, 24, 24]));
    for i in 0..rows * cols {
        let one = tile_grid(
            &flat.narrow(0, i, 1),
            None,
            &RenderConfig {
                map_gap: 0,
                ..config.clone()
            },
        )?;
        let (x, y) = ((i % cols) as u32, (i / cols) as u32);
        image::imageops::replace(
            &mut img,
            &one,
            (gap + x * (tile + gap)) as i64,
            (gap + y * (tile + gap)) as i64,
        );
    }
    Ok(img)
}

/// `[F, C, K, K]` filters (a first conv layer's weights) as one picture,
/// as in the paper's Fig. 6: each filter stretched on its own from its
/// minimum (black) to its maximum (white), an RGB tile for C = 3 (grey for
/// C = 1, the channel mean otherwise), in a near-square table of
/// `ceil(sqrt(F))` columns, row-major; slots past F stay background.
pub fn filter_image(weight: &Tensor, config: &RenderConfig) -> Result<RgbImage, DeconvError> {
    let size = weight.size();
    if size.len() != 4 || size[0] < 1 || size[1] < 1 {
        return Err(DeconvError::Config(format!(
            "filters must be [F, C, K, K], got {size:?}"
        )));
    }
    let (f, c, kh, kw) = (size[0], size[1], size[2], size[3]);
    let w = weight.to_kind(Kind::Float).to_device(Device::Cpu);
    let rgb = match c {
        3 => w,
        1 => w.expand([f, 3, kh, kw], false),
        _ => w
            .mean_dim([1i64].as_slice(), true, Kind::Float)
            .expand([f, 3, kh, kw], false),
    };
    let flat = rgb.reshape([f, -1]);
    let lo = flat.amin([1i64].as_slice(), true);
    let range = flat.amax([1i64].as_slice(), true) - &lo;
    // A constant filter (all zero, say) is mid-grey.
    let stretched = ((&flat - &lo) / range.clamp_min(1e-12))
        .where_self(&range.gt(0.0), &flat.zeros_like().fill_(0.5))
        .reshape([f, 3, kh, kw]);
    let cols = (f as f64).sqrt().ceil() as i64;
    let rows = (f + cols - 1) / cols;
    let padded = Tensor::cat(
        &[
            stretched,
            Tensor::full(
                [rows * cols - f, 3, kh, kw],
                24.0 / 255.0,
                (Kind::Float, Device::Cpu),
            ),
        ],
        0,
    );
    tile_table(&padded.reshape([rows, cols, 3, kh, kw]), config)
}

/// Two images side by side (left, a gap, right), top-aligned.
pub fn side_by_side(left: &RgbImage, right: &RgbImage, gap: u32) -> RgbImage {
    let w = left.width() + gap + right.width();
    let h = left.height().max(right.height());
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    image::imageops::replace(&mut img, left, 0, 0);
    image::imageops::replace(&mut img, right, (left.width() + gap) as i64, 0);
    img
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    #[test]
    fn stretching_keeps_zero_grey_and_reaches_full_contrast() {
        let p = Tensor::from_slice(&[0f32, 2.0, -4.0, 1.0]).view([1, 1, 2, 2]);
        let s = stretch(&p, Stretch::Max);
        let v = Vec::<f32>::try_from(s.flatten(0, -1)).unwrap();
        assert_eq!(v, [0.5, 0.75, 0.0, 0.625]);
        let zero = stretch(&Tensor::zeros([2, 3, 2, 2], FLOAT_CPU), Stretch::default());
        assert!(zero.eq(0.5).all().int64_value(&[]) == 1);
        // A percentile clips the outlier and spreads the rest.
        let mut vals = vec![1f32; 99];
        vals.push(100.0);
        let p = Tensor::from_slice(&vals).view([1, 1, 10, 10]);
        let s = stretch(&p, Stretch::Percentile { percentile: 50.0 });
        assert_eq!(s.double_value(&[0, 0, 0, 0]), 1.0);
        assert_eq!(s.double_value(&[0, 0, 9, 9]), 1.0);
    }

    #[test]
    fn tiles_land_in_their_blocks_and_empty_slots_stay_background() {
        // 2 maps x 4 tiles of 2x2: map 1 tile 3 white, the rest black.
        let tiles = Tensor::zeros([2, 4, 3, 2, 2], FLOAT_CPU);
        let _ = tiles.get(1).get(3).fill_(1.0);
        let present = Tensor::ones([2, 4], (Kind::Bool, Device::Cpu));
        let _ = present.get(0).get(0).fill_(0);
        let config = RenderConfig {
            min_tile: 4,
            gap: 1,
            map_gap: 2,
            ..RenderConfig::default()
        };
        let img = tile_grid(&tiles, Some(&present), &config).unwrap();
        // tile 4 px (2 px zoomed twice), block 2 * 4 + 1 = 9, 2 columns.
        assert_eq!((img.width(), img.height()), (2 * 9 + 3 * 2, 9 + 2 * 2));
        // Map 1 starts at x = 2 + 9 + 2 = 13; tile 3 is at (+5, +5).
        assert_eq!(img.get_pixel(13 + 5, 2 + 5).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(13, 2).0, [0, 0, 0]);
        // Map 0 tile 0 is empty: background.
        assert_eq!(img.get_pixel(2, 2).0, [24, 24, 24]);
    }

    #[test]
    fn patches_outside_the_image_are_grey() {
        let p = Tensor::full([3, 1, 1], f64::NAN, FLOAT_CPU);
        let d = denormalize(&p, [0.1; 3], [0.2; 3]);
        assert_eq!(d.double_value(&[0, 0, 0]), 0.5);
        let p = Tensor::ones([3, 1, 1], FLOAT_CPU);
        let d = denormalize(&p, [0.1; 3], [0.2; 3]);
        assert!((d.double_value(&[1, 0, 0]) - 0.3).abs() < 1e-6);
    }

    #[test]
    fn each_filter_is_stretched_on_its_own_from_black_to_white() {
        // Filter 0 spans [-1, 1], filter 1 spans [0, 0.001], filter 2 is zero.
        let w = Tensor::zeros([3, 3, 2, 2], (Kind::Float, Device::Cpu));
        let _ = w.get(0).get(0).get(0).get(0).fill_(-1.0);
        let _ = w.get(0).get(2).get(1).get(1).fill_(1.0);
        let _ = w.get(1).get(1).get(0).get(1).fill_(0.001);
        let config = RenderConfig {
            min_tile: 2,
            gap: 1,
            ..RenderConfig::default()
        };
        let img = filter_image(&w, &config).unwrap();
        // 2 columns x 2 rows of 2x2 tiles with 1-pixel gaps.
        assert_eq!((img.width(), img.height()), (7, 7));
        let at = |tile: u32, x: u32, y: u32| {
            let (tx, ty) = (tile % 2, tile / 2);
            img.get_pixel(1 + tx * 3 + x, 1 + ty * 3 + y).0
        };
        assert_eq!(
            at(0, 0, 0),
            [0, 128, 128],
            "the minimum is black in its channel"
        );
        assert_eq!(at(0, 1, 1), [128, 128, 255], "the maximum white");
        assert_eq!(at(1, 1, 0), [0, 255, 0], "a faint filter at full contrast");
        assert_eq!(at(1, 0, 0), [0, 0, 0]);
        assert_eq!(at(2, 0, 0), [128, 128, 128], "a zero filter grey");
        assert_eq!(at(3, 0, 0), [24, 24, 24], "no fourth filter: background");
    }
}
