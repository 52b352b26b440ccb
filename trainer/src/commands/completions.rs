//! `zftrain completions`: a shell completion script for zftrain's flags.

use crate::commands::Run;
use anyhow::Result;
use clap::Args;

/// `zftrain completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

impl Run for CompletionsArgs {
    fn wants_cuda(&self) -> bool {
        false
    }
    fn run(&self) -> Result<u8> {
        use clap::CommandFactory;
        let mut command = crate::cli::Cli::command();
        clap_complete::generate(self.shell, &mut command, "zftrain", &mut std::io::stdout());
        Ok(0)
    }
}
