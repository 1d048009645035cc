//! The server role: a sans-IO state machine that terminates every client's channel.
//!
//! The driver numbers each connection with a [`LinkId`] and passes in `(link, frame)`; the server
//! returns frames to send on links, links to close, and events describing what it did and read.
//!
//! Every call is transactional: on error the server is exactly as it was (`==` to a clone taken
//! before the call); the driver may then close the link.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand_core::CryptoRng;

use super::client::{seal, seal_at, seal_frame};
use super::directory::Directory;
use super::durable::{Delivery, DurableChange, Snapshot, SnapshotError};
use super::mailbox::{MAILBOX_CAPACITY, Mailbox, queued_len};
use super::pool::FramePool;
use crate::channel::{PROLOGUE, Responder, TRANSPORT_OVERHEAD, Transport};
use crate::e2e::{E2eError, PREKEYS_LOW_WATER};
use crate::error::{Error, MisuseError, ProtocolError};
use crate::hop::{AllowAll, ContentPolicy, Verdict};
use crate::suite::{PrivateKey, PublicKey};
use crate::wire::{
    AckStatus, Body, BundleRefusal, Codec, FetchedBundle, HEADER_LEN, LinkFrame, LinkKind, Message,
    MessageId, Name, RefusalReason, RejectReason, RelayRequest, UploadedBundle,
};

/// The most names a server binds (SPEC.md §5.1, §8). Each bound name costs the server a binding,
/// a directory entry (at most `MAX_ONE_TIME_PREKEYS` keys, 3.6 KB) and a mailbox; a registration
/// beyond it is refused with `Refused { ServerFull }`.
pub const MAX_ACCOUNTS: usize = 4096;

/// The most bytes all mailboxes together hold (SPEC.md §5.4, §8): 64 MiB, where 4096 full
/// mailboxes would hold 4 GiB. A message that would exceed it is refused to its sender with
/// `Reject { ServerFull }`, never dropped silently.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// The server's resource bounds (SPEC.md §8). The defaults are [`MAX_ACCOUNTS`] and
/// [`MAX_QUEUED_BYTES`]; a deployment (or a test of the bounds) may set smaller ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerLimits {
    /// The most names bound at once.
    pub max_accounts: usize,
    /// The most bytes queued in all mailboxes together (each message counted by its encoded
    /// length).
    pub max_queued_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self { max_accounts: MAX_ACCOUNTS, max_queued_bytes: MAX_QUEUED_BYTES }
    }
}

/// The driver's number for one client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// What the server did, for the driver's log and the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerEvent {
    /// `name` completed a handshake on `link` (its name is bound to the client's static key); the link
    /// becomes active when the client confirms it ([`ServerEvent::Online`]).
    Registered {
        /// The link.
        link: LinkId,
        /// The name, now bound to the client's static key.
        name: Name,
    },
    /// The client on `link` confirmed its channel: `link` is now `name`'s active link, any older link
    /// of `name` is closed, and its queued messages were sent.
    Online {
        /// The link.
        link: LinkId,
        /// The client's name.
        name: Name,
        /// How many queued messages were delivered.
        delivered: usize,
    },
    /// An authenticated frame on `link` whose content was refused; only the channel advanced.
    Dropped {
        /// The link.
        link: LinkId,
        /// Why.
        error: Error,
    },
    /// A registration on `link` was refused; the link is closed.
    Refused {
        /// The link.
        link: LinkId,
        /// Why.
        reason: RefusalReason,
    },
    /// The server opened a message and read its content. In hop this is every message.
    Read {
        /// Sender.
        from: Name,
        /// Recipient.
        to: Name,
        /// Sender's id.
        id: MessageId,
        /// The plaintext the server saw.
        body: Body,
    },
    /// Message `id` from `from` went to `to`'s open channel, or into its mailbox.
    Accepted {
        /// Sender.
        from: Name,
        /// Recipient.
        to: Name,
        /// Sender's id.
        id: MessageId,
        /// Relayed or queued.
        status: AckStatus,
    },
    /// An e2e envelope arrived: the server sees who sends to whom and the size, not the content.
    Envelope {
        /// Sender.
        from: Name,
        /// Recipient.
        to: Name,
        /// Sender's id.
        id: MessageId,
        /// The envelope's length in bytes.
        len: usize,
    },
    /// `name` published a bundle (or replenished or rotated it).
    BundleStored {
        /// The owner.
        name: Name,
        /// One-time prekeys now held for it.
        one_time_prekeys: usize,
    },
    /// An upload from `name` was refused; nothing changed.
    BundleRefused {
        /// The uploader.
        name: Name,
        /// Why.
        reason: BundleRefusal,
    },
    /// `by` fetched `name`'s bundle; the one-time prekey handed out (if any) is now deleted.
    BundleFetched {
        /// Who asked.
        by: Name,
        /// Whose bundle.
        name: Name,
        /// The id of the one-time prekey handed out, if any was left.
        one_time_prekey: Option<u32>,
    },
    /// `by` asked for `name`'s bundle and there is none.
    NoBundle {
        /// Who asked.
        by: Name,
        /// Whose bundle.
        name: Name,
    },
    /// Message `id` from `from` was refused.
    Rejected {
        /// Sender.
        from: Name,
        /// Sender's id.
        id: MessageId,
        /// Why.
        reason: RejectReason,
    },
}

/// What one call produced: frames to send (in order), links to close (after sending), events, and
/// for a durable server the changes to store first and the deliveries to settle after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOutputs {
    /// Frames to send, in order, each on its link.
    pub transmit: Vec<(LinkId, Vec<u8>)>,
    /// Links to close once their frames are sent.
    pub close: Vec<LinkId>,
    /// What happened.
    pub events: Vec<ServerEvent>,
    /// A durable server's changes to its durable state, in order; empty for a server without a
    /// store. The driver commits them atomically and durably before it sends any frame of
    /// `transmit` (SPEC.md §9.2); one transaction may also hold other calls' changes.
    pub changes: Vec<DurableChange>,
    /// A durable server's mailboxes sent in `transmit` and still held: once a delivery's frames
    /// are written to its link, the driver passes it to [`Server::settle`].
    pub delivered: Vec<Delivery>,
}

impl ServerOutputs {
    /// Appends `more`'s lists to these.
    fn append(&mut self, mut more: Self) {
        self.transmit.append(&mut more.transmit);
        self.close.append(&mut more.close);
        self.events.append(&mut more.events);
        self.changes.append(&mut more.changes);
        self.delivered.append(&mut more.delivered);
    }
}

