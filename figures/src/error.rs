//! Errors of drawing: the backend refused (a size of zero, say).

use thiserror::Error;

/// What can go wrong drawing a figure.
#[derive(Debug, Error)]
pub enum FigureError {
    /// The drawing backend failed; the message says how.
    #[error("drawing a figure: {0}")]
    Drawing(String),
}

/// Wraps a plotters error.
pub(crate) fn drawing<E: std::fmt::Debug>(e: E) -> FigureError {
    FigureError::Drawing(format!("{e:?}"))
}
