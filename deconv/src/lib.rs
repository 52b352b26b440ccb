//! The Deconvnet of Zeiler & Fergus for zftrain networks.
//!
//! This crate will hold the projection of chosen activations back to pixel
//! space (unpooling with the switches that [`zftrain_model::Network::forward_taps`]
//! records, rectification, transposed filters), the streaming top-k miner
//! and the receptive-field patches (from [`zftrain_model::receptive`]). It
//! depends on `model` only, as DESIGN.md draws the arrows.

pub use zftrain_model::receptive::ReceptiveField;
