//! A network built from an [`Arch`]: parameters in a tch `VarStore` under
//! PyTorch's names, the forward pass, and the tap forward that also returns
//! every rectified conv output and every max-pool's switches.

use tch::nn::{self, ModuleT};
use tch::Tensor;

use crate::layer::LayerKind;
use crate::lrn::local_response_norm;
use crate::{Arch, DropoutStream, ModelError};

/// The switches of one max-pool: where each pooled value came from.
#[derive(Debug)]
pub struct PoolSwitch {
    /// Index of the pool in the layer table.
    pub layer: usize,
    /// `[N, C, H', W']` int64: flat index `h * W + w` into the pool's input plane.
    pub indices: Tensor,
    /// `[H, W]` of the pool's input, which unpooling must restore.
    pub input_size: [i64; 2],
}

/// Everything the tap forward records.
#[derive(Debug)]
pub struct Taps {
    /// `[N, classes]` class scores (pre-softmax); the last layer's output
    /// when the forward stopped early ([`Network::forward_taps_to`]).
    pub logits: Tensor,
    /// One `[N, C, H, W]` per conv layer, in order: the rectified output (the
    /// ReLU after the conv; the conv output itself if none follows).
    pub convs: Vec<Tensor>,
    /// One entry per max-pool, in order.
    pub switches: Vec<PoolSwitch>,
    /// The input shape of every layer, `[N, C, H, W]` or `[N, F]` (what the
    /// Deconvnet's transposed convolutions must restore).
    pub input_sizes: Vec<Vec<i64>>,
}

/// Parameters of one layer.
#[derive(Debug)]
struct Params {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Params {
    /// The parameters in `kind` (mixed precision: an input in bf16 makes
    /// the layer compute in bf16 from the fp32 master weights; gradients
    /// flow back through the cast to them). No copy when the kinds agree.
    fn cast_to(&self, kind: tch::Kind) -> (Tensor, Option<Tensor>) {
        if self.weight.kind() == kind {
            return (
                self.weight.shallow_clone(),
                self.bias.as_ref().map(Tensor::shallow_clone),
            );
        }
        (
            self.weight.to_kind(kind),
            self.bias.as_ref().map(|b| b.to_kind(kind)),
        )
    }
}

/// The state of one batch-norm layer.
#[derive(Debug)]
struct NormState {
    /// `[C]` scale and shift (absent when the layer is not affine).
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    /// `[C]` running statistics, updated by training-mode forwards.
    running_mean: Tensor,
    running_var: Tensor,
    /// `[]` int64: training-mode forwards so far (PyTorch's counter).
    tracked: Tensor,
}

/// Whether a 4-d tensor is laid out channels-last (`NHWC` in memory).
pub fn is_channels_last(x: &Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    size.len() == 4 && size[1] > 1 && stride[1] == 1 && stride[3] == size[1]
}

/// The same `[N, C, H, W]` tensor laid out channels-last (one copy; tch has
/// no memory-format argument, so this is a permute, a contiguous copy and
/// the inverse permute).
pub fn to_channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// A network whose structure is an [`Arch`] and whose parameters live in a
/// `VarStore`.
#[derive(Debug)]
pub struct Network {
    arch: Arch,
    params: Vec<Option<Params>>,
    norms: Vec<Option<NormState>>,
    /// Per layer: frozen ([`Network::freeze`]).
    frozen: Vec<bool>,
}

impl Network {
    /// Creates the parameters of `arch` under `root` (named `features.0.weight`
    /// and so on, relative to `root`), drawn with `init` (an [`crate::InitScheme`]
    /// or an [`crate::InitConfig`]).
    pub fn new(
        root: &nn::Path,
        arch: Arch,
        init: impl Into<crate::InitConfig>,
    ) -> Result<Network, ModelError> {
        arch.validate()?;
        let init = init.into();
        let first_conv = arch.conv_indices().first().copied();
        let mut params = Vec::with_capacity(arch.layers.len());
        let mut norms = Vec::with_capacity(arch.layers.len());
        for (index, layer) in arch.layers.iter().enumerate() {
            let path = layer.module.as_ref().map(|module| {
                let mut path = root.clone();
                for part in module.split('.') {
                    path = &path / part;
                }
                path
            });
            if let (LayerKind::BatchNorm(b), Some(path)) = (&layer.kind, &path) {
                // PyTorch's BatchNorm2d initialization, whatever the scheme.
                let affine = |name: &str, value: f64| -> Result<Option<Tensor>, ModelError> {
                    b.affine
                        .then(|| path.f_var(name, &[b.features], nn::Init::Const(value)))
                        .transpose()
                        .map_err(ModelError::from)
                };
                norms.push(Some(NormState {
                    weight: affine("weight", 1.0)?,
                    bias: affine("bias", 0.0)?,
                    running_mean: path.f_zeros_no_train("running_mean", &[b.features])?,
                    running_var: path.f_ones_no_train("running_var", &[b.features])?,
                    tracked: path.add(
                        "num_batches_tracked",
                        Tensor::zeros([], (tch::Kind::Int64, path.device())),
                        false,
                    ),
                }));
                params.push(None);
                continue;
            }
            norms.push(None);
            let (Some(path), Some((w_init, b_init))) =
                (path, init.for_layer(layer, Some(index) == first_conv))
            else {
                params.push(None);
                continue;
            };
            let mut weight = None;
            let mut bias = None;
            for (suffix, shape) in layer.kind.param_shapes() {
                match suffix {
                    "weight" => weight = Some(path.f_var(suffix, &shape, w_init)?),
                    _ => bias = Some(path.f_var(suffix, &shape, b_init)?),
                }
            }
            params.push(weight.map(|weight| Params { weight, bias }));
        }
        let frozen = vec![false; arch.layers.len()];
        Ok(Network {
            arch,
            params,
            norms,
            frozen,
        })
    }

