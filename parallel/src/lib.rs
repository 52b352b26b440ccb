//! Data parallelism: one replica of the network per device, each driven by
//! its own thread. A global batch is split into one shard per replica; each
//! replica runs forward and backward on its shard; the gradients are
//! all-reduced (weighted by shard size, so the result is the gradient of the
//! global batch's mean loss); then every replica takes the same optimizer
//! step, so the parameters stay identical (checked by
//! [`DataParallel::check_in_sync`]).
//!
//! CPU replicas (`Device::Cpu` several times) run through exactly this code
//! path, which is how the engine is tested on machines without GPUs.
//!
//! Dropout masks come from a counter-based stream seeded per step
//! ([`zftrain_model::dropout`]): a replica draws for its rows of the global
//! batch exactly what one device would, so N replicas train the same model as
//! one even with dropout on (up to floating-point reduction order).
//!
//! The crate holds everything below the training session that is about
//! devices and parameters: which devices there are ([`devices`]), the
//! replicas ([`replica`]) and their threads ([`workers`]), the gradient
//! reducers ([`reduce`], [`nccl`]), the rendezvous and links between
//! nodes ([`rendezvous`], with [`auth`]'s token challenge), the compute kind ([`precision`]), SGD
//! ([`optimizer`]), ZF's filter renormalization ([`renorm`]) and fp16 loss
//! scaling ([`scaler`]); its errors are [`ParallelError`]s. It depends on
//! `zftrain-model` and `zftrain-data` (the rule that cuts a batch over
//! replicas) and on nothing above them.

pub mod auth;
pub mod devices;
pub mod error;
pub mod nccl;
pub mod optimizer;
pub mod precision;
pub mod reduce;
pub mod rendezvous;
pub mod renorm;
pub mod replica;
pub mod scaler;
pub(crate) mod wire;
pub mod workers;

pub use error::{KeyError, ParallelError, Result};
pub use nccl::{Nccl, NcclReducer, NcclWatch};
pub use optimizer::{OptimConfig, Sgd};
pub use precision::Precision;
pub use reduce::{CopyReducer, GradReducer, LinkReducer, ReducerChoice};
pub use replica::{DataParallel, StepOptions, StepOutput};
pub use scaler::LossScaler;

use tch::Device;

/// The gradient reducer for `devices` as `choice` asks: NCCL needs two or
/// more GPUs; `auto` falls back to device copies (with a warning) when NCCL
/// does not load.
/// `watch` bounds how long an NCCL collective may take.
pub fn reducer_for(
    devices: &[Device],
    choice: ReducerChoice,
    watch: NcclWatch,
) -> Result<Box<dyn GradReducer>> {
    let gpus = crate::devices::cuda_indices(devices);
    let nccl_possible = gpus.len() >= 2 && gpus.len() == devices.len();
    match choice {
        ReducerChoice::Copy => Ok(Box::new(CopyReducer)),
        ReducerChoice::Nccl if !nccl_possible => Err(KeyError::new(
            "train.reducer",
            format!(
                "\"nccl\" needs two or more GPUs (devices: {devices:?}); use \"auto\" or \"copy\""
            ),
        )
        .into()),
        ReducerChoice::Nccl => Ok(Box::new(NcclReducer::local(Nccl::open()?, &gpus, watch)?)),
        ReducerChoice::Auto if !nccl_possible => Ok(Box::new(CopyReducer)),
        ReducerChoice::Auto => match Nccl::open().and_then(|n| NcclReducer::local(n, &gpus, watch))
        {
            Ok(r) => Ok(Box::new(r)),
            Err(e) => {
                tracing::warn!("{e:#}; reducing gradients by device copies instead");
                eprintln!("zftrain: {e:#}; reducing gradients by device copies instead");
                Ok(Box::new(CopyReducer))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nccl_is_refused_without_two_gpus_and_auto_takes_copies() {
        let cpus = [Device::Cpu, Device::Cpu];
        assert_eq!(
            reducer_for(&cpus, ReducerChoice::Auto, NcclWatch::default())
                .unwrap()
                .name(),
            "device-copy"
        );
        assert_eq!(
            reducer_for(&cpus, ReducerChoice::Copy, NcclWatch::default())
                .unwrap()
                .name(),
            "device-copy"
        );
        let err = reducer_for(&cpus, ReducerChoice::Nccl, NcclWatch::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("train.reducer") && err.contains("two or more GPUs"),
            "{err}"
        );
    }
}
