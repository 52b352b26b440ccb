//! zftrain's side of the ZFNet CPU training-step benchmark (`bench/train-step`
//! runs it next to PyTorch's and prints the ratios).
//!
//! The same step the trainer runs: mixed-precision forward from fp32 master
//! weights, cross-entropy, backward, zftrain's SGD (momentum 0.9, weight
//! decay 5e-4), with the trainer's allocator tuning and channels-last
//! batches. Random input; whole steps timed after warm-up steps. Prints one
//! line per mode: `zftrain <mode> <img/s>`.
//!
//! `cargo bench -p zftrain --bench train_step -- [--batch N] [--steps N]
//! [--warmup N] [--classes N] [--modes fp32,bf16,...]`

use std::time::Instant;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use zftrain::config::OptimConfig;
use zftrain::train::optimizer::Sgd;
use zftrain_model::arch::ArchConfig;
use zftrain_model::network::to_channels_last;
use zftrain_model::{Arch, ArchName, InitScheme, Network};

struct Args {
    batch: i64,
    steps: usize,
    warmup: usize,
    classes: i64,
    modes: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        batch: 64,
        steps: 5,
        warmup: 2,
        classes: 1000,
        modes: vec![
            "fp32".into(),
            "fp32-channels-last".into(),
            "bf16".into(),
            "bf16-channels-last".into(),
        ],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--batch" => args.batch = value().parse().expect("--batch: an integer"),
            "--steps" => args.steps = value().parse().expect("--steps: an integer"),
            "--warmup" => args.warmup = value().parse().expect("--warmup: an integer"),
            "--classes" => args.classes = value().parse().expect("--classes: an integer"),
            "--modes" => args.modes = value().split(',').map(String::from).collect(),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    args
}

fn measure(args: &Args, mode: &str) -> f64 {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let config = ArchConfig {
        classes: args.classes,
        ..ArchConfig::default()
    };
    let arch = Arch::builtin(ArchName::Zfnet, &config).expect("zfnet builds");
    let net = Network::new(&vs.root(), arch, InitScheme::Kaiming).expect("zfnet builds");
    let params = vs.variables().into_iter().collect();
    let mut sgd = Sgd::new(
        params,
        OptimConfig {
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
        },
    );
    let kind = if mode.starts_with("bf16") {
        Kind::BFloat16
    } else {
        Kind::Float
    };
    let x = Tensor::randn([args.batch, 3, 224, 224], (Kind::Float, Device::Cpu));
    let x = x.to_kind(kind);
    let x = if mode.ends_with("channels-last") {
        to_channels_last(&x)
    } else {
        x
    };
    let y = Tensor::randint(args.classes, [args.batch], (Kind::Int64, Device::Cpu));
    let mut step = || {
        let logits = net.forward(&x, true).to_kind(Kind::Float);
        let loss = logits.cross_entropy_for_logits(&y);
        sgd.zero_grad();
        loss.backward();
        sgd.step(1e-3);
    };
    for _ in 0..args.warmup {
        step();
    }
    let start = Instant::now();
    for _ in 0..args.steps {
        step();
    }
    (args.batch as usize * args.steps) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    zftrain::allocator::tune_for_training();
    let args = parse_args();
    for mode in &args.modes {
        println!("zftrain {mode} {:.2}", measure(&args, mode));
    }
}
