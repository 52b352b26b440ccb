//! Hooks built from the config's `[[hooks]]` tables: `kind` picks the hook,
//! the other keys are its settings (unknown keys are refused by name). Each
//! kind checks and builds itself in its own file ([`HookKind`]);
//! `builtin/mod.rs` lists the kinds once, with `hook_kinds!`.
//!
//! [`HookKind`]: crate::HookKind

pub use crate::builtin::HookSpec;
use crate::builtin::{
    AliasingConfig, DeadFiltersConfig, DeconvGridConfig, EvolutionConfig, LrnConfig,
};
use crate::{Hook, HookError};

/// The most probe images a hook that holds them at once may ask for.
pub const MAX_IMAGES: usize = 4096;

/// Declares the built-in kinds, once (in `builtin/mod.rs`): each line names
/// the hook's file (module), its `kind` name (the variant, in snake_case)
/// and the type of its table, which implements [`HookKind`] in that file.
/// It declares the modules, and makes [`HookSpec`] of the list.
macro_rules! hook_kinds {
    ($($(#[doc = $doc:literal])* $module:ident::$variant:ident($config:ident),)*) => {
        $(pub mod $module;)*
        /// One `[[hooks]]` table.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum HookSpec {
            $($(#[doc = $doc])* $variant($module::$config),)*
        }

        impl HookSpec {
            /// The kind this table is, as its file declares it.
            pub(crate) fn kind(&self) -> &dyn $crate::HookKind {
                match self {
                    $(HookSpec::$variant(c) => c,)*
                }
            }

            /// The tags every built-in hook writes, kind after kind in this
            /// list's order (the trainer adds its own around them).
            pub fn tags() -> Vec<$crate::TagDoc> {
                let mut tags = Vec::new();
                $(tags.extend_from_slice(<$module::$config as $crate::HookKind>::tags());)*
                tags
            }
        }
    };
}
pub(crate) use hook_kinds;

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
        self.kind().program()
    }

    /// Whether the hook mines the training images ([`HookContext`]'s
    /// `train_probe`), which a run then sets aside for it.
    ///
    /// [`HookContext`]: crate::HookContext
    pub fn mines_training_images(&self) -> bool {
        self.kind().mines_training_images()
    }

    /// The hook this table describes, its settings checked.
    pub fn build(&self) -> Result<Box<dyn Hook>, HookError> {
        self.kind().build()
    }
}
