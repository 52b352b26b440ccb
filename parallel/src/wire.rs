//! Frames between nodes: a tag and a length, then the body; every read has a
//! deadline and a size limit checked before anything is allocated, and
//! heartbeats keep a quiet but live connection from looking dead.
//!
//! A [`Conn`] is one connection: reads on this thread, writes (frames and
//! heartbeats) under a lock, so a heartbeat thread can write between the
//! frames. A peer that sends nothing at all, not even a heartbeat, for the
//! link's silence limit (`cluster.timeout_s`) is taken as gone: stopped,
//! crashed without closing, or cut off.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{fail, ParallelError, Result, ResultExt};

pub(crate) const HELLO: u32 = 1;
pub(crate) const WELCOME: u32 = 2;
pub(crate) const REFUSE: u32 = 3;
pub(crate) const F32: u32 = 4;
pub(crate) const F64: u32 = 5;
pub(crate) const BLOB: u32 = 6;
pub(crate) const BEAT: u32 = 7;

/// Largest refusal message read.
pub(crate) const MAX_REFUSAL: u64 = 64 << 10;

/// Reads exactly `buf.len()` bytes before `deadline`, however slowly they
/// trickle in: the time left is checked before every read.
pub(crate) fn read_exact_until(s: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            fail!(
                Link,
                "{} of {} bytes arrived before the deadline",
                filled,
                buf.len()
            );
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf[filled..]) {
            Ok(0) => fail!(Link, "the connection closed"),
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn head(tag: u32, len: u64) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(&tag.to_le_bytes());
    h[4..].copy_from_slice(&len.to_le_bytes());
    h
}

/// One connection to a peer node.
pub(crate) struct Conn {
    /// Who is at the other end, for messages ("node 1").
    pub peer: String,
    read: TcpStream,
    write: Arc<Mutex<TcpStream>>,
    /// How long the peer may say nothing before it is taken as gone.
    silence: Duration,
}

impl Conn {
    /// Wraps an authenticated stream; writes time out after `silence` too.
    pub fn new(stream: TcpStream, peer: String, silence: Duration) -> Result<Conn> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(silence))?;
        let write = Arc::new(Mutex::new(stream.try_clone()?));
        Ok(Conn {
            peer,
            read: stream,
            write,
            silence,
        })
    }

    /// The same connection with another silence limit.
    pub fn with_silence(self, silence: Duration) -> Conn {
        Conn { silence, ..self }
    }

    /// The writing half, for the heartbeat thread.
    pub fn writer(&self) -> Arc<Mutex<TcpStream>> {
        Arc::clone(&self.write)
    }

    /// Sends one frame.
    pub fn send(&self, tag: u32, body: &[u8]) -> Result<()> {
        send(&self.write, tag, body).with_context(|| format!("sending to {}", self.peer))
    }

    /// Reads the next frame that is not a heartbeat, of at most `max` bytes
    /// (checked before any allocation; the body's buffer grows only as its
    /// bytes arrive). A refusal from the peer is an error carrying its
    /// reason; silence longer than the limit, or a closed connection, an
    /// error naming the peer.
    pub fn expect(&mut self, want: u32, max: u64) -> Result<Vec<u8>> {
        loop {
            let mut h = [0u8; 12];
            self.read_all(&mut h)?;
            let tag = u32::from_le_bytes(h[..4].try_into().expect("4 bytes"));
            let len = u64::from_le_bytes(h[4..].try_into().expect("8 bytes"));
            if tag == BEAT && len == 0 {
                continue;
            }
            let limit = if tag == REFUSE { MAX_REFUSAL } else { max };
            if len > limit {
                fail!(
                    Link,
                    "{} announced a message of {len} bytes where at most {limit} fit: the nodes are out of step",
                    self.peer
                );
            }
            let mut body = Vec::new();
            let got = (&mut self.read)
                .take(len)
                .read_to_end(&mut body)
                .map_err(|e| self.broken(e))?;
            if (got as u64) < len {
                fail!(
                    Link,
                    "{} closed the connection in the middle of a message",
                    self.peer
                );
            }
            if tag == REFUSE {
                fail!(
                    Link,
                    "{} stopped the run: {}",
                    self.peer,
                    String::from_utf8_lossy(&body)
                );
            }
            if tag != want {
                fail!(
                    Link,
                    "{} sent message {tag} where {want} was expected: the nodes are out of step",
                    self.peer
                );
            }
            return Ok(body);
        }
    }

    fn read_all(&mut self, buf: &mut [u8]) -> Result<()> {
        self.read.set_read_timeout(Some(self.silence))?;
        let mut filled = 0;
        while filled < buf.len() {
            match self.read.read(&mut buf[filled..]) {
                Ok(0) => fail!(
                    Link,
                    "{} closed the connection (it stopped or failed: its own output says why)",
                    self.peer
                ),
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.broken(e)),
            }
        }
        Ok(())
    }

    fn broken(&self, e: std::io::Error) -> ParallelError {
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            ParallelError::Link(format!(
                "{} sent nothing, not even a heartbeat, for {} s: it is stopped, hung or cut off (cluster.timeout_s)",
                self.peer,
                self.silence.as_secs_f64()
            ))
        } else {
            ParallelError::Link(format!("reading from {}: {e}", self.peer))
        }
    }
}

/// Writes one frame on `s`.
pub(crate) fn write_frame(s: &mut TcpStream, tag: u32, body: &[u8]) -> std::io::Result<()> {
    s.write_all(&head(tag, body.len() as u64))?;
    s.write_all(body)?;
    s.flush()
}

/// Writes one frame under the writer's lock (heartbeats go between frames).
fn send(write: &Mutex<TcpStream>, tag: u32, body: &[u8]) -> Result<()> {
    let mut s = write
        .lock()
        .map_err(|_| ParallelError::Link("a node connection is poisoned".into()))?;
    Ok(write_frame(&mut s, tag, body)?)
}

/// Sends a heartbeat on every writer each `every` until the returned
/// sender is dropped (the thread then ends at once).
pub(crate) fn heartbeats(
    writers: Vec<Arc<Mutex<TcpStream>>>,
    every: Duration,
) -> Result<std::sync::mpsc::Sender<()>> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("zftrain-heartbeat".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                for w in &writers {
                    // A failed beat is the reader's business: the peer's
                    // silence or closed connection is reported there.
                    let _ = send(w, BEAT, &[]);
                }
            }
        })
        .context("starting the heartbeat thread")?;
    Ok(stop)
}
