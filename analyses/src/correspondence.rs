//! Correspondence (Zeiler & Fergus section 4.3, Table 1): the same part
//! (say, the left eye) is occluded in several images of one category; at a
//! layer, `eps_i = x_i - x~_i` is the change of image `i`'s feature vector,
//! and the consistency of the changes across images is the Hamming distance
//! between `sign(eps_i)` and `sign(eps_j)`. The paper sums it over pairs
//! `i != j`; its published values are below 1, so it must be normalized: here
//! each pair's distance is the fraction of dimensions whose signs differ,
//! and a row reports the mean and standard deviation over the ordered pairs
//! (for random boxes: over the pairs of all draws). Lower means the network
//! changes the same way for the same part: an implicit correspondence.
//!
//! Rectified layers leave many dimensions unchanged (`eps = 0`) in both
//! images of a pair: such ties agree by construction and pull the distance
//! down for any occluder. Each row therefore also reports the distance over
//! the dimensions that changed in both images only (`mean_untied`,
//! `std_untied`, over the `untied_pairs` pairs that have any).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use zftrain_model::Network;

use crate::features::FeatureExtractor;
use crate::geometry::fill_boxes;
use crate::AnalysisError;

/// A box in an image: `(top, left, height, width)` in pixels of the
/// preprocessed image.
pub type PartBox = (i64, i64, i64, i64);

/// A named part, with its box in every image (same order as the images).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Its name (`left_eye`).
    pub name: String,
    /// One box per image.
    pub boxes: Vec<PartBox>,
}

/// Settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrespondenceConfig {
    /// Layers compared (1, 5 or 7).
    pub layers: Vec<usize>,
    /// Draws of randomly placed boxes (the size of the first part's boxes).
    pub random_draws: usize,
    /// One box per image that the random boxes are drawn inside: the
    /// object's extent, given with the parts (empty: the whole image, where
    /// a random box may fall on the background).
    pub objects: Vec<PartBox>,
    /// Seed of the random boxes.
    pub seed: u64,
    /// The occluder's value (0: the mean colour).
    pub value: f64,
    /// Images per forward.
    pub batch_size: usize,
}

impl Default for CorrespondenceConfig {
    fn default() -> Self {
        CorrespondenceConfig {
            layers: vec![5, 7],
            random_draws: 5,
            objects: Vec::new(),
            seed: 0,
            value: 0.0,
            batch_size: 16,
        }
    }
}

/// One row of the table: a part (or `random`) at one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorrespondenceRow {
    /// The part.
    pub part: String,
    /// The layer.
    pub layer: usize,
    /// Mean normalized Hamming distance over the pairs.
    pub mean: f64,
    /// Its standard deviation.
    pub std: f64,
    /// Pairs it is over.
    pub pairs: usize,
    /// Mean distance over the dimensions that changed in both images.
    pub mean_untied: f64,
    /// Its standard deviation.
    pub std_untied: f64,
    /// Pairs with any dimension changed in both images.
    pub untied_pairs: usize,
}

/// The normalized Hamming distance of every ordered pair `i != j` of the
/// rows of `eps` (`[N, D]`): the fraction of dimensions where
/// `sign(eps_i) != sign(eps_j)`.
pub fn pair_distances(eps: &Tensor) -> Vec<f64> {
    let s = eps.sign();
    let n = s.size()[0];
    let d = s.size()[1].max(1) as f64;
    let mut out = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i != j {
                let differ = s
                    .get(i)
                    .ne_tensor(&s.get(j))
                    .sum(Kind::Int64)
                    .int64_value(&[]);
                out.push(differ as f64 / d);
            }
        }
    }
    out
}

/// [`pair_distances`] over the dimensions where both `eps_i` and `eps_j`
/// are non-zero (ties at zero left out): per ordered pair with any such
/// dimension, the fraction of them whose signs differ.
pub fn untied_pair_distances(eps: &Tensor) -> Vec<f64> {
    let s = eps.sign();
    let changed = s.ne(0.0);
    let n = s.size()[0];
    let mut out = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let both = changed.get(i).logical_and(&changed.get(j));
            let count = both.sum(Kind::Int64).int64_value(&[]);
            if count == 0 {
                continue;
            }
            let differ = s
                .get(i)
                .ne_tensor(&s.get(j))
                .logical_and(&both)
                .sum(Kind::Int64)
                .int64_value(&[]);
            out.push(differ as f64 / count as f64);
        }
    }
    out
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

