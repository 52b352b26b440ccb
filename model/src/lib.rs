//! zftrain's networks.
//!
//! Every architecture is one [`Arch`]: an ordered table of [`Layer`]s. That
//! table alone drives the forward pass, the PyTorch parameter names, the taps
//! (rectified conv outputs), the max-pool switches, the receptive fields and
//! the summary, so the pieces cannot drift apart.

pub mod arch;
pub mod arch_file;
pub mod archs;
pub mod dropout;
pub mod error;
pub mod init;
pub mod layer;
pub mod lrn;
pub mod model;
pub mod network;
pub mod receptive;
pub mod select;
pub mod shape;
pub mod summary;

pub use arch::{Arch, ArchName};
pub use dropout::DropoutStream;
pub use error::ModelError;
pub use init::{InitConfig, InitScheme};
pub use layer::{BatchNormSpec, ConvSpec, Layer, LayerKind, LinearSpec, LrnSpec, PoolSpec};
pub use model::Model;
pub use network::{Network, PoolSwitch, Taps};
pub use receptive::ReceptiveField;
pub use shape::LayerShape;
pub use summary::Summary;
