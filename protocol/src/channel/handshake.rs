//! Noise `HandshakeState` (spec rev 34, §5.3) for the `IK` pattern only (§7.5), as a typestate:
//!
//! ```text
//! IK:
//!   <- s
//!   ...
//!   -> e, es, s, ss        Initiator::write_message_1  /  Responder::read_message_1
//!   <- e, ee, se           ResponderReceived::write_message_2  /  InitiatorAwaitingResponse::read_message_2
//! ```
//!
//! Each state holds exactly the `HandshakeState` variables (`s`, `e`, `rs`, `re`) it still needs.
//! Readers borrow their state, so a bad message is an error that leaves the state as it was; writers
//! consume theirs, so a message cannot be written twice.

use rand_core::CryptoRng;

use crate::suite::{AEAD_TAG_LEN, DH_LEN, PrivateKey, PublicKey};

use super::symmetric_state::SymmetricState;
use super::transport::Transport;
use super::{
    ChannelError, MAX_NOISE_MESSAGE_LEN, MESSAGE_1_OVERHEAD, MESSAGE_2_OVERHEAD, PROTOCOL_NAME,
};

/// Length of the encrypted static key in message 1: `s` (32) ‖ tag (16).
const ENCRYPTED_STATIC_LEN: usize = DH_LEN + AEAD_TAG_LEN;

/// `Initialize()` (§5.3) common to both roles: `InitializeSymmetric(protocol_name)`,
/// `MixHash(prologue)`, then `MixHash` of the one pre-message key, the responder's static (`<- s`).
fn initialize(prologue: &[u8], responder_static: &PublicKey) -> SymmetricState {
    let mut symmetric = SymmetricState::initialize(PROTOCOL_NAME.as_bytes());
    symmetric.mix_hash(prologue);
    symmetric.mix_hash(responder_static.as_bytes());
    symmetric
}

/// Refuses to write a message of `overhead + payload_len` bytes if it would exceed
/// [`MAX_NOISE_MESSAGE_LEN`].
const fn check_write_len(overhead: usize, payload_len: usize) -> Result<(), ChannelError> {
    match overhead.checked_add(payload_len) {
        Some(len) if len <= MAX_NOISE_MESSAGE_LEN => Ok(()),
        _ => Err(ChannelError::MessageTooLong),
    }
}

/// Rejects a received message longer than [`MAX_NOISE_MESSAGE_LEN`] or shorter than `overhead`.
const fn check_read_len(overhead: usize, message: &[u8]) -> Result<(), ChannelError> {
    if message.len() > MAX_NOISE_MESSAGE_LEN {
        return Err(ChannelError::MessageTooLong);
    }
    if message.len() < overhead {
        return Err(ChannelError::MessageTooShort);
    }
    Ok(())
}

/// Splits a public key (the `e` token, §5.3 `ReadMessage`) off the front of `message`.
fn take_public_key(message: &[u8]) -> Result<(PublicKey, &[u8]), ChannelError> {
    let (key, rest) = message.split_first_chunk::<DH_LEN>().ok_or(ChannelError::MessageTooShort)?;
    Ok((PublicKey::from_bytes(*key), rest))
}

// ---------------------------------------------------------------------------------------------
// Initiator
// ---------------------------------------------------------------------------------------------

/// The initiator (client) before message 1: knows its static key `s` and the responder's `rs`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Initiator {
    symmetric: SymmetricState,
    s: PrivateKey,
    rs: PublicKey,
}

impl Initiator {
    /// `Initialize(IK, initiator = true, prologue, s, rs)` (§5.3).
    #[must_use]
    pub fn new(prologue: &[u8], s: PrivateKey, rs: PublicKey) -> Self {
        Self { symmetric: initialize(prologue, &rs), s, rs }
    }