/// A tiny generator for the random boxes (reproducible from the seed).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `config.random_draws` draws of a box of `size` (height, width) in each
/// of `n` images of `h` x `w`, placed uniformly inside the image's object
/// box (`config.objects`; the whole image without them). An object box
/// outside the image or smaller than `size` is an error naming the image.
pub fn random_boxes(
    n: usize,
    (h, w): (i64, i64),
    (bh, bw): (i64, i64),
    config: &CorrespondenceConfig,
) -> Result<Vec<Vec<PartBox>>, AnalysisError> {
    let regions: Vec<PartBox> = match config.objects.len() {
        0 => vec![(0, 0, h, w); n],
        k if k == n => config.objects.clone(),
        k => {
            return Err(AnalysisError::Config(format!(
                "{k} object boxes for {n} images"
            )))
        }
    };
    for (i, &(t, l, oh, ow)) in regions.iter().enumerate() {
        if t < 0 || l < 0 || t + oh > h || l + ow > w || oh < bh || ow < bw {
            return Err(AnalysisError::Config(format!(
                "image {i}: the object box (top {t}, left {l}, height {oh}, width {ow}) must lie inside the {h}x{w} image and hold the {bh}x{bw} random box"
            )));
        }
    }
    let mut state = config.seed;
    Ok((0..config.random_draws)
        .map(|_| {
            regions
                .iter()
                .map(|&(ot, ol, oh, ow)| {
                    let t = ot + (next(&mut state) % (oh - bh + 1) as u64) as i64;
                    let l = ol + (next(&mut state) % (ow - bw + 1) as u64) as i64;
                    (t, l, bh, bw)
                })
                .collect()
        })
        .collect())
}

/// Runs the analysis on `[N, 3, H, W]` images (N >= 2) for `parts`, plus
/// `random_draws` draws of random boxes (inside the object boxes when
/// given).
pub fn correspondence(
    net: &Network,
    images: &Tensor,
    parts: &[Part],
    config: &CorrespondenceConfig,
) -> Result<Vec<CorrespondenceRow>, AnalysisError> {
    correspondence_with_progress(net, images, parts, config, &mut |_| {})
}

/// Two or more images and at least one part, each with a box inside the
/// `h` x `w` image for every one of the `n` images.
fn check_parts(parts: &[Part], n: i64, (h, w): (i64, i64)) -> Result<(), AnalysisError> {
    if n < 2 {
        return Err(AnalysisError::Config(format!(
            "correspondence needs at least two images, got {n}"
        )));
    }
    if parts.is_empty() {
        return Err(AnalysisError::Config(
            "correspondence needs at least one part".into(),
        ));
    }
    for p in parts {
        if p.boxes.len() as i64 != n {
            return Err(AnalysisError::Config(format!(
                "part '{}' has {} boxes for {n} images",
                p.name,
                p.boxes.len()
            )));
        }
        for (i, &(t, l, bh, bw)) in p.boxes.iter().enumerate() {
            if bh < 1 || bw < 1 || t < 0 || l < 0 || t + bh > h || l + bw > w {
                return Err(AnalysisError::Config(format!(
                    "part '{}', image {i}: box (top {t}, left {l}, height {bh}, width {bw}) is not inside the {h}x{w} image",
                    p.name
                )));
            }
        }
    }
    Ok(())
}

