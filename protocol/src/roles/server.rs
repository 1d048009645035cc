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

use super::client::{seal, seal_frame};
use super::directory::Directory;
use super::durable::{Delivery, DurableChange, Snapshot, SnapshotError};
use super::mailbox::{MAILBOX_CAPACITY, Mailbox, queued_len};
use crate::channel::{PROLOGUE, Responder, TRANSPORT_OVERHEAD, Transport};
use crate::e2e::{E2eError, PREKEYS_LOW_WATER};
use crate::error::{Error, MisuseError, ProtocolError};
use crate::hop::{AllowAll, ContentPolicy, Verdict};
use crate::suite::{PrivateKey, PublicKey};
use crate::wire::{
    AckStatus, Body, BundleRefusal, Codec, Envelope, FetchedBundle, HEADER_LEN, LinkFrame,
    LinkKind, Message, MessageId, Name, RefusalReason, RejectReason, UploadedBundle,
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
        self.links.iter().find(|(_, open)| open.confirmed && &open.name == name).map(|(id, _)| *id)
    }

    /// Forgets `link` (the connection is gone). Messages for its client queue from now on.
    pub fn close_link(&mut self, link: LinkId) {
        self.links.remove(&link);
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
        let (kind, noise) = LinkFrame::parse(frame)?;
        match (kind, self.links.get(&link)) {
            (LinkKind::HandshakeInit, None) => self.accept(link, noise, rng),
            (LinkKind::Transport, Some(_)) => {
                let (_, plaintext) = self.open_link_frame(link, kind, noise)?;
                Ok(self.process(link, plaintext))
            }
            (kind, open) => {
                let state = if open.is_some() { "open" } else { "no channel" };
                Err(ProtocolError::Unexpected { state, got: kind.name() }.into())
            }
        }
    }

    /// Acts on an authenticated message from `from` on `link`. `sender` is the link's transport
    /// after reading it. Commits only on success.
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
                self.relay(link, sender, from, id, to, Payload::Hop(body))
            }
            Message::E2eSend { id, to, envelope } => {
                self.relay(link, sender, from, id, to, Payload::E2e(envelope))
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
        if let Some(old) = self.link_of(&name) {
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

    /// Relays a message: hop content is read and checked by the policy; an e2e envelope is passed
    /// on unopened (SPEC.md §5.2, §15.2). `sender` is the sender's transport after reading the
    /// request; every channel is advanced on a copy, and nothing is committed until every frame is
    /// sealed.
    fn relay(
        &mut self,
        link: LinkId,
        sender: Transport,
        from: Name,
        id: MessageId,
        to: Name,
        payload: Payload,
    ) -> Result<ServerOutputs, Error> {
        // Two frames (the delivery and the sender's answer) and two events, in every outcome.
        let mut out = ServerOutputs {
            transmit: Vec::with_capacity(2),
            events: Vec::with_capacity(2),
            ..Default::default()
        };
        let (denied, envelope_len, deliver) = match payload {
            Payload::Hop(body) => {
                let denied = self.policy.check(&from, &to, body.as_bytes()) == Verdict::Deny;
                (denied, 0, Message::Deliver { id, from: from.clone(), body })
            }
            Payload::E2e(envelope) => {
                let len = envelope.as_bytes().len();
                (false, len, Message::E2eDeliver { id, from: from.clone(), envelope })
            }
        };
        let refusal = if !self.accounts.contains_key(&to) {
            Some(RejectReason::UnknownRecipient)
        } else if denied {
            Some(RejectReason::Policy)
        } else {
            None
        };
        // Every frame is sealed on a working copy of its link's transport, one copy per link, so a
        // message to oneself advances the one channel twice instead of sealing twice under one nonce.
        let mut sender = sender;
        let mut recipient: Option<(LinkId, Transport)> = None;
        let outcome = match (refusal, self.link_of(&to)) {
            (Some(reason), _) => Outcome::Rejected(reason),
            (None, Some(to_link)) => {
                let transport = if to_link == link {
                    &mut sender
                } else {
                    let stored = self.links.get(&to_link).map(|l| l.transport.clone());
                    &mut recipient.insert((to_link, stored.ok_or(MisuseError::UnknownLink)?)).1
                };
                out.transmit.push((to_link, seal(transport, &deliver)?));
                Outcome::Relayed
            }
            (None, None) => {
                let len = queued_len(&deliver);
                if self.queued_bytes.saturating_add(len) > self.limits.max_queued_bytes {
                    Outcome::Rejected(RejectReason::ServerFull)
                } else {
                    let mut mailbox = self.mailboxes.get(&to).cloned().unwrap_or_default();
                    let position = mailbox.next_position();
                    match mailbox.push(deliver.clone()) {
                        // Stored before the `Ack { Queued }` leaves (SPEC.md §9.2).
                        Ok(()) if self.durable => {
                            let message = deliver.clone();
                            out.changes.push(DurableChange::Queued {
                                to: to.clone(),
                                position,
                                message,
                            });
                            Outcome::Queued(mailbox, len)
                        }
                        Ok(()) => Outcome::Queued(mailbox, len),
                        Err(_) => Outcome::Rejected(RejectReason::MailboxFull),
                    }
                }
            }
        };
        // What the server saw: the plaintext of a hop message (moved, not copied, into the event),
        // only the length of an e2e envelope.
        out.events.push(match deliver {
            Message::Deliver { body, .. } => {
                ServerEvent::Read { from: from.clone(), to: to.clone(), id, body }
            }
            _ => {
                ServerEvent::Envelope { from: from.clone(), to: to.clone(), id, len: envelope_len }
            }
        });
        let (reply, event) = match &outcome {
            Outcome::Rejected(reason) => (
                Message::Reject { id, reason: *reason },
                ServerEvent::Rejected { from, id, reason: *reason },
            ),
            Outcome::Relayed | Outcome::Queued(..) => {
                let status = if matches!(outcome, Outcome::Queued(..)) {
                    AckStatus::Queued
                } else {
                    AckStatus::Relayed
                };
                (
                    Message::Ack { id, status },
                    ServerEvent::Accepted { from, to: to.clone(), id, status },
                )
            }
        };
        out.transmit.push((link, seal(&mut sender, &reply)?));
        out.events.push(event);
        // Everything fallible is done: commit.
        self.commit_link(link, sender);
        if let Some((to_link, transport)) = recipient {
            self.commit_link(to_link, transport);
        }
        if let Outcome::Queued(mailbox, len) = outcome {
            Arc::make_mut(&mut self.mailboxes).insert(to, mailbox);
            self.queued_bytes += len;
        }
        Ok(out)
    }
}

/// What a relay request carries.
enum Payload {
    /// Hop: the plaintext, which the server reads and checks.
    Hop(Body),
    /// e2e: an envelope the server cannot open.
    E2e(Envelope),
}

/// Where a relayed message went, with the mailbox to commit if it was queued.
enum Outcome {
    Relayed,
    /// Queued, with the mailbox to commit and the bytes the message adds to the server's total.
    Queued(Mailbox, usize),
    Rejected(RejectReason),
}
