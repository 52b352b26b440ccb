//! What a cluster launcher says about this process: `torchrun` and SLURM's
//! `srun` set variables naming the process's rank, the process count and
//! where rank 0 is; `zftrain train` reads them, so that
//! `torchrun --nnodes 2 --nproc-per-node 1 --no-python zftrain train ...`
//! and `srun zftrain train ...` need no `--nodes`, `--node-rank` or
//! `--rendezvous`. They become overrides under the user's own `--set` and
//! flags (which win), each named after its variable in errors.
//!
//! Under torchrun, torchrun's own agent holds a store on `MASTER_PORT` of
//! rank 0's machine, so node 0 listens on the next port, `MASTER_PORT + 1`.
//! Under SLURM (without torchrun), rank 0 is taken to run where `srun` was
//! launched (`SLURM_LAUNCH_NODE_IPADDR`, the batch script's node, which is
//! the first node of the allocation) unless `MASTER_ADDR` says otherwise;
//! the port is `MASTER_PORT`, else 29400.

use anyhow::{bail, Result};

use super::origin::Override;

/// The port node 0 listens on when nothing names one.
const DEFAULT_PORT: u16 = 29400;

/// The overrides the launcher's variables stand for (none outside a
/// launcher, or for a single process); `var` reads a variable.
pub fn overrides(var: impl Fn(&str) -> Option<String>) -> Result<Vec<Override>> {
    let number = |name: &str| -> Result<Option<usize>> {
        match var(name) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) => Ok(Some(n)),
                Err(_) => bail!("{name}={v} (set by the launcher) is not a count"),
            },
        }
    };
    let port = |launcher: &str, shift: u16| -> Result<u16> {
        match var("MASTER_PORT") {
            None => Ok(DEFAULT_PORT),
            Some(p) => match p
                .trim()
                .parse::<u16>()
                .ok()
                .and_then(|p| p.checked_add(shift))
            {
                Some(p) => Ok(p),
                None => bail!("MASTER_PORT={p} (set by {launcher}) is not a port zftrain can use"),
            },
        }
    };
    let torchrun = (number("RANK")?, number("WORLD_SIZE")?);
    let slurm = (number("SLURM_PROCID")?, number("SLURM_NTASKS")?);
    let (launcher, rank, size, rank_var, size_var) = match (torchrun, slurm) {
        ((Some(rank), Some(size)), _) => ("torchrun", rank, size, "RANK", "WORLD_SIZE"),
        (_, (Some(rank), Some(size))) => ("SLURM", rank, size, "SLURM_PROCID", "SLURM_NTASKS"),
        _ => return Ok(Vec::new()),
    };
    if size <= 1 {
        return Ok(Vec::new());
    }
    let (host, port) = if launcher == "torchrun" {
        if let Some(local) = number("LOCAL_WORLD_SIZE")? {
            if local > 1 {
                bail!("LOCAL_WORLD_SIZE={local}: zftrain runs one process per machine, which drives all of its devices (--gpus); launch it with torchrun --nproc-per-node 1");
            }
        }
        let Some(host) = var("MASTER_ADDR") else {
            bail!("RANK and WORLD_SIZE are set but MASTER_ADDR is not: where does rank 0 run?");
        };
        (host, port("torchrun", 1)?)
    } else {
        let Some(host) = var("MASTER_ADDR").or_else(|| var("SLURM_LAUNCH_NODE_IPADDR")) else {
            bail!("SLURM_PROCID and SLURM_NTASKS are set but neither MASTER_ADDR nor SLURM_LAUNCH_NODE_IPADDR: where does rank 0 run?");
        };
        (host, port("SLURM", 0)?)
    };
    let host = host.trim();
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let count = |n: usize| toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    Ok(vec![
        Override::flag(
            "cluster.nodes",
            count(size),
            format!("{size_var}={size} (set by {launcher})"),
        ),
        Override::flag(
            "cluster.node_rank",
            count(rank),
            format!("{rank_var}={rank} (set by {launcher})"),
        ),
        Override::flag(
            "cluster.rendezvous",
            address.clone(),
            format!("{address}, node 0's address from {launcher}'s variables"),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Vec<String>> {
        let vars: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(overrides(|k| vars.get(k).cloned())?
            .into_iter()
            .map(|o| format!("{}={}", o.key(), o.value().unwrap()))
            .collect())
    }

    #[test]
    fn torchrun_and_slurm_variables_become_cluster_settings() {
        let torchrun = from(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_WORLD_SIZE", "1"),
            ("MASTER_ADDR", "10.0.0.5"),
            ("MASTER_PORT", "29500"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
        ])
        .unwrap();
        assert_eq!(
            torchrun,
            [
                "cluster.nodes=2",
                "cluster.node_rank=1",
                "cluster.rendezvous=\"10.0.0.5:29501\""
            ]
        );
        let slurm = from(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_LAUNCH_NODE_IPADDR", "fe80::1"),
        ])
        .unwrap();
        assert_eq!(
            slurm,
            [
                "cluster.nodes=4",
                "cluster.node_rank=3",
                "cluster.rendezvous=\"[fe80::1]:29400\""
            ]
        );
        assert!(from(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")])
            .unwrap()
            .is_empty());
        assert!(from(&[]).unwrap().is_empty());
    }

    #[test]
    fn launcher_variables_that_cannot_be_used_are_named() {
        let e = from(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_WORLD_SIZE", "4"),
            ("MASTER_ADDR", "a"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("--nproc-per-node 1"), "{e}");
        let e = from(&[("RANK", "0"), ("WORLD_SIZE", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("MASTER_ADDR is not"), "{e}");
        let e = from(&[("RANK", "x"), ("WORLD_SIZE", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RANK=x"), "{e}");
        let e = from(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "65535"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("MASTER_PORT=65535"), "{e}");
    }
}
