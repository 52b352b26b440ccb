//! Whether Deconvnet projections show the structure of the image patches
//! under them (ZF Fig. 2: a layer-2 unit's projection traces the edges and
//! corners of its patch). Per tile, the Pearson correlation between the
//! gradient magnitude of the projection and that of the patch (both
//! greyscale, smoothed by a Gaussian of [`EDGE_SIGMA`] pixels so that edges
//! count at the scale of shapes and not of single pixels or the stride's
//! lattice), over the pixels inside the image; averaged over the tiles
//! whose unit fired. Against it, the same correlation with another map's
//! patch, which says how much agreement any patch would give.
//!
//! Near 1 when projections trace their patches' edges; near the other
//! map's reading when they show something else (noise, a texture the patch
//! does not have).
//!
//! Beside it, the coarse energy: the fraction of a projection's energy (its
//! mean removed) that the same smoothing keeps. Near 0 for a projection of
//! pixel noise (what random layer-1 filters draw), near 1 for one of
//! shapes; the share of what a reader sees that is structure at all.

use tch::{Kind, Tensor};

/// The agreement of one layer's projections with their patches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeAgreement {
    /// Mean correlation of each tile's projection with its own patch.
    pub matched: f64,
    /// Mean correlation of each tile's projection with the patch of the
    /// same rank in the next mined map (another unit, usually another image).
    pub other_map: f64,
    /// Mean fraction of each projection's energy (mean removed) that
    /// smoothing by [`EDGE_SIGMA`] keeps.
    pub coarse_energy: f64,
    /// Tiles that counted (their unit fired and both maps had contrast).
    pub tiles: usize,
}

/// The scale, in pixels, at which edges are compared (the Gaussian's sigma).
pub const EDGE_SIGMA: f64 = 1.5;

/// `[T, 1, R, R]` smoothed by a Gaussian of `sigma` pixels, over the pixels
/// where `valid` is 1 only (normalized convolution: outside pixels neither
/// count nor pull the border towards zero).
fn smooth(x: &Tensor, valid: &Tensor, sigma: f64) -> Tensor {
    let half = (2.0 * sigma).ceil() as i64;
    let r = Tensor::arange_start(-half, half + 1, (Kind::Float, x.device()));
    let g = (-(r.square()) / (2.0 * sigma * sigma)).exp();
    let g = &g / g.sum(Kind::Float);
    let n = 2 * half + 1;
    let blur = |t: &Tensor| {
        let across = t.conv2d(
            &g.view([1, 1, 1, n]),
            None::<Tensor>,
            [1],
            [0, half],
            [1],
            1,
        );
        across.conv2d(
            &g.view([1, 1, n, 1]),
            None::<Tensor>,
            [1],
            [half, 0],
            [1],
            1,
        )
    };
    blur(&(x * valid)) / blur(valid).clamp_min(1e-6) * valid
}

/// `[T, 1, R, R]` greyscale (channel mean) of `[T, C, R, R]` tiles.
fn grey(tiles: &Tensor) -> Tensor {
    tiles.mean_dim([1i64].as_slice(), true, Kind::Float)
}

/// `[T, 1, R-1, R-1]` gradient magnitudes of `[T, 1, R, R]` greyscale tiles
/// (smoothed by [`EDGE_SIGMA`]), and the mask of the pixels whose
/// differences stay inside `valid` (`[T, 1, R, R]`).
fn gradient_magnitude(grey: &Tensor, valid: &Tensor) -> (Tensor, Tensor) {
    let g = smooth(grey, valid, EDGE_SIGMA);
    let r = g.size()[3];
    let here = g.narrow(2, 0, r - 1).narrow(3, 0, r - 1);
    let dx = g.narrow(2, 0, r - 1).narrow(3, 1, r - 1) - &here;
    let dy = g.narrow(2, 1, r - 1).narrow(3, 0, r - 1) - &here;
    let magnitude = (dx.square() + dy.square()).sqrt();
    let v = valid.narrow(2, 0, r - 1).narrow(3, 0, r - 1)
        * valid.narrow(2, 0, r - 1).narrow(3, 1, r - 1)
        * valid.narrow(2, 1, r - 1).narrow(3, 0, r - 1);
    (magnitude, v)
}

/// `[T]` weighted Pearson correlations of `a` and `b` (`[T, 1, h, w]`)
/// over `mask`, and `[T]` whether each is defined (both vary).
fn correlations(a: &Tensor, b: &Tensor, mask: &Tensor) -> (Tensor, Tensor) {
    let dims = [1i64, 2, 3];
    let sum = |t: &Tensor| t.sum_dim_intlist(dims.as_slice(), true, Kind::Float);
    let n = sum(mask).clamp_min(1.0);
    let centred = |t: &Tensor| {
        let mean = sum(&(t * mask)) / &n;
        (t - mean) * mask
    };
    let (ca, cb) = (centred(a), centred(b));
    let cov = sum(&(&ca * &cb));
    let var = sum(&ca.square()) * sum(&cb.square());
    let defined = var.gt(1e-12).flatten(0, -1);
    let r = cov / var.clamp_min(1e-12).sqrt();
    (r.flatten(0, -1), defined)
}

