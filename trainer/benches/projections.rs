//! Deconvnet projections per second for layer 5 of ZFNet on the CPU:
//! batched (`project_fields`, the miner's path, up to 32 targets per pass)
//! against a one-target-at-a-time loop of the same code
//! (`zftrain::benchmark::projection_batching`, also behind `zftrain bench
//! projections --gpu N`). Prints both and the ratio.
//!
//! `cargo bench -p zftrain --bench projections [-- --targets N]`

use tch::Device;
use zftrain::benchmark::projection_batching;

fn main() {
    let mut targets = 64usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--targets" {
            targets = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--targets N");
        }
    }
    let f = projection_batching(Device::Cpu, 5, targets, 32).expect("projections run");
    println!("targets       {:8}", f.targets);
    println!("batched       {:8.1} projections/s", f.batched);
    println!("one-at-a-time {:8.1} projections/s", f.one_at_a_time);
    println!("ratio         {:8.2}x", f.batched / f.one_at_a_time);
}
