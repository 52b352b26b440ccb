//! A network built from an [`Arch`]: parameters in a tch `VarStore` under
//! PyTorch's names, the forward pass, and the tap forward that also returns
//! every rectified conv output and every max-pool's switches.

use tch::nn::{self, ModuleT};
use tch::Tensor;

use crate::layer::LayerKind;
use crate::lrn::local_response_norm;
use crate::{Arch, InitScheme, ModelError};

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
    /// `[N, classes]` class scores (pre-softmax).
    pub logits: Tensor,
    /// One `[N, C, H, W]` per conv layer, in order: the rectified output (the
    /// ReLU after the conv; the conv output itself if none follows).
    pub convs: Vec<Tensor>,
    /// One entry per max-pool, in order.
    pub switches: Vec<PoolSwitch>,
}

/// Parameters of one layer.
#[derive(Debug)]
struct Params {
    weight: Tensor,
    bias: Option<Tensor>,
}

/// A network whose structure is an [`Arch`] and whose parameters live in a
/// `VarStore`.
#[derive(Debug)]
pub struct Network {
    arch: Arch,
    params: Vec<Option<Params>>,
}

impl Network {
    /// Creates the parameters of `arch` under `root` (named `features.0.weight`
    /// and so on, relative to `root`), drawn with `init`.
    pub fn new(root: &nn::Path, arch: Arch, init: InitScheme) -> Result<Network, ModelError> {
        arch.validate()?;
        let mut params = Vec::with_capacity(arch.layers.len());
        for layer in &arch.layers {
            let (Some(module), Some((w_init, b_init))) = (&layer.module, init.for_layer(layer))
            else {
                params.push(None);
                continue;
            };
            let mut path = root.clone();
            for part in module.split('.') {
                path = &path / part;
            }
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
        Ok(Network { arch, params })
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
    ) -> (Tensor, Option<Tensor>) {
        let layer = &self.arch.layers[index];
        let params = self.params[index].as_ref();
        let ys = match &layer.kind {
            LayerKind::Conv(c) => {
                let p = params.expect("conv parameters exist by construction");
                xs.conv2d(
                    &p.weight,
                    p.bias.as_ref(),
                    [c.stride; 2],
                    [c.padding; 2],
                    [1, 1],
                    c.groups,
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
            LayerKind::Dropout { p } => xs.dropout(*p, train),
            LayerKind::Linear(_) => {
                let p = params.expect("linear parameters exist by construction");
                xs.linear(&p.weight, p.bias.as_ref())
            }
        };
        (ys, None)
    }

    /// `[N, 3, H, W] -> [N, classes]` logits.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        (0..self.arch.layers.len()).fold(xs.shallow_clone(), |x, i| {
            self.layer_forward(i, &x, train, false).0
        })
    }

    /// Like [`Network::forward`], but also records the rectified output of
    /// every conv layer and the switches of every max-pool, in one pass.
    pub fn forward_taps(&self, xs: &Tensor, train: bool) -> Taps {
        let mut convs = Vec::new();
        let mut switches = Vec::new();
        let taps: Vec<usize> = self
            .arch
            .conv_indices()
            .into_iter()
            .map(|i| self.arch.tap_index(i))
            .collect();
        let mut x = xs.shallow_clone();
        for i in 0..self.arch.layers.len() {
            let input_size = x.size();
            let (y, idx) = self.layer_forward(i, &x, train, true);
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
        }
    }
}

impl ModuleT for Network {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward(xs, train)
    }
}