    /// `WriteMessage(payload)` for `-> e, es, s, ss` (§5.3, §7.5), with ephemeral key `e`:
    ///
    /// ```text
    /// e:   out ‖= e.pub;                 MixHash(e.pub)
    /// es:  MixKey(DH(e, rs))
    /// s:   out ‖= EncryptAndHash(s.pub)
    /// ss:  MixKey(DH(s, rs))
    ///      out ‖= EncryptAndHash(payload)
    /// ```
    ///
    /// The message is exactly `MESSAGE_1_OVERHEAD + payload.len()` bytes
    /// ([`MESSAGE_1_OVERHEAD`]). `e` is consumed: an ephemeral key serves one handshake.
    ///
    /// # Errors
    /// [`ChannelError::MessageTooLong`] if the message would exceed [`MAX_NOISE_MESSAGE_LEN`];
    /// `Crypto(NonContributory)` if `rs` has small order. Either way the initiator is consumed; a
    /// caller that wants to retry clones it first.
    pub fn write_message_1(
        self,
        e: PrivateKey,
        payload: &[u8],
    ) -> Result<(InitiatorAwaitingResponse, Vec<u8>), ChannelError> {
        check_write_len(MESSAGE_1_OVERHEAD, payload.len())?;
        let Self { mut symmetric, s, rs } = self;
        let mut message = Vec::with_capacity(MESSAGE_1_OVERHEAD + payload.len());

        let e_pub = e.public_key();
        message.extend_from_slice(e_pub.as_bytes());
        symmetric.mix_hash(e_pub.as_bytes());

        symmetric.mix_key(e.diffie_hellman(&rs)?.expose());

        message.extend_from_slice(&symmetric.encrypt_and_hash(s.public_key().as_bytes())?);

        symmetric.mix_key(s.diffie_hellman(&rs)?.expose());

        message.extend_from_slice(&symmetric.encrypt_and_hash(payload)?);

        Ok((InitiatorAwaitingResponse { symmetric, s, e }, message))
    }

    /// [`Self::write_message_1`] with `e` drawn from `rng` ([`PrivateKey::generate`]).
    ///
    /// # Errors
    /// As [`Self::write_message_1`].
    pub fn write_message_1_with_rng<R: CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        payload: &[u8],
    ) -> Result<(InitiatorAwaitingResponse, Vec<u8>), ChannelError> {
        self.write_message_1(PrivateKey::generate(rng), payload)
    }
}

/// The initiator after sending message 1, waiting for message 2. Holds `s` and `e` (for `se`, `ee`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct InitiatorAwaitingResponse {
    symmetric: SymmetricState,
    s: PrivateKey,
    e: PrivateKey,
}

