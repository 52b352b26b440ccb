//! Reading a pack's images: `pread` on the file the pack keeps open (what
//! the loader does, so that a pack cut underneath is an error and not a
//! SIGBUS) against copying them out of a read-only mapping of the same file
//! (what it did before), same pack, same run, the page cache warm. Prints
//! images/s and MiB/s of each and their ratio; the loader's whole cost per
//! image (decoding, augmenting) is `cargo bench -p zftrain-data --bench
//! decode` and `zftrain bench loader`.
//!
//! `cargo bench -p zftrain-data --bench pack_read -- [PACK]` (default: packs
//! 1,000 synthetic 500x375 JPEGs at shorter side 256 into a temporary file).

use std::time::Instant;

use zftrain_data::pack::{write_pack, Pack, PackConfig};
use zftrain_data::synth::{write_synthetic, SynthConfig};
use zftrain_data::Dataset;

fn main() {
    let arg = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let path = match arg {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let config = SynthConfig {
                classes: 10,
                train_per_class: 100,
                val_per_class: 1,
                width: 500,
                height: 375,
                ..SynthConfig::default()
            };
            write_synthetic(&tmp.path().join("s"), &config).expect("synthetic JPEGs");
            let data = Dataset::image_folder(&tmp.path().join("s/train")).expect("the folder");
            let out = tmp.path().join("bench.zfpack");
            write_pack(&data, &out, &PackConfig::default(), |_, _| {}).expect("the pack");
            out
        }
    };
    let pack = Pack::open(&path).expect("a pack");
    let file = std::fs::File::open(&path).expect("the pack file");
    // SAFETY: read-only, and nothing writes the file during the bench.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("a mapping");
    let n = pack.entries.len();
    let bytes: u64 = pack.entries.iter().map(|e| e.len).sum();
    let rounds = 20;
    let time = |name: &str, read: &dyn Fn(usize) -> Vec<u8>| -> f64 {
        let mut check = 0usize;
        for i in 0..n {
            check += read(i).len(); // warm the page cache
        }
        let start = Instant::now();
        for _ in 0..rounds {
            for i in 0..n {
                check += read(i)[0] as usize;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = (n * rounds) as f64 / secs;
        println!(
            "{name:<40} {rate:10.0} img/s {:8.0} MiB/s  ({check})",
            (bytes * rounds as u64) as f64 / secs / (1 << 20) as f64
        );
        rate
    };
    println!(
        "{n} images, {:.1} MiB, {rounds} passes",
        bytes as f64 / (1 << 20) as f64
    );
    let pread = time("pread from the open file (the loader)", &|i| {
        pack.bytes(i).expect("the bytes")
    });
    let mapped = time("copied out of a mapping (before)", &|i| {
        let e = &pack.entries[i];
        map[e.offset as usize..(e.offset + e.len) as usize].to_vec()
    });
    println!("pread / mapping: {:.3}", pread / mapped);
}
