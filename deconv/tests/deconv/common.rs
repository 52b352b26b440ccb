//! A small network with random He-initialized weights.

use tch::nn::VarStore;
use tch::Device;
use zftrain_model::arch::ArchConfig;
use zftrain_model::{Arch, ArchName, InitScheme, Network};

/// libtorch's random generator is one for all the test threads: a network
/// is drawn from seed 7 while this is held, so another test's drawing (a
/// VGG takes a second) cannot interleave and change its weights.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `name` with 10 classes, seed 7; keep the VarStore alive with the network.
pub fn network(name: ArchName) -> (VarStore, Network) {
    let _drawing = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
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

/// [`network`] for an architecture file under `configs/archs/`.
pub fn network_from_file(file: &str) -> (VarStore, Network) {
    let _drawing = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(7);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/archs")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut arch = zftrain_model::arch_file::parse_arch(&text, file).unwrap();
    zftrain_model::arch_file::set_classes(&mut arch, 10).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), arch, InitScheme::Kaiming).unwrap();
    (vs, net)
}

/// `[n, 3, 224, 224]` images drawn from `seed` with a generator of our own
/// (the tests of this binary run in parallel threads, and libtorch's
/// generator is shared by all of them).
pub fn images(n: i64, seed: u64) -> tch::Tensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n * 3 * 224 * 224)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect();
    tch::Tensor::from_slice(&v).view([n, 3, 224, 224])
}
