//! A client's e2e state: its identity and prekeys, its sessions with each peer, the identities the
//! user verified, and the messages waiting for a peer's bundle (SPEC.md §11.3, §14.2, §15.3).
//!
//! Every method that can fail commits only on success: a forged, replayed, relabelled, truncated or
//! out-of-window envelope leaves [`Peers`] exactly as it was. The ratchet is transactional itself,
//! so a session is advanced in place and nothing larger than one session is ever copied.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand_core::CryptoRng;

use super::envelope::{self, ParsedEnvelope};
use super::identity::IdentityKeyPair;
use super::prekeys::PrekeyStore;
use super::ratchet::MAX_SKIPPED_KEYS;
use super::ratchet::{Header, Session, WorkBudget};
use super::safety_number::SafetyNumber;
use super::x3dh::{self, PrekeyHeader};
use super::{
    E2eError, MAX_ARCHIVED_SESSIONS, MAX_PEERS, MAX_PENDING, MAX_PINNED,
    MAX_SKIPPED_KEYS_PER_CLIENT, RETIRED_BASE_KEYS, bundle,
};
use crate::state::{
    StateError, StateWriter, ensure, read_count, read_flag, read_identity, read_next_name,
    read_public_key, read_small_count, read_valid_identity,
};
use crate::suite::{AEAD_TAG_LEN, PrivateKey, PublicKey};
use crate::wire::{
    Body, Envelope, FetchedBundle, IdentityPublic, MAX_BODY_LEN, Name, Reader, UploadedBundle,
    WireError,
};

/// A session with one peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PeerSession {
    ratchet: Session,
    /// The peer's identity as this session knows it.
    peer: IdentityPublic,
    /// `EK_A` of the handshake that made this session (SPEC.md §11.3).
    base_key: PublicKey,
    /// While we are the initiator and have not yet heard back: what each prekey message repeats.
    prekey: Option<PrekeyHeader>,
}

/// A peer's current session and the sessions it replaced, newest first. Every session of a peer
/// uses the same identity: a new identity deletes the old one's sessions ([`SessionStart`]), so
/// making an archived session current can never switch identity silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct PeerSessions {
    current: Option<PeerSession>,
    /// Up to [`MAX_ARCHIVED_SESSIONS`] replaced sessions, newest first. A message that fails in the
    /// current session is tried in these, and the one that opens it becomes current again: that is
    /// how two clients that started sessions with each other at the same time converge, and how
    /// messages still in flight when a session was replaced are not lost.
    archived: VecDeque<PeerSession>,
    /// Base keys of sessions that left the archive (SPEC.md §11.3 rule 2).
    retired: VecDeque<PublicKey>,
    /// When this peer was last active (the [`Peers`] clock at its last session start, accepted
    /// message or sent message): the least recently active peer is evicted first (§11.3).
    last_active: u64,
}

impl PeerSessions {
    /// The identity the peer's sessions use (all of them use the same one).
    fn identity(&self) -> Option<IdentityPublic> {
        self.current.as_ref().or_else(|| self.archived.front()).map(|s| s.peer)
    }

    /// Makes `session` current. Sessions under another identity are deleted first (their base keys
    /// retired), and that identity is returned; otherwise the current session is archived and the
    /// oldest archived one retired.
    fn install(&mut self, session: PeerSession) -> Option<IdentityPublic> {
        let replaced = self.identity().filter(|old| *old != session.peer);
        self.delete_other_than(&session.peer);
        if let Some(old) = self.current.replace(session) {
            self.archived.push_front(old);
            if self.archived.len() > MAX_ARCHIVED_SESSIONS
                && let Some(gone) = self.archived.pop_back()
            {
                self.retire(gone.base_key);
            }
        }
        replaced
    }

    /// Deletes the sessions if their identity is not `identity` (all use one, so all go or none
    /// does), retiring their base keys (SPEC.md §11.3, §14.2): a replayed prekey message of a
    /// deleted session is refused by rule 2 even once that identity is accepted again.
    fn delete_other_than(&mut self, identity: &IdentityPublic) {
        if self.identity().is_some_and(|old| old != *identity) {
            let gone: Vec<PublicKey> = self
                .current
                .take()
                .into_iter()
                .chain(self.archived.drain(..))
                .map(|s| s.base_key)
                .collect();
            for base_key in gone {
                self.retire(base_key);
            }
        }
    }

    fn retire(&mut self, base_key: PublicKey) {
        if self.retired.len() >= RETIRED_BASE_KEYS {
            self.retired.pop_front();
        }
        self.retired.push_back(base_key);
    }

    /// Whether this peer may be evicted to make room for a new one: not while we initiated a
    /// session it has not yet answered (its first reply would find no session) — the caller also
    /// spares pinned peers and peers with messages waiting for their bundle.
    fn evictable(&self) -> bool {
        self.current.as_ref().is_none_or(|s| s.prekey.is_none())
    }

    fn sessions_mut(&mut self) -> impl Iterator<Item = &mut PeerSession> {
        // Oldest first: archived from the back, then the current one.
        self.archived.iter_mut().rev().chain(self.current.as_mut())
    }

    fn skipped_key_count(&self) -> usize {
        self.current.iter().chain(&self.archived).map(|s| s.ratchet.skipped_key_count()).sum()
    }

    /// Makes archived session `index` current again; the current one goes to the front of the
    /// archive, as the newest archived session (SPEC.md §11.3).
    fn promote(&mut self, index: usize) {
        if let Some(session) = self.archived.remove(index)
            && let Some(old) = self.current.replace(session)
        {
            self.archived.push_front(old);
        }
    }

    fn knows_base_key(&self, base_key: &PublicKey) -> bool {
        self.retired.contains(base_key)
    }
}

/// What decrypting an envelope produced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decrypted {
    /// The plaintext.
    pub body: Body,
    /// The peer identity of the session that opened the envelope: the identity the message is
    /// authenticated as coming from.
    pub identity: IdentityPublic,
    /// Set if this envelope started a new session (a prekey message from a new base key).
    pub started: Option<SessionStart>,
}

/// What starting a session (from a fetched bundle, or from a peer's first prekey message) did
/// besides installing it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionStart {
    /// Whether the handshake used one of the responder's one-time prekeys (SPEC.md §11.3: without
    /// one, a later compromise of the responder's identity and signed prekey reveals the
    /// initiator's first sending chain).
    pub one_time_prekey: bool,
    /// The identity the peer's sessions used before, if this session brought another one: those
    /// sessions are deleted (SPEC.md §14.2). Never set for a pinned peer, whose identity cannot
    /// change.
    pub replaced_identity: Option<IdentityPublic>,
    /// The peer whose sessions were evicted to make room (SPEC.md §11.3, [`MAX_PEERS`]).
    pub evicted: Option<Name>,
}

