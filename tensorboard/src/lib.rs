//! TensorBoard event files, written by us.
//!
//! An event file is a sequence of TFRecords (length, masked CRC-32C of the
//! length, payload, masked CRC-32C of the payload), each payload one `Event`
//! protocol buffer. [`proto`] declares the few messages we need with their
//! field numbers from TensorBoard's `event.proto`, `summary.proto` and
//! `tensor.proto`; [`record`] frames them; [`writer::SummaryWriter`] offers
//! scalars, images, histograms and text (each tag with a one-line
//! description when the writer is given them), the HParams records and a
//! custom-scalars layout, and returns I/O errors instead of panicking. The tests read our files back with TensorBoard's own reader.

pub mod background;
pub mod hparams;
pub mod layout;
pub mod proto;
pub mod record;
pub mod writer;

pub use background::BackgroundWriter;
pub use hparams::{HParamValue, SessionStatus};
pub use layout::{Category, Chart, Layout};
pub use writer::{Histogram, SummaryWriter, TensorBoardError};
