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
//!
//! A collective whose peer died never ends on its own: after queueing one,
//! the host polls the stream and `ncclCommGetAsyncError` until it is done,
//! and on an error or past [`NcclWatch::timeout`] aborts the communicators
//! (`ncclCommAbort`) and returns an error naming the node and device, so
//! that every node stops instead of hanging. A group is always ended, even
//! when a call inside it failed.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{fail, ParallelError, Result, ResultExt};
use tch::{Device, Kind, Tensor};

use super::reduce::GradReducer;
use crate::devices::dl_error;

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
        other => fail!(Nccl, "NCCL cannot reduce {other:?} tensors"),
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
    comm_get_async_error: unsafe extern "C" fn(Comm, *mut NcclResult) -> NcclResult,
    comm_abort: unsafe extern "C" fn(Comm) -> NcclResult,
    set_device: Option<unsafe extern "C" fn(c_int) -> c_int>,
    /// `cudaStreamQuery(stream)`: 0 when done, [`CUDA_NOT_READY`] while
    /// work is queued.
    stream_query: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
}

/// `cudaErrorNotReady`: the stream still has work.
const CUDA_NOT_READY: c_int = 600;
/// `ncclInProgress`: a non-blocking call still running (not an error).
const NCCL_IN_PROGRESS: NcclResult = 7;

/// How long a collective may take before the communicators are aborted,
/// and which node says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NcclWatch {
    /// This node's rank, named in the errors.
    pub node: usize,
    /// Longest wait for one collective (`cluster.timeout_s`).
    pub timeout: Duration,
}

impl Default for NcclWatch {
    fn default() -> Self {
        NcclWatch {
            node: 0,
            timeout: Duration::from_secs(300),
        }
    }
}

/// `dlsym` of `name` in `handle` as a function pointer of type `F`, or
/// `None` where there is no such symbol.
///
/// # Safety
/// `F` must be the symbol's true function pointer type.
unsafe fn lookup<F: Copy>(handle: *mut c_void, name: &str) -> Result<Option<F>> {
    let c = CString::new(name)
        .map_err(|_| ParallelError::Nccl(format!("a symbol name with a NUL byte: {name:?}")))?;
    let p = libc::dlsym(handle, c.as_ptr());
    Ok((!p.is_null()).then(|| std::mem::transmute_copy::<*mut c_void, F>(&p)))
}

