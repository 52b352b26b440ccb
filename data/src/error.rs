//! Errors of the data crate; each names the file or folder at fault.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong finding, reading or writing images.
#[derive(Debug, Error)]
pub enum DataError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A folder that should hold images holds none.
    #[error("{path}: {message}")]
    Layout {
        /// The folder or list file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An image that cannot be decoded (and `bad_images = "fail"`).
    #[error("bad image {path}: {message}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// The decoder's complaint.
        message: String,
    },
    /// A loader worker panicked while it prepared a batch (a bug, or a
    /// decoder that panics on some file): the batch is lost, the epoch
    /// cannot go on.
    #[error(
        "the data loader panicked preparing batch {batch} of epoch {epoch} ({files}): {message}"
    )]
    Panicked {
        /// The epoch.
        epoch: u64,
        /// The batch's index in the epoch.
        batch: usize,
        /// The batch's files (the first, and how many more).
        files: String,
        /// The panic's message.
        message: String,
    },
    /// Encoding an image failed (synthetic data).
    #[error("encoding {path}: {message}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// The encoder's complaint.
        message: String,
    },
}

impl DataError {
    /// A [`DataError::Io`] for `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| DataError::Io {
            action,
            path,
            source,
        }
    }

    /// A [`DataError::Layout`] for `path`.
    pub fn layout(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Layout {
            path: path.into(),
            message: message.into(),
        }
    }
}
