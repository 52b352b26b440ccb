//! The Deconvnet of Zeiler & Fergus for zftrain networks.
//!
//! - [`project`]: chosen activations back to pixel space, batched, with the
//!   switches of the forward that found them ([`unpool`] is the exact
//!   adjoint of max-pool selection).
//! - [`mine`]: the streaming top-k miner (the k strongest activations of
//!   every chosen feature map over a probe set, at most `per_image` per
//!   image), projecting each new winner right away with its own forward's
//!   switches, and cropping its receptive-field patch ([`patch`]);
//!   [`winners`]: the same in two passes for large probe sets (values on
//!   every device's shard, an exact merge, then the winners' images alone
//!   projected), with memory that does not grow with the probe set.
//! - [`render`]: the paper's display (contrast stretched around zero), 3x3
//!   tiles per feature map, maps in a grid, projections beside patches;
//!   [`agreement`]: whether projections trace their patches' edges.
//! - The architecture measures of ZF section 4 (Fig. 6), each with a null:
//!   [`aliasing`] (the output power a stride folds back, on real inputs),
//!   [`lattice`] (stride grids in projections), [`structure`] (filters
//!   indistinguishable from noise, dominating filters), [`spectrum`]
//!   (layer 1's frequency coverage against white noise); [`draws`] holds
//!   their fixed random draws.
//!
//! It depends on `model` only (docs/architecture.md draws the arrows).

pub mod agreement;
pub mod aliasing;
pub mod draws;
pub mod error;
pub mod lattice;
pub mod mine;
pub mod patch;
pub mod project;
pub mod render;
pub mod spectrum;
pub mod structure;
pub mod unpool;
pub mod winners;

pub use agreement::{edge_agreement, EdgeAgreement};
pub use error::DeconvError;
pub use mine::{LayerChoice, LayerTop, Miner, MinerConfig, Taken};
pub use project::{check_reversible, project, Target};
pub use render::{RenderConfig, Stretch};
pub use winners::{crop_winners, Crops, LayerWinners, Winner};
pub use zftrain_model::receptive::ReceptiveField;
