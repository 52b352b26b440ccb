//! Checkpoints and weight files.
//!
//! Weights are safetensors files whose tensor names are PyTorch's, so
//! `model.load_state_dict(safetensors.torch.load_file(f), strict=True)` works,
//! and loading one never runs code. A checkpoint is a directory holding the
//! weights and a JSON manifest with SHA-256 checksums; it is written under a
//! temporary name and renamed into place, so a reader never sees half of one.

pub mod atomic;
pub mod checkpoint;
pub mod error;
pub mod tensors;

pub use checkpoint::{Checkpoint, Content, Manifest, FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE};
pub use error::CheckpointError;
pub use tensors::{
    assign_strict, load_strict, read_safetensors, write_safetensors, Expected, Metadata,
};
