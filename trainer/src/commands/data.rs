//! `zftrain data synth` (the built-in synthetic data set) and `zftrain data
//! pack` (an ImageFolder as one file).

use crate::commands::Run;
use anyhow::Result;
use zftrain_data::shaped::{write_imagenet_shaped, ShapedConfig};
use zftrain_data::synth::{write_synthetic, SynthConfig};

use crate::train::ticker::Ticker;
use clap::Args;

use crate::commands::subcommands;

use crate::cli::named;
use std::path::PathBuf;
use zftrain_data::synth::Style;

/// `zftrain data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

subcommands! {
    /// `zftrain data` subcommands.
    pub enum DataCommand {
        /// Write the built-in synthetic data set (real JPEG files) as an ImageFolder.
        Synth(SynthArgs),
        /// Pack an ImageFolder into one file (images re-encoded at a bounded size), read with pread.
        Pack(PackArgs),
    }
}

/// `zftrain data pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// The ImageFolder to pack (e.g. DATA/train).
    #[arg(long)]
    pub src: PathBuf,
    /// The pack file to write (use it as data.train or data.val).
    #[arg(long)]
    pub out: PathBuf,
    /// Shrink images whose shorter side is longer than this (0: keep sizes).
    #[arg(long, default_value_t = 256)]
    pub shorter_side: u32,
    /// JPEG quality of the re-encoded images.
    #[arg(long, default_value_t = 90)]
    pub quality: u8,
    /// Encoding threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Off a terminal, a progress line every this many seconds (0: after
    /// every image).
    #[arg(long, default_value_t = 60.0)]
    pub log_every_s: f64,
}

/// `zftrain data synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Folder to create (must not exist): OUT/train/<class>/*.jpg, OUT/val/<class>/*.jpg.
    #[arg(long)]
    pub out: PathBuf,
    /// An ImageNet-shaped tree instead: class folders `n00000000`... of hard
    /// links to a few hundred JPEG files in OUT/sources (defaults 1,000
    /// classes, 100 training and 10 validation files each, 300 sources of
    /// 500x375), to rehearse a run at ImageNet's scale.
    #[arg(long)]
    pub imagenet_shaped: bool,
    /// Classes (1 to 10; any number with --imagenet-shaped) [default: 10,
    /// or 1000].
    #[arg(long)]
    pub classes: Option<usize>,
    /// Training images per class [default: 100].
    #[arg(long)]
    pub train_per_class: Option<usize>,
    /// Validation images per class [default: 20, or 10].
    #[arg(long)]
    pub val_per_class: Option<usize>,
    /// Distinct JPEG files of an --imagenet-shaped tree [default: 300].
    #[arg(long)]
    pub sources: Option<usize>,
    /// Image width [default: 256, or 500].
    #[arg(long)]
    pub width: Option<u32>,
    /// Image height [default: 192, or 375].
    #[arg(long)]
    pub height: Option<u32>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How the pictures are drawn: clean (anti-aliased, textures at
    /// several scales, no pixel noise), noisy (the first demo's: clutter
    /// rectangles and per-pixel noise) or leaves (the clean objects over a
    /// dead-leaves background: edges at every scale).
    #[arg(long, default_value = "clean", value_parser = named::<Style>)]
    pub style: Style,
}

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
        style: args.style,
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

impl Run for DataArgs {
    fn wants_cuda(&self) -> bool {
        self.command.get().wants_cuda()
    }
    fn run(&self) -> Result<u8> {
        self.command.get().run()
    }
}

impl Run for SynthArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        synth(self).map(|()| 0)
    }
}

impl Run for PackArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        pack(self).map(|()| 0)
    }
}
