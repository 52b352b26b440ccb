//! A network together with the variable store that owns its parameters:
//! what the engine replicates on each device and what the commands load
//! weights into.

use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::{Arch, ModelError, Network};

/// A network and the variable store that owns its parameters.
#[derive(Debug)]
pub struct Model {
    /// Owns the parameters.
    pub vs: VarStore,
    /// The network.
    pub net: Network,
}

impl Model {
    /// A freshly initialized network of `arch` on `device`, drawn with
    /// `init` (an [`crate::InitScheme`] or an [`crate::InitConfig`]).
    pub fn new(
        arch: Arch,
        init: impl Into<crate::InitConfig>,
        device: Device,
    ) -> Result<Model, ModelError> {
        let vs = VarStore::new(device);
        let net = Network::new(&vs.root(), arch, init)?;
        Ok(Model { vs, net })
    }

    /// The `state_dict`: parameters and batch-norm buffers as `(PyTorch
    /// name, tensor)` in PyTorch's order (what files hold).
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        self.net.named_state()
    }

    /// The learnable parameters only (what the optimizer steps and the
    /// gradients are reduced over).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.net.named_parameters()
    }
}
