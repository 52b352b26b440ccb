//! Which arithmetic a run computes in: the configured [`Precision`]
//! resolved against the devices (`auto` is bf16 on GPUs and on CPUs with
//! bf16 instructions, fp32 elsewhere). Master weights stay fp32 whatever
//! the compute kind.
//!
//! What the CPU offers is read from `/proc/cpuinfo`, unless
//! [`CPU_BF16_VAR`] says otherwise: `ZFTRAIN_CPU_BF16=0` makes a bf16 CPU
//! count as one without (so `auto`'s fp32 path runs, and is tested, on any
//! machine) and `ZFTRAIN_CPU_BF16=1` makes any CPU count as one with bf16
//! (libtorch then computes bf16 in software where the instructions are
//! missing: slowly, but with bf16's numbers).

use serde::{Deserialize, Serialize};

use crate::error::{ParallelError, Result};

/// The environment variable that overrides the CPU's bf16 detection:
/// `0` (no bf16) or `1` (bf16); unset or empty to detect.
pub const CPU_BF16_VAR: &str = "ZFTRAIN_CPU_BF16";

/// Training arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// bf16 where the CPU supports it (AVX512-BF16 or AMX-BF16), else fp32.
    Auto,
    /// fp32 throughout.
    Fp32,
    /// bf16 compute with fp32 master weights.
    Bf16,
    /// fp16 compute with fp32 master weights and dynamic loss scaling
    /// (GPUs only).
    Fp16,
}

impl Precision {
    /// The compute kind: on GPUs `auto` is bf16; on the CPU bf16 where the
    /// CPU has bf16 instructions ([`cpu_bf16`]), else fp32. Fails only on
    /// a [`CPU_BF16_VAR`] that is neither `0` nor `1`.
    pub fn compute_kind(self, gpu: bool) -> Result<tch::Kind> {
        Ok(match self {
            Precision::Fp32 => tch::Kind::Float,
            Precision::Bf16 => tch::Kind::BFloat16,
            Precision::Fp16 => tch::Kind::Half,
            Precision::Auto if gpu || cpu_bf16()?.available() => tch::Kind::BFloat16,
            Precision::Auto => tch::Kind::Float,
        })
    }

    /// What the run computes in and why, for people: "fp32 (train.precision)",
    /// "auto: bf16 (fp32 master weights; ZFTRAIN_CPU_BF16=1)", ...
    pub fn describe(self, gpu: bool) -> Result<String> {
        Ok(match self {
            Precision::Fp32 => "fp32 (train.precision)".into(),
            Precision::Bf16 => "bf16 (train.precision; fp32 master weights)".into(),
            Precision::Fp16 => "fp16 (train.precision; fp32 master weights, loss scaling)".into(),
            Precision::Auto if gpu => "auto: bf16 on GPUs (fp32 master weights)".into(),
            Precision::Auto => format!("auto: {}", cpu_bf16()?.describe()),
        })
    }
}

/// Whether the CPU counts as having bf16 arithmetic, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuBf16 {
    /// As `/proc/cpuinfo` says: `true` with AVX512-BF16 or AMX-BF16.
    Detected(bool),
    /// As [`CPU_BF16_VAR`] says, whatever the CPU has.
    Forced(bool),
}

impl CpuBf16 {
    /// Whether `auto` computes in bf16 on this CPU.
    pub fn available(self) -> bool {
        match self {
            CpuBf16::Detected(b) | CpuBf16::Forced(b) => b,
        }
    }

    /// For people: "fp32 (no bf16 instructions)", "fp32 (ZFTRAIN_CPU_BF16=0)", ...
    pub fn describe(self) -> String {
        match self {
            CpuBf16::Detected(true) => {
                "bf16 (fp32 master weights; the CPU has bf16 instructions)".into()
            }
            CpuBf16::Detected(false) => "fp32 (no bf16 instructions)".into(),
            CpuBf16::Forced(true) => format!("bf16 (fp32 master weights; {CPU_BF16_VAR}=1)"),
            CpuBf16::Forced(false) => format!("fp32 ({CPU_BF16_VAR}=0)"),
        }
    }
}

