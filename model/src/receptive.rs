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
                (
                    LayerKind::Relu
                    | LayerKind::Lrn(_)
                    | LayerKind::BatchNorm(_)
                    | LayerKind::Dropout { .. },
                    r,
                ) => r,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchConfig;
    use crate::ArchName;

    fn fields(name: ArchName) -> Vec<(i64, i64)> {
        let arch = Arch::builtin(name, &ArchConfig::default()).unwrap();
        let rf = receptive_fields(&arch);
        arch.conv_indices()
            .into_iter()
            .map(|i| rf[i].map(|r| (r.size, r.stride)).unwrap())
            .collect()
    }

    #[test]
    fn seed_receptive_fields_are_the_specs() {
        assert_eq!(
            fields(ArchName::ZfnetSeed),
            [(7, 2), (27, 8), (75, 16), (107, 16), (139, 16)]
        );
        assert_eq!(
            fields(ArchName::Zfnet),
            [(7, 2), (27, 8), (75, 16), (107, 16), (139, 16)]
        );
        assert_eq!(
            fields(ArchName::Alexnet),
            [(11, 4), (51, 8), (99, 16), (131, 16), (163, 16)]
        );
    }

    /// The input interval a range of units covers, walking the windows down
    /// one layer at a time: an independent computation of the field.
    fn brute_force(arch: &Arch, layer: usize, y: i64) -> (i64, i64) {
        let (mut lo, mut hi) = (y, y);
        for l in arch.layers[..=layer].iter().rev() {
            let (k, s, p) = match &l.kind {
                LayerKind::Conv(c) => (c.kernel, c.stride, c.padding),
                LayerKind::MaxPool(m) => (m.kernel, m.stride, m.padding),
                _ => continue,
            };
            lo = lo * s - p;
            hi = hi * s - p + k - 1;
        }
        (lo, hi)
    }

    #[test]
    fn origin_and_size_match_a_brute_force_walk() {
        for name in ArchName::ALL {
            let arch = Arch::builtin(name, &ArchConfig::default()).unwrap();
            let rf = receptive_fields(&arch);
            for i in arch.conv_indices() {
                let r = rf[i].unwrap();
                for y in [0, 1, 3, 5] {
                    let (lo, hi) = brute_force(&arch, i, y);
                    assert_eq!(r.origin(y, y), (lo, lo), "{name} layer {i} unit {y}");
                    assert_eq!(hi - lo + 1, r.size, "{name} layer {i} unit {y}");
                }
            }
        }
    }
}
