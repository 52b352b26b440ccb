//! Receptive-field boxes: the square of input pixels that can reach a unit
//! (`ReceptiveField::origin` of the model crate), cropped from an image or from a projection.
//! Where the box leaves the image, patches are filled with NaN (rendered
//! grey) and projections with zero (nothing projects there).

use tch::{Kind, Tensor};

/// Crops one `[C, size, size]` box per row of `boxes = (row, top, left)` from
/// `images` (`[N, C, H, W]`), filling outside the image with `fill`.
pub fn crop_boxes(images: &Tensor, size: i64, boxes: &[(i64, i64, i64)], fill: f64) -> Tensor {
    let s = images.size();
    let c = s[1];
    if boxes.is_empty() {
        return Tensor::zeros([0, c, size, size], (images.kind(), images.device()));
    }
    let padded = images.constant_pad_nd([size, size, size, size]);
    let padded = if fill == 0.0 {
        padded
    } else {
        // constant_pad_nd pads with zero only; mark the frame with `fill`.
        let inside = Tensor::zeros([1, 1, s[2], s[3]], (Kind::Bool, images.device()))
            .logical_not()
            .constant_pad_nd([size, size, size, size]);
        padded.where_self(
            &inside,
            &Tensor::from(fill)
                .to_kind(images.kind())
                .to_device(images.device()),
        )
    };
    let crops: Vec<Tensor> = boxes
        .iter()
        .map(|&(row, top, left)| {
            padded
                .get(row)
                .narrow(1, top + size, size)
                .narrow(2, left + size, size)
        })
        .collect();
    Tensor::stack(&crops, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    #[test]
    fn boxes_outside_the_image_are_filled() {
        let img = Tensor::arange(16, FLOAT_CPU).view([1, 1, 4, 4]);
        let crops = crop_boxes(&img, 3, &[(0, -1, -1), (0, 1, 1)], f64::NAN);
        assert_eq!(crops.size(), [2, 1, 3, 3]);
        // Top-left box: first row and column outside (NaN), then pixels 0, 1, 4, 5.
        assert!(crops.double_value(&[0, 0, 0, 0]).is_nan());
        assert!(crops.double_value(&[0, 0, 2, 0]).is_nan());
        assert_eq!(crops.double_value(&[0, 0, 1, 1]), 0.0);
        assert_eq!(crops.double_value(&[0, 0, 2, 2]), 5.0);
        // An inside box is a plain crop.
        assert_eq!(crops.double_value(&[1, 0, 0, 0]), 5.0);
        assert_eq!(crops.double_value(&[1, 0, 2, 2]), 15.0);
        let zeros = crop_boxes(&img, 3, &[(0, 2, 2)], 0.0);
        assert_eq!(zeros.double_value(&[0, 0, 2, 2]), 0.0);
        assert_eq!(zeros.double_value(&[0, 0, 0, 0]), 10.0);
    }
}
