//! A probe pass spread over the run's devices: one thread per device takes
//! the next batch as soon as it is free (so a slower device takes fewer),
//! works on it with that device's replica of the network, and keeps its own
//! state; the states come back in device order once the pass is over. At
//! most two batches per device wait, so memory does not grow with the probe
//! set. A device that fails (an error, or a panic) ends the pass with an
//! error that names it.
//!
//! A single device works on the calling thread. Not only to save a thread:
//! glibc serves every other thread from an arena whose heaps cannot hold a
//! block over 64 MiB, so each large CPU tensor made there (a batch's conv1
//! output is 590 MB at 128 images) is a fresh `mmap`, page-faulted in and
//! unmapped again, whatever `crate::allocator`-style tuning the process
//! applied to the main heap. On the CPU that made a probe pass run at 33
//! images/s where the same forward on the calling thread ran at 45
//! (docs/benchmarks.md, "Top-9 mining against plain evaluation").

use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::bounded;
use tch::Device;
use zftrain_model::Network;

use crate::{HookError, ProbeBatch, ProbeBatches};

/// A replica's network, lent to the thread of its device.
struct Lent<'a>(&'a Network);

// SAFETY: `Network` holds libtorch tensors, which libtorch lets any thread
// use; only the networks' `!Sync` wrappers stand in the way. Each replica
// is lent to exactly one thread (its device's), and nothing else uses it
// while the pass runs (`on_devices` holds the borrow until every thread has
// been joined).
unsafe impl Send for Lent<'_> {}

/// What a device does with each batch it takes: `(state, network, device,
/// batch)`.
pub type Work<'w, S> =
    dyn Fn(&mut S, &Network, Device, ProbeBatch) -> Result<(), HookError> + Sync + 'w;

/// Spreads `batches` over `replicas` (network, device): each device's
/// thread makes its state with `init` and feeds it every batch it takes
/// through `work`. The states, in replica order.
pub fn on_devices<S: Send>(
    replicas: &[(&Network, Device)],
    batches: ProbeBatches<'_>,
    init: &(dyn Fn(&Network, Device) -> Result<S, HookError> + Sync),
    work: &Work<'_, S>,
) -> Result<Vec<S>, HookError> {
    if replicas.is_empty() {
        return Err(HookError::Probe("no device to run on".into()));
    }
    if let [(net, device)] = *replicas {
        return on_this_thread(net, device, batches, init, work);
    }
    let failed = AtomicBool::new(false);
    let (tx, rx) = bounded::<ProbeBatch>(2 * replicas.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = replicas
            .iter()
            .map(|&(net, device)| {
                let (rx, lent, failed) = (rx.clone(), Lent(net), &failed);
                scope.spawn(move || {
                    let lent = lent;
                    let net = lent.0;
                    let run = || -> Result<S, HookError> {
                        let mut state = init(net, device)?;
                        for batch in rx.iter() {
                            if failed.load(Ordering::Relaxed) {
                                break;
                            }
                            work(&mut state, net, device, batch)?;
                        }
                        Ok(state)
                    };
                    let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                        Ok(out) => out.map_err(|e| e.to_string()),
                        Err(payload) => Err(panic_text(&payload)),
                    };
                    if out.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    out.map_err(|message| HookError::Device {
                        device: device_name(device),
                        message,
                    })
                })
            })
            .collect();
        drop(rx);
        let fed = feed(batches, tx, &failed);
        let states: Vec<Result<S, HookError>> = handles
            .into_iter()
            .zip(replicas)
            .map(|(h, &(_, device))| {
                h.join().unwrap_or_else(|payload| {
                    Err(HookError::Device {
                        device: device_name(device),
                        message: panic_text(&payload),
                    })
                })
            })
            .collect();
        fed?;
        states.into_iter().collect()
    })
}

/// Sends the probe batches to the device threads until they are all sent,
/// a device failed or the probe set did (its error, and `failed` set so
/// that the devices stop). The channel closes when this returns.
fn feed(
    batches: ProbeBatches<'_>,
    tx: crossbeam_channel::Sender<ProbeBatch>,
    failed: &AtomicBool,
) -> Result<(), HookError> {
    for batch in batches {
        if failed.load(Ordering::Relaxed) {
            break;
        }
        match batch {
            Ok(b) => {
                if tx.send(b).is_err() {
                    break; // every device stopped: their errors say why
                }
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The pass of a single device, on the calling thread; its failures are
/// named as a device thread's are, the probe set's are returned as they are.
fn on_this_thread<S>(
    net: &Network,
    device: Device,
    batches: ProbeBatches<'_>,
    init: &(dyn Fn(&Network, Device) -> Result<S, HookError> + Sync),
    work: &Work<'_, S>,
) -> Result<Vec<S>, HookError> {
    let named = |message: String| HookError::Device {
        device: device_name(device),
        message,
    };
    let mut fed = Ok(());
    let run = || -> Result<S, HookError> {
        let mut state = init(net, device)?;
        for batch in batches {
            match batch {
                Ok(b) => work(&mut state, net, device, b)?,
                Err(e) => {
                    fed = Err(e);
                    break;
                }
            }
        }
        Ok(state)
    };
    let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(out) => out.map_err(|e| named(e.to_string())),
        Err(payload) => Err(named(panic_text(&payload))),
    };
    fed?;
    out.map(|state| vec![state])
}

/// `cpu` or `cuda:N`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `panicked: <the panic's message>`.
fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    format!(
        "panicked: {}",
        crate::error::panic_message(payload.as_ref())
    )
}
