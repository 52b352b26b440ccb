//! Tunes glibc's allocator for libtorch's allocation pattern.
//!
//! A training step frees and re-allocates the same large buffers every time
//! (activations, gradients, the bf16 copies of the weights: up to 151 MB for
//! ZFNet's `classifier.1.weight` gradient). With glibc's defaults each of them
//! is a fresh `mmap`, page-faulted in and unmapped again, step after step; on
//! a 2-core machine that kernel time was a quarter of the step
//! (docs/benchmarks.md). Keeping them on the heap and never trimming it makes
//! freed blocks reusable: the ZFNet bf16 step went from about 27 to about 35
//! images/s. The price is that the process keeps its peak heap for its
//! lifetime, which is what a training process wants anyway.
//!
//! `ZFTRAIN_MALLOC=default` leaves glibc's settings alone.

/// Applies the tuning (glibc only; elsewhere nothing). Returns whether it did.
pub fn tune_for_training() -> bool {
    if std::env::var("ZFTRAIN_MALLOC").is_ok_and(|v| v == "default") {
        return false;
    }
    tune()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune() -> bool {
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // any other thread exists. Large requests that the heap cannot serve
    // still fall back to mmap inside glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune() -> bool {
    false
}
