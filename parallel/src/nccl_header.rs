//! A check of our NCCL declarations against the `nccl.h` that NVIDIA's
//! `nvidia-nccl` wheel ships (installed by `scripts/setup` with the torch
//! wheel): the GPU path has never run, so what can be caught without a GPU
//! is caught here. The C compiler is given our constants and our function
//! pointer types, written out beside the `Api` fields they stand for, and
//! must accept them with `-Werror` against the real header; the Rust side
//! of each row is pinned by assigning the `Api` field to that type, so a
//! change to either side fails `make test`. (The CUDA runtime's own headers
//! are not complete in the wheels, so three tiny stand-ins give `nccl.h`
//! what it includes: `cudaStream_t` as CUDA defines it and the version.)

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::process::Command;

use tch::Kind;

use super::{
    nccl_type, Api, Comm, NcclResult, UniqueId, CUDA_NOT_READY, NCCL_IN_PROGRESS, NCCL_SUM,
};

/// Each bound symbol and the C pointer type our `Api` field has, parameter
/// by parameter (`c_int` for NCCL's enums, which are `int`-sized: checked).
const SIGNATURES: [(&str, &str); 12] = [
    ("ncclGetVersion", "ncclResult_t (*)(int*)"),
    ("ncclGetUniqueId", "ncclResult_t (*)(ncclUniqueId*)"),
    ("ncclCommInitRank", "ncclResult_t (*)(ncclComm_t*, int, ncclUniqueId, int)"),
    ("ncclCommInitAll", "ncclResult_t (*)(ncclComm_t*, int, const int*)"),
    ("ncclCommDestroy", "ncclResult_t (*)(ncclComm_t)"),
    ("ncclAllReduce", "ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t)"),
    ("ncclBroadcast", "ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t)"),
    ("ncclGroupStart", "ncclResult_t (*)(void)"),
    ("ncclGroupEnd", "ncclResult_t (*)(void)"),
    ("ncclGetErrorString", "const char* (*)(ncclResult_t)"),
    ("ncclCommGetAsyncError", "ncclResult_t (*)(ncclComm_t, ncclResult_t*)"),
    ("ncclCommAbort", "ncclResult_t (*)(ncclComm_t)"),
];

/// Pins each `Api` field to the Rust type the row above describes: this
/// stops compiling when a field changes, so the table is updated with it.
#[allow(dead_code)]
fn rust_side(api: &Api) {
    type Ptr = *mut c_void;
    let _: unsafe extern "C" fn(*mut c_int) -> NcclResult = api.get_version;
    let _: unsafe extern "C" fn(*mut UniqueId) -> NcclResult = api.get_unique_id;
    let _: unsafe extern "C" fn(*mut Comm, c_int, UniqueId, c_int) -> NcclResult =
        api.comm_init_rank;
    let _: unsafe extern "C" fn(*mut Comm, c_int, *const c_int) -> NcclResult = api.comm_init_all;
    let _: unsafe extern "C" fn(Comm) -> NcclResult = api.comm_destroy;
    let _: unsafe extern "C" fn(*const c_void, Ptr, usize, c_int, c_int, Comm, Ptr) -> NcclResult =
        api.all_reduce;
    let _: unsafe extern "C" fn(*const c_void, Ptr, usize, c_int, c_int, Comm, Ptr) -> NcclResult =
        api.broadcast;
    let _: unsafe extern "C" fn() -> NcclResult = api.group_start;
    let _: unsafe extern "C" fn() -> NcclResult = api.group_end;
    let _: unsafe extern "C" fn(NcclResult) -> *const c_char = api.get_error_string;
    let _: unsafe extern "C" fn(Comm, *mut NcclResult) -> NcclResult = api.comm_get_async_error;
    let _: unsafe extern "C" fn(Comm) -> NcclResult = api.comm_abort;
}

