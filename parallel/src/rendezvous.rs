//! Several machines, one run: the rendezvous that joins one process per node
//! over TCP, and the link it leaves open between them.
//!
//! Node 0 listens on `host:port`; every other node connects (retrying until
//! the time-out, since nodes start in any order) and says who it is: its
//! rank, the node count it was started with, its replica count, whether it
//! trains on GPUs, and a fingerprint of everything that must agree (model,
//! optimizer, schedule, batch, seed, the data sets' sizes and classes).
//! Node 0 checks them all and answers every node with the replica counts of
//! all nodes and, for GPU runs, NCCL's unique id, so that every GPU of every
//! node joins one NCCL clique. A node that does not fit is refused with the
//! reason, and every node stops with that message.
//!
//! The connections stay open as the [`Link`]: node 0 is the hub of a star.
//! Over it go the step's scalars (loss, image count, a stop request), the
//! gradients of CPU nodes (summed at node 0 in node order: deterministic),
//! and node 0's broadcasts (the starting weights and trainer state, the state
//! after each epoch). Messages are length-prefixed frames with a tag.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{fail, EngineError, Result, ResultExt};

/// How this process joins a multi-node run.
#[derive(Debug, Clone, PartialEq)]
pub struct RendezvousConfig {
    /// Nodes (processes) in the run.
    pub nodes: usize,
    /// This node's rank, 0-based; node 0 is the hub and writes the run.
    pub node_rank: usize,
    /// `host:port` of node 0 (node 0 listens there).
    pub address: String,
    /// How long to wait for all nodes.
    pub timeout: Duration,
}

/// What a node says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its rank.
    pub node_rank: usize,
    /// The node count it was started with.
    pub nodes: usize,
    /// Its replicas (devices).
    pub replicas: usize,
    /// Whether they are GPUs.
    pub gpu: bool,
    /// Fingerprint of what must agree across nodes.
    pub fingerprint: u64,
}

const MAGIC: &[u8; 8] = b"ZFTRAIN1";
const HELLO: u32 = 1;
const WELCOME: u32 = 2;
const REFUSE: u32 = 3;
const F32: u32 = 4;
const F64: u32 = 5;
const BLOB: u32 = 6;

/// Largest frame accepted (a whole network's gradients fit many times).
const MAX_FRAME: u64 = 16 << 30;

fn write_frame(s: &mut TcpStream, tag: u32, body: &[u8]) -> std::io::Result<()> {
    let mut head = [0u8; 12];
    head[..4].copy_from_slice(&tag.to_le_bytes());
    head[4..].copy_from_slice(&(body.len() as u64).to_le_bytes());
    s.write_all(&head)?;
    s.write_all(body)?;
    s.flush()
}