    /// Every parameter as `(PyTorch name, tensor)`, in `state_dict` order.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.named(false)
    }

    /// Every `state_dict` entry (parameters, then each batch norm's running
    /// statistics) as `(PyTorch name, tensor)`, in PyTorch's order.
    pub fn named_state(&self) -> Vec<(String, Tensor)> {
        self.named(true)
    }

    fn named(&self, buffers: bool) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, layer) in self.arch.layers.iter().enumerate() {
            let names = if buffers {
                layer.state_names()
            } else {
                layer.param_names()
            };
            let tensors: Vec<Tensor> = match (&self.params[i], &self.norms[i]) {
                (Some(p), _) => std::iter::once(p.weight.shallow_clone())
                    .chain(p.bias.as_ref().map(Tensor::shallow_clone))
                    .collect(),
                (None, Some(n)) => {
                    let mut v: Vec<Tensor> = n
                        .weight
                        .iter()
                        .chain(n.bias.iter())
                        .map(Tensor::shallow_clone)
                        .collect();
                    if buffers {
                        v.extend(
                            [&n.running_mean, &n.running_var, &n.tracked]
                                .map(Tensor::shallow_clone),
                        );
                    }
                    v
                }
                (None, None) => Vec::new(),
            };
            out.extend(names.into_iter().map(|(n, _)| n).zip(tensors));
        }
        out
    }

    /// The batch norms' buffers (running statistics and counters), in
    /// `state_dict` order, without names: what replicas share after a step.
    pub fn buffers(&self) -> Vec<Tensor> {
        self.norms
            .iter()
            .flatten()
            .flat_map(|n| [&n.running_mean, &n.running_var, &n.tracked].map(Tensor::shallow_clone))
            .collect()
    }

    /// A batch norm's per-channel scale in evaluation, `[C]`:
    /// `weight / sqrt(running_var + eps)` (what folding it into the
    /// convolution before it multiplies that convolution's filters by).
    /// `None` for other layers.
    pub fn norm_scale(&self, index: usize) -> Option<Tensor> {
        let (LayerKind::BatchNorm(b), Some(n)) = (
            &self.arch.layers.get(index)?.kind,
            self.norms.get(index)?.as_ref(),
        ) else {
            return None;
        };
        let inv = (n.running_var.to_kind(tch::Kind::Float) + b.eps).rsqrt();
        Some(match &n.weight {
            Some(w) => w.to_kind(tch::Kind::Float) * inv,
            None => inv,
        })
    }

    /// Freezes the layers at `indices`: their parameters stop requiring
    /// gradients (backward computes none for them) and a frozen batch norm
    /// normalizes with its running statistics and no longer updates them,
    /// even in training (timm's frozen batch norm), so a frozen layer's
    /// whole state stays as it is.
    pub fn freeze(&mut self, indices: &[usize]) {
        for &i in indices {
            let Some(frozen) = self.frozen.get_mut(i) else {
                continue;
            };
            *frozen = true;
            let params = self.params[i]
                .iter()
                .flat_map(|p| std::iter::once(&p.weight).chain(&p.bias));
            let norms = self.norms[i]
                .iter()
                .flat_map(|n| n.weight.iter().chain(&n.bias));
            for t in params.chain(norms) {
                let _ = t.shallow_clone().set_requires_grad(false);
            }
        }
    }

    /// Whether the layer at `index` is frozen.
    pub fn is_frozen(&self, index: usize) -> bool {
        self.frozen.get(index).copied().unwrap_or(false)
    }

    /// The layer table this network follows.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// Weight of the layer at `index` in the table (`None` if it has none):
    /// conv `[C_out, C_in/groups, k, k]`, linear `[out, in]`.
    pub fn weight(&self, index: usize) -> Option<&Tensor> {
        self.params.get(index)?.as_ref().map(|p| &p.weight)
    }

    /// Bias of the layer at `index`, if it has one.
    pub fn bias(&self, index: usize) -> Option<&Tensor> {
        self.params.get(index)?.as_ref()?.bias.as_ref()
    }

    /// Checks that `xs` is `[N, C, H, W]` with the channels the first layer takes.
    pub fn check_input(&self, xs: &Tensor) -> Result<(), ModelError> {
        let size = xs.size();
        let channels = self.arch.input[0];
        if size.len() != 4 || size[1] != channels {
            return Err(ModelError::BadInput {
                got: size,
                channels,
            });
        }
        Ok(())
    }

    /// Runs layer `index` on `xs`. Max-pools return their switches too.
    fn layer_forward(
        &self,
        index: usize,
        xs: &Tensor,
        train: bool,
        switches: bool,
        stream: Option<&DropoutStream>,
    ) -> (Tensor, Option<Tensor>) {
        let layer = &self.arch.layers[index];
        let params = self.params[index].as_ref();
        let ys = match &layer.kind {
            LayerKind::Conv(c) => {
                let p = params.expect("conv parameters exist by construction");
                let (w, b) = p.cast_to(xs.kind());
                let w = if is_channels_last(xs) {
                    to_channels_last(&w)
                } else {
                    w
                };
                xs.conv2d(
                    &w,
                    b.as_ref(),
                    [c.stride; 2],
                    [c.padding; 2],
                    [1, 1],
                    c.groups,
                )
            }
            LayerKind::BatchNorm(b) => {
                let n = self.norms[index]
                    .as_ref()
                    .expect("batch-norm state exists by construction");
                let train = train && !self.frozen[index];
                if train {
                    tch::no_grad(|| {
                        let _ = n.tracked.shallow_clone().g_add_scalar_(1);
                    });
                }
                // Mixed precision: bf16 input, fp32 scale and statistics.
                xs.batch_norm(
                    n.weight.as_ref(),
                    n.bias.as_ref(),
                    Some(&n.running_mean),
                    Some(&n.running_var),
                    train,
                    b.momentum,
                    b.eps,
                    true,
                )
            }
            LayerKind::Relu => xs.relu(),
            LayerKind::Lrn(spec) => local_response_norm(xs, spec),
            LayerKind::MaxPool(p) => {
                let (k, s, pad) = ([p.kernel; 2], [p.stride; 2], [p.padding; 2]);
                if switches {
                    let (ys, idx) = xs.max_pool2d_with_indices(k, s, pad, [1, 1], p.ceil_mode);
                    return (ys, Some(idx));
                }
                xs.max_pool2d(k, s, pad, [1, 1], p.ceil_mode)
            }
            LayerKind::AdaptiveAvgPool { height, width } => {
                xs.adaptive_avg_pool2d([*height, *width])
            }
            LayerKind::Flatten => xs.flatten(1, -1),
            LayerKind::Dropout { p } => match stream {
                Some(stream) if train => crate::dropout::dropout(xs, *p, stream, index),
                _ => xs.dropout(*p, train),
            },
            LayerKind::Linear(_) => {
                let p = params.expect("linear parameters exist by construction");
                let (w, b) = p.cast_to(xs.kind());
                xs.linear(&w, b.as_ref())
            }
        };
        (ys, None)
    }

    /// `[N, 3, H, W] -> [N, classes]` logits, computed in the input's
    /// floating-point kind (fp32, or bf16 for mixed precision).
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        (0..self.arch.layers.len()).fold(xs.shallow_clone(), |x, i| {
            self.layer_forward(i, &x, train, false, None).0
        })
    }

    /// Eval-mode layers `layers` only, on `xs` (the input of the first of
    /// them): e.g. the classifier's last layer on fc7 features.
    pub fn forward_range(&self, xs: &Tensor, layers: std::ops::Range<usize>) -> Tensor {
        let end = layers.end.min(self.arch.layers.len());
        (layers.start..end).fold(xs.shallow_clone(), |x, i| {
            self.layer_forward(i, &x, false, false, None).0
        })
    }

    /// Training-mode [`Network::forward`] whose dropout masks come from
    /// `stream` (reproducible, and the same for a shard of a batch as for the
    /// whole batch; see [`crate::dropout`]): `[N, 3, H, W] -> [N, classes]`.
    pub fn forward_seeded(&self, xs: &Tensor, stream: &DropoutStream) -> Tensor {
        (0..self.arch.layers.len()).fold(xs.shallow_clone(), |x, i| {
            self.layer_forward(i, &x, true, false, Some(stream)).0
        })
    }

    /// Like [`Network::forward`], but also records the rectified output of
    /// every conv layer and the switches of every max-pool, in one pass.
    pub fn forward_taps(&self, xs: &Tensor, train: bool) -> Taps {
        self.forward_taps_to(xs, train, self.arch.layers.len())
    }

    /// [`Network::forward_taps`] through the first `layers` layers only (the
    /// Deconvnet needs no classifier): `logits` is then the output of layer
    /// `layers - 1`.
    pub fn forward_taps_to(&self, xs: &Tensor, train: bool, layers: usize) -> Taps {
        let mut convs = Vec::new();
        let mut switches = Vec::new();
        let taps = self.conv_taps();
        let mut x = xs.shallow_clone();
        let mut input_sizes = Vec::with_capacity(self.arch.layers.len());
        for i in 0..layers.min(self.arch.layers.len()) {
            let input_size = x.size();
            input_sizes.push(input_size.clone());
            let (y, idx) = self.layer_forward(i, &x, train, true, None);
            if let Some(indices) = idx {
                let n = input_size.len();
                switches.push(PoolSwitch {
                    layer: i,
                    indices,
                    input_size: [input_size[n - 2], input_size[n - 1]],
                });
            }
            if taps.contains(&i) {
                convs.push(y.shallow_clone());
            }
            x = y;
        }
        Taps {
            logits: x,
            convs,
            switches,
            input_sizes,
        }
    }
}

