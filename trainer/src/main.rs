//! The `zftrain` binary: parse the command line, run the command, print any
//! error with its chain of causes and exit non-zero.

use std::process::ExitCode;

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
    // `--version` says what this binary runs on, not only its number.
    let first = std::env::args_os().nth(1);
    if first
        .as_deref()
        .is_some_and(|a| a == "--version" || a == "-V")
    {
        println!("{}", zftrain::commands::version::report());
        return ExitCode::SUCCESS;
    }
    let cli = zftrain::cli::Cli::parse_args();
    // Before anything touches libtorch: it decides once whether CUDA exists.
    zftrain::devices::preload_cuda(cli.wants_cuda());
    match zftrain::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("zftrain: error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: library errors often print their
/// source in their own message too ("writing F: No space left on device"),
/// so a cause already said is not repeated.
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let c = cause.to_string();
        if !text.contains(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
    }
    text
}