impl InitiatorAwaitingResponse {
    /// `ReadMessage(message)` for `<- e, ee, se` (§5.3, §7.5), then `Split()` (§5.2):
    ///
    /// ```text
    /// e:   re = message[..32];           MixHash(re)
    /// ee:  MixKey(DH(e, re))
    /// se:  MixKey(DH(s, re))
    ///      payload = DecryptAndHash(message[32..])
    /// ```
    ///
    /// Returns the [`Transport`] (sending with the first `Split()` key) and the responder's payload.
    /// Takes `&self`: a forged or damaged message 2 is an error, and the genuine one can still be
    /// read afterwards. (§5 says a failed handshake's state "is deleted"; keeping it is a deliberate
    /// choice against an on-path attacker who injects garbage to kill handshakes. It is safe: a
    /// failed read changes nothing, and X25519's twist security means repeated attempts with chosen
    /// `re` reveal nothing about `e` or `s`. A caller that wants §5 behaviour drops the state.)
    ///
    /// # Errors
    /// [`ChannelError::MessageTooLong`] / [`ChannelError::MessageTooShort`] (fewer than
    /// [`MESSAGE_2_OVERHEAD`] bytes); `Crypto(NonContributory)` if `re` has small order;
    /// `Crypto(AeadOpen)` if the payload does not authenticate.
    pub fn read_message_2(&self, message: &[u8]) -> Result<(Transport, Vec<u8>), ChannelError> {
        check_read_len(MESSAGE_2_OVERHEAD, message)?;
        let mut symmetric = self.symmetric.clone();

        let (re, rest) = take_public_key(message)?;
        symmetric.mix_hash(re.as_bytes());

        symmetric.mix_key(self.e.diffie_hellman(&re)?.expose());

        symmetric.mix_key(self.s.diffie_hellman(&re)?.expose());

        let payload = symmetric.decrypt_and_hash(rest)?;

        let (initiator_to_responder, responder_to_initiator, handshake_hash) = symmetric.split();
        Ok((
            Transport::new(initiator_to_responder, responder_to_initiator, handshake_hash),
            payload,
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Responder
// ---------------------------------------------------------------------------------------------

/// The responder (server) before message 1: knows its static key `s`. Reading message 1 borrows it,
/// so one `Responder` serves any number of handshakes.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Responder {
    symmetric: SymmetricState,
    s: PrivateKey,
}

impl Responder {
    /// `Initialize(IK, initiator = false, prologue, s)` (§5.3).
    #[must_use]
    pub fn new(prologue: &[u8], s: PrivateKey) -> Self {
        Self { symmetric: initialize(prologue, &s.public_key()), s }
    }

    /// `ReadMessage(message)` for `-> e, es, s, ss` (§5.3, §7.5):
    ///
    /// ```text
    /// e:   re = message[..32];            MixHash(re)
    /// es:  MixKey(DH(s, re))
    /// s:   rs = DecryptAndHash(message[32..80])
    /// ss:  MixKey(DH(s, rs))
    ///      payload = DecryptAndHash(message[80..])
    /// ```
    ///
    /// Success shows that the sender knew `rs`'s private key or the responder's (`ss`), at
    /// authentication level 1 (§7.7): message 1 can be replayed, so the initiator is live only once
    /// message 2 has been answered. Whether `rs` is acceptable is the caller's decision
    /// ([`ResponderReceived::remote_static`]).
    ///
    /// # Errors
    /// [`ChannelError::MessageTooLong`] / [`ChannelError::MessageTooShort`] (fewer than
    /// [`MESSAGE_1_OVERHEAD`] bytes); `Crypto(NonContributory)` if `re` or `rs` has small order;
    /// `Crypto(AeadOpen)` if the static key or the payload does not authenticate.
    pub fn read_message_1(&self, message: &[u8]) -> Result<ResponderReceived, ChannelError> {
        check_read_len(MESSAGE_1_OVERHEAD, message)?;
        let mut symmetric = self.symmetric.clone();

        let (re, rest) = take_public_key(message)?;
        symmetric.mix_hash(re.as_bytes());

        symmetric.mix_key(self.s.diffie_hellman(&re)?.expose());

        let (encrypted_static, encrypted_payload) =
            rest.split_at_checked(ENCRYPTED_STATIC_LEN).ok_or(ChannelError::MessageTooShort)?;
        let rs = symmetric.decrypt_and_hash(encrypted_static)?;
        let rs = PublicKey::from_bytes(
            rs.as_slice().try_into().map_err(|_| ChannelError::MessageTooShort)?,
        );

        symmetric.mix_key(self.s.diffie_hellman(&rs)?.expose());

        let payload = symmetric.decrypt_and_hash(encrypted_payload)?;

        Ok(ResponderReceived { symmetric, re, rs, payload })
    }
}

/// The responder after reading message 1: knows the initiator's static key `rs` and ephemeral `re`,
/// and holds message 1's payload.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ResponderReceived {
    symmetric: SymmetricState,
    re: PublicKey,
    rs: PublicKey,
    payload: Vec<u8>,
}

impl ResponderReceived {
    /// The initiator's static public key, as authenticated by message 1.
    #[must_use]
    pub const fn remote_static(&self) -> PublicKey {
        self.rs
    }

    /// Message 1's decrypted payload.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// `WriteMessage(payload)` for `<- e, ee, se` (§5.3, §7.5) with ephemeral key `e`, then
    /// `Split()` (§5.2):
    ///
    /// ```text
    /// e:   out ‖= e.pub;                 MixHash(e.pub)
    /// ee:  MixKey(DH(e, re))
    /// se:  MixKey(DH(e, rs))
    ///      out ‖= EncryptAndHash(payload)
    /// ```
    ///
    /// Returns the [`Transport`] (sending with the second `Split()` key) and message 2, exactly
    /// `MESSAGE_2_OVERHEAD + payload.len()` bytes ([`MESSAGE_2_OVERHEAD`]). `e` is taken by value
    /// so that it cannot be reused; it is zeroized when this function returns.
    ///
    /// # Errors
    /// [`ChannelError::MessageTooLong`] if the message would exceed [`MAX_NOISE_MESSAGE_LEN`];
    /// `Crypto(NonContributory)` if `re` or `rs` has small order (already excluded by
    /// [`Responder::read_message_1`], which computed DHs with both).
    pub fn write_message_2(
        self,
        e: PrivateKey,
        payload: &[u8],
    ) -> Result<(Transport, Vec<u8>), ChannelError> {
        check_write_len(MESSAGE_2_OVERHEAD, payload.len())?;
        let Self { mut symmetric, re, rs, payload: _ } = self;
        let mut message = Vec::with_capacity(MESSAGE_2_OVERHEAD + payload.len());

        let e_pub = e.public_key();
        message.extend_from_slice(e_pub.as_bytes());
        symmetric.mix_hash(e_pub.as_bytes());

        symmetric.mix_key(e.diffie_hellman(&re)?.expose());

        symmetric.mix_key(e.diffie_hellman(&rs)?.expose());

        message.extend_from_slice(&symmetric.encrypt_and_hash(payload)?);

        let (initiator_to_responder, responder_to_initiator, handshake_hash) = symmetric.split();
        Ok((
            Transport::new(responder_to_initiator, initiator_to_responder, handshake_hash),
            message,
        ))
    }

    /// [`Self::write_message_2`] with `e` drawn from `rng` ([`PrivateKey::generate`]).
    ///
    /// # Errors
    /// As [`Self::write_message_2`].
    pub fn write_message_2_with_rng<R: CryptoRng + ?Sized>(
        self,
        rng: &mut R,
        payload: &[u8],
    ) -> Result<(Transport, Vec<u8>), ChannelError> {
        self.write_message_2(PrivateKey::generate(rng), payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::PROLOGUE;
    use crate::channel::testing::{Keys, handshake};
    use crate::suite::CryptoError;

    const AEAD_OPEN: ChannelError = ChannelError::Crypto(CryptoError::AeadOpen);
    const NON_CONTRIBUTORY: ChannelError = ChannelError::Crypto(CryptoError::NonContributory);

    #[test]
    fn round_trip() {
        let k = Keys::new(1);
        let (awaiting, m1) = k.initiator().write_message_1(k.ie.clone(), b"hello").unwrap();
        assert_eq!(m1.len(), MESSAGE_1_OVERHEAD + 5);
        let received = k.responder().read_message_1(&m1).unwrap();
        assert_eq!(received.payload(), b"hello");
        assert_eq!(received.remote_static(), k.is.public_key());
        let (mut rt, m2) = received.write_message_2(k.re.clone(), b"welcome").unwrap();
        assert_eq!(m2.len(), MESSAGE_2_OVERHEAD + 7);
        let (mut it, payload) = awaiting.read_message_2(&m2).unwrap();
        assert_eq!(payload, b"welcome");
        assert_eq!(it.handshake_hash(), rt.handshake_hash());
        assert_eq!(rt.read(&it.write(b"ping").unwrap()).unwrap(), b"ping");
        assert_eq!(it.read(&rt.write(b"pong").unwrap()).unwrap(), b"pong");
    }

    #[test]
    fn empty_payloads_are_minimum_length() {
        let k = Keys::new(2);
        let (awaiting, m1) = k.initiator().write_message_1(k.ie.clone(), b"").unwrap();
        assert_eq!(m1.len(), MESSAGE_1_OVERHEAD);
        let (_, m2) =
            k.responder().read_message_1(&m1).unwrap().write_message_2(k.re.clone(), b"").unwrap();
        assert_eq!(m2.len(), MESSAGE_2_OVERHEAD);
        assert_eq!(awaiting.read_message_2(&m2).unwrap().1, b"");
    }

    #[test]
    fn truncated_message_1() {
        let k = Keys::new(3);
        let (_, m1) = k.initiator().write_message_1(k.ie.clone(), b"payload").unwrap();
        let responder = k.responder();
        for len in [0, 1, 31, 32, 79, 80, MESSAGE_1_OVERHEAD - 1] {
            assert_eq!(
                responder.read_message_1(&m1[..len]),
                Err(ChannelError::MessageTooShort),
                "{len}"
            );
        }
        // Long enough for the fixed part, but the payload ciphertext is cut: its tag fails.
        for len in [MESSAGE_1_OVERHEAD, m1.len() - 1] {
            assert_eq!(responder.read_message_1(&m1[..len]), Err(AEAD_OPEN), "{len}");
        }
        assert!(responder.read_message_1(&m1).is_ok());
    }

    #[test]
    fn flipped_byte_in_each_part_of_message_1() {
        let k = Keys::new(4);
        let (_, m1) = k.initiator().write_message_1(k.ie.clone(), b"payload").unwrap();
        let responder = k.responder();
        // ephemeral (0..32), encrypted static (32..64), its tag (64..80), payload (80..87), tag.
        for i in [0, 17, 31, 32, 50, 63, 64, 79, 80, 86, 87, m1.len() - 1] {
            let mut bad = m1.clone();
            bad[i] ^= 0x01;
            assert_eq!(responder.read_message_1(&bad), Err(AEAD_OPEN), "byte {i}");
        }
        // The masked top bit of the ephemeral: same DH, different `h`, so the static's tag fails.
        let mut bad = m1.clone();
        bad[31] ^= 0x80;
        assert_eq!(responder.read_message_1(&bad), Err(AEAD_OPEN));
    }

    #[test]
    fn truncated_and_flipped_message_2_leave_the_initiator_able_to_read_the_genuine_one() {
        let k = Keys::new(5);
        let (awaiting, m1) = k.initiator().write_message_1(k.ie.clone(), b"").unwrap();
        let (rt, m2) = k
            .responder()
            .read_message_1(&m1)
            .unwrap()
            .write_message_2(k.re.clone(), b"reply")
            .unwrap();
        let before = awaiting.clone();

        for len in [0, 31, 32, MESSAGE_2_OVERHEAD - 1] {
            assert_eq!(
                awaiting.read_message_2(&m2[..len]).map(|_| ()),
                Err(ChannelError::MessageTooShort)
            );
        }
        for len in [MESSAGE_2_OVERHEAD, m2.len() - 1] {
            assert_eq!(awaiting.read_message_2(&m2[..len]).map(|_| ()), Err(AEAD_OPEN));
        }
        // ephemeral (0..32), payload (32..37), tag (37..53). Flipping bit 7 of byte 31 leaves the
        // X25519 result unchanged (RFC 7748 masks that bit), but `h` covers the raw bytes, so the
        // payload's associated data differs and the tag still fails.
        for i in [0, 31, 32, 36, 37, m2.len() - 1] {
            let mut bad = m2.clone();
            bad[i] ^= 0x80;
            assert_eq!(awaiting.read_message_2(&bad).map(|_| ()), Err(AEAD_OPEN), "byte {i}");
        }
        assert_eq!(awaiting, before);

        let (it, payload) = awaiting.read_message_2(&m2).unwrap();
        assert_eq!(payload, b"reply");
        assert_eq!(it.handshake_hash(), rt.handshake_hash());
    }

    #[test]
    fn message_2_from_another_responder_session_is_rejected() {
        let k = Keys::new(6);
        let (awaiting, m1) = k.initiator().write_message_1(k.ie.clone(), b"").unwrap();
        let other = Keys::new(7);
        let (_, m1_other) = other.initiator().write_message_1(other.ie.clone(), b"").unwrap();
        let (_, m2_other) = other
            .responder()
            .read_message_1(&m1_other)
            .unwrap()
            .write_message_2(other.re.clone(), b"")
            .unwrap();
        assert_eq!(awaiting.read_message_2(&m2_other).map(|_| ()), Err(AEAD_OPEN));
        let (_, m2) =
            k.responder().read_message_1(&m1).unwrap().write_message_2(k.re.clone(), b"").unwrap();
        assert!(awaiting.read_message_2(&m2).is_ok());
    }

    #[test]
    fn low_order_ephemeral_in_message_1_is_non_contributory() {
        let k = Keys::new(8);
        let (_, mut m1) = k.initiator().write_message_1(k.ie.clone(), b"x").unwrap();
        m1[..32].fill(0);
        assert_eq!(k.responder().read_message_1(&m1), Err(NON_CONTRIBUTORY));
    }

    #[test]
    fn low_order_ephemeral_in_message_2_is_non_contributory() {
        let k = Keys::new(9);
        let (awaiting, m1) = k.initiator().write_message_1(k.ie.clone(), b"").unwrap();
        let (_, mut m2) =
            k.responder().read_message_1(&m1).unwrap().write_message_2(k.re.clone(), b"x").unwrap();
        m2[..32].fill(0);
        assert_eq!(awaiting.read_message_2(&m2).map(|_| ()), Err(NON_CONTRIBUTORY));
    }

    /// An initiator claiming a low-order static key: its message 1 authenticates up to `s`, and the
    /// responder's `ss` DH then fails. Built by hand, since no `PrivateKey` has a low-order public key.
    #[test]
    fn low_order_static_in_message_1_is_non_contributory() {
        let k = Keys::new(10);
        let rs = k.rs.public_key();
        let mut symmetric = initialize(PROLOGUE, &rs);
        let mut m1 = k.ie.public_key().as_bytes().to_vec();
        symmetric.mix_hash(k.ie.public_key().as_bytes());
        symmetric.mix_key(k.ie.diffie_hellman(&rs).unwrap().expose());
        m1.extend_from_slice(&symmetric.encrypt_and_hash(&[0u8; 32]).unwrap());
        m1.extend_from_slice(&[0u8; AEAD_TAG_LEN]); // never reached
        assert_eq!(k.responder().read_message_1(&m1), Err(NON_CONTRIBUTORY));
    }

    #[test]
    fn low_order_responder_key_is_refused_when_writing_message_1() {
        let k = Keys::new(11);
        let initiator = Initiator::new(PROLOGUE, k.is.clone(), PublicKey::from_bytes([0; 32]));
        assert_eq!(initiator.write_message_1(k.ie.clone(), b"").map(|_| ()), Err(NON_CONTRIBUTORY));
    }

    #[test]
    fn wrong_prologue_or_wrong_responder_key_fails_at_the_encrypted_static() {
        let k = Keys::new(12);
        let (_, m1) = Initiator::new(b"other prologue", k.is.clone(), k.rs.public_key())
            .write_message_1(k.ie.clone(), b"")
            .unwrap();
        assert_eq!(k.responder().read_message_1(&m1), Err(AEAD_OPEN));

        let impostor = Keys::new(13).rs;
        let (_, m1) = Initiator::new(PROLOGUE, k.is.clone(), impostor.public_key())
            .write_message_1(k.ie.clone(), b"")
            .unwrap();
        assert_eq!(k.responder().read_message_1(&m1), Err(AEAD_OPEN));
    }

    #[test]
    fn message_size_limits() {
        let k = Keys::new(14);
        let max_1 = MAX_NOISE_MESSAGE_LEN - MESSAGE_1_OVERHEAD;
        assert_eq!(
            k.initiator().write_message_1(k.ie.clone(), &vec![0; max_1 + 1]).map(|_| ()),
            Err(ChannelError::MessageTooLong)
        );
        let (awaiting, m1) = k.initiator().write_message_1(k.ie.clone(), &vec![7; max_1]).unwrap();
        assert_eq!(m1.len(), MAX_NOISE_MESSAGE_LEN);
        let responder = k.responder();
        let mut too_long = m1.clone();
        too_long.push(0);
        assert_eq!(responder.read_message_1(&too_long), Err(ChannelError::MessageTooLong));
        let received = responder.read_message_1(&m1).unwrap();
        assert_eq!(received.payload().len(), max_1);

        let max_2 = MAX_NOISE_MESSAGE_LEN - MESSAGE_2_OVERHEAD;
        assert_eq!(
            received.clone().write_message_2(k.re.clone(), &vec![0; max_2 + 1]).map(|_| ()),
            Err(ChannelError::MessageTooLong)
        );
        let (_, m2) = received.write_message_2(k.re.clone(), &vec![9; max_2]).unwrap();
        assert_eq!(m2.len(), MAX_NOISE_MESSAGE_LEN);
        let mut too_long = m2.clone();
        too_long.push(0);
        assert_eq!(
            awaiting.read_message_2(&too_long).map(|_| ()),
            Err(ChannelError::MessageTooLong)
        );
        assert_eq!(awaiting.read_message_2(&m2).unwrap().1.len(), max_2);
    }

    #[test]
    fn with_rng_variants_complete_a_handshake() {
        let (it, rt) = handshake(15);
        assert_eq!(it.handshake_hash(), rt.handshake_hash());
    }

    #[test]
    fn states_hash_and_compare() {
        use std::collections::HashSet;
        let k = Keys::new(16);
        let set: HashSet<Initiator> = [k.initiator(), k.initiator()].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert!(!format!("{:?}", k.initiator()).contains(&hex::encode(k.is.expose())));
    }
}