impl Network {
    /// The rectified outputs of the conv layers among the first `layers`
    /// layers, in evaluation mode: `[N, C_l, H_l, W_l]` each, conv order.
    /// What [`Network::forward_taps_to`] gives without the pooling switches
    /// (cheaper: for statistics over many images, such as the top-k values
    /// of the miner's first pass).
    pub fn forward_convs_to(&self, xs: &Tensor, layers: usize) -> Vec<Tensor> {
        let mut convs = Vec::new();
        self.for_each_conv_to(xs, layers, |_, t| convs.push(t.shallow_clone()));
        convs
    }

    /// The first `layers` layers in evaluation mode, handing each conv
    /// layer's rectified output to `f(conv, output)` (conv order, 0-based)
    /// as soon as it is computed and keeping none of them: a caller that
    /// needs a few maps of each holds one layer's output at a time.
    pub fn for_each_conv_to(&self, xs: &Tensor, layers: usize, mut f: impl FnMut(usize, &Tensor)) {
        let taps = self.conv_taps();
        let mut x = xs.shallow_clone();
        for i in 0..layers.min(self.arch.layers.len()) {
            let (y, _) = self.layer_forward(i, &x, false, false, None);
            if let Some(conv) = taps.iter().position(|&t| t == i) {
                f(conv, &y);
            }
            x = y;
        }
    }
}

