//! zftrain's side of the ZFNet CPU training-step benchmark (`bench/train-step`
//! runs it next to PyTorch's and prints the ratios).
//!
//! The trainer's own step through the engine (`zftrain::benchmark`, the same
//! code `zftrain bench train-step` runs): mixed-precision forward from fp32
//! master weights, cross-entropy, backward, SGD (momentum 0.9, weight decay
//! 5e-4), with the trainer's allocator tuning. Random input; whole steps
//! timed after warm-up steps. Prints one line per mode: `zftrain <mode> <img/s>`.
//!
//! `cargo bench -p zftrain --bench train_step -- [--batch N] [--steps N]
//! [--warmup N] [--classes N] [--modes fp32,bf16,...]`

use zftrain::benchmark::{train_step_throughput, Mode, StepBenchConfig};

fn main() -> anyhow::Result<()> {
    zftrain::allocator::tune_for_training();
    let mut config = StepBenchConfig::default();
    let mut modes = "fp32,fp32-channels-last,bf16,bf16-channels-last".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--batch" => config.batch = value()?.parse()?,
            "--steps" => config.steps = value()?.parse()?,
            "--warmup" => config.warmup = value()?.parse()?,
            "--classes" => config.classes = value()?.parse()?,
            "--modes" => modes = value()?,
            // cargo bench passes --bench.
            _ => {}
        }
    }
    for name in modes.split(',') {
        let mode: Mode = name.parse()?;
        println!(
            "zftrain {name} {:.2}",
            train_step_throughput(&config, mode)?
        );
    }
    Ok(())
}
