//! A stop handle: how a signal handler, a test or an embedding program asks
//! a running [`Trainer`](crate::train::Trainer) to checkpoint and stop after
//! its current step. It is passed in, not global, so two trainers in one
//! process stop independently.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Shared between whoever asks and the trainer that listens; clones share
/// one counter.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicUsize>);

impl StopHandle {
    /// A handle no one has asked yet.
    pub fn new() -> StopHandle {
        StopHandle::default()
    }

    /// Asks the trainer to stop after its current step; returns how many
    /// times stopping had been asked before (0 on the first request).
    pub fn request(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    /// Whether stopping has been asked.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
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
    }
}
