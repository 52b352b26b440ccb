//! NCCL, opened at run time (`dlopen`), and the gradient reducer on it.
//!
//! The binary links no CUDA library, so NCCL is found the way
//! `libtorch_cuda.so` is ([`crate::devices`]): `ZFTRAIN_NCCL` if set; else
//! `libnccl.so.2` by the dynamic linker's search (a CUDA libtorch from the
//! PyPI wheel has already loaded it, and the system's is found there too);
//! else the `nvidia-nccl-cu13` wheel's copy beside the running libtorch
//! (`site-packages/nvidia/nccl/lib`). Only the few entry points used are
//! bound: unique id, communicator set-up, group calls, all-reduce, broadcast.
//!
//! Collectives are queued on each device's legacy default stream (stream 0),
//! which is the stream libtorch's own kernels use unless a program changes
//! it, so they are ordered after the backward pass that made the gradients
//! and before the optimizer step that reads them.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::reduce::GradReducer;

/// The environment variable naming `libnccl.so.2` explicitly.
pub const NCCL_LIB_ENV: &str = "ZFTRAIN_NCCL";

/// NCCL's 128-byte communicator id, made by one process and shared with the
/// others (over the rendezvous, across nodes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UniqueId {
    /// The opaque bytes.
    pub internal: [u8; 128],
}

impl std::fmt::Debug for UniqueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UniqueId(..)")
    }
}

type Comm = *mut c_void;
type NcclResult = c_int;

const NCCL_SUM: c_int = 0;

/// NCCL's element types for the kinds gradients can have.
fn nccl_type(kind: Kind) -> Result<c_int> {
    Ok(match kind {
        Kind::Half => 6,
        Kind::Float => 7,
        Kind::Double => 8,
        Kind::BFloat16 => 9,
        other => bail!("NCCL cannot reduce {other:?} tensors"),
    })
}

/// The bound entry points.
struct Api {
    get_version: unsafe extern "C" fn(*mut c_int) -> NcclResult,
    get_unique_id: unsafe extern "C" fn(*mut UniqueId) -> NcclResult,
    comm_init_rank: unsafe extern "C" fn(*mut Comm, c_int, UniqueId, c_int) -> NcclResult,
    comm_init_all: unsafe extern "C" fn(*mut Comm, c_int, *const c_int) -> NcclResult,
    comm_destroy: unsafe extern "C" fn(Comm) -> NcclResult,
    all_reduce: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        c_int,
        c_int,
        Comm,
        *mut c_void,
    ) -> NcclResult,
    broadcast: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        c_int,
        c_int,
        Comm,
        *mut c_void,
    ) -> NcclResult,
    group_start: unsafe extern "C" fn() -> NcclResult,
    group_end: unsafe extern "C" fn() -> NcclResult,
    get_error_string: unsafe extern "C" fn(NcclResult) -> *const c_char,
    set_device: Option<unsafe extern "C" fn(c_int) -> c_int>,
}

/// Where NCCL is looked for, in order.
pub fn nccl_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os(NCCL_LIB_ENV) {
        v.push(PathBuf::from(p));
    }
    v.push(PathBuf::from("libnccl.so.2"));
    if let Some(dir) = crate::devices::libtorch_dir() {
        v.push(dir.join("../../nvidia/nccl/lib/libnccl.so.2"));
    }
    v
}

