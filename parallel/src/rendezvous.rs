//! Several machines, one run: the rendezvous that joins one process per node
//! over TCP, and the link it leaves open between them.
//!
//! Node 0 listens on `host:port`; every other node connects (retrying until
//! the time-out, since nodes start in any order). Each connection first
//! passes the token challenge ([`crate::auth`]): a peer without the cluster
//! token is dropped having learnt nothing, and node 0 goes on waiting. Each
//! connection is challenged on its own thread with its own deadline, so a
//! peer that trickles bytes or sends garbage delays nobody. Then the node
//! says who it is: its rank, the node count it was started with, its
//! replica count, whether it trains on GPUs, and a fingerprint of everything
//! that must agree (model, optimizer, schedule, batch, seed, the data sets'
//! sizes and classes). Node 0 checks them all (counts bounded, sums checked)
//! and answers every node with the replica counts of all nodes and, for GPU
//! runs, NCCL's unique id, so that every GPU of every node joins one NCCL
//! clique. A node that holds the token but does not fit is refused with the
//! reason, and every node stops with that message.
//!
//! The connections stay open as the [`Link`]: node 0 is the hub of a star.
//! Over it go the step's scalars (loss, image count, a stop request), the
//! gradients of CPU nodes (summed at node 0 in node order: deterministic),
//! and node 0's broadcasts (the starting weights and trainer state, the state
//! after each epoch). Messages are frames ([`crate::wire`]) with a size limit
//! and a deadline; every node sends heartbeats, so a node that stops or
//! vanishes is noticed within the time-out by every other.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::auth::{self, Token};
use crate::error::{fail, ParallelError, Result, ResultExt};
use crate::wire::{self, Conn, BLOB, F32, F64, HELLO, REFUSE, WELCOME};

