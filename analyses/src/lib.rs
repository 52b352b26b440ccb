//! The analyses of Zeiler & Fergus section 4 on a network: how features
//! change under translation, scaling and rotation (invariance), what the
//! network looks at (occlusion sensitivity), and whether occluding the same
//! part of different images changes the features the same way
//! (correspondence).
//!
//! Each analysis is plain computation on a [`zftrain_model::Network`] and
//! preprocessed image tensors, batched on the network's device; the trainer
//! wraps them as hooks and as `zftrain analyze` commands, and writes the
//! figures and tables.

pub mod correspondence;
pub mod error;
pub mod features;
pub mod geometry;
pub mod invariance;
pub mod occlusion;
pub mod plot;
pub mod render;
pub mod report;

pub use error::AnalysisError;
pub use features::{FeatureExtractor, Features};
pub use geometry::Warp;
