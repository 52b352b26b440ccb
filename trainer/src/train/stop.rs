//! A stop handle: how a signal handler, a test or an embedding program asks
//! a running [`Trainer`](crate::train::Trainer) to checkpoint and stop. It is
//! passed in, not global, so two trainers in one process stop independently.
//!
//! Every phase listens: a training step finishes and the stop follows it;
//! validation and the hooks' probe passes end within a batch (the epoch's
//! end is then redone on resume); an exec plugin is killed. Before the
//! first step (indexing the data, the per-pixel mean, decoding the probe
//! set, joining the cluster) there is nothing to checkpoint: the handle is
//! not yet [armed](StopHandle::arm), and `zftrain train`'s signal handler
//! ends the process at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Shared between whoever asks and the trainer that listens; clones share
/// one counter.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    /// Requests so far.
    requests: AtomicUsize,
    /// Whether the trainer has reached its first step.
    armed: AtomicBool,
}

impl StopHandle {
    /// A handle no one has asked yet.
    pub fn new() -> StopHandle {
        StopHandle::default()
    }

    /// Asks the trainer to stop (within a step or a batch, whatever it is
    /// doing); returns how many times stopping had been asked before (0 on
    /// the first request).
    pub fn request(&self) -> usize {
        self.0.requests.fetch_add(1, Ordering::SeqCst)
    }

    /// Whether stopping has been asked.
    pub fn requested(&self) -> bool {
        self.0.requests.load(Ordering::SeqCst) > 0
    }

    /// The trainer is about to take its first step: from now on a stop
    /// ends with a checkpoint.
    pub fn arm(&self) {
        self.0.armed.store(true, Ordering::SeqCst);
    }

    /// Whether a stop now would have something to checkpoint.
    pub fn armed(&self) -> bool {
        self.0.armed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_request_and_count_repeats() {
        let handle = StopHandle::new();
        let listener = handle.clone();
        assert!(!listener.requested());
        assert_eq!(handle.request(), 0);
        assert!(listener.requested());
        assert_eq!(handle.request(), 1);
        assert!(
            !StopHandle::new().requested(),
            "a new handle is independent"
        );
        assert!(!listener.armed());
        handle.arm();
        assert!(listener.armed(), "clones share the arming");
    }
}