/// How this process joins a multi-node run.
#[derive(Debug, Clone, PartialEq)]
pub struct RendezvousConfig {
    /// Nodes (processes) in the run.
    pub nodes: usize,
    /// This node's rank, 0-based; node 0 is the hub and writes the run.
    pub node_rank: usize,
    /// `host:port` of node 0 (node 0 listens there).
    pub address: String,
    /// How long to wait for all nodes, and how long a node may then say
    /// nothing (not even a heartbeat) before it is taken as gone.
    pub timeout: Duration,
    /// The secret every node holds ([`Token::insecure`] for none).
    pub token: Token,
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

const MAGIC: &[u8; 8] = b"ZFTRAIN2";

/// Most replicas (devices) one node may have.
pub const MAX_REPLICAS_PER_NODE: usize = 4096;

/// Largest broadcast (weights, momentum and trainer state; its buffer
/// grows only as bytes arrive).
const MAX_BLOB: u64 = 64 << 30;

/// Longest a connecting peer may take to pass the challenge and greet.
const GREETING_S: u64 = 20;

/// Connections being challenged at once; more are closed unread.
const MAX_PENDING: usize = 64;

fn u64_at(b: &[u8], i: usize) -> Result<u64> {
    b.get(i * 8..i * 8 + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or_else(|| ParallelError::Link("a message too short".into()))
}

/// A peer-supplied count as a `usize` no larger than `max`.
fn count_at(b: &[u8], i: usize, max: usize, what: &str) -> Result<usize> {
    let v = u64_at(b, i)?;
    match usize::try_from(v) {
        Ok(n) if n <= max => Ok(n),
        _ => fail!(Link, "{what} {v} is out of range (at most {max})"),
    }
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
        if b.len() != 8 + 5 * 8 || &b[..8] != MAGIC {
            fail!(Link, "not a zftrain node (or another version of zftrain)");
        }
        let b = &b[8..];
        let replicas = count_at(b, 2, MAX_REPLICAS_PER_NODE, "a replica count of")?;
        if replicas == 0 {
            fail!(Link, "a node with no replicas");
        }
        Ok(NodeInfo {
            node_rank: count_at(b, 0, usize::MAX, "rank")?,
            nodes: count_at(b, 1, usize::MAX, "a node count of")?,
            replicas,
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
    /// Node 0: the connections of nodes 1.. in rank order. Others: node 0's.
    conns: Vec<Conn>,
    /// Dropping it ends the heartbeat thread.
    _heartbeats: mpsc::Sender<()>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("node_rank", &self.node_rank)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl Link {
    fn new(
        node_rank: usize,
        replicas: Vec<usize>,
        nccl_id: Option<[u8; 128]>,
        conns: Vec<Conn>,
        silence: Duration,
    ) -> Result<Link> {
        if replicas
            .iter()
            .try_fold(0usize, |a, &r| a.checked_add(r))
            .is_none()
        {
            fail!(Link, "the nodes' replica counts overflow when summed");
        }
        let every = (silence / 4).max(Duration::from_millis(100));
        let heartbeats = wire::heartbeats(conns.iter().map(Conn::writer).collect(), every)?;
        Ok(Link {
            node_rank,
            replicas,
            nccl_id,
            conns,
            _heartbeats: heartbeats,
        })
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
    if config.timeout.is_zero() {
        fail!(Link, "the cluster time-out must be above 0 s");
    }
    let deadline = Instant::now() + config.timeout;
    if config.node_rank == 0 {
        hub(config, me, deadline, nccl_id)
    } else {
        spoke(config, me, deadline)
    }
}

/// A connection that passed the challenge and greeted.
type Greeted = (TcpStream, NodeInfo, SocketAddr);

/// Node 0's side: accepts and checks the other nodes until every rank has
/// joined (or one is refused, or the time is up), then welcomes them.
fn hub(
    config: &RendezvousConfig,
    me: NodeInfo,
    deadline: Instant,
    nccl_id: impl FnOnce() -> Result<[u8; 128]>,
) -> Result<Link> {
    let listener = TcpListener::bind(&config.address)
        .with_context(|| format!("node 0 cannot listen on --rendezvous {}", config.address))?;
    listener.set_nonblocking(true)?;
    let (greeted, arrivals) = mpsc::channel::<std::result::Result<Greeted, ()>>();
    let mut pending = 0usize;
    let mut joined: Vec<Option<(TcpStream, NodeInfo)>> = (0..config.nodes).map(|_| None).collect();
    let mut refusal: Option<String> = None;
    while joined.iter().skip(1).any(Option::is_none) && refusal.is_none() {
        let mut idle = true;
        match listener.accept() {
            Ok((stream, peer)) => {
                idle = false;
                if pending >= MAX_PENDING {
                    eprintln!("zftrain: closing a connection from {peer}: {MAX_PENDING} others are being checked");
                } else {
                    pending += 1;
                    greet(stream, peer, config, &greeted)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("accepting nodes"),
        }
        while let Ok(arrival) = arrivals.try_recv() {
            idle = false;
            pending -= 1;
            let Ok((mut stream, info, peer)) = arrival else {
                continue;
            };
            match refusal_of(&info, config, &me, &joined, peer) {
                Some(w) => {
                    let _ = wire::write_frame(&mut stream, REFUSE, w.as_bytes());
                    refusal = Some(w);
                }
                None => {
                    let rank = info.node_rank;
                    joined[rank] = Some((stream, info));
                }
            }
        }
        if refusal.is_none() && Instant::now() > deadline {
            refusal = Some(not_joined(&joined, config));
        }
        if idle {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut conns = Vec::new();
    let mut replicas = vec![me.replicas];
    for (rank, j) in joined.into_iter().enumerate().skip(1) {
        if let Some((s, info)) = j {
            replicas.push(info.replicas);
            conns.push(Conn::new(s, node_name(rank), config.timeout)?);
        }
    }
    if let Some(why) = refusal {
        for c in &conns {
            let _ = c.send(REFUSE, why.as_bytes());
        }
        fail!(Link, "the rendezvous failed: {why}");
    }
    let id = if me.gpu { Some(nccl_id()?) } else { None };
    let welcome = welcome(&replicas, id.as_ref());
    for c in &conns {
        c.send(WELCOME, &welcome).context("welcoming a node")?;
    }
    Link::new(0, replicas, id, conns, config.timeout)
}

/// Why the rendezvous failed when the time is up: the ranks that have not
/// joined.
fn not_joined(joined: &[Option<(TcpStream, NodeInfo)>], config: &RendezvousConfig) -> String {
    let missing: Vec<String> = joined
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, j)| j.is_none())
        .map(|(r, _)| r.to_string())
        .collect();
    format!(
        "node(s) {} did not join at {} within {} s",
        missing.join(", "),
        config.address,
        config.timeout.as_secs()
    )
}

/// The welcome node 0 sends every node: the replicas of each node, then
/// the NCCL unique id (zeros without GPUs).
fn welcome(replicas: &[usize], id: Option<&[u8; 128]>) -> Vec<u8> {
    let mut welcome = Vec::new();
    welcome.extend_from_slice(&(replicas.len() as u64).to_le_bytes());
    for r in replicas {
        welcome.extend_from_slice(&(*r as u64).to_le_bytes());
    }
    welcome.extend_from_slice(id.map_or(&[0u8; 128][..], |i| &i[..]));
    welcome
}

/// Challenges and reads the greeting of a new connection on a thread of
/// its own; sends the greeted connection, or `Err(())` (the reason logged),
/// to `greeted`.
fn greet(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: &RendezvousConfig,
    greeted: &mpsc::Sender<std::result::Result<Greeted, ()>>,
) -> Result<()> {
    let token = config.token.clone();
    let until = Instant::now() + config.timeout.min(Duration::from_secs(GREETING_S));
    let greeted = greeted.clone();
    std::thread::Builder::new()
        .name("zftrain-greeting".into())
        .spawn(move || {
            let checked = (|| -> Result<NodeInfo> {
                stream.set_nonblocking(false)?;
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(Duration::from_secs(GREETING_S)))?;
                auth::challenge(&mut stream, &token, until)?;
                let mut head = [0u8; 12];
                wire::read_exact_until(&mut stream, &mut head, until)?;
                let tag = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
                let len = u64::from_le_bytes(head[4..].try_into().expect("8 bytes"));
                if tag != HELLO || len != 48 {
                    fail!(Link, "message {tag} of {len} bytes instead of a greeting");
                }
                let mut body = [0u8; 48];
                wire::read_exact_until(&mut stream, &mut body, until)?;
                NodeInfo::decode(&body)
            })();
            let arrival = match checked {
                Ok(info) => Ok((stream, info, peer)),
                Err(e) => {
                    eprintln!("zftrain: ignoring a connection from {peer}: {e:#}");
                    Err(())
                }
            };
            let _ = greeted.send(arrival);
        })
        .context("starting a greeting thread")?;
    Ok(())
}

/// Why node 0 refuses a greeting `info` from `peer`, given who has joined;
/// `None` when the node may join.
fn refusal_of(
    info: &NodeInfo,
    config: &RendezvousConfig,
    me: &NodeInfo,
    joined: &[Option<(TcpStream, NodeInfo)>],
    peer: SocketAddr,
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
    let greeting_until = Instant::now() + config.timeout.min(Duration::from_secs(GREETING_S));
    stream.set_write_timeout(Some(Duration::from_secs(GREETING_S)))?;
    auth::answer(&mut stream, &config.token, greeting_until)
        .with_context(|| format!("node 0 at {}", config.address))?;
    // Node 0 answers once every node has joined: until the deadline, and
    // then some for the slowest node's greeting.
    let mut conn = Conn::new(
        stream,
        node_name(0),
        deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(GREETING_S),
    )?;
    conn.send(HELLO, &me.encode()).context("greeting node 0")?;
    let body = conn.expect(WELCOME, 8 * (1 + config.nodes as u64) + 128)?;
    let n = count_at(&body, 0, config.nodes, "node 0 runs a node count of")?;
    if n != config.nodes {
        fail!(
            Link,
            "node 0 runs {n} nodes, this one was started with --nodes {}",
            config.nodes
        );
    }
    let replicas = (0..n)
        .map(|i| count_at(&body, 1 + i, MAX_REPLICAS_PER_NODE, "a replica count of"))
        .collect::<Result<Vec<_>>>()?;
    let id_bytes = body
        .get((1 + n) * 8..(1 + n) * 8 + 128)
        .ok_or_else(|| ParallelError::Link("node 0's answer is too short".into()))?;
    let nccl_id = me.gpu.then(|| {
        let mut id = [0u8; 128];
        id.copy_from_slice(id_bytes);
        id
    });
    let conn = conn.with_silence(config.timeout);
    Link::new(me.node_rank, replicas, nccl_id, vec![conn], config.timeout)
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
        let size = std::mem::size_of_val(values) as u64;
        let want = values.len();
        let check = |got: &[T], from: &str| -> Result<()> {
            if got.len() != want {
                fail!(
                    Link,
                    "{from} sent {} values where {want} were expected: the nodes are out of step",
                    got.len()
                );
            }
            Ok(())
        };
        if self.node_rank == 0 {
            for c in &mut self.conns {
                let theirs = from_bytes(&c.expect(tag, size)?);
                check(&theirs, &c.peer)?;
                for (v, t) in values.iter_mut().zip(theirs) {
                    *v += t;
                }
            }
            let out = to_bytes(values);
            for c in &self.conns {
                c.send(tag, &out)?;
            }
        } else {
            let c = &mut self.conns[0];
            c.send(tag, &to_bytes(values))?;
            let sum = from_bytes(&c.expect(tag, size)?);
            check(&sum, "node 0")?;
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
            for c in &self.conns {
                c.send(BLOB, blob)?;
            }
            Ok(blob.to_vec())
        } else {
            self.conns[0].expect(BLOB, MAX_BLOB)
        }
    }

    /// Tells the other nodes this one stops with an error (best effort).
    pub fn abort(&mut self, why: &str) {
        for c in &self.conns {
            let _ = c.send(REFUSE, why.as_bytes());
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
            token: Token::new(b"s3cret"),
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

    use std::io::{Read, Write};

    /// Connects to `address` until it answers.
    fn connect(address: &str) -> TcpStream {
        loop {
            if let Ok(s) = TcpStream::connect(address) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What rogues do to node 0 while the real node 1 joins: none of them
    /// gets in, stops the run or delays it past their own deadline, and the
    /// reduction is the real nodes' sum.
    /// A peer that answers the challenge with garbage (`attack` 0), a
    /// huge announced length (1) or a trickle of bytes (2); what it saw.
    fn rogue(a: &str, attack: u8) -> String {
        let mut s = connect(a);
        let mut challenge = [0u8; 40];
        s.read_exact(&mut challenge).unwrap();
        let start = Instant::now();
        let mut wrote = 0usize;
        let bytes: Vec<u8> = match attack {
            0 => (0..64u8).map(|b| b.wrapping_mul(37)).collect(),
            1 => {
                let mut h = HELLO.to_le_bytes().to_vec();
                h.extend_from_slice(&(16u64 << 30).to_le_bytes());
                h.resize(64 + 12, 0xFF);
                h
            }
            _ => vec![0x55; 64],
        };
        for b in bytes {
            if s.write_all(&[b]).is_err() {
                break;
            }
            wrote += 1;
            if attack == 2 {
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        format!(
            "attack {attack}: wrote {wrote}, read {} bytes back, dropped after {:.1} s",
            rest.len(),
            start.elapsed().as_secs_f64()
        )
    }

    #[test]
    fn rogues_without_the_token_are_dropped_and_the_real_nodes_train() {
        let address = free_address();
        let a = address.clone();
        let hub = std::thread::spawn(move || {
            let mut c = config(&a, 2, 0);
            c.timeout = Duration::from_secs(4);
            let mut link = rendezvous(&c, info(0, 2, 7), || unreachable!())?;
            let mut v = vec![1.0f32, 2.0];
            link.all_reduce_f32(&mut v)?;
            Ok::<_, ParallelError>(v)
        });
        let mut rogues: Vec<std::thread::JoinHandle<String>> = Vec::new();
        // A wrong token: refused at the challenge, told nothing.
        let a = address.clone();
        rogues.push(std::thread::spawn(move || {
            let mut c = config(&a, 2, 1);
            c.token = Token::new(b"guess");
            rendezvous(&c, info(1, 2, 7), || unreachable!())
                .unwrap_err()
                .to_string()
        }));
        // Garbage, a huge announced length, and a trickle of bytes.
        for attack in 0..3 {
            let a = address.clone();
            rogues.push(std::thread::spawn(move || rogue(&a, attack)));
        }
        // The real node 1, a little later.
        std::thread::sleep(Duration::from_millis(200));
        let a = address.clone();
        let real = std::thread::spawn(move || {
            let mut c = config(&a, 2, 1);
            c.timeout = Duration::from_secs(4);
            let mut link = rendezvous(&c, info(1, 2, 7), || unreachable!())?;
            let mut v = vec![10.0f32, 20.0];
            link.all_reduce_f32(&mut v)?;
            Ok::<_, ParallelError>(v)
        });
        assert_eq!(hub.join().unwrap().unwrap(), vec![11.0, 22.0]);
        assert_eq!(real.join().unwrap().unwrap(), vec![11.0, 22.0]);
        let wrong = rogues.remove(0).join().unwrap();
        assert!(wrong.contains("cluster token"), "{wrong}");
        for r in rogues {
            let said = r.join().unwrap();
            // Node 0 sent nothing past its challenge (the 32-byte proof
            // goes only to a peer that passed) and closed the connection
            // within its greeting deadline (4 s here).
            assert!(said.contains("read 0 bytes back"), "{said}");
            let secs: f64 = said
                .rsplit("after ")
                .next()
                .unwrap()
                .trim_end_matches(" s")
                .parse()
                .unwrap();
            assert!(secs < 30.0, "{said}");
        }
    }

    #[test]
    fn a_node_with_the_token_but_impossible_counts_is_dropped_and_node_0_waits_on() {
        let address = free_address();
        let a = address.clone();
        let hub = std::thread::spawn(move || {
            let mut c = config(&a, 2, 0);
            c.timeout = Duration::from_secs(3);
            rendezvous(&c, info(0, 2, 7), || unreachable!())
        });
        // Both pass the challenge; one claims 2^64 - 1 replicas, the other
        // announces a 16 GiB greeting.
        for huge_frame in [false, true] {
            let mut s = connect(&address);
            auth::answer(
                &mut s,
                &Token::new(b"s3cret"),
                Instant::now() + Duration::from_secs(10),
            )
            .unwrap();
            let mut hello = info(1, 2, 7).encode();
            if huge_frame {
                let mut head = HELLO.to_le_bytes().to_vec();
                head.extend_from_slice(&(16u64 << 30).to_le_bytes());
                s.write_all(&head).unwrap();
                let _ = s.write_all(&hello);
            } else {
                hello[8 + 16..8 + 24].copy_from_slice(&u64::MAX.to_le_bytes());
                wire::write_frame(&mut s, HELLO, &hello).unwrap();
            }
            // It is dropped, not joined; node 0 waits on until its time-out.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            assert!(rest.is_empty(), "{rest:?}");
        }
        let e = hub.join().unwrap().unwrap_err().to_string();
        assert!(e.contains("node(s) 1 did not join"), "{e}");
    }

    #[test]
    fn a_stopped_node_is_noticed_within_the_time_out() {
        let address = free_address();
        let a = address.clone();
        let (stopped, stop) = mpsc::channel::<()>();
        let spoke = std::thread::spawn(move || {
            let mut c = config(&a, 2, 1);
            c.timeout = Duration::from_secs(2);
            let link = rendezvous(&c, info(1, 2, 7), || unreachable!()).unwrap();
            // Stands for a stopped process: holds its connection open and
            // silent (no heartbeats) until the test ends.
            let Link {
                conns, _heartbeats, ..
            } = link;
            drop(_heartbeats);
            let _ = stop.recv();
            drop(conns);
        });
        let mut c = config(&address, 2, 0);
        c.timeout = Duration::from_secs(2);
        let mut link = rendezvous(&c, info(0, 2, 7), || unreachable!()).unwrap();
        let start = Instant::now();
        let e = link.all_reduce_f32(&mut [1.0]).unwrap_err().to_string();
        let waited = start.elapsed();
        assert!(
            e.contains("node 1 sent nothing, not even a heartbeat, for 2 s"),
            "{e}"
        );
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
        stopped.send(()).unwrap();
        spoke.join().unwrap();
    }

    #[test]
    fn heartbeats_keep_a_quiet_node_joined_past_the_time_out() {
        let address = free_address();
        let a = address.clone();
        let spoke = std::thread::spawn(move || {
            let mut c = config(&a, 2, 1);
            c.timeout = Duration::from_secs(1);
            let mut link = rendezvous(&c, info(1, 2, 7), || unreachable!()).unwrap();
            // Busy for three time-outs (node 0's hooks, say), then in step.
            std::thread::sleep(Duration::from_secs(3));
            let mut v = vec![2.0f64];
            link.all_reduce_f64(&mut v).unwrap();
            v
        });
        let mut c = config(&address, 2, 0);
        c.timeout = Duration::from_secs(1);
        let mut link = rendezvous(&c, info(0, 2, 7), || unreachable!()).unwrap();
        let mut v = vec![1.0f64];
        link.all_reduce_f64(&mut v).unwrap();
        assert_eq!(v, vec![3.0]);
        assert_eq!(spoke.join().unwrap(), vec![3.0]);
    }
}
