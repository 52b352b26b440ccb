//! `zftrain summary`: the torchsummary-style table of an architecture.

use crate::commands::Run;
use anyhow::Result;
use zftrain_model::Summary;

use crate::cli::ArchArgs;
use crate::weights::config_from_args;
use clap::Args;

/// `zftrain summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The architecture and its options.
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the summary table (or JSON) to stdout.
pub fn run(args: &SummaryArgs) -> Result<()> {
    let (spec, config) = config_from_args(&args.arch.overrides())?;
    let arch = spec.table(&config)?;
    let summary = Summary::new(&arch)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}

impl Run for SummaryArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        run(self).map(|()| 0)
    }
}
