//! `zftrain --version`: what this binary runs on, for bug reports and for
//! "why is it slow here": zftrain's and tch's versions, the libtorch in the
//! process, CUDA, cuDNN and NCCL found or not (and why not), the CPU's
//! arithmetic features and what `train.precision = "auto"` picks from
//! them, and the cache the set-up script fills.

use std::path::PathBuf;

/// The tch release the workspace pins (a test holds Cargo.toml to it).
pub const TCH_VERSION: &str = "0.24.0";

/// The CPU flags that decide zftrain's speed, present or not.
const CPU_FLAGS: [&str; 5] = ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"];

/// The report, one fact per line.
pub fn report() -> String {
    let mut lines = vec![format!("zftrain {}", env!("CARGO_PKG_VERSION"))];
    let libtorch = crate::devices::libtorch_dir();
    let build = libtorch
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("../build-version")).ok())
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "version unknown".into());
    lines.push(format!(
        "tch {TCH_VERSION} on libtorch {build} ({})",
        libtorch
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "not found in the process".into())
    ));
    // CUDA before libtorch is asked anything about it (see load_cuda).
    match crate::devices::load_cuda() {
        Ok(path) => {
            let n = tch::Cuda::device_count();
            lines.push(format!("CUDA: {} ({n} devices)", path.display()));
            lines.push(format!(
                "cuDNN: {}",
                match tch::Cuda::cudnn_is_available() {
                    true => "available",
                    false => "not available",
                }
            ));
        }
        Err(_) => {
            lines.push(format!(
                "CUDA: not found (looked for {}; set {} or run scripts/setup --cuda)",
                shown(&crate::devices::cuda_library_candidates()),
                crate::devices::CUDA_LIB_ENV
            ));
            lines.push("cuDNN: not available (no CUDA)".into());
        }
    }
    lines.push(match zftrain_parallel::nccl::Nccl::open() {
        Ok(nccl) => format!("NCCL: {nccl:?}"),
        Err(_) => format!(
            "NCCL: not found (looked for {}; set {})",
            shown(&zftrain_parallel::nccl::nccl_candidates()),
            zftrain_parallel::nccl::NCCL_LIB_ENV
        ),
    });
    let flags = cpu_flags();
    let has: Vec<String> = CPU_FLAGS
        .iter()
        .map(|f| {
            format!(
                "{f} {}",
                if flags.iter().any(|x| x == f) {
                    "yes"
                } else {
                    "no"
                }
            )
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    lines.push(format!("CPU: {cores} cores; {}", has.join(", ")));
    lines.push(format!(
        "precision auto on the CPU: {}",
        match zftrain_parallel::precision::cpu_bf16() {
            Ok(c) => c.describe(),
            Err(e) => format!("refused: {e}"),
        }
    ));
    lines.push(format!("cache: {}", cache_dir().display()));
    lines.join("\n")
}

/// Paths, comma separated.
fn shown(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

/// The flags of the first CPU in /proc/cpuinfo.
fn cpu_flags() -> Vec<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("flags"))
                .map(|l| l.split_whitespace().skip(2).map(String::from).collect())
        })
        .unwrap_or_default()
}

/// Where scripts/setup caches libtorch, wheels and the Python environment.
fn cache_dir() -> PathBuf {
    match std::env::var_os("ZFTRAIN_CACHE") {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/zftrain"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_reported_tch_version_is_the_one_the_workspace_pins() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let text = std::fs::read_to_string(manifest).unwrap();
        assert!(
            text.contains(&format!("tch = \"={}\"", super::TCH_VERSION)),
            "Cargo.toml pins another tch than {}",
            super::TCH_VERSION
        );
    }
}
