//! Occlusion sensitivity (Zeiler & Fergus section 4.1, Fig. 7): a grey
//! square slid over the image; for every position, the total activation of
//! the layer-5 feature map that is strongest on the unoccluded image, the
//! probability of the image's class, and the most probable class. All
//! occluded copies of an image go through the network in batches. The
//! feature map's strongest unit is also projected to pixels with the
//! Deconvnet (panel c of the figure).
//!
//! Positions: the square's top-left corner at `0, stride, 2 stride, ...`
//! while the square fits inside the image, on both axes.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use zftrain_deconv::{project, Target};
use zftrain_model::Network;

use crate::geometry::fill_boxes;
use crate::AnalysisError;

/// The occluder and the batching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcclusionConfig {
    /// Side of the grey square in pixels (the paper does not say; 27 with
    /// stride 7 is a common re-implementation's choice, used here).
    pub size: i64,
    /// Step between positions in pixels.
    pub stride: i64,
    /// The square's value in the normalized image: 0 is the data set's
    /// mean colour (grey).
    pub value: f64,
    /// The conv layer (1-based) whose strongest feature map is followed.
    pub layer: usize,
    /// Occluded images per forward.
    pub batch_size: usize,
}

impl Default for OcclusionConfig {
    fn default() -> Self {
        OcclusionConfig {
            size: 27,
            stride: 7,
            value: 0.0,
            layer: 5,
            batch_size: 32,
        }
    }
}

/// The maps of one image.
#[derive(Debug)]
pub struct OcclusionMap {
    /// Positions down.
    pub rows: usize,
    /// Positions across.
    pub cols: usize,
    /// Top edge of each row's square.
    pub tops: Vec<i64>,
    /// Left edge of each column's square.
    pub lefts: Vec<i64>,
    /// The class followed (true label, or the top class of the unoccluded image).
    pub class: i64,
    /// The top class of the unoccluded image (the class followed when no
    /// label was given).
    pub predicted: i64,
    /// Its probability on the unoccluded image.
    pub predicted_probability: f64,
    /// The followed feature map of the layer.
    pub channel: i64,
    /// Its strongest unit on the unoccluded image, `(y, x)` in the map.
    pub unit: (i64, i64),
    /// Its total activation on the unoccluded image.
    pub base_activation: f64,
    /// The class's probability on the unoccluded image.
    pub base_probability: f64,
    /// `rows x cols`, row-major: total activation of the feature map.
    pub activation: Vec<f64>,
    /// `rows x cols`: probability of `class`.
    pub probability: Vec<f64>,
    /// `rows x cols`: the most probable class.
    pub top_class: Vec<i64>,
    /// `rows x cols`: its probability.
    pub top_probability: Vec<f64>,
    /// `[3, H, W]`: the Deconvnet projection of the strongest unit (CPU).
    pub projection: Tensor,
}

impl OcclusionMap {
    /// The square's `(top, left)` at position `(row, col)`.
    pub fn position(&self, row: usize, col: usize) -> (i64, i64) {
        (self.tops[row], self.lefts[col])
    }
}

fn steps(extent: i64, size: i64, stride: i64) -> Vec<i64> {
    (0..)
        .map(|i| i * stride)
        .take_while(|&p| p + size <= extent)
        .collect()
}

/// Runs the analysis on one `[3, H, W]` image of class `class` (`None`:
/// the class the network gives it).
pub fn occlusion(
    net: &Network,
    image: &Tensor,
    class: Option<i64>,
    config: &OcclusionConfig,
) -> Result<OcclusionMap, AnalysisError> {
    occlusion_with_progress(net, image, class, config, &mut |_| {})
}

/// The square's positions in `image` (`[3, H, W]`) at `config`: what
/// [`occlusion_with_progress`] counts.
pub fn positions(image: &Tensor, config: &OcclusionConfig) -> usize {
    let size = image.size();
    let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
    if config.size < 1 || config.stride < 1 {
        return 0;
    }
    steps(h, config.size, config.stride).len() * steps(w, config.size, config.stride).len()
}

