//! Multi-node runs with real processes on loopback: two `zftrain train`
//! processes joined by the rendezvous train the model one process trains at
//! the same global batch (dropout on), the run resumes on one node, nodes
//! that disagree are refused with the reason, a cluster needs its token, and
//! a stopped node is noticed in time with node 0 checkpointing; PyTorch's
//! own `torchrun` launches the nodes with no zftrain-specific flags.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{ok, s};
use crate::train::{quick, tiny_data, weights_of};

fn free_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn node(args: &[String], nodes: usize, rank: usize, address: &str) -> Child {
    node_with(args, nodes, rank, address, 60)
}

/// A node with the cluster token in its environment and `timeout_s`.
fn node_with(args: &[String], nodes: usize, rank: usize, address: &str, timeout_s: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .env("ZFTRAIN_CLUSTER_TOKEN", "e2e cluster secret")
        .args(args)
        .args([
            "--nodes",
            &nodes.to_string(),
            "--node-rank",
            &rank.to_string(),
        ])
        .args(["--rendezvous", address, "--set"])
        .arg(format!("cluster.timeout_s={timeout_s}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for every node; returns (success, stdout, stderr) per node.
fn wait_all(children: Vec<Child>) -> Vec<(bool, String, String)> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .collect()
}

fn assert_same_weights(a: &Path, b: &Path) {
    let (a, b) = (weights_of(a), weights_of(b));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        let scale = x.abs().max().double_value(&[]).max(1e-12);
        let err = (x - y).abs().max().double_value(&[]) / scale;
        assert!(err < 1e-5, "{name}: relative difference {err}");
    }
}

/// Trains the reference run `single` for `epochs` in one process (fp32, so
/// that the nodes' sums compare at 1e-5) and returns the arguments of run
/// `name` for the nodes: one epoch, the same settings.
fn single_run_and_node_args(dir: &Path, epochs: &str, name: &str) -> Vec<String> {
    let data = tiny_data(dir);
    let fp32 = ["--set", "train.precision=\"fp32\""].map(String::from);
    let mut single = quick(dir, &data, "single", "zfnet-seed", epochs);
    single.extend(fp32.clone());
    ok(&single.iter().map(String::as_str).collect::<Vec<_>>());
    let mut multi = quick(dir, &data, name, "zfnet-seed", "1");
    multi.extend(fp32);
    multi
}

#[test]
fn two_nodes_train_what_one_process_trains_and_the_run_resumes_on_one_node() {
    let dir = tempfile::tempdir().unwrap();
    // One process, one replica, two epochs; dropout on (the default 0.5).
    // Two nodes (rows 0-1 and 2 of each batch of 3) for the first epoch...
    let multi = single_run_and_node_args(dir.path(), "2", "multi");
    let address = free_address();
    let results = wait_all(vec![
        node(&multi, 2, 1, &address),
        node(&multi, 2, 0, &address),
    ]);
    for (i, (success, out, err)) in results.iter().enumerate() {
        assert!(success, "node {}:\n{out}\n{err}", 1 - i);
    }
    let (_, lead_out, _) = &results[1];
    assert!(lead_out.contains("epoch 1/1: train loss"), "{lead_out}");
    let runs = dir.path().join("runs");
    assert!(runs.join("multi/checkpoints/latest/manifest.json").exists());
    // Node 1 keeps only a log beside the run: no checkpoints.
    assert!(runs.join("multi.node-1/train.log").exists());
    assert!(!runs.join("multi.node-1/checkpoints").exists());
    assert!(
        results[0].1.contains("node 1: epoch 1/1"),
        "{}",
        results[0].1
    );

    // ... and the second on one node.
    ok(&[
        "train",
        "--resume",
        s(&runs.join("multi")),
        "--epochs",
        "2",
        "--nodes",
        "1",
    ]);
    assert_same_weights(&runs.join("single"), &runs.join("multi"));
}

#[test]
fn nodes_that_disagree_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let base = quick(dir.path(), &data, "a", "zfnet-seed", "1");
    let mut other = quick(dir.path(), &data, "b", "zfnet-seed", "1");
    other.extend(["--lr".to_string(), "0.5".to_string()]);
    let address = free_address();
    let results = wait_all(vec![
        node(&base, 2, 0, &address),
        node(&other, 2, 1, &address),
    ]);
    for (success, out, err) in &results {
        assert!(!success, "{out}");
        assert!(
            err.contains("node 1's configuration or data differs"),
            "{err}"
        );
    }
    assert!(
        !dir.path().join("runs/a").exists(),
        "nothing written on a refusal"
    );
    // A rank out of range is a configuration error before any network.
    let mut bad = base.clone();
    bad.extend(["--nodes", "2", "--node-rank", "2"].map(String::from));
    let err = crate::common::fails(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("cluster.node_rank") && err.contains("below cluster.nodes (2)"),
        "{err}"
    );
}