/// A channel with a registered client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OpenLink {
    name: Name,
    /// The client's static key, which `name` is bound to once the link is confirmed.
    key: PublicKey,
    transport: Transport,
    /// Whether the client has proved, with its first transport frame (`Ready`), that it holds the
    /// handshake's ephemeral key. Until then the link receives nothing and displaces nothing: a
    /// replayed handshake message 1 never gets this far (SPEC.md §5.1).
    confirmed: bool,
}

/// The relay server, generic over its hop [`ContentPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Server<P: ContentPolicy = AllowAll> {
    static_key: PrivateKey,
    policy: P,
    links: BTreeMap<LinkId, OpenLink>,
    /// Each confirmed link by its client's name: `links` the other way round, for its confirmed
    /// links only (at most one per name), kept in step wherever a link is confirmed or removed,
    /// so that routing a message to its recipient is a look-up rather than a scan of every link.
    online: BTreeMap<Name, LinkId>,
    /// Bound names and their static keys; `keys` is the same binding the other way round: one
    /// static key binds one name, one name one static key (SPEC.md §5.1).
    ///
    /// These two, the mailboxes and the directory — what grows with the accounts, where `links`
    /// holds only the open channels — are shared copy-on-write: a clone of the server (the model
    /// checker's and the fuzzers' every state) shares them, and `Arc::make_mut` copies one on its
    /// first change while it is shared. `==` and `Hash` look through the `Arc`s; none holds a
    /// secret.
    accounts: Arc<BTreeMap<Name, PublicKey>>,
    keys: Arc<BTreeMap<PublicKey, Name>>,
    mailboxes: Arc<BTreeMap<Name, Mailbox>>,
    /// What all mailboxes hold, in bytes (at most `limits.max_queued_bytes`).
    queued_bytes: usize,
    directory: Arc<Directory>,
    limits: ServerLimits,
    /// Whether the server reports [`DurableChange`]s and keeps mailboxes until [`Server::settle`]
    /// (see [`Server::durable`]).
    durable: bool,
}

impl Server<AllowAll> {
    /// A server with the default policy (relay everything).
    #[must_use]
    pub fn new(static_key: PrivateKey) -> Self {
        Self::with_policy(static_key, AllowAll)
    }
}

impl<P: ContentPolicy> Server<P> {
    /// A server that applies `policy` to every hop plaintext.
    #[must_use]
    pub fn with_policy(static_key: PrivateKey, policy: P) -> Self {
        Self {
            static_key,
            policy,
            links: BTreeMap::new(),
            online: BTreeMap::new(),
            accounts: Arc::default(),
            keys: Arc::default(),
            mailboxes: Arc::default(),
            queued_bytes: 0,
            directory: Arc::default(),
            limits: ServerLimits::default(),
            durable: false,
        }
    }

    /// The same server, with an empty store behind it: from now on every change to its durable
    /// state is reported in [`ServerOutputs::changes`], and a mailbox is removed only when the
    /// driver [settles](Server::settle) its delivery (SPEC.md §9.2). Call it before any frame.
    #[must_use]
    pub const fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// The same server, durable, with the state a store kept: bindings, mailboxes and bundles. It
    /// has no links; every client handshakes again.
    ///
    /// # Errors
    /// [`SnapshotError`] for a snapshot no server could have written, or one beyond this server's
    /// limits.
    pub fn restore(mut self, snapshot: Snapshot) -> Result<Self, SnapshotError> {
        self.durable = true;
        self.links.clear();
        self.online.clear();
        let mut accounts = BTreeMap::new();
        let mut keys = BTreeMap::new();
        let mut mailboxes = BTreeMap::new();
        let mut directory = Directory::default();
        self.queued_bytes = 0;
        for (name, key) in snapshot.accounts {
            if accounts.insert(name.clone(), key).is_some()
                || keys.insert(key, name.clone()).is_some()
            {
                return Err(SnapshotError::DuplicateBinding(name));
            }
        }
        if accounts.len() > self.limits.max_accounts {
            return Err(SnapshotError::OverLimit);
        }
        for stored in snapshot.mailboxes {
            if !accounts.contains_key(&stored.name) {
                return Err(SnapshotError::Unbound(stored.name));
            }
            let relayable =
                |m: &Message| matches!(m, Message::Deliver { .. } | Message::E2eDeliver { .. });
            if mailboxes.contains_key(&stored.name) || !stored.messages.iter().all(relayable) {
                return Err(SnapshotError::BadMailbox(stored.name));
            }
            if stored.messages.len() > MAILBOX_CAPACITY {
                return Err(SnapshotError::OverLimit);
            }
            let mailbox = Mailbox::restored(stored.head, stored.messages);
            self.queued_bytes = self.queued_bytes.saturating_add(mailbox.bytes());
            mailboxes.insert(stored.name, mailbox);
        }
        if self.queued_bytes > self.limits.max_queued_bytes {
            return Err(SnapshotError::OverLimit);
        }
        for (name, entry) in snapshot.directory {
            if !accounts.contains_key(&name) {
                return Err(SnapshotError::Unbound(name));
            }
            directory.restore_entry(name, entry);
        }
        self.accounts = Arc::new(accounts);
        self.keys = Arc::new(keys);
        self.mailboxes = Arc::new(mailboxes);
        self.directory = Arc::new(directory);
        Ok(self)
    }

