//! The command line's shape: the subcommands, and the flag groups several
//! commands share ([`ArchArgs`], [`WeightsSource`], [`DeviceArgs`],
//! [`DevicesArgs`]). Each command's own flags live in its file under
//! `commands/`, beside what it runs.

use std::path::PathBuf;

use clap::{Args, Parser};
use zftrain_model::ArchName;

pub use crate::commands::Command;

/// Train AlexNet and ZFNet, and look inside them the way Zeiler & Fergus did.
#[derive(Debug, Parser)]
#[command(name = "zftrain", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments; flags with no command before them
    /// (`zftrain --arch zfnet --gpus 4 ...`) mean `zftrain train ...`.
    pub fn parse_args() -> Cli {
        Cli::parse_from(with_default_command(std::env::args_os().collect()))
    }

    /// Whether the flags ask for a GPU (a config file may too; `train` sees
    /// to that once it has read it). `main` loads CUDA first then. Every
    /// command answers for itself ([`Run::wants_cuda`](crate::commands::Run::wants_cuda) has no default).
    pub fn wants_cuda(&self) -> bool {
        self.command.get().wants_cuda()
    }
}

/// `zftrain --flag ...` -> `zftrain train --flag ...`: training is the
/// command when the first argument is a flag (but not the top level's own
/// `--help` and `--version`).
pub fn with_default_command(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let first = args.get(1).and_then(|a| a.to_str());
    if first.is_some_and(|f| f.starts_with("--") && f != "--help" && f != "--version") {
        args.insert(1, "train".into());
    }
    args
}

/// The architecture and its options.
#[derive(Debug, Clone, Default, Args)]
pub struct ArchArgs {
    /// Architecture: zfnet-seed, zfnet, alexnet, alexnet-tv.
    #[arg(long, value_parser = named::<ArchName>)]
    pub arch: Option<ArchName>,
    /// Number of classes (default 1000, or what the weights say).
    #[arg(long)]
    pub classes: Option<i64>,
    /// Leave out the LRN layers of zfnet and alexnet.
    #[arg(long)]
    pub no_lrn: bool,
    /// An architecture file (TOML layer table, see configs/archs/) instead
    /// of --arch; --classes sets its last linear layer's outputs.
    #[arg(long, conflicts_with_all = ["arch", "no_lrn"])]
    pub arch_file: Option<PathBuf>,
    /// Load weights even with NaN or infinite values or negative batch-norm
    /// variances (refused otherwise, naming the tensor): for forensics.
    #[arg(long)]
    pub allow_nonfinite: bool,
}

impl ArchArgs {
    /// The flags as the library takes them.
    pub fn overrides(&self) -> crate::weights::ArchOverrides {
        crate::weights::ArchOverrides {
            arch: self.arch,
            classes: self.classes,
            no_lrn: self.no_lrn,
            arch_file: self.arch_file.clone(),
            allow_nonfinite: self.allow_nonfinite,
        }
    }
}

/// One device for a command that runs a network: `--gpu N`, or the CPU.
#[derive(Debug, Clone, Default, Args)]
pub struct DeviceArgs {
    /// Run on this CUDA device (default: the CPU).
    #[arg(long, value_name = "INDEX")]
    pub gpu: Option<usize>,
}

impl DeviceArgs {
    /// Whether a GPU was asked for.
    pub fn wants_cuda(&self) -> bool {
        self.gpu.is_some()
    }

    /// The device, checked to exist (the CPU without `--gpu`).
    pub fn device(&self) -> anyhow::Result<tch::Device> {
        match self.gpu {
            Some(id) => Ok(crate::devices::training_devices(&[id], 1)?[0]),
            None => Ok(tch::Device::Cpu),
        }
    }
}

/// Data-parallel devices: `--gpus` (a count, or device indices) and
/// `--cpu-replicas`; absent, the command's default (the run configuration's
/// for `train`, one replica on the CPU elsewhere).
#[derive(Debug, Clone, Default, Args)]
pub struct DevicesArgs {
    /// GPUs (train.gpus): a count (`4`; 0 = the CPU) or device indices (`0,2`).
    #[arg(long, value_parser = parse_gpus)]
    pub gpus: Option<crate::config::Gpus>,
    /// Data-parallel replicas on the CPU (train.cpu_replicas; tests the
    /// multi-device engine without GPUs).
    #[arg(long)]
    pub cpu_replicas: Option<usize>,
}

impl DevicesArgs {
    /// Whether a GPU was asked for.
    pub fn wants_cuda(&self) -> bool {
        self.gpus.as_ref().is_some_and(|g| !g.ids().is_empty())
    }

    /// The devices, checked (the CPU, once, without flags).
    pub fn devices(&self) -> anyhow::Result<Vec<tch::Device>> {
        let ids = self.gpus.as_ref().map(|g| g.ids()).unwrap_or_default();
        Ok(crate::devices::training_devices(
            &ids,
            self.cpu_replicas.unwrap_or(1),
        )?)
    }
}

/// `--gpus 4` -> a count, `--gpus 0,2` -> those indices.
fn parse_gpus(flag: &str) -> Result<crate::config::Gpus, String> {
    let ids = crate::devices::parse_gpus(flag).map_err(|e| e.to_string())?;
    Ok(match flag.contains(',') || flag.trim().starts_with('[') {
        true => crate::config::Gpus::List(ids),
        false => crate::config::Gpus::Count(ids.len()),
    })
}

/// Where weights come from: a safetensors file or a checkpoint (one of them).
#[derive(Debug, Args)]
pub struct WeightsSource {
    /// Weights: a safetensors file with PyTorch names.
    #[arg(
        long,
        conflicts_with = "checkpoint",
        required_unless_present = "checkpoint"
    )]
    pub weights: Option<PathBuf>,
    /// Weights: a checkpoint directory.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// The name an enum value has in a configuration file and on the command
/// line ([`named`]'s inverse).
pub(crate) fn name_of<T: serde::Serialize>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(toml::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// An enum flag, by the name its configuration key takes (`--arch
/// zfnet-seed`, `--augment zf`, `--bad-images skip`): every enum flag
/// parses this way (`value_parser = named::<T>`), so a flag and a
/// configuration file accept the same words, and a wrong one is refused
/// with the list of right ones.
pub(crate) fn named<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    use serde::de::value::{Error, StrDeserializer};
    T::deserialize(StrDeserializer::<Error>::new(s)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        let os = line.split(' ').map(std::ffi::OsString::from).collect();
        with_default_command(os)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn flags_without_a_command_mean_train() {
        assert_eq!(
            args("zftrain --arch zfnet --gpus 4"),
            ["zftrain", "train", "--arch", "zfnet", "--gpus", "4"]
        );
        assert_eq!(
            args("zftrain summary --arch zfnet"),
            ["zftrain", "summary", "--arch", "zfnet"]
        );
        assert_eq!(args("zftrain --help"), ["zftrain", "--help"]);
        assert_eq!(args("zftrain --version"), ["zftrain", "--version"]);
        let cli = Cli::parse_from(args("zftrain --arch zfnet --gpus 0,2"));
        assert!(matches!(cli.command, Command::Train(_)));
        assert!(cli.wants_cuda());
    }
}
