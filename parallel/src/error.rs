//! The engine's errors, by where they come from, so a caller can tell a
//! missing device from a failed collective or a broken link to another
//! node; each message names the device, call, node or file.

use std::fmt::Display;

use thiserror::Error;

/// What can go wrong in the engine.
#[derive(Debug, Error)]
pub enum ParallelError {
    /// Devices: CUDA missing or not loading, a GPU that does not answer, a
    /// device list that cannot be.
    #[error("{0}")]
    Device(String),
    /// An NCCL call failed, timed out, or NCCL does not load.
    #[error("{0}")]
    Nccl(String),
    /// The rendezvous or a link between nodes: a peer that is not a
    /// zftrain node, disagrees, is out of step or went away.
    #[error("{0}")]
    Link(String),
    /// A setting the engine cannot work with.
    #[error("{0}")]
    Config(String),
    /// A configuration value refused, with its key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A replica failed in its step (its message says which).
    #[error("{0}")]
    Replica(String),
    /// A socket or file operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// libtorch refused an operation.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// The network could not be built.
    #[error(transparent)]
    Model(#[from] zftrain_model::ModelError),
    /// An error with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: Box<ParallelError>,
    },
}

pub use zftrain_keys::KeyError;

/// The engine's results.
pub type Result<T, E = ParallelError> = std::result::Result<T, E>;

/// `.context(...)` and `.with_context(|| ...)` on any result whose error
/// becomes an [`ParallelError`].
pub trait ResultExt<T> {
    /// Says what was being done.
    fn context(self, context: impl Display) -> Result<T>;
    /// Says what was being done, worked out only on an error.
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<ParallelError>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, context: impl Display) -> Result<T> {
        self.with_context(|| context)
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| ParallelError::Context {
            context: context().to_string(),
            source: Box::new(e.into()),
        })
    }
}

impl<T> ResultExt<T> for Option<T> {
    fn context(self, context: impl Display) -> Result<T> {
        self.ok_or_else(|| ParallelError::Config(context.to_string()))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| ParallelError::Config(context().to_string()))
    }
}

/// Returns an [`ParallelError`] of the given kind with a formatted message.
macro_rules! fail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::ParallelError::$kind(format!($($arg)*)))
    };
}
pub(crate) use fail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_says_what_was_done_and_keeps_the_kind_below() {
        let failed: Result<()> = Err(ParallelError::Link("node 1 went away".into()));
        let err = failed.context("all-reducing step 7").unwrap_err();
        assert_eq!(err.to_string(), "all-reducing step 7: node 1 went away");
        let ParallelError::Context { source, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(matches!(**source, ParallelError::Link(_)), "{source:?}");
        let io: std::io::Result<()> = Err(std::io::ErrorKind::TimedOut.into());
        let err = io.context("reading from node 2").unwrap_err();
        assert!(
            err.to_string().starts_with("reading from node 2: "),
            "{err}"
        );
    }
}
