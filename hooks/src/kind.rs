//! What a built-in hook declares about itself, in its own file: how its
//! `[[hooks]]` table is checked and turned into the hook, and the
//! TensorBoard tags it writes with what each means. [`HookSpec`] lists the
//! kinds once (`hook_kinds!` in spec.rs); the trainer gathers their tags
//! ([`HookSpec::tags`]) for TensorBoard's descriptions and the docs.
//!
//! [`HookSpec`]: crate::HookSpec
//! [`HookSpec::tags`]: crate::HookSpec::tags

use crate::{Hook, HookError};

/// A tag pattern and its description: `*` stands for one path segment
/// (`conv3`), a final `**` for the rest of the tag.
pub type TagDoc = (&'static str, &'static str);

/// A built-in hook kind, implemented by its `[[hooks]]` table's type.
pub trait HookKind {
    /// The hook this table describes, its settings checked (a bad one is
    /// a [`HookError::Config`] that names the hook).
    fn build(&self) -> Result<Box<dyn Hook>, HookError>;

    /// Every tag the hook writes, with its description, in the order the
    /// docs list them.
    fn tags() -> &'static [TagDoc]
    where
        Self: Sized;

    /// The program the hook would run, as `'name' (command = ...)`, for a
    /// hook that runs one; `None` for zftrain's own analyses.
    fn program(&self) -> Option<String> {
        None
    }

    /// Whether the hook mines the training images (a run then sets them
    /// aside for it).
    fn mines_training_images(&self) -> bool {
        false
    }
}

/// A [`HookError::Config`] for hook `hook` unless `ok`.
pub(crate) fn require(
    ok: bool,
    hook: &str,
    message: impl FnOnce() -> String,
) -> Result<(), HookError> {
    match ok {
        true => Ok(()),
        false => Err(HookError::Config {
            hook: hook.to_string(),
            message: message(),
        }),
    }
}
