//! The built-in hooks.

pub mod aliasing;
pub mod dead_filters;
pub mod deconv_grid;
pub mod evolution;
pub mod exec;
pub mod files;

pub use aliasing::{AliasingConfig, AliasingHook};
pub use dead_filters::{DeadFiltersConfig, DeadFiltersHook};
pub use deconv_grid::{DeconvGridConfig, DeconvGridHook, Maps};
pub use evolution::{EvolutionConfig, EvolutionHook};
pub use exec::{CommandLine, ExecConfig, ExecHook};
