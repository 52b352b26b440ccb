//! Decoding and preprocessing one image, one thread: the pipeline's own path
//! (libjpeg-turbo decoding only the crop's region, `decode_region_bytes`,
//! then one resampling of it with fast_image_resize, `Transform::render`)
//! against whole-image decoding (libjpeg-turbo, zune-jpeg, the `image`
//! crate) and the `image` crate's resize-the-whole-image-then-crop, on the
//! same JPEG files in the same run. Prints images/s per stage.
//!
//! `cargo bench -p zftrain-data --bench decode -- [DIR]` (default: writes 200
//! synthetic 500x375 JPEGs, quality 90, to a temporary folder).
// The benchmark is one table, stage after stage, in `main`.
#![allow(clippy::too_many_lines)]

use std::time::Instant;

use image::imageops::{self, FilterType};
use zftrain_data::decode::{decode_region_bytes, decode_rgb_bytes};
use zftrain_data::rng::SplitMix64;
use zftrain_data::synth::{write_synthetic, SynthConfig};
use zftrain_data::{Augment, Transform};

fn main() {
    let arg = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let dir = match arg {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            let config = SynthConfig {
                classes: 2,
                train_per_class: 100,
                val_per_class: 1,
                width: 500,
                height: 375,
                ..SynthConfig::default()
            };
            write_synthetic(&tmp.path().join("s"), &config).expect("synthetic JPEGs");
            tmp.path().join("s/train")
        }
    };
    let mut files = Vec::new();
    for class in std::fs::read_dir(&dir).expect("a folder of class folders") {
        for f in std::fs::read_dir(class.expect("an entry").path()).expect("a class folder") {
            files.push(std::fs::read(f.expect("an entry").path()).expect("a file"));
        }
    }
    let n = files.len() as f64;
    let eval = Transform {
        augment: Augment::Eval,
        ..Transform::default()
    };
    let time = |name: &str, f: &dyn Fn(&[u8]) -> usize| {
        let mut check = 0;
        for d in files.iter().take(5) {
            check += f(d);
        }
        let start = Instant::now();
        for d in &files {
            check += f(d);
        }
        println!(
            "{name:<52} {:8.1} img/s  ({check})",
            n / start.elapsed().as_secs_f64()
        );
    };
    println!("{} files from {}", files.len(), dir.display());
    time("decode: image crate, generic", &|d| {
        image::load_from_memory(d).unwrap().to_rgb8().len()
    });
    time("decode: zune-jpeg", &|d| {
        let options = zune_core::options::DecoderOptions::default()
            .jpeg_set_out_colorspace(zune_core::colorspace::ColorSpace::RGB);
        let cursor = zune_core::bytestream::ZCursor::new(d);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(cursor, options);
        decoder.decode().unwrap().len()
    });
    time("decode: libjpeg-turbo (decode_rgb_bytes)", &|d| {
        decode_rgb_bytes(d, u64::MAX).unwrap().len()
    });
    time(
        "decode + eval 256/224: image crate resize, then crop",
        &|d| {
            let img = image::load_from_memory(d).unwrap().to_rgb8();
            let g = eval.geometry(img.width(), img.height(), &mut SplitMix64::new(0));
            let (rw, rh) = g.resize.unwrap();
            let r = imageops::resize(&img, rw, rh, FilterType::Triangle);
            let (x, y, w, h) = g.crop;
            imageops::crop_imm(&r, x, y, w, h).to_image().len()
        },
    );
    let mut out = vec![0f32; eval.sample_len()];
    let out = std::cell::RefCell::new(&mut out);
    time(
        "decode + eval 256/224: whole image, Transform::apply",
        &|d| {
            let img = decode_rgb_bytes(d, u64::MAX).unwrap();
            eval.apply(&img, &mut SplitMix64::new(0), &mut out.borrow_mut());
            out.borrow().len()
        },
    );
    let seed = std::cell::Cell::new(0u64);
    let zf = Transform {
        augment: Augment::Zf,
        ..Transform::default()
    };
    time("decode: zf crop's region only, no resampling", &|d| {
        seed.set(seed.get() + 1);
        let mut rng = SplitMix64::new(seed.get());
        decode_region_bytes(d, u64::MAX, |w, h| {
            let g = zf.geometry(w, h, &mut rng);
            zf.source_region(w, h, &g)
        })
        .unwrap()
        .pixels
        .len()
    });
    for (name, augment) in [
        ("eval", Augment::Eval),
        ("zf", Augment::Zf),
        ("rrc", Augment::Rrc),
    ] {
        let t = Transform {
            augment,
            ..Transform::default()
        };
        let label = format!("decode + {name}: crop's region only (the loader's path)");
        time(&label, &|d| {
            seed.set(seed.get() + 1);
            let mut rng = SplitMix64::new(seed.get());
            let mut g = None;
            let part = decode_region_bytes(d, u64::MAX, |w, h| {
                let drawn = t.geometry(w, h, &mut rng);
                g = Some(drawn);
                t.source_region(w, h, &drawn)
            })
            .unwrap();
            let g = g.expect("a JPEG's region is asked for");
            t.render(
                &part.pixels,
                part.full,
                part.origin,
                &g,
                &mut out.borrow_mut(),
            );
            out.borrow().len()
        });
    }
}
