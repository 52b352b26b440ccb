//! Errors of hooks: each names the hook, and what it could not do.

use thiserror::Error;

/// What can go wrong in a hook.
#[derive(Debug, Error)]
pub enum HookError {
    /// The hook's settings are wrong (named by key).
    #[error("hook '{hook}': {message}")]
    Config {
        /// The hook.
        hook: String,
        /// What is wrong.
        message: String,
    },
    /// The hook failed while running.
    #[error("hook '{hook}' failed: {message}")]
    Failed {
        /// The hook.
        hook: String,
        /// Why.
        message: String,
    },
    /// The hook panicked.
    #[error("hook '{hook}' panicked: {message}")]
    Panicked {
        /// The hook.
        hook: String,
        /// The panic message.
        message: String,
    },
    /// Writing a summary failed.
    #[error("summary '{tag}': {message}")]
    Sink {
        /// The tag.
        tag: String,
        /// Why.
        message: String,
    },
    /// The Deconvnet failed.
    #[error(transparent)]
    Deconv(#[from] zftrain_deconv::DeconvError),
    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A file could not be written (the checkpoints crate's atomic writer
    /// names it).
    #[error(transparent)]
    Write(#[from] zftrain_checkpoints::CheckpointError),
    /// The probe set could not give an image.
    #[error("probe set: {0}")]
    Probe(String),
    /// Work on one of the run's devices failed.
    #[error("on {device}: {message}")]
    Device {
        /// The device, as `cuda:1` or `cpu`.
        device: String,
        /// What went wrong there.
        message: String,
    },
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl HookError {
    /// A [`HookError::Failed`] for `hook`.
    pub fn failed(hook: &str, message: impl std::fmt::Display) -> HookError {
        HookError::Failed {
            hook: hook.into(),
            message: message.to_string(),
        }
    }

    /// The error with `hook`'s name on it (errors from below the hook,
    /// such as the Deconvnet's, do not know which hook they came from).
    pub fn in_hook(self, hook: &str) -> HookError {
        match self {
            e @ (HookError::Config { .. }
            | HookError::Failed { .. }
            | HookError::Panicked { .. }) => e,
            other => HookError::Failed {
                hook: hook.into(),
                message: other.to_string(),
            },
        }
    }

    /// A [`HookError::Io`] for `path`.
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> HookError + '_ {
        move |source| HookError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The message of a caught panic (`"a panic without a message"` if it had
/// none that is text).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