/// The agreement of `[M, k, C, R, R]` projections with their patches (NaN
/// outside the image), over the tiles where `present` (`[M, k]`) is true.
/// Zeros when no tile counts.
pub fn edge_agreement(projections: &Tensor, patches: &Tensor, present: &Tensor) -> EdgeAgreement {
    let size = projections.size();
    let empty = EdgeAgreement {
        matched: 0.0,
        other_map: 0.0,
        coarse_energy: 0.0,
        tiles: 0,
    };
    if size.len() != 5 || size[0] == 0 || size[1] == 0 || size[3] < 3 {
        return empty;
    }
    let (m, k) = (size[0], size[1]);
    let proj = projections.to_kind(Kind::Float).flatten(0, 1);
    let patch = patches.to_kind(Kind::Float).flatten(0, 1);
    let inside = patch
        .isnan()
        .any_dims([1i64].as_slice(), true)
        .logical_not()
        .to_kind(Kind::Float);
    let patch = patch.nan_to_num(0.0, 0.0, 0.0);
    let proj = grey(&proj);
    let (gp, vp) = gradient_magnitude(&proj, &inside);
    let (gq, vq) = gradient_magnitude(&grey(&patch), &inside);
    let present = present.flatten(0, -1).to_kind(Kind::Bool);
    let mean_over = |r: &Tensor, ok: &Tensor| -> (f64, usize) {
        let ok = ok.logical_and(&present);
        let count = ok.sum(Kind::Int64).int64_value(&[]) as usize;
        let total = r.where_self(&ok, &r.zeros_like()).sum(Kind::Double);
        (total.double_value(&[]) / count.max(1) as f64, count)
    };
    let (matched, ok) = correlations(&gp, &gq, &vp);
    let (matched, tiles) = mean_over(&matched, &ok);
    // The patch of the same rank in the next map (the last map pairs with
    // the first); with one map, the next tile of the same map.
    let shift = if m > 1 { k } else { 1 };
    let other = gq.roll([shift].as_slice(), [0i64].as_slice());
    let other_valid = vq.roll([shift].as_slice(), [0i64].as_slice());
    let other_present = present.roll([shift].as_slice(), [0i64].as_slice());
    let (r, ok) = correlations(&gp, &other, &(&vp * other_valid));
    let (other_map, _) = mean_over(&r, &ok.logical_and(&other_present));
    // Coarse energy, over the pixels inside the image.
    let sum = |t: &Tensor| t.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float);
    let mean = (sum(&(&proj * &inside)) / sum(&inside).clamp_min(1.0)).view([-1, 1, 1, 1]);
    let centred = (&proj - mean) * &inside;
    let energy = sum(&centred.square());
    let coarse = sum(&smooth(&centred, &inside, EDGE_SIGMA).square()) / energy.clamp_min(1e-12);
    let (coarse_energy, _) = mean_over(&coarse, &energy.gt(1e-12));
    EdgeAgreement {
        matched,
        other_map,
        coarse_energy,
        tiles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::kind::FLOAT_CPU;

    /// `[M, k, 3, 16, 16]` tiles, each a bright square at its own place.
    fn squares(m: i64, k: i64) -> Tensor {
        let t = Tensor::zeros([m, k, 3, 16, 16], FLOAT_CPU);
        for i in 0..m {
            for j in 0..k {
                let (y, x) = (1 + (i * 3 + j * 5) % 9, 1 + (i * 7 + j * 2) % 9);
                let _ = t.get(i).get(j).narrow(1, y, 6).narrow(2, x, 6).fill_(1.0);
            }
        }
        t
    }

    #[test]
    fn projections_that_trace_their_patches_agree_and_noise_does_not() {
        tch::manual_seed(0);
        let patches = squares(4, 3);
        let present = Tensor::ones([4, 3], (Kind::Bool, tch::Device::Cpu));
        // A projection that is its patch, scaled and shifted in level (the
        // display stretches it anyway): full agreement.
        let same = edge_agreement(&(&patches * 3.0 - 1.0), &patches, &present);
        assert!((same.matched - 1.0).abs() < 1e-4, "{same:?}");
        assert_eq!(same.tiles, 12);
        assert!(same.other_map < 0.5, "{same:?}");
        // Pixel noise: none, and under a tenth of its energy survives
        // smoothing; half of a 6-pixel square's does.
        let noise = Tensor::randn([4, 3, 3, 16, 16], FLOAT_CPU);
        let noisy = edge_agreement(&noise, &patches, &present);
        assert!(noisy.matched.abs() < 0.15, "{noisy:?}");
        assert!(
            noisy.coarse_energy < 0.1 && same.coarse_energy > 0.4,
            "{noisy:?} {same:?}"
        );
        // Units that never fired do not count.
        let some = Tensor::from_slice(&[true, false, false])
            .view([1, 3])
            .expand([4, 3], true);
        assert_eq!(edge_agreement(&patches, &patches, &some).tiles, 4);
    }

    #[test]
    fn pixels_outside_the_image_are_left_out() {
        let patches = squares(2, 1);
        let projections = patches.shallow_clone();
        // Right half of the patches outside the image, and the projection
        // there something else entirely.
        let patches = patches.copy();
        let _ = patches.narrow(4, 8, 8).fill_(f64::NAN);
        let projections = projections.copy();
        let _ = projections.narrow(4, 9, 7).fill_(5.0);
        let present = Tensor::ones([2, 1], (Kind::Bool, tch::Device::Cpu));
        let a = edge_agreement(&projections, &patches, &present);
        assert!((a.matched - 1.0).abs() < 1e-4, "{a:?}");
    }
}
