//! `zftrain data synth` (the built-in synthetic data set) and `zftrain data
//! pack` (an ImageFolder as one file).

use anyhow::Result;
use zftrain_data::shaped::{write_imagenet_shaped, ShapedConfig};
use zftrain_data::synth::{write_synthetic, SynthConfig};

use crate::cli::{PackArgs, SynthArgs};
use crate::train::ticker::Ticker;

/// Writes the synthetic ImageFolder, or an ImageNet-shaped tree of links.
pub fn synth(args: &SynthArgs) -> Result<()> {
    if args.imagenet_shaped {
        let d = ShapedConfig::default();
        let config = ShapedConfig {
            classes: args.classes.unwrap_or(d.classes),
            train_per_class: args.train_per_class.unwrap_or(d.train_per_class),
            val_per_class: args.val_per_class.unwrap_or(d.val_per_class),
            sources: args.sources.unwrap_or(d.sources),
            width: args.width.unwrap_or(d.width),
            height: args.height.unwrap_or(d.height),
            seed: args.seed,
        };
        write_imagenet_shaped(&args.out, &config)?;
        println!(
            "wrote {} ({} classes, {} train and {} val files per class, hard links to {} {}x{} JPEG files in sources/)",
            args.out.display(),
            config.classes,
            config.train_per_class,
            config.val_per_class,
            config.sources,
            config.width,
            config.height
        );
        return Ok(());
    }
    if args.sources.is_some() {
        anyhow::bail!("--sources is for --imagenet-shaped trees");
    }
    let d = SynthConfig::default();
    let config = SynthConfig {
        classes: args.classes.unwrap_or(d.classes),
        train_per_class: args.train_per_class.unwrap_or(d.train_per_class),
        val_per_class: args.val_per_class.unwrap_or(d.val_per_class),
        width: args.width.unwrap_or(d.width),
        height: args.height.unwrap_or(d.height),
        seed: args.seed,
        style: args.style.into(),
        ..d
    };
    write_synthetic(&args.out, &config)?;
    println!(
        "wrote {} ({} classes, {} train and {} val images per class, {}x{} JPEG, {} style)",
        args.out.display(),
        config.classes,
        config.train_per_class,
        config.val_per_class,
        config.width,
        config.height,
        config.style.name()
    );
    Ok(())
}

/// Packs an ImageFolder, with a progress bar on a terminal and timed lines
/// off it.
pub fn pack(args: &PackArgs) -> Result<()> {
    use std::io::IsTerminal;
    use zftrain_data::pack::{write_pack, PackConfig};
    if args.out.exists() {
        anyhow::bail!(
            "{} exists: remove it or choose another --out",
            args.out.display()
        );
    }
    let dataset = zftrain_data::Dataset::image_folder(&args.src)?;
    let config = PackConfig {
        shorter_side: args.shorter_side,
        quality: args.quality,
        threads: args.threads.unwrap_or(PackConfig::default().threads),
        ..PackConfig::default()
    };
    let tty = std::io::stderr().is_terminal();
    let bar = match tty {
        true => indicatif::ProgressBar::new(dataset.samples.len() as u64),
        false => indicatif::ProgressBar::hidden(),
    };
    // Off a terminal, timed lines as training prints them.
    let mut ticker = Ticker::new("packing", dataset.samples.len(), args.log_every_s);
    let mut reported = 0;
    let start = std::time::Instant::now();
    let report = write_pack(&dataset, &args.out, &config, |done, _| {
        bar.set_position(done as u64);
        if !tty && done > reported {
            ticker.add(done - reported);
            reported = done;
        }
    })?;
    bar.finish_and_clear();
    for (path, why) in &report.skipped {
        eprintln!("zftrain: left out {}: {why}", path.display());
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "packed {} images ({} left out) of {} into {} in {:.1} s: {:.1} MiB from {:.1} MiB of files ({} threads, shorter side {}, quality {})",
        report.images,
        report.skipped.len(),
        args.src.display(),
        args.out.display(),
        start.elapsed().as_secs_f64(),
        mib(report.pack_bytes),
        mib(report.source_bytes),
        config.threads,
        config.shorter_side,
        config.quality
    );
    Ok(())
}