fn dl_error() -> String {
    // SAFETY: dlerror returns a NUL-terminated message or null.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

/// `dlsym` of `name` in `handle`, as a function pointer of type `F`.
///
/// # Safety
/// `F` must be the symbol's true function pointer type.
unsafe fn symbol<F: Copy>(handle: *mut c_void, name: &str) -> Result<F> {
    let c = CString::new(name)?;
    let p = libc::dlsym(handle, c.as_ptr());
    if p.is_null() {
        bail!("NCCL has no symbol {name}: {}", dl_error());
    }
    Ok(std::mem::transmute_copy::<*mut c_void, F>(&p))
}

impl Api {
    fn open() -> Result<(Api, String)> {
        let mut tried = Vec::new();
        for path in nccl_candidates() {
            let c = CString::new(path.as_os_str().as_encoded_bytes())?;
            // SAFETY: a NUL-terminated path; the handle lives for the process.
            let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if handle.is_null() {
                tried.push(format!("{} ({})", path.display(), dl_error()));
                continue;
            }
            // SAFETY: the types are NCCL's (nccl.h, 2.x) and CUDA's
            // cudaSetDevice(int), looked up in the process.
            let api = unsafe {
                let set_device = {
                    let c = CString::new("cudaSetDevice")?;
                    let p = libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr());
                    (!p.is_null()).then(|| {
                        std::mem::transmute_copy::<*mut c_void, unsafe extern "C" fn(c_int) -> c_int>(&p)
                    })
                };
                Api {
                    get_version: symbol(handle, "ncclGetVersion")?,
                    get_unique_id: symbol(handle, "ncclGetUniqueId")?,
                    comm_init_rank: symbol(handle, "ncclCommInitRank")?,
                    comm_init_all: symbol(handle, "ncclCommInitAll")?,
                    comm_destroy: symbol(handle, "ncclCommDestroy")?,
                    all_reduce: symbol(handle, "ncclAllReduce")?,
                    broadcast: symbol(handle, "ncclBroadcast")?,
                    group_start: symbol(handle, "ncclGroupStart")?,
                    group_end: symbol(handle, "ncclGroupEnd")?,
                    get_error_string: symbol(handle, "ncclGetErrorString")?,
                    set_device,
                }
            };
            return Ok((api, path.display().to_string()));
        }
        bail!(
            "NCCL was not found: tried {}. Install the nvidia-nccl-cu13 wheel next to torch, or point {NCCL_LIB_ENV} at libnccl.so.2; or set train.reducer = \"copy\"",
            tried.join("; ")
        )
    }

    fn check(&self, what: &str, code: NcclResult) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: NCCL returns a static NUL-terminated string.
        let why = unsafe { CStr::from_ptr((self.get_error_string)(code)) }
            .to_string_lossy()
            .into_owned();
        bail!("NCCL {what} failed: {why} (code {code})")
    }
}

/// NCCL's library, opened once per process.
pub struct Nccl {
    api: Api,
    /// Where it was loaded from.
    pub path: String,
    /// Its version, e.g. 22703 for 2.27.3.
    pub version: i32,
}

impl std::fmt::Debug for Nccl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nccl({} v{})", self.path, self.version)
    }
}

impl Nccl {
    /// Opens NCCL (see the module docs for where it is looked for).
    pub fn open() -> Result<Nccl> {
        let (api, path) = Api::open()?;
        let mut version = 0;
        // SAFETY: a valid out-pointer.
        api.check("ncclGetVersion", unsafe { (api.get_version)(&mut version) })?;
        Ok(Nccl { api, path, version })
    }

    /// A fresh communicator id (the rendezvous's rank 0 makes it).
    pub fn unique_id(&self) -> Result<UniqueId> {
        let mut id = UniqueId { internal: [0; 128] };
        // SAFETY: a valid out-pointer to a 128-byte id.
        self.api.check("ncclGetUniqueId", unsafe {
            (self.api.get_unique_id)(&mut id)
        })?;
        Ok(id)
    }
}

/// One communicator per local GPU, all of one clique.
pub struct NcclReducer {
    nccl: Nccl,
    comms: Vec<Comm>,
    devices: Vec<usize>,
}

// SAFETY: NCCL communicators may be used from any thread, one call at a time;
// the reducer is used by one thread at a time (`&self` calls come from the
// engine's step, which holds `&mut DataParallel`).
unsafe impl Send for NcclReducer {}

impl std::fmt::Debug for NcclReducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NcclReducer({:?} on GPUs {:?})", self.nccl, self.devices)
    }
}

impl NcclReducer {
    /// A clique of the GPUs `devices` of this process alone.
    pub fn local(nccl: Nccl, devices: &[usize]) -> Result<NcclReducer> {
        let mut comms = vec![std::ptr::null_mut(); devices.len()];
        let list: Vec<c_int> = devices.iter().map(|&d| d as c_int).collect();
        // SAFETY: `comms` has room for one communicator per device.
        nccl.api.check("ncclCommInitAll", unsafe {
            (nccl.api.comm_init_all)(comms.as_mut_ptr(), list.len() as c_int, list.as_ptr())
        })?;
        Ok(NcclReducer {
            nccl,
            comms,
            devices: devices.to_vec(),
        })
    }

    /// This process's GPUs `devices` as ranks `first_rank..` of a clique of
    /// `world` ranks across processes, all of which call this with the same
    /// `id` (shared by the rendezvous).
    pub fn joined(
        nccl: Nccl,
        id: UniqueId,
        devices: &[usize],
        first_rank: usize,
        world: usize,
    ) -> Result<NcclReducer> {
        let Some(set_device) = nccl.api.set_device else {
            bail!("cudaSetDevice is not in this process: is libtorch_cuda.so loaded?");
        };
        let mut comms = vec![std::ptr::null_mut(); devices.len()];
        // SAFETY: NCCL's documented pattern for several GPUs per process:
        // one ncclCommInitRank per device, each with that device current,
        // inside one group.
        unsafe {
            nccl.api.check("ncclGroupStart", (nccl.api.group_start)())?;
            for (i, &d) in devices.iter().enumerate() {
                let code = set_device(d as c_int);
                if code != 0 {
                    bail!("cudaSetDevice({d}) failed with code {code}");
                }
                nccl.api.check(
                    "ncclCommInitRank",
                    (nccl.api.comm_init_rank)(
                        &mut comms[i],
                        world as c_int,
                        id,
                        (first_rank + i) as c_int,
                    ),
                )?;
            }
            nccl.api.check("ncclGroupEnd", (nccl.api.group_end)())?;
        }
        Ok(NcclReducer {
            nccl,
            comms,
            devices: devices.to_vec(),
        })
    }

