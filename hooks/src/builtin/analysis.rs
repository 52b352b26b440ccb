//! What the three analysis hooks (invariance, occlusion, correspondence)
//! share: picking probe images by index, their epoch folder, and turning the
//! analyses' errors into hook errors.

use std::path::PathBuf;

use tch::Tensor;
use zftrain_analyses::AnalysisError;

use crate::{HookContext, HookError};

/// The probe images `indices` as `[N, 3, H, W]` on the CPU.
pub(crate) fn probe_images(
    ctx: &HookContext<'_>,
    hook: &str,
    indices: &[usize],
) -> Result<Tensor, HookError> {
    let n = ctx.probe.len();
    if let Some(bad) = indices.iter().find(|&&i| i >= n) {
        return Err(HookError::Config {
            hook: hook.into(),
            message: format!("probe image {bad} does not exist (the probe set has {n}: raise probe.images or pick others)"),
        });
    }
    ctx.probe.images(indices)
}

/// `hooks/<name>/epoch-EEE/`, created.
pub(crate) fn epoch_dir(ctx: &HookContext<'_>, hook: &str) -> Result<PathBuf, HookError> {
    let dir = ctx
        .output_dir(hook)?
        .join(format!("epoch-{:03}", ctx.epoch));
    std::fs::create_dir_all(&dir).map_err(HookError::io(&dir))?;
    Ok(dir)
}

/// Writes `text` as `dir/name`, atomically ([`super::files::write_text`]).
pub(crate) fn write_text(dir: &std::path::Path, name: &str, text: &str) -> Result<(), HookError> {
    super::files::write_text(&dir.join(name), text)
}

/// An analysis error as `hook`'s.
pub(crate) fn failed(hook: &str) -> impl Fn(AnalysisError) -> HookError + '_ {
    move |e| match e {
        AnalysisError::Config(m) => HookError::Config {
            hook: hook.into(),
            message: m,
        },
        other => HookError::failed(hook, other),
    }
}
