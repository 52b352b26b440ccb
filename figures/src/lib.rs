//! Text on zftrain's figures. Every picture a researcher reads (Deconvnet
//! grids, the evolution montage, the analyses' panels) carries its labels
//! in the pixels, so a PNG copied out of a run still says what it shows.
//! The DejaVu Sans font is built in (no system fonts needed); drawing goes
//! through plotters' bitmap backend straight onto an [`image::RgbImage`].
//!
//! - [`text`]: the font, text drawn onto an image, its measured width;
//! - [`captions`]: a title band, margins, stacking, a legend of colour swatches;
//! - [`colour_bar`]: a palette's scale with its range and unit.

pub mod captions;
pub mod colour_bar;
pub mod error;
pub mod text;

pub use captions::{legend, stacked, titled, with_margins};
pub use colour_bar::colour_bar;
pub use error::FigureError;
pub use text::{draw_text, text_width, Label};
