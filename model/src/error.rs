//! Errors of the model crate.

use thiserror::Error;

/// Everything that can go wrong when building or running a network.
#[derive(Debug, Error)]
pub enum ModelError {
    /// An architecture name that is not built in.
    #[error("unknown architecture '{name}' (known: {known})")]
    UnknownArch {
        /// The name asked for.
        name: String,
        /// The names that exist, comma separated.
        known: String,
    },
    /// A number of classes below 1.
    #[error("the number of classes must be at least 1, got {0}")]
    BadClasses(i64),
    /// A dropout probability outside [0, 1).
    #[error("dropout probability must be in [0, 1), got {0}")]
    BadDropout(f64),
    /// Two consecutive layers whose shapes do not fit.
    #[error("layer {index} ({label}): {message}")]
    Shape {
        /// Position in the table.
        index: usize,
        /// The layer's label.
        label: String,
        /// What does not fit.
        message: String,
    },
    /// An input whose shape the network cannot take.
    #[error("input of shape {got:?} does not fit: expected [N, {channels}, H, W]")]
    BadInput {
        /// The input's shape.
        got: Vec<i64>,
        /// Channels the first layer expects.
        channels: i64,
    },
    /// An architecture file that cannot be read as one.
    #[error("{file}: {message}")]
    ArchFile {
        /// The file.
        file: String,
        /// What is wrong (the layer and key named).
        message: String,
    },
    /// A configuration key naming a layer the network does not have (or
    /// one without parameters).
    #[error("config key '{key}' names layer '{name}', which {arch} does not have with parameters (its layers: {known})")]
    UnknownLayer {
        /// The key (`model.freeze`, ...).
        key: String,
        /// The name given.
        name: String,
        /// The architecture's name.
        arch: String,
        /// The names that exist, comma separated.
        known: String,
    },
    /// An error inside libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}