    /// The durable state as a store would hold it: what [`Server::restore`] takes back.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            accounts: self.accounts.iter().map(|(name, key)| (name.clone(), *key)).collect(),
            mailboxes: self
                .mailboxes
                .iter()
                .map(|(name, mailbox)| super::durable::StoredMailbox {
                    name: name.clone(),
                    head: mailbox.head(),
                    messages: mailbox.iter().cloned().collect(),
                })
                .collect(),
            directory: self
                .accounts
                .keys()
                .filter_map(|name| Some((name.clone(), self.directory.entry(name)?)))
                .collect(),
        }
    }

    /// Whether the server reports its durable changes ([`Server::durable`]).
    #[must_use]
    pub const fn is_durable(&self) -> bool {
        self.durable
    }

    /// A durable server's mailbox `delivery` was written to its link: its messages are removed.
    /// Returns the change to store (none if they were already removed — by an earlier delivery of
    /// the same messages, for example). A server that is not durable has nothing to settle.
    pub fn settle(&mut self, delivery: &Delivery) -> Vec<DurableChange> {
        let Some(mailbox) = self.mailboxes.get(&delivery.name) else { return Vec::new() };
        if !self.durable || mailbox.head() >= delivery.until {
            return Vec::new();
        }
        let Some(mailbox) = Arc::make_mut(&mut self.mailboxes).get_mut(&delivery.name) else {
            return Vec::new();
        };
        let freed = mailbox.settle(delivery.until);
        self.queued_bytes = self.queued_bytes.saturating_sub(freed);
        vec![DurableChange::Removed { name: delivery.name.clone(), until: mailbox.head() }]
    }

    /// The same server with other resource bounds.
    #[must_use]
    pub const fn with_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How many names are bound.
    #[must_use]
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// How many bytes all mailboxes hold together.
    #[must_use]
    pub const fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The static public key clients must know in advance.
    #[must_use]
    pub const fn public_key(&self) -> PublicKey {
        self.static_key.public_key()
    }

    /// The static key bound to `name`, if it ever registered.
    #[must_use]
    pub fn account(&self, name: &Name) -> Option<PublicKey> {
        self.accounts.get(name).copied()
    }

    /// Whether `name` has an open channel.
    #[must_use]
    pub fn is_online(&self, name: &Name) -> bool {
        self.link_of(name).is_some()
    }

    /// How many messages wait for `name`.
    #[must_use]
    pub fn queued(&self, name: &Name) -> usize {
        self.mailboxes.get(name).map_or(0, Mailbox::len)
    }

    /// How many one-time prekeys the directory holds for `name`.
    #[must_use]
    pub fn one_time_prekeys(&self, name: &Name) -> usize {
        self.directory.one_time_count(name)
    }

    /// The confirmed link on which `name` is connected, if any.
    #[must_use]
    pub fn link_of(&self, name: &Name) -> Option<LinkId> {
        self.online.get(name).copied()
    }

    /// Forgets `link` (the connection is gone). Messages for its client queue from now on.
    pub fn close_link(&mut self, link: LinkId) {
        if let Some(open) = self.links.remove(&link)
            && open.confirmed
        {
            self.online.remove(&open.name);
        }
    }

    /// Handles one frame received on `link`.
    ///
    /// # Errors
    /// Malformed, unauthentic or unexpected input; the server is then unchanged.
    pub fn handle<R: CryptoRng + ?Sized>(
        &mut self,
        link: LinkId,
        frame: &[u8],
        rng: &mut R,
    ) -> Result<ServerOutputs, Error> {
        let mut out = ServerOutputs::default();
        // The frame is only read: its plaintext goes to a new buffer, where a hop body stays.
        self.handle_frame(link, frame, rng, &mut out, &mut FramePool::new())?;
        Ok(out)
    }

    /// [`Server::handle`] in buffers the driver owns and reuses: the frame is decrypted into a
    /// buffer from `pool`, a relayed body or envelope is sealed from there into the recipient's
    /// frame, the frames are sealed into buffers from `pool`, and the outputs are pushed onto
    /// `out`'s lists (after what they hold). A driver that sends `out`'s frames, gives their
    /// buffers back to `pool` ([`FramePool::recycle`]) and clears `out`'s lists, keeping their
    /// room, relays a message without a heap allocation.
    ///
    /// On success `frame` is consumed: it is left empty, its buffer kept (a hop body the server
    /// read goes to the [`ServerEvent::Read`] event in the pool's buffer it was decrypted into).
    ///
    /// # Errors
    /// As [`Server::handle`]: the server, `frame`, `out` and `pool` are then exactly as they were.
    pub fn handle_in_place<R: CryptoRng + ?Sized>(
        &mut self,
        link: LinkId,
        frame: &mut Vec<u8>,
        rng: &mut R,
        out: &mut ServerOutputs,
        pool: &mut FramePool,
    ) -> Result<(), Error> {
        self.handle_frame(link, frame, rng, out, pool)?;
        frame.clear();
        Ok(())
    }

    /// What [`Server::handle_in_place`] does with `frame`, which it only reads.
    fn handle_frame<R: CryptoRng + ?Sized>(
        &mut self,
        link: LinkId,
        frame: &[u8],
        rng: &mut R,
        out: &mut ServerOutputs,
        pool: &mut FramePool,
    ) -> Result<(), Error> {
        let (kind, noise) = LinkFrame::parse(frame)?;
        match (kind, self.links.get(&link)) {
            (LinkKind::HandshakeInit, None) => {
                let accepted = self.accept(link, noise, rng)?;
                out.append(accepted);
            }
            (LinkKind::Transport, Some(_)) => self.read_transport(link, noise, out, pool)?,
            (kind, open) => {
                let state = if open.is_some() { "open" } else { "no channel" };
                return Err(ProtocolError::Unexpected { state, got: kind.name() }.into());
            }
        }
        Ok(())
    }

    /// Opens the transport message `noise` from `link`, which has a channel, and acts on it
    /// (what [`Server::open_transport`] and [`Server::process`] do together), in buffers from
    /// `pool`: the plaintext is decrypted into one, where a relay request's content is borrowed
    /// from and never copied but into the recipient's frame, and where any other message is
    /// decoded from, its content staying there. `noise` is only read. Errors only before the
    /// frame authenticates, changing nothing; refused content is reported as
    /// [`ServerEvent::Dropped`].
    fn read_transport(
        &mut self,
        link: LinkId,
        noise: &[u8],
        out: &mut ServerOutputs,
        pool: &mut FramePool,
    ) -> Result<(), Error> {
        let open = self.links.get_mut(&link).ok_or(MisuseError::UnknownLink)?;
        // Whether the buffer comes from the pool, and goes back to it if not kept: a buffer
        // the pool did not have is dropped instead, so that a refused frame leaves the pool as
        // it was and a throwaway pool (the allocating API's) does not grow a list to keep it.
        let pooled = !pool.is_empty();
        let mut plaintext = pool.take_filled(noise.len().saturating_sub(TRANSPORT_OVERHEAD));
        // Transactional: on error the transport is as it was, and the buffer goes back.
        if let Err(error) = open.transport.read_into(noise, &mut plaintext) {
            if pooled {
                pool.recycle(plaintext);
            }
            return Err(error.into());
        }
        let (from, confirmed) = (open.name.clone(), open.confirmed);
        // A relay request, its content (the plaintext's tail) counted rather than borrowed, so
        // that any other message can take the buffer.
        let request = Message::decode_relay_request(&plaintext).map(|request| {
            request.map(|RelayRequest { e2e, id, to, content }| (e2e, id, to, content.len()))
        });
        let handled = match request {
            Err(error) => Err(error.into()),
            Ok(Some((e2e, ..))) if !confirmed => {
                let got = if e2e { "E2eSend" } else { "Send" };
                Err(ProtocolError::Unexpected { state: "unconfirmed", got }.into())
            }
            Ok(Some((e2e, id, to, len))) => {
                let content = plaintext.get(plaintext.len().saturating_sub(len)..);
                let request = RelayRequest { e2e, id, to, content: content.unwrap_or_default() };
                // Sealed on the links' own transports, not on copies: see `relay`.
                self.relay(link, &from, &request, pool)
                    .map(|relayed| (relayed, e2e, id, request.to, len))
            }
            Ok(None) => {
                // Any other message is acted on with a copy of the transport, committed with the
                // rest of what it changes (these messages are not on the relay path).
                let sender = open.transport.clone();
                // The message is decoded from the buffer it was decrypted into: no copy.
                let handled = self.on_message(link, sender, from, confirmed, plaintext);
                match handled {
                    Ok(more) => out.append(more),
                    Err(error) => out.events.push(ServerEvent::Dropped { link, error }),
                }
                return Ok(());
            }
        };
        let (relayed, e2e, id, to, len) = match handled {
            Ok(handled) => handled,
            Err(error) => {
                if pooled {
                    pool.recycle(plaintext);
                }
                out.events.push(ServerEvent::Dropped { link, error });
                return Ok(());
            }
        };
        let seen = if e2e {
            if pooled {
                pool.recycle(plaintext);
            }
            ServerEvent::Envelope { from, to, id, len }
        } else {
            // The body the server read, where it was decrypted: the buffer's tail, not moved.
            let start = plaintext.len().saturating_sub(len);
            // `decode_relay_request` held it to a body's bounds: `Body::at` accepts it.
            ServerEvent::Read { from, to, id, body: Body::at(plaintext, start).unwrap_or_default() }
        };
        relayed.push_into(seen, out);
        Ok(())
    }

    /// Acts on an authenticated message from `from` on `link`. `sender` is a copy of the link's
    /// transport after reading it, on which the answers are sealed and which is committed with
    /// the rest; a relay request's frames are sealed on the links' own transports instead
    /// ([`Server::relay`]). Commits only on success.
    fn on_message(
        &mut self,
        link: LinkId,
        sender: Transport,
        from: Name,
        confirmed: bool,
        plaintext: Vec<u8>,
    ) -> Result<ServerOutputs, Error> {
        // The body (or envelope) stays in the decrypted buffer: no new allocation.
        let message = Message::decode_owned(plaintext)?;
        if !confirmed {
            return match message {
                Message::Ready => self.confirm(link, sender, from),
                other => {
                    Err(ProtocolError::Unexpected { state: "unconfirmed", got: other.type_name() }
                        .into())
                }
            };
        }
        match message {
            Message::Send { id, to, body } => {
                let request = RelayRequest { e2e: false, id, to, content: body.as_bytes() };
                let relayed = self.relay(link, &from, &request, &mut FramePool::new())?;
                let to = request.to;
                Ok(relayed.into_outputs(ServerEvent::Read { from, to, id, body }))
            }
            Message::E2eSend { id, to, envelope } => {
                let content = envelope.as_bytes();
                let request = RelayRequest { e2e: true, id, to, content };
                let relayed = self.relay(link, &from, &request, &mut FramePool::new())?;
                let (to, len) = (request.to, content.len());
                Ok(relayed.into_outputs(ServerEvent::Envelope { from, to, id, len }))
            }
            Message::UploadBundle { bundle } => self.store_bundle(link, sender, from, &bundle),
            Message::FetchBundle { name } => self.fetch_bundle(link, sender, from, name),
            other => {
                Err(ProtocolError::Unexpected { state: "open", got: other.type_name() }.into())
            }
        }
    }

    /// The client proved it holds the channel's keys: make `link` the name's active link, close any
    /// older one, and deliver its mailbox (SPEC.md §5.1).
    fn confirm(
        &mut self,
        link: LinkId,
        mut sender: Transport,
        name: Name,
    ) -> Result<ServerOutputs, Error> {
        let mut out = ServerOutputs::default();
        let key = self.links.get(&link).map(|open| open.key).ok_or(MisuseError::UnknownLink)?;
        // The name is bound only now, after key confirmation; another link may have bound the
        // name or the key since message 1 (SPEC.md §5.1).
        if let Some(reason) = self.binding_refusal(&name, &key) {
            let frame = seal(&mut sender, &Message::Refused { reason })?;
            self.links.remove(&link);
            out.transmit.push((link, frame));
            out.close.push(link);
            out.events.push(ServerEvent::Refused { link, reason });
            return Ok(out);
        }
        let mut waiting = self.mailboxes.get(&name).cloned().unwrap_or_default();
        let delivered = waiting.len();
        // A durable server keeps the mailbox until the driver settles the delivery; a crash
        // before that sends it again (SPEC.md §5.4).
        let freed = if self.durable { 0 } else { waiting.bytes() };
        if self.durable {
            for message in waiting.iter() {
                out.transmit.push((link, seal(&mut sender, message)?));
            }
            if delivered > 0 {
                let until = waiting.next_position();
                out.delivered.push(Delivery { link, name: name.clone(), until });
            }
        } else {
            for message in waiting.drain() {
                out.transmit.push((link, seal(&mut sender, &message)?));
            }
        }
        // A client that was offline while its one-time prekeys were taken hears it now (§15.2).
        let held = self.directory.one_time_count(&name);
        if self.directory.has_bundle(&name) && held <= PREKEYS_LOW_WATER {
            let one_time_prekeys = u16::try_from(held).unwrap_or(u16::MAX);
            out.transmit
                .push((link, seal(&mut sender, &Message::PrekeysLow { one_time_prekeys })?));
        }
        // Everything fallible is done: commit.
        if let Some(old) = self.online.insert(name.clone(), link) {
            self.links.remove(&old);
            out.close.push(old);
        }
        // Binding a name to the key it is bound to already changes nothing (`binding_refusal`
        // let no other name hold the key): the maps are not copied for it.
        if self.accounts.get(&name) != Some(&key) {
            if self.durable {
                out.changes.push(DurableChange::Bound { name: name.clone(), key });
            }
            Arc::make_mut(&mut self.accounts).insert(name.clone(), key);
            Arc::make_mut(&mut self.keys).insert(key, name.clone());
        }
        if !self.durable && self.mailboxes.contains_key(&name) {
            Arc::make_mut(&mut self.mailboxes).remove(&name);
        }
        self.queued_bytes = self.queued_bytes.saturating_sub(freed);
        if let Some(open) = self.links.get_mut(&link) {
            open.transport = sender;
            open.confirmed = true;
        }
        out.events.push(ServerEvent::Online { link, name, delivered });
        Ok(out)
    }

    /// Why `name` may not be bound to `key` now, if it may not (SPEC.md §5.1): the name is bound
    /// to another key (`NameTaken`); the key is bound to another name (`KeyInUse`); or the name is
    /// new and the server binds no more (`ServerFull`).
    fn binding_refusal(&self, name: &Name, key: &PublicKey) -> Option<RefusalReason> {
        match self.accounts.get(name) {
            Some(bound)
                if bound != key && !crate::flaws::on(crate::flaws::Flaw::SkipNameBinding) =>
            {
                Some(RefusalReason::NameTaken)
            }
            Some(_) => None,
            None if self.keys.get(key).is_some_and(|bound| bound != name) => {
                Some(RefusalReason::KeyInUse)
            }
            None if self.accounts.len() >= self.limits.max_accounts => {
                Some(RefusalReason::ServerFull)
            }
            None => None,
        }
    }

    /// Opens one transport frame from `link` and commits the channel step, without acting on the
    /// content; returns the sender's name and the plaintext.
    ///
    /// [`Server::handle`] is exactly `open_transport` followed by [`Server::process`]. The two halves
    /// are public for drivers that play a *malicious* server (the `--mitm` runner, the model
    /// checker's attacker): they hold exactly the keys the server holds and may do with a plaintext
    /// whatever they like before (or instead of) processing it honestly.
    ///
    /// # Errors
    /// A frame that does not parse or authenticate, or a link without a channel; the server is then
    /// unchanged.
    pub fn open_transport(&mut self, link: LinkId, frame: &[u8]) -> Result<(Name, Vec<u8>), Error> {
        let (kind, noise) = LinkFrame::parse(frame)?;
        self.open_link_frame(link, kind, noise)
    }

    fn open_link_frame(
        &mut self,
        link: LinkId,
        kind: LinkKind,
        noise: &[u8],
    ) -> Result<(Name, Vec<u8>), Error> {
        let Some(open) = self.links.get_mut(&link) else {
            return Err(ProtocolError::Unexpected { state: "no channel", got: kind.name() }.into());
        };
        if kind != LinkKind::Transport {
            return Err(ProtocolError::Unexpected { state: "open", got: kind.name() }.into());
        }
        let mut transport = open.transport.clone();
        let plaintext = transport.read(noise)?;
        open.transport = transport;
        Ok((open.name.clone(), plaintext))
    }

    /// Acts on a plaintext opened from `link` by [`Server::open_transport`]. Every step commits only
    /// on success; content that is refused (malformed, unexpected) changes nothing and is reported as
    /// [`ServerEvent::Dropped`] (SPEC.md §7.2). Takes the plaintext buffer: a relayed body or
    /// envelope stays in it.
    pub fn process(&mut self, link: LinkId, plaintext: Vec<u8>) -> ServerOutputs {
        let Some(open) = self.links.get(&link) else {
            let error = MisuseError::UnknownLink.into();
            return ServerOutputs {
                events: vec![ServerEvent::Dropped { link, error }],
                ..Default::default()
            };
        };
        let (sender, from, confirmed) = (open.transport.clone(), open.name.clone(), open.confirmed);
        match self.on_message(link, sender, from, confirmed, plaintext) {
            Ok(out) => out,
            Err(error) => ServerOutputs {
                events: vec![ServerEvent::Dropped { link, error }],
                ..Default::default()
            },
        }
    }

    /// Seals `message` in `link`'s channel and returns the frame; see [`Server::open_transport`].
    ///
    /// # Errors
    /// [`MisuseError::UnknownLink`], or a channel error; the server is then unchanged.
    pub fn seal_transport(&mut self, link: LinkId, message: &Message) -> Result<Vec<u8>, Error> {
        let open = self.links.get_mut(&link).ok_or(MisuseError::UnknownLink)?;
        let mut transport = open.transport.clone();
        let frame = seal(&mut transport, message)?;
        open.transport = transport;
        Ok(frame)
    }

    /// Seals `plaintext` in `link`'s channel as it is — bytes the caller encoded, which need not be
    /// a valid message — and returns the frame: [`Server::seal_transport`] without the encoding,
    /// for drivers playing a malicious server (see [`Server::open_transport`]) that send what no
    /// honest server would, as the model checker's attacker does to test that clients refuse it.
    ///
    /// # Errors
    /// [`MisuseError::UnknownLink`], or a channel error (a plaintext too long for one transport
    /// message); the server is then unchanged.
    pub fn seal_plaintext(&mut self, link: LinkId, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let open = self.links.get_mut(&link).ok_or(MisuseError::UnknownLink)?;
        let mut frame = Vec::with_capacity(HEADER_LEN + plaintext.len() + TRANSPORT_OVERHEAD);
        frame.extend_from_slice(&[0; HEADER_LEN]);
        frame.extend_from_slice(plaintext);
        // `seal_frame` changes the transport only if it succeeds.
        seal_frame(&mut open.transport, frame)
    }

    /// What answering `FetchBundle { name }` hands out — the bundle with its oldest one-time prekey,
    /// which is deleted — without sending it anywhere. For drivers playing a malicious server (see
    /// [`Server::open_transport`]): a man in the middle fetches the real bundle this way. It reports
    /// no [`DurableChange`]: a malicious server keeps no honest store.
    pub fn take_bundle(&mut self, name: &Name) -> Option<FetchedBundle> {
        Arc::make_mut(&mut self.directory).fetch(name)
    }

    /// Stores an uploaded bundle and answers `BundleStored` or `BundleRefused` (SPEC.md §15.2).
    fn store_bundle(
        &mut self,
        link: LinkId,
        mut sender: Transport,
        from: Name,
        bundle: &UploadedBundle,
    ) -> Result<ServerOutputs, Error> {
        // `Directory::upload` changes nothing when it refuses, so the copy is committed either way.
        let mut directory = Arc::clone(&self.directory);
        let (reply, event) = match Arc::make_mut(&mut directory).upload(&from, bundle) {
            Ok(count) => (
                // The directory holds at most MAX_ONE_TIME_PREKEYS (100), which fits a u16.
                Message::BundleStored {
                    one_time_prekeys: u16::try_from(count).unwrap_or(u16::MAX),
                },
                ServerEvent::BundleStored { name: from.clone(), one_time_prekeys: count },
            ),
            Err(E2eError::Bundle(reason)) => (
                Message::BundleRefused { reason },
                ServerEvent::BundleRefused { name: from.clone(), reason },
            ),
            Err(other) => return Err(other.into()),
        };
        let frame = seal(&mut sender, &reply)?;
        let changes = match (&reply, directory.entry(&from)) {
            (Message::BundleStored { .. }, Some(entry)) if self.durable => {
                vec![DurableChange::Directory { name: from, entry }]
            }
            _ => Vec::new(),
        };
        self.commit_link(link, sender);
        self.directory = directory;
        Ok(ServerOutputs {
            transmit: vec![(link, frame)],
            events: vec![event],
            changes,
            ..Default::default()
        })
    }

    /// Answers `FetchBundle` with the bundle and its oldest one-time prekey, deleted on the way out.
    fn fetch_bundle(
        &mut self,
        link: LinkId,
        mut sender: Transport,
        by: Name,
        name: Name,
    ) -> Result<ServerOutputs, Error> {
        let mut out = ServerOutputs::default();
        // What the fetch hands out, without changing the directory yet: the one-time prekey is
        // deleted only once every frame is sealed, so it leaves only with the reply.
        let fetched = self.directory.peek_for(&name, &by);
        let Some((bundle, takes_one_time)) = fetched else {
            let frame = seal(&mut sender, &Message::NoBundle { name: name.clone() })?;
            self.commit_link(link, sender);
            out.transmit.push((link, frame));
            out.events.push(ServerEvent::NoBundle { by, name });
            return Ok(out);
        };
        let one_time_prekey = bundle.one_time_prekey.map(|k| k.id);
        let reply = Message::Bundle { name: name.clone(), bundle };
        let frame = seal(&mut sender, &reply)?;
        out.transmit.push((link, frame));
        // Few of the owner's one-time prekeys left: tell the owner, if it is online (§15.2).
        let held = self.directory.one_time_count(&name).saturating_sub(usize::from(takes_one_time));
        let mut owner = None;
        if takes_one_time
            && held <= PREKEYS_LOW_WATER
            && let Some(owner_link) = self.link_of(&name)
        {
            let one_time_prekeys = u16::try_from(held).unwrap_or(u16::MAX);
            let notice = Message::PrekeysLow { one_time_prekeys };
            let transport = if owner_link == link {
                &mut sender
            } else {
                let stored = self.links.get(&owner_link).map(|l| l.transport.clone());
                &mut owner.insert((owner_link, stored.ok_or(MisuseError::UnknownLink)?)).1
            };
            out.transmit.push((owner_link, seal(transport, &notice)?));
        }
        // Everything fallible is done: commit.
        if takes_one_time {
            Arc::make_mut(&mut self.directory).hand_out_one_time(&name, &by);
            // The prekey is deleted in the store before the `Bundle` carrying it leaves (§9.2).
            if self.durable
                && let Some(entry) = self.directory.entry(&name)
            {
                out.changes.push(DurableChange::Directory { name: name.clone(), entry });
            }
        }
        self.commit_link(link, sender);
        if let Some((owner_link, transport)) = owner {
            self.commit_link(owner_link, transport);
        }
        out.events.push(ServerEvent::BundleFetched { by, name, one_time_prekey });
        Ok(out)
    }

    fn commit_link(&mut self, link: LinkId, transport: Transport) {
        if let Some(open) = self.links.get_mut(&link) {
            open.transport = transport;
        }
    }

    /// Answers a `HandshakeInit` with `Refused { reason }` in handshake message 2, changing
    /// nothing: for a driver that turns a connection away before it becomes a link (beyond its
    /// connection limit, SPEC.md §9.2). The driver then closes the connection.
    ///
    /// # Errors
    /// The frame is not a `HandshakeInit` that authenticates; the driver just closes.
    pub fn refuse<R: CryptoRng + ?Sized>(
        &self,
        frame: &[u8],
        reason: RefusalReason,
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        let (kind, noise) = LinkFrame::parse(frame)?;
        if kind != LinkKind::HandshakeInit {
            return Err(ProtocolError::Unexpected { state: "no channel", got: kind.name() }.into());
        }
        let received = Responder::new(PROLOGUE, self.static_key.clone()).read_message_1(noise)?;
        let reply = Message::Refused { reason }.encode();
        let (_, noise) = received.write_message_2(PrivateKey::generate(rng), &reply)?;
        Ok(LinkFrame::handshake_resp(noise)?.encode())
    }

    /// Responds to handshake message 1 on a fresh link: register, or refuse.
    fn accept<R: CryptoRng + ?Sized>(
        &mut self,
        link: LinkId,
        noise: &[u8],
        rng: &mut R,
    ) -> Result<ServerOutputs, Error> {
        let received = Responder::new(PROLOGUE, self.static_key.clone()).read_message_1(noise)?;
        let client_key = received.remote_static();
        let refusal = match Message::decode(received.payload())? {
            Message::Register { name } => match self.binding_refusal(&name, &client_key) {
                Some(reason) => Err(reason),
                None => Ok(name),
            },
            _ => Err(RefusalReason::NotARegistration),
        };
        let mut out = ServerOutputs::default();
        let name = match refusal {
            Ok(name) => name,
            Err(reason) => {
                let reply = Message::Refused { reason }.encode();
                let (_, noise) = received.write_message_2(PrivateKey::generate(rng), &reply)?;
                out.transmit.push((link, LinkFrame::handshake_resp(noise)?.encode()));
                out.close.push(link);
                out.events.push(ServerEvent::Refused { link, reason });
                return Ok(out);
            }
        };
        let reply = Message::Welcome { name: name.clone() }.encode();
        let (transport, noise) = received.write_message_2(PrivateKey::generate(rng), &reply)?;
        out.transmit.push((link, LinkFrame::handshake_resp(noise)?.encode()));
        // Everything fallible is done: commit. The link stays unconfirmed until `Ready`, and the
        // name is bound only then: a replayed message 1 binds nothing and displaces no confirmed
        // link. An older *unconfirmed* link of the same name is closed, so replays cannot pile up
        // dangling links: there is at most one unconfirmed link per name.
        let stale: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(id, open)| !open.confirmed && open.name == name && **id != link)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.links.remove(&id);
            out.close.push(id);
        }
        self.links.insert(
            link,
            OpenLink { name: name.clone(), key: client_key, transport, confirmed: false },
        );
        out.events.push(ServerEvent::Registered { link, name });
        Ok(out)
    }

    /// Seals a relayed message's frames — the delivery on its recipient's link, if online, then
    /// the answer on `link`, the sender's — on the links' transports themselves: each frame an
    /// encoded message after room for the link header. Either both are sealed, or neither (and
    /// no transport changes): a transport's write changes nothing when it refuses, so only the
    /// answer, sealed after the delivery has advanced its channel, must not be refused; whether
    /// `link` takes it (after the delivery, for a message to oneself: two nonces, in order) is
    /// checked before anything is sealed. Sealing on the transports, not on copies committed
    /// afterwards, saves copying and writing back a transport per link on every relayed message.
    fn seal_relayed(
        &mut self,
        link: LinkId,
        delivery: Option<&mut (LinkId, Vec<u8>)>,
        ack: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let to_self = delivery.as_ref().is_some_and(|(to_link, _)| *to_link == link);
        let writes = if to_self { 2 } else { 1 };
        let ack_len = ack.len().saturating_sub(HEADER_LEN);
        self.transport_mut(link)?.check_writes(ack_len, writes)?;
        if let Some((to_link, frame)) = delivery {
            seal_at(self.transport_mut(*to_link)?, frame, 0)?;
        }
        // Checked above: `link`'s transport takes the answer.
        seal_at(self.transport_mut(link)?, ack, 0)
    }

    /// The transport of `link`, which has a channel.
    fn transport_mut(&mut self, link: LinkId) -> Result<&mut Transport, Error> {
        let open = self.links.get_mut(&link).ok_or(MisuseError::UnknownLink)?;
        Ok(&mut open.transport)
    }

    /// Relays a message: hop content is read and checked by the policy; an e2e envelope is passed
    /// on unopened (SPEC.md §5.2, §15.2). `link`'s transport has read the request. The frames are
    /// sealed into buffers from `pool` (where they go back on error), on the links' transports
    /// themselves, and nothing is committed unless every frame is sealed: see
    /// [`Server::seal_relayed`]. What the server saw — the first of the two events — is the
    /// caller's to report: the body is wherever the caller holds it, `request` only borrows it.
    fn relay(
        &mut self,
        link: LinkId,
        from: &Name,
        request: &RelayRequest<'_>,
        pool: &mut FramePool,
    ) -> Result<Relayed, Error> {
        let &RelayRequest { e2e, id, ref to, content } = request;
        let denied = !e2e && self.policy.check(from, to, content) == Verdict::Deny;
        let refusal = if !self.accounts.contains_key(to) {
            Some(RejectReason::UnknownRecipient)
        } else if denied {
            Some(RejectReason::Policy)
        } else {
            None
        };
        let mut delivery = None;
        let mut change = None;
        let outcome = match (refusal, self.link_of(to)) {
            (Some(reason), _) => Outcome::Rejected(reason),
            (None, Some(to_link)) => {
                let mut frame = pool.take();
                frame.reserve(
                    2 * HEADER_LEN + RELAY_FIELDS_LEN + content.len() + TRANSPORT_OVERHEAD,
                );
                frame.extend_from_slice(&[0; HEADER_LEN]);
                Message::encode_delivery(&mut frame, e2e, id, from, content);
                delivery = Some((to_link, frame));
                Outcome::Relayed
            }
            (None, None) => {
                // Queued: the one case where the content is kept, in a message of its own.
                let deliver = if e2e {
                    let envelope = crate::wire::Envelope::new(content.to_vec())?;
                    Message::E2eDeliver { id, from: from.clone(), envelope }
                } else {
                    Message::Deliver { id, from: from.clone(), body: Body::new(content.to_vec())? }
                };
                let len = queued_len(&deliver);
                if self.queued_bytes.saturating_add(len) > self.limits.max_queued_bytes {
                    Outcome::Rejected(RejectReason::ServerFull)
                } else {
                    let mut mailbox = self.mailboxes.get(to).cloned().unwrap_or_default();
                    let position = mailbox.next_position();
                    let stored = self.durable.then(|| deliver.clone());
                    match mailbox.push(deliver) {
                        Ok(()) => {
                            // Stored before the `Ack { Queued }` leaves (SPEC.md §9.2).
                            change = stored.map(|message| DurableChange::Queued {
                                to: to.clone(),
                                position,
                                message,
                            });
                            Outcome::Queued(mailbox, len)
                        }
                        Err(_) => Outcome::Rejected(RejectReason::MailboxFull),
                    }
                }
            }
        };
        let (reply, answer) = match &outcome {
            Outcome::Rejected(reason) => (
                Message::Reject { id, reason: *reason },
                ServerEvent::Rejected { from: from.clone(), id, reason: *reason },
            ),
            Outcome::Relayed | Outcome::Queued(..) => {
                let status = if matches!(outcome, Outcome::Queued(..)) {
                    AckStatus::Queued
                } else {
                    AckStatus::Relayed
                };
                (
                    Message::Ack { id, status },
                    ServerEvent::Accepted { from: from.clone(), to: to.clone(), id, status },
                )
            }
        };
        let mut frame = pool.take();
        frame.reserve(2 * HEADER_LEN + reply.body_len_hint() + TRANSPORT_OVERHEAD);
        frame.extend_from_slice(&[0; HEADER_LEN]);
        reply.encode_into(&mut frame);
        if let Err(error) = self.seal_relayed(link, delivery.as_mut(), &mut frame) {
            // Back to the pool empty, as the sent frames they would have become go back.
            frame.clear();
            pool.recycle(frame);
            if let Some((_, mut delivery)) = delivery {
                delivery.clear();
                pool.recycle(delivery);
            }
            return Err(error);
        }
        // Everything fallible is done: commit.
        if let Outcome::Queued(mailbox, len) = outcome {
            Arc::make_mut(&mut self.mailboxes).insert(to.clone(), mailbox);
            self.queued_bytes += len;
        }
        Ok(Relayed { delivery, ack: (link, frame), answer, change })
    }
}