/// Run `name` on two nodes (50 epochs of the tiny data, node 1 started
/// first) with `timeout_s`; returns (node 0, node 1) once node 1 has logged
/// a step.
fn two_training_nodes(dir: &Path, name: &str, timeout_s: u64) -> (Child, Child) {
    let data = tiny_data(dir);
    let mut args = quick(dir, &data, name, "zfnet-seed", "50");
    args.extend(["--set", "train.max_steps_per_epoch=0"].map(String::from));
    let address = free_address();
    let mut second = node_with(&args, 2, 1, &address, timeout_s);
    let lead = node_with(&args, 2, 0, &address, timeout_s);
    let log = dir.join("runs").join(format!("{name}.node-1"));
    crate::faults::wait_for_step(&log, &mut second);
    (lead, second)
}

#[test]
fn a_signal_on_any_node_stops_every_node_and_node_0_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (lead, second) = two_training_nodes(dir.path(), "sig", 60);
    let runs = dir.path().join("runs");
    crate::faults::signal(&second, "-TERM");
    let results = wait_all(vec![lead, second]);
    let (lead_ok, lead_out, lead_err) = &results[0];
    assert!(
        !lead_ok && lead_out.contains("interrupted: wrote"),
        "{lead_out}\n{lead_err}"
    );
    assert!(
        !results[1].0,
        "node 1 exits as interrupted: {}",
        results[1].2
    );
    let latest = runs.join("sig/checkpoints/latest/manifest.json");
    assert!(latest.exists(), "node 0 wrote a checkpoint");
}

