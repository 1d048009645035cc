//! A client's e2e state: its identity and prekeys, one session per peer, the identities the user
//! verified, and the messages waiting for a peer's bundle (SPEC.md §11.3, §15.3).
//!
//! Every method that can fail works on copies and commits only on success: a forged, replayed,
//! truncated or out-of-window envelope leaves [`Peers`] exactly as it was.

use std::collections::{BTreeMap, VecDeque};

use rand_core::CryptoRng;

use super::envelope::{EnvelopeBody, RatchetMessage};
use super::identity::IdentityKeyPair;
use super::prekeys::PrekeyStore;
use super::ratchet::Session;
use super::safety_number::SafetyNumber;
use super::x3dh::{self, PrekeyHeader};
use super::{E2eError, MAX_PENDING, RETIRED_BASE_KEYS, bundle};
use crate::error::{Error, MisuseError};
use crate::suite::{PrivateKey, PublicKey};
use crate::wire::{Body, Envelope, FetchedBundle, IdentityPublic, Name, UploadedBundle};

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

/// Which session an envelope is decrypted in.
enum Origin {
    /// The current session with the sender.
    Existing,
    /// A new session from a prekey message, and the one-time prekey it consumes.
    New(Option<u32>),
}

/// What decrypting an envelope produced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decrypted {
    /// The plaintext.
    pub body: Body,
    /// Whether this envelope started a new session (a prekey message from a new base key).
    pub new_session: bool,
}