/// The fields of a relay message before its content, at their longest: id, name, content length.
const RELAY_FIELDS_LEN: usize = 8 + 1 + crate::wire::MAX_NAME_LEN + 2;

/// What relaying a message produced, committed already: the frames (the delivery if the recipient
/// is online, the sender's answer), the answer's event and a durable server's change.
struct Relayed {
    delivery: Option<(LinkId, Vec<u8>)>,
    ack: (LinkId, Vec<u8>),
    answer: ServerEvent,
    change: Option<DurableChange>,
}

impl Relayed {
    /// Pushes the frames, then `seen` (what the server read or saw of the message) and the
    /// answer's event, then the change, onto `out`.
    fn push_into(self, seen: ServerEvent, out: &mut ServerOutputs) {
        out.transmit.extend(self.delivery);
        out.transmit.push(self.ack);
        out.events.push(seen);
        out.events.push(self.answer);
        out.changes.extend(self.change);
    }

    /// The outputs of a call that relayed this message and did nothing else.
    fn into_outputs(self, seen: ServerEvent) -> ServerOutputs {
        let mut out = ServerOutputs::default();
        self.push_into(seen, &mut out);
        out
    }
}

/// Where a relayed message went, with the mailbox to commit if it was queued.
enum Outcome {
    Relayed,
    /// Queued, with the mailbox to commit and the bytes the message adds to the server's total.
    Queued(Mailbox, usize),
    Rejected(RejectReason),
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::channel::ChannelError;
    use crate::roles::Client;

