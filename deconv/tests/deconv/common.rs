//! A small network with random He-initialized weights.

use tch::nn::VarStore;
use tch::Device;
use zftrain_model::arch::ArchConfig;
use zftrain_model::{Arch, ArchName, InitScheme, Network};

/// `name` with 10 classes, seed 7; keep the VarStore alive with the network.
pub fn network(name: ArchName) -> (VarStore, Network) {
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let config = ArchConfig {
        classes: 10,
        ..ArchConfig::default()
    };
    let arch = Arch::builtin(name, &config).unwrap();
    let net = Network::new(&vs.root(), arch, InitScheme::Kaiming).unwrap();
    (vs, net)
}
