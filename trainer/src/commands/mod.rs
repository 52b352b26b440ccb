//! One file per subcommand, cargo's way: each holds its flags (a clap
//! `Args` struct) and what it runs, and says whether it needs CUDA
//! ([`Run`], whose methods have no defaults, so a new command cannot
//! forget). [`run`] dispatches through [`Command::get`](crate::cli::Command::get).

pub mod analyze;
pub mod architecture;
pub mod bench;
pub mod bench_mine;
pub mod completions;
pub mod data;
pub mod eval;
mod images;
mod inputs;
pub mod predict;
pub mod summary;
mod torchscript;
pub mod train;
pub mod version;
pub mod visualize;
pub mod weights;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// A command: its flags, parsed, and what they ask for.
pub trait Run {
    /// Whether the flags ask for a GPU (`main` loads CUDA first then; a
    /// configuration file may ask too, which `train` sees to once it has
    /// read it).
    fn wants_cuda(&self) -> bool;
    /// Runs the command; the process exit code.
    fn run(&self) -> Result<u8>;
}

/// The command each variant of a subcommand enum holds, as a [`Run`]: one
/// exhaustive match, so a new variant that is not a command does not
/// compile.
macro_rules! dispatch {
    ($enum:path { $($variant:ident),* $(,)? }) => {
        impl $enum {
            /// The command this variant holds.
            pub fn get(&self) -> &dyn $crate::commands::Run {
                match self {
                    $(Self::$variant(args) => args,)*
                }
            }
        }
    };
}
pub(crate) use dispatch;

dispatch!(Command {
    Summary,
    Init,
    Export,
    Import,
    Predict,
    Eval,
    Train,
    Completions,
    Visualize,
    Data,
    Bench,
    Analyze
});

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    // A bad ZFTRAIN_CPU_BF16 is refused before any command writes anything.
    crate::engine::precision::cpu_bf16()?;
    cli.command.get().run()
}
