//! Rendering mined units the way the paper shows them: each projection's
//! contrast stretched around zero (zero stays mid-grey; the paper only says
//! contrast was "artificially enhanced"), the k units of a feature map as a
//! square tile block (3x3 for k = 9), blocks in a grid; image patches the
//! same way, with the parts of a receptive field outside the image grey;
//! and a first layer's filters as the paper's Fig. 6 shows them.

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use zftrain_figures::{draw_text, text_width, Label};

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

/// Where the blocks and tiles of a grid lie: each map a square block of
/// its k tiles (row-major, strongest first), the blocks in a near-square
/// grid, `caption` pixels above each block for its label and `top`
/// pixels above the whole for a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLayout {
    /// Maps (blocks).
    pub maps: u32,
    /// Tiles per map.
    pub k: u32,
    /// Tiles per block side.
    pub per_side: u32,
    /// A tile's side in pixels (the field of side R scaled up).
    pub tile: u32,
    /// The scale-up factor.
    pub zoom: u32,
    /// Blocks per row.
    pub cols: u32,
    /// Rows of blocks.
    pub rows: u32,
    /// Pixels above each block for its caption.
    pub caption: u32,
    /// Pixels above the grid for a header.
    pub top: u32,
    gap: u32,
    map_gap: u32,
    r: u32,
}

impl GridLayout {
    /// The layout of `maps` blocks of `k` tiles of side `r` under `config`.
    pub fn new(maps: u32, k: u32, r: u32, config: &RenderConfig, caption: u32, top: u32) -> Self {
        let zoom = config.min_tile.div_ceil(r.max(1)).max(1);
        let cols = (maps as f64).sqrt().ceil().max(1.0) as u32;
        GridLayout {
            maps,
            k,
            per_side: (k as f64).sqrt().ceil().max(1.0) as u32,
            tile: r * zoom,
            zoom,
            cols,
            rows: maps.div_ceil(cols).max(1),
            caption,
            top,
            gap: config.gap,
            map_gap: config.map_gap,
            r,
        }
    }

    fn block(&self) -> u32 {
        self.per_side * self.tile + (self.per_side - 1) * self.gap
    }

    /// Width and height of the whole picture.
    pub fn size(&self) -> (u32, u32) {
        let (block, g) = (self.block(), self.map_gap);
        (
            self.cols * block + (self.cols + 1) * g,
            self.top + self.rows * (block + self.caption) + (self.rows + 1) * g,
        )
    }

    /// Top-left corner of map `m`'s caption strip (its block is below it).
    pub fn caption_origin(&self, m: u32) -> (u32, u32) {
        let (bx, by) = (m % self.cols, m / self.cols);
        let g = self.map_gap;
        (
            g + bx * (self.block() + g),
            self.top + g + by * (self.block() + self.caption + g),
        )
    }

    /// Top-left corner of tile `j` of map `m`.
    pub fn tile_origin(&self, m: u32, j: u32) -> (u32, u32) {
        let (x0, y0) = self.caption_origin(m);
        let (tx, ty) = (j % self.per_side, j / self.per_side);
        (
            x0 + tx * (self.tile + self.gap),
            y0 + self.caption + ty * (self.tile + self.gap),
        )
    }
}

/// Lays out `[M, k, 3, R, R]` tiles in `[0, 1]`: each map a square block of
/// its k tiles (row-major, strongest first), the blocks in a square grid.
/// `present` (`[M, k]` bool, optional) leaves empty slots background.
pub fn tile_grid(
    tiles: &Tensor,
    present: Option<&Tensor>,
    config: &RenderConfig,
) -> Result<RgbImage, DeconvError> {
    let (maps, k, r) = grid_shape(tiles)?;
    let layout = GridLayout::new(maps, k, r, config, 0, 0);
    paint_grid(tiles, present, &layout)
}

/// Labels of a grid: a header line over it, a caption per map (block), and
/// a value per tile (`None`: no label).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GridLabels {
    /// Over the grid (layer, epoch, what the tiles are).
    pub header: String,
    /// One per map, above its block.
    pub maps: Vec<String>,
    /// One per map and tile, in the tile's lower-left corner.
    pub values: Vec<Vec<Option<String>>>,
}