/// [`occlusion`], telling `progress` how many occluded copies are done
/// after each batch of them (`zftrain analyze` prints a line every so
/// often).
pub fn occlusion_with_progress(
    net: &Network,
    image: &Tensor,
    class: Option<i64>,
    config: &OcclusionConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<OcclusionMap, AnalysisError> {
    let size = image.size();
    let (h, w) = (size[1], size[2]);
    let conv = check(net, config, h, w)?;
    let device = net
        .weight(net.arch().conv_indices()[0])
        .map_or(Device::Cpu, |w| w.device());
    let x = image.unsqueeze(0).to_device(device).to_kind(Kind::Float);
    let base = unoccluded(net, &x, class, conv)?;
    let tops = steps(h, config.size, config.stride);
    let lefts = steps(w, config.size, config.stride);
    let boxes: Vec<(i64, i64, i64, i64)> = tops
        .iter()
        .flat_map(|&t| lefts.iter().map(move |&l| (t, l, config.size, config.size)))
        .collect();
    let swept = sweep(net, &x, &boxes, conv, &base, config, progress)?;
    Ok(OcclusionMap {
        rows: tops.len(),
        cols: lefts.len(),
        tops,
        lefts,
        class: base.class,
        predicted: base.predicted,
        predicted_probability: base.predicted_probability,
        channel: base.channel,
        unit: base.unit,
        base_activation: base.activation,
        base_probability: base.probability,
        activation: swept.activation,
        probability: swept.probability,
        top_class: swept.top_class,
        top_probability: swept.top_probability,
        projection: base.projection,
    })
}

/// The settings checked against an `h x w` image and the network; the
/// followed conv layer's index among the conv layers.
fn check(net: &Network, config: &OcclusionConfig, h: i64, w: i64) -> Result<usize, AnalysisError> {
    if config.size < 1 || config.stride < 1 || config.size > h.min(w) {
        return Err(AnalysisError::Config(format!(
            "occlusion size {} and stride {} must be at least 1, and the square no larger than the {h}x{w} image",
            config.size, config.stride
        )));
    }
    let convs = net.arch().conv_indices();
    if config.layer < 1 || config.layer > convs.len() {
        return Err(AnalysisError::Config(format!(
            "occlusion layer {} is not a conv layer (1 to {})",
            config.layer,
            convs.len()
        )));
    }
    Ok(config.layer - 1)
}

/// What the unoccluded image gives: the class followed, the strongest map
/// of the layer and its strongest unit projected, their values.
struct Unoccluded {
    class: i64,
    predicted: i64,
    predicted_probability: f64,
    channel: i64,
    unit: (i64, i64),
    activation: f64,
    probability: f64,
    projection: Tensor,
}

/// The unoccluded `[1, 3, H, W]` image `x` through the network.
fn unoccluded(
    net: &Network,
    x: &Tensor,
    class: Option<i64>,
    conv: usize,
) -> Result<Unoccluded, AnalysisError> {
    let base = tch::no_grad(|| net.forward_taps(x, false));
    let probs = base.logits.softmax(-1, Kind::Float);
    let classes = probs.size()[1];
    let predicted = probs.argmax(-1, false).int64_value(&[0]);
    let class = match class {
        Some(c) if (0..classes).contains(&c) => c,
        Some(c) => {
            return Err(AnalysisError::Config(format!(
                "class {c} is not one of the network's {classes}"
            )))
        }
        None => predicted,
    };
    let map = &base.convs[conv];
    let mw = map.size()[3];
    let flat = map.get(0).flatten(1, -1); // [C, H*W]
    let (peak, at) = flat.max_dim(1, false);
    let channel = peak.argmax(0, false).int64_value(&[]);
    let index = at.int64_value(&[channel]);
    let unit = (index / mw, index % mw);
    let target = Target {
        image: 0,
        conv,
        channel,
        y: unit.0,
        x: unit.1,
    };
    let projection = tch::no_grad(|| project(net, &base, &[target], 1))?
        .get(0)
        .to_device(Device::Cpu);
    Ok(Unoccluded {
        class,
        predicted,
        predicted_probability: probs.double_value(&[0, predicted]),
        channel,
        unit,
        activation: map.get(0).get(channel).sum(Kind::Double).double_value(&[]),
        probability: probs.double_value(&[0, class]),
        projection,
    })
}

/// Per occluder position: the followed map's total activation, the
/// class's probability, the most probable class and its probability.
struct Swept {
    activation: Vec<f64>,
    probability: Vec<f64>,
    top_class: Vec<i64>,
    top_probability: Vec<f64>,
}

/// `x` occluded at each of `boxes`, in batches.
fn sweep(
    net: &Network,
    x: &Tensor,
    boxes: &[(i64, i64, i64, i64)],
    conv: usize,
    base: &Unoccluded,
    config: &OcclusionConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Swept, AnalysisError> {
    let size = x.size();
    let (h, w) = (size[2], size[3]);
    let mut out = Swept {
        activation: Vec::new(),
        probability: Vec::new(),
        top_class: Vec::new(),
        top_probability: Vec::new(),
    };
    for chunk in boxes.chunks(config.batch_size.max(1)) {
        let n = chunk.len() as i64;
        let occluded = fill_boxes(&x.expand([n, 3, h, w], false), chunk, config.value);
        let taps = tch::no_grad(|| net.forward_taps(&occluded, false));
        let p = taps.logits.softmax(-1, Kind::Float).to_device(Device::Cpu);
        let a = taps.convs[conv]
            .select(1, base.channel)
            .sum_dim_intlist(&[1i64, 2][..], false, Kind::Double)
            .to_device(Device::Cpu);
        let (tp, tc) = p.max_dim(1, false);
        out.activation.extend(Vec::<f64>::try_from(&a)?);
        out.probability.extend(Vec::<f64>::try_from(
            &p.select(1, base.class).to_kind(Kind::Double),
        )?);
        out.top_class.extend(Vec::<i64>::try_from(&tc)?);
        out.top_probability
            .extend(Vec::<f64>::try_from(&tp.to_kind(Kind::Double))?);
        progress(chunk.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::tests::{images, net};

    #[test]
    fn occluding_what_is_already_grey_changes_nothing_and_batches_agree() {
        let (_vs, net) = net();
        // The left half of the image is already the occluder's grey (0):
        // squares inside it change nothing, squares on the right half do.
        let x = images(1, 7).get(0);
        let _ = x.narrow(2, 0, 112).fill_(0.0);
        let config = OcclusionConfig {
            size: 56,
            stride: 56,
            batch_size: 3,
            ..OcclusionConfig::default()
        };
        let m = occlusion(&net, &x, Some(1), &config).unwrap();
        assert_eq!((m.rows, m.cols), (4, 4));
        for row in 0..m.rows {
            for col in 0..m.cols {
                let k = row * m.cols + col;
                let (_, left) = m.position(row, col);
                if left + 56 <= 112 {
                    // Up to summation order, which the batch size and the
                    // CPU's vector width change (1e-6 was exceeded on AVX2
                    // by a bound of this kind in the invariance test).
                    assert!(
                        (m.probability[k] - m.base_probability).abs() < 1e-5,
                        "{row},{col}"
                    );
                    assert!(
                        (m.activation[k] - m.base_activation).abs()
                            <= 1e-5 * m.base_activation.abs().max(1.0)
                    );
                }
            }
        }
        assert!(
            m.activation
                .iter()
                .any(|a| (a - m.base_activation).abs() > 1e-3 * m.base_activation.abs()),
            "occluding the textured half must change the map"
        );
        let one_by_one = occlusion(
            &net,
            &x,
            Some(1),
            &OcclusionConfig {
                batch_size: 1,
                ..config
            },
        )
        .unwrap();
        for (a, b) in m.probability.iter().zip(&one_by_one.probability) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(m.projection.size(), [3, 224, 224]);
        let e = occlusion(&net, &x, Some(4), &OcclusionConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("class 4"), "{e}");
    }
}
