//! The node's part in a run, as a value: alone, node 0 of several (the
//! lead), or another node (a follower). The trainer asks its role what to
//! do (write the run directory? evaluate? where do this node's rows of a
//! batch start? who decides to stop?) instead of branching on a rank.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{anyhow, Result};
use tch::Device;
use zftrain_data::loader::Shard;
use zftrain_data::Dataset;

use crate::config::RunConfig;
use crate::train::cluster;
use crate::train::state::TrainerState;
use zftrain_parallel::rendezvous::Link;
use zftrain_parallel::DataParallel;

/// This process's part in the run.
pub enum Role {
    /// The only node: it does everything.
    Alone,
    /// Node 0 of several: it writes the run directory, the checkpoints and
    /// the TensorBoard history, evaluates, runs the hooks, and sends its
    /// state to the others after every epoch.
    Lead(Arc<Mutex<Link>>),
    /// Another node: it trains on its rows of every batch, keeps a log
    /// directory of its own and takes node 0's state after every epoch.
    Follower {
        /// This node's rank (1 or more).
        node: usize,
        /// The link to the other nodes.
        link: Arc<Mutex<Link>>,
    },
}

impl Role {
    /// Joins the other nodes of `config.cluster` (one node: [`Role::Alone`]).
    pub fn join(
        config: &RunConfig,
        devices: &[Device],
        train: &Dataset,
        val: &Dataset,
    ) -> Result<Role> {
        Ok(match cluster::join(config, devices, train, val)? {
            None => Role::Alone,
            Some(link) if config.cluster.node_rank == 0 => Role::Lead(link),
            Some(link) => Role::Follower {
                node: config.cluster.node_rank,
                link,
            },
        })
    }

    /// The link to the other nodes, if there are any.
    pub fn link(&self) -> Option<&Arc<Mutex<Link>>> {
        match self {
            Role::Alone => None,
            Role::Lead(link) | Role::Follower { link, .. } => Some(link),
        }
    }

    /// Whether this node keeps the run: resumes it, writes its directory
    /// and checkpoints, evaluates and runs the hooks.
    pub fn keeps_the_run(&self) -> bool {
        !matches!(self, Role::Follower { .. })
    }

    /// This node's rank.
    pub fn node(&self) -> usize {
        match self {
            Role::Follower { node, .. } => *node,
            _ => 0,
        }
    }

    /// Where this node writes: the run directory, or beside it
    /// (`<runs_dir>/<name>.node-<rank>`) for a follower.
    pub fn run_dir(&self, config: &RunConfig) -> PathBuf {
        match self {
            Role::Follower { node, .. } => {
                config.runs_dir.join(format!("{}.node-{node}", config.name))
            }
            _ => config.run_dir(),
        }
    }

    fn locked(&self) -> Result<Option<MutexGuard<'_, Link>>> {
        self.link()
            .map(|l| l.lock().map_err(|_| anyhow!("the node link is poisoned")))
            .transpose()
    }

    /// The part of every batch this node trains on (`None`: all of it).
    pub fn shard(&self) -> Result<Option<Shard>> {
        Ok(self.locked()?.map(|link| cluster::shard(&link)))
    }

    /// Whether a batch with no decodable image is skipped here: alone, yes;
    /// with other nodes every node still takes part in the step.
    pub fn skips_empty_batches(&self) -> bool {
        matches!(self, Role::Alone)
    }

    /// Whether to stop after a step: with other nodes, when any node asked
    /// (`everywhere`, learnt in the step's all-reduce), so that all stop in
    /// the same step; alone, when this process asked (`here`).
    pub fn stops_after_step(&self, everywhere: bool, here: bool) -> bool {
        match self {
            Role::Alone => here,
            _ => everywhere,
        }
    }

    /// Node 0's weights, momentum and position to every node, before the
    /// first step.
    pub fn share_start(&self, dp: &mut DataParallel, state: &mut TrainerState) -> Result<()> {
        if let Some(link) = self.link() {
            dp.broadcast_across_nodes()?;
            cluster::share_state(link, state, false)?;
        }
        Ok(())
    }

    /// After an epoch: node 0 sends its state and whether to stop; the
    /// others take them. Returns node 0's stop (alone: `stop`).
    pub fn share_epoch_end(&self, state: &mut TrainerState, stop: bool) -> Result<bool> {
        match self.link() {
            Some(link) => cluster::share_state(link, state, stop),
            None => Ok(stop),
        }
    }
}