    const ALICE: LinkId = LinkId(1);
    const BOB: LinkId = LinkId(2);

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    /// A server with Alice (on [`ALICE`]) and Bob (on [`BOB`]) connected, and Alice.
    fn alice_and_bob_online() -> (Server, Client) {
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        let mut server = Server::new(PrivateKey::generate(&mut rng));
        let mut alice =
            Client::new(name("alice"), PrivateKey::generate(&mut rng), server.public_key());
        let mut bob = Client::new(name("bob"), PrivateKey::generate(&mut rng), server.public_key());
        for (link, client) in [(ALICE, &mut alice), (BOB, &mut bob)] {
            let mut frames = vec![client.connect(&mut rng).unwrap()];
            while let Some(frame) = frames.pop() {
                for (to, answer) in server.handle(link, &frame, &mut rng).unwrap().transmit {
                    assert_eq!(to, link);
                    frames.extend(client.handle(&answer, &mut rng).unwrap().transmit);
                }
            }
        }
        assert!(server.is_online(&name("alice")) && server.is_online(&name("bob")));
        (server, alice)
    }

    /// Sets the sending nonce of the server's side of `link` to `n`.
    fn server_sends_from(server: &mut Server, link: LinkId, n: u64) {
        assert!(server.transport_mut(link).unwrap().advance_send_nonce(n));
    }

