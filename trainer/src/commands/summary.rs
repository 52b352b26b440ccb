//! `zftrain summary`: the torchsummary-style table of an architecture.

use anyhow::{Context, Result};
use zftrain_model::arch_file::{parse_arch, set_classes};
use zftrain_model::{Arch, Summary};

use crate::cli::SummaryArgs;
use crate::weights::config_from_args;

/// Prints the summary table (or JSON) to stdout.
pub fn run(args: &SummaryArgs) -> Result<()> {
    let arch = match &args.arch_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading architecture file {}", path.display()))?;
            let mut arch = parse_arch(&text, &path.display().to_string())?;
            if let Some(classes) = args.arch.classes {
                set_classes(&mut arch, classes)?;
            }
            arch
        }
        None => {
            let (name, config) = config_from_args(&args.arch)?;
            Arch::builtin(name, &config)?
        }
    };
    let summary = Summary::new(&arch)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}
