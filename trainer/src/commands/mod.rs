//! One file per subcommand; [`run`] dispatches.

mod predict;
mod summary;
mod weights;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Summary(args) => summary::run(&args),
        Command::Init(args) => weights::init(&args),
        Command::Export(args) => weights::export(&args),
        Command::Import(args) => weights::import(&args),
        Command::Predict(args) => predict::run(&args),
    }
}
