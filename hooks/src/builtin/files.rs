//! Writing hook outputs without leaving half-written files, through the
//! checkpoints crate's atomic writer (a temporary name in the same folder,
//! flushed to disk, renamed, the folder synced): one implementation for
//! checkpoints and hook outputs.

use std::path::Path;

use image::RgbImage;
use tch::Tensor;
use zftrain_checkpoints::{atomic, write_safetensors, Metadata};

use crate::HookError;

/// Writes `image` as PNG at `path`.
pub fn write_png(path: &Path, image: &RgbImage) -> Result<(), HookError> {
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| HookError::failed("png", format!("{}: {e}", path.display())))?;
    Ok(atomic::write_file(path, png.get_ref())?)
}

/// Writes named tensors as safetensors at `path` (in name order).
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), HookError> {
    Ok(write_safetensors(path, tensors, &Metadata::new())?)
}

/// Writes `text` (a CSV, a report) at `path`.
pub fn write_text(path: &Path, text: &str) -> Result<(), HookError> {
    Ok(atomic::write_file(path, text.as_bytes())?)
}