/// A CUDA runtime function of the process (libtorch_cuda brings the
/// runtime), or `None` where there is none.
///
/// # Safety
/// `F` must be the function's true pointer type.
unsafe fn cuda_symbol<F: Copy>(name: &str) -> Result<Option<F>> {
    lookup(libc::RTLD_DEFAULT, name)
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

/// `dlsym` of `name` in `handle`, as a function pointer of type `F`.
///
/// # Safety
/// `F` must be the symbol's true function pointer type.
unsafe fn symbol<F: Copy>(handle: *mut c_void, name: &str) -> Result<F> {
    match lookup(handle, name)? {
        Some(f) => Ok(f),
        None => fail!(Nccl, "NCCL has no symbol {name}: {}", dl_error()),
    }
}

impl Api {
    fn open() -> Result<(Api, String)> {
        let mut tried = Vec::new();
        for path in nccl_candidates() {
            let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
                ParallelError::Nccl(format!("{}: a path with a NUL byte", path.display()))
            })?;
            // SAFETY: a NUL-terminated path; the handle lives for the process.
            let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if handle.is_null() {
                tried.push(format!("{} ({})", path.display(), dl_error()));
                continue;
            }
            // SAFETY: the types are NCCL's (nccl.h, 2.x) and CUDA's
            // cudaSetDevice(int) and cudaStreamQuery(cudaStream_t), looked
            // up in the process.
            let api = unsafe {
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
                    comm_get_async_error: symbol(handle, "ncclCommGetAsyncError")?,
                    comm_abort: symbol(handle, "ncclCommAbort")?,
                    set_device: cuda_symbol("cudaSetDevice")?,
                    stream_query: cuda_symbol("cudaStreamQuery")?,
                }
            };
            return Ok((api, path.display().to_string()));
        }
        fail!(Nccl,
            "NCCL was not found: tried {}. Install the nvidia-nccl-cu13 wheel next to torch, or point {NCCL_LIB_ENV} at libnccl.so.2; or set train.reducer = \"copy\"",
            tried.join("; ")
        )
    }

    fn check(&self, what: &str, code: NcclResult) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        fail!(Nccl, "NCCL {what} failed: {}", self.describe(code))
    }

    /// NCCL's words for `code`, and the code.
    fn describe(&self, code: NcclResult) -> String {
        // SAFETY: NCCL returns a static NUL-terminated string (or null).
        let why = unsafe {
            let p = (self.get_error_string)(code);
            if p.is_null() {
                "unknown error".into()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        format!("{why} (code {code})")
    }

    /// Runs `calls` between `ncclGroupStart` and `ncclGroupEnd`; the group
    /// is ended whatever `calls` returns (an open group would swallow the
    /// process's next NCCL calls). The first error wins.
    fn in_group(&self, calls: impl FnOnce() -> Result<()>) -> Result<()> {
        // SAFETY: group calls take no arguments.
        self.check("ncclGroupStart", unsafe { (self.group_start)() })?;
        let inside = calls();
        // SAFETY: closes the group opened above, also after an error.
        let end = self.check("ncclGroupEnd", unsafe { (self.group_end)() });
        inside.and(end)
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
    watch: NcclWatch,
    /// Set once the communicators were aborted (freed by NCCL).
    aborted: AtomicBool,
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
    fn new(nccl: Nccl, devices: &[usize], watch: NcclWatch) -> NcclReducer {
        NcclReducer {
            nccl,
            comms: vec![std::ptr::null_mut(); devices.len()],
            devices: devices.to_vec(),
            watch,
            aborted: AtomicBool::new(false),
        }
    }

    /// A clique of the GPUs `devices` of this process alone.
    pub fn local(nccl: Nccl, devices: &[usize], watch: NcclWatch) -> Result<NcclReducer> {
        let mut r = NcclReducer::new(nccl, devices, watch);
        let list: Vec<c_int> = devices.iter().map(|&d| d as c_int).collect();
        let api = &r.nccl.api;
        // SAFETY: `comms` has room for one communicator per device.
        api.check("ncclCommInitAll", unsafe {
            (api.comm_init_all)(r.comms.as_mut_ptr(), list.len() as c_int, list.as_ptr())
        })?;
        Ok(r)
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
        watch: NcclWatch,
    ) -> Result<NcclReducer> {
        let Some(set_device) = nccl.api.set_device else {
            fail!(
                Nccl,
                "cudaSetDevice is not in this process: is libtorch_cuda.so loaded?"
            );
        };
        let mut r = NcclReducer::new(nccl, devices, watch);
        let (api, comms) = (&r.nccl.api, &mut r.comms);
        // NCCL's documented pattern for several GPUs per process: one
        // ncclCommInitRank per device, each with that device current,
        // inside one group.
        let made = api.in_group(|| {
            for (i, &d) in devices.iter().enumerate() {
                // SAFETY: a device index; CUDA checks it.
                let code = unsafe { set_device(d as c_int) };
                if code != 0 {
                    fail!(Nccl, "cudaSetDevice({d}) failed with code {code}");
                }
                // SAFETY: an out-pointer to this device's communicator
                // and the id every rank shares.
                api.check("ncclCommInitRank", unsafe {
                    (api.comm_init_rank)(
                        &mut comms[i],
                        world as c_int,
                        id,
                        (first_rank + i) as c_int,
                    )
                })?;
            }
            Ok(())
        });
        if let Err(e) = made {
            // Communicators half made wait for peers: abort, never destroy.
            r.abort();
            return Err(e);
        }
        Ok(r)
    }

    /// Aborts every communicator (NCCL frees them and ends their kernels,
    /// so that no thread stays blocked in a collective); at most once.
    fn abort(&self) {
        if self.aborted.swap(true, Ordering::SeqCst) {
            return;
        }
        for &c in self.comms.iter().filter(|c| !c.is_null()) {
            // SAFETY: each communicator was made by NCCL and is aborted once.
            unsafe {
                (self.nccl.api.comm_abort)(c);
            }
        }
    }

    /// Waits until the collectives queued on every device's default stream
    /// have finished, polling NCCL's asynchronous errors meanwhile: an
    /// error, or no progress within the watch's timeout (a peer that died
    /// or stopped), aborts the communicators and names the node and device.
    fn wait(&self, what: &str) -> Result<()> {
        let Err(failure) = self.poll(what) else {
            return Ok(());
        };
        self.abort();
        fail!(
            Nccl,
            "node {}, {failure}; the NCCL communicators were aborted and training stops",
            self.watch.node
        )
    }

    /// Polls every device's default stream until it is done, checking the
    /// communicators' asynchronous errors meanwhile; what went wrong
    /// otherwise, as `cuda:D: ...`.
    fn poll(&self, what: &str) -> Result<(), String> {
        let api = &self.nccl.api;
        let (Some(set_device), Some(query)) = (api.set_device, api.stream_query) else {
            return Err(
                "the CUDA runtime is not in this process: is libtorch_cuda.so loaded?".into(),
            );
        };
        let started = std::time::Instant::now();
        for &d in &self.devices {
            // SAFETY: a device index; CUDA checks it.
            let code = unsafe { set_device(d as c_int) };
            if code != 0 {
                return Err(format!("cuda:{d}: cudaSetDevice failed with code {code}"));
            }
            // SAFETY: the null stream is the device's legacy default
            // stream, where the collectives were queued.
            while let code @ 1.. = unsafe { query(std::ptr::null_mut()) } {
                if code != CUDA_NOT_READY {
                    return Err(format!(
                        "cuda:{d}: CUDA error {code} while waiting for NCCL {what}"
                    ));
                }
                if let Some((dev, code)) = self.async_error() {
                    return Err(format!(
                        "cuda:{dev}: NCCL {what} failed: {}",
                        api.describe(code)
                    ));
                }
                if started.elapsed() >= self.watch.timeout {
                    return Err(format!(
                        "cuda:{d}: NCCL {what} did not finish within {} s (cluster.timeout_s): a peer stopped, died or lost the network",
                        self.watch.timeout.as_secs()
                    ));
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        Ok(())
    }

    /// The first communicator with an asynchronous error: its device and
    /// the error.
    fn async_error(&self) -> Option<(usize, NcclResult)> {
        let api = &self.nccl.api;
        self.comms.iter().zip(&self.devices).find_map(|(&c, &dev)| {
            let mut state: NcclResult = 0;
            // SAFETY: a live communicator and an out-pointer.
            let asked = unsafe { (api.comm_get_async_error)(c, &mut state) };
            let code = if asked != 0 { asked } else { state };
            (code != 0 && code != NCCL_IN_PROGRESS).then_some((dev, code))
        })
    }

    fn check_tensor(&self, r: usize, t: &Tensor) -> Result<c_int> {
        if t.device() != Device::Cuda(self.devices[r]) || !t.is_contiguous() {
            fail!(
                Nccl,
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
            fail!(
                Nccl,
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
        if self.aborted.load(Ordering::SeqCst) {
            fail!(
                Nccl,
                "the NCCL communicators were aborted after an earlier failure"
            );
        }
        let api = &self.nccl.api;
        let queued = api.in_group(|| {
            let mut k = 0;
            for (r, ts) in tensors.iter().enumerate() {
                for t in ts {
                    api.check(what, op(t, types[k], self.comms[r]))?;
                    k += 1;
                }
            }
            Ok(())
        });
        if let Err(e) = queued {
            self.abort();
            return Err(e).with_context(|| {
                format!(
                    "node {}, GPUs {:?}: the NCCL communicators were aborted",
                    self.watch.node, self.devices
                )
            });
        }
        self.wait(what)
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
        if self.aborted.load(Ordering::SeqCst) {
            return;
        }
        for &c in self.comms.iter().filter(|c| !c.is_null()) {
            // SAFETY: each communicator was made by NCCL and is destroyed once.
            unsafe {
                (self.nccl.api.comm_destroy)(c);
            }
        }
    }
}

#[cfg(test)]
#[path = "nccl_header.rs"]
mod header_check;

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    // A stand-in for NCCL and the CUDA runtime: counters per test thread
    // and behaviour set by each test. Real NCCL needs a GPU; what is
    // checked here is our side of the protocol (groups always ended,
    // errors polled, communicators aborted and never destroyed after).
    thread_local! {
        static GROUP_DEPTH: Cell<i32> = const { Cell::new(0) };
        static GROUP_ENDS: Cell<u32> = const { Cell::new(0) };
        static ABORTED: Cell<u32> = const { Cell::new(0) };
        static DESTROYED: Cell<u32> = const { Cell::new(0) };
        static POLLS: Cell<u32> = const { Cell::new(0) };
        /// The init of this rank fails (-1: none).
        static FAIL_RANK: Cell<i32> = const { Cell::new(-1) };
        /// The async error reported from this poll on (0: never).
        static ERROR_AT_POLL: Cell<u32> = const { Cell::new(0) };
        /// Polls of the stream before it reports done (u32::MAX: never).
        static BUSY_POLLS: Cell<u32> = const { Cell::new(u32::MAX) };
    }

    unsafe extern "C" fn version(v: *mut c_int) -> NcclResult {
        *v = 23200;
        0
    }
    unsafe extern "C" fn unique_id(_: *mut UniqueId) -> NcclResult {
        0
    }
    unsafe extern "C" fn init_rank(
        comm: *mut Comm,
        _: c_int,
        _: UniqueId,
        rank: c_int,
    ) -> NcclResult {
        if rank == FAIL_RANK.get() {
            return 2; // ncclSystemError
        }
        *comm = (rank as usize + 1) as Comm;
        0
    }
    unsafe extern "C" fn init_all(_: *mut Comm, _: c_int, _: *const c_int) -> NcclResult {
        0
    }
    unsafe extern "C" fn destroy(_: Comm) -> NcclResult {
        DESTROYED.set(DESTROYED.get() + 1);
        0
    }
    unsafe extern "C" fn collective(
        _: *const c_void,
        _: *mut c_void,
        _: usize,
        _: c_int,
        _: c_int,
        _: Comm,
        _: *mut c_void,
    ) -> NcclResult {
        0
    }
    unsafe extern "C" fn group_start() -> NcclResult {
        GROUP_DEPTH.set(GROUP_DEPTH.get() + 1);
        0
    }
    unsafe extern "C" fn group_end() -> NcclResult {
        GROUP_DEPTH.set(GROUP_DEPTH.get() - 1);
        GROUP_ENDS.set(GROUP_ENDS.get() + 1);
        0
    }
    unsafe extern "C" fn error_string(code: NcclResult) -> *const c_char {
        match code {
            6 => c"remote process exited or there was a network error".as_ptr(),
            _ => c"some error".as_ptr(),
        }
    }
    unsafe extern "C" fn async_error(_: Comm, state: *mut NcclResult) -> NcclResult {
        POLLS.set(POLLS.get() + 1);
        let at = ERROR_AT_POLL.get();
        *state = if at > 0 && POLLS.get() >= at { 6 } else { 0 };
        0
    }
    unsafe extern "C" fn abort(_: Comm) -> NcclResult {
        ABORTED.set(ABORTED.get() + 1);
        0
    }
    unsafe extern "C" fn set_device(_: c_int) -> c_int {
        0
    }
    unsafe extern "C" fn stream_query(_: *mut c_void) -> c_int {
        let left = BUSY_POLLS.get();
        if left == 0 {
            return 0;
        }
        if left != u32::MAX {
            BUSY_POLLS.set(left - 1);
        }
        CUDA_NOT_READY
    }

    fn stand_in() -> Nccl {
        Nccl {
            api: Api {
                get_version: version,
                get_unique_id: unique_id,
                comm_init_rank: init_rank,
                comm_init_all: init_all,
                comm_destroy: destroy,
                all_reduce: collective,
                broadcast: collective,
                group_start,
                group_end,
                get_error_string: error_string,
                comm_get_async_error: async_error,
                comm_abort: abort,
                set_device: Some(set_device),
                stream_query: Some(stream_query),
            },
            path: "stand-in".into(),
            version: 23200,
        }
    }

    fn watch(ms: u64) -> NcclWatch {
        NcclWatch {
            node: 3,
            timeout: Duration::from_millis(ms),
        }
    }

    #[test]
    fn a_failed_init_inside_the_group_still_ends_it_and_aborts_what_was_made() {
        FAIL_RANK.set(5);
        let id = UniqueId { internal: [0; 128] };
        let err = NcclReducer::joined(stand_in(), id, &[0, 1], 4, 8, watch(1000))
            .expect_err("rank 5 fails");
        assert!(err.to_string().contains("ncclCommInitRank"), "{err}");
        assert_eq!(GROUP_DEPTH.get(), 0, "the group was left open");
        assert_eq!(GROUP_ENDS.get(), 1);
        assert_eq!(ABORTED.get(), 1, "rank 4's communicator is aborted");
        assert_eq!(
            DESTROYED.get(),
            0,
            "an aborted communicator is not destroyed"
        );
        // Without a failure the clique is made and destroyed at the end.
        FAIL_RANK.set(-1);
        drop(NcclReducer::joined(stand_in(), id, &[0, 1], 4, 8, watch(1000)).unwrap());
        assert_eq!((GROUP_DEPTH.get(), DESTROYED.get()), (0, 2));
    }

    #[test]
    fn an_asynchronous_error_aborts_the_communicators_and_names_node_and_device() {
        let mut r = NcclReducer::new(stand_in(), &[0, 2], watch(60_000));
        r.comms = vec![1 as Comm, 2 as Comm];
        ERROR_AT_POLL.set(5);
        let err = r.wait("ncclAllReduce").unwrap_err().to_string();
        assert!(
            err.contains("node 3, cuda:")
                && err.contains("network error")
                && err.contains("aborted"),
            "{err}"
        );
        assert_eq!(ABORTED.get(), 2);
        // Later collectives are refused at once; drop destroys nothing.
        let err = r.grouped(&[vec![], vec![]], "ncclBroadcast", |_, _, _| 0);
        assert!(err.unwrap_err().to_string().contains("aborted"));
        drop(r);
        assert_eq!((ABORTED.get(), DESTROYED.get()), (2, 0));
    }

    #[test]
    fn a_collective_that_never_ends_is_aborted_after_the_timeout() {
        let mut r = NcclReducer::new(stand_in(), &[1], watch(100));
        r.comms = vec![1 as Comm];
        let started = std::time::Instant::now();
        let err = r.wait("ncclAllReduce").unwrap_err().to_string();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(
            err.contains("node 3, cuda:1") && err.contains("did not finish within"),
            "{err}"
        );
        assert_eq!(ABORTED.get(), 1);
    }

    #[test]
    fn a_finished_collective_returns_after_polling() {
        let mut r = NcclReducer::new(stand_in(), &[0, 1], watch(60_000));
        r.comms = vec![1 as Comm, 2 as Comm];
        BUSY_POLLS.set(3);
        r.wait("ncclAllReduce").unwrap();
        assert!(POLLS.get() >= 3, "errors polled while waiting");
        assert_eq!(ABORTED.get(), 0);
        drop(r);
        assert_eq!(DESTROYED.get(), 2);
    }

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
