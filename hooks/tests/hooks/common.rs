//! A small ZFNet, a random probe set and a context around them.

use std::path::Path;

use tch::nn::VarStore;
use tch::{kind::FLOAT_CPU, Device, Tensor};
use zftrain_hooks::{HookContext, MemorySink, TensorProbe};
use zftrain_model::arch::ArchConfig;
use zftrain_model::{Arch, ArchName, InitScheme, Network};

/// ZFNet with 10 classes, He init, seed 3.
pub fn network() -> (VarStore, Network) {
    built(ArchName::Zfnet, 3)
}

/// A built-in architecture with 10 classes, He init, seeded.
pub fn built(name: ArchName, seed: i64) -> (VarStore, Network) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let config = ArchConfig {
        classes: 10,
        ..ArchConfig::default()
    };
    let arch = Arch::builtin(name, &config).unwrap();
    let net = Network::new(&vs.root(), arch, InitScheme::Kaiming).unwrap();
    (vs, net)
}

/// `n` random images in batches of 2.
pub fn probe(n: i64) -> TensorProbe {
    TensorProbe {
        images: Tensor::randn([n, 3, 224, 224], FLOAT_CPU),
        batch_size: 2,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        labels: None,
    }
}

/// A context at `epoch`.
pub fn context<'a>(
    net: &'a Network,
    probe: &'a TensorProbe,
    dir: &'a Path,
    sink: &'a MemorySink,
    epoch: u64,
) -> HookContext<'a> {
    HookContext {
        net,
        device: Device::Cpu,
        replicas: &[],
        probe,
        train_probe: None,
        epoch,
        step: epoch * 10,
        run_dir: dir,
        sink,
        metrics: Default::default(),
        shared: None,
        stop: None,
    }
}