/// The wheel's `nvidia/` folder in the environment `scripts/setup` made.
fn nvidia_dir() -> PathBuf {
    let python = PathBuf::from(env!("ZFTRAIN_PYTHON"));
    let python = if python.is_relative() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(python)
    } else {
        python
    };
    let lib = python
        .parent()
        .and_then(|b| b.parent())
        .unwrap()
        .join("lib");
    for entry in std::fs::read_dir(&lib).unwrap().flatten() {
        let nvidia = entry.path().join("site-packages/nvidia");
        if nvidia.join("nccl/include/nccl.h").is_file() {
            return nvidia;
        }
    }
    panic!(
        "no nvidia/nccl/include/nccl.h under {}: run scripts/setup (it installs the torch wheel with nvidia-nccl)",
        lib.display()
    );
}

/// The C program: our constants and pointer types against `nccl.h`.
fn program() -> String {
    let mut c = String::from("#include <nccl.h>\n#include <stddef.h>\n");
    let mut check = |cond: String, what: &str| {
        c.push_str(&format!("_Static_assert({cond}, \"{what}\");\n"));
    };
    check(
        format!(
            "sizeof(ncclUniqueId) == {}",
            std::mem::size_of::<UniqueId>()
        ),
        "UniqueId's size",
    );
    check(format!("ncclSum == {NCCL_SUM}"), "NCCL_SUM");
    check(
        format!("ncclInProgress == {NCCL_IN_PROGRESS}"),
        "NCCL_IN_PROGRESS",
    );
    for (kind, name) in [
        (Kind::Half, "ncclFloat16"),
        (Kind::Float, "ncclFloat32"),
        (Kind::Double, "ncclFloat64"),
        (Kind::BFloat16, "ncclBfloat16"),
    ] {
        let ours = nccl_type(kind).unwrap();
        check(format!("{name} == {ours}"), &format!("nccl_type({kind:?})"));
    }
    for t in ["ncclDataType_t", "ncclRedOp_t", "ncclResult_t"] {
        check(
            format!("sizeof({t}) == sizeof(int)"),
            &format!("{t} as c_int"),
        );
    }
    for (i, (symbol, ty)) in SIGNATURES.iter().enumerate() {
        let declared = ty.replacen("(*)", &format!("(*p{i})"), 1);
        c.push_str(&format!("{declared} = {symbol};\n"));
    }
    c
}

#[test]
fn our_nccl_declarations_match_the_header_of_the_nvidia_nccl_wheel() {
    let nvidia = nvidia_dir();
    let dir = tempfile::tempdir().unwrap();
    let stubs = dir.path().join("stubs");
    std::fs::create_dir(&stubs).unwrap();
    std::fs::write(
        stubs.join("cuda_runtime.h"),
        "#include <stddef.h>\n#define CUDART_VERSION 13000\ntypedef struct CUstream_st *cudaStream_t;\n",
    )
    .unwrap();
    for h in ["cuda_fp16.h", "cuda_bf16.h"] {
        std::fs::write(stubs.join(h), "").unwrap();
    }
    let source = dir.path().join("check.c");
    std::fs::write(&source, program()).unwrap();
    let out = Command::new("cc")
        .args(["-std=c11", "-fsyntax-only", "-Wall", "-Werror"])
        .arg("-I")
        .arg(&stubs)
        .arg("-I")
        .arg(nvidia.join("nccl/include"))
        .arg(&source)
        .output()
        .expect("a C compiler (cc) runs");
    assert!(
        out.status.success(),
        "our NCCL declarations disagree with {}:\n{}\n{}",
        nvidia.join("nccl/include/nccl.h").display(),
        String::from_utf8_lossy(&out.stderr),
        program()
    );
    // cudaErrorNotReady, from the CUDA runtime's header of the same wheels.
    let types = std::fs::read_to_string(nvidia.join("cu13/include/driver_types.h"))
        .or_else(|_| std::fs::read_to_string(nvidia.join("cuda_runtime/include/driver_types.h")))
        .expect("the CUDA runtime's driver_types.h in the wheels");
    let declared = types
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once('=')?;
            (name.trim() == "cudaErrorNotReady")
                .then(|| value.trim().trim_end_matches(',').to_string())
        })
        .expect("cudaErrorNotReady in driver_types.h");
    assert_eq!(declared, CUDA_NOT_READY.to_string(), "cudaErrorNotReady");
    println!(
        "nccl.h check: {} constants and sizes, cudaErrorNotReady and {} signatures agree with the wheels' headers",
        program().matches("_Static_assert").count(),
        SIGNATURES.len()
    );
}
