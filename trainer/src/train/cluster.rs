//! The trainer's side of a multi-node run (`[cluster]`, `--nodes`,
//! `--node-rank`, `--rendezvous`): joining the other nodes, the gradient
//! reducer that spans them, and node 0's state after each epoch.
//!
//! Node 0 is the lead: it writes the run directory, the checkpoints and the
//! TensorBoard history, evaluates and runs the hooks; every node trains on
//! its own rows of each global batch (its loader decodes only those). The
//! other nodes keep a log directory of their own beside the run
//! (`<runs_dir>/<name>.node-<rank>`), with their training scalars.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use tch::Device;
use zftrain_data::loader::Shard;
use zftrain_data::Dataset;

use crate::config::ClusterConfig;
use crate::config::RunConfig;
use crate::train::state::TrainerState;
use zftrain_parallel::auth::Token;
use zftrain_parallel::rendezvous::{fingerprint, rendezvous, Link, NodeInfo, RendezvousConfig};
use zftrain_parallel::{reducer_for, GradReducer, LinkReducer, Nccl, NcclReducer, NcclWatch};

/// The fingerprint of what every node must agree on: the run's shared
/// configuration (less each node's machine settings: [`RunConfig::shared`](crate::config::RunConfig::shared)),
/// and the data sets' sizes and class names.
pub fn run_fingerprint(config: &RunConfig, train: &Dataset, val: &Dataset) -> Result<u64> {
    let mut bytes = serde_json::to_vec(&config.shared())?;
    for d in [train, val] {
        bytes.extend_from_slice(&(d.samples.len() as u64).to_le_bytes());
        for class in &d.classes {
            bytes.extend_from_slice(class.as_bytes());
            bytes.push(0);
        }
    }
    Ok(fingerprint(&bytes))
}

/// The variable that holds the cluster token.
pub const TOKEN_VAR: &str = "ZFTRAIN_CLUSTER_TOKEN";

/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 4096;

/// The cluster token: `ZFTRAIN_CLUSTER_TOKEN`, else `cluster.token_file`,
/// else (only with `cluster.insecure`) none; a run over several nodes
/// without one is refused, saying how to give one.
pub fn token(c: &ClusterConfig) -> Result<Token> {
    if let Some(t) = std::env::var_os(TOKEN_VAR) {
        let t = Token::new(t.as_encoded_bytes());
        if t.is_empty() {
            anyhow::bail!("{TOKEN_VAR} is set but empty");
        }
        return Ok(t);
    }
    if let Some(path) = &c.token_file {
        let f = std::fs::File::open(path)
            .with_context(|| format!("cluster.token_file {}", path.display()))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_TOKEN_FILE + 1), &mut bytes)
            .with_context(|| format!("reading cluster.token_file {}", path.display()))?;
        if bytes.len() as u64 > MAX_TOKEN_FILE {
            anyhow::bail!(
                "cluster.token_file {} is over {MAX_TOKEN_FILE} bytes: is it the token?",
                path.display()
            );
        }
        let t = Token::new(&bytes);
        if t.is_empty() {
            anyhow::bail!("cluster.token_file {} is empty", path.display());
        }
        return Ok(t);
    }
    if c.insecure {
        return Ok(Token::insecure());
    }
    anyhow::bail!(
        "a run over {} nodes needs a cluster token, the same secret on every node: set {TOKEN_VAR} (or cluster.token_file) to it, e.g. {TOKEN_VAR}=$(openssl rand -hex 32); or pass --insecure-cluster on a network where nobody else can reach port {}",
        c.nodes,
        c.rendezvous.rsplit(':').next().unwrap_or("")
    )
}

/// Joins the other nodes (a no-op for one node).
pub fn join(
    config: &RunConfig,
    devices: &[Device],
    train: &Dataset,
    val: &Dataset,
) -> Result<Option<Arc<Mutex<Link>>>> {
    let c = &config.cluster;
    if c.nodes <= 1 {
        return Ok(None);
    }
    let me = NodeInfo {
        node_rank: c.node_rank,
        nodes: c.nodes,
        replicas: devices.len(),
        gpu: devices.iter().any(|d| d.is_cuda()),
        fingerprint: run_fingerprint(config, train, val)?,
    };
    let rv = RendezvousConfig {
        nodes: c.nodes,
        node_rank: c.node_rank,
        address: c.rendezvous.clone(),
        timeout: Duration::from_secs(c.timeout_s),
        token: token(c)?,
    };
    eprintln!(
        "zftrain: node {} of {}: joining the run at {} (waiting up to {} s)",
        c.node_rank, c.nodes, c.rendezvous, c.timeout_s
    );
    let link = rendezvous(&rv, me, || Ok(Nccl::open()?.unique_id()?.internal))?;
    if link.world_replicas() > config.train.batch_size {
        anyhow::bail!(
            "the run has {} replicas over {} nodes but train.batch_size is {}: at least one image per replica",
            link.world_replicas(),
            link.nodes(),
            config.train.batch_size
        );
    }
    eprintln!(
        "zftrain: node {} joined: replicas per node {:?}",
        c.node_rank, link.replicas
    );
    Ok(Some(Arc::new(Mutex::new(link))))
}

/// The part of every batch this node trains on.
pub fn shard(link: &Link) -> Shard {
    Shard {
        first: link.first_replica(),
        count: link.replicas[link.node_rank],
        of: link.world_replicas(),
    }
}

/// The gradient reducer: across nodes through NCCL (GPUs, one clique of all
/// nodes' devices) or through the link (CPUs); within one node as
/// `train.reducer` says.
pub fn reducer(
    config: &RunConfig,
    link: Option<&Arc<Mutex<Link>>>,
    devices: &[Device],
) -> Result<Box<dyn GradReducer>> {
    let watch = NcclWatch {
        node: config.cluster.node_rank,
        timeout: Duration::from_secs(config.cluster.timeout_s),
    };
    let Some(link) = link else {
        return Ok(reducer_for(devices, config.train.reducer, watch)?);
    };
    let guard = link
        .lock()
        .map_err(|_| anyhow!("the node link is poisoned"))?;
    if let Some(id) = guard.nccl_id {
        let gpus = crate::devices::cuda_indices(devices);
        let nccl = Nccl::open()?;
        let reducer = NcclReducer::joined(
            nccl,
            zftrain_parallel::nccl::UniqueId { internal: id },
            &gpus,
            guard.first_replica(),
            guard.world_replicas(),
            watch,
        )
        .context("joining the NCCL clique of all nodes")?;
        return Ok(Box::new(reducer));
    }
    Ok(Box::new(LinkReducer {
        link: Arc::clone(link),
    }))
}

/// What node 0 tells the others after each epoch (and at the start).
#[derive(Debug, Serialize, Deserialize)]
struct EpochNews {
    state: TrainerState,
    stop: bool,
}

/// Node 0's trainer state (and whether to stop) to every node; returns
/// node 0's stop.
pub fn share_state(link: &Arc<Mutex<Link>>, state: &mut TrainerState, stop: bool) -> Result<bool> {
    let news = EpochNews {
        state: state.clone(),
        stop,
    };
    let bytes = link
        .lock()
        .map_err(|_| anyhow!("the node link is poisoned"))?
        .broadcast(&serde_json::to_vec(&news)?)?;
    let news: EpochNews = serde_json::from_slice(&bytes).context("node 0's trainer state")?;
    *state = news.state;
    Ok(news.stop)
}
