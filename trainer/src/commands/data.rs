//! `zftrain data synth`: the built-in synthetic data set.

use anyhow::Result;
use zftrain_data::synth::{write_synthetic, SynthConfig};

use crate::cli::SynthArgs;

/// Writes the synthetic ImageFolder.
pub fn synth(args: &SynthArgs) -> Result<()> {
    let config = SynthConfig {
        classes: args.classes,
        train_per_class: args.train_per_class,
        val_per_class: args.val_per_class,
        width: args.width,
        height: args.height,
        seed: args.seed,
        ..SynthConfig::default()
    };
    write_synthetic(&args.out, &config)?;
    println!(
        "wrote {} ({} classes, {} train and {} val images per class, {}x{} JPEG)",
        args.out.display(),
        args.classes,
        args.train_per_class,
        args.val_per_class,
        args.width,
        args.height
    );
    Ok(())
}
