//! The actor: one thread that owns the [`Server`], its RNG and the [`Store`], and handles every
//! command in the order it arrives.
//!
//! **Durability ordering.** The actor commits the changes of a `Server` call in a store
//! transaction — durable when `commit` returns — and only then hands the call's frames to the
//! connections (one transaction covers every call of a batch: group commit, see `Actor::run`).
//! So `Ack { Queued }` never leaves before its message is on disk, and a `Bundle` never leaves
//! before the one-time prekey in it is deleted on disk (SPEC.md §9.2). A store failure stops the
//! relay: it must not acknowledge what it cannot keep.
//!
//! **Settling.** A mailbox sent on confirmation stays in the server and in the store until the
//! connection's writer has written every frame before the [`Outbound::Settle`] marker that follows
//! them; the writer then sends [`Command::Written`], and the actor [settles](Server::settle) and
//! commits the removal. A crash in between sends the mailbox again on the next connection, where
//! the recipient refuses what it already accepted (SPEC.md §5.4).
//!
//! The actor never waits on a connection: it queues frames with `try_send`, and a connection whose
//! queue is full is a slow reader and is closed. It is a thread, not a task, because each commit
//! waits for the disk.

use std::collections::HashMap;
use std::sync::Arc;

use crate::interop::adversary::Adversary;
use e2e_protocol::roles::{Delivery, DurableChange, LinkId, Server, ServerEvent, ServerOutputs};
use e2e_protocol::suite::{PrivateKey, PublicKey};
use e2e_protocol::wire::RefusalReason;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::sync::{Notify, mpsc, oneshot};

use super::ServeError;
use super::store::Store;

/// Commands queued for the actor at once, from all connections: a full queue makes the readers
/// wait (back-pressure), never the actor.
const COMMAND_QUEUE: usize = 1024;

/// What a connection asks of the actor.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// A new connection is link `link`; frames for it go to `out`, and `kill` ends it at once.
    Open {
        /// The link.
        link: LinkId,
        /// Its outbound queue.
        out: mpsc::Sender<Outbound>,
        /// Notified when the connection must end without writing what is queued (a slow reader).
        kill: Arc<Notify>,
    },
    /// A whole frame arrived on `link` (its length checked against SPEC.md §3.4 already).
    Frame {
        /// The link.
        link: LinkId,
        /// The frame, header included.
        frame: Vec<u8>,
    },
    /// Every frame before a [`Outbound::Settle`] was written.
    Written(Delivery),
    /// The connection of `link` is gone.
    Closed {
        /// The link.
        link: LinkId,
    },
    /// A connection beyond the limit sent `frame`: answer `Refused { ServerFull }` if it is a
    /// `HandshakeInit`, else `None`.
    Refuse {
        /// The frame.
        frame: Vec<u8>,
        /// Where the answer goes.
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
}

/// What the actor queues for one connection, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outbound {
    /// Write this frame.
    Frame(Vec<u8>),
    /// Once everything before this is written, report [`Command::Written`] with it.
    Settle(Delivery),
    /// Close the connection once everything before this is written.
    Close,
}

/// The way to the actor; cheap to clone.
#[derive(Debug, Clone)]
pub struct ActorHandle {
    tx: mpsc::Sender<Command>,
}

impl ActorHandle {
    /// Queues `command`, waiting while the actor's queue is full.
    ///
    /// # Errors
    /// The actor has stopped.
    pub async fn send(&self, command: Command) -> Result<(), ActorStopped> {
        self.tx.send(command).await.map_err(|_| ActorStopped)
    }
}

/// The actor has stopped; the relay is going down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActorStopped;