#[test]
fn a_cluster_without_a_token_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let mut args = quick(dir.path(), &data, "tokenless", "zfnet-seed", "1");
    args.extend(["--nodes", "2", "--node-rank", "0"].map(String::from));
    let out = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .env_remove("ZFTRAIN_CLUSTER_TOKEN")
        .args(&args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("needs a cluster token") && err.contains("ZFTRAIN_CLUSTER_TOKEN"),
        "{err}"
    );
    assert!(err.contains("--insecure-cluster"), "{err}");
    assert!(!dir.path().join("runs/tokenless").exists());
    // An empty token file is named.
    let empty = dir.path().join("token");
    std::fs::write(&empty, "\n").unwrap();
    args.extend([
        "--set".to_string(),
        format!("cluster.token_file=\"{}\"", s(&empty)),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .env_remove("ZFTRAIN_CLUSTER_TOKEN")
        .args(&args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cluster.token_file") && err.contains("is empty"),
        "{err}"
    );
    // A run directory chooses no network: a saved config.toml that makes
    // the run node 0 of two, listening on every interface with a token of
    // the directory's own (or none), is not taken on --resume: the run
    // resumes alone, naming each saved setting it dropped.
    let mut single = quick(dir.path(), &data, "saved", "zfnet-seed", "1");
    single.extend(["--set", "train.max_steps_per_epoch=1"].map(String::from));
    ok(&single.iter().map(String::as_str).collect::<Vec<_>>());
    let run = dir.path().join("runs/saved");
    let planted_token = run.join("token");
    std::fs::write(&planted_token, "the attacker's token").unwrap();
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let mut config: toml::Table = saved.parse().unwrap();
    let cluster = config["cluster"].as_table_mut().unwrap();
    cluster.insert("nodes".into(), 2.into());
    cluster.insert("node_rank".into(), 0.into());
    cluster.insert("rendezvous".into(), "0.0.0.0:29911".into());
    cluster.insert("token_file".into(), s(&planted_token).into());
    cluster.insert("insecure".into(), true.into());
    cluster.insert("timeout_s".into(), 5.into());
    std::fs::write(run.join("config.toml"), config.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .env_remove("ZFTRAIN_CLUSTER_TOKEN")
        .args(["train", "--resume", s(&run), "--epochs", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for dropped in [
        "cluster.nodes = 2",
        "cluster.node_rank",
        "cluster.rendezvous = \"0.0.0.0:29911\"",
        "cluster.token_file",
        "cluster.insecure = true",
    ] {
        if dropped == "cluster.node_rank" {
            continue; // 0 is the default: nothing to drop
        }
        assert!(
            err.contains(&format!("the saved {dropped}")) && err.contains("not used on --resume"),
            "{dropped}: {err}"
        );
    }
    let resumed: toml::Table = std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(resumed["cluster"]["nodes"].as_integer(), Some(1));
    assert!(resumed["cluster"].get("token_file").is_none(), "{resumed}");
    // Given on the command line, a network setting counts: a cluster of
    // two still needs its token (the saved insecure = true is not taken).
    let out = Command::new(env!("CARGO_BIN_EXE_zftrain"))
        .env_remove("ZFTRAIN_CLUSTER_TOKEN")
        .args([
            "train",
            "--resume",
            s(&run),
            "--epochs",
            "3",
            "--nodes",
            "2",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("needs a cluster token"), "{err}");
}

#[test]
fn a_stopped_node_is_noticed_within_the_time_out_and_node_0_checkpoints_even_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (lead, mut second) = two_training_nodes(dir.path(), "stop", 15);
    let runs = dir.path().join("runs");
    crate::faults::signal(&second, "-STOP");
    // A scheduler's SIGTERM to node 0 now: it cannot finish its step with
    // node 1 stopped, and still ends within the time-out.
    crate::faults::signal(&lead, "-TERM");
    let lead = lead.wait_with_output().unwrap();
    crate::faults::signal(&second, "-KILL");
    let _ = second.wait();
    let err = String::from_utf8_lossy(&lead.stderr);
    assert!(!lead.status.success(), "{err}");
    assert!(
        err.contains("node 1 sent nothing, not even a heartbeat, for 15 s"),
        "{err}"
    );
    assert!(err.contains("a node was lost; node 0 wrote"), "{err}");
    assert!(runs.join("stop/checkpoints/latest/manifest.json").exists());
    // The checkpoint resumes on one node.
    ok(&[
        "train",
        "--resume",
        s(&runs.join("stop")),
        "--epochs",
        "1",
        "--nodes",
        "1",
        "--set",
        "train.max_steps_per_epoch=1",
    ]);
}

/// A port `p` with `p + 1` free too (torchrun's store takes `p`, node 0
/// listens on `p + 1`).
fn free_port_pair() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

#[test]
fn torchrun_launches_two_nodes_that_train_what_one_process_trains() {
    let dir = tempfile::tempdir().unwrap();
    let multi = single_run_and_node_args(dir.path(), "1", "launched");
    let torchrun = crate::common::python().with_file_name("torchrun");
    let port = free_port_pair().to_string();
    let nodes: Vec<Child> = (0..2)
        .map(|rank: usize| {
            Command::new(&torchrun)
                .env("ZFTRAIN_CLUSTER_TOKEN", "e2e cluster secret")
                .args(["--nnodes", "2", "--nproc-per-node", "1", "--node-rank"])
                .arg(rank.to_string())
                .args(["--master-addr", "127.0.0.1", "--master-port", &port])
                .args(["--no-python", env!("CARGO_BIN_EXE_zftrain")])
                .args(&multi)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let results = wait_all(nodes);
    for (rank, (success, out, err)) in results.iter().enumerate() {
        assert!(success, "torchrun node {rank}:\n{out}\n{err}");
    }
    assert!(
        results[0]
            .2
            .contains("node 0 of 2: joining the run at 127.0.0.1:"),
        "{}",
        results[0].2
    );
    let runs = dir.path().join("runs");
    assert!(runs.join("launched.node-1/train.log").exists());
    assert_same_weights(&runs.join("single"), &runs.join("launched"));
}
