//! Devices: CUDA is loaded at run time, so one binary serves CPU-only and GPU
//! machines. The binary links only libtorch's CPU libraries; when GPUs are
//! asked for, `libtorch_cuda.so` is opened (`RTLD_GLOBAL`, so its CUDA hooks
//! register with libtorch) from `ZFTRAIN_LIBTORCH_CUDA` if set, else from the
//! folder the running `libtorch_cpu.so` was loaded from (a full libtorch,
//! such as a PyTorch install or `scripts/setup --cuda`, has both there).
//!
//! Order matters: libtorch answers "is there CUDA?" once per process, so the
//! library is loaded before the first question ([`load_cuda`]), and `main`
//! loads it before any command touches libtorch when the flags ask for GPUs.
//! Each device is then probed with a tensor, so a device that is listed but
//! unusable is named before training starts.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{fail, ParallelError, Result};
use tch::{Device, Kind, Tensor};

/// The most devices (GPUs or CPU replicas) a run may ask for: more than
/// any machine has, few enough to list.
pub const MAX_DEVICES: usize = 1024;

/// The environment variable naming `libtorch_cuda.so` explicitly.
pub const CUDA_LIB_ENV: &str = "ZFTRAIN_LIBTORCH_CUDA";

/// The path of a library named `name` mapped into this process, if any.
fn mapped_library(name: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.strip_suffix(name).is_some_and(|dir| dir.ends_with('/')))
        .map(PathBuf::from)
}

/// The folder of the `libtorch_cpu.so` this process runs on.
pub fn libtorch_dir() -> Option<PathBuf> {
    mapped_library("libtorch_cpu.so").and_then(|p| p.parent().map(PathBuf::from))
}

/// Where `libtorch_cuda.so` is looked for, in order.
pub fn cuda_library_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os(CUDA_LIB_ENV) {
        v.push(PathBuf::from(p));
    }
    if let Some(dir) = libtorch_dir() {
        v.push(dir.join("libtorch_cuda.so"));
    }
    v
}

/// The CUDA library once this process has it (its path), or why not; the
/// first call decides for the life of the process.
static CUDA_LIBRARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Makes sure `libtorch_cuda.so` is in the process, loading it if needed;
/// returns where it came from. Never asks libtorch about CUDA first: libtorch
/// answers through the CUDA hooks that this library registers, and keeps its
/// first answer for the life of the process, so one question asked before
/// the load ("no CUDA") would stand after it. Call this before anything else
/// touches libtorch when GPUs are wanted (`main` does, from the flags).
pub fn load_cuda() -> Result<PathBuf> {
    CUDA_LIBRARY
        .get_or_init(|| open_cuda_library().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(ParallelError::Device)
}

/// The message of the last `dlerror`.
pub(crate) fn dl_error() -> String {
    // SAFETY: dlerror returns a NUL-terminated message or null.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".to_string()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

/// Whether `path` is already loaded (linked, preloaded or opened before),
/// without loading it; its symbols are made global if they were not.
fn already_loaded(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: RTLD_NOLOAD only looks the library up; a handle found is
    // kept for the life of the process.
    !unsafe {
        libc::dlopen(
            c_path.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD,
        )
    }
    .is_null()
}

fn open_cuda_library() -> Result<PathBuf> {
    let candidates = cuda_library_candidates();
    if let Some(p) = candidates.iter().find(|p| already_loaded(p)) {
        return Ok(p.clone());
    }
    if let Some(p) = mapped_library("libtorch_cuda.so") {
        return Ok(p);
    }
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        fail!(Device,
            "GPUs were asked for, but this libtorch has no CUDA library: looked for {} (none exists). Point {CUDA_LIB_ENV} at the libtorch_cuda.so of a CUDA libtorch (a PyTorch install: python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))'/lib), or run scripts/setup --cuda; or train on the CPU with --gpus 0",
            if candidates.is_empty() {
                "nothing (no libtorch_cpu.so in this process)".to_string()
            } else {
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            }
        );
    };
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
        ParallelError::Device(format!("{}: a path with a NUL byte", path.display()))
    })?;
    // SAFETY: dlopen with a NUL-terminated path; the handle is kept for the
    // life of the process (libtorch's CUDA hooks must stay registered).
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        fail!(Device, "loading {}: {}", path.display(), dl_error());
    }
    Ok(path.clone())
}

