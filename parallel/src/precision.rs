//! Which arithmetic a run computes in: the configured [`Precision`]
//! resolved against the devices (`auto` is bf16 on GPUs and on CPUs with
//! bf16 instructions, fp32 elsewhere). Master weights stay fp32 whatever
//! the compute kind.

use serde::{Deserialize, Serialize};

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
    /// CPU has bf16 instructions, else fp32.
    pub fn compute_kind(self, gpu: bool) -> tch::Kind {
        match self {
            Precision::Fp32 => tch::Kind::Float,
            Precision::Bf16 => tch::Kind::BFloat16,
            Precision::Fp16 => tch::Kind::Half,
            Precision::Auto if gpu || cpu_has_bf16() => tch::Kind::BFloat16,
            Precision::Auto => tch::Kind::Float,
        }
    }
}

/// Whether the CPU has bf16 arithmetic (AVX512-BF16 or AMX-BF16).
pub fn cpu_has_bf16() -> bool {
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

    #[test]
    fn explicit_kinds_are_kept_and_auto_is_bf16_on_gpus() {
        assert_eq!(Precision::Fp16.compute_kind(true), tch::Kind::Half);
        assert_eq!(Precision::Fp32.compute_kind(true), tch::Kind::Float);
        assert_eq!(Precision::Bf16.compute_kind(false), tch::Kind::BFloat16);
        assert_eq!(Precision::Auto.compute_kind(true), tch::Kind::BFloat16);
        let cpu = match cpu_has_bf16() {
            true => tch::Kind::BFloat16,
            false => tch::Kind::Float,
        };
        assert_eq!(Precision::Auto.compute_kind(false), cpu);
    }
}
