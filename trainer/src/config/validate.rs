//! Checking a configuration's values, one section at a time: each key's
//! own range is declared with it (`section!` in config/mod.rs; checked by
//! the section's `check_keys`), and what relates keys to each other is
//! checked here. Every error names the key it is about. The data folders
//! are checked apart ([`DataConfig::check_paths`]): a config is checked on
//! machines that do not hold the data too.

use anyhow::Result;

use super::{
    CheckpointConfig, ClusterConfig, DataConfig, Gpus, KeyError, ModelConfig, OptimConfig,
    Precision, ProbeConfig, ScheduleConfig, TrainConfig, MAX_DEVICES,
};

/// `Err` naming the config `key` unless `ok` (a [`KeyError`]: its key is
/// data, for [`Sources::blame`](super::Sources::blame)).
pub(super) fn require(ok: bool, key: &str, what: impl FnOnce() -> String) -> Result<()> {
    match ok {
        true => Ok(()),
        false => Err(KeyError::new(key, what()).into()),
    }
}

impl ModelConfig {
    /// Checks `[model]`'s values.
    pub fn validate(&self) -> Result<()> {
        self.check_keys()?;
        require(
            self.reset_layers.is_empty() || self.init_from().is_some(),
            "model.reset_layers",
            || {
                "needs model.init_from (train --init-from FILE): without it every layer is drawn fresh".into()
            },
        )
    }
}

impl DataConfig {
    /// Checks `[data]`'s values (not the folders: [`DataConfig::check_paths`]).
    pub fn validate(&self) -> Result<()> {
        self.check_keys()?;
        require(self.resize >= self.crop, "data.resize", || {
            format!("must be >= data.crop ({}), got {}", self.crop, self.resize)
        })?;
        require(
            !self.pixel_mean || self.augment.in_centre_square(),
            "data.pixel_mean",
            || {
                "needs data.augment = \"zf\" or \"zf-fixed\" (rrc crops have no fixed place in the centre square)"
                    .into()
            },
        )
    }

    /// Checks that the training and validation data (and the list file)
    /// exist.
    pub fn check_paths(&self) -> Result<()> {
        for (key, path) in [("data.train", &self.train), ("data.val", &self.val)] {
            require(!path.as_os_str().is_empty(), key, || {
                "is required (or pass --data DIR)".into()
            })?;
            require(path.is_dir() || path.is_file(), key, || {
                format!(
                    "{} does not exist (an ImageFolder or a pack from zftrain data pack)",
                    path.display()
                )
            })?;
        }
        if let Some(list) = &self.val_list {
            require(list.is_file(), "data.val_list", || {
                format!("file {} does not exist", list.display())
            })?;
        }
        Ok(())
    }
}

impl TrainConfig {
    /// Checks `[train]`'s values, devices included.
    pub fn validate(&self) -> Result<()> {
        self.check_keys()?;
        self.validate_devices()
    }

    fn validate_devices(&self) -> Result<()> {
        let gpus = match &self.gpus {
            Gpus::Count(n) => *n,
            Gpus::List(v) => v.len(),
        };
        require(gpus <= MAX_DEVICES, "train.gpus", || {
            format!("{gpus} GPUs: at most {MAX_DEVICES}")
        })?;
        let ids = self.gpus.ids();
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        require(distinct.len() == ids.len(), "train.gpus", || {
            format!("lists a device twice: {ids:?}")
        })?;
        require(ids.len() <= self.batch_size, "train.gpus", || {
            format!(
                "{} GPUs need train.batch_size >= {0}, got {}",
                ids.len(),
                self.batch_size
            )
        })?;
        let most = MAX_DEVICES.min(self.batch_size);
        require(
            (1..=most).contains(&self.cpu_replicas),
            "train.cpu_replicas",
            || {
                format!(
                "must be 1 to {most} (at most {MAX_DEVICES} and at most train.batch_size ({})), got {}",
                self.batch_size, self.cpu_replicas
            )
            },
        )?;
        require(
            ids.is_empty() || self.cpu_replicas == 1,
            "train.cpu_replicas",
            || "goes with train.gpus = 0 (GPUs are the replicas then)".into(),
        )?;
        require(
            self.precision != Precision::Fp16 || !ids.is_empty(),
            "train.precision",
            || "fp16 is for GPUs (set train.gpus); on the CPU use bf16 or fp32".into(),
        )
    }
}

/// Checks `[optim]`'s values.
pub(super) fn validate_optim(o: &OptimConfig) -> Result<()> {
    o.check_keys()?;
    require(!o.nesterov || o.momentum > 0.0, "optim.nesterov", || {
        "needs momentum > 0".into()
    })?;
    for (layer, m) in &o.lr_mult {
        require(
            m.is_finite() && (0.0..=1e6).contains(m),
            &format!("optim.lr_mult.{layer}"),
            || format!("must be a multiplier from 0 to 1e6, got {m}"),
        )?;
    }
    Ok(())
}

impl ScheduleConfig {
    /// Checks `[schedule]`'s values.
    pub fn validate(&self) -> Result<()> {
        Ok(self.check_keys()?)
    }
}

impl CheckpointConfig {
    /// Checks `[checkpoint]`'s values.
    pub fn validate(&self) -> Result<()> {
        Ok(self.check_keys()?)
    }
}

impl ProbeConfig {
    /// Checks `[probe]`'s values.
    pub fn validate(&self) -> Result<()> {
        Ok(self.check_keys()?)
    }
}

impl ClusterConfig {
    /// Checks `[cluster]`'s values.
    pub fn validate(&self) -> Result<()> {
        self.check_keys()?;
        require(
            self.nodes >= 1 && self.node_rank < self.nodes,
            "cluster.node_rank",
            || {
                format!(
                    "must be below cluster.nodes ({}), got {}",
                    self.nodes, self.node_rank
                )
            },
        )?;
        let host_port = self
            .rendezvous
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        require(self.nodes == 1 || host_port, "cluster.rendezvous", || {
            format!("must be host:port, got '{}'", self.rendezvous)
        })
    }
}
