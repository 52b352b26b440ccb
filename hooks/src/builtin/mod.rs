//! The built-in hooks: the list of kinds (one line each, making
//! [`HookSpec`]) and what they share.

/// The `Hook` impl every built-in analysis shares: name, schedule and
/// `required` come from its `config`, and each scheduled event (epoch end,
/// step end, train end) calls its `run`, with the probe needs of its
/// [`Needs`] impl. Extra trait items (state) follow the type.
macro_rules! scheduled_hook {
    ($ty:ty $(, $extra:item)* $(,)?) => {
        impl $crate::Hook for $ty {
            fn name(&self) -> &str {
                &self.config.name
            }

            fn schedule(&self) -> &$crate::Schedule {
                &self.config.schedule
            }

            fn required(&self) -> bool {
                self.config.required
            }

            fn probe_needs(
                &self,
                event: $crate::Event,
                ctx: &$crate::HookContext<'_>,
            ) -> Result<Vec<$crate::ProbeNeed>, $crate::HookError> {
                match event {
                    $crate::Event::EpochEnd | $crate::Event::StepEnd | $crate::Event::TrainEnd => {
                        $crate::builtin::Needs::needs(self, ctx)
                    }
                    _ => Ok(Vec::new()),
                }
            }

            fn on_epoch_end(
                &mut self,
                ctx: &$crate::HookContext<'_>,
            ) -> Result<$crate::Control, $crate::HookError> {
                self.run(ctx)
            }

            fn on_step_end(
                &mut self,
                ctx: &$crate::HookContext<'_>,
            ) -> Result<$crate::Control, $crate::HookError> {
                self.run(ctx)
            }

            fn on_train_end(
                &mut self,
                ctx: &$crate::HookContext<'_>,
            ) -> Result<$crate::Control, $crate::HookError> {
                self.run(ctx)
            }

            $($extra)*
        }
    };
}

/// What a built-in hook's `run` reads off the probe set's conv outputs
/// (for the pass the hooks due at an event share); default: nothing.
pub(crate) trait Needs {
    fn needs(
        &self,
        _ctx: &crate::HookContext<'_>,
    ) -> Result<Vec<crate::ProbeNeed>, crate::HookError> {
        Ok(Vec::new())
    }
}

mod analysis;
pub mod files;
pub mod reaper;

// The built-in kinds, each in its own file: a new one is its file and one
// line here (the file, the `[[hooks]]` kind name, the type of its table).
crate::spec::hook_kinds! {
    /// Deconvnet projection and patch grids.
    deconv_grid::Deconv(DeconvGridConfig),
    /// The strongest projection per feature map across epochs.
    evolution::Evolution(EvolutionConfig),
    /// Structureless, never-firing and dominating filters.
    dead_filters::DeadFilters(DeadFiltersConfig),
    /// Folded-back power, stride grids and layer 1's frequency coverage.
    aliasing::Aliasing(AliasingConfig),
    /// The divisors of the LRN layers: the regime they normalize in.
    lrn::Lrn(LrnConfig),
    /// Feature distances and class probability under translation, scale, rotation.
    invariance::Invariance(InvarianceHookConfig),
    /// A grey square slid over probe images.
    occlusion::Occlusion(OcclusionHookConfig),
    /// Occluding the same part of several probe images.
    correspondence::Correspondence(CorrespondenceHookConfig),
    /// A user's program on a bundle of weights and activations.
    exec::Exec(ExecConfig),
}

pub use aliasing::{AliasingConfig, AliasingHook, AliasingReport, GridReading, LayerAliasing};
pub use correspondence::{CorrespondenceHook, CorrespondenceHookConfig};
pub use dead_filters::{DeadFiltersConfig, DeadFiltersHook};
pub use deconv_grid::{DeconvGridConfig, DeconvGridHook, Maps};
pub use evolution::{EvolutionConfig, EvolutionHook, MiningSource};
pub use exec::{CommandLine, ExecConfig, ExecHook};
pub use invariance::{InvarianceHook, InvarianceHookConfig};
pub use lrn::{LrnConfig, LrnDivisor, LrnHook};
pub use occlusion::{OcclusionHook, OcclusionHookConfig};
