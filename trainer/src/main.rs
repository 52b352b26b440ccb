//! The `zftrain` binary: parse the command line, run the command, print any
//! error with its chain of causes and exit non-zero.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    zftrain::allocator::tune_for_training();
    let cli = zftrain::cli::Cli::parse();
    match zftrain::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("zftrain: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
