//! Counter-based dropout: the mask is a hash of (seed, layer, global row,
//! column), computed with integer tensor ops on the tensor's own device.
//!
//! Why: libtorch's dropout draws from one generator per device, shared by
//! every thread, so CPU replicas are not reproducible, and GPU replicas seeded
//! alike draw the same masks for different shards. Here a replica that holds
//! rows `first_row..first_row + n` of the global batch draws exactly the mask
//! one replica holding the whole batch would draw for those rows, on any
//! device: data parallelism with dropout on trains the same model as one
//! device at the same global batch (up to reduction order).

use tch::{Device, Kind, Tensor};

/// The dropout stream of one training step: `seed` differs per step (the
/// trainer derives it from the run seed); `first_row` is this shard's offset
/// in the global batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropoutStream {
    /// The step's seed.
    pub seed: u64,
    /// Global batch index of this shard's first row.
    pub first_row: i64,
}

/// SplitMix64's finalizer (Steele, Lea & Flood 2014).
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const LOW31: i64 = 0x7FFF_FFFF;

/// A 31-bit integer hash, in place, on int64 tensors holding values below
/// 2^31 (products stay below 2^62: no overflow on any device).
fn hash31_(x: &mut Tensor) {
    let _ = x.bitwise_xor_tensor_(&x.bitwise_right_shift_tensor_scalar(16));
    let _ = x.g_mul_scalar_(0x2C1B_3C6Di64).bitwise_and_(LOW31);
    let _ = x.bitwise_xor_tensor_(&x.bitwise_right_shift_tensor_scalar(15));
    let _ = x.g_mul_scalar_(0x297A_2D39i64).bitwise_and_(LOW31);
    let _ = x.bitwise_xor_tensor_(&x.bitwise_right_shift_tensor_scalar(16));
}

/// The same hash on one value (the tests check the two agree).
pub fn hash31(mut x: i64) -> i64 {
    x ^= x >> 16;
    x = (x * 0x2C1B_3C6D) & LOW31;
    x ^= x >> 15;
    x = (x * 0x297A_2D39) & LOW31;
    x ^ (x >> 16)
}

/// `[rows, cols]` int64 draws in `[0, 2^31)` for rows `first_row..` of the
/// global batch, for dropout layer `layer`, on `device`.
pub fn draws(stream: &DropoutStream, layer: usize, rows: i64, cols: i64, device: Device) -> Tensor {
    let key = mix64(stream.seed ^ mix64(layer as u64 + 1));
    let (s1, s2) = (
        (key & LOW31 as u64) as i64,
        ((key >> 32) & LOW31 as u64) as i64,
    );
    let start = stream.first_row * cols;
    let index = Tensor::arange_start(start, start + rows * cols, (Kind::Int64, device));
    let mut x = index.bitwise_and(LOW31).bitwise_xor(s1);
    hash31_(&mut x);
    // Indices past 2^31 get their high bits mixed in by a second round.
    let _ = x
        .bitwise_xor_tensor_(&index.bitwise_right_shift_tensor_scalar(31))
        .bitwise_xor_(s2);
    hash31_(&mut x);
    x.view([rows, cols])
}

/// Training-mode dropout of `xs` (`[N, ...]`, any float kind) with drop
/// probability `p`, scaled by `1 / (1 - p)`, the mask drawn from `stream`.
pub fn dropout(xs: &Tensor, p: f64, stream: &DropoutStream, layer: usize) -> Tensor {
    if p <= 0.0 {
        return xs.shallow_clone();
    }
    let shape = xs.size();
    let rows = shape[0];
    let cols: i64 = shape[1..].iter().product();
    let threshold = (p * (1u64 << 31) as f64).round() as i64;
    let keep = draws(stream, layer, rows, cols, xs.device())
        .ge(threshold)
        .to_kind(xs.kind())
        .g_mul_scalar(1.0 / (1.0 - p));
    xs * keep.view(shape.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_and_scalar_hashes_agree() {
        let s = DropoutStream {
            seed: 7,
            first_row: 3,
        };
        let t = draws(&s, 2, 2, 5, Device::Cpu);
        let key = mix64(7 ^ mix64(3));
        let (s1, s2) = (
            (key & LOW31 as u64) as i64,
            ((key >> 32) & LOW31 as u64) as i64,
        );
        for r in 0..2 {
            for c in 0..5 {
                let i = (3 + r) * 5 + c;
                let want = hash31(hash31((i & LOW31) ^ s1) ^ (i >> 31) ^ s2);
                assert_eq!(t.int64_value(&[r, c]), want);
            }
        }
    }

    #[test]
    fn a_shard_draws_the_rows_of_the_whole_batch() {
        let whole = draws(
            &DropoutStream {
                seed: 9,
                first_row: 0,
            },
            0,
            8,
            100,
            Device::Cpu,
        );
        let part = draws(
            &DropoutStream {
                seed: 9,
                first_row: 5,
            },
            0,
            3,
            100,
            Device::Cpu,
        );
        assert!(whole.narrow(0, 5, 3).equal(&part));
        let other = draws(
            &DropoutStream {
                seed: 10,
                first_row: 0,
            },
            0,
            8,
            100,
            Device::Cpu,
        );
        assert!(!whole.equal(&other), "another seed draws another mask");
        let layer = draws(
            &DropoutStream {
                seed: 9,
                first_row: 0,
            },
            1,
            8,
            100,
            Device::Cpu,
        );
        assert!(!whole.equal(&layer), "another layer draws another mask");
    }

    #[test]
    fn the_drop_rate_and_scale_are_right() {
        let xs = Tensor::ones([64, 4096], (Kind::Float, Device::Cpu));
        let s = DropoutStream {
            seed: 1,
            first_row: 0,
        };
        let ys = dropout(&xs, 0.5, &s, 0);
        let kept = ys
            .gt(0.0)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!((kept - 0.5).abs() < 0.01, "kept fraction {kept}");
        assert_eq!(ys.max().double_value(&[]), 2.0);
        let mean = ys.mean(Kind::Double).double_value(&[]);
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
        let ys3 = dropout(&xs, 0.3, &s, 0);
        let kept3 = ys3
            .gt(0.0)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!((kept3 - 0.7).abs() < 0.01, "kept fraction {kept3}");
    }
}
