//! The image transformations of the invariance analysis, on normalized
//! `[N, 3, H, W]` tensors: vertical translation, scaling about the centre,
//! rotation about the centre. Bilinear resampling; pixels from outside the
//! image are 0, which after normalization is the data set's mean colour.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// One transformation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "amount")]
pub enum Warp {
    /// Move the content down by this many pixels (negative: up).
    TranslateY(f64),
    /// Enlarge the content about the centre by this factor.
    Scale(f64),
    /// Rotate the content about the centre by this many degrees
    /// (counter-clockwise as displayed).
    Rotate(f64),
}

impl Warp {
    /// Whether it leaves the image as it is.
    pub fn is_identity(&self) -> bool {
        match *self {
            Warp::TranslateY(d) => d == 0.0,
            Warp::Scale(s) => s == 1.0,
            Warp::Rotate(a) => a.rem_euclid(360.0) == 0.0,
        }
    }

    /// The transformation's name (`translate_y`, `scale`, `rotate`).
    pub fn kind(&self) -> &'static str {
        match self {
            Warp::TranslateY(_) => "translate_y",
            Warp::Scale(_) => "scale",
            Warp::Rotate(_) => "rotate",
        }
    }

    /// Its amount (pixels, factor or degrees).
    pub fn amount(&self) -> f64 {
        match *self {
            Warp::TranslateY(v) | Warp::Scale(v) | Warp::Rotate(v) => v,
        }
    }

    /// The 2x3 matrix from output to input coordinates in the normalized
    /// [-1, 1] frame of a `h x w` image (`align_corners = false`).
    fn theta(&self, h: i64, _w: i64) -> [f64; 6] {
        match *self {
            Warp::TranslateY(d) => [1.0, 0.0, 0.0, 0.0, 1.0, -2.0 * d / h as f64],
            Warp::Scale(s) => [1.0 / s, 0.0, 0.0, 0.0, 1.0 / s, 0.0],
            Warp::Rotate(deg) => {
                let a = deg.to_radians();
                // Screen coordinates (y down): counter-clockwise content.
                [a.cos(), -a.sin(), 0.0, a.sin(), a.cos(), 0.0]
            }
        }
    }

    /// Applies it to `[N, 3, H, W]` images (the identity returns them as
    /// they are, bit for bit).
    pub fn apply(&self, images: &Tensor) -> Tensor {
        if self.is_identity() {
            return images.shallow_clone();
        }
        let size = images.size();
        let (n, h, w) = (size[0], size[2], size[3]);
        let theta = Tensor::from_slice(&self.theta(h, w))
            .to_kind(images.kind())
            .to_device(images.device())
            .view([1, 2, 3])
            .expand([n, 2, 3], true);
        let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), false);
        // Bilinear (0), zeros outside (0).
        images.grid_sampler(&grid, 0, 0, false)
    }
}

/// `[N, 3, H, W]` images with the boxes `(top, left, height, width)`, one
/// per image, filled with `value` (clipped to the image).
pub fn fill_boxes(images: &Tensor, boxes: &[(i64, i64, i64, i64)], value: f64) -> Tensor {
    let out = images.copy();
    let size = images.size();
    let (h, w) = (size[2], size[3]);
    tch::no_grad(|| {
        for (i, &(top, left, bh, bw)) in boxes.iter().enumerate() {
            let (y0, x0) = (top.clamp(0, h), left.clamp(0, w));
            let (y1, x1) = ((top + bh).clamp(0, h), (left + bw).clamp(0, w));
            if y1 > y0 && x1 > x0 {
                let _ = out
                    .get(i as i64)
                    .narrow(1, y0, y1 - y0)
                    .narrow(2, x0, x1 - x0)
                    .fill_(value);
            }
        }
    });
    out
}

/// A stack of `[3, H, W]` views as one `[N, 3, H, W]` tensor in `kind`.
pub fn stack(images: &[Tensor], kind: Kind) -> Tensor {
    Tensor::stack(images, 0).to_kind(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn ramp() -> Tensor {
        Tensor::arange(16 * 16, (Kind::Float, Device::Cpu))
            .view([1, 1, 16, 16])
            .repeat([1, 3, 1, 1])
    }

    #[test]
    fn identities_change_nothing_and_a_whole_pixel_shift_moves_rows() {
        let x = ramp();
        for w in [Warp::TranslateY(0.0), Warp::Scale(1.0), Warp::Rotate(360.0)] {
            assert!(w.apply(&x).equal(&x), "{w:?}");
        }
        let down = Warp::TranslateY(2.0).apply(&x);
        // Row 5 of the result is row 3 of the input; rows 0-1 come from outside.
        let diff = (down.narrow(2, 5, 1) - x.narrow(2, 3, 1))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-3, "{diff}");
        assert_eq!(
            down.narrow(2, 0, 2)
                .abs()
                .sum(Kind::Double)
                .double_value(&[]),
            0.0
        );
    }

    #[test]
    fn a_quarter_turn_moves_the_top_row_to_the_left_column() {
        let x = ramp();
        let r = Warp::Rotate(90.0).apply(&x);
        // Counter-clockwise: the top row (left to right) becomes the left
        // column (bottom to top).
        let top = x.get(0).get(0).get(0);
        let left = r.get(0).get(0).select(1, 0).flip([0]);
        let diff = (top - left).abs().max().double_value(&[]);
        assert!(diff < 1e-2, "{diff}");
    }

    #[test]
    fn boxes_are_filled_and_clipped() {
        let x = Tensor::ones([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let y = fill_boxes(&x, &[(2, 2, 3, 3), (6, 6, 5, 5)], 0.0);
        assert_eq!(
            y.get(0).sum(Kind::Double).double_value(&[]),
            3.0 * (64.0 - 9.0)
        );
        assert_eq!(
            y.get(1).sum(Kind::Double).double_value(&[]),
            3.0 * (64.0 - 4.0)
        );
        assert_eq!(
            x.sum(Kind::Double).double_value(&[]),
            3.0 * 128.0,
            "input untouched"
        );
    }
}
