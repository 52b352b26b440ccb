//! Writing hook outputs without leaving half-written files: PNG images and
//! safetensors are written to a temporary name in the same folder, then
//! renamed.

use std::path::Path;

use image::RgbImage;
use tch::Tensor;

use crate::HookError;

fn temporary(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `image` as PNG at `path`.
pub fn write_png(path: &Path, image: &RgbImage) -> Result<(), HookError> {
    let tmp = temporary(path);
    image
        .save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| HookError::failed("png", format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(HookError::io(path))
}

/// Writes named tensors as safetensors at `path`.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), HookError> {
    let tmp = temporary(path);
    Tensor::write_safetensors(tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(HookError::io(path))
}
