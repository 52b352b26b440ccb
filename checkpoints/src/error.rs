//! Errors of the checkpoints crate. Each names the file, tensor or key at fault.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong reading or writing weights and checkpoints.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file that is not what it should be (bad header, bad JSON, ...).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file's tensor names differ from the model's (as PyTorch's
    /// `load_state_dict(strict=True)` reports: both lists at once).
    #[error(
        "{path}: tensor names do not match the model{}{}",
        list("missing tensors", missing),
        list("unexpected tensors (not in the model)", unexpected)
    )]
    Names {
        /// The file.
        path: PathBuf,
        /// Names the model needs that the file lacks.
        missing: Vec<String>,
        /// Names in the file that the model does not have.
        unexpected: Vec<String>,
    },
    /// A tensor whose shape differs from the model's.
    #[error("{path}: tensor '{name}' has shape {got:?}, the model expects {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Shape in the model.
        expected: Vec<i64>,
        /// Shape in the file.
        got: Vec<i64>,
    },
    /// A tensor stored with a dtype that cannot hold weights.
    #[error("{path}: tensor '{name}' has dtype {dtype}, expected {expected}")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
        /// What the target takes.
        expected: &'static str,
    },
    /// A file whose content does not match the manifest's checksum.
    #[error(
        "{path}: checksum mismatch (manifest says {expected}, file has {got}); the file is corrupt"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// SHA-256 from the manifest.
        expected: String,
        /// SHA-256 of the file.
        got: String,
    },
    /// An error inside libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

fn list(what: &str, names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!("; {what}: {}", names.join(", "))
    }
}

impl CheckpointError {
    /// An [`CheckpointError::Io`] for `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CheckpointError::Io {
            action,
            path,
            source,
        }
    }

    /// A [`CheckpointError::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        CheckpointError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}