/// A client's e2e state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peers {
    identity: IdentityKeyPair,
    /// The prekey store, shared copy-on-write: cloning a client (as the model checker and the
    /// fuzzers do with every state, and a transaction with its checkpoint) shares the store, up to
    /// a few hundred private keys, instead of copying it, and `Arc::make_mut` copies it on the
    /// first change while it is shared, which is rare — a one-time prekey used, a replenishment,
    /// a rotation, an upload. Nothing else changes: `==` and `Hash` look through the `Arc` at the
    /// store, and a private key still zeroizes when its last owner drops it — a store is dropped,
    /// and each of its keys zeroized, when the last `Arc` to it is; a copy `make_mut` makes is a
    /// store of its own with its own owners; and a key removed from an unshared store is dropped
    /// there and then, as before.
    prekeys: Arc<PrekeyStore>,
    peers: BTreeMap<Name, PeerSessions>,
    pinned: BTreeMap<Name, IdentityPublic>,
    pending: BTreeMap<Name, Vec<Body>>,
    /// Counts activity, to order peers from least to most recently active.
    clock: u64,
}

impl Peers {
    /// A new identity and prekey store, drawn from `rng` in SPEC.md §10 order: identity (X25519,
    /// then Ed25519 seed), signed prekey, one-time prekeys.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let prekeys = PrekeyStore::generate(&identity, rng);
        Self::new(identity, prekeys)
    }

    /// From an existing identity and prekey store.
    #[must_use]
    pub fn new(identity: IdentityKeyPair, prekeys: PrekeyStore) -> Self {
        Self::sharing(identity, Arc::new(prekeys))
    }

    /// From an identity and a prekey store that may be shared with other copies.
    const fn sharing(identity: IdentityKeyPair, prekeys: Arc<PrekeyStore>) -> Self {
        Self {
            identity,
            prekeys,
            peers: BTreeMap::new(),
            pinned: BTreeMap::new(),
            pending: BTreeMap::new(),
            clock: 0,
        }
    }

    /// A copy holding the long-term keys as they are now — the identity and the prekey store, the
    /// one-time prekeys already used gone — and nothing else: no session, pin, pending message or
    /// retired base key. Those are the owner's conversation state and replay protection, not keys;
    /// a thief of the keys runs X3DH with them whatever that bookkeeping says. The model checker's
    /// compromise oracle only (spec/MODEL.md §5): compiled into its build alone.
    #[cfg(feature = "model-memo")]
    #[must_use]
    pub fn long_term_keys(&self) -> Self {
        Self::sharing(self.identity.clone(), Arc::clone(&self.prekeys))
    }

    /// This client's public identity.
    #[must_use]
    pub fn identity(&self) -> IdentityPublic {
        self.identity.public()
    }

    /// The id of the current signed prekey: the one every upload publishes (SPEC.md §10.2).
    #[must_use]
    pub fn signed_prekey_id(&self) -> u32 {
        self.prekeys.current_signed_prekey().id
    }

    /// The bundle to upload: identity, current signed prekey, one-time prekeys not yet uploaded.
    ///
    /// # Errors
    /// Only if the batch could not be encoded, which the prekey store's bounds rule out.
    pub fn prepare_upload(&mut self) -> Result<UploadedBundle, E2eError> {
        Arc::make_mut(&mut self.prekeys).prepare_upload(&self.identity)
    }

    /// The prekey store as it is, to put back with [`Self::restore_prekeys`] if an upload that
    /// changed it cannot be sent: a shared reference, so the store is copied only if it changes.
    pub(crate) fn prekey_checkpoint(&self) -> Arc<PrekeyStore> {
        Arc::clone(&self.prekeys)
    }

    /// Puts back a prekey store from [`Self::prekey_checkpoint`].
    pub(crate) fn restore_prekeys(&mut self, prekeys: Arc<PrekeyStore>) {
        self.prekeys = prekeys;
    }

    /// Makes a new signed prekey, keeping the previous one (SPEC.md §10.2).
    ///
    /// # Errors
    /// [`E2eError::PrekeyIdsExhausted`]; nothing changes.
    pub fn rotate_signed_prekey<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<(), E2eError> {
        Arc::make_mut(&mut self.prekeys)
            .rotate_signed(&self.identity, rng)
            .map_err(|_| E2eError::PrekeyIdsExhausted)?;
        Ok(())
    }

    /// Whether the server said it stored an upload that carries the current signed prekey
    /// (SPEC.md §10.2): [`crate::roles::Client`] rotates only then.
    #[must_use]
    pub fn signed_prekey_stored(&self) -> bool {
        self.prekeys.current_stored()
    }

    /// Records that the server stored an upload that carries the current signed prekey (copying
    /// a shared store only if that changes it).
    pub(crate) fn mark_signed_prekey_stored(&mut self) {
        if !self.prekeys.current_stored() {
            Arc::make_mut(&mut self.prekeys).mark_current_stored();
        }
    }

    /// Makes `count` more one-time prekeys (SPEC.md §10.2).
    ///
    /// # Errors
    /// [`E2eError::PrekeyIdsExhausted`]; nothing changes.
    pub fn replenish<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        count: usize,
    ) -> Result<(), E2eError> {
        Arc::make_mut(&mut self.prekeys)
            .replenish(rng, count)
            .map_err(|_| E2eError::PrekeyIdsExhausted)
    }

    /// Marks `identity` as verified for `name` (SPEC.md §14.2). Every session with `name` that uses
    /// another identity is deleted: nothing is encrypted to, or accepted from, another identity.
    ///
    /// # Errors
    /// [`E2eError::TooManyPinned`] if `name` is not pinned yet and [`MAX_PINNED`] names are; nothing
    /// changes.
    pub fn pin(&mut self, name: Name, identity: IdentityPublic) -> Result<(), E2eError> {
        if crate::flaws::on(crate::flaws::Flaw::IgnorePin) {
            return Ok(());
        } // seeded flaw hook: `if false` without the feature
        if !self.pinned.contains_key(&name) && self.pinned.len() >= MAX_PINNED {
            return Err(E2eError::TooManyPinned);
        }
        if let Some(sessions) = self.peers.get_mut(&name) {
            sessions.delete_other_than(&identity);
        }
        self.pinned.insert(name, identity);
        Ok(())
    }

    /// The identity the current session with `name` uses, if there is one.
    #[must_use]
    pub fn session_identity(&self, name: &Name) -> Option<IdentityPublic> {
        self.current(name).map(|s| s.peer)
    }

    /// Whether a current session with `name` exists.
    #[must_use]
    pub fn has_session(&self, name: &Name) -> bool {
        self.current(name).is_some()
    }

    fn current(&self, name: &Name) -> Option<&PeerSession> {
        self.peers.get(name)?.current.as_ref()
    }

    /// The safety number of this client (`own_name`) and the identity its session with `peer` uses.
    #[must_use]
    pub fn safety_number(&self, own_name: &Name, peer: &Name) -> Option<SafetyNumber> {
        let theirs = self.session_identity(peer)?;
        Some(SafetyNumber::new((&self.identity(), own_name), (&theirs, peer)))
    }

    /// Queues `body` for `to` until its bundle arrives; returns whether it is the first one queued
    /// (so the caller asks for the bundle once).
    ///
    /// # Errors
    /// [`E2eError::PendingFull`] beyond [`MAX_PENDING`] messages for one peer, or for a peer that has
    /// none waiting while messages wait for [`MAX_PEERS`] others; nothing changes.
    pub fn queue(&mut self, to: &Name, body: Body) -> Result<bool, E2eError> {
        let queued = self.pending.get(to).map_or(0, Vec::len);
        if queued >= MAX_PENDING || (queued == 0 && self.pending.len() >= MAX_PEERS) {
            return Err(E2eError::PendingFull);
        }
        self.pending.entry(to.clone()).or_default().push(body);
        Ok(queued == 0)
    }

    /// Whether messages wait for `name`'s bundle — that is, whether a `FetchBundle` is outstanding.
    #[must_use]
    pub fn awaiting_bundle(&self, name: &Name) -> bool {
        self.pending.contains_key(name)
    }

    /// How many messages wait for `name`'s bundle.
    #[must_use]
    pub fn pending_count(&self, name: &Name) -> usize {
        self.pending.get(name).map_or(0, Vec::len)
    }

    /// The peers whose bundles are awaited (to ask again after a reconnection).
    pub fn awaited(&self) -> impl Iterator<Item = &Name> {
        self.pending.keys()
    }

    /// Removes and returns the messages waiting for `to`.
    pub fn take_pending(&mut self, to: &Name) -> Vec<Body> {
        self.pending.remove(to).unwrap_or_default()
    }

    /// Starts a session with `name` from a fetched bundle (SPEC.md §11.1): validates it, compares it
    /// with the verified identity if there is one, and runs the initiator's handshake with a fresh
    /// ephemeral key. An existing session with `name` is archived; sessions under another identity
    /// are deleted (reported in the result).
    ///
    /// # Errors
    /// [`E2eError::Bundle`] or [`E2eError::IdentityMismatch`] (nothing is encrypted, and nothing
    /// changes), [`E2eError::TooManyPeers`], or a non-contributory DH.
    pub fn start_session<R: CryptoRng + ?Sized>(
        &mut self,
        own_name: &Name,
        name: &Name,
        bundle: &FetchedBundle,
        rng: &mut R,
    ) -> Result<SessionStart, E2eError> {
        let verified = bundle::verify_fetched(name, bundle, self.pinned.get(name))?;
        let evicted = self.eviction_for(name)?;
        let ephemeral = PrivateKey::generate(rng);
        let base_key = ephemeral.public_key();
        let initiated = x3dh::initiate(&self.identity, own_name, &verified, ephemeral)?;
        let session = PeerSession {
            ratchet: Session::initiator(
                initiated.shared_secret().clone(),
                initiated.ad().to_vec(),
                initiated.their_ratchet_key(),
            ),
            peer: *verified.identity(),
            base_key,
            prekey: Some(initiated.header()),
        };
        let one_time_prekey = verified.one_time_prekey().is_some();
        Ok(self.install(name, session, one_time_prekey, evicted))
    }

    /// Encrypts `body` for `to` (SPEC.md §12.3) in the current session: a prekey message while the
    /// session is unanswered, a ratchet message after.
    ///
    /// # Errors
    /// [`E2eError::NoSession`], [`E2eError::IdentityMismatch`] (the session's identity is not the
    /// verified one), or the ratchet's error; nothing changes.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        to: &Name,
        body: &Body,
        rng: &mut R,
    ) -> Result<Envelope, E2eError> {
        let envelope = self.encrypt_after(to, body, rng, Vec::with_capacity)?;
        // The ratchet has advanced. A body is at most MAX_BODY_LEN, so the envelope is at most
        // MAX_BODY_LEN + 226 bytes, within MAX_ENVELOPE_LEN: `Envelope::new` cannot fail here.
        Envelope::new(envelope).map_err(E2eError::Envelope)
    }

    /// [`Self::encrypt`], writing the envelope after the bytes `head(envelope_len)` returns, in the
    /// same buffer: how a client seals an envelope straight into the frame that carries it. `head`
    /// is called only once nothing can fail any more; give its buffer room for `envelope_len` more
    /// bytes. The envelope is at most [`MAX_ENVELOPE_LEN`](crate::wire::MAX_ENVELOPE_LEN) bytes.
    ///
    /// # Errors
    /// As [`Self::encrypt`].
    pub fn encrypt_after<R: CryptoRng + ?Sized>(
        &mut self,
        to: &Name,
        body: &Body,
        rng: &mut R,
        head: impl FnOnce(usize) -> Vec<u8>,
    ) -> Result<Vec<u8>, E2eError> {
        let pinned = self.pinned.get(to).copied();
        let now = self.clock.wrapping_add(1);
        let no_session = || E2eError::NoSession { name: to.clone() };
        let sessions = self.peers.get_mut(to).ok_or_else(no_session)?;
        let session = sessions.current.as_mut().ok_or_else(no_session)?;
        if pinned.is_some_and(|p| p != session.peer) {
            return Err(E2eError::IdentityMismatch { name: to.clone() });
        }
        // A body is at most MAX_BODY_LEN, so the envelope is at most MAX_BODY_LEN + 226 bytes,
        // within MAX_ENVELOPE_LEN.
        let prekey = session.prekey.as_ref();
        let envelope_len = envelope::encoded_len(prekey, body.as_bytes().len() + AEAD_TAG_LEN);
        let (_, sealed) = session
            .ratchet
            .encrypt_after(body.as_bytes(), rng, |header| {
                let mut out = head(envelope_len);
                envelope::write_prefix(&mut out, prekey, header);
                out
            })
            .map_err(E2eError::from)?;
        sessions.last_active = now;
        self.clock = now;
        Ok(sealed)
    }

    /// Decrypts an envelope that the server says `from` sent to `own_name` (SPEC.md §11.2, §11.3,
    /// §12.4). Transactional.
    ///
    /// # Errors
    /// [`E2eError::Envelope`] for a malformed envelope; otherwise an identity mismatch with a verified
    /// identity, an invalid initiator identity, unknown prekey, replayed prekey message, no
    /// session, too many peers, or the ratchet's refusal.
    pub fn decrypt(
        &mut self,
        own_name: &Name,
        from: &Name,
        envelope: &Envelope,
    ) -> Result<Decrypted, E2eError> {
        self.decrypt_owned(own_name, from, envelope.clone())
    }

    /// [`Self::decrypt`] of an envelope given up: the body is decrypted in the envelope's own
    /// buffer, which becomes the [`Decrypted::body`] (the receive path allocates nothing for it).
    ///
    /// The work one envelope may cause is bounded across every session it is tried in
    /// ([`WorkBudget`], SPEC.md §12.5), and refusing it costs nothing that grows with the number
    /// of peers or stored keys: one map look-up by `from`, then at most
    /// `1 + MAX_ARCHIVED_SESSIONS` sessions of that one peer.
    ///
    /// # Errors
    /// As [`Self::decrypt`].
    pub fn decrypt_owned(
        &mut self,
        own_name: &Name,
        from: &Name,
        envelope: Envelope,
    ) -> Result<Decrypted, E2eError> {
        // The envelope may sit at an offset in its buffer (after the rest of the `E2eDeliver`
        // it came in): it is decrypted there, and the body stays there too.
        let (mut buffer, offset) = envelope.into_parts();
        let (prekey, header, start) = {
            let message = ParsedEnvelope::decode(buffer.get(offset..).unwrap_or_default())?;
            // Refuse before decrypting anything a body could not hold, so that nothing can fail
            // after the ratchet has advanced.
            let ciphertext_len = message.ciphertext.len();
            if ciphertext_len.saturating_sub(AEAD_TAG_LEN) > MAX_BODY_LEN {
                let error = WireError::BadLength { field: "ciphertext", len: ciphertext_len };
                return Err(error.into());
            }
            // The ciphertext runs to the end of the envelope.
            (message.prekey, message.header, buffer.len() - ciphertext_len)
        };
        // The plaintext replaces the ciphertext, and the body is the buffer's tail from there.
        let into_body = |buffer: Vec<u8>| Body::at(buffer, start);
        let pinned = self.pinned.get(from).copied();
        let mut budget = WorkBudget::per_envelope();
        let Some(prekey) = prekey else {
            let sessions = self
                .peers
                .get_mut(from)
                .ok_or_else(|| E2eError::NoSession { name: from.clone() })?;
            let opened =
                open_in_any(sessions, pinned, |_| true, &header, &mut buffer, start, &mut budget)
                    .ok_or_else(|| E2eError::NoSession { name: from.clone() })??;
            self.touch(from, opened.skipped_before);
            let body = into_body(buffer)?;
            return Ok(Decrypted { body, identity: opened.identity, started: None });
        };
        if pinned.is_some_and(|p| p != prekey.identity)
            && !crate::flaws::on(crate::flaws::Flaw::SkipPinOnReceive)
        {
            return Err(E2eError::IdentityMismatch { name: from.clone() });
        }
        let belongs = |s: &PeerSession| s.base_key == prekey.base_key && s.peer == prekey.identity;
        if let Some(sessions) = self.peers.get_mut(from)
            && let Some(result) =
                open_in_any(sessions, pinned, belongs, &header, &mut buffer, start, &mut budget)
        {
            let opened = result?;
            self.touch(from, opened.skipped_before);
            let body = into_body(buffer)?;
            return Ok(Decrypted { body, identity: opened.identity, started: None });
        }
        if self.peers.get(from).is_some_and(|p| p.knows_base_key(&prekey.base_key)) {
            return Err(E2eError::ReplayedPrekeyMessage);
        }
        let responded = x3dh::respond(&self.identity, own_name, from, &self.prekeys, &prekey)?;
        let mut session = PeerSession {
            ratchet: Session::responder(
                responded.shared_secret().clone(),
                responded.ad().to_vec(),
                responded.ratchet_key().clone(),
            ),
            peer: prekey.identity,
            base_key: prekey.base_key,
            prekey: None,
        };
        session
            .ratchet
            .decrypt_within(&header, &mut buffer, start, &mut budget)
            .map_err(E2eError::from)?;
        // The message is authentic; the last check that can refuse it is room for a new peer.
        let evicted = self.eviction_for(from)?;
        // Everything fallible is done: commit.
        if let Some(id) = prekey
            .one_time_prekey_id
            .filter(|_| !crate::flaws::on(crate::flaws::Flaw::KeepOneTimePrekey))
        {
            Arc::make_mut(&mut self.prekeys).remove_one_time(id);
        }
        // `install` marks the peer active and bounds the skipped keys the first message stored.
        let started = self.install(from, session, prekey.one_time_prekey_id.is_some(), evicted);
        let body = into_body(buffer)?;
        Ok(Decrypted { body, identity: prekey.identity, started: Some(started) })
    }

    /// The peer to evict so that a session with `name` fits: none if `name` has sessions already or
    /// there is room; else the least recently active peer that is not pinned, has no messages
    /// waiting for its bundle and no session this client started that is still unanswered.
    ///
    /// # Errors
    /// [`E2eError::TooManyPeers`] if every peer is spared.
    fn eviction_for(&self, name: &Name) -> Result<Option<Name>, E2eError> {
        if self.peers.contains_key(name) || self.peers.len() < MAX_PEERS {
            return Ok(None);
        }
        self.peers
            .iter()
            .filter(|(peer, sessions)| {
                !self.pinned.contains_key(*peer)
                    && !self.pending.contains_key(*peer)
                    && sessions.evictable()
            })
            .min_by_key(|(_, sessions)| sessions.last_active)
            .map(|(peer, _)| Some(peer.clone()))
            .ok_or(E2eError::TooManyPeers)
    }

    /// Installs `session` as `name`'s current session, after evicting `evicted`.
    fn install(
        &mut self,
        name: &Name,
        session: PeerSession,
        one_time_prekey: bool,
        evicted: Option<Name>,
    ) -> SessionStart {
        if let Some(gone) = &evicted {
            self.peers.remove(gone);
        }
        let replaced_identity = self.peers.entry(name.clone()).or_default().install(session);
        self.touch(name, 0);
        SessionStart { one_time_prekey, replaced_identity, evicted }
    }

    /// Marks `name` as the most recently active peer and, if its sessions now hold more skipped
    /// keys than `skipped_before`, enforces [`MAX_SKIPPED_KEYS_PER_CLIENT`].
    fn touch(&mut self, name: &Name, skipped_before: usize) {
        self.clock = self.clock.wrapping_add(1);
        let Some(sessions) = self.peers.get_mut(name) else { return };
        sessions.last_active = self.clock;
        if sessions.skipped_key_count() > skipped_before {
            self.enforce_skipped_key_cap();
        }
    }

    /// Evicts skipped keys beyond [`MAX_SKIPPED_KEYS_PER_CLIENT`]: those of the least recently
    /// active peers first, within a peer its oldest session first, within a session its oldest key
    /// first (SPEC.md §12.5). Runs only after a message has opened and stored new keys.
    fn enforce_skipped_key_cap(&mut self) {
        let total = self.skipped_key_count();
        let Some(mut excess) = total.checked_sub(MAX_SKIPPED_KEYS_PER_CLIENT).filter(|e| *e > 0)
        else {
            return;
        };
        let mut by_activity: Vec<(u64, Name)> =
            self.peers.iter().map(|(name, s)| (s.last_active, name.clone())).collect();
        by_activity.sort_unstable();
        for (_, name) in by_activity {
            let Some(sessions) = self.peers.get_mut(&name) else { continue };
            for session in sessions.sessions_mut() {
                excess -= session.ratchet.evict_skipped_keys(excess);
                if excess == 0 {
                    return;
                }
            }
        }
    }

    /// How many skipped keys this client stores, over every session (at most
    /// [`MAX_SKIPPED_KEYS_PER_CLIENT`]).
    #[must_use]
    pub fn skipped_key_count(&self) -> usize {
        self.peers.values().map(PeerSessions::skipped_key_count).sum()
    }
}

