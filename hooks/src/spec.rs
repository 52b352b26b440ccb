//! Hooks built from the config's `[[hooks]]` tables: `kind` picks the hook,
//! the other keys are its settings (unknown keys are refused by name).

use serde::{Deserialize, Serialize};

use crate::builtin::{
    AliasingConfig, AliasingHook, CommandLine, CorrespondenceHook, CorrespondenceHookConfig,
    DeadFiltersConfig, DeadFiltersHook, DeconvGridConfig, DeconvGridHook, EvolutionConfig,
    EvolutionHook, ExecConfig, ExecHook, InvarianceHook, InvarianceHookConfig, LrnConfig, LrnHook,
    MiningSource, OcclusionHook, OcclusionHookConfig,
};
use crate::{Hook, HookError};

/// The most probe images a hook that holds them at once may ask for.
pub const MAX_IMAGES: usize = 4096;

/// One `[[hooks]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HookSpec {
    /// Deconvnet projection and patch grids.
    Deconv(DeconvGridConfig),
    /// Structureless, never-firing and dominating filters.
    DeadFilters(DeadFiltersConfig),
    /// Folded-back power, stride grids and layer 1's frequency coverage.
    Aliasing(AliasingConfig),
    /// The divisors of the LRN layers: the regime they normalize in.
    Lrn(LrnConfig),
    /// The strongest projection per feature map across epochs.
    Evolution(EvolutionConfig),
    /// A user's program on a bundle of weights and activations.
    Exec(ExecConfig),
    /// Feature distances and class probability under translation, scale, rotation.
    Invariance(InvarianceHookConfig),
    /// A grey square slid over probe images.
    Occlusion(OcclusionHookConfig),
    /// Occluding the same part of several probe images.
    Correspondence(CorrespondenceHookConfig),
}

impl HookSpec {
    /// The hooks a run gets unless it says otherwise, as Zeiler & Fergus
    /// ran their analyses: the Deconvnet grids (top 9 of chosen maps of
    /// every conv layer) and the evolution montage at epochs 1, 2, 5, 10,
    /// 20, 30, 40, 64 and the last; dead filters, aliasing and the LRN
    /// layers' divisors every epoch.
    pub fn paper_set() -> Vec<HookSpec> {
        use crate::Schedule;
        vec![
            HookSpec::Deconv(DeconvGridConfig {
                schedule: Schedule::paper(),
                ..DeconvGridConfig::default()
            }),
            HookSpec::Evolution(EvolutionConfig {
                schedule: Schedule::paper(),
                ..EvolutionConfig::default()
            }),
            HookSpec::DeadFilters(DeadFiltersConfig {
                schedule: Schedule::EveryEpochs(1),
                ..DeadFiltersConfig::default()
            }),
            HookSpec::Aliasing(AliasingConfig {
                schedule: Schedule::EveryEpochs(1),
                ..AliasingConfig::default()
            }),
            HookSpec::Lrn(LrnConfig {
                schedule: Schedule::EveryEpochs(1),
                ..LrnConfig::default()
            }),
        ]
    }

    /// What program this table would run, as `name: ["prog", "arg"]`, for
    /// an exec plugin; `None` for the built-in analyses (zftrain's own
    /// code). Callers use it to keep programs named in data (a checkpoint,
    /// a run directory) from running without the user's say.
    pub fn program(&self) -> Option<String> {
        match self {
            HookSpec::Exec(c) => Some(match &c.command {
                CommandLine::List(argv) => format!("'{}' (command = {argv:?})", c.name),
                CommandLine::Text(text) => format!("'{}' (command = {text:?})", c.name),
            }),
            _ => None,
        }
    }

    /// Whether the hook mines the training images ([`HookContext`]'s
    /// `train_probe`), which a run then sets aside for it.
    ///
    /// [`HookContext`]: crate::HookContext
    pub fn mines_training_images(&self) -> bool {
        matches!(self, HookSpec::Evolution(c) if c.source == MiningSource::Train)
    }

    /// The hook this table describes.
    pub fn build(&self) -> Result<Box<dyn Hook>, HookError> {
        Ok(match self {
            HookSpec::Deconv(c) => {
                if c.k == 0 || c.per_image == 0 || c.max_batch == 0 {
                    return Err(HookError::Config {
                        hook: c.name.clone(),
                        message: "k, per_image and max_batch must be at least 1".into(),
                    });
                }
                Box::new(DeconvGridHook::new(c.clone()))
            }
            HookSpec::DeadFilters(c) => Box::new(DeadFiltersHook::new(c.clone())),
            HookSpec::Evolution(c) => Box::new(EvolutionHook::new(c.clone())),
            HookSpec::Exec(c) => Box::new(ExecHook::new(c.clone())?),
            HookSpec::Invariance(c) => Box::new(InvarianceHook::new(c.clone())),
            HookSpec::Occlusion(c) => Box::new(OcclusionHook::new(c.clone())),
            HookSpec::Correspondence(c) => {
                if c.images.len() < 2 || c.parts.is_empty() {
                    return Err(HookError::Config {
                        hook: c.name.clone(),
                        message: "needs two or more probe images (images = [..]) and at least one part (parts = { name = [[top, left, height, width], ...] })".into(),
                    });
                }
                let sized = c
                    .objects
                    .iter()
                    .all(|b| b.iter().all(|&v| v >= 0) && b[2] > 0 && b[3] > 0);
                if !(c.objects.is_empty() || c.objects.len() == c.images.len()) || !sized {
                    return Err(HookError::Config {
                        hook: c.name.clone(),
                        message: format!(
                            "objects gives {} boxes for {} images: one [top, left, height, width] per image (non-negative, height and width at least 1), or none",
                            c.objects.len(),
                            c.images.len()
                        ),
                    });
                }
                Box::new(CorrespondenceHook::new(c.clone()))
            }
            HookSpec::Aliasing(c) => {
                if !(8..=1024).contains(&c.fft_size)
                    || c.grid_layer == 1
                    || !(1..=MAX_IMAGES).contains(&c.images)
                {
                    return Err(HookError::Config {
                        hook: c.name.clone(),
                        message: format!(
                            "fft_size must be 8 to 1024, grid_layer 0 (off) or 2 or more, images 1 to {MAX_IMAGES} (got fft_size = {}, grid_layer = {}, images = {})",
                            c.fft_size, c.grid_layer, c.images
                        ),
                    });
                }
                Box::new(AliasingHook::new(c.clone()))
            }
            HookSpec::Lrn(c) => {
                if !(1..=MAX_IMAGES).contains(&c.images) {
                    return Err(HookError::Config {
                        hook: c.name.clone(),
                        message: format!("images must be 1 to {MAX_IMAGES}, got {}", c.images),
                    });
                }
                Box::new(LrnHook::new(c.clone()))
            }
        })
    }
}
