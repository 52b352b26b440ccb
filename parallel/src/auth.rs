//! The cluster token and the challenge that proves a connection holds it.
//!
//! Every connection between nodes starts with a mutual HMAC-SHA256
//! challenge, before either side reads anything else or says anything about
//! the run: node 0 sends a fresh random nonce, the joining node answers with
//! its own nonce and the HMAC of both under the token, node 0 checks it and
//! answers with the HMAC of both nonces the other way round (distinct
//! labels, so neither answer can be replayed as the other). A peer without
//! the token learns nothing (no fingerprint, no rank, no weights) and is
//! dropped; node 0 goes on waiting for the real nodes. The token never
//! crosses the network. What is not protected: the traffic after the
//! challenge is neither encrypted nor signed frame by frame, so the cluster
//! network must be one that nobody can sit in the middle of
//! (docs/reliability.md, "Threat model").

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{fail, Result, ResultExt};
use crate::wire::read_exact_until;

/// The secret every node of a run holds (`ZFTRAIN_CLUSTER_TOKEN` or
/// `cluster.token_file`); empty only for `--insecure-cluster`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl Token {
    /// A token from its bytes (surrounding white space, such as a token
    /// file's last newline, is not part of it).
    pub fn new(bytes: &[u8]) -> Token {
        Token(bytes.trim_ascii().to_vec())
    }

    /// The empty token of `--insecure-cluster`: the challenge still runs,
    /// and anyone who speaks the protocol passes it.
    pub fn insecure() -> Token {
        Token(Vec::new())
    }

    /// Whether this is the empty token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn mac(&self, label: &[u8], first: &[u8], second: &[u8]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key");
        m.update(label);
        m.update(first);
        m.update(second);
        m
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            write!(f, "Token(none)")
        } else {
            write!(f, "Token({} bytes)", self.0.len())
        }
    }
}

const CHALLENGE: &[u8; 8] = b"ZFTRAINC";
const NONCE: usize = 32;
const TAG: usize = 32;
const FROM_SPOKE: &[u8] = b"zftrain node to node 0";
const FROM_HUB: &[u8] = b"zftrain node 0 to node";

fn nonce() -> Result<[u8; NONCE]> {
    let mut n = [0u8; NONCE];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut n))
        .context("reading /dev/urandom for a nonce")?;
    Ok(n)
}

/// Node 0's side: challenges a fresh connection; `Ok` when the peer proved
/// it holds `token` before `deadline`.
pub(crate) fn challenge(stream: &mut TcpStream, token: &Token, deadline: Instant) -> Result<()> {
    let mine = nonce()?;
    let mut hello = CHALLENGE.to_vec();
    hello.extend_from_slice(&mine);
    stream.write_all(&hello)?;
    let mut answer = [0u8; NONCE + TAG];
    read_exact_until(stream, &mut answer, deadline)?;
    let (theirs, tag) = answer.split_at(NONCE);
    if token
        .mac(FROM_SPOKE, &mine, theirs)
        .verify_slice(tag)
        .is_err()
    {
        fail!(
            Link,
            "it does not hold the cluster token (or is not a zftrain node)"
        );
    }
    let proof = token.mac(FROM_HUB, theirs, &mine).finalize().into_bytes();
    stream.write_all(&proof)?;
    Ok(())
}

/// A joining node's side: answers node 0's challenge and checks that node 0
/// holds `token` too.
pub(crate) fn answer(stream: &mut TcpStream, token: &Token, deadline: Instant) -> Result<()> {
    let mut hello = [0u8; CHALLENGE.len() + NONCE];
    read_exact_until(stream, &mut hello, deadline)?;
    if &hello[..CHALLENGE.len()] != CHALLENGE {
        fail!(
            Link,
            "the rendezvous address answers, but not as a zftrain node 0 (or as another version)"
        );
    }
    let theirs = &hello[CHALLENGE.len()..];
    let mine = nonce()?;
    let mut reply = mine.to_vec();
    reply.extend_from_slice(&token.mac(FROM_SPOKE, theirs, &mine).finalize().into_bytes());
    stream.write_all(&reply)?;
    let mut proof = [0u8; TAG];
    read_exact_until(stream, &mut proof, deadline).context(
        "node 0 closed the connection at the challenge: do both nodes hold the same cluster token?",
    )?;
    if token
        .mac(FROM_HUB, &mine, theirs)
        .verify_slice(&proof)
        .is_err()
    {
        fail!(
            Link,
            "node 0 does not hold this node's cluster token: refusing to send it anything"
        );
    }
    Ok(())
}
