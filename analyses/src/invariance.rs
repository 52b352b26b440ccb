//! Invariance (Zeiler & Fergus section 4.2, Fig. 5): each image is
//! translated vertically, scaled and rotated over ranges like the paper's;
//! for every transformed image, the distance between its feature vector and
//! the original's at layers 1 and 7, and the probability of the image's class.
//!
//! Distance: Euclidean, divided by the norm of the original image's feature
//! vector (`|f(T x) - f(x)| / |f(x)|`), so that layers of different sizes
//! and scales share an axis; 0 for the identity, about 1 for a feature
//! vector as far from the original as the original is from zero.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use zftrain_model::Network;

use crate::features::FeatureExtractor;
use crate::geometry::Warp;
use crate::AnalysisError;

/// The transformations tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvarianceConfig {
    /// Vertical translations in pixels (the paper's axis: about -60 to 60).
    pub translations: Vec<f64>,
    /// Scale factors (about 1 to 1.8).
    pub scales: Vec<f64>,
    /// Rotations in degrees (0 to 350).
    pub rotations: Vec<f64>,
    /// Images per forward.
    pub batch_size: usize,
}

fn range(from: f64, to: f64, step: f64) -> Vec<f64> {
    let n = ((to - from) / step).round() as i64;
    (0..=n).map(|i| from + step * i as f64).collect()
}

impl Default for InvarianceConfig {
    fn default() -> Self {
        InvarianceConfig {
            translations: range(-60.0, 60.0, 10.0),
            scales: range(1.0, 1.8, 0.1),
            rotations: range(0.0, 350.0, 10.0),
            batch_size: 32,
        }
    }
}

impl InvarianceConfig {
    /// Every transformation, grouped by kind.
    pub fn warps(&self) -> Vec<Warp> {
        let t = self.translations.iter().map(|&v| Warp::TranslateY(v));
        let s = self.scales.iter().map(|&v| Warp::Scale(v));
        let r = self.rotations.iter().map(|&v| Warp::Rotate(v));
        t.chain(s).chain(r).collect()
    }

    fn check(&self) -> Result<(), AnalysisError> {
        if let Some(s) = self.scales.iter().find(|&&s| !(s > 0.0 && s.is_finite())) {
            return Err(AnalysisError::Config(format!(
                "invariance scale {s} must be positive"
            )));
        }
        if self.warps().is_empty() {
            return Err(AnalysisError::Config(
                "no invariance transformations to try".into(),
            ));
        }
        Ok(())
    }
}

/// One transformed image's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvariancePoint {
    /// Index of the image.
    pub image: usize,
    /// The transformation.
    pub warp: Warp,
    /// Relative distance to the original at layer 1.
    pub layer1: f64,
    /// Relative distance to the original at layer 7.
    pub layer7: f64,
    /// The class followed: the image's true label when given, else the
    /// original's top class.
    pub class: i64,
    /// Probability of that class.
    pub probability: f64,
    /// The most probable class of the transformed image.
    pub top_class: i64,
}

/// Runs the analysis on `[N, 3, H, W]` images whose classes are `classes`
/// (true labels, or `None` for the class the network gives the original).
pub fn invariance(
    net: &Network,
    images: &Tensor,
    classes: &[Option<i64>],
    config: &InvarianceConfig,
) -> Result<Vec<InvariancePoint>, AnalysisError> {
    invariance_with_progress(net, images, classes, config, &mut |_| {})
}

/// [`invariance`], telling `progress` how many transformed images are done
/// after each original (`zftrain analyze` prints a line every so often).
pub fn invariance_with_progress(
    net: &Network,
    images: &Tensor,
    classes: &[Option<i64>],
    config: &InvarianceConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<InvariancePoint>, AnalysisError> {
    config.check()?;
    let n = images.size()[0];
    if classes.len() as i64 != n {
        return Err(AnalysisError::Config(format!(
            "{n} images but {} classes",
            classes.len()
        )));
    }
    let fx = FeatureExtractor::new(net, config.batch_size)?;
    let warps = config.warps();
    let mut out = Vec::new();
    for i in 0..n {
        let original = images.narrow(0, i, 1);
        let base = fx.extract(&original);
        let class = match classes[i as usize] {
            Some(c) => c,
            None => base.probs.argmax(-1, false).int64_value(&[0]),
        };
        let classes_n = base.probs.size()[1];
        if !(0..classes_n).contains(&class) {
            return Err(AnalysisError::Config(format!(
                "image {i}: class {class} is not one of the network's {classes_n}"
            )));
        }
        let warped: Vec<Tensor> =
            tch::no_grad(|| warps.iter().map(|w| w.apply(&original)).collect());
        let f = fx.extract(&Tensor::cat(&warped, 0));
        let distance = |layer: &Tensor, reference: &Tensor| -> Vec<f64> {
            let norm = reference.norm().double_value(&[]).max(f64::MIN_POSITIVE);
            let d = (layer - reference)
                .to_kind(Kind::Double)
                .square()
                .sum_dim_intlist(1, false, Kind::Double)
                .sqrt();
            Vec::<f64>::try_from(&d)
                .unwrap_or_default()
                .into_iter()
                .map(|v| v / norm)
                .collect()
        };
        let d1 = distance(&f.layer1, &base.layer1);
        let d7 = distance(&f.layer7, &base.layer7);
        let p = Vec::<f64>::try_from(&f.probs.select(1, class).to_kind(Kind::Double))
            .unwrap_or_default();
        let top = Vec::<i64>::try_from(&f.probs.argmax(-1, false)).unwrap_or_default();
        progress(warps.len());
        for (k, warp) in warps.iter().enumerate() {
            out.push(InvariancePoint {
                image: i as usize,
                warp: *warp,
                layer1: d1[k],
                layer7: d7[k],
                class,
                probability: p[k],
                top_class: top[k],
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::tests::{images, net};

    #[test]
    fn no_transformation_means_no_distance_and_the_original_probability() {
        let (_vs, net) = net();
        let x = images(2, 5);
        let config = InvarianceConfig {
            translations: vec![0.0, 20.0],
            scales: vec![1.0, 1.4],
            rotations: vec![0.0, 90.0],
            batch_size: 4,
        };
        let points = invariance(&net, &x, &[Some(2), None], &config).unwrap();
        assert_eq!(points.len(), 2 * 6);
        let probs = net.forward(&x, false).softmax(-1, Kind::Float);
        let top1 = probs.get(1).argmax(-1, false).int64_value(&[]);
        for p in &points {
            let class = if p.image == 0 { 2 } else { top1 };
            let original = probs.double_value(&[p.image as i64, class]);
            if p.warp.is_identity() {
                // Zero up to the summation order of another batch size.
                assert!(p.layer1 < 1e-5 && p.layer7 < 1e-5, "{p:?}");
                // (1e-6 failed once on an AVX2 machine: 1.07e-6, 18 f32
                // ulps at 0.5; the distances above allow 1e-5.)
                assert!(
                    (p.probability - original).abs() < 1e-5,
                    "{p:?} vs {original}"
                );
            } else {
                assert!(p.layer1 > 0.05 && p.layer7 > 0.0, "{p:?}");
            }
        }
        let bad = invariance(&net, &x, &[Some(9), None], &config)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("class 9"), "{bad}");
    }
}
