//! `e2e-ref serve`: the relay as a network server (SPEC.md §9.2).
//!
//! One TCP connection is one [`LinkId`]; frames cross it exactly as SPEC.md §3 lays them out (the
//! header gives the length, nothing else frames them). The sans-IO [`Server`] stays the only
//! protocol logic. This driver adds:
//!
//! * **one actor** ([`actor`]) — a thread that owns the `Server`, its RNG and the [`Store`]. Every
//!   frame, every finished write and every closed connection is a command on one channel, handled
//!   in order. It commits each `Server` call's [`DurableChange`]s in a durable transaction (one
//!   per batch of calls: group commit) *before* it hands any of the call's frames to a connection
//!   (see [`actor`]).
//! * **one task per connection** ([`conn`]) — reads a header, checks it with
//!   [`frame_len`](e2e_protocol::wire::frame_len) before sizing the body's buffer, reads exactly the
//!   body, and writes what the actor queued, in order, from a bounded queue.
//! * **frame buffers that go round** ([`buffers`]) — the actor drives the server in place
//!   ([`Server::handle_in_place`]): a frame is decrypted in the buffer it was read into, the
//!   server's frames are sealed into spare buffers, and a written frame's buffer is kept for the
//!   next one, so a relayed message costs the relay no heap allocation once they are warm.
//! * **bounds and timeouts** ([`Limits`]) — a connection limit (beyond it a handshake is answered
//!   with `Refused { ServerFull }` and closed), a handshake timeout, an idle timeout, a write
//!   timeout and a bounded outbound queue per connection (a reader too slow for either is closed).
//!
//! The relay keeps nothing that matters in memory only: stopping it at any moment (`kill -9`
//! included) loses no acknowledged message, and it has no shutdown procedure to skip.
//!
//! [`Server`]: e2e_protocol::roles::Server
//! [`Server::handle_in_place`]: e2e_protocol::roles::Server::handle_in_place
//! [`LinkId`]: e2e_protocol::roles::LinkId
//! [`DurableChange`]: e2e_protocol::roles::DurableChange

pub mod actor;
pub mod buffers;
pub mod conn;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use e2e_protocol::roles::LinkId;
use e2e_protocol::suite::PublicKey;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use store::{RedbStore, Store, StoreError};

/// The relay's bounds on its connections (SPEC.md §9.2). Every number is a DoS bound on one
/// resource: memory per connection, sockets, time a peer may hold them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once. Beyond it a new connection's `HandshakeInit` is answered with
    /// `Refused { ServerFull }` and the connection closed: each costs a socket, two tasks and up to
    /// `outbound_frames` queued frames.
    pub max_connections: usize,
    /// From accepting a connection to its second frame (`HandshakeInit`, then `Ready`): a client
    /// that does not finish the handshake in time holds no socket.
    pub handshake_timeout: Duration,
    /// The longest a connection may send nothing once its handshake is done. The protocol has no
    /// keep-alive, so a client that only listens reconnects after it.
    pub idle_timeout: Duration,
    /// The longest one frame may take to cross, either way: to be read once its header is in (a
    /// peer trickling bytes holds a 64 KiB buffer no longer), or to be written (a peer that does
    /// not read is closed, not buffered for).
    pub frame_timeout: Duration,
    /// Frames queued for one connection. A connection whose queue is full when the actor has a
    /// frame for it is a slow reader, and is closed: the actor never waits on one connection.
    /// 256 frames hold what one group commit can hand one connection (at most
    /// `2 × GROUP_COMMIT + MAILBOX_CAPACITY + 2 = 130`, see [`actor::GROUP_COMMIT`]) with room to
    /// spare; a server frame is at most about 17 KiB (a 16 KiB body), so this is about 4 MiB.
    pub outbound_frames: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            frame_timeout: Duration::from_secs(10),
            outbound_frames: 256,
        }
    }
}

/// How to run the relay.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen. Port 0 picks a free one (see [`Started::addr`]).
    pub listen: SocketAddr,
    /// The data directory: the store lives in `DIR/relay.redb`.
    pub data: PathBuf,
    /// Refuse to listen on anything but a loopback address unless this is set.
    pub allow_non_loopback: bool,
    /// Seeds the relay's RNG (its first static key and every ephemeral key) for reproducible
    /// tests; `None` seeds it from the operating system. Never in a deployment: each start on the
    /// same seed draws the same ephemeral keys again.
    pub seed: Option<u64>,
    /// Connection bounds.
    pub limits: Limits,
    /// Print every server event on standard output (in hop, every plaintext the relay reads).
    pub log: bool,
    /// A malicious mode for the interop scenarios (`--adversary`); `None`: the honest relay.
    pub adversary: Option<crate::interop::adversary::Adversary>,
}

/// Why the relay could not start or stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address is not loopback and `allow_non_loopback` was not given.
    NotLoopback(SocketAddr),
    /// Binding or accepting failed.
    Io(std::io::Error),
    /// The store failed; the relay stops rather than acknowledge what it cannot keep.
    Store(StoreError),
    /// The store holds a state no server could have written.
    Snapshot(e2e_protocol::roles::SnapshotError),
    /// The operating system's RNG failed.
    Rng,
    /// The actor thread ended without saying why (it panicked).
    ActorGone,
}

impl core::fmt::Display for ServeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotLoopback(addr) => write!(
                f,
                "{addr} is not a loopback address; pass --allow-non-loopback to listen on it"
            ),
            Self::Io(e) => write!(f, "{e}"),
            Self::Store(e) => write!(f, "{e}"),
            Self::Snapshot(e) => write!(f, "stored state: {e}"),
            Self::Rng => f.write_str("the operating system's RNG failed"),
            Self::ActorGone => f.write_str("the relay's actor thread ended"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<StoreError> for ServeError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A relay that is listening.
#[derive(Debug)]
pub struct Started {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its static public key, which clients must know in advance.
    pub public_key: PublicKey,
}

/// Opens the store, restores the server, binds, calls `on_start` with the address and key, and
/// serves until an error stops it.
///
/// # Errors
/// [`ServeError`]: at start (address, store, RNG), or a store failure later.
pub async fn serve(config: ServeConfig, on_start: impl FnOnce(&Started)) -> Result<(), ServeError> {
    if !config.allow_non_loopback && !config.listen.ip().is_loopback() {
        return Err(ServeError::NotLoopback(config.listen));
    }
    let store = RedbStore::open(&config.data)?;
    let listener = TcpListener::bind(config.listen).await?;
    let (actor, public_key, mut failed) =
        actor::spawn(store, config.seed, config.log, config.adversary)?;
    let started = Started { addr: listener.local_addr()?, public_key };
    on_start(&started);
    let limits = config.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Connections beyond the limit get a typed refusal; answering one costs two Diffie-Hellmans,
    // so a few at a time, and beyond that they are closed unanswered.
    let refusals = Arc::new(Semaphore::new(16));
    let mut next_link = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of descriptors, most likely: let connections end before trying again,
                    // rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Small frames go out at once: no Nagle delay on a `Ready` or an `Ack`.
                let _ = stream.set_nodelay(true);
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        next_link += 1;
                        let link = LinkId(next_link);
                        tokio::spawn(conn::run(stream, link, actor.clone(), limits, slot));
                    }
                    Err(_) => {
                        if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                            tokio::spawn(conn::refuse(stream, actor.clone(), limits, permit));
                        }
                    }
                }
            }
            failure = &mut failed => {
                return Err(failure.unwrap_or(ServeError::ActorGone));
            }
        }
    }
}
