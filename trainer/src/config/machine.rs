//! What each machine of a multi-node run sets for itself: where its data
//! and runs are, its devices and threads, its rank and the address it
//! joins, the weights it starts from. Every node must agree on the rest of the configuration, which
//! [`RunConfig::shared`] is (the cluster's fingerprint hashes it).

use std::path::PathBuf;

use super::{ClusterConfig, Gpus, Override, RunConfig};

/// A node's own settings, taken out of a [`RunConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct MachineSettings {
    /// `name` (a node's log folder is named after it).
    pub name: String,
    /// `runs_dir`.
    pub runs_dir: PathBuf,
    /// `data.train`.
    pub train: PathBuf,
    /// `data.val`.
    pub val: PathBuf,
    /// `data.val_list`.
    pub val_list: Option<PathBuf>,
    /// `data.workers`.
    pub workers: usize,
    /// `data.queue_depth`.
    pub queue_depth: usize,
    /// `train.gpus`.
    pub gpus: Gpus,
    /// `train.cpu_replicas`.
    pub cpu_replicas: usize,
    /// `train.threads`.
    pub threads: usize,
    /// `cluster.node_rank`.
    pub node_rank: usize,
    /// `cluster.rendezvous`.
    pub rendezvous: String,
    /// `cluster.token_file`.
    pub token_file: Option<PathBuf>,
    /// `cluster.insecure`.
    pub insecure: bool,
    /// `model.init_from` (only node 0 reads it; the others receive its
    /// weights).
    pub init_from: Option<PathBuf>,
}

impl MachineSettings {
    /// The config keys a node sets for itself.
    pub const KEYS: [&'static str; 15] = [
        "name",
        "runs_dir",
        "data.train",
        "data.val",
        "data.val_list",
        "data.workers",
        "data.queue_depth",
        "train.gpus",
        "train.cpu_replicas",
        "train.threads",
        "cluster.node_rank",
        "cluster.rendezvous",
        "cluster.token_file",
        "cluster.insecure",
        "model.init_from",
    ];
}

/// The settings that say where a run listens, whom it connects to and
/// with which token: on `--resume` they come only from the command line,
/// the environment or a launcher, never from the run directory
/// ([`RunConfig::forget_saved_network`]). `cluster.timeout_s` is not one:
/// it decides nothing about who is reached, and every node must agree on
/// it (the cluster's fingerprint holds it).
pub const NETWORK_KEYS: [&str; 5] = [
    "cluster.nodes",
    "cluster.node_rank",
    "cluster.rendezvous",
    "cluster.token_file",
    "cluster.insecure",
];

impl RunConfig {
    /// Moves this node's own settings out, leaving empty values in their
    /// place.
    pub fn take_machine(&mut self) -> MachineSettings {
        use std::mem::take;
        MachineSettings {
            name: take(&mut self.name),
            runs_dir: take(&mut self.runs_dir),
            train: take(&mut self.data.train),
            val: take(&mut self.data.val),
            val_list: take(&mut self.data.val_list),
            workers: take(&mut self.data.workers),
            queue_depth: take(&mut self.data.queue_depth),
            gpus: std::mem::replace(&mut self.train.gpus, Gpus::Count(0)),
            cpu_replicas: take(&mut self.train.cpu_replicas),
            threads: take(&mut self.train.threads),
            node_rank: take(&mut self.cluster.node_rank),
            rendezvous: take(&mut self.cluster.rendezvous),
            token_file: take(&mut self.cluster.token_file),
            insecure: take(&mut self.cluster.insecure),
            init_from: take(&mut self.model.init_from),
        }
    }

    /// On `--resume`: drops the network settings a run directory saved
    /// ([`NETWORK_KEYS`]) for their defaults, but those set by `overrides`
    /// (this command line, the environment, a launcher). A run directory
    /// is data: it may not choose where a run listens or connects, nor with
    /// which token. Returns each dropped saved value as `key = value`.
    pub fn forget_saved_network(&mut self, overrides: &[Override]) -> Vec<String> {
        let set_now = |key: &str| overrides.iter().any(|o| o.key() == key);
        let default = ClusterConfig::default();
        let c = &mut self.cluster;
        let mut dropped = Vec::new();
        let mut forget = |key: &str, differs: bool, shown: String| {
            if differs && !set_now(key) {
                dropped.push(format!("{key} = {shown}"));
                true
            } else {
                false
            }
        };
        if forget(
            "cluster.nodes",
            c.nodes != default.nodes,
            c.nodes.to_string(),
        ) {
            c.nodes = default.nodes;
        }
        if forget(
            "cluster.node_rank",
            c.node_rank != default.node_rank,
            c.node_rank.to_string(),
        ) {
            c.node_rank = default.node_rank;
        }
        if forget(
            "cluster.rendezvous",
            c.rendezvous != default.rendezvous,
            format!("{:?}", c.rendezvous),
        ) {
            c.rendezvous = default.rendezvous.clone();
        }
        let token = c
            .token_file
            .as_ref()
            .map(|p| format!("{:?}", p.display().to_string()));
        if forget(
            "cluster.token_file",
            c.token_file.is_some(),
            token.unwrap_or_default(),
        ) {
            c.token_file = None;
        }
        if forget("cluster.insecure", c.insecure, "true".into()) {
            c.insecure = false;
        }
        dropped
    }

    /// What every node of a run must agree on: the configuration without
    /// the [`MachineSettings`].
    pub fn shared(&self) -> RunConfig {
        let mut shared = self.clone();
        shared.take_machine();
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_drops_every_saved_network_setting_but_those_given_now() {
        let mut config = RunConfig::default();
        config.cluster.nodes = 2;
        config.cluster.node_rank = 1;
        config.cluster.rendezvous = "0.0.0.0:29911".into();
        config.cluster.token_file = Some("run/token".into());
        config.cluster.insecure = true;
        config.cluster.timeout_s = 5;
        let given = [Override::flag("cluster.node_rank", 1i64, "--node-rank 1")];
        let dropped = config.forget_saved_network(&given);
        assert_eq!(dropped.len(), 4, "{dropped:?}");
        for key in NETWORK_KEYS.iter().filter(|k| **k != "cluster.node_rank") {
            assert!(
                dropped.iter().any(|d| d.starts_with(key)),
                "{key}: {dropped:?}"
            );
        }
        let default = ClusterConfig::default();
        assert_eq!(config.cluster.nodes, default.nodes);
        assert_eq!(config.cluster.rendezvous, default.rendezvous);
        assert_eq!(config.cluster.token_file, None);
        assert!(!config.cluster.insecure);
        assert_eq!(config.cluster.timeout_s, 5, "not a network setting: kept");
        assert_eq!(config.cluster.node_rank, 1, "given on the command line");
    }
}
