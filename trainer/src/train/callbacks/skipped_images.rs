//! Reports images that do not decode: each in the log with its reason, and
//! in TensorBoard (`data/skipped_images` as text, the running total as
//! `data/skipped_images_total`), so a bad file in a week-long run is seen.

use std::path::PathBuf;

use anyhow::Result;
use tracing::warn;

use super::{Callback, Context};
use crate::train::log_file::code_span;

/// The skipped-image reporter.
pub struct SkippedImages;

impl Callback for SkippedImages {
    fn on_skipped(&mut self, ctx: &Context<'_>, skipped: &[(PathBuf, String)]) -> Result<()> {
        if skipped.is_empty() {
            return Ok(());
        }
        let step = ctx.state.global_step as i64;
        let mut text = String::new();
        for (path, why) in skipped {
            warn!(file = %path.display(), reason = %why, "skipped an image that does not decode");
            text.push_str(&format!(
                "- {}: {}\n",
                code_span(&path.display().to_string()),
                code_span(why)
            ));
        }
        ctx.tb.text("data/skipped_images", step, &text)?;
        ctx.tb.scalar(
            "data/skipped_images_total",
            step,
            ctx.state.skipped_images as f64,
        )?;
        Ok(())
    }
}
