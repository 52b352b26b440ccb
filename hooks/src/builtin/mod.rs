//! The built-in hooks.

/// The `Hook` impl every built-in analysis shares: name, schedule and
/// `required` come from its `config`, and each scheduled event (epoch end,
/// step end, train end) calls its `run`. Extra trait items (state) follow
/// the type.
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

pub mod aliasing;
mod analysis;
pub mod correspondence;
pub mod dead_filters;
pub mod deconv_grid;
pub mod evolution;
pub mod exec;
pub mod files;
pub mod invariance;
pub mod occlusion;

pub use aliasing::{AliasingConfig, AliasingHook};
pub use correspondence::{CorrespondenceHook, CorrespondenceHookConfig};
pub use dead_filters::{DeadFiltersConfig, DeadFiltersHook};
pub use deconv_grid::{DeconvGridConfig, DeconvGridHook, Maps};
pub use evolution::{EvolutionConfig, EvolutionHook};
pub use exec::{CommandLine, ExecConfig, ExecHook};
pub use invariance::{InvarianceHook, InvarianceHookConfig};
pub use occlusion::{OcclusionHook, OcclusionHookConfig};
