//! Errors of the Deconvnet: a target that does not exist in the network or
//! the image, or a layer the way down cannot reverse.

use thiserror::Error;

/// What can go wrong projecting, mining or rendering.
#[derive(Debug, Error)]
pub enum DeconvError {
    /// A target names a conv layer, channel, position or image that is not there.
    #[error("target {target}: {message}")]
    BadTarget {
        /// The target, as `image/layer/channel/(y, x)`.
        target: String,
        /// What is out of range.
        message: String,
    },
    /// A layer below the target that the Deconvnet cannot reverse.
    #[error("layer {index} ({label}) cannot be reversed by the Deconvnet: {why}")]
    Unsupported {
        /// Index in the layer table.
        index: usize,
        /// Its label.
        label: String,
        /// Why not.
        why: String,
    },
    /// A setting out of range.
    #[error("{0}")]
    Config(String),
    /// Drawing the labels of a figure failed.
    #[error(transparent)]
    Figure(#[from] zftrain_figures::FigureError),
    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}