    /// The server relays `frame` from Alice in buffers from a pool that holds enough for the
    /// call, and must refuse to answer it with `NonceExhausted`: the frame was read — the server
    /// is exactly as if it had only opened it ([`Server::open_transport`]) — and nothing is
    /// sealed, on any link, nor kept from the pool.
    fn relay_is_dropped_having_only_read(server: &mut Server, frame: &[u8]) {
        let mut read_only = server.clone();
        read_only.open_transport(ALICE, frame).unwrap();
        let mut pool = FramePool::new();
        for _ in 0..3 {
            pool.recycle(Vec::with_capacity(256));
        }
        let (mut frame, mut out) = (frame.to_vec(), ServerOutputs::default());
        let rng = &mut ChaCha20Rng::seed_from_u64(0);
        server.handle_in_place(ALICE, &mut frame, rng, &mut out, &mut pool).unwrap();
        let error = Error::Channel(ChannelError::NonceExhausted);
        let dropped = ServerOutputs {
            events: vec![ServerEvent::Dropped { link: ALICE, error }],
            ..Default::default()
        };
        assert_eq!((out, pool.len()), (dropped, 3));
        assert_eq!(*server, read_only, "a channel advanced for a frame that was not sent");
    }

    /// The `Ack` is sealed after the delivery, on the links' own transports: a sender's channel
    /// that cannot take the `Ack` must leave the recipient's channel as it was (the delivery
    /// is not sealed), and one with room for exactly the `Ack` relays.
    #[test]
    fn a_relay_whose_answer_the_channel_cannot_take_seals_nothing() {
        let (mut server, mut alice) = alice_and_bob_online();
        let (_, frame) = alice.send(&name("bob"), Body::new(b"hi".to_vec()).unwrap()).unwrap();
        server_sends_from(&mut server, ALICE, u64::MAX);
        relay_is_dropped_having_only_read(&mut server, &frame);

        let (mut server, mut alice) = alice_and_bob_online();
        let (id, frame) = alice.send(&name("bob"), Body::new(b"hi".to_vec()).unwrap()).unwrap();
        server_sends_from(&mut server, ALICE, u64::MAX - 1);
        let out = server.handle(ALICE, &frame, &mut ChaCha20Rng::seed_from_u64(0)).unwrap();
        let links: Vec<LinkId> = out.transmit.iter().map(|(link, _)| *link).collect();
        assert_eq!(links, [BOB, ALICE]);
        let (from, to, status) = (name("alice"), name("bob"), AckStatus::Relayed);
        assert_eq!(out.events[1], ServerEvent::Accepted { from, to, id, status });
    }

    /// A message to oneself is sealed twice on one channel, the delivery and then the `Ack`:
    /// with room for one of them only, neither is.
    #[test]
    fn a_message_to_oneself_the_channel_has_room_for_once_seals_nothing() {
        let (mut server, mut alice) = alice_and_bob_online();
        let (_, frame) = alice.send(&name("alice"), Body::new(b"me".to_vec()).unwrap()).unwrap();
        server_sends_from(&mut server, ALICE, u64::MAX - 1);
        relay_is_dropped_having_only_read(&mut server, &frame);
    }
}
