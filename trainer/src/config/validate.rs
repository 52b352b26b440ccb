//! Checking a configuration's values, one section at a time: each section
//! checks its own keys and every error names the key it is about. The data
//! folders are checked apart ([`DataConfig::check_paths`]): a config is
//! checked on machines that do not hold the data too.

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
        require(
            (0..=1_000_000).contains(&self.classes),
            "model.classes",
            || format!("must be 0 (from the data) to 1000000, got {}", self.classes),
        )?;
        require((0.0..1.0).contains(&self.dropout), "model.dropout", || {
            format!("must be in [0, 1), got {}", self.dropout)
        })?;
        let std = self.first_layer_std.unwrap_or(1.0);
        require(std > 0.0 && std <= 10.0, "model.first_layer_std", || {
            format!("must be in (0, 10], got {std}")
        })?;
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
        require(self.augment.is_training(), "data.augment", || {
            "must be 'zf', 'zf-fixed' or 'rrc' for training".into()
        })?;
        require(!self.val_augment.is_training(), "data.val_augment", || {
            "must be 'eval' or 'ten-crop' for validation".into()
        })?;
        require(
            (0.0..=zftrain_data::transform::MAX_LIGHTING).contains(&self.lighting),
            "data.lighting",
            || {
                format!(
                    "must be 0 (off) to {} (AlexNet's is 0.1), got {}",
                    zftrain_data::transform::MAX_LIGHTING,
                    self.lighting
                )
            },
        )?;
        require(self.crop >= 32, "data.crop", || {
            format!("must be at least 32, got {}", self.crop)
        })?;
        require(self.resize >= self.crop, "data.resize", || {
            format!("must be >= data.crop ({}), got {}", self.crop, self.resize)
        })?;
        require(self.std.iter().all(|s| *s > 0.0), "data.std", || {
            format!("must be positive, got {:?}", self.std)
        })?;
        require((1..=1024).contains(&self.workers), "data.workers", || {
            format!("must be 1 to 1024, got {}", self.workers)
        })?;
        require(
            (1..=1024).contains(&self.queue_depth),
            "data.queue_depth",
            || {
                format!(
                    "must be 1 to 1024 (batches held in memory), got {}",
                    self.queue_depth
                )
            },
        )?;
        require(self.max_pixels >= 1, "data.max_pixels", || {
            "must be at least 1".into()
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
        require(self.epochs >= 1, "train.epochs", || {
            format!("must be at least 1, got {}", self.epochs)
        })?;
        require(
            (1..=1 << 20).contains(&self.batch_size),
            "train.batch_size",
            || format!("must be 1 to {}, got {}", 1 << 20, self.batch_size),
        )?;
        require(self.threads <= 4096, "train.threads", || {
            format!("must be 0 (all cores) to 4096, got {}", self.threads)
        })?;
        require(
            self.renorm_radius.is_finite() && self.renorm_radius >= 0.0,
            "train.renorm_radius",
            || format!("must be finite and >= 0, got {}", self.renorm_radius),
        )?;
        require(
            (0.0..1.0).contains(&self.label_smoothing),
            "train.label_smoothing",
            || format!("must be in [0, 1), got {}", self.label_smoothing),
        )?;
        require(
            self.log_every_s.is_finite() && self.log_every_s >= 0.0,
            "train.log_every_s",
            || {
                format!(
                    "must be finite and >= 0 (seconds), got {}",
                    self.log_every_s
                )
            },
        )?;
        require(self.log_every >= 1, "train.log_every", || {
            "must be at least 1".into()
        })?;
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
    require(o.lr > 0.0 && o.lr.is_finite(), "optim.lr", || {
        format!("must be positive, got {}", o.lr)
    })?;
    require((0.0..1.0).contains(&o.momentum), "optim.momentum", || {
        format!("must be in [0, 1), got {}", o.momentum)
    })?;
    require(
        o.weight_decay.is_finite() && o.weight_decay >= 0.0,
        "optim.weight_decay",
        || format!("must be finite and >= 0, got {}", o.weight_decay),
    )?;
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
        require(
            self.gamma > 0.0 && self.gamma <= 1.0,
            "schedule.gamma",
            || format!("must be in (0, 1], got {}", self.gamma),
        )?;
        require(
            self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0,
            "schedule.warmup_epochs",
            || {
                format!(
                    "must be >= 0 (fractions allowed), got {}",
                    self.warmup_epochs
                )
            },
        )?;
        require(self.step_epochs >= 1, "schedule.step_epochs", || {
            "must be at least 1".into()
        })
    }
}

impl CheckpointConfig {
    /// Checks `[checkpoint]`'s values.
    pub fn validate(&self) -> Result<()> {
        require(self.keep_last >= 1, "checkpoint.keep_last", || {
            "must be at least 1".into()
        })?;
        require(
            self.every_minutes.is_finite() && self.every_minutes >= 0.0,
            "checkpoint.every_minutes",
            || format!("must be finite and >= 0, got {}", self.every_minutes),
        )
    }
}

impl ProbeConfig {
    /// Checks `[probe]`'s values.
    pub fn validate(&self) -> Result<()> {
        require(self.batch_size >= 1, "probe.batch_size", || {
            "must be at least 1".into()
        })
    }
}

impl ClusterConfig {
    /// Checks `[cluster]`'s values.
    pub fn validate(&self) -> Result<()> {
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
        })?;
        require(
            (1..=30 * 24 * 3600).contains(&self.timeout_s),
            "cluster.timeout_s",
            || format!("must be 1 s to 30 days, got {}", self.timeout_s),
        )
    }
}