    fn check_tensor(&self, r: usize, t: &Tensor) -> Result<c_int> {
        if t.device() != Device::Cuda(self.devices[r]) || !t.is_contiguous() {
            bail!(
                "NCCL needs contiguous tensors on cuda:{}, got one on {:?}",
                self.devices[r],
                t.device()
            );
        }
        nccl_type(t.kind())
    }

    /// Runs `op(r, tensor, comm)` for every replica and tensor in one group.
    fn grouped(
        &self,
        tensors: &[Vec<Tensor>],
        what: &str,
        op: impl Fn(&Tensor, c_int, Comm) -> NcclResult,
    ) -> Result<()> {
        if tensors.len() != self.comms.len() {
            bail!(
                "{} replicas' tensors for {} NCCL communicators",
                tensors.len(),
                self.comms.len()
            );
        }
        let mut types = Vec::new();
        for (r, ts) in tensors.iter().enumerate() {
            for t in ts {
                types.push(self.check_tensor(r, t)?);
            }
        }
        let api = &self.nccl.api;
        // SAFETY: group calls bracket the collectives.
        api.check("ncclGroupStart", unsafe { (api.group_start)() })?;
        let mut first_error = Ok(());
        let mut k = 0;
        for (r, ts) in tensors.iter().enumerate() {
            for t in ts {
                let code = op(t, types[k], self.comms[r]);
                k += 1;
                if first_error.is_ok() {
                    first_error = api.check(what, code);
                }
            }
        }
        // SAFETY: closes the group opened above, also after an error.
        api.check("ncclGroupEnd", unsafe { (api.group_end)() })?;
        first_error
    }

    /// Copies rank 0's `tensors` into every rank's (each replica's list
    /// in the same order).
    pub fn broadcast(&self, tensors: &[Vec<Tensor>]) -> Result<()> {
        let api = &self.nccl.api;
        self.grouped(tensors, "ncclBroadcast", |t, ty, comm| {
            // SAFETY: `t` is a contiguous CUDA tensor of `numel` elements
            // of NCCL type `ty` on the communicator's device.
            unsafe {
                (api.broadcast)(
                    t.data_ptr(),
                    t.data_ptr(),
                    t.numel(),
                    ty,
                    0,
                    comm,
                    std::ptr::null_mut(),
                )
            }
        })
    }
}

impl GradReducer for NcclReducer {
    fn all_reduce(&self, grads: &[Vec<Tensor>], weights: &[f64]) -> Result<()> {
        tch::no_grad(|| {
            for (g, &w) in grads.iter().zip(weights) {
                if w != 1.0 {
                    for t in g {
                        let _ = t.shallow_clone().g_mul_scalar_(w);
                    }
                }
            }
        });
        let api = &self.nccl.api;
        self.grouped(grads, "ncclAllReduce", |t, ty, comm| {
            // SAFETY: in place on a contiguous CUDA tensor of `numel`
            // elements of NCCL type `ty` on the communicator's device.
            unsafe {
                (api.all_reduce)(
                    t.data_ptr(),
                    t.data_ptr(),
                    t.numel(),
                    ty,
                    NCCL_SUM,
                    comm,
                    std::ptr::null_mut(),
                )
            }
        })
    }

    fn name(&self) -> &'static str {
        "nccl"
    }
}

impl Drop for NcclReducer {
    fn drop(&mut self) {
        for &c in &self.comms {
            // SAFETY: each communicator was made by NCCL and is destroyed once.
            unsafe {
                (self.nccl.api.comm_destroy)(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_nccl_says_where_it_was_looked_for() {
        // This machine's CPU libtorch has no NCCL beside it; the explicit
        // path is looked at first and named in the error.
        std::env::set_var(NCCL_LIB_ENV, "/nonexistent/libnccl.so.2");
        let found = Nccl::open();
        std::env::remove_var(NCCL_LIB_ENV);
        match found {
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("/nonexistent/libnccl.so.2") && e.contains("nvidia-nccl-cu13"),
                    "{e}"
                );
            }
            // A machine with NCCL installed system-wide finds it anyway.
            Ok(n) => assert!(n.version > 0),
        }
    }
}