/// What a peer's sessions are checked against when they are restored: this client's identity and
/// name (the `AD` of every session names both parties), and the prekey header fields an unanswered
/// initiator repeats that are this client's own.
struct Own<'a> {
    identity: IdentityPublic,
    identity_signature: crate::suite::Signature,
    name: &'a Name,
}

impl PeerSession {
    /// The persisted form (SPEC.md §18.3): `IK (64)`, base key (32), the prekey ids an unanswered
    /// initiator repeats (flag; `BE32(spk_id)`, flag, `BE32(opk_id)`), the ratchet. The rest of
    /// the prekey header is this client's identity, its binding signature and the base key.
    fn write_state(&self, w: &mut StateWriter) {
        w.identity(&self.peer);
        w.public_key(&self.base_key);
        w.flag(self.prekey.is_some());
        if let Some(prekey) = &self.prekey {
            w.u32(prekey.signed_prekey_id);
            w.flag(prekey.one_time_prekey_id.is_some());
            if let Some(id) = prekey.one_time_prekey_id {
                w.u32(id);
            }
        }
        self.ratchet.write_state(w);
    }

    /// Reads [`Self::write_state`]'s form for the session with `peer_name`, and checks that its
    /// `AD` is the one the handshake makes for these two parties (SPEC.md §11.1–§11.2) — ours
    /// first if we initiated (which an unanswered initiator did).
    fn read_state(r: &mut Reader<'_>, own: &Own<'_>, peer_name: &Name) -> Result<Self, StateError> {
        let peer = read_valid_identity(r, "peer identity")?;
        let base_key = read_public_key(r, "base key")?;
        let prekey = if read_flag(r, "prekey header")? {
            let signed_prekey_id = r.u32()?;
            let one_time_prekey_id =
                if read_flag(r, "one-time prekey id")? { Some(r.u32()?) } else { None };
            Some(PrekeyHeader {
                identity: own.identity,
                identity_signature: own.identity_signature,
                base_key,
                signed_prekey_id,
                one_time_prekey_id,
            })
        } else {
            None
        };
        let ratchet = Session::read_state(r)?;
        let ours = (&own.identity, own.name);
        let theirs = (&peer, peer_name);
        let initiated = x3dh::associated_data(ours, theirs);
        let ad = ratchet.ad();
        ensure(
            ad == initiated.as_slice()
                || (prekey.is_none() && ad == x3dh::associated_data(theirs, ours).as_slice()),
            "a session's AD is not the one of its two parties",
        )?;
        Ok(Self { ratchet, peer, base_key, prekey })
    }
}

