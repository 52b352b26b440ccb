//! What each machine of a multi-node run sets for itself: where its data
//! and runs are, its devices and threads, its rank and the address it
//! joins, the weights it starts from; each such key is declared `@machine`
//! with its section. Every node must agree on the rest of the
//! configuration, which [`RunConfig::shared`] is (the cluster's
//! fingerprint hashes it).

use super::{ClusterConfig, Override, RunConfig};

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
    /// The keys a node sets for itself: those its sections declare
    /// `@machine`, and the top level's (its name and runs folder).
    pub fn machine_keys() -> Vec<&'static str> {
        RunConfig::keys()
            .into_iter()
            .filter(|k| k.machine)
            .map(|k| k.key)
            .collect()
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

    /// What every node of a run must agree on: the configuration with
    /// every machine setting ([`RunConfig::machine_keys`]) at its default.
    pub fn shared(&self) -> RunConfig {
        let default = RunConfig::default();
        let mut data = self.data.without_machine_settings();
        // Its default is the machine's core count: a fixed value, so that
        // nodes with other counts agree.
        data.workers = 0;
        RunConfig {
            name: default.name,
            runs_dir: default.runs_dir,
            seed: self.seed,
            model: self.model.without_machine_settings(),
            data,
            train: self.train.without_machine_settings(),
            optim: self.optim.without_machine_settings(),
            schedule: self.schedule.without_machine_settings(),
            checkpoint: self.checkpoint.without_machine_settings(),
            probe: self.probe.without_machine_settings(),
            hooks: self.hooks.clone(),
            cluster: self.cluster.without_machine_settings(),
        }
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
