//! The feature vectors the analyses compare, from one eval-mode forward:
//! layer 1 (the rectified output of the first conv layer), layer 5 (the
//! rectified output of the fifth, or last, conv layer), layer 7 (the input of
//! the last linear layer: fc7 after its ReLU in AlexNet and ZFNet) and the
//! class probabilities.

use tch::{Device, Kind, Tensor};
use zftrain_model::{LayerKind, Network};

use crate::AnalysisError;

/// Features of `N` images, on the CPU, fp32.
#[derive(Debug)]
pub struct Features {
    /// `[N, D1]` layer-1 features.
    pub layer1: Tensor,
    /// `[N, D5]` layer-5 features.
    pub layer5: Tensor,
    /// `[N, D7]` layer-7 features.
    pub layer7: Tensor,
    /// `[N, classes]` softmax probabilities.
    pub probs: Tensor,
}

impl Features {
    /// The features of a layer by number: 1, 5 or 7.
    pub fn layer(&self, layer: usize) -> Result<&Tensor, AnalysisError> {
        match layer {
            1 => Ok(&self.layer1),
            5 => Ok(&self.layer5),
            7 => Ok(&self.layer7),
            other => Err(AnalysisError::Config(format!(
                "layer {other} has no feature vector here: the analyses compare layers 1, 5 and 7"
            ))),
        }
    }
}

/// Runs images through a network in batches and keeps the features.
#[derive(Debug)]
pub struct FeatureExtractor<'a> {
    net: &'a Network,
    last_linear: usize,
    layer5_conv: usize,
    device: Device,
    batch: i64,
}

impl<'a> FeatureExtractor<'a> {
    /// For `net`, `batch` images per forward.
    pub fn new(net: &'a Network, batch: usize) -> Result<FeatureExtractor<'a>, AnalysisError> {
        let arch = net.arch();
        let last_linear = arch
            .layers
            .iter()
            .rposition(|l| matches!(l.kind, LayerKind::Linear(_)))
            .ok_or_else(|| AnalysisError::Config("the network has no linear layer".into()))?;
        let convs = arch.conv_indices();
        if convs.is_empty() {
            return Err(AnalysisError::Config(
                "the network has no conv layer".into(),
            ));
        }
        let device = net.weight(convs[0]).map_or(Device::Cpu, |w| w.device());
        Ok(FeatureExtractor {
            net,
            last_linear,
            layer5_conv: convs.len().min(5) - 1,
            device,
            batch: batch.max(1) as i64,
        })
    }

    /// The network's device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Features of `[N, 3, H, W]` images (any device; fp32).
    pub fn extract(&self, images: &Tensor) -> Features {
        let n = images.size()[0];
        let (mut l1, mut l5, mut l7, mut p) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        tch::no_grad(|| {
            let mut start = 0;
            while start < n {
                let len = self.batch.min(n - start);
                let x = images
                    .narrow(0, start, len)
                    .to_device(self.device)
                    .to_kind(Kind::Float);
                let taps = self.net.forward_taps_to(&x, false, self.last_linear);
                let logits = self
                    .net
                    .forward_range(&taps.logits, self.last_linear..self.last_linear + 1);
                let cpu = |t: &Tensor| t.flatten(1, -1).to_kind(Kind::Float).to_device(Device::Cpu);
                l1.push(cpu(&taps.convs[0]));
                l5.push(cpu(&taps.convs[self.layer5_conv]));
                l7.push(cpu(&taps.logits));
                p.push(cpu(&logits.softmax(-1, Kind::Float)));
                start += len;
            }
        });
        Features {
            layer1: Tensor::cat(&l1, 0),
            layer5: Tensor::cat(&l5, 0),
            layer7: Tensor::cat(&l7, 0),
            probs: Tensor::cat(&p, 0),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tch::nn::VarStore;
    use zftrain_model::arch::ArchConfig;
    use zftrain_model::{Arch, ArchName, InitScheme};

    /// A ZFNet-seed with 4 classes and fixed random weights.
    pub fn net() -> (VarStore, Network) {
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let arch = Arch::builtin(
            ArchName::ZfnetSeed,
            &ArchConfig {
                classes: 4,
                ..ArchConfig::default()
            },
        )
        .unwrap();
        let net = Network::new(&vs.root(), arch, InitScheme::Kaiming).unwrap();
        (vs, net)
    }

    /// `n` images from our own generator (tests run in parallel threads).
    pub fn images(n: i64, seed: u64) -> Tensor {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..n * 3 * 224 * 224)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_slice(&v).view([n, 3, 224, 224])
    }

    #[test]
    fn features_match_the_network_and_do_not_depend_on_the_batch() {
        let (_vs, net) = net();
        let x = images(3, 1);
        let a = FeatureExtractor::new(&net, 3).unwrap().extract(&x);
        let b = FeatureExtractor::new(&net, 2).unwrap().extract(&x);
        let probs = net.forward(&x, false).softmax(-1, Kind::Float);
        assert!(a.probs.allclose(&probs, 1e-5, 1e-6, false));
        // Batch sizes change the kernels' summation order, nothing more.
        let scale = a.layer7.abs().max().double_value(&[]);
        let diff = (&a.layer7 - &b.layer7).abs().max().double_value(&[]);
        assert!(diff <= 1e-5 * scale, "{diff} vs {scale}");
        assert_eq!(a.layer1.size(), [3, 96 * 110 * 110]);
        assert_eq!(a.layer5.size()[0], 3);
        assert_eq!(a.layer7.size(), [3, 4096]);
        assert!(a.layer(6).is_err());
    }
}