/// [`tile_grid`] with `labels` drawn in: the header and a legend of the
/// empty tile in a band on top, each block's caption above it, each tile's
/// value in its corner (on a dark box, so it reads on any tile).
pub fn labelled_grid(
    tiles: &Tensor,
    present: Option<&Tensor>,
    config: &RenderConfig,
    labels: &GridLabels,
) -> Result<RgbImage, DeconvError> {
    let (maps, k, r) = grid_shape(tiles)?;
    let layout = GridLayout::new(maps, k, r, config, 14, 34);
    let grid = paint_grid(tiles, present, &layout)?;
    let legend = "empty tile: the unit never fired on the probe set";
    let wide = text_width(&labels.header, 12.0).max(text_width(legend, 11.0) + 20) + 12;
    let mut img = if wide > grid.width() {
        zftrain_figures::with_margins(&grid, [0, 0, wide - grid.width(), 0], BACKGROUND)
    } else {
        grid
    };
    // The legend's swatch: an empty tile's colour, framed.
    for y in 20..31 {
        for x in 6..18 {
            let frame = y == 20 || y == 30 || x == 6 || x == 17;
            let c = if frame { [150, 150, 150] } else { BACKGROUND };
            img.put_pixel(x, y, Rgb(c));
        }
    }
    let light = [230, 230, 230];
    let mut text = vec![
        Label {
            color: light,
            ..Label::new(labels.header.clone(), (6, 3), 12.0)
        },
        Label {
            color: light,
            ..Label::new(legend, (22, 19), 11.0)
        },
    ];
    for (m, caption) in labels.maps.iter().enumerate().take(maps as usize) {
        let (x, y) = layout.caption_origin(m as u32);
        text.push(Label {
            color: light,
            ..Label::new(caption.clone(), (x as i32, y as i32 + 1), 11.0)
        });
    }
    let value_size = if layout.tile >= 40 { 10.0 } else { 8.0 };
    for (m, values) in labels.values.iter().enumerate().take(maps as usize) {
        for (j, v) in values.iter().enumerate().take(k as usize) {
            let Some(v) = v else { continue };
            let (x, y) = layout.tile_origin(m as u32, j as u32);
            let bottom = y + layout.tile - value_size as u32 - 2;
            text.push(Label {
                color: [255, 255, 255],
                background: Some([0, 0, 0]),
                ..Label::new(v.clone(), (x as i32 + 2, bottom as i32), value_size)
            });
        }
    }
    draw_text(&mut img, &text)?;
    Ok(img)
}

/// The background of grids and tables (and of empty tiles).
pub const BACKGROUND: [u8; 3] = [24, 24, 24];

/// `(maps, k, R)` of `[M, k, 3, R, R]` tiles.
fn grid_shape(tiles: &Tensor) -> Result<(u32, u32, u32), DeconvError> {
    let size = tiles.size();
    if size.len() != 5 || size[2] != 3 {
        return Err(DeconvError::Config(format!(
            "tiles must be [maps, k, 3, R, R], got {size:?}"
        )));
    }
    Ok((size[0] as u32, size[1] as u32, size[3] as u32))
}

