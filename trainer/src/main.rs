//! The `zftrain` binary: parse the command line, run the command, print any
//! error with its chain of causes and exit non-zero.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Output piped into `head` and closed early ends the process quietly,
    // as with other Unix tools, instead of a panic in `println!`. Sockets
    // are unaffected (the standard library sends with MSG_NOSIGNAL).
    // SAFETY: setting a signal's disposition to the default, before any
    // thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