/// [`correspondence`], telling `progress` how many occluded images are
/// done after each part or random draw (N each; `zftrain analyze` prints a
/// line every so often).
pub fn correspondence_with_progress(
    net: &Network,
    images: &Tensor,
    parts: &[Part],
    config: &CorrespondenceConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<CorrespondenceRow>, AnalysisError> {
    let size = images.size();
    let (n, h, w) = (size[0], size[2], size[3]);
    check_parts(parts, n, (h, w))?;
    // Drawn (and their object boxes checked) before any work.
    let (_, _, bh, bw) = parts[0].boxes[0];
    let random = match config.random_draws {
        0 => None,
        _ => Some(random_boxes(n as usize, (h, w), (bh, bw), config)?),
    };
    let fx = FeatureExtractor::new(net, config.batch_size)?;
    let original = fx.extract(images);
    for &layer in &config.layers {
        original.layer(layer)?;
    }
    let mut rows = Vec::new();
    let mut measure = |name: &str, draws: &[Vec<PartBox>]| -> Result<(), AnalysisError> {
        let mut per_layer: Vec<Vec<f64>> = vec![Vec::new(); config.layers.len()];
        let mut untied: Vec<Vec<f64>> = vec![Vec::new(); config.layers.len()];
        for boxes in draws {
            let occluded = fx.extract(&fill_boxes(images, boxes, config.value));
            progress(n as usize);
            for (k, &layer) in config.layers.iter().enumerate() {
                let eps = original.layer(layer)? - occluded.layer(layer)?;
                per_layer[k].extend(pair_distances(&eps));
                untied[k].extend(untied_pair_distances(&eps));
            }
        }
        for (k, &layer) in config.layers.iter().enumerate() {
            let (mean, std) = mean_std(&per_layer[k]);
            let (mean_untied, std_untied) = mean_std(&untied[k]);
            rows.push(CorrespondenceRow {
                part: name.to_string(),
                layer,
                mean,
                std,
                pairs: per_layer[k].len(),
                mean_untied,
                std_untied,
                untied_pairs: untied[k].len(),
            });
        }
        Ok(())
    };
    for p in parts {
        measure(&p.name, std::slice::from_ref(&p.boxes))?;
    }
    if let Some(draws) = random {
        measure("random", &draws)?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::tests::{images, net};

    #[test]
    fn ties_at_zero_count_as_agreement_in_one_distance_and_are_left_out_of_the_other() {
        // Dimension 3 differs; 1 and 2 are zero in both (ties); 0 agrees.
        let eps = Tensor::from_slice(&[1.0f32, 0.0, 0.0, -1.0, 2.0, 0.0, 0.0, 3.0]).view([2, 4]);
        assert_eq!(pair_distances(&eps), [0.25, 0.25]);
        assert_eq!(untied_pair_distances(&eps), [0.5, 0.5]);
        // A pair with nothing changed in both has no untied distance.
        let none = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0]).view([2, 2]);
        assert_eq!(untied_pair_distances(&none), Vec::<f64>::new());
    }

    #[test]
    fn random_boxes_fall_inside_the_object_boxes() {
        let config = CorrespondenceConfig {
            random_draws: 200,
            objects: vec![(100, 20, 60, 80), (0, 0, 224, 224)],
            ..CorrespondenceConfig::default()
        };
        let draws = random_boxes(2, (224, 224), (30, 40), &config).unwrap();
        assert_eq!(draws.len(), 200);
        let (mut tops, mut lefts) = (Vec::new(), Vec::new());
        for boxes in &draws {
            let (t, l, h, w) = boxes[0];
            assert!(
                t >= 100 && l >= 20 && t + h <= 160 && l + w <= 100,
                "{boxes:?}"
            );
            tops.push(t);
            lefts.push(l);
            let (t, l, h, w) = boxes[1];
            assert!(t + h <= 224 && l + w <= 224 && (h, w) == (30, 40));
        }
        // Every place inside the object is reachable: its corners are.
        assert_eq!(tops.iter().min().zip(tops.iter().max()), Some((&100, &130)));
        assert_eq!(lefts.iter().min().zip(lefts.iter().max()), Some((&20, &60)));
        // The whole image without objects; an object too small, or a
        // wrong count, is named.
        let whole = CorrespondenceConfig {
            objects: vec![],
            ..config.clone()
        };
        let spread = random_boxes(2, (224, 224), (30, 40), &whole).unwrap();
        assert!(spread.iter().any(|b| b[0].0 > 160 || b[0].1 > 100));
        let small = CorrespondenceConfig {
            objects: vec![(0, 0, 224, 224), (10, 10, 20, 100)],
            ..config.clone()
        };
        let e = random_boxes(2, (224, 224), (30, 40), &small)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image 1") && e.contains("30x40"), "{e}");
        let e = random_boxes(3, (224, 224), (30, 40), &config)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 object boxes for 3 images"), "{e}");
    }

    #[test]
    fn the_distance_counts_differing_signs() {
        let eps = Tensor::from_slice(&[1.0f32, -1.0, 0.0, 2.0, 1.0, 1.0, 0.0, -2.0]).view([2, 4]);
        assert_eq!(pair_distances(&eps), vec![0.5, 0.5]);
    }

    #[test]
    fn identical_images_give_zero_and_bad_boxes_are_refused() {
        let (_vs, net) = net();
        let one = images(1, 9);
        let same = Tensor::cat(&[&one, &one, &one], 0);
        let part = Part {
            name: "eye".into(),
            boxes: vec![(50, 60, 30, 30); 3],
        };
        let config = CorrespondenceConfig {
            random_draws: 2,
            ..CorrespondenceConfig::default()
        };
        let rows = correspondence(&net, &same, std::slice::from_ref(&part), &config).unwrap();
        assert_eq!(rows.len(), 4);
        for r in rows.iter().filter(|r| r.part == "eye") {
            assert_eq!((r.mean, r.std, r.pairs), (0.0, 0.0, 6), "{r:?}");
        }
        // Random boxes land in different places in each image: not zero.
        assert!(
            rows.iter().any(|r| r.part == "random" && r.mean > 0.0),
            "{rows:?}"
        );
        let outside = Part {
            name: "nose".into(),
            boxes: vec![(200, 200, 30, 30); 3],
        };
        let e = correspondence(&net, &same, &[outside], &config)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("part 'nose', image 0") && e.contains("not inside"),
            "{e}"
        );
        let e = correspondence(&net, &one, &[part], &config)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least two images"), "{e}");
    }
}
