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
//!
//! **In place.** The actor drives [`Server::handle_in_place`]: it decrypts each frame in the buffer
//! the connection read it into, seals the server's frames into buffers from its [`FramePool`],
//! and keeps one [`ServerOutputs`] for the whole batch, whose lists it empties (keeping their
//! room) once it has handed their frames out. The buffers go round through [`Buffers`]: a reader
//! takes one to read a frame into, the actor gives it back once the server has consumed it (and
//! the buffer of a body the server read, once logged), a writer gives back each frame it has
//! written, and the actor tops its pool up from them before each frame. So relaying a message
//! allocates nothing on the relay's side of the channel once the buffers are warm
//! (tests/serve_allocations.rs).

use std::collections::HashMap;
use std::sync::Arc;

use crate::interop::adversary::Adversary;
use e2e_protocol::roles::{Delivery, FramePool, LinkId, Server, ServerEvent, ServerOutputs};
use e2e_protocol::suite::{PrivateKey, PublicKey};
use e2e_protocol::wire::RefusalReason;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::sync::{Notify, mpsc, oneshot};

use super::ServeError;
use super::buffers::Buffers;
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
        /// The frame, header included, in a buffer from [`ActorHandle::buffers`] (any buffer
        /// will do): the actor decrypts it in place and gives the buffer back.
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
    /// Write this frame, then give its buffer back to [`ActorHandle::buffers`].
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
    buffers: Arc<Buffers>,
}

impl ActorHandle {
    /// The frame buffers the connections and the actor share: a reader takes the buffer it reads
    /// a frame into from here, and a writer gives back each frame's buffer once it is written.
    #[must_use]
    pub fn buffers(&self) -> &Buffers {
        &self.buffers
    }

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
    let (loaded, handle, public_key) = load(store, seed, log, adversary)?;
    let (failed_tx, failed_rx) = oneshot::channel();
    std::thread::Builder::new().name("relay-actor".into()).spawn(move || {
        let _ = failed_tx.send(loaded.run());
    })?;
    Ok((handle, public_key, failed_rx))
}

/// What [`spawn`] does before it starts the thread: loads the server from `store` (generating and
/// storing its static key on the first start). Returns the actor, which runs on the thread that
/// calls [`Loaded::run`], the way to it, and the server's public key. For a test that must run
/// the actor on a thread of its own (tests/serve_allocations.rs counts that thread's
/// allocations); the relay uses [`spawn`].
///
/// # Errors
/// The RNG, the store or the stored state failed.
pub fn load<S: Store>(
    store: S,
    seed: Option<u64>,
    log: bool,
    adversary: Option<Adversary>,
) -> Result<(Loaded<S>, ActorHandle, PublicKey), ServeError>
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
    let buffers = Arc::new(Buffers::new());
    let actor = Actor {
        server,
        store,
        rng,
        links: HashMap::new(),
        log,
        adversary,
        buffers: Arc::clone(&buffers),
        pool: FramePool::new(),
        out: ServerOutputs::default(),
    };
    Ok((Loaded { actor, rx }, ActorHandle { tx, buffers }, public_key))
}

/// The actor, loaded and not yet running (see [`load`]).
pub struct Loaded<S> {
    actor: Actor<S>,
    rx: mpsc::Receiver<Command>,
}