/// A client's e2e state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peers {
    identity: IdentityKeyPair,
    prekeys: PrekeyStore,
    sessions: BTreeMap<Name, PeerSession>,
    retired: BTreeMap<Name, VecDeque<PublicKey>>,
    pinned: BTreeMap<Name, IdentityPublic>,
    pending: BTreeMap<Name, Vec<Body>>,
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
    pub const fn new(identity: IdentityKeyPair, prekeys: PrekeyStore) -> Self {
        Self {
            identity,
            prekeys,
            sessions: BTreeMap::new(),
            retired: BTreeMap::new(),
            pinned: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    /// This client's public identity.
    #[must_use]
    pub fn identity(&self) -> IdentityPublic {
        self.identity.public()
    }

    /// The bundle to upload: identity, current signed prekey, one-time prekeys not yet uploaded.
    ///
    /// # Errors
    /// Only if the batch could not be encoded, which the prekey store's bounds rule out.
    pub fn prepare_upload(&mut self) -> Result<UploadedBundle, E2eError> {
        self.prekeys.prepare_upload(&self.identity)
    }

    /// Marks `identity` as verified for `name` (SPEC.md §14.2).
    pub fn pin(&mut self, name: Name, identity: IdentityPublic) {
        self.pinned.insert(name, identity);
    }

    /// The identity the current session with `name` uses, if there is one.
    #[must_use]
    pub fn session_identity(&self, name: &Name) -> Option<IdentityPublic> {
        self.sessions.get(name).map(|s| s.peer)
    }

    /// Whether a session with `name` exists.
    #[must_use]
    pub fn has_session(&self, name: &Name) -> bool {
        self.sessions.contains_key(name)
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
    /// [`MisuseError::PendingFull`] beyond [`MAX_PENDING`] messages for one peer.
    pub fn queue(&mut self, to: &Name, body: Body) -> Result<bool, Error> {
        let queue = self.pending.entry(to.clone()).or_default();
        if queue.len() >= MAX_PENDING {
            return Err(MisuseError::PendingFull.into());
        }
        queue.push(body);
        Ok(queue.len() == 1)
    }

    /// Removes and returns the messages waiting for `to`.
    pub fn take_pending(&mut self, to: &Name) -> Vec<Body> {
        self.pending.remove(to).unwrap_or_default()
    }

    /// Starts a session with `name` from a fetched bundle (SPEC.md §11.1): validates it, compares it
    /// with the verified identity if there is one, and runs the initiator's handshake with a fresh
    /// ephemeral key. Replaces any existing session with `name`.
    ///
    /// # Errors
    /// [`E2eError::Bundle`] or [`E2eError::IdentityMismatch`] (nothing is encrypted, and nothing
    /// changes), or a non-contributory DH.
    pub fn start_session<R: CryptoRng + ?Sized>(
        &mut self,
        name: &Name,
        bundle: &FetchedBundle,
        rng: &mut R,
    ) -> Result<(), E2eError> {
        let verified = bundle::verify_fetched(name, bundle, self.pinned.get(name))?;
        let ephemeral = PrivateKey::generate(rng);
        let base_key = ephemeral.public_key();
        let initiated = x3dh::initiate(&self.identity, &verified, ephemeral)?;
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
        self.replace_session(name, session);
        Ok(())
    }

    /// Encrypts `body` for `to` (SPEC.md §12.3): a prekey message while the session is unanswered,
    /// a ratchet message after.
    ///
    /// # Errors
    /// [`E2eError::NoSession`], or the ratchet's error; nothing changes.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        to: &Name,
        body: &Body,
        rng: &mut R,
    ) -> Result<Envelope, Error> {
        let mut session = self
            .sessions
            .get(to)
            .cloned()
            .ok_or_else(|| E2eError::NoSession { name: to.clone() })?;
        let (header, ciphertext) =
            session.ratchet.encrypt(body.as_bytes(), rng).map_err(E2eError::from)?;
        let message = RatchetMessage { header, ciphertext };
        let envelope = match session.prekey {
            Some(prekey) => EnvelopeBody::Prekey { prekey, message },
            None => EnvelopeBody::Ratchet(message),
        };
        let envelope = Envelope::new(envelope.encode())?;
        self.sessions.insert(to.clone(), session);
        Ok(envelope)
    }

    /// Decrypts an envelope from `from` (SPEC.md §11.2, §11.3, §12.4). Transactional.
    ///
    /// # Errors
    /// Malformed envelope ([`Error::Wire`]), or [`Error::E2e`]: identity mismatch with a verified
    /// identity, unknown prekey, replayed prekey message, no session, or the ratchet's refusal.
    pub fn decrypt(&mut self, from: &Name, envelope: &Envelope) -> Result<Decrypted, Error> {
        let (mut session, message, origin) = match EnvelopeBody::decode(envelope.as_bytes())? {
            EnvelopeBody::Ratchet(message) => {
                let session = self
                    .sessions
                    .get(from)
                    .cloned()
                    .ok_or_else(|| E2eError::NoSession { name: from.clone() })?;
                (session, message, Origin::Existing)
            }
            EnvelopeBody::Prekey { prekey, message } => {
                if self.pinned.get(from).is_some_and(|pinned| *pinned != prekey.identity) {
                    return Err(E2eError::IdentityMismatch { name: from.clone() }.into());
                }
                match self.sessions.get(from) {
                    Some(s) if s.base_key == prekey.base_key && s.peer == prekey.identity => {
                        (s.clone(), message, Origin::Existing)
                    }
                    _ => {
                        if self.retired.get(from).is_some_and(|r| r.contains(&prekey.base_key)) {
                            return Err(E2eError::ReplayedPrekeyMessage.into());
                        }
                        let responded = x3dh::respond(&self.identity, &self.prekeys, &prekey)?;
                        let session = PeerSession {
                            ratchet: Session::responder(
                                responded.shared_secret().clone(),
                                responded.ad().to_vec(),
                                responded.ratchet_key().clone(),
                            ),
                            peer: prekey.identity,
                            base_key: prekey.base_key,
                            prekey: None,
                        };
                        (session, message, Origin::New(prekey.one_time_prekey_id))
                    }
                }
            }
        };
        let plaintext = session
            .ratchet
            .decrypt(&message.header, &message.ciphertext)
            .map_err(E2eError::from)?;
        let body = Body::new(plaintext)?;
        // Everything fallible is done: commit.
        session.prekey = None;
        match origin {
            Origin::Existing => {
                self.sessions.insert(from.clone(), session);
                Ok(Decrypted { body, new_session: false })
            }
            Origin::New(one_time_prekey) => {
                if let Some(id) = one_time_prekey {
                    self.prekeys.remove_one_time(id);
                }
                self.replace_session(from, session);
                Ok(Decrypted { body, new_session: true })
            }
        }
    }

    /// Installs `session` for `name`, retiring the base key of the session it replaces.
    fn replace_session(&mut self, name: &Name, session: PeerSession) {
        if let Some(old) = self.sessions.insert(name.clone(), session) {
            let retired = self.retired.entry(name.clone()).or_default();
            if retired.len() >= RETIRED_BASE_KEYS {
                retired.pop_front();
            }
            retired.push_back(old.base_key);
        }
    }
}
