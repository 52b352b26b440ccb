//! A message for both the person at the terminal and the run's log: one
//! call writes it to each, so the two never drift apart.

/// `text` on standard output and at info level in the log.
pub fn notice(text: &str) {
    tracing::info!("{text}");
    println!("{text}");
}

/// `text` on standard error (after `zftrain: `) and at warn level in the
/// log.
pub fn warning(text: &str) {
    tracing::warn!("{text}");
    eprintln!("zftrain: {text}");
}