impl<S: Store> Loaded<S>
where
    ServeError: From<S::Error>,
{
    /// Runs the actor on this thread until the store fails or every [`ActorHandle`] is gone;
    /// returns why it stopped.
    pub fn run(self) -> ServeError {
        self.actor.run(self.rx)
    }
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
    /// The spare buffers, shared with the connections.
    buffers: Arc<Buffers>,
    /// The buffers the server seals its next frames into, topped up from `buffers` to
    /// [`SEALED_PER_FRAME`] before each frame.
    pool: FramePool,
    /// What the calls of the current batch produced, in order: their changes to commit, then
    /// their frames, settle markers and closes to hand out. Emptied, keeping its room, by each
    /// batch.
    out: ServerOutputs,
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

/// The buffers one frame takes from the pool on the relay path: the delivery, the `Ack`, and in
/// hop the buffer that replaces the frame's own, which goes to the `Read` event with the body.
const SEALED_PER_FRAME: usize = 3;

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
    ///
    /// The batch's calls push their outputs onto one [`ServerOutputs`], so its frames go out
    /// after all its calls rather than call by call: every frame for a link still follows the
    /// frames before it, every settle marker the frames of its delivery (and perhaps later ones:
    /// a settle that comes later only sends a mailbox again after a crash, which SPEC.md §5.4
    /// allows), and every close the frames for its link (the server forgets a link it closes, so
    /// no later call of the batch makes one for it).
    fn run(mut self, mut rx: mpsc::Receiver<Command>) -> ServeError {
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            let mut handled = 0;
            while let Some(command) = next {
                self.on(command);
                handled += 1;
                next = if handled < GROUP_COMMIT { rx.try_recv().ok() } else { None };
            }
            if let Err(failure) = self.store.commit(&self.out.changes) {
                return failure.into();
            }
            self.out.changes.clear();
            self.dispatch();
        }
        ServeError::ActorGone
    }

    fn on(&mut self, command: Command) {
        match command {
            Command::Open { link, out, kill } => {
                self.links.insert(link, Connection { out, kill, closing: false });
            }
            Command::Frame { link, mut frame } => {
                let Some(connection) = self.links.get_mut(&link).filter(|c| !c.closing) else {
                    // Closed or closing meanwhile: what it sent goes nowhere.
                    self.buffers.give(frame);
                    return;
                };
                let handled = match &mut self.adversary {
                    Some(adversary) => adversary
                        .handle(&mut self.server, link, &frame, &mut self.rng)
                        .map(|more| append(&mut self.out, more)),
                    None => {
                        self.buffers.refill(&mut self.pool, SEALED_PER_FRAME);
                        let out = &mut self.out;
                        self.server.handle_in_place(
                            link,
                            &mut frame,
                            &mut self.rng,
                            out,
                            &mut self.pool,
                        )
                    }
                };
                // On success the server consumed the frame and left its buffer empty; on error
                // the frame is as it came, and goes nowhere.
                self.buffers.give(frame);
                // A frame that does not parse or authenticate: the server is unchanged, and a
                // network driver has no reason to keep a peer that sends one (SPEC.md §7.2). The
                // server forgets the link now; its connection closes after the frames this batch
                // already made for it.
                if handled.is_err() {
                    connection.closing = true;
                    self.server.close_link(link);
                    self.out.close.push(link);
                }
            }
            Command::Written(delivery) => {
                let settled = self.server.settle(&delivery);
                self.out.changes.extend(settled);
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

    /// Logs the batch's events, then queues its frames (already committed), then its settle
    /// markers and closes, and empties its lists, keeping their room. The buffer of a body the
    /// server read goes back to the spares once logged.
    fn dispatch(&mut self) {
        // Taken out of `self` for the loops that call `&mut self` methods, and put back.
        let mut out = std::mem::take(&mut self.out);
        for event in out.events.drain(..) {
            if self.log {
                println!("{}", describe(&event));
            }
            if let ServerEvent::Read { body, .. } = event {
                self.buffers.give(body.into_bytes());
            }
        }
        for (link, frame) in out.transmit.drain(..) {
            self.queue(link, Outbound::Frame(frame));
        }
        for delivery in out.delivered.drain(..) {
            self.queue(delivery.link, Outbound::Settle(delivery));
        }
        for link in out.close.drain(..) {
            self.close(link);
        }
        self.out = out;
    }

    /// Queues `item` for `link`; a link whose queue is full is a slow reader and ends at once. A
    /// frame that is not queued gives its buffer back.
    fn queue(&mut self, link: LinkId, item: Outbound) {
        let Some(connection) = self.links.get(&link) else {
            self.recycle(item);
            return;
        };
        if let Err(refused) = connection.out.try_send(item) {
            connection.kill.notify_one();
            self.links.remove(&link);
            self.server.close_link(link);
            self.recycle(refused.into_inner());
        }
    }

    /// Gives the buffer of an item that was not queued back to the spares.
    fn recycle(&self, item: Outbound) {
        if let Outbound::Frame(frame) = item {
            self.buffers.give(frame);
        }
    }

    /// Forgets `link`: the server drops it, and its connection ends once what is queued is written.
    fn close(&mut self, link: LinkId) {
        self.queue(link, Outbound::Close);
        self.links.remove(&link);
        self.server.close_link(link);
    }
}

/// Pushes `more`'s lists onto `out`'s, in order (what the adversary's calls produce, which do not
/// push onto the batch's lists themselves).
fn append(out: &mut ServerOutputs, mut more: ServerOutputs) {
    out.transmit.append(&mut more.transmit);
    out.close.append(&mut more.close);
    out.events.append(&mut more.events);
    out.changes.append(&mut more.changes);
    out.delivered.append(&mut more.delivered);
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
