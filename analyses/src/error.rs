//! Errors of the analyses: settings or inputs out of range.

use thiserror::Error;

/// What can go wrong in an analysis.
#[derive(Debug, Error)]
pub enum AnalysisError {
    /// A setting or input out of range; the message names it.
    #[error("{0}")]
    Config(String),
    /// The Deconvnet refused a projection.
    #[error(transparent)]
    Deconv(#[from] zftrain_deconv::DeconvError),
    /// Drawing a figure failed.
    #[error(transparent)]
    Figure(#[from] zftrain_figures::FigureError),
    /// libtorch refused an operation.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}
