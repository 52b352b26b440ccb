//! Persistent replica threads: worker `i` drives replica `i` for the whole
//! run, so each keeps its allocator arena, its OpenMP pool and its CUDA
//! context warm (a fresh thread per step cost the CPU replica 31 -> 25
//! images/s in the measurement that motivated this).
//!
//! [`Workers::run`] lends borrowed work to the threads and returns only when
//! every thread has answered, the way `std::thread::scope` does.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// One thread per replica.
pub struct Workers {
    senders: Vec<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workers({})", self.senders.len())
    }
}

impl Workers {
    /// `n` threads named `replica-<i>`.
    pub fn new(n: usize) -> std::io::Result<Workers> {
        let mut senders = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = channel::<Job>();
            let handle = std::thread::Builder::new()
                .name(format!("replica-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
            senders.push(tx);
            handles.push(handle);
        }
        Ok(Workers { senders, handles })
    }

    /// The number of threads.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Runs `f(item)` for item `i` on thread `i` (all at once) and returns
    /// the results in order; `Err` for a job that panicked. At most
    /// [`Workers::len`] items.
    pub fn run<T: Send, R: Send>(
        &self,
        items: Vec<T>,
        f: &(dyn Fn(T) -> R + Sync),
    ) -> Vec<Result<R, String>> {
        assert!(items.len() <= self.senders.len(), "more items than workers");
        let mut replies = Vec::with_capacity(items.len());
        for (item, sender) in items.into_iter().zip(&self.senders) {
            let (tx, rx) = channel::<Result<R, String>>();
            let job = move || {
                let out = catch_unwind(AssertUnwindSafe(|| f(item))).map_err(|e| {
                    e.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| e.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_string())
                });
                let _ = tx.send(out);
            };
            let job: Box<dyn FnOnce() + Send + '_> = Box::new(job);
            // SAFETY: the job borrows `f` and owns `item`; it is either run
            // and answered before this function returns (every reply is
            // received below, and a reply is sent only after the job is
            // done with its borrows), or dropped unrun (a failed send gives
            // it back and drops it here; a thread that exits drops queued
            // jobs, which closes their reply channel). So no borrow outlives
            // this call.
            let job: Job = unsafe { std::mem::transmute(job) };
            if let Err(returned) = sender.send(job) {
                drop(returned);
            }
            replies.push(rx);
        }
        replies
            .into_iter()
            .map(|rx| {
                rx.recv()
                    .unwrap_or_else(|_| Err("the replica thread is gone".into()))
            })
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.senders.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_run_on_their_own_persistent_threads_and_panics_are_reported() {
        let w = Workers::new(3).unwrap();
        let offset = 10; // borrowed by the jobs
        let name = |i: usize| (i + offset, std::thread::current().name().map(String::from));
        let first: Vec<_> = w
            .run(vec![0, 1, 2], &name)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(first[0], (10, Some("replica-0".into())));
        assert_eq!(first[2], (12, Some("replica-2".into())));
        let ids = |_: ()| std::thread::current().id();
        let a = w.run(vec![(), ()], &ids);
        let b = w.run(vec![(), ()], &ids);
        assert_eq!(
            a[1].as_ref().unwrap(),
            b[1].as_ref().unwrap(),
            "the same thread each time"
        );
        let boom = |i: usize| {
            if i == 1 {
                panic!("replica {i} failed");
            }
            i
        };
        let out = w.run(vec![0, 1], &boom);
        assert_eq!(out[0], Ok(0));
        assert_eq!(out[1], Err("replica 1 failed".to_string()));
        // The pool survives a panicking job.
        assert_eq!(w.run(vec![5], &|i: usize| i * 2), vec![Ok(10)]);
    }
}