impl PeerSessions {
    /// The persisted form (SPEC.md §18.3): `BE64(last_active)`, the current session (flag), the
    /// archived ones newest first (`count: u8`), the retired base keys oldest first (`count: u8`).
    fn write_state(&self, w: &mut StateWriter) {
        w.u64(self.last_active);
        w.flag(self.current.is_some());
        if let Some(current) = &self.current {
            current.write_state(w);
        }
        w.small_count(self.archived.len());
        for session in &self.archived {
            session.write_state(w);
        }
        w.small_count(self.retired.len());
        for base_key in &self.retired {
            w.public_key(base_key);
        }
    }

    /// Reads [`Self::write_state`]'s form, and checks the rules of SPEC.md §11.3: no activity
    /// after the client's `clock`, at most [`MAX_ARCHIVED_SESSIONS`] archived sessions and
    /// [`RETIRED_BASE_KEYS`] retired keys, one identity for every session, no archive without a
    /// current session.
    fn read_state(
        r: &mut Reader<'_>,
        own: &Own<'_>,
        name: &Name,
        clock: u64,
    ) -> Result<Self, StateError> {
        let last_active = r.u64()?;
        // Every activity sets `last_active` to the clock it advanced (§11.3): a later value is one
        // no client wrote, and the next activity would rank this peer wrongly.
        ensure(last_active <= clock, "a peer active after the clock")?;
        let current = if read_flag(r, "current session")? {
            Some(PeerSession::read_state(r, own, name)?)
        } else {
            None
        };
        let archived_count = read_small_count(r, "archived sessions", MAX_ARCHIVED_SESSIONS)?;
        let mut archived = VecDeque::with_capacity(archived_count);
        for _ in 0..archived_count {
            archived.push_back(PeerSession::read_state(r, own, name)?);
        }
        let retired_count = read_small_count(r, "retired base keys", RETIRED_BASE_KEYS)?;
        let mut retired = VecDeque::with_capacity(retired_count);
        for _ in 0..retired_count {
            retired.push_back(read_public_key(r, "retired base key")?);
        }
        let sessions = Self { current, archived, retired, last_active };
        ensure(
            sessions.current.is_some() || sessions.archived.is_empty(),
            "archived sessions without a current one",
        )?;
        let identity = sessions.identity();
        ensure(
            sessions.current.iter().chain(&sessions.archived).all(|s| Some(s.peer) == identity),
            "two identities in one peer's sessions",
        )?;
        Ok(sessions)
    }
}

