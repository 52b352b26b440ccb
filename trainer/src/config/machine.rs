//! What each machine of a multi-node run sets for itself: where its data
//! and runs are, its devices and threads, its rank and the address it
//! joins, the weights it starts from. Every node must agree on the rest of the configuration, which
//! [`RunConfig::shared`] is (the cluster's fingerprint hashes it).

use std::path::PathBuf;

use super::{Gpus, RunConfig};

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

    /// What every node of a run must agree on: the configuration without
    /// the [`MachineSettings`].
    pub fn shared(&self) -> RunConfig {
        let mut shared = self.clone();
        shared.take_machine();
        shared
    }
}