/// Loads the server from `store` (generating and storing its static key on the first start) and
/// starts the actor thread. Returns the way to it, the server's public key, and where the reason
/// it stopped arrives.
///
/// # Errors
/// The RNG, the store or the stored state failed.
pub fn spawn<S: Store + Send + 'static>(
    store: S,
    seed: Option<u64>,
    log: bool,
    adversary: Option<Adversary>,
) -> Result<(ActorHandle, PublicKey, oneshot::Receiver<ServeError>), ServeError>
where
    ServeError: From<S::Error>,
{
    let mut rng = match seed {
        Some(seed) => ChaCha20Rng::seed_from_u64(seed),
        None => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|_| ServeError::Rng)?;
            ChaCha20Rng::from_seed(seed)
        }
    };
    let static_key = store.static_key(|| PrivateKey::generate(&mut rng))?;
    let snapshot = store.load()?;
    let server = Server::new(static_key).restore(snapshot).map_err(ServeError::Snapshot)?;
    let public_key = server.public_key();
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (failed_tx, failed_rx) = oneshot::channel();
    std::thread::Builder::new().name("relay-actor".into()).spawn(move || {
        let failure = Actor { server, store, rng, links: HashMap::new(), log, adversary }.run(rx);
        let _ = failed_tx.send(failure);
    })?;
    Ok((ActorHandle { tx }, public_key, failed_rx))
}

struct Actor<S> {
    server: Server,
    store: S,
    rng: ChaCha20Rng,
    links: HashMap<LinkId, Connection>,
    /// Print every server event on standard output.
    log: bool,
    /// The malicious mode of `serve --adversary`, if any.
    adversary: Option<Adversary>,
}

/// The actor's side of one connection.
struct Connection {
    out: mpsc::Sender<Outbound>,
    kill: Arc<Notify>,
    /// The server refused one of its frames: what it sends is ignored, and it is closed once the
    /// frames already produced for it are queued.
    closing: bool,
}

/// Commands handled per store transaction at most (group commit): bounds how long a frame waits
/// for its commit, how large one transaction grows (32 frames of at most 64 KiB), and how many
/// frames one batch hands one connection at once — at most two per command, plus one mailbox
/// (`MAILBOX_CAPACITY` + 2), which [`super::Limits::outbound_frames`] must exceed so that only a
/// peer that does not read overflows its queue.
pub const GROUP_COMMIT: usize = 32;

/// What a batch of commands produced: the changes to commit in one transaction, then the outputs
/// to hand to the connections, in order.
#[derive(Default)]
struct Batch {
    changes: Vec<DurableChange>,
    outputs: Vec<ServerOutputs>,
}