impl Peers {
    /// The persisted form (SPEC.md §18.3): the identity, the prekey store, `BE64(clock)`, then three
    /// maps in ascending name order, each `count: u16` entries: the peers' sessions
    /// (`Name`, sessions), the pinned identities (`Name`, `IK (64)`), and the messages waiting for
    /// a bundle (`Name`, `count: u8`, that many `Body`s in order).
    pub(crate) fn write_state(&self, w: &mut StateWriter) {
        self.identity.write_state(w);
        self.prekeys.write_state(w);
        w.u64(self.clock);
        w.count(self.peers.len());
        for (name, sessions) in &self.peers {
            w.name(name);
            sessions.write_state(w);
        }
        w.count(self.pinned.len());
        for (name, identity) in &self.pinned {
            w.name(name);
            w.identity(identity);
        }
        w.count(self.pending.len());
        for (name, bodies) in &self.pending {
            w.name(name);
            w.small_count(bodies.len());
            for body in bodies {
                let len = u16::try_from(body.as_bytes().len()).unwrap_or(u16::MAX);
                w.u16(len);
                w.bytes(body.as_bytes());
            }
        }
    }

    /// Reads [`Self::write_state`]'s form for the client `own_name`, and checks every bound a
    /// client keeps ([`MAX_PEERS`], [`MAX_PINNED`], [`MAX_PENDING`], the skipped-key bounds of
    /// SPEC.md §12.5) and that a pinned peer's sessions use the pinned identity (§14.2).
    ///
    /// # Errors
    /// The first field that fails, as a [`StateError`].
    pub(crate) fn read_state(r: &mut Reader<'_>, own_name: &Name) -> Result<Self, StateError> {
        let identity = IdentityKeyPair::read_state(r)?;
        let prekeys = PrekeyStore::read_state(r, &identity)?;
        let clock = r.u64()?;
        let own = Own {
            identity: identity.public(),
            identity_signature: identity.binding_signature(),
            name: own_name,
        };
        let mut peers = BTreeMap::new();
        let mut last: Option<Name> = None;
        for _ in 0..read_count(r, "peers", MAX_PEERS)? {
            let name = read_next_name(r, last.as_ref(), "peer name order")?;
            let sessions = PeerSessions::read_state(r, &own, &name, clock)?;
            last = Some(name.clone());
            peers.insert(name, sessions);
        }
        let mut pinned = BTreeMap::new();
        let mut last: Option<Name> = None;
        for _ in 0..read_count(r, "pinned", MAX_PINNED)? {
            let name = read_next_name(r, last.as_ref(), "pinned name order")?;
            let identity = read_identity(r)?;
            last = Some(name.clone());
            pinned.insert(name, identity);
        }
        let mut pending = BTreeMap::new();
        let mut last: Option<Name> = None;
        for _ in 0..read_count(r, "pending peers", MAX_PEERS)? {
            let name = read_next_name(r, last.as_ref(), "pending name order")?;
            let count = read_small_count(r, "pending messages", MAX_PENDING)?;
            ensure(count > 0, "a peer awaited with no message waiting")?;
            let mut bodies = Vec::with_capacity(count);
            for _ in 0..count {
                bodies.push(Body::new(Body::read_ref(r)?.to_vec())?);
            }
            last = Some(name.clone());
            pending.insert(name, bodies);
        }
        let peers = Self { identity, prekeys: Arc::new(prekeys), peers, pinned, pending, clock };
        ensure(
            peers.peers.values().all(|p| {
                p.current
                    .iter()
                    .chain(&p.archived)
                    .all(|s| s.ratchet.skipped_key_count() <= MAX_SKIPPED_KEYS)
            }) && peers.skipped_key_count() <= MAX_SKIPPED_KEYS_PER_CLIENT,
            "more skipped keys than the bounds allow",
        )?;
        ensure(
            peers.pinned.iter().all(|(name, pin)| {
                peers.peers.get(name).and_then(PeerSessions::identity).is_none_or(|id| id == *pin)
            }),
            "a pinned peer's session uses another identity",
        )?;
        Ok(peers)
    }
}