/// The tiles painted at their places in `layout`, on the background.
fn paint_grid(
    tiles: &Tensor,
    present: Option<&Tensor>,
    layout: &GridLayout,
) -> Result<RgbImage, DeconvError> {
    let (width, height) = layout.size();
    let mut img = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
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
    let (r, zoom, tile, k) = (layout.r, layout.zoom, layout.tile, layout.k);
    let plane = (r * r) as usize;
    for m in 0..layout.maps {
        for j in 0..k {
            let i = (m * k + j) as usize;
            if present.as_ref().is_some_and(|p| !p[i]) {
                continue;
            }
            let (ox, oy) = layout.tile_origin(m, j);
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
    let mut img = RgbImage::from_pixel(w, h, Rgb(BACKGROUND));
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

/// [`tile_table`] with a title, a caption over each column and one left of
/// each row (the evolution montage: epochs across, maps down).
pub fn labelled_table(
    tiles: &Tensor,
    config: &RenderConfig,
    title: &str,
    columns: &[String],
    rows: &[String],
) -> Result<RgbImage, DeconvError> {
    let table = tile_table(tiles, config)?;
    let size = tiles.size();
    let r = size[3] as u32;
    let tile = r * config.min_tile.div_ceil(r.max(1)).max(1);
    let gap = config.gap.max(1);
    let (caption, size_px) = (16u32, 10.0);
    let left = rows
        .iter()
        .map(|l| text_width(l, size_px))
        .max()
        .map_or(0, |w| w + 8);
    let top = 20 + caption;
    let right = (text_width(title, 12.0) + 8).saturating_sub(left + table.width());
    let mut img = zftrain_figures::with_margins(&table, [left, top, right, 0], BACKGROUND);
    let light = [230, 230, 230];
    let mut text = vec![Label {
        color: light,
        ..Label::new(title, (4, 3), 12.0)
    }];
    for (i, c) in columns.iter().enumerate() {
        let x = left + gap + i as u32 * (tile + gap);
        let centred = x as i32 + (tile as i32 - text_width(c, size_px) as i32) / 2;
        text.push(Label {
            color: light,
            ..Label::new(c.clone(), (centred.max(x as i32), 22), size_px)
        });
    }
    for (j, l) in rows.iter().enumerate() {
        let y = top + gap + j as u32 * (tile + gap) + tile / 2 - 6;
        text.push(Label {
            color: light,
            ..Label::new(l.clone(), (4, y as i32), size_px)
        });
    }
    draw_text(&mut img, &text)?;
    Ok(img)
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

    #[test]
    fn a_labelled_grid_has_its_header_captions_and_tile_values_where_the_layout_says() {
        // 2 maps of 4 white tiles, the last of map 1 empty.
        let tiles = Tensor::ones([2, 4, 3, 4, 4], (Kind::Float, Device::Cpu));
        let present =
            Tensor::from_slice(&[true, true, true, true, true, true, true, false]).view([2, 4]);
        let config = RenderConfig::default();
        let labels = GridLabels {
            header: "conv2, epoch 5: top 4 per map".into(),
            maps: vec!["map 3".into(), "map 17".into()],
            values: vec![vec![Some("9.50".into()); 4], vec![Some("1.25".into()); 3]],
        };
        let img = labelled_grid(&tiles, Some(&present), &config, &labels).unwrap();
        let layout = GridLayout::new(2, 4, 4, &config, 14, 34);
        let (w, h) = layout.size();
        assert_eq!(img.height(), h);
        assert!(img.width() >= w, "widened for the legend, never narrower");
        // Header text in the top band, light on the background.
        let light = |x0: u32, y0: u32, x1: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0[0] > 150)
                .count()
        };
        assert!(light(0, 0, w, 16) > 40, "header");
        let (cx, cy) = layout.caption_origin(1);
        assert!(light(cx, cy, cx + 40, cy + 14) > 10, "caption of map 1");
        // A value box (black) in a present tile's lower-left corner, and
        // white tile pixels elsewhere in it.
        let (tx, ty) = layout.tile_origin(0, 0);
        let bottom = ty + layout.tile - 4;
        assert_eq!(img.get_pixel(tx + 1, bottom).0, [0, 0, 0]);
        assert_eq!(
            img.get_pixel(tx + layout.tile - 2, ty + 2).0,
            [255, 255, 255]
        );
        // The empty tile is background.
        let (ex, ey) = layout.tile_origin(1, 3);
        assert_eq!(img.get_pixel(ex + 20, ey + 20).0, BACKGROUND);
    }

    #[test]
    fn a_labelled_table_adds_a_title_column_captions_and_row_labels_around_the_tiles() {
        let tiles = Tensor::ones([2, 3, 3, 7, 7], (Kind::Float, Device::Cpu));
        let config = RenderConfig::default();
        let plain = tile_table(&tiles, &config).unwrap();
        let columns: Vec<String> = ["epoch 1", "epoch 2", "epoch 5"].map(String::from).into();
        let rows: Vec<String> = ["map 3", "map 12"].map(String::from).into();
        let img = labelled_table(&tiles, &config, "conv2: evolution", &columns, &rows).unwrap();
        let left = img.width() - plain.width();
        assert!(left > 20, "room for the row labels: {left}");
        assert_eq!(img.height(), plain.height() + 36);
        // The tiles moved by the margins, unchanged.
        assert_eq!(img.get_pixel(left + 10, 36 + 10).0, [255, 255, 255]);
        let light = (0..36)
            .flat_map(|y| (left..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] > 150)
            .count();
        assert!(light > 60, "title and captions: {light}");
    }
}