/// Loads the CUDA library if the command line asks for GPUs, before
/// anything touches libtorch (see [`load_cuda`]). A failure is kept and
/// reported by the command when it picks its devices.
pub fn preload_cuda(wanted: bool) {
    if wanted {
        let _ = load_cuda();
    }
}

/// Checks that libtorch can use CUDA device `id`: a tensor made on it.
fn probe(id: usize, library: &Path) -> Result<()> {
    if let Err(e) = Tensor::f_zeros([1], (Kind::Float, Device::Cuda(id))) {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("").trim();
        fail!(Device,
            "CUDA device {id} is visible but libtorch cannot make a tensor on it ({} loaded from {}): {first}",
            if first.contains("'CUDA' backend") {
                "its CUDA kernels are missing: is this the libtorch_cuda.so of the same libtorch 2.11?"
            } else {
                "the driver or the device refused"
            },
            library.display()
        );
    }
    Ok(())
}

/// The CUDA device indices among `devices`, in order.
pub fn cuda_indices(devices: &[Device]) -> Vec<usize> {
    devices
        .iter()
        .filter_map(|d| match d {
            Device::Cuda(i) => Some(*i),
            _ => None,
        })
        .collect()
}

/// A `--gpus` value: a count (`4`: devices 0 to 3; `0`: none) or device
/// indices (`0,2`).
pub fn parse_gpus(flag: &str) -> Result<Vec<usize>> {
    let flag = flag.trim().trim_matches(|c| c == '[' || c == ']');
    let bad = || {
        ParallelError::Config(format!(
            "--gpus '{flag}': a count (4) or device indices (0,2)"
        ))
    };
    if flag.contains(',') {
        let ids: Vec<usize> = flag
            .split(',')
            .map(|s| s.trim().parse().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != ids.len() {
            fail!(Device, "--gpus '{flag}' names a device twice");
        }
        return Ok(ids);
    }
    let n: usize = flag.parse().map_err(|_| bad())?;
    if n > MAX_DEVICES {
        fail!(Device, "--gpus {n}: at most {} devices", MAX_DEVICES);
    }
    Ok((0..n).collect())
}

/// The devices for GPUs `ids` (none: `cpu_replicas` times the CPU), after
/// checking that they are visible.
pub fn training_devices(ids: &[usize], cpu_replicas: usize) -> Result<Vec<Device>> {
    if ids.is_empty() {
        return Ok(vec![Device::Cpu; cpu_replicas.max(1)]);
    }
    let library = load_cuda()?;
    if !tch::Cuda::is_available() {
        fail!(Device,
            "loaded {} but CUDA reports no usable device (is the NVIDIA driver installed, nvidia-smi working, CUDA_VISIBLE_DEVICES set right?)",
            library.display()
        );
    }
    let visible = tch::Cuda::device_count() as usize;
    if let Some(id) = ids.iter().find(|&&id| id >= visible) {
        return Err(crate::KeyError::new(
            "train.gpus",
            format!(
                "asks for CUDA device {id} but {visible} device(s) are visible (numbered from 0; CUDA_VISIBLE_DEVICES={})",
                std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_else(|_| "unset".into())
            ),
        )
        .into());
    }
    for &id in ids {
        probe(id, &library)?;
    }
    Ok(ids.iter().map(|&id| Device::Cuda(id)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_libtorch_is_found_in_this_process() {
        // The test binary links libtorch_cpu.so; its folder is a candidate.
        let c = cuda_library_candidates();
        assert!(c.iter().any(|p| p.ends_with("libtorch_cuda.so")), "{c:?}");
        assert_eq!(training_devices(&[], 3).unwrap(), vec![Device::Cpu; 3]);
    }

    #[test]
    fn gpu_flags_are_counts_or_lists() {
        assert_eq!(parse_gpus("2").unwrap(), vec![0, 1]);
        assert_eq!(parse_gpus("0").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_gpus("3,1").unwrap(), vec![3, 1]);
        assert!(parse_gpus("1,1").unwrap_err().to_string().contains("twice"));
        assert!(parse_gpus("two").unwrap_err().to_string().contains("'two'"));
    }
}