/// What [`open_in_any`] found: the identity of the session that opened the message, and how many
/// skipped keys the peer held before.
struct Opened {
    identity: IdentityPublic,
    skipped_before: usize,
}

/// Opens the ratchet message (`header`, and the ciphertext `buffer[start..]`) in place, in the
/// first of `sessions` (current, then archived newest first) that `accepts` and that opens it,
/// promoting an archived session that does. `None` if no session qualifies; otherwise success, or
/// the current (else first tried) session's error. Transactional: only the session that opens the
/// message changes, and a session that fails leaves `buffer` as it was for the next. Every attempt
/// charges `budget`, which bounds the work of the whole envelope (SPEC.md §12.5).
fn open_in_any(
    sessions: &mut PeerSessions,
    pinned: Option<IdentityPublic>,
    accepts: impl Fn(&PeerSession) -> bool,
    header: &Header,
    buffer: &mut Vec<u8>,
    start: usize,
    budget: &mut WorkBudget,
) -> Option<Result<Opened, E2eError>> {
    let skipped_before = sessions.skipped_key_count();
    let allowed = |s: &PeerSession| accepts(s) && pinned.is_none_or(|p| p == s.peer);
    let mut first_error = None;
    if let Some(current) = sessions.current.as_mut().filter(|s| allowed(s)) {
        match current.ratchet.decrypt_within(header, buffer, start, budget) {
            Ok(()) => {
                current.prekey = None;
                return Some(Ok(Opened { identity: current.peer, skipped_before }));
            }
            Err(e) => first_error = Some(E2eError::from(e)),
        }
    }
    for index in 0..sessions.archived.len() {
        let Some(archived) = sessions.archived.get_mut(index).filter(|s| allowed(s)) else {
            continue;
        };
        match archived.ratchet.decrypt_within(header, buffer, start, budget) {
            Ok(()) => {
                archived.prekey = None;
                let identity = archived.peer;
                sessions.promote(index);
                return Some(Ok(Opened { identity, skipped_before }));
            }
            Err(e) => {
                first_error.get_or_insert(E2eError::from(e));
            }
        }
    }
    first_error.map(Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::ONE_TIME_PREKEYS_PER_UPLOAD;
    use crate::e2e::ratchet::MAX_SKIP;
    use crate::roles::MAX_STATE_BODY_LEN;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn body(s: &str) -> Body {
        Body::new(s.as_bytes().to_vec()).unwrap()
    }

    /// `peers`' bundle as a fetch gives it once its one-time prekeys are gone: every session
    /// started from it is new, none uses up a key.
    fn bundle(peers: &mut Peers) -> FetchedBundle {
        let upload = peers.prepare_upload().unwrap();
        FetchedBundle {
            identity: *upload.identity(),
            signed_prekey: *upload.signed_prekey(),
            one_time_prekey: None,
        }
    }

    /// The prekey store is shared copy-on-write: a clone shares it, and the first change to
    /// either copy gives that copy a store of its own, leaving the other's keys as they were.
    #[test]
    fn a_clone_shares_the_prekey_store_until_either_changes_it() {
        let mut rng = ChaCha20Rng::seed_from_u64(41);
        let mut bob = Peers::generate(&mut rng);
        let before = bob.clone();
        assert!(Arc::ptr_eq(&bob.prekeys, &before.prekeys), "a clone copied the store");
        let used = bob.prepare_upload().unwrap().one_time_prekeys()[0].id;
        assert!(!Arc::ptr_eq(&bob.prekeys, &before.prekeys), "an upload changed a shared store");
        let checkpoint = bob.clone();
        Arc::make_mut(&mut bob.prekeys).remove_one_time(used);
        bob.replenish(&mut rng, 3).unwrap();
        assert_eq!(bob.prekeys.one_time_count(), ONE_TIME_PREKEYS_PER_UPLOAD + 2);
        assert!(checkpoint.prekeys.one_time_prekey(used).is_some(), "the copy lost a key");
        assert_eq!(checkpoint.prekeys.one_time_count(), ONE_TIME_PREKEYS_PER_UPLOAD);
        assert_ne!(bob, checkpoint);
        // The upload's watermark moved in Bob's store (and the checkpoint's), not in `before`'s.
        assert_ne!(checkpoint.prekeys, before.prekeys);
        assert_eq!(before.prekeys.one_time_count(), ONE_TIME_PREKEYS_PER_UPLOAD);
    }

    /// `peers` written to a state and read back for the client `own` (SPEC.md §18.3).
    fn restored(peers: &Peers, own: &Name) -> Result<Peers, StateError> {
        let bytes = crate::state::export(|w| peers.write_state(w));
        crate::state::restore(bytes.as_bytes(), MAX_STATE_BODY_LEN, |r| Peers::read_state(r, own))
    }

    /// SPEC.md §18.3: a peer is awaited only while messages wait for it; a state that awaits one
    /// with none waiting is refused.
    #[test]
    fn a_state_awaiting_a_peer_with_no_message_waiting_is_refused() {
        let mut peers = Peers::generate(&mut ChaCha20Rng::seed_from_u64(17));
        let (a, own) = (name("alice"), name("bob"));
        peers.queue(&a, body("one")).unwrap();
        assert_eq!(restored(&peers, &own).as_ref(), Ok(&peers));
        peers.pending.insert(a, Vec::new());
        let what = "a peer awaited with no message waiting";
        assert_eq!(restored(&peers, &own), Err(StateError::Inconsistent { what }));
    }

    /// SPEC.md §12.5, §18.3: a state whose sessions each hold no more than `MAX_SKIPPED_KEYS` but
    /// together more than `MAX_SKIPPED_KEYS_PER_CLIENT` is refused — either bound alone fails it.
    /// The keys are stored here past `decrypt`, which would have enforced the client's bound.
    #[test]
    fn a_state_over_the_client_skipped_key_bound_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(18);
        let own = name("bob");
        let mut bob = Peers::generate(&mut rng);
        let bobs = bundle(&mut bob);
        let per_peer = usize::try_from(MAX_SKIP).unwrap();
        for i in 0..=MAX_SKIPPED_KEYS_PER_CLIENT / per_peer {
            let from = name(&format!("p{i}"));
            let mut peer = Peers::generate(&mut rng);
            peer.start_session(&from, &own, &bobs, &mut rng).unwrap();
            let first = peer.encrypt(&own, &body("0"), &mut rng).unwrap();
            bob.decrypt(&own, &from, &first).unwrap();
            let mut last = None;
            for _ in 0..=per_peer {
                last = Some(peer.encrypt(&own, &body("n"), &mut rng).unwrap().into_bytes());
            }
            let mut buffer = last.unwrap();
            let message = ParsedEnvelope::decode(&buffer).unwrap();
            let (header, start) = (message.header, buffer.len() - message.ciphertext.len());
            let session = bob.peers.get_mut(&from).unwrap().current.as_mut().unwrap();
            let mut budget = WorkBudget::per_envelope();
            session.ratchet.decrypt_within(&header, &mut buffer, start, &mut budget).unwrap();
            assert_eq!(session.ratchet.skipped_key_count(), per_peer);
        }
        assert!(bob.skipped_key_count() > MAX_SKIPPED_KEYS_PER_CLIENT);
        let what = "more skipped keys than the bounds allow";
        assert_eq!(restored(&bob, &own), Err(StateError::Inconsistent { what }));
    }

    /// SPEC.md §15.3: messages queued for a peer wait, counted, until they are taken.
    #[test]
    fn pending_messages_are_counted_per_peer_until_taken() {
        let mut peers = Peers::generate(&mut ChaCha20Rng::seed_from_u64(15));
        let (a, c) = (name("alice"), name("carol"));
        assert_eq!(peers.queue(&a, body("one")), Ok(true));
        assert_eq!(peers.queue(&a, body("two")), Ok(false));
        assert_eq!((peers.pending_count(&a), peers.pending_count(&c)), (2, 0));
        assert_eq!(peers.take_pending(&a), [body("one"), body("two")]);
        assert_eq!(peers.pending_count(&a), 0);
    }

    /// The largest body opens (in the longest envelope, a prekey message with a one-time prekey);
    /// a ciphertext longer than it and its tag is refused as `BadLength` before any session tries
    /// it — a message that opened could not become a `Body` after the ratchet had advanced — and
    /// nothing changes.
    #[test]
    fn the_largest_body_opens_and_a_longer_ciphertext_is_refused_before_decryption() {
        let mut rng = ChaCha20Rng::seed_from_u64(16);
        let (mut alice, mut bob) = (Peers::generate(&mut rng), Peers::generate(&mut rng));
        let (a, b) = (name("alice"), name("bob"));
        let upload = bob.prepare_upload().unwrap();
        let bobs = FetchedBundle {
            identity: *upload.identity(),
            signed_prekey: *upload.signed_prekey(),
            one_time_prekey: upload.one_time_prekeys().first().copied(),
        };
        alice.start_session(&a, &b, &bobs, &mut rng).unwrap();
        let largest = Body::new(vec![7; MAX_BODY_LEN]).unwrap();
        let first = alice.encrypt(&b, &largest, &mut rng).unwrap();
        assert_eq!(bob.decrypt(&b, &a, &first).unwrap().body, largest);
        let reply = bob.encrypt(&a, &body("hello"), &mut rng).unwrap();

        let mut long = reply.into_bytes();
        let len = MAX_BODY_LEN + AEAD_TAG_LEN + 1;
        long.resize(1 + crate::e2e::ratchet::HEADER_LEN + len, 0);
        let long = Envelope::new(long).unwrap();
        let before = alice.clone();
        assert_eq!(
            alice.decrypt(&a, &b, &long),
            Err(E2eError::Envelope(WireError::BadLength { field: "ciphertext", len }))
        );
        assert_eq!(alice, before);
    }

    /// SPEC.md §10.2: the keys `replenish` makes and the signed prekey `rotate_signed_prekey` makes
    /// are what the next upload carries.
    #[test]
    fn replenished_and_rotated_prekeys_are_in_the_next_upload() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let mut peers = Peers::generate(&mut rng);
        let first = peers.prepare_upload().unwrap();
        assert_eq!(peers.signed_prekey_id(), first.signed_prekey().id);
        assert_eq!(peers.prepare_upload().unwrap().one_time_prekeys(), []);

        peers.replenish(&mut rng, 3).unwrap();
        let replenished = peers.prepare_upload().unwrap();
        assert_eq!(replenished.one_time_prekeys().len(), 3);
        assert_eq!(replenished.signed_prekey(), first.signed_prekey());

        peers.rotate_signed_prekey(&mut rng).unwrap();
        let rotated = peers.prepare_upload().unwrap();
        assert_ne!(rotated.signed_prekey(), first.signed_prekey());
        assert_eq!(peers.signed_prekey_id(), rotated.signed_prekey().id);
        assert_eq!(rotated.one_time_prekeys(), []);
    }

    /// Bob's session with Alice, which she has answered: her reply, not yet delivered, and her
    /// bundle, for Bob's next sessions.
    struct Answered {
        rng: ChaCha20Rng,
        alice: Peers,
        bob: Peers,
        alices: FetchedBundle,
        reply: Envelope,
    }

    fn answered(seed: u64) -> Answered {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (mut alice, mut bob) = (Peers::generate(&mut rng), Peers::generate(&mut rng));
        let (a, b) = (name("alice"), name("bob"));
        let alices = bundle(&mut alice);
        bob.start_session(&b, &a, &alices, &mut rng).unwrap();
        let first = bob.encrypt(&a, &body("hello"), &mut rng).unwrap();
        alice.decrypt(&a, &b, &first).unwrap();
        let reply = alice.encrypt(&b, &body("reply"), &mut rng).unwrap();
        Answered { rng, alice, bob, alices, reply }
    }

    /// SPEC.md §11.3: a client keeps `MAX_ARCHIVED_SESSIONS` replaced sessions per peer, so a reply
    /// in flight across that many replacements still opens; one replacement more retires the
    /// oldest, and its messages no longer open (refused, nothing changed).
    #[test]
    fn the_archive_keeps_four_replaced_sessions_and_one_more_retires_the_oldest() {
        let Answered { mut rng, mut bob, alices, reply, .. } = answered(11);
        let (a, b) = (name("alice"), name("bob"));
        for _ in 0..MAX_ARCHIVED_SESSIONS {
            bob.start_session(&b, &a, &alices, &mut rng).unwrap();
        }
        let mut at_the_bound = bob.clone();
        assert_eq!(at_the_bound.decrypt(&b, &a, &reply).unwrap().body, body("reply"));

        bob.start_session(&b, &a, &alices, &mut rng).unwrap();
        let before = bob.clone();
        assert!(bob.decrypt(&b, &a, &reply).is_err());
        assert_eq!(bob, before);
    }

    /// SPEC.md §11.3: the session that opens a ratchet message becomes current again. Bob replaced
    /// an answered session with one Alice has not heard of; her reply in the first makes it current,
    /// so Bob's next message is a ratchet message of that session, which Alice opens in it.
    #[test]
    fn a_reply_that_opens_in_an_archived_session_makes_it_current_again() {
        let Answered { mut rng, mut alice, mut bob, alices, reply } = answered(13);
        let (a, b) = (name("alice"), name("bob"));
        bob.start_session(&b, &a, &alices, &mut rng).unwrap();
        bob.decrypt(&b, &a, &reply).unwrap();

        let next = bob.encrypt(&a, &body("again"), &mut rng).unwrap();
        let parsed = envelope::EnvelopeBody::decode(next.as_bytes()).unwrap();
        assert!(matches!(parsed, envelope::EnvelopeBody::Ratchet(_)));
        let opened = alice.decrypt(&a, &b, &next).unwrap();
        assert_eq!((opened.body, opened.started), (body("again"), None));
    }

    /// SPEC.md §11.3 rule 2: a replayed prekey message whose session left the archive is refused
    /// as `ReplayedPrekeyMessage` for the next `RETIRED_BASE_KEYS` sessions, not only the next one;
    /// refusing it changes nothing.
    #[test]
    fn a_replayed_prekey_message_is_refused_while_its_base_key_is_one_of_the_last_sixteen_retired()
    {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let (mut alice, mut bob) = (Peers::generate(&mut rng), Peers::generate(&mut rng));
        let (a, b) = (name("alice"), name("bob"));
        let bobs = bundle(&mut bob);
        let mut first = None;
        for sessions in 1..=1 + MAX_ARCHIVED_SESSIONS + RETIRED_BASE_KEYS {
            alice.start_session(&a, &b, &bobs, &mut rng).unwrap();
            let envelope = alice.encrypt(&b, &body("hi"), &mut rng).unwrap();
            assert!(bob.decrypt(&b, &a, &envelope).unwrap().started.is_some());
            let first = first.get_or_insert(envelope);
            let before = bob.clone();
            let replayed = bob.decrypt(&b, &a, first);
            if sessions > 1 + MAX_ARCHIVED_SESSIONS {
                assert_eq!(replayed, Err(E2eError::ReplayedPrekeyMessage), "after {sessions}");
            } else {
                assert!(replayed.is_err(), "after {sessions}");
            }
            assert_eq!(bob, before);
        }
    }
}