/// What `auto` takes the CPU to offer: [`CPU_BF16_VAR`] when it is set,
/// else the CPU's flags. A value other than `0`, `1` or empty is refused,
/// naming the variable and the value.
pub fn cpu_bf16() -> Result<CpuBf16> {
    parse_cpu_bf16(
        std::env::var_os(CPU_BF16_VAR).as_deref(),
        cpu_flags_have_bf16,
    )
}

/// [`cpu_bf16`] for the variable's `value`, with `detect` reading the CPU.
fn parse_cpu_bf16(
    value: Option<&std::ffi::OsStr>,
    detect: impl FnOnce() -> bool,
) -> Result<CpuBf16> {
    match value {
        None => Ok(CpuBf16::Detected(detect())),
        Some(v) => match v.to_str().map(str::trim) {
            Some("") => Ok(CpuBf16::Detected(detect())),
            Some("0") => Ok(CpuBf16::Forced(false)),
            Some("1") => Ok(CpuBf16::Forced(true)),
            _ => Err(ParallelError::Config(format!(
                "{CPU_BF16_VAR}={} is neither 0 (count the CPU as without bf16) nor 1 (as with it); \
                 unset it to detect",
                v.to_string_lossy().escape_debug()
            ))),
        },
    }
}

/// Whether `auto` computes in bf16 on the CPU ([`cpu_bf16`]); a refused
/// [`CPU_BF16_VAR`] counts as unset here (commands refuse it up front).
pub fn cpu_has_bf16() -> bool {
    cpu_bf16().map_or_else(|_| cpu_flags_have_bf16(), CpuBf16::available)
}

/// Whether the CPU's flags include AVX512-BF16 or AMX-BF16.
fn cpu_flags_have_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines().filter(|l| l.starts_with("flags")).any(|l| {
                l.split_whitespace()
                    .any(|f| f == "avx512_bf16" || f == "amx_bf16")
            })
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn explicit_kinds_are_kept_and_auto_is_bf16_on_gpus() {
        let kind = |p: Precision, gpu| p.compute_kind(gpu).unwrap();
        assert_eq!(kind(Precision::Fp16, true), tch::Kind::Half);
        assert_eq!(kind(Precision::Fp32, true), tch::Kind::Float);
        assert_eq!(kind(Precision::Bf16, false), tch::Kind::BFloat16);
        assert_eq!(kind(Precision::Auto, true), tch::Kind::BFloat16);
        // On the CPU, `auto` follows what this process is told or detects.
        let cpu = match cpu_has_bf16() {
            true => tch::Kind::BFloat16,
            false => tch::Kind::Float,
        };
        assert_eq!(kind(Precision::Auto, false), cpu);
    }

    /// The switch either way whatever the CPU, and a bad value named (the
    /// variable itself is read by the e2e test, in a process of its own).
    #[test]
    fn the_switch_overrides_the_cpu_flags_and_a_bad_value_is_named() {
        for detected in [false, true] {
            let parse = |v: Option<&str>| parse_cpu_bf16(v.map(OsStr::new), || detected);
            assert_eq!(parse(None).unwrap(), CpuBf16::Detected(detected));
            assert_eq!(parse(Some(" ")).unwrap(), CpuBf16::Detected(detected));
            assert_eq!(parse(Some("0")).unwrap(), CpuBf16::Forced(false));
            assert_eq!(parse(Some("1")).unwrap(), CpuBf16::Forced(true));
            let msg = parse(Some("yes")).unwrap_err().to_string();
            assert!(msg.contains("ZFTRAIN_CPU_BF16=yes"), "{msg}");
        }
        assert!(!CpuBf16::Forced(false).available());
        assert!(CpuBf16::Forced(true)
            .describe()
            .contains("ZFTRAIN_CPU_BF16=1"));
    }
}
