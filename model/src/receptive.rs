//! Receptive fields of every spatial layer, derived from the table.
//!
//! For a unit at `(y, x)` of a layer, the input pixels that can influence it
//! form a square of side `size`, centred at `start + stride * (y, x)` (in input
//! pixel coordinates, possibly outside the image where the layers pad). The
//! Deconvnet's image patches are cropped with these numbers.

use crate::layer::LayerKind;
use crate::Arch;

/// Receptive field of the units of one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceptiveField {
    /// Side of the square of input pixels that reaches one unit.
    pub size: i64,
    /// Cumulative stride: input pixels between neighbouring units.
    pub stride: i64,
    /// Input coordinate of the centre of unit 0's field.
    pub start: f64,
}

impl ReceptiveField {
    /// The field of one input pixel.
    pub const PIXEL: ReceptiveField = ReceptiveField {
        size: 1,
        stride: 1,
        start: 0.0,
    };

    /// The field after a window of `kernel`, `stride`, `padding`.
    pub fn through(self, kernel: i64, stride: i64, padding: i64) -> ReceptiveField {
        ReceptiveField {
            size: self.size + (kernel - 1) * self.stride,
            stride: self.stride * stride,
            start: self.start + ((kernel - 1) as f64 / 2.0 - padding as f64) * self.stride as f64,
        }
    }

    /// Top-left input pixel of the field of unit `(y, x)` (may be negative).
    pub fn origin(&self, y: i64, x: i64) -> (i64, i64) {
        let half = (self.size - 1) as f64 / 2.0;
        let top = self.start + (y * self.stride) as f64 - half;
        let left = self.start + (x * self.stride) as f64 - half;
        (top.round() as i64, left.round() as i64)
    }
}

/// The receptive field of every layer's output, `None` once the layers are no
/// longer spatial (after flatten, or an adaptive pool that changes the size).
pub fn receptive_fields(arch: &Arch) -> Vec<Option<ReceptiveField>> {
    let shapes = crate::shape::infer_shapes(arch).ok();
    let mut rf = Some(ReceptiveField::PIXEL);
    let mut prev_hw: Option<Vec<i64>> = Some(arch.input[1..].to_vec());
    arch.layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            rf = match (&layer.kind, rf) {
                (LayerKind::Conv(c), Some(r)) => Some(r.through(c.kernel, c.stride, c.padding)),
                (LayerKind::MaxPool(p), Some(r)) => Some(r.through(p.kernel, p.stride, p.padding)),
                (LayerKind::Relu | LayerKind::Lrn(_) | LayerKind::Dropout { .. }, r) => r,
                (LayerKind::AdaptiveAvgPool { height, width }, r) => {
                    // Identity when the input already has the output size.
                    let same = prev_hw.as_deref() == Some(&[*height, *width][..]);
                    if same {
                        r
                    } else {
                        None
                    }
                }
                _ => None,
            };
            prev_hw = shapes
                .as_ref()
                .and_then(|s| s.get(i))
                .filter(|s| s.output.len() == 3)
                .map(|s| s.output[1..].to_vec());
            rf
        })
        .collect()
}
