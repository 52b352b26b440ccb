//! This process's peak resident memory, as Linux counts it (`VmHWM` in
//! `/proc/self/status`): what a run or a benchmark pass needed at most.

/// Peak resident memory of this process so far, in MiB (`None` where
/// `/proc` does not say).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak to the current resident memory, so that the next
/// [`peak_rss_mib`] is the peak since now (a no-op where the kernel does
/// not allow it).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
