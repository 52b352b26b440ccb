//! One file per subcommand; [`run`] dispatches.

mod analyze;
pub mod architecture;
mod bench;
mod bench_mine;
mod data;
mod eval;
mod images;
mod inputs;
mod predict;
mod summary;
mod torchscript;
mod train;
pub mod version;
mod visualize;
mod weights;

use anyhow::Result;

use crate::cli::{AnalyzeCommand, BenchCommand, Cli, Command, DataCommand};

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    // A bad ZFTRAIN_CPU_BF16 is refused before any command writes anything.
    crate::engine::precision::cpu_bf16()?;
    match cli.command {
        Command::Summary(args) => summary::run(&args).map(|_| 0),
        Command::Init(args) => weights::init(&args).map(|_| 0),
        Command::Export(args) => weights::export(&args).map(|_| 0),
        Command::Import(args) => weights::import(&args).map(|_| 0),
        Command::Predict(args) => predict::run(&args).map(|_| 0),
        Command::Eval(args) => eval::run(&args).map(|_| 0),
        Command::Train(args) => train::run(&args),
        Command::Completions(args) => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(args.shell, &mut command, "zftrain", &mut std::io::stdout());
            Ok(0)
        }
        Command::Visualize(args) => visualize::run(&args).map(|_| 0),
        Command::Data(args) => match args.command {
            DataCommand::Synth(a) => data::synth(&a).map(|_| 0),
            DataCommand::Pack(a) => data::pack(&a).map(|_| 0),
        },
        Command::Analyze(args) => match args.command {
            AnalyzeCommand::Invariance(a) => analyze::invariance(&a).map(|_| 0),
            AnalyzeCommand::Occlusion(a) => analyze::occlusion(&a).map(|_| 0),
            AnalyzeCommand::Correspondence(a) => analyze::correspondence(&a).map(|_| 0),
            AnalyzeCommand::Architecture(a) => architecture::run(&a).map(|_| 0),
        },
        Command::Bench(args) => match args.command {
            BenchCommand::TrainStep(a) => bench::train_step(&a).map(|_| 0),
            BenchCommand::Deconv(a) => bench::deconv(&a),
            BenchCommand::Loader(a) => bench::loader(&a).map(|_| 0),
            BenchCommand::Projections(a) => bench::projections(&a).map(|_| 0),
            BenchCommand::Engine(a) => bench::engine(&a),
            BenchCommand::Mine(a) => bench_mine::mine(&a).map(|_| 0),
        },
    }
}
