//! The client role (Alice, Bob): a sans-IO state machine for both protocols.
//!
//! The caller owns the I/O. It passes in the frames that arrive from the server and an RNG when one
//! may be needed, and sends the frames the client hands back, in order. The client has no clock, no
//! socket and no RNG of its own, so a run is a pure function of its inputs.
//!
//! # Errors and state
//!
//! * A method that returns `Err` leaves the client exactly as it was (`==` to a clone taken before
//!   the call). This covers everything that fails *before* a frame authenticates: malformed bytes,
//!   a forged, replayed or reordered channel frame, a bad handshake response, API misuse.
//! * A frame that *authenticates* on the channel but whose content is refused — a replayed message
//!   id, a message the client does not expect, an e2e envelope that fails — cannot be un-received:
//!   the server did send it, and the channel's receive counter must move past it or the channel
//!   would be dead. So the channel advances, **nothing else changes**, and the refusal is reported as
//!   [`ClientEvent::Dropped`] carrying the typed [`Error`] (SPEC.md §7.2).
//!
//! # Persistence
//!
//! [`Client::export_state`] encodes everything but the channel; [`Client::restore_state`] gives back
//! an offline client that reconnects with [`Client::connect`] (SPEC.md §18). A driver saves the state
//! after every call that changed the client and *before* it sends the frames that call returned: a
//! client restored from a state older than what it sent would use message keys again (§18.5).

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;

use super::pool::FramePool;
use super::replay::{Refusal, ReplayWindows};
use crate::channel::{
    Initiator, InitiatorAwaitingResponse, PROLOGUE, TRANSPORT_OVERHEAD, Transport,
};
use crate::e2e::peers::{Peers, SessionStart};
use crate::e2e::safety_number::SafetyNumber;
use crate::e2e::{E2eError, MAX_ONE_TIME_PREKEYS, ONE_TIME_PREKEYS_PER_UPLOAD};
use crate::error::{Error, MisuseError, ProtocolError};
use crate::state::{
    StateBytes, StateError, read_flag, read_name, read_private_key, read_public_key,
};
use crate::suite::{PrivateKey, PublicKey};
use crate::wire::{
    AckStatus, Body, BundleRefusal, Codec, Envelope, FetchedBundle, HEADER_LEN, IdentityPublic,
    LinkFrame, LinkKind, Message, MessageId, Name, RefusalReason, RejectReason,
    finish_transport_frame,
};

/// What the client tells its user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted the registration; the channel is open.
    Connected,
    /// The server refused the registration (in answer to the handshake, or to `Ready` when the
    /// name or key was bound meanwhile, SPEC.md §5.1); the client is offline again.
    Refused(RefusalReason),
    /// A message arrived and was accepted. How far to trust it is in `protection`: a hop message
    /// is only as authentic as the server, an e2e message is authenticated by its session.
    Received {
        /// The sender's name, as the server labels it (in e2e, also bound into the session's `AD`).
        from: Name,
        /// The id: in hop the sender's id, accepted once per sender (SPEC.md §5.3); in e2e the
        /// server's unauthenticated label for the message (e2e replay protection is the ratchet's).
        id: MessageId,
        /// The content.
        body: Body,
        /// How the message was protected on its way.
        protection: Protection,
    },
    /// An e2e message was sealed and handed to the server (reported for messages that waited for a
    /// bundle, whose ids are assigned only then).
    Sent {
        /// The recipient.
        to: Name,
        /// The id the message travels under.
        id: MessageId,
    },
    /// The server accepted message `id`.
    Acked {
        /// The message's id.
        id: MessageId,
        /// Relayed at once, or queued for an offline recipient.
        status: AckStatus,
    },
    /// The server refused message `id`.
    Rejected {
        /// The message's id.
        id: MessageId,
        /// Why.
        reason: RejectReason,
    },
    /// The server stored this client's bundle.
    BundleStored {
        /// One-time prekeys the server now holds.
        one_time_prekeys: u16,
    },
    /// The server refused this client's bundle.
    BundleRefused(BundleRefusal),
    /// An e2e session with `peer` started (this client initiated it from a bundle, or `peer`'s first
    /// prekey message arrived).
    SessionStarted {
        /// The peer. The session's safety number, to compare out of band, is
        /// [`Client::safety_number`]: computed when asked for (5200 SHA-512 iterations per
        /// identity, SPEC.md §14.1, several milliseconds), not with every session.
        peer: Name,
        /// Whether the handshake used one of the responder's one-time prekeys. Without one, a later
        /// compromise of the responder's identity and signed prekey reveals every message of the
        /// initiator's first sending chain (SPEC.md §11.3).
        one_time_prekey: bool,
    },
    /// `peer` now has another identity than before: its sessions under the old one were deleted
    /// (SPEC.md §14.2). Users who compared the old safety number must compare the new one. Never
    /// reported for a pinned peer, whose identity cannot change.
    IdentityChanged {
        /// The peer.
        peer: Name,
        /// The safety number of the replaced identity.
        old: SafetyNumber,
        /// The safety number of the new one.
        new: SafetyNumber,
    },
    /// The sessions with `peer`, the least recently active peer, were deleted to make room for a
    /// new one ([`crate::e2e::MAX_PEERS`], SPEC.md §11.3).
    PeerEvicted {
        /// The evicted peer.
        peer: Name,
    },
    /// The server said this client's one-time prekeys run low; the client made `made` new ones
    /// and sent them (the upload's answer follows as [`ClientEvent::BundleStored`]).
    PrekeysReplenished {
        /// How many one-time prekeys were made and uploaded.
        made: usize,
    },
    /// Messages waiting for `peer`'s bundle were discarded, unencrypted, because no session could be
    /// started: no bundle, an invalid one, or one whose identity differs from the verified one.
    SendFailed {
        /// The peer.
        peer: Name,
        /// Why.
        error: E2eError,
        /// How many waiting messages were discarded.
        discarded: usize,
    },
    /// An authenticated frame whose content was refused; only the channel advanced.
    Dropped {
        /// Why it was refused.
        error: Error,
    },
}