impl Network {
    /// The layer whose output each conv layer's tap is (conv order).
    fn conv_taps(&self) -> Vec<usize> {
        self.arch
            .conv_indices()
            .into_iter()
            .map(|i| self.arch.tap_index(i))
            .collect()
    }
}

impl ModuleT for Network {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward(xs, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchConfig;
    use crate::{ArchName, InitConfig, InitScheme};
    use tch::{kind::FLOAT_CPU, nn::VarStore, Device};

    fn net(name: ArchName, init: impl Into<InitConfig>) -> (VarStore, Network) {
        let vs = VarStore::new(Device::Cpu);
        let arch = Arch::builtin(
            name,
            &ArchConfig {
                classes: 10,
                ..Default::default()
            },
        )
        .unwrap();
        let net = Network::new(&vs.root(), arch, init).unwrap();
        (vs, net)
    }

    #[test]
    fn varstore_names_are_pytorch_names() {
        let (vs, net) = net(ArchName::AlexnetTv, InitScheme::Pytorch);
        let mut got: Vec<String> = vs.variables().into_keys().collect();
        got.sort();
        let mut want: Vec<String> = net
            .arch()
            .param_names()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn switches_point_at_the_pooled_maxima() {
        let (_vs, net) = net(ArchName::ZfnetSeed, InitScheme::Pytorch);
        let x = Tensor::randn([2, 3, 224, 224], FLOAT_CPU);
        let taps = net.forward_taps(&x, false);
        assert_eq!(taps.convs.len(), 5);
        assert_eq!(taps.switches.len(), 3);
        // pool1 takes the conv1 tap; gathering it at the switches gives the pooled map.
        let sw = &taps.switches[0];
        assert_eq!(sw.input_size, [110, 110]);
        let input = taps.convs[0].flatten(2, 3);
        let pooled = input.gather(2, &sw.indices.flatten(2, 3), false);
        let direct = taps.convs[0]
            .max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
            .flatten(2, 3);
        assert!(pooled.equal(&direct));
        assert!(
            taps.convs.iter().all(|t| t.min().double_value(&[]) >= 0.0),
            "taps are rectified"
        );
    }

    #[test]
    fn conv_outputs_without_switches_equal_the_taps() {
        let (_vs, net) = net(ArchName::Zfnet, InitScheme::Kaiming);
        let x = Tensor::randn([2, 3, 224, 224], FLOAT_CPU);
        let layers = net.arch().tap_index(net.arch().conv_indices()[3]) + 1;
        let taps = net.forward_taps_to(&x, false, layers);
        let convs = net.forward_convs_to(&x, layers);
        assert_eq!(convs.len(), 4);
        for (a, b) in convs.iter().zip(&taps.convs) {
            assert!(a.equal(b));
        }
    }

    #[test]
    fn tap_forward_gives_the_same_logits_as_forward() {
        let (_vs, net) = net(ArchName::Zfnet, InitScheme::Pytorch);
        let x = Tensor::randn([3, 3, 224, 224], FLOAT_CPU);
        let a = net.forward(&x, false);
        let b = net.forward_taps(&x, false).logits;
        assert!(a.allclose(&b, 1e-6, 1e-6, false));
    }

    #[test]
    fn dropout_acts_only_in_training() {
        let (_vs, net) = net(ArchName::Alexnet, InitScheme::Pytorch);
        let x = Tensor::randn([2, 3, 224, 224], FLOAT_CPU);
        assert!(net.forward(&x, false).equal(&net.forward(&x, false)));
        assert!(!net.forward(&x, true).equal(&net.forward(&x, true)));
    }

    #[test]
    fn zf_and_alexnet_inits_follow_the_papers() {
        let (vs, _) = net(ArchName::Alexnet, InitScheme::Alexnet);
        let v = vs.variables();
        let std = v["features.4.weight"].std(true).double_value(&[]);
        assert!((std - 0.01).abs() < 1e-3, "std {std}");
        assert_eq!(
            v["features.4.bias"]
                .mean(tch::Kind::Float)
                .double_value(&[]),
            1.0
        );
        assert_eq!(v["features.0.bias"].abs().max().double_value(&[]), 0.0);
        assert_eq!(
            v["classifier.3.bias"]
                .mean(tch::Kind::Float)
                .double_value(&[]),
            1.0
        );
        assert_eq!(v["classifier.6.bias"].abs().max().double_value(&[]), 0.0);
        let (vs, _) = net(ArchName::Zfnet, InitScheme::Zf);
        assert_eq!(
            vs.variables()["features.4.bias"]
                .abs()
                .max()
                .double_value(&[]),
            0.0
        );
    }

    #[test]
    fn a_first_layer_std_draws_only_the_first_conv_layer_differently() {
        tch::manual_seed(0);
        let init = InitConfig {
            scheme: InitScheme::Kaiming,
            first_std: Some(0.01),
        };
        let (vs, _) = net(ArchName::Zfnet, init);
        let v = vs.variables();
        let std = |name: &str| v[name].std(true).double_value(&[]);
        // 96 x 3 x 7 x 7 draws: within a few percent of 0.01.
        assert!((std("features.0.weight") - 0.01).abs() < 0.0005);
        // conv2 keeps He's sqrt(2 / (96 * 25)) = 0.0289.
        let he = (2.0f64 / (96.0 * 25.0)).sqrt();
        assert!((std("features.4.weight") - he).abs() < 0.03 * he);
    }

    #[test]
    fn pytorch_init_is_bounded_by_one_over_sqrt_fan_in() {
        let (vs, _) = net(ArchName::ZfnetSeed, InitScheme::Pytorch);
        let w = &vs.variables()["features.3.weight"];
        // The bound as the f32 weights hold it: rounded to f32, it can lie a
        // little above the f64 value, and so can the largest weight drawn.
        let bound = (1.0 / ((96 * 25) as f64).sqrt()) as f32 as f64;
        let max = w.abs().max().double_value(&[]);
        assert!(max <= bound && max > 0.9 * bound, "max {max} bound {bound}");
    }

    #[test]
    fn wrong_input_channels_are_reported() {
        let (_vs, net) = net(ArchName::Zfnet, InitScheme::Pytorch);
        let err = net
            .check_input(&Tensor::zeros([1, 1, 224, 224], FLOAT_CPU))
            .unwrap_err();
        assert!(err.to_string().contains("[1, 1, 224, 224]"), "{err}");
    }
}

#[cfg(test)]
mod precision_tests {
    use super::*;
    use crate::arch::ArchConfig;
    use crate::{ArchName, InitScheme};
    use tch::{kind::FLOAT_CPU, nn::VarStore, Device, Kind};

    #[test]
    fn a_bf16_input_computes_in_bf16_and_trains_the_fp32_weights() {
        let vs = VarStore::new(Device::Cpu);
        let arch = Arch::builtin(
            ArchName::Zfnet,
            &ArchConfig {
                classes: 3,
                ..Default::default()
            },
        )
        .unwrap();
        let net = Network::new(&vs.root(), arch, InitScheme::Pytorch).unwrap();
        let x = Tensor::randn([2, 3, 224, 224], FLOAT_CPU);
        let full = net.forward(&x, false);
        let half = net.forward(&x.to_kind(Kind::BFloat16), false);
        assert_eq!(half.kind(), Kind::BFloat16);
        let rel = (half.to_kind(Kind::Float) - &full)
            .abs()
            .max()
            .double_value(&[])
            / full.abs().max().double_value(&[]);
        assert!(rel < 0.1, "bf16 logits far from fp32: {rel}");
        half.to_kind(Kind::Float).sum(Kind::Float).backward();
        let w = &vs.variables()["features.0.weight"];
        assert_eq!(w.kind(), Kind::Float);
        assert!(w.grad().defined() && w.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    #[test]
    fn batch_norm_trains_its_running_statistics_and_evaluates_with_them() {
        let text = "name = \"bn\"\ninput = [2, 4, 4]\n[[layers]]\nkind = \"batch_norm\"\n[[layers]]\nkind = \"flatten\"\n[[layers]]\nkind = \"linear\"\nout_features = 3\n";
        let arch = crate::arch_file::parse_arch(text, "bn.toml").unwrap();
        let vs = VarStore::new(Device::Cpu);
        let net = Network::new(&vs.root(), arch, InitScheme::Pytorch).unwrap();
        let names: Vec<String> = net.named_state().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "bn1.weight",
                "bn1.bias",
                "bn1.running_mean",
                "bn1.running_var",
                "bn1.num_batches_tracked",
                "fc1.weight",
                "fc1.bias"
            ]
        );
        assert_eq!(net.named_parameters().len(), 4);
        // A formula, not the random generator other test threads share.
        let x = (Tensor::arange(256, FLOAT_CPU) * 0.37)
            .sin()
            .view([8, 2, 4, 4])
            * 3.0
            + 5.0;
        let batch_mean = x.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
        let _ = net.forward(&x, true);
        let state = net.named_state();
        let mean = &state[2].1;
        // momentum 0.1 from 0: a tenth of the batch mean.
        assert!(
            mean.allclose(&(&batch_mean * 0.1), 1e-5, 1e-5, false),
            "{mean}"
        );
        assert_eq!(state[4].1.int64_value(&[]), 1);
        // Evaluation uses (and leaves) the running statistics.
        let y = net.forward_range(&x, 0..1);
        let var = &state[3].1;
        let want = (&x - mean.view([1, 2, 1, 1])) / (var.view([1, 2, 1, 1]) + 1e-5).sqrt();
        assert!(y.allclose(&want, 1e-4, 1e-4, false));
        assert_eq!(state[4].1.int64_value(&[]), 1);
        // The Deconvnet's fold: weight / sqrt(var + eps).
        let scale = net.norm_scale(0).unwrap();
        assert!(scale.allclose(&(var + 1e-5).rsqrt(), 1e-6, 1e-6, false));
        assert!(net.norm_scale(2).is_none());
    }
}