fn read_frame(s: &mut TcpStream) -> Result<(u32, Vec<u8>)> {
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let tag = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(head[4..].try_into().expect("8 bytes"));
    if len > MAX_FRAME {
        fail!(
            Link,
            "a frame of {len} bytes (more than {MAX_FRAME}): not a zftrain peer?"
        );
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    Ok((tag, body))
}

fn expect_frame(s: &mut TcpStream, want: u32, from: &str) -> Result<Vec<u8>> {
    let (tag, body) = read_frame(s).with_context(|| format!("reading from {from}"))?;
    if tag == REFUSE {
        fail!(
            Link,
            "{from} stopped the run: {}",
            String::from_utf8_lossy(&body)
        );
    }
    if tag != want {
        fail!(
            Link,
            "{from} sent message {tag} where {want} was expected: the nodes are out of step"
        );
    }
    Ok(body)
}

fn u64_at(b: &[u8], i: usize) -> Result<u64> {
    b.get(i * 8..i * 8 + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or_else(|| EngineError::Link("a message too short".into()))
}

impl NodeInfo {
    fn encode(&self) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        for v in [
            self.node_rank as u64,
            self.nodes as u64,
            self.replicas as u64,
            self.gpu as u64,
            self.fingerprint,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    fn decode(b: &[u8]) -> Result<NodeInfo> {
        if b.len() < 8 || &b[..8] != MAGIC {
            fail!(Link, "not a zftrain node (or another version of zftrain)");
        }
        let b = &b[8..];
        Ok(NodeInfo {
            node_rank: u64_at(b, 0)? as usize,
            nodes: u64_at(b, 1)? as usize,
            replicas: u64_at(b, 2)? as usize,
            gpu: u64_at(b, 3)? != 0,
            fingerprint: u64_at(b, 4)?,
        })
    }
}

/// The open connections of a multi-node run.
pub struct Link {
    /// This node's rank.
    pub node_rank: usize,
    /// Replicas of every node, in rank order.
    pub replicas: Vec<usize>,
    /// NCCL's unique id (GPU runs).
    pub nccl_id: Option<[u8; 128]>,
    /// Node 0: the streams of nodes 1.. in rank order. Others: node 0's.
    streams: Vec<TcpStream>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("node_rank", &self.node_rank)
            .field("replicas", &self.replicas)
            .finish()
    }
}

/// A 64-bit FNV-1a hash: the fingerprint of what must agree across nodes
/// (stable across builds, unlike the standard library's hasher).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Joins the run: node 0 waits for the others, the others connect to node
/// 0. `nccl_id` is called on node 0 of a GPU run to make NCCL's id.
pub fn rendezvous(
    config: &RendezvousConfig,
    me: NodeInfo,
    nccl_id: impl FnOnce() -> Result<[u8; 128]>,
) -> Result<Link> {
    if config.nodes < 2 {
        fail!(
            Link,
            "a rendezvous needs two or more nodes (--nodes {})",
            config.nodes
        );
    }
    if config.node_rank >= config.nodes {
        fail!(
            Link,
            "--node-rank {} is out of range for --nodes {} (ranks 0 to {})",
            config.node_rank,
            config.nodes,
            config.nodes - 1
        );
    }
    let deadline = Instant::now() + config.timeout;
    if config.node_rank == 0 {
        hub(config, me, deadline, nccl_id)
    } else {
        spoke(config, me, deadline)
    }
}

fn hub(
    config: &RendezvousConfig,
    me: NodeInfo,
    deadline: Instant,
    nccl_id: impl FnOnce() -> Result<[u8; 128]>,
) -> Result<Link> {
    let listener = TcpListener::bind(&config.address)
        .with_context(|| format!("node 0 cannot listen on --rendezvous {}", config.address))?;
    listener.set_nonblocking(true)?;
    let mut joined: Vec<Option<(TcpStream, NodeInfo)>> = (0..config.nodes).map(|_| None).collect();
    let mut refusal: Option<String> = None;
    while joined.iter().skip(1).any(Option::is_none) && refusal.is_none() {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                let info = match read_greeting(&mut stream) {
                    Ok(info) => info,
                    Err(e) => {
                        eprintln!("zftrain: ignoring a connection from {peer}: {e:#}");
                        continue;
                    }
                };
                let why = refusal_of(&info, config, &me, &joined, peer);
                match why {
                    Some(w) => {
                        let _ = write_frame(&mut stream, REFUSE, w.as_bytes());
                        refusal = Some(w);
                    }
                    None => {
                        let rank = info.node_rank;
                        joined[rank] = Some((stream, info));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    let missing: Vec<String> = joined
                        .iter()
                        .enumerate()
                        .skip(1)
                        .filter(|(_, j)| j.is_none())
                        .map(|(r, _)| r.to_string())
                        .collect();
                    refusal = Some(format!(
                        "node(s) {} did not join at {} within {} s",
                        missing.join(", "),
                        config.address,
                        config.timeout.as_secs()
                    ));
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context("accepting nodes"),
        }
    }
    if let Some(why) = refusal {
        for (s, _) in joined.iter_mut().flatten() {
            let _ = write_frame(s, REFUSE, why.as_bytes());
        }
        fail!(Link, "the rendezvous failed: {why}");
    }
    let id = if me.gpu { Some(nccl_id()?) } else { None };
    let mut replicas = vec![me.replicas];
    let mut streams = Vec::new();
    for (s, info) in joined.into_iter().skip(1).flatten() {
        replicas.push(info.replicas);
        streams.push(s);
    }
    welcome(&mut streams, &replicas, id.as_ref())?;
    Ok(Link {
        node_rank: 0,
        replicas,
        nccl_id: id,
        streams,
    })
}

/// Why node 0 refuses a greeting `info` from `peer`, given who has joined;
/// `None` when the node may join.
fn refusal_of(
    info: &NodeInfo,
    config: &RendezvousConfig,
    me: &NodeInfo,
    joined: &[Option<(TcpStream, NodeInfo)>],
    peer: std::net::SocketAddr,
) -> Option<String> {
    if info.nodes != config.nodes {
        Some(format!(
            "node {} was started with --nodes {}, node 0 with --nodes {}",
            info.node_rank, info.nodes, config.nodes
        ))
    } else if info.node_rank == 0 || info.node_rank >= config.nodes {
        Some(format!("a node at {peer} claims rank {}", info.node_rank))
    } else if joined[info.node_rank].is_some() {
        Some(format!(
            "two nodes claim rank {} (the second from {peer})",
            info.node_rank
        ))
    } else if info.gpu != me.gpu {
        Some(format!(
            "node {} trains on {}, node 0 on {}",
            info.node_rank,
            if info.gpu { "GPUs" } else { "the CPU" },
            if me.gpu { "GPUs" } else { "the CPU" }
        ))
    } else if info.fingerprint != me.fingerprint {
        Some(format!(
            "node {}'s configuration or data differs from node 0's (model, optimizer, schedule, batch, seed, data set sizes and classes must agree; fingerprints {:016x} and {:016x})",
            info.node_rank, info.fingerprint, me.fingerprint
        ))
    } else {
        None
    }
}

/// The HELLO a connecting node sends first.
fn read_greeting(stream: &mut TcpStream) -> Result<NodeInfo> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let (tag, body) = read_frame(stream)?;
    if tag != HELLO {
        fail!(Link, "message {tag} instead of a greeting");
    }
    NodeInfo::decode(&body)
}

/// Sends every joined node the run's replicas per node and NCCL's id.
fn welcome(streams: &mut [TcpStream], replicas: &[usize], id: Option<&[u8; 128]>) -> Result<()> {
    let mut welcome = Vec::new();
    welcome.extend_from_slice(&(replicas.len() as u64).to_le_bytes());
    for r in replicas {
        welcome.extend_from_slice(&(*r as u64).to_le_bytes());
    }
    welcome.extend_from_slice(id.map_or(&[0u8; 128][..], |i| &i[..]));
    for s in streams {
        write_frame(s, WELCOME, &welcome).context("welcoming a node")?;
        s.set_read_timeout(None)?;
    }
    Ok(())
}

fn spoke(config: &RendezvousConfig, me: NodeInfo, deadline: Instant) -> Result<Link> {
    let addrs: Vec<_> = config
        .address
        .to_socket_addrs()
        .with_context(|| format!("--rendezvous {}: not a host:port", config.address))?
        .collect();
    let mut stream = loop {
        let attempt = addrs
            .iter()
            .find_map(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).ok());
        if let Some(s) = attempt {
            break s;
        }
        if Instant::now() > deadline {
            fail!(Link,
                "node {} could not reach node 0 at {} within {} s (is node 0 started, and the port open?)",
                me.node_rank,
                config.address,
                config.timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    stream.set_nodelay(true)?;
    write_frame(&mut stream, HELLO, &me.encode()).context("greeting node 0")?;
    let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(30);
    stream.set_read_timeout(Some(wait))?;
    let body = expect_frame(&mut stream, WELCOME, "node 0")?;
    stream.set_read_timeout(None)?;
    let n = u64_at(&body, 0)? as usize;
    if n != config.nodes {
        fail!(
            Link,
            "node 0 runs {n} nodes, this one was started with --nodes {}",
            config.nodes
        );
    }
    let replicas = (0..n)
        .map(|i| u64_at(&body, 1 + i).map(|v| v as usize))
        .collect::<Result<Vec<_>>>()?;
    let id_bytes = body
        .get((1 + n) * 8..(1 + n) * 8 + 128)
        .ok_or_else(|| EngineError::Link("node 0's answer is too short".into()))?;
    let nccl_id = me.gpu.then(|| {
        let mut id = [0u8; 128];
        id.copy_from_slice(id_bytes);
        id
    });
    Ok(Link {
        node_rank: me.node_rank,
        replicas,
        nccl_id,
        streams: vec![stream],
    })
}

fn node_name(rank: usize) -> String {
    format!("node {rank}")
}

impl Link {
    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.replicas.len()
    }

    /// Replicas before this node's (its replicas' global offset).
    pub fn first_replica(&self) -> usize {
        self.replicas[..self.node_rank].iter().sum()
    }

    /// Replicas of all nodes.
    pub fn world_replicas(&self) -> usize {
        self.replicas.iter().sum()
    }

    /// Sums `values` over all nodes (node 0 adds in node order and sends
    /// the sum back, so every node holds the same bits).
    fn all_reduce<T: Copy + std::ops::AddAssign>(
        &mut self,
        values: &mut [T],
        tag: u32,
        to_bytes: fn(&[T]) -> Vec<u8>,
        from_bytes: fn(&[u8]) -> Vec<T>,
    ) -> Result<()> {
        if self.node_rank == 0 {
            for (i, s) in self.streams.iter_mut().enumerate() {
                let body = expect_frame(s, tag, &node_name(i + 1))?;
                let theirs = from_bytes(&body);
                if theirs.len() != values.len() {
                    fail!(
                        Link,
                        "node {} sent {} values where {} were expected: the nodes are out of step",
                        i + 1,
                        theirs.len(),
                        values.len()
                    );
                }
                for (v, t) in values.iter_mut().zip(theirs) {
                    *v += t;
                }
            }
            let out = to_bytes(values);
            for (i, s) in self.streams.iter_mut().enumerate() {
                write_frame(s, tag, &out).with_context(|| format!("sending to node {}", i + 1))?;
            }
        } else {
            let s = &mut self.streams[0];
            write_frame(s, tag, &to_bytes(values)).context("sending to node 0")?;
            let body = expect_frame(s, tag, "node 0")?;
            let sum = from_bytes(&body);
            if sum.len() != values.len() {
                fail!(
                    Link,
                    "node 0 sent {} values where {} were expected",
                    sum.len(),
                    values.len()
                );
            }
            values.copy_from_slice(&sum);
        }
        Ok(())
    }

    /// Sums `values` over all nodes, in place.
    pub fn all_reduce_f32(&mut self, values: &mut [f32]) -> Result<()> {
        self.all_reduce(
            values,
            F32,
            |v| v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            |b| {
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect()
            },
        )
    }

    /// Sums `values` over all nodes, in place.
    pub fn all_reduce_f64(&mut self, values: &mut [f64]) -> Result<()> {
        self.all_reduce(
            values,
            F64,
            |v| v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            |b| {
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect()
            },
        )
    }

    /// Node 0 sends `blob` to every node; every node returns node 0's blob
    /// (`blob` is ignored on the others).
    pub fn broadcast(&mut self, blob: &[u8]) -> Result<Vec<u8>> {
        if self.node_rank == 0 {
            for (i, s) in self.streams.iter_mut().enumerate() {
                write_frame(s, BLOB, blob).with_context(|| format!("sending to node {}", i + 1))?;
            }
            Ok(blob.to_vec())
        } else {
            expect_frame(&mut self.streams[0], BLOB, "node 0")
        }
    }

    /// Tells the other nodes this one stops with an error (best effort).
    pub fn abort(&mut self, why: &str) {
        for s in &mut self.streams {
            let _ = write_frame(s, REFUSE, why.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_address() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    }

    fn info(rank: usize, nodes: usize, fingerprint: u64) -> NodeInfo {
        NodeInfo {
            node_rank: rank,
            nodes,
            replicas: rank + 1,
            gpu: false,
            fingerprint,
        }
    }

    fn config(address: &str, nodes: usize, rank: usize) -> RendezvousConfig {
        RendezvousConfig {
            nodes,
            node_rank: rank,
            address: address.into(),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn three_nodes_join_reduce_in_order_and_broadcast() {
        let address = free_address();
        let handles: Vec<_> = (0..3)
            .rev() // node 0 starts last: the others retry
            .map(|rank| {
                let address = address.clone();
                std::thread::spawn(move || {
                    let mut link = rendezvous(
                        &config(&address, 3, rank),
                        info(rank, 3, 7),
                        || unreachable!(),
                    )
                    .unwrap();
                    assert_eq!(link.replicas, vec![1, 2, 3]);
                    assert_eq!(link.first_replica(), [0, 1, 3][rank]);
                    let mut v = vec![rank as f32, 1.0];
                    link.all_reduce_f32(&mut v).unwrap();
                    let mut w = vec![0.1 * rank as f64];
                    link.all_reduce_f64(&mut w).unwrap();
                    let b = link.broadcast(format!("from {rank}").as_bytes()).unwrap();
                    (v, w, String::from_utf8(b).unwrap())
                })
            })
            .collect();
        for h in handles {
            let (v, w, b) = h.join().unwrap();
            assert_eq!(v, vec![3.0, 3.0]);
            assert_eq!(w, vec![0.0 + 0.1 + 0.2]);
            assert_eq!(b, "from 0");
        }
    }

    #[test]
    fn a_node_with_another_configuration_stops_every_node_with_the_reason() {
        let address = free_address();
        let a = address.clone();
        let hub = std::thread::spawn(move || {
            rendezvous(&config(&a, 2, 0), info(0, 2, 1), || unreachable!())
        });
        let spoke = rendezvous(&config(&address, 2, 1), info(1, 2, 2), || unreachable!());
        let e0 = hub.join().unwrap().unwrap_err().to_string();
        let e1 = spoke.unwrap_err().to_string();
        for e in [e0, e1] {
            assert!(e.contains("node 1's configuration or data differs"), "{e}");
        }
    }

    #[test]
    fn a_missing_node_and_bad_ranks_are_named() {
        let address = free_address();
        let mut c = config(&address, 3, 0);
        c.timeout = Duration::from_millis(300);
        let a = address.clone();
        let spoke = std::thread::spawn(move || {
            rendezvous(&config(&a, 3, 2), info(2, 3, 5), || unreachable!())
        });
        let e = rendezvous(&c, info(0, 3, 5), || unreachable!())
            .unwrap_err()
            .to_string();
        assert!(e.contains("node(s) 1 did not join"), "{e}");
        let e2 = spoke.join().unwrap().unwrap_err().to_string();
        assert!(e2.contains("node(s) 1 did not join"), "{e2}");
        let e = rendezvous(&config(&address, 2, 2), info(2, 2, 5), || unreachable!())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--node-rank 2 is out of range for --nodes 2"),
            "{e}"
        );
    }

    #[test]
    fn gpu_runs_share_the_nccl_id_of_node_0() {
        let address = free_address();
        let a = address.clone();
        let gpu = |rank| NodeInfo {
            gpu: true,
            ..info(rank, 2, 9)
        };
        let hub =
            std::thread::spawn(move || rendezvous(&config(&a, 2, 0), gpu(0), || Ok([42u8; 128])));
        let spoke = rendezvous(&config(&address, 2, 1), gpu(1), || unreachable!()).unwrap();
        assert_eq!(spoke.nccl_id, Some([42u8; 128]));
        assert_eq!(hub.join().unwrap().unwrap().nccl_id, Some([42u8; 128]));
    }
}