impl<S: Store> Actor<S>
where
    ServeError: From<S::Error>,
{
    /// Handles commands until the store fails (or every handle is gone).
    ///
    /// **Group commit.** The actor takes every command already waiting (at most [`GROUP_COMMIT`]),
    /// handles each, commits all their changes in one transaction, and only then hands out their
    /// frames. Nothing leaves before the transaction holding its changes is durable, exactly as
    /// with one transaction per frame; a burst of frames costs one fsync instead of one each.
    fn run(mut self, mut rx: mpsc::Receiver<Command>) -> ServeError {
        let mut batch = Batch::default();
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            let mut handled = 0;
            while let Some(command) = next {
                self.on(command, &mut batch);
                handled += 1;
                next = if handled < GROUP_COMMIT { rx.try_recv().ok() } else { None };
            }
            if let Err(failure) = self.store.commit(&batch.changes) {
                return failure.into();
            }
            batch.changes.clear();
            for out in batch.outputs.drain(..) {
                if self.log {
                    for event in &out.events {
                        println!("{}", describe(event));
                    }
                }
                self.dispatch(out);
            }
        }
        ServeError::ActorGone
    }

    fn on(&mut self, command: Command, batch: &mut Batch) {
        match command {
            Command::Open { link, out, kill } => {
                self.links.insert(link, Connection { out, kill, closing: false });
            }
            Command::Frame { link, frame } => {
                let Some(connection) = self.links.get_mut(&link).filter(|c| !c.closing) else {
                    return; // closed or closing meanwhile: what it sent goes nowhere
                };
                let handled = match &mut self.adversary {
                    Some(adversary) => {
                        adversary.handle(&mut self.server, link, &frame, &mut self.rng)
                    }
                    None => self.server.handle(link, &frame, &mut self.rng),
                };
                match handled {
                    Ok(mut out) => {
                        batch.changes.append(&mut out.changes);
                        batch.outputs.push(out);
                    }
                    // A frame that does not parse or authenticate: the server is unchanged, and a
                    // network driver has no reason to keep a peer that sends one (SPEC.md §7.2).
                    // The server forgets the link now; its connection closes after the frames this
                    // batch already made for it.
                    Err(_) => {
                        connection.closing = true;
                        self.server.close_link(link);
                        batch
                            .outputs
                            .push(ServerOutputs { close: vec![link], ..Default::default() });
                    }
                }
            }
            Command::Written(delivery) => {
                batch.changes.extend(self.server.settle(&delivery));
            }
            Command::Closed { link } => {
                if self.log {
                    println!("link {}: closed", link.0);
                }
                self.links.remove(&link);
                self.server.close_link(link);
            }
            Command::Refuse { frame, reply } => {
                let refusal =
                    self.server.refuse(&frame, RefusalReason::ServerFull, &mut self.rng).ok();
                let _ = reply.send(refusal);
            }
        }
    }

    /// Queues the frames of one call (already committed), then the settle markers and closes.
    fn dispatch(&mut self, out: ServerOutputs) {
        for (link, frame) in out.transmit {
            self.queue(link, Outbound::Frame(frame));
        }
        for delivery in out.delivered {
            self.queue(delivery.link, Outbound::Settle(delivery));
        }
        for link in out.close {
            self.close(link);
        }
    }

    /// Queues `item` for `link`; a link whose queue is full is a slow reader and ends at once.
    fn queue(&mut self, link: LinkId, item: Outbound) {
        let Some(connection) = self.links.get(&link) else { return };
        if connection.out.try_send(item).is_err() {
            connection.kill.notify_one();
            self.links.remove(&link);
            self.server.close_link(link);
        }
    }

    /// Forgets `link`: the server drops it, and its connection ends once what is queued is written.
    fn close(&mut self, link: LinkId) {
        self.queue(link, Outbound::Close);
        self.links.remove(&link);
        self.server.close_link(link);
    }
}

/// One line for the operator's log: what the server did, and in hop what it read.
fn describe(event: &ServerEvent) -> String {
    match event {
        ServerEvent::Registered { link, name } => format!("link {}: {name} registers", link.0),
        ServerEvent::Online { link, name, delivered } => {
            format!("link {}: {name} online, {delivered} queued message(s) sent", link.0)
        }
        ServerEvent::Refused { link, reason } => format!("link {}: refused ({reason:?})", link.0),
        ServerEvent::Read { from, to, id, body } => format!(
            "reads {from} -> {to} #{}: {:?}",
            id.0,
            String::from_utf8_lossy(body.as_bytes())
        ),
        ServerEvent::Envelope { from, to, id, len } => {
            format!("relays {from} -> {to} #{}: a {len}-byte envelope it cannot open", id.0)
        }
        ServerEvent::Accepted { from, to, id, status } => {
            format!("{from} -> {to} #{}: {status:?}", id.0)
        }
        ServerEvent::Rejected { from, id, reason } => {
            format!("{from} #{}: rejected ({reason:?})", id.0)
        }
        ServerEvent::BundleStored { name, one_time_prekeys } => {
            format!("{name}'s bundle stored ({one_time_prekeys} one-time prekeys held)")
        }
        ServerEvent::BundleRefused { name, reason } => {
            format!("{name}'s bundle refused ({reason:?})")
        }
        ServerEvent::BundleFetched { by, name, one_time_prekey } => match one_time_prekey {
            Some(id) => format!("{by} fetched {name}'s bundle with one-time prekey {id}, deleted"),
            None => format!("{by} fetched {name}'s bundle, without a one-time prekey"),
        },
        ServerEvent::NoBundle { by, name } => format!("{by} asked for {name}'s bundle: none"),
        ServerEvent::Dropped { link, error } => {
            format!("link {}: content dropped ({error})", link.0)
        }
        // `ServerEvent` is non-exhaustive: a newer event still shows, in its Debug form.
        other => format!("{other:?}"),
    }
}