/// How an accepted message was protected (SPEC.md §5.6, §16): an application shows the two
/// differently, and never takes a hop message for an end-to-end one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protection {
    /// Hop: sealed on each client's channel to the server, which read it and vouches for `from`.
    Hop,
    /// End to end: the session with this peer identity authenticated it; the server could not read
    /// or alter it. The identity is the one whose safety number the users compare.
    E2e {
        /// The peer identity the session is authenticated with.
        identity: IdentityPublic,
    },
}

/// What one call produced: frames to send to the server, in order, and events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOutputs {
    /// Frames for the server, in order.
    pub transmit: Vec<Vec<u8>>,
    /// What happened.
    pub events: Vec<ClientEvent>,
}

/// The channel to the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Link {
    Offline,
    Handshaking(InitiatorAwaitingResponse),
    Online {
        transport: Transport,
        /// Bundle uploads sealed on this channel that the server has not answered yet
        /// (`BundleStored` or `BundleRefused`, in order). They go with the channel: an upload in
        /// flight when it closes may or may not have been stored.
        uploads_unanswered: u32,
    },
}

impl Link {
    const fn state_name(&self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Handshaking(_) => "handshaking",
            Self::Online { .. } => "online",
        }
    }
}

/// A client: its name and static key, the server's public key, the channel, what it accepted, and
/// (for e2e) its identity, prekeys and sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Client {
    name: Name,
    static_key: PrivateKey,
    server_key: PublicKey,
    link: Link,
    last_id: u64,
    accepted: ReplayWindows,
    e2e: Option<Peers>,
}

impl Client {
    /// A hop-only client that will register as `name` with `static_key`, at the server whose static
    /// public key is `server_key` (known in advance: that is what the IK pattern requires).
    #[must_use]
    pub const fn new(name: Name, static_key: PrivateKey, server_key: PublicKey) -> Self {
        Self {
            name,
            static_key,
            server_key,
            link: Link::Offline,
            last_id: 0,
            accepted: ReplayWindows::new(),
            e2e: None,
        }
    }

    /// A client that speaks both protocols, with the e2e identity and prekeys in `peers`.
    #[must_use]
    pub fn with_e2e(
        name: Name,
        static_key: PrivateKey,
        server_key: PublicKey,
        peers: Peers,
    ) -> Self {
        let mut client = Self::new(name, static_key, server_key);
        client.e2e = Some(peers);
        client
    }

    /// A new, offline client with this one's name and long-term keys (its channel static key and,
    /// for e2e, [`Peers::long_term_keys`]) and none of its state: what an attacker who copied the
    /// keys holds. The model checker's compromise oracle only (spec/MODEL.md §5): compiled into its
    /// build alone.
    #[cfg(feature = "model-memo")]
    #[must_use]
    pub fn long_term_copy(&self) -> Self {
        let mut copy = Self::new(self.name.clone(), self.static_key.clone(), self.server_key);
        copy.e2e = self.e2e.as_ref().map(Peers::long_term_keys);
        copy
    }

