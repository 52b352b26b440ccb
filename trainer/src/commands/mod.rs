//! One file per subcommand, cargo's way: each holds its flags (a clap
//! `Args` struct) and what it runs, and says whether it needs CUDA
//! ([`Run`], whose methods have no defaults, so a new command cannot
//! forget). [`run`] dispatches through [`Command::get`].

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

use crate::cli::Cli;

/// A command: its flags, parsed, and what they ask for.
pub trait Run {
    /// Whether the flags ask for a GPU (`main` loads CUDA first then; a
    /// configuration file may ask too, which `train` sees to once it has
    /// read it).
    fn wants_cuda(&self) -> bool;
    /// Runs the command; the process exit code.
    fn run(&self) -> Result<u8>;
}

/// A subcommand enum, declared once: each variant (its doc is its help
/// line) holds a command's flags, and `get` is the command as a [`Run`],
/// one exhaustive match, so a variant that is not a command does not
/// compile. A new command is its file, its `mod` line and its line here.
macro_rules! subcommands {
    ($(#[doc = $edoc:literal])* $vis:vis enum $name:ident {
        $($(#[doc = $doc:literal])* $variant:ident($args:ty),)*
    }) => {
        $(#[doc = $edoc])*
        #[derive(Debug, clap::Subcommand)]
        $vis enum $name {
            $($(#[doc = $doc])* $variant($args),)*
        }

        impl $name {
            /// The command this variant holds.
            pub fn get(&self) -> &dyn $crate::commands::Run {
                match self {
                    $(Self::$variant(args) => args,)*
                }
            }
        }
    };
}
pub(crate) use subcommands;

subcommands! {
    /// The subcommands; each lives in its own file under `commands/`, with
    /// its flags and what it runs ([`Run`]).
    pub enum Command {
        /// Print a torchsummary-style table of an architecture.
        Summary(summary::SummaryArgs),
        /// Create a checkpoint with freshly initialized weights.
        Init(weights::InitArgs),
        /// Write a checkpoint's weights as a safetensors file with PyTorch's names, or the network as TorchScript.
        Export(weights::ExportArgs),
        /// Make a checkpoint from a safetensors file saved from PyTorch (names and shapes checked).
        Import(weights::ImportArgs),
        /// Top-5 classes of images.
        Predict(predict::PredictArgs),
        /// Loss, top-1 and top-5 error of weights on a labelled image folder (centre crop or --ten-crop).
        Eval(eval::EvalArgs),
        /// Train a network on an image folder (or resume a run).
        Train(train::TrainArgs),
        /// Print a shell completion script: `zftrain completions bash > /etc/bash_completion.d/zftrain`.
        Completions(completions::CompletionsArgs),
        /// Run the visualization hooks once on a checkpoint or weights (Deconvnet grids, dead filters).
        Visualize(visualize::VisualizeArgs),
        /// Data sets: `zftrain data synth --out DIR` writes the built-in synthetic one.
        Data(data::DataArgs),
        /// Measure this machine: training steps per second, Deconvnet projections on a GPU against the CPU.
        Bench(bench::BenchArgs),
        /// Zeiler & Fergus's analyses of trained weights: invariance, occlusion, correspondence.
        Analyze(analyze::AnalyzeArgs),
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    // A bad ZFTRAIN_CPU_BF16 is refused before any command writes anything.
    zftrain_parallel::precision::cpu_bf16()?;
    cli.command.get().run()
}
