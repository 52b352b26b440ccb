//! `zftrain summary`: the torchsummary-style table of an architecture.

use anyhow::Result;
use zftrain_model::Summary;

use crate::cli::SummaryArgs;
use crate::weights::config_from_args;

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