    /// The client's name.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.name
    }

    /// The static public key of the server this client registers with.
    #[must_use]
    pub const fn server_key(&self) -> PublicKey {
        self.server_key
    }

    /// The client's channel static public key.
    #[must_use]
    pub const fn static_public(&self) -> PublicKey {
        self.static_key.public_key()
    }

    /// Whether the channel is open.
    #[must_use]
    pub const fn is_connected(&self) -> bool {
        matches!(self.link, Link::Online { .. })
    }

    /// The e2e identity, if this client has one.
    #[must_use]
    pub fn identity(&self) -> Option<IdentityPublic> {
        self.e2e.as_ref().map(Peers::identity)
    }

    /// The id of the current signed prekey, if this client has an e2e identity: public, as every
    /// bundle it uploads carries it (SPEC.md §10.2). Rotation changes it.
    #[must_use]
    pub fn signed_prekey_id(&self) -> Option<u32> {
        self.e2e.as_ref().map(Peers::signed_prekey_id)
    }

    /// The safety number of this client's session with `peer`, if there is one.
    #[must_use]
    pub fn safety_number(&self, peer: &Name) -> Option<SafetyNumber> {
        self.e2e.as_ref()?.safety_number(&self.name, peer)
    }

    /// Marks `identity` as verified for `peer` (after comparing safety numbers out of band): a
    /// bundle or prekey message for `peer` with another identity will be refused, and any existing
    /// session with `peer` that uses another identity is deleted (SPEC.md §14.2).
    ///
    /// # Errors
    /// [`MisuseError::NoE2eIdentity`] for a hop-only client; [`E2eError::TooManyPinned`] if `peer`
    /// is not pinned yet and [`crate::e2e::MAX_PINNED`] names are. Nothing changes on error.
    pub fn verify_peer(&mut self, peer: Name, identity: IdentityPublic) -> Result<(), Error> {
        Ok(self.e2e.as_mut().ok_or(MisuseError::NoE2eIdentity)?.pin(peer, identity)?)
    }

    /// Pins the identity behind the safety number the users compared (SPEC.md §14.2): if `number`
    /// is the safety number of the current session with `peer` (compared in constant time), that
    /// session's identity is pinned, as [`Client::verify_peer`] does. The identity comes from the
    /// session the number was computed from, never from a bundle the server supplies, so a key
    /// change between the comparison and this call is refused instead of pinned.
    ///
    /// # Errors
    /// [`MisuseError::NoE2eIdentity`]; [`E2eError::NoSession`] without a session with `peer`;
    /// [`E2eError::SafetyNumberMismatch`] if `number` differs; [`E2eError::TooManyPinned`]. Nothing
    /// changes on error.
    pub fn verify_safety_number(
        &mut self,
        peer: &Name,
        number: &SafetyNumber,
    ) -> Result<(), Error> {
        let peers = self.e2e.as_mut().ok_or(MisuseError::NoE2eIdentity)?;
        let identity = peers
            .session_identity(peer)
            .ok_or_else(|| E2eError::NoSession { name: peer.clone() })?;
        let ours = peers
            .safety_number(&self.name, peer)
            .ok_or_else(|| E2eError::NoSession { name: peer.clone() })?;
        if !bool::from(ours.digits().as_bytes().ct_eq(number.digits().as_bytes())) {
            return Err(E2eError::SafetyNumberMismatch { name: peer.clone() }.into());
        }
        Ok(peers.pin(peer.clone(), identity)?)
    }

    /// Starts the handshake: returns the `HandshakeInit` frame to send. Draws one ephemeral key.
    ///
    /// # Errors
    /// [`MisuseError::AlreadyConnected`] unless offline; channel errors from the handshake.
    pub fn connect<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<Vec<u8>, Error> {
        if !matches!(self.link, Link::Offline) {
            return Err(MisuseError::AlreadyConnected.into());
        }
        let payload = Message::Register { name: self.name.clone() }.encode();
        let initiator = Initiator::new(PROLOGUE, self.static_key.clone(), self.server_key);
        let (awaiting, noise) = initiator.write_message_1(PrivateKey::generate(rng), &payload)?;
        let frame = LinkFrame::handshake_init(noise)?.encode();
        self.link = Link::Handshaking(awaiting);
        Ok(frame)
    }

    /// Forgets the channel (the connection is gone). Everything else is kept.
    pub fn disconnect(&mut self) {
        self.link = Link::Offline;
    }

    /// Everything this client must remember across a restart, encoded as SPEC.md §18 specifies:
    /// name, channel static key, the server's key, the last message id, the hop replay windows and,
    /// for an e2e client, its whole e2e state (identity, prekeys, sessions with their ratchets and
    /// skipped keys, archived sessions, retired base keys, pinned identities, messages waiting for
    /// a bundle). Not the channel: a restored client is offline.
    ///
    /// The bytes hold private keys and the plaintext of messages waiting for a bundle: write them
    /// only to the state file (SPEC.md §2.3), atomically, mode `0600`. Persist after every call
    /// that changed the client and **before** sending the frames it returned (§18.5): a client
    /// restored from an older state would reuse message keys it already used.
    #[must_use]
    pub fn export_state(&self) -> StateBytes {
        crate::state::export(|w| {
            w.name(&self.name);
            w.private_key(&self.static_key);
            w.public_key(&self.server_key);
            w.u64(self.last_id);
            self.accepted.write_state(w);
            w.flag(self.e2e.is_some());
            if let Some(peers) = &self.e2e {
                peers.write_state(w);
            }
        })
    }

    /// The client [`Client::export_state`] encoded, offline. Parsing is strict and total (SPEC.md
    /// §18.4): any input either restores a client whose export is exactly `bytes`, or fails with a
    /// typed error; it never panics, and nothing is half restored. `bytes` holds the client's keys:
    /// the caller erases its buffer once the client is restored (the client keeps its own copies,
    /// in types that erase themselves).
    ///
    /// # Errors
    /// The first check that fails, as a [`StateError`]: framing (size, magic, version, length,
    /// checksum), a field (truncated, bad length or count, invalid value or key, trailing bytes),
    /// or a state no client could have reached ([`StateError::Inconsistent`]).
    pub fn restore_state(bytes: &[u8]) -> Result<Self, StateError> {
        crate::state::restore(bytes, super::MAX_STATE_BODY_LEN, |r| {
            let name = read_name(r)?;
            let static_key = read_private_key(r)?;
            let server_key = read_public_key(r, "server key")?;
            let last_id = r.u64()?;
            let accepted = ReplayWindows::read_state(r)?;
            let e2e = if read_flag(r, "e2e")? { Some(Peers::read_state(r, &name)?) } else { None };
            Ok(Self { name, static_key, server_key, link: Link::Offline, last_id, accepted, e2e })
        })
    }

    /// Hop: seals a plaintext message for `to`; returns its id and the frame to send.
    ///
    /// # Errors
    /// [`MisuseError::NotConnected`], [`MisuseError::IdsExhausted`], or a channel error.
    pub fn send(&mut self, to: &Name, body: Body) -> Result<(MessageId, Vec<u8>), Error> {
        let mut frame = Vec::new();
        let id = self.send_into(to, &body, &mut frame)?;
        Ok((id, frame))
    }

    /// [`Client::send`] into a buffer the caller owns: appends the frame to `frame` (a driver's
    /// write buffer, reused from frame to frame), which grows only if it lacks the room.
    ///
    /// # Errors
    /// As [`Client::send`]; the client and `frame` are then exactly as they were.
    pub fn send_into(
        &mut self,
        to: &Name,
        body: &Body,
        frame: &mut Vec<u8>,
    ) -> Result<MessageId, Error> {
        let id = self.peek_id()?;
        let Link::Online { transport, .. } = &mut self.link else {
            return Err(MisuseError::NotConnected.into());
        };
        let start = frame.len();
        // Room for the longest recipient name: what `seal` reserves for a `Send`.
        frame
            .reserve(2 * HEADER_LEN + SEND_FIELDS_LEN + body.as_bytes().len() + TRANSPORT_OVERHEAD);
        frame.extend_from_slice(&[0; HEADER_LEN]);
        Message::encode_send(frame, id, to, body);
        // `seal_at` changes the transport only if it succeeds, and takes the message off `frame`
        // if not; the id is taken only then.
        seal_at(transport, frame, start)?;
        self.last_id = id.0;
        Ok(id)
    }

    /// e2e: publishes this client's bundle (or the one-time prekeys made since the last upload).
    ///
    /// # Errors
    /// [`MisuseError::NoE2eIdentity`], [`MisuseError::NotConnected`], or a channel error; nothing
    /// changes.
    pub fn upload_bundle(&mut self) -> Result<Vec<u8>, Error> {
        self.with_prekeys_rollback(Self::seal_upload)
    }

    /// e2e: makes a new signed prekey (keeping the previous one, SPEC.md §10.2) and returns the
    /// upload that publishes it.
    ///
    /// Only once the server has stored the current signed prekey — it answered `BundleStored` to
    /// an upload that carries it — and has answered every upload of this connection: the rotation
    /// deletes the signed prekey before the current one, so two rotations before the server stored
    /// the first would leave it handing out a key this client no longer holds, and every session
    /// started from it would fail (`UnknownPrekey`) on an honest network.
    ///
    /// # Errors
    /// As [`Client::upload_bundle`], [`MisuseError::SignedPrekeyNotStored`] before that answer
    /// (after a reconnection: until an upload on the new connection is answered `BundleStored`), or
    /// [`E2eError::PrekeyIdsExhausted`]; nothing changes.
    pub fn rotate_signed_prekey<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        let stored = self.peers()?.signed_prekey_stored();
        let Link::Online { uploads_unanswered, .. } = self.link else {
            return Err(MisuseError::NotConnected.into());
        };
        if !stored || uploads_unanswered > 0 {
            return Err(MisuseError::SignedPrekeyNotStored.into());
        }
        self.with_prekeys_rollback(|client| {
            client.peers()?.rotate_signed_prekey(rng)?;
            client.seal_upload()
        })
    }

    /// e2e: makes `count` more one-time prekeys and returns the upload that publishes them.
    ///
    /// # Errors
    /// As [`Client::upload_bundle`], or [`E2eError::PrekeyIdsExhausted`].
    pub fn replenish_prekeys<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        count: usize,
    ) -> Result<Vec<u8>, Error> {
        self.with_prekeys_rollback(|client| {
            client.peers()?.replenish(rng, count)?;
            client.seal_upload()
        })
    }

    /// Prepares the next upload and seals it; the server's answer is now awaited.
    fn seal_upload(&mut self) -> Result<Vec<u8>, Error> {
        let bundle = self.peers()?.prepare_upload()?;
        let frame = self.seal(&Message::UploadBundle { bundle })?;
        if let Link::Online { uploads_unanswered, .. } = &mut self.link {
            *uploads_unanswered = uploads_unanswered.saturating_add(1);
        }
        Ok(frame)
    }

    /// Takes the server's answer to the oldest unanswered upload of this channel; `false` if none
    /// was awaited (an answer nothing asked for says nothing about what the server stored).
    fn answer_upload(&mut self) -> bool {
        match &mut self.link {
            Link::Online { uploads_unanswered, .. } if *uploads_unanswered > 0 => {
                *uploads_unanswered -= 1;
                true
            }
            _ => false,
        }
    }

    /// Runs `step`, which changes at most the prekey store and (on success only) the channel, and
    /// puts the prekey store back if it fails: the transaction keeps a reference to the shared
    /// prekey store, which `step` copies only if it changes it (at most a few hundred keys), and
    /// never a copy of the whole client.
    fn with_prekeys_rollback(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<Vec<u8>, Error>,
    ) -> Result<Vec<u8>, Error> {
        let saved = self.peers()?.prekey_checkpoint();
        let result = step(self);
        if result.is_err()
            && let Some(peers) = self.e2e.as_mut()
        {
            peers.restore_prekeys(saved);
        }
        result
    }

    /// e2e: sends `body` to `to`. With a session, the message is encrypted and sent at once. Without
    /// one, it waits while the client asks the server for `to`'s bundle; when the bundle arrives
    /// ([`Client::handle`]), the session starts and every waiting message is sent.
    ///
    /// # Errors
    /// [`MisuseError::NoE2eIdentity`], [`MisuseError::NotConnected`],
    /// [`MisuseError::PendingFull`], [`MisuseError::SendToSelf`], or a ratchet or channel error.
    pub fn send_e2e<R: CryptoRng + ?Sized>(
        &mut self,
        to: &Name,
        body: Body,
        rng: &mut R,
    ) -> Result<ClientOutputs, Error> {
        if *to == self.name {
            return Err(MisuseError::SendToSelf.into());
        }
        let mut out = ClientOutputs::default();
        if self.peers()?.has_session(to) {
            let mut frame = Vec::new();
            let id = self.send_e2e_into(to, &body, rng, &mut frame)?;
            out.transmit.push(frame);
            out.events.push(ClientEvent::Sent { to: to.clone(), id });
            return Ok(out);
        }
        if self.peers()?.queue(to, body)? {
            match self.seal(&Message::FetchBundle { name: to.clone() }) {
                Ok(frame) => out.transmit.push(frame),
                Err(error) => {
                    // The message was the first queued for `to`: dequeuing it restores the state.
                    self.peers()?.take_pending(to);
                    return Err(error);
                }
            }
        }
        Ok(out)
    }

    /// e2e: [`Client::send_e2e`] to a peer this client has a session with, into a buffer the
    /// caller owns: appends the frame to `frame` (a driver's write buffer, reused from frame to
    /// frame), the envelope sealed straight into it. Returns the id the message travels under.
    ///
    /// # Errors
    /// As [`Client::send_e2e`], and [`E2eError::NoSession`] without a session with `to` (where
    /// `send_e2e` would queue the message and ask for `to`'s bundle); the client and `frame` are
    /// then exactly as they were.
    pub fn send_e2e_into<R: CryptoRng + ?Sized>(
        &mut self,
        to: &Name,
        body: &Body,
        rng: &mut R,
        frame: &mut Vec<u8>,
    ) -> Result<MessageId, Error> {
        if *to == self.name {
            return Err(MisuseError::SendToSelf.into());
        }
        // Encrypting advances the ratchet, which cannot be undone: first make sure the frame
        // will go out (connected, an id left, room on the channel for the largest envelope).
        let id = self.peek_id()?;
        let Link::Online { transport, .. } = &self.link else {
            return Err(MisuseError::NotConnected.into());
        };
        transport.check_write(MAX_E2E_SEND_LEN)?;
        let start = frame.len();
        // One buffer: room for the link header, the `E2eSend` message up to its envelope, the
        // envelope the ratchet seals after it, and the channel's tag. `encrypt_after` takes the
        // buffer only once nothing can fail any more.
        let sealed = self.peers()?.encrypt_after(to, body, rng, |envelope_len| {
            let mut buffer = std::mem::take(frame);
            let head_len = 2 * HEADER_LEN + E2E_SEND_FIELDS_LEN;
            buffer.reserve(head_len + envelope_len + TRANSPORT_OVERHEAD);
            buffer.extend_from_slice(&[0; HEADER_LEN]);
            Message::encode_e2e_send_head(&mut buffer, id, to, envelope_len);
            buffer
        })?;
        *frame = sealed;
        let Link::Online { transport, .. } = &mut self.link else {
            return Err(MisuseError::NotConnected.into());
        };
        // `check_write` passed: the channel takes it.
        seal_at(transport, frame, start)?;
        self.last_id = id.0;
        Ok(id)
    }

    /// e2e, in two steps: encrypts `body` for `to` now (it takes the next ratchet key) without
    /// sending it. Hand the envelope to [`Client::submit_e2e`] later — for example after a slow
    /// attachment upload — which is how a recipient comes to receive messages out of order.
    ///
    /// # Errors
    /// [`MisuseError::NoE2eIdentity`], [`E2eError::NoSession`], or a ratchet error.
    pub fn seal_e2e<R: CryptoRng + ?Sized>(
        &mut self,
        to: &Name,
        body: &Body,
        rng: &mut R,
    ) -> Result<Envelope, Error> {
        // `encrypt` is transactional: it changes nothing unless it succeeds.
        Ok(self.peers()?.encrypt(to, body, rng)?)
    }

    /// e2e: sends an envelope from [`Client::seal_e2e`]; returns its id and the frame.
    ///
    /// # Errors
    /// [`MisuseError::NotConnected`], [`MisuseError::IdsExhausted`], or a channel error.
    pub fn submit_e2e(
        &mut self,
        to: &Name,
        envelope: Envelope,
    ) -> Result<(MessageId, Vec<u8>), Error> {
        let id = self.peek_id()?;
        let frame = self.seal(&Message::E2eSend { id, to: to.clone(), envelope })?;
        self.last_id = id.0;
        Ok((id, frame))
    }

    /// Handles one frame from the server.
    ///
    /// # Errors
    /// A frame that fails before it authenticates (malformed, forged, replayed, out of order, in the
    /// wrong state): the client is then unchanged. Refused content of an authenticated frame is not
    /// an error but a [`ClientEvent::Dropped`] (see the module docs).
    pub fn handle<R: CryptoRng + ?Sized>(
        &mut self,
        frame: &[u8],
        rng: &mut R,
    ) -> Result<ClientOutputs, Error> {
        let mut out = ClientOutputs::default();
        // The frame is only read: its plaintext goes to a new buffer, where a body stays.
        self.handle_frame(frame, rng, &mut out, &mut FramePool::new())?;
        Ok(out)
    }

    /// [`Client::handle`] in buffers the driver owns and reuses: the frame is decrypted into a
    /// buffer from `pool`, a message's body (or the envelope it is decrypted in) stays in that
    /// buffer, and the outputs are pushed onto `out`'s lists (after what they hold). A driver that
    /// clears `out`'s lists (keeping their room) and gives a body it is done with back to `pool`
    /// ([`crate::wire::Body::into_buffer`], [`FramePool::recycle`]) reads a message without a heap
    /// allocation.
    ///
    /// On success `frame` is consumed: it is left empty, its buffer kept (a body goes to its
    /// [`ClientEvent::Received`] event in the pool's buffer it was decrypted into).
    ///
    /// # Errors
    /// As [`Client::handle`]: the client, `frame`, `out` and `pool` are then exactly as they were.
    pub fn handle_in_place<R: CryptoRng + ?Sized>(
        &mut self,
        frame: &mut Vec<u8>,
        rng: &mut R,
        out: &mut ClientOutputs,
        pool: &mut FramePool,
    ) -> Result<(), Error> {
        self.handle_frame(frame, rng, out, pool)?;
        frame.clear();
        Ok(())
    }

    /// What [`Client::handle_in_place`] does with `frame`, which it only reads.
    fn handle_frame<R: CryptoRng + ?Sized>(
        &mut self,
        frame: &[u8],
        rng: &mut R,
        out: &mut ClientOutputs,
        pool: &mut FramePool,
    ) -> Result<(), Error> {
        let (kind, noise) = LinkFrame::parse(frame)?;
        let state = self.link.state_name();
        match (&self.link, kind) {
            (Link::Handshaking(_), LinkKind::HandshakeResp) => {
                let mut answered = self.on_handshake_response(noise)?;
                out.transmit.append(&mut answered.transmit);
                out.events.append(&mut answered.events);
            }
            (Link::Online { .. }, LinkKind::Transport) => {
                self.read_transport(noise, rng, out, pool)?
            }
            (_, kind) => {
                return Err(ProtocolError::Unexpected { state, got: kind.name() }.into());
            }
        }
        Ok(())
    }

    /// Reads handshake message 2 (`noise`) while handshaking: the channel opens, or the
    /// registration was refused.
    fn on_handshake_response(&mut self, noise: &[u8]) -> Result<ClientOutputs, Error> {
        let state = self.link.state_name();
        let Link::Handshaking(awaiting) = &self.link else {
            return Err(ProtocolError::Unexpected { state, got: "HandshakeResp" }.into());
        };
        let (mut transport, payload) = awaiting.read_message_2(noise)?;
        match Message::decode(&payload)? {
            Message::Welcome { name } if name == self.name => {
                // Key confirmation: the server activates the link only once this first
                // transport frame proves we hold the ephemeral key (SPEC.md §5.1).
                let mut transmit = vec![seal(&mut transport, &Message::Ready)?];
                // A bundle asked for on an earlier connection may never have been answered:
                // ask again for every peer that messages are waiting for (SPEC.md §15.3).
                let awaited: Vec<Name> =
                    self.e2e.iter().flat_map(|p| p.awaited().cloned()).collect();
                for name in awaited {
                    transmit.push(seal(&mut transport, &Message::FetchBundle { name })?);
                }
                self.link = Link::Online { transport, uploads_unanswered: 0 };
                Ok(ClientOutputs { transmit, events: vec![ClientEvent::Connected] })
            }
            Message::Welcome { .. } => Err(ProtocolError::WrongName.into()),
            Message::Refused { reason } => {
                self.link = Link::Offline;
                Ok(ClientOutputs { transmit: vec![], events: vec![ClientEvent::Refused(reason)] })
            }
            other => Err(ProtocolError::Unexpected { state, got: other.type_name() }.into()),
        }
    }

    /// Opens the transport message `noise` on the open channel into a buffer from `pool` and acts
    /// on it (see [`Client::handle_in_place`]); `noise` is only read. Errors only before the
    /// frame authenticates, changing nothing; refused content is reported as
    /// [`ClientEvent::Dropped`].
    fn read_transport<R: CryptoRng + ?Sized>(
        &mut self,
        noise: &[u8],
        rng: &mut R,
        out: &mut ClientOutputs,
        pool: &mut FramePool,
    ) -> Result<(), Error> {
        let Link::Online { transport, .. } = &mut self.link else {
            return Err(MisuseError::NotConnected.into());
        };
        // Whether the buffer comes from the pool, and goes back to it if not kept: a buffer
        // the pool did not have is dropped instead, so that a refused frame leaves the pool as
        // it was and a throwaway pool (the allocating API's) does not grow a list to keep it.
        let pooled = !pool.is_empty();
        let mut plaintext = pool.take_filled(noise.len().saturating_sub(TRANSPORT_OVERHEAD));
        // Transactional: on error the transport is as it was, and the buffer goes back.
        if let Err(error) = transport.read_into(noise, &mut plaintext) {
            if pooled {
                pool.recycle(plaintext);
            }
            return Err(error.into());
        }
        // The frame authenticated: the channel advances whatever the content. `on_message`
        // commits nothing unless it succeeds, so a refusal changes nothing else (what it pushed
        // onto `out` is taken off again).
        let message = if Message::carries_content(&plaintext) {
            // The body (or envelope) stays in the buffer it was decrypted into.
            Message::decode_owned(plaintext)
        } else {
            let message = Message::decode(&plaintext);
            if pooled {
                pool.recycle(plaintext);
            }
            message
        };
        let marks = (out.transmit.len(), out.events.len());
        let acted = message.map_err(Error::from).and_then(|m| self.on_message(m, rng, out));
        if let Err(error) = acted {
            out.transmit.truncate(marks.0);
            out.events.truncate(marks.1);
            out.events.push(ClientEvent::Dropped { error });
        }
        Ok(())
    }

    /// Acts on an authenticated message. Each branch is transactional: it changes nothing unless it
    /// succeeds.
    fn on_message<R: CryptoRng + ?Sized>(
        &mut self,
        message: Message,
        rng: &mut R,
        out: &mut ClientOutputs,
    ) -> Result<(), Error> {
        match message {
            // A client that speaks e2e accepts no hop message: the server could otherwise make it
            // show anything "from" a peer whose e2e identity the user verified (SPEC.md §15.3).
            Message::Deliver { .. }
                if self.e2e.is_some() && !crate::flaws::on(crate::flaws::Flaw::AcceptHopInE2e) =>
            {
                return Err(ProtocolError::Unexpected { state: "e2e", got: "Deliver" }.into());
            }
            Message::Deliver { id, from, body } => {
                self.accept_id(&from, id)?;
                out.events.push(ClientEvent::Received {
                    from,
                    id,
                    body,
                    protection: Protection::Hop,
                });
            }
            Message::E2eDeliver { id, from, envelope } => {
                // No id window: the id is the server's label. Replays are refused by what the
                // envelope authenticates (the ratchet, the base keys, SPEC.md §11.3, §12.5).
                let own = self.name.clone();
                let decrypted = self.peers()?.decrypt_owned(&own, &from, envelope)?;
                if let Some(started) = decrypted.started {
                    self.report_start(&from, started, out);
                }
                let protection = Protection::E2e { identity: decrypted.identity };
                out.events.push(ClientEvent::Received {
                    from,
                    id,
                    body: decrypted.body,
                    protection,
                });
            }
            Message::Ack { id, status } => out.events.push(ClientEvent::Acked { id, status }),
            Message::Reject { id, reason } => out.events.push(ClientEvent::Rejected { id, reason }),
            Message::Refused { reason } => {
                // The answer to `Ready` when the name or key was bound meanwhile (SPEC.md §5.1).
                self.link = Link::Offline;
                out.events.push(ClientEvent::Refused(reason));
            }
            Message::BundleStored { one_time_prekeys } => {
                // Every upload this channel sealed since the last rotation carries the current
                // signed prekey: a rotation waits until no upload is unanswered.
                if self.answer_upload()
                    && let Some(peers) = self.e2e.as_mut()
                {
                    peers.mark_signed_prekey_stored();
                }
                out.events.push(ClientEvent::BundleStored { one_time_prekeys });
            }
            Message::BundleRefused { reason } => {
                self.answer_upload();
                out.events.push(ClientEvent::BundleRefused(reason));
            }
            Message::Bundle { name, bundle } => self.on_bundle(name, &bundle, rng, out)?,
            Message::NoBundle { name } => {
                if !self.peers()?.awaiting_bundle(&name) {
                    return Err(
                        ProtocolError::Unexpected { state: "online", got: "NoBundle" }.into()
                    );
                }
                let discarded = self.peers()?.take_pending(&name).len();
                let error = E2eError::NoBundle { name: name.clone() };
                out.events.push(ClientEvent::SendFailed { peer: name, error, discarded });
            }
            Message::PrekeysLow { one_time_prekeys } => {
                // Top the server's store up by one batch, never past what it accepts (§15.3).
                let room = MAX_ONE_TIME_PREKEYS.saturating_sub(usize::from(one_time_prekeys));
                let made = ONE_TIME_PREKEYS_PER_UPLOAD.min(room);
                if made > 0 {
                    out.transmit.push(self.replenish_prekeys(rng, made)?);
                    out.events.push(ClientEvent::PrekeysReplenished { made });
                }
            }
            other => {
                return Err(
                    ProtocolError::Unexpected { state: "online", got: other.type_name() }.into()
                );
            }
        }
        Ok(())
    }

    /// Reports what starting a session with `peer` did: an identity change (with both safety
    /// numbers), an evicted peer, and the start itself.
    fn report_start(&self, peer: &Name, started: SessionStart, out: &mut ClientOutputs) {
        if let Some(gone) = started.evicted {
            out.events.push(ClientEvent::PeerEvicted { peer: gone });
        }
        if let (Some(old_identity), Some(peers)) = (started.replaced_identity, self.e2e.as_ref()) {
            let own = (&peers.identity(), &self.name);
            let old = SafetyNumber::new(own, (&old_identity, peer));
            if let Some(new) = peers.safety_number(&self.name, peer) {
                out.events.push(ClientEvent::IdentityChanged { peer: peer.clone(), old, new });
            }
        }
        out.events.push(ClientEvent::SessionStarted {
            peer: peer.clone(),
            one_time_prekey: started.one_time_prekey,
        });
    }

    /// A bundle arrived for `name` (SPEC.md §15.3): start a session (unless one was started by the
    /// peer meanwhile) and send every waiting message. A bundle nobody asked for is refused: it
    /// would let the server replace a working session at will. The refusal is a map look-up; no
    /// state is copied. Everything that could fail after the session starts — message ids, room
    /// on the channel — is checked before it starts.
    fn on_bundle<R: CryptoRng + ?Sized>(
        &mut self,
        name: Name,
        bundle: &FetchedBundle,
        rng: &mut R,
        out: &mut ClientOutputs,
    ) -> Result<(), Error> {
        if !self.peers()?.awaiting_bundle(&name) {
            return Err(ProtocolError::Unexpected { state: "online", got: "Bundle" }.into());
        }
        let waiting = self.peers()?.pending_count(&name);
        let count = u64::try_from(waiting).unwrap_or(u64::MAX);
        self.last_id.checked_add(count).ok_or(MisuseError::IdsExhausted)?;
        let Link::Online { transport, .. } = &self.link else {
            return Err(MisuseError::NotConnected.into());
        };
        transport.check_writes(MAX_E2E_SEND_LEN, count)?;
        let waiting = self.peers()?.take_pending(&name);
        if !self.peers()?.has_session(&name) {
            let own = self.name.clone();
            match self.peers()?.start_session(&own, &name, bundle, rng) {
                Ok(started) => self.report_start(&name, started, out),
                Err(error) => {
                    let discarded = waiting.len();
                    out.events.push(ClientEvent::SendFailed { peer: name, error, discarded });
                    return Ok(());
                }
            }
        }
        let total = waiting.len();
        for (sent, body) in waiting.into_iter().enumerate() {
            // Ids and channel room were checked above; only the ratchet could still refuse (a
            // sending chain at 2^32 − 1). The rest is then reported, never dropped silently.
            let frame = self
                .peers()?
                .encrypt(&name, &body, rng)
                .map_err(Error::from)
                .and_then(|envelope| self.submit_e2e(&name, envelope));
            match frame {
                Ok((id, frame)) => {
                    out.transmit.push(frame);
                    out.events.push(ClientEvent::Sent { to: name.clone(), id });
                }
                Err(Error::E2e(error)) => {
                    let discarded = total - sent;
                    out.events.push(ClientEvent::SendFailed { peer: name, error, discarded });
                    return Ok(());
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// Checks and records a hop message id from `from` (SPEC.md §5.3).
    fn accept_id(&mut self, from: &Name, id: MessageId) -> Result<(), Error> {
        if crate::flaws::on(crate::flaws::Flaw::SkipReplayWindow) {
            return Ok(());
        } // seeded flaw hook
        self.accepted.accept(from, id).map_err(|refusal| id_refusal(from, id, refusal))
    }

    /// The id the next message will carry; taken (`last_id` set to it) only once it is sent.
    fn peek_id(&self) -> Result<MessageId, Error> {
        Ok(MessageId(self.last_id.checked_add(1).ok_or(MisuseError::IdsExhausted)?))
    }

    fn peers(&mut self) -> Result<&mut Peers, Error> {
        self.e2e.as_mut().ok_or_else(|| MisuseError::NoE2eIdentity.into())
    }

    /// Seals `message` on the open channel.
    fn seal(&mut self, message: &Message) -> Result<Vec<u8>, Error> {
        let Link::Online { transport, .. } = &mut self.link else {
            return Err(MisuseError::NotConnected.into());
        };
        seal(transport, message)
    }
}

fn id_refusal(from: &Name, id: MessageId, refusal: Refusal) -> Error {
    match refusal {
        Refusal::Replayed => ProtocolError::Replayed { from: from.clone(), id },
        Refusal::OutOfWindow => ProtocolError::OutOfWindow { from: from.clone(), id },
    }
    .into()
}

/// The most an `E2eSend` message's fields before its envelope take: id, name, envelope length.
const E2E_SEND_FIELDS_LEN: usize = 8 + 1 + crate::wire::MAX_NAME_LEN + 2;

/// The most a `Send` message's fields before its body take: the same layout as `E2eSend`'s.
const SEND_FIELDS_LEN: usize = E2E_SEND_FIELDS_LEN;

/// The longest `E2eSend` message frame: header, id, name, and the largest envelope.
const MAX_E2E_SEND_LEN: usize = HEADER_LEN + E2E_SEND_FIELDS_LEN + crate::wire::MAX_ENVELOPE_LEN;

/// Encodes `message`, seals it in `transport` and frames the ciphertext, all in the one buffer
/// that is returned: `link header (6) || ENCRYPT(message frame) || tag (16)`.
///
/// # Errors
/// The channel's refusal (a message too long for one transport message, nonce exhaustion); the
/// transport is then unchanged.
pub(crate) fn seal(transport: &mut Transport, message: &Message) -> Result<Vec<u8>, Error> {
    let capacity = 2 * HEADER_LEN + message.body_len_hint() + TRANSPORT_OVERHEAD;
    let mut frame = Vec::with_capacity(capacity);
    frame.extend_from_slice(&[0; HEADER_LEN]);
    message.encode_into(&mut frame);
    seal_frame(transport, frame)
}

/// Seals `frame[HEADER_LEN..]`, an encoded message after room for the link header, in `transport`,
/// and writes the link header: the frame [`seal`] returns, in the same buffer.
///
/// # Errors
/// As [`seal`]; the transport is then unchanged.
pub(crate) fn seal_frame(transport: &mut Transport, mut frame: Vec<u8>) -> Result<Vec<u8>, Error> {
    seal_at(transport, &mut frame, 0)?;
    Ok(frame)
}

/// [`seal_frame`] of the frame that starts at `frame[start..]`, after what the buffer holds
/// already (a driver's write buffer): seals `frame[start + HEADER_LEN..]` and writes the link
/// header at `start`.
///
/// # Errors
/// As [`seal`]; the transport is then unchanged and `frame` cut back to its first `start`
/// bytes, what it held before the caller appended the message.
pub(crate) fn seal_at(
    transport: &mut Transport,
    frame: &mut Vec<u8>,
    start: usize,
) -> Result<(), Error> {
    // Sealed on `transport` itself, not on a copy committed after the header: the channel's write
    // changes nothing when it refuses, and the header cannot refuse a ciphertext the channel made
    // (checked below, at compile time), so the transport advances only if the whole frame is made.
    let finished = transport
        .write_in_place(frame, start + HEADER_LEN)
        .map_err(Error::from)
        .and_then(|()| Ok(finish_transport_frame(frame.get_mut(start..).unwrap_or_default())?));
    if finished.is_err() {
        frame.truncate(start);
    }
    finished
}

// Every ciphertext `Transport::write_in_place` makes, `TRANSPORT_OVERHEAD ..=
// MAX_NOISE_MESSAGE_LEN` bytes, is within a `Transport` link frame's body bounds: the header
// `seal_at` writes after the channel has advanced cannot be refused.
const _: () = assert!(
    TRANSPORT_OVERHEAD >= crate::wire::TRANSPORT_MIN_LEN
        && crate::channel::MAX_NOISE_MESSAGE_LEN <= crate::wire::MAX_LINK_BODY_LEN
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::testing::handshake;
    use crate::channel::{ChannelError, MAX_NOISE_MESSAGE_LEN};
    use crate::wire::{MAX_ENVELOPE_LEN, MAX_NAME_LEN};

    /// A frame appended after what a buffer holds is sealed there; one the channel refuses (one
    /// byte too long) leaves the transport as it was and the buffer with what it held before.
    #[test]
    fn seal_at_seals_after_what_the_buffer_holds_or_takes_the_message_off_again() {
        let (mut alice, mut server) = handshake(120);
        let longest = MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD;
        let mut buffer = b"held".to_vec();
        buffer.extend_from_slice(&[0; HEADER_LEN]);
        buffer.extend_from_slice(&vec![5; longest + 1]);
        let before = alice.clone();
        assert_eq!(
            seal_at(&mut alice, &mut buffer, 4),
            Err(Error::Channel(ChannelError::MessageTooLong))
        );
        assert_eq!((&alice, &buffer[..]), (&before, &b"held"[..]));
        buffer.extend_from_slice(&[0; HEADER_LEN]);
        buffer.extend_from_slice(b"sealed");
        assert_eq!(seal_at(&mut alice, &mut buffer, 4), Ok(()));
        assert_ne!(alice, before);
        let (kind, noise) = LinkFrame::parse(&buffer[4..]).unwrap();
        assert_eq!((kind, &buffer[..4]), (LinkKind::Transport, &b"held"[..]));
        assert_eq!(server.read(noise).unwrap(), b"sealed");
    }

    /// The bound `send_e2e` checks the channel against is the longest `E2eSend` there is: the
    /// longest name and the largest envelope, encoded; its fields before the envelope are the
    /// id, the name and the envelope's length.
    #[test]
    fn the_longest_e2e_send_is_what_its_bound_says() {
        let to = Name::new(&"n".repeat(MAX_NAME_LEN)).unwrap();
        let envelope = Envelope::new(vec![0; MAX_ENVELOPE_LEN]).unwrap();
        let longest = Message::E2eSend { id: MessageId(u64::MAX), to, envelope }.encode();
        assert_eq!(MAX_E2E_SEND_LEN, longest.len());
        assert_eq!(E2E_SEND_FIELDS_LEN, longest.len() - HEADER_LEN - MAX_ENVELOPE_LEN);
    }
}
