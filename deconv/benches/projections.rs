//! Deconvnet projections per second for layer 5 of ZFNet: batched
//! (`project_fields`, the miner's path, with up to `max_batch` targets per pass) against a
//! one-target-at-a-time loop of the same code. Random He-initialized
//! weights, 8 random images, 64 targets (the strongest unit of 8 feature
//! maps in each image). Prints `batched`, `one-at-a-time` and the ratio.
//!
//! `cargo bench -p zftrain-deconv --bench projections [-- --targets N]`

use std::time::Instant;

use tch::nn::VarStore;
use tch::{kind::FLOAT_CPU, Device, Tensor};
use zftrain_deconv::project::project_fields;
use zftrain_deconv::Target;
use zftrain_model::arch::ArchConfig;
use zftrain_model::{Arch, ArchName, InitScheme, Network};

fn main() {
    let mut targets_wanted = 64usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--targets" {
            targets_wanted = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--targets N");
        }
    }
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let arch = Arch::builtin(
        ArchName::Zfnet,
        &ArchConfig {
            classes: 1000,
            ..ArchConfig::default()
        },
    )
    .expect("zfnet builds");
    let net = Network::new(&vs.root(), arch, InitScheme::Kaiming).expect("zfnet builds");
    let input = Tensor::randn([8, 3, 224, 224], FLOAT_CPU);
    let taps = tch::no_grad(|| net.forward_taps(&input, false));
    let targets: Vec<Target> = (0..targets_wanted as i64)
        .map(|i| Target::strongest(&taps, i % 8, 4, i / 8 * 3))
        .collect();
    let time = |f: &dyn Fn()| {
        f();
        let start = Instant::now();
        f();
        targets.len() as f64 / start.elapsed().as_secs_f64()
    };
    let batched = time(&|| {
        tch::no_grad(|| project_fields(&net, &taps, &targets, 32)).expect("projects");
    });
    let single = time(&|| {
        for t in &targets {
            tch::no_grad(|| project_fields(&net, &taps, std::slice::from_ref(t), 1))
                .expect("projects");
        }
    });
    println!("batched       {batched:8.1} projections/s");
    println!("one-at-a-time {single:8.1} projections/s");
    println!("ratio         {:8.2}x", batched / single);
}
