//! A Double Ratchet session (SPEC §12.2–§12.4).

use rand_core::CryptoRng;

use crate::state::{
    StateError, StateWriter, ensure, read_flag, read_private_key, read_public_key, read_secret,
    read_small_count,
};
use crate::suite::{AEAD_TAG_LEN, HASH_LEN, PrivateKey, PublicKey, Secret};
use crate::wire::Reader;

use super::chain_key::ChainKey;
use super::header::{HEADER_LEN, Header};
use super::message_key::MessageKey;
use super::root_key::RootKey;
use super::skipped::SkippedKeys;
use super::{MAX_SKIP, RatchetError, WorkBudget};

/// One end of a Double Ratchet conversation: the state of §12.2.
///
/// | §12.2             | field                                |
/// |------------------|--------------------------------------|
/// | `RK`             | `root_key`                           |
/// | `DHs`, `DHr`     | `sending_ratchet_key`, `receiving_ratchet_key` |
/// | `CKs`, `CKr`     | `sending_chain`, `receiving_chain`   |
/// | `Ns`, `Nr`, `PN` | `ns`, `nr`, `pn`                     |
/// | skipped keys     | `skipped`                            |
/// | `AD`             | `ad`                                 |
///
/// (`DHs` is always set when `CKs` is.) Every secret is a [`Secret`]: the `Debug` output shows no
/// key bytes and `==` is constant time per key. `Clone`, `Eq` and `Hash` let a caller snapshot a
/// session and a model checker deduplicate states.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Session {
    root_key: RootKey,
    sending_ratchet_key: Option<PrivateKey>,
    receiving_ratchet_key: Option<PublicKey>,
    sending_chain: Option<ChainKey>,
    receiving_chain: Option<ChainKey>,
    ns: u32,
    nr: u32,
    pn: u32,
    skipped: SkippedKeys,
    ad: Vec<u8>,
}

impl Session {
    /// The initiator's (Alice's) session (§12.2): `RK = SK`, `DHr = their_ratchet_key` (Bob's
    /// signed prekey `SPK_B`), no sending key or chains yet, counters 0. Her first
    /// [`Self::encrypt`] draws her first ratchet key.
    #[must_use]
    pub fn initiator(sk: Secret<HASH_LEN>, ad: Vec<u8>, their_ratchet_key: PublicKey) -> Self {
        Self::new(sk, ad, None, Some(their_ratchet_key))
    }

    /// The responder's (Bob's) session (§12.2): `RK = SK`, `DHs = our_ratchet_key` (his signed
    /// prekey pair `spk_B`), no peer key or chains yet, counters 0. It must [`Self::decrypt`] a
    /// message before it can send.
    #[must_use]
    pub fn responder(sk: Secret<HASH_LEN>, ad: Vec<u8>, our_ratchet_key: PrivateKey) -> Self {
        Self::new(sk, ad, Some(our_ratchet_key), None)
    }

    fn new(
        sk: Secret<HASH_LEN>,
        ad: Vec<u8>,
        sending_ratchet_key: Option<PrivateKey>,
        receiving_ratchet_key: Option<PublicKey>,
    ) -> Self {
        Self {
            root_key: RootKey::new(sk),
            sending_ratchet_key,
            receiving_ratchet_key,
            sending_chain: None,
            receiving_chain: None,
            ns: 0,
            nr: 0,
            pn: 0,
            skipped: SkippedKeys::new(),
            ad,
        }
    }

    /// Encrypts `plaintext` as the next message (§12.3), returning its header and `ct`
    /// (`plaintext.len() + 16` bytes). The AEAD's associated data is `AD || header.encode()`.
    ///
    /// If there is no sending chain (the first message, or the first after a new peer ratchet key
    /// arrived), this turns the DH ratchet: draws a new ratchet key pair (32 bytes from `rng`,
    /// §2.4) and derives `RK, CKs = KDF_RK(RK, DH(DHs, DHr))`. Otherwise `rng` is not used.
    ///
    /// **Transactional**: every fallible step runs on locals, and the session's fields change only
    /// after the last of them. Besides the returned ciphertext, nothing is allocated (for an `AD`
    /// no longer than a handshake makes).
    ///
    /// # Errors
    /// [`RatchetError::NoSession`] on a responder that has not yet decrypted a message;
    /// [`RatchetError::Crypto`] if the peer's ratchet key has small order (possible only for an
    /// initiator given an unvalidated key: a received key that small has failed its own DH);
    /// [`RatchetError::ChainExhausted`] after `2^32 − 1` messages in one sending chain. On every
    /// error the session is unchanged (the RNG may have advanced).
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<(Header, Vec<u8>), RatchetError> {
        let capacity = plaintext.len() + AEAD_TAG_LEN;
        self.encrypt_after(plaintext, rng, |_| Vec::with_capacity(capacity))
    }

    /// [`Self::encrypt`], writing the ciphertext after the bytes `prefix` returns for the message's
    /// header, in the same buffer: how an envelope (SPEC §13) is built with one allocation. Give
    /// the buffer room for `plaintext.len() + 16` more bytes. `prefix` is called only once nothing
    /// can fail any more.
    ///
    /// # Errors
    /// As [`Self::encrypt`]; the session is then unchanged.
    pub fn encrypt_after<R: CryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
        prefix: impl FnOnce(&Header) -> Vec<u8>,
    ) -> Result<(Header, Vec<u8>), RatchetError> {
        // `Ns = 2^32 − 1` is an index no message may carry.
        let exhausted = self.ns == u32::MAX;
        let (ours, message_key, next_chain, turn) =
            match (&self.sending_ratchet_key, &self.sending_chain) {
                (Some(ours), Some(chain)) => {
                    if exhausted {
                        return Err(RatchetError::ChainExhausted);
                    }
                    let (message_key, next_chain) = chain.step();
                    (ours.public_key(), message_key, next_chain, None)
                }
                // CKs is none: turn the DH ratchet.
                _ => {
                    let theirs = self.receiving_ratchet_key.ok_or(RatchetError::NoSession)?;
                    let key_pair = PrivateKey::generate(rng);
                    let (root_key, chain) =
                        self.root_key.kdf_rk(&key_pair.diffie_hellman(&theirs)?);
                    if exhausted {
                        return Err(RatchetError::ChainExhausted);
                    }
                    let (message_key, next_chain) = chain.step();
                    (key_pair.public_key(), message_key, next_chain, Some((key_pair, root_key)))
                }
            };
        let header = Header { dh: ours, pn: self.pn, n: self.ns };
        let mut sealed = prefix(&header);
        let start = sealed.len();
        sealed.extend_from_slice(plaintext);
        message_key.seal_in_place(
            AssociatedData::new(&self.ad, &header).as_slice(),
            &mut sealed,
            start,
        );
        // Nothing below can fail: commit.
        if let Some((key_pair, root_key)) = turn {
            self.root_key = root_key;
            self.sending_ratchet_key = Some(key_pair);
        }
        self.sending_chain = Some(next_chain);
        self.ns += 1; // < 2^32 − 1 before, checked above
        Ok((header, sealed))
    }

    /// Decrypts a message (§12.4). **Transactional**: every fallible step (the DH, the key
    /// derivations, the AEAD) runs on locals, and the session's fields change only once the AEAD
    /// has opened. Takes no randomness. Allocates the plaintext; [`Self::decrypt_in_place`] does
    /// not.
    ///
    /// In order: a key from the skipped store for `(dh, n)` if there is one (and it is deleted);
    /// otherwise, if `dh` is a new peer ratchet key, the rest of the current receiving chain up to
    /// `pn` is stored and the DH ratchet turns (`RK, CKr = KDF_RK(RK, DH(DHs, dh))`, and the next
    /// send will draw a new key); then the keys of the receiving chain before `n` are stored and
    /// the key for `n` is used and deleted.
    ///
    /// # Errors
    /// [`RatchetError::TooFarAhead`] if `pn` or `n` lies more than [`MAX_SKIP`] beyond the chain's
    /// next index; [`RatchetError::Replayed`] if `n` names an already used (or evicted) key of the
    /// current receiving chain; [`RatchetError::Crypto`] if `dh` has small order;
    /// [`RatchetError::DecryptFailed`] if the AEAD does not open (a modified or truncated message,
    /// wrong `AD`, an old chain's key no longer stored) or no state could have sent the message;
    /// [`RatchetError::ChainExhausted`] if `n = 2^32 − 1`. On every error the session is unchanged.
    pub fn decrypt(&mut self, header: &Header, ciphertext: &[u8]) -> Result<Vec<u8>, RatchetError> {
        let mut buffer = ciphertext.to_vec();
        self.decrypt_in_place(header, &mut buffer, 0)?;
        Ok(buffer)
    }

    /// [`Self::decrypt`] in place: `buffer[start..]` is the ciphertext, and becomes the plaintext.
    /// An in-order message allocates nothing; a gap collects its keys in a local list first. On
    /// every error the session *and* `buffer` are unchanged (the AEAD verifies before it decrypts),
    /// so a caller can try the same buffer in another session.
    ///
    /// # Errors
    /// As [`Self::decrypt`].
    pub fn decrypt_in_place(
        &mut self,
        header: &Header,
        buffer: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), RatchetError> {
        self.decrypt_within(header, buffer, start, &mut WorkBudget::per_envelope())
    }

    /// [`Self::decrypt_in_place`], charging the `KDF_CK` steps this session needs for the message
    /// (both gaps, each at most `MAX_SKIP`) to `budget`, which the caller shares between every session it tries
    /// the same envelope in (SPEC.md §12.5). The charge is taken before any of that work, and kept
    /// whether or not the message then opens: the work was done.
    ///
    /// # Errors
    /// As [`Self::decrypt`], and [`RatchetError::WorkExceeded`] if `budget` cannot pay for this
    /// attempt (then nothing was computed).
    pub fn decrypt_within(
        &mut self,
        header: &Header,
        buffer: &mut Vec<u8>,
        start: usize,
        budget: &mut WorkBudget,
    ) -> Result<(), RatchetError> {
        let ad = AssociatedData::new(&self.ad, header);

        // A stored key: open with it, and delete it only if it opened.
        if let Some(message_key) = self.skipped.get(&header.dh, header.n) {
            message_key
                .clone()
                .open_in_place(ad.as_slice(), buffer, start)
                .map_err(|_| RatchetError::DecryptFailed)?;
            if crate::flaws::on(crate::flaws::Flaw::RatchetNoAdvance) {
                return Ok(());
            } // seeded flaw hook
            if crate::flaws::on(crate::flaws::Flaw::KeepSkippedKeys) {
                return Ok(());
            } // seeded flaw hook
            self.skipped.take(&header.dh, header.n);
            return Ok(());
        }

        // The receiving chain this message belongs to, and the keys `SKIP` stores, on locals. The
        // list is sized once for both gaps (each at most MAX_SKIP, or SKIP refuses it): growing it
        // would move message keys and free the old buffer without erasing them.
        let turning = self.receiving_ratchet_key != Some(header.dh);
        let gap = |from: u32, until: u32| {
            usize::try_from(until.saturating_sub(from).min(MAX_SKIP)).unwrap_or(0)
        };
        let old_gap =
            if turning && self.receiving_chain.is_some() { gap(self.nr, header.pn) } else { 0 };
        let new_gap = gap(if turning { 0 } else { self.nr }, header.n);
        // Both gaps are at most MAX_SKIP, so the sum fits a u32.
        let steps = u32::try_from(old_gap + new_gap).unwrap_or(u32::MAX);
        budget.charge(steps)?;
        let mut skipped = Vec::with_capacity(old_gap + new_gap);
        let (mut receiving, turn) = if !turning {
            let current = Receiving {
                dh: self.receiving_ratchet_key,
                chain: self.receiving_chain.clone(),
                nr: self.nr,
            };
            (current, None)
        } else {
            // The peer has turned the DH ratchet.
            if self.receiving_chain.is_some() {
                let mut old = Receiving {
                    dh: self.receiving_ratchet_key,
                    chain: self.receiving_chain.clone(),
                    nr: self.nr,
                };
                old.skip(header.pn, &mut skipped)?;
            }
            // An initiator that has not sent has no key a genuine new peer key could answer.
            let ours = self.sending_ratchet_key.as_ref().ok_or(RatchetError::DecryptFailed)?;
            let dh_out = ours.diffie_hellman(&header.dh)?;
            let (root_key, chain) = self.root_key.kdf_rk(&dh_out);
            (Receiving { dh: Some(header.dh), chain: Some(chain), nr: 0 }, Some(root_key))
        };
        if header.n < receiving.nr {
            return Err(RatchetError::Replayed);
        }
        receiving.skip(header.n, &mut skipped)?;
        // `dh = DHr` with no receiving chain: the initiator's initial DHr (the responder's signed
        // prekey), which the responder never sends under. No key exists for such a message.
        let chain = receiving.chain.ok_or(RatchetError::DecryptFailed)?;
        let (message_key, next_chain) = chain.step();
        let nr = receiving.nr.checked_add(1).ok_or(RatchetError::ChainExhausted)?;
        message_key
            .open_in_place(ad.as_slice(), buffer, start)
            .map_err(|_| RatchetError::DecryptFailed)?;
        if crate::flaws::on(crate::flaws::Flaw::RatchetNoAdvance) {
            return Ok(());
        } // seeded flaw hook

        // The AEAD opened: commit.
        if let Some(root_key) = turn {
            self.pn = self.ns;
            self.ns = 0;
            self.receiving_ratchet_key = Some(header.dh);
            self.root_key = root_key;
            self.sending_chain = None;
        }
        // Oldest first: the rest of the old chain, then the gap of the new one (§12.5 eviction).
        for (dh, n, key) in skipped {
            self.skipped.insert(dh, n, key);
        }
        self.receiving_chain = Some(next_chain);
        self.nr = nr;
        Ok(())
    }

    /// The session's associated data `AD` (§11.1: `IK_A || IK_B`).
    #[must_use]
    pub fn ad(&self) -> &[u8] {
        &self.ad
    }

    /// Our current ratchet public key `DHs`, if we have one: none for an initiator before its first
    /// message. After a new peer key arrives, this is still the old key until the next send.
    #[must_use]
    pub fn sending_ratchet_key(&self) -> Option<PublicKey> {
        self.sending_ratchet_key.as_ref().map(PrivateKey::public_key)
    }

    /// The peer's current ratchet public key `DHr`, if any: the responder's signed prekey for a
    /// fresh initiator, none for a fresh responder.
    #[must_use]
    pub const fn receiving_ratchet_key(&self) -> Option<PublicKey> {
        self.receiving_ratchet_key
    }

    /// Whether this session has decrypted a message. Only a successful decrypt creates a receiving
    /// chain, and none is ever removed, so this is "a receiving chain exists". An initiator sends
    /// prekey messages until it is true (§11.3); a responder can send only once it is.
    #[must_use]
    pub const fn has_received(&self) -> bool {
        self.receiving_chain.is_some()
    }

    /// `Ns`: the index the next message of the current sending chain will carry.
    #[must_use]
    pub const fn sending_index(&self) -> u32 {
        self.ns
    }

    /// `Nr`: the index of the next in-order message of the current receiving chain.
    #[must_use]
    pub const fn receiving_index(&self) -> u32 {
        self.nr
    }

    /// `PN`: the length of the previous sending chain, carried in every header of the current one.
    #[must_use]
    pub const fn previous_sending_chain_len(&self) -> u32 {
        self.pn
    }

    /// How many skipped message keys are stored (at most [`super::MAX_SKIPPED_KEYS`]).
    #[must_use]
    pub fn skipped_key_count(&self) -> usize {
        self.skipped.len()
    }

    /// Evicts up to `count` of this session's oldest skipped keys (SPEC.md §12.5: the client-wide
    /// bound); returns how many were evicted.
    pub fn evict_skipped_keys(&mut self, count: usize) -> usize {
        self.skipped.evict_oldest(count)
    }

    /// The persisted form (SPEC.md §18.3): `RK (32)`, `DHs` (flag, private key), `DHr` (flag,
    /// key), `CKs` (flag, key), `CKr` (flag, key), `BE32(Ns) || BE32(Nr) || BE32(PN)`,
    /// `AD` (`len: u8 || bytes`), the skipped keys.
    pub(crate) fn write_state(&self, w: &mut StateWriter) {
        w.bytes(self.root_key.expose());
        w.flag(self.sending_ratchet_key.is_some());
        if let Some(key) = &self.sending_ratchet_key {
            w.private_key(key);
        }
        w.flag(self.receiving_ratchet_key.is_some());
        if let Some(key) = &self.receiving_ratchet_key {
            w.public_key(key);
        }
        for chain in [&self.sending_chain, &self.receiving_chain] {
            w.flag(chain.is_some());
            if let Some(chain) = chain {
                w.bytes(chain.expose());
            }
        }
        w.u32(self.ns);
        w.u32(self.nr);
        w.u32(self.pn);
        w.small_count(self.ad.len());
        w.bytes(&self.ad);
        self.skipped.write_state(w);
    }

    /// Reads [`Self::write_state`]'s form and checks what the ratchet's own rules imply: a
    /// sending chain only with a sending key and a receiving chain only with a peer key (§12.2),
    /// and no counter moved without its chain. The caller checks the `AD`.
    ///
    /// # Errors
    /// A bad flag, a low-order `DHr`, an `AD` longer than a handshake makes, an inconsistent
    /// combination, a bad skipped-key store, or truncation.
    pub(crate) fn read_state(r: &mut Reader<'_>) -> Result<Self, StateError> {
        let root_key = read_secret(r, RootKey::new)?;
        let sending_ratchet_key =
            if read_flag(r, "DHs")? { Some(read_private_key(r)?) } else { None };
        let receiving_ratchet_key =
            if read_flag(r, "DHr")? { Some(read_public_key(r, "DHr")?) } else { None };
        let sending_chain =
            if read_flag(r, "CKs")? { Some(read_secret(r, ChainKey::new)?) } else { None };
        let receiving_chain =
            if read_flag(r, "CKr")? { Some(read_secret(r, ChainKey::new)?) } else { None };
        let (ns, nr, pn) = (r.u32()?, r.u32()?, r.u32()?);
        let ad_len = read_small_count(r, "AD", crate::e2e::x3dh::MAX_AD_LEN)?;
        let ad = r.take(ad_len)?.to_vec();
        let skipped = SkippedKeys::read_state(r)?;
        ensure(sending_chain.is_none() || sending_ratchet_key.is_some(), "CKs without DHs")?;
        ensure(receiving_chain.is_none() || receiving_ratchet_key.is_some(), "CKr without DHr")?;
        ensure(sending_chain.is_some() || ns == 0, "Ns without CKs")?;
        ensure(receiving_chain.is_some() || nr == 0, "Nr without CKr")?;
        Ok(Self {
            root_key,
            sending_ratchet_key,
            receiving_ratchet_key,
            sending_chain,
            receiving_chain,
            ns,
            nr,
            pn,
            skipped,
            ad,
        })
    }

    /// Sets `Ns`, to test the sending-chain bound without `2^32` messages.
    #[cfg(test)]
    pub(crate) const fn set_sending_index(&mut self, ns: u32) {
        self.ns = ns;
    }

    /// Moves `Nr` forward to `nr` without deriving or storing the keys in between, and returns
    /// `true`; returns `false` and changes nothing if there is no receiving chain or `nr` is below
    /// `Nr` (moving back would let a used message key be derived again). `CKr` is kept: it then
    /// stands for the chain key at index `nr`. This is the state a restored file (SPEC.md §18.3)
    /// with that `Nr` gives, and how a vector (`ratchet_receive`'s `receiver_index_after_first`,
    /// SPEC.md §17.2) reaches the end of a chain without `2^32` messages. The skipped messages can
    /// no longer be opened; nothing else changes.
    #[must_use]
    pub fn advance_receiving_index(&mut self, nr: u32) -> bool {
        if self.receiving_chain.is_none() || nr < self.nr {
            return false;
        }
        self.nr = nr;
        true
    }

    /// Sets `Nr`, to test the receiving-chain bound without `2^32` messages.
    #[cfg(test)]
    pub(crate) const fn set_receiving_index(&mut self, nr: u32) {
        self.nr = nr;
    }
}

/// A receiving chain being advanced by [`Session::decrypt`] before it commits: the peer ratchet
/// key `DHr` it belongs to, its chain key `CKr` and its next index `Nr`.
struct Receiving {
    dh: Option<PublicKey>,
    chain: Option<ChainKey>,
    nr: u32,
}

impl Receiving {
    /// `SKIP(until)` (§12.4): refuses a gap `until − Nr` over [`MAX_SKIP`], then derives the
    /// chain's keys for `Nr .. until` and appends them to `out`, oldest first, for the caller to
    /// store once the message has opened. Nothing to do if `until ≤ Nr`.
    ///
    /// # Errors
    /// [`RatchetError::TooFarAhead`]; [`RatchetError::DecryptFailed`] if keys are needed but there
    /// is no receiving chain (see [`Session::decrypt`]). `self` may have advanced part way; the
    /// caller then drops it.
    fn skip(
        &mut self,
        until: u32,
        out: &mut Vec<(PublicKey, u32, MessageKey)>,
    ) -> Result<(), RatchetError> {
        let gap = u64::from(until).saturating_sub(u64::from(self.nr));
        if gap > u64::from(MAX_SKIP) {
            return Err(RatchetError::TooFarAhead { gap });
        }
        if gap == 0 {
            return Ok(());
        }
        let (Some(dh), Some(chain)) = (self.dh, self.chain.as_mut()) else {
            return Err(RatchetError::DecryptFailed);
        };
        while self.nr < until {
            let (message_key, next) = chain.step();
            out.push((dh, self.nr, message_key));
            *chain = next;
            self.nr += 1; // < until ≤ 2^32 − 1
        }
        Ok(())
    }
}

/// Room for the longest `AD` a handshake makes ([`crate::e2e::x3dh::MAX_AD_LEN`]) and a header.
const MAX_INLINE_AD_LEN: usize = crate::e2e::x3dh::MAX_AD_LEN + HEADER_LEN;

/// The AEAD's associated data `AD || header` (§12.3) of one message.
///
/// Built on the stack, so a message allocates nothing for it. [`Session`]'s constructors take any
/// `AD` (test vectors and tests pass their own), so one longer than a handshake can make — which
/// no session made by `e2e` has — goes to the heap instead of being refused: the function stays
/// total and the bytes are the same either way.
///
/// A struct rather than an enum of the two cases, which would be as large and is not worth boxing:
/// it lives on the stack for one call.
struct AssociatedData {
    /// `AD || header` in its first `len` bytes, unless `heap` holds it.
    inline: [u8; MAX_INLINE_AD_LEN],
    /// `≤ MAX_INLINE_AD_LEN`.
    len: usize,
    /// `AD || header` when it does not fit `inline` (an `AD` longer than a handshake's).
    heap: Option<Vec<u8>>,
}

impl AssociatedData {
    /// `ad || header.encode()`.
    fn new(ad: &[u8], header: &Header) -> Self {
        let header = header.encode();
        let len = ad.len().saturating_add(HEADER_LEN);
        let mut inline = [0u8; MAX_INLINE_AD_LEN];
        if let Some(bytes) = inline.get_mut(..len) {
            let (ad_part, header_part) = bytes.split_at_mut(ad.len());
            ad_part.copy_from_slice(ad);
            header_part.copy_from_slice(&header);
            return Self { inline, len, heap: None };
        }
        Self { inline, len: 0, heap: Some([ad, &header].concat()) }
    }

    fn as_slice(&self) -> &[u8] {
        match &self.heap {
            Some(bytes) => bytes,
            // `len` fits by construction; the empty fallback is never taken.
            None => self.inline.get(..self.len).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::CryptoError;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const SK: [u8; 32] = [0x5c; 32];

    struct Pair {
        alice: Session,
        bob: Session,
        rng: ChaCha20Rng,
    }

    fn pair(seed: u64) -> Pair {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let spk = PrivateKey::generate(&mut rng);
        let alice = Session::initiator(Secret::new(SK), b"AD".to_vec(), spk.public_key());
        let bob = Session::responder(Secret::new(SK), b"AD".to_vec(), spk);
        Pair { alice, bob, rng }
    }

    #[test]
    fn first_message_turns_the_initiators_ratchet_and_the_responders() {
        let Pair { mut alice, mut bob, mut rng } = pair(1);
        let spk_pub = alice.receiving_ratchet_key().unwrap();
        assert_eq!(alice.sending_ratchet_key(), None);
        assert_eq!(bob.sending_ratchet_key(), Some(spk_pub));

        let (h, ct) = alice.encrypt(b"hi", &mut rng).unwrap();
        assert_eq!((h.pn, h.n), (0, 0));
        assert_eq!(Some(h.dh), alice.sending_ratchet_key());
        assert!(!alice.has_received());

        assert_eq!(bob.decrypt(&h, &ct).unwrap(), b"hi");
        assert!(bob.has_received());
        assert_eq!(bob.receiving_ratchet_key(), Some(h.dh));
        // Bob's DHs is still his signed prekey until he sends.
        assert_eq!(bob.sending_ratchet_key(), Some(spk_pub));
        let (r, ct) = bob.encrypt(b"yo", &mut rng).unwrap();
        assert_ne!(r.dh, spk_pub);
        assert_eq!(alice.decrypt(&r, &ct).unwrap(), b"yo");
        assert!(alice.has_received());
    }

    #[test]
    fn sending_chain_exhausts_at_the_last_index() {
        let Pair { mut alice, mut bob, mut rng } = pair(2);
        let (h, ct) = alice.encrypt(b"0", &mut rng).unwrap();
        bob.decrypt(&h, &ct).unwrap();

        // 2^32 − 2 is the last index a message can carry.
        alice.set_sending_index(u32::MAX - 1);
        bob.set_receiving_index(u32::MAX - 1);
        let (h, ct) = alice.encrypt(b"last", &mut rng).unwrap();
        assert_eq!(h.n, u32::MAX - 1);
        assert_eq!(bob.decrypt(&h, &ct).unwrap(), b"last");

        let before = alice.clone();
        assert_eq!(alice.encrypt(b"more", &mut rng), Err(RatchetError::ChainExhausted));
        assert_eq!(alice, before);

        // A new chain starts again at 0: after Bob replies, Alice can send.
        let (r, ct) = bob.encrypt(b"reply", &mut rng).unwrap();
        alice.decrypt(&r, &ct).unwrap();
        let (h, ct) = alice.encrypt(b"again", &mut rng).unwrap();
        assert_eq!((h.pn, h.n), (u32::MAX, 0));
        assert_eq!(bob.decrypt(&h, &ct).unwrap(), b"again");
    }

    #[test]
    fn receiving_index_advances_forward_only_and_only_with_a_chain() {
        let Pair { mut alice, mut bob, mut rng } = pair(5);
        assert!(!bob.advance_receiving_index(3), "no receiving chain yet");
        let (h0, ct0) = alice.encrypt(b"0", &mut rng).unwrap();
        let (h1, ct1) = alice.encrypt(b"1", &mut rng).unwrap();
        bob.decrypt(&h0, &ct0).unwrap();
        let before = bob.clone();
        assert!(!bob.advance_receiving_index(0));
        assert_eq!(bob, before);
        // To `Nr` itself: allowed, and nothing moves.
        assert!(bob.advance_receiving_index(1));
        assert_eq!(bob, before);
        assert!(bob.advance_receiving_index(2));
        // Message 1 was skipped without storing its key: it is now a replay.
        assert_eq!(bob.decrypt(&h1, &ct1), Err(RatchetError::Replayed));
        assert_eq!(bob.skipped_key_count(), 0);
    }

    #[test]
    fn receiving_index_cannot_pass_the_last_index() {
        let Pair { mut alice, mut bob, mut rng } = pair(3);
        let (h, ct) = alice.encrypt(b"0", &mut rng).unwrap();
        bob.decrypt(&h, &ct).unwrap();
        bob.set_receiving_index(u32::MAX);
        let forged = Header { n: u32::MAX, ..h };
        let before = bob.clone();
        assert_eq!(bob.decrypt(&forged, &ct), Err(RatchetError::ChainExhausted));
        assert_eq!(bob, before);
    }

    #[test]
    fn low_order_peer_key_is_refused_on_send_and_receive() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut alice =
            Session::initiator(Secret::new(SK), vec![], PublicKey::from_bytes([0u8; 32]));
        let before = alice.clone();
        assert_eq!(
            alice.encrypt(b"x", &mut rng),
            Err(RatchetError::Crypto(CryptoError::NonContributory))
        );
        assert_eq!(alice, before);

        let Pair { mut alice, mut bob, mut rng } = pair(5);
        let (h, ct) = alice.encrypt(b"x", &mut rng).unwrap();
        let mut one = [0u8; 32];
        one[0] = 1;
        for low in [[0u8; 32], one] {
            let forged = Header { dh: PublicKey::from_bytes(low), ..h };
            let before = bob.clone();
            assert_eq!(
                bob.decrypt(&forged, &ct),
                Err(RatchetError::Crypto(CryptoError::NonContributory))
            );
            assert_eq!(bob, before);
        }
        assert_eq!(bob.decrypt(&h, &ct).unwrap(), b"x");
    }

    #[test]
    fn messages_no_state_could_have_sent_fail_to_decrypt() {
        let Pair { mut alice, bob: _, rng: _ } = pair(6);
        let spk_pub = alice.receiving_ratchet_key().unwrap();
        let before = alice.clone();
        // To an initiator that has not sent: a new ratchet key (no DHs to agree with) …
        let other = PublicKey::from_bytes([9u8; 32]);
        let h = Header { dh: other, pn: 0, n: 0 };
        assert_eq!(alice.decrypt(&h, &[0u8; 16]), Err(RatchetError::DecryptFailed));
        // … or the responder's signed prekey (no receiving chain), at index 0 or beyond.
        for n in [0, 1, MAX_SKIP] {
            let h = Header { dh: spk_pub, pn: 0, n };
            assert_eq!(alice.decrypt(&h, &[0u8; 16]), Err(RatchetError::DecryptFailed));
        }
        assert_eq!(alice, before);
    }

    #[test]
    fn associated_data_is_ad_then_header_inline_or_not() {
        let h = Header { dh: PublicKey::from_bytes([7; 32]), pn: 1, n: 2 };
        let longest = crate::e2e::x3dh::MAX_AD_LEN;
        for len in [0, 1, longest, longest + 1, 1000] {
            let ad: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let built = AssociatedData::new(&ad, &h);
            assert_eq!(built.as_slice(), [ad.as_slice(), &h.encode()].concat());
            assert_eq!(built.heap.is_some(), len > longest, "len {len}");
        }
    }

    #[test]
    fn a_session_with_a_longer_ad_than_a_handshake_makes_still_works() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let spk = PrivateKey::generate(&mut rng);
        let ad = vec![0xad; 500];
        let mut alice = Session::initiator(Secret::new(SK), ad.clone(), spk.public_key());
        let mut bob = Session::responder(Secret::new(SK), ad, spk);
        let (h, ct) = alice.encrypt(b"long", &mut rng).unwrap();
        assert_eq!(bob.decrypt(&h, &ct).unwrap(), b"long");
    }

    #[test]
    fn a_forgery_under_a_skipped_key_keeps_the_key() {
        let Pair { mut alice, mut bob, mut rng } = pair(9);
        let (h0, ct0) = alice.encrypt(b"zero", &mut rng).unwrap();
        let (h1, ct1) = alice.encrypt(b"one", &mut rng).unwrap();
        bob.decrypt(&h1, &ct1).unwrap();
        assert!(bob.skipped.contains(&h0.dh, 0));
        let before = bob.clone();
        let mut forged = ct0.clone();
        forged[0] ^= 1;
        assert_eq!(bob.decrypt(&h0, &forged), Err(RatchetError::DecryptFailed));
        assert_eq!(bob, before);
        assert_eq!(bob.decrypt(&h0, &ct0).unwrap(), b"zero");
        assert_eq!(bob.skipped_key_count(), 0);
        assert_eq!(bob.decrypt(&h0, &ct0), Err(RatchetError::Replayed));
    }

    /// In place, after a prefix: a refused message (forged, under a stored key or the chain's next
    /// one) leaves the buffer and the session as they were; an accepted one leaves the prefix and
    /// the plaintext.
    #[test]
    fn decrypt_in_place_keeps_the_prefix_and_a_refused_buffer() {
        let Pair { mut alice, mut bob, mut rng } = pair(11);
        let (h0, ct0) = alice.encrypt(b"zero", &mut rng).unwrap();
        let (h1, ct1) = alice.encrypt(b"one", &mut rng).unwrap();
        let placed = |ct: &[u8]| [&b"prefix"[..], ct].concat();
        let forged = |ct: &[u8]| {
            let mut buffer = placed(ct);
            *buffer.last_mut().unwrap() ^= 1;
            buffer
        };
        // Message 1 first (message 0's key is stored), then message 0 from the store.
        for (header, ct, text) in [(h1, &ct1, &b"one"[..]), (h0, &ct0, b"zero")] {
            let (before, mut refused) = (bob.clone(), forged(ct));
            let result = bob.decrypt_in_place(&header, &mut refused, 6);
            assert_eq!(result, Err(RatchetError::DecryptFailed));
            assert_eq!((&bob, refused), (&before, forged(ct)));
            let mut buffer = placed(ct);
            bob.decrypt_in_place(&header, &mut buffer, 6).unwrap();
            assert_eq!(buffer, [&b"prefix"[..], text].concat());
        }
    }

    #[test]
    fn a_forgery_that_would_turn_the_ratchet_and_skip_changes_nothing() {
        let Pair { mut alice, mut bob, mut rng } = pair(10);
        let (h, ct) = alice.encrypt(b"a", &mut rng).unwrap();
        bob.decrypt(&h, &ct).unwrap();
        let _lost = alice.encrypt(b"b", &mut rng).unwrap();
        let (r, ct) = bob.encrypt(b"r", &mut rng).unwrap();
        alice.decrypt(&r, &ct).unwrap();
        let _gap = alice.encrypt(b"c", &mut rng).unwrap();
        let (h, ct) = alice.encrypt(b"d", &mut rng).unwrap();
        assert_eq!((h.pn, h.n), (2, 1));
        let before = bob.clone();
        let mut forged = ct.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(bob.decrypt(&h, &forged), Err(RatchetError::DecryptFailed));
        assert_eq!(bob, before);
        assert_eq!(bob.decrypt(&h, &ct).unwrap(), b"d");
        assert_eq!(bob.skipped_key_count(), 2);
    }

    #[test]
    fn skipped_keys_are_stored_under_the_chain_they_belong_to() {
        let Pair { mut alice, mut bob, mut rng } = pair(7);
        let msgs: Vec<_> = (0..4).map(|_| alice.encrypt(b"m", &mut rng).unwrap()).collect();
        let a1 = msgs[0].0.dh;
        bob.decrypt(&msgs[3].0, &msgs[3].1).unwrap();
        assert!((0..3).all(|n| bob.skipped.contains(&a1, n)));
        assert_eq!(bob.skipped_key_count(), 3);
        assert!(bob.skipped.is_consistent());

        // A ratchet turn stores the rest of the old chain up to pn.
        let more: Vec<_> = (0..2).map(|_| alice.encrypt(b"m", &mut rng).unwrap()).collect();
        let (r, ct) = bob.encrypt(b"r", &mut rng).unwrap();
        alice.decrypt(&r, &ct).unwrap();
        let (h, ct) = alice.encrypt(b"new", &mut rng).unwrap();
        assert_eq!(h.pn, 6);
        bob.decrypt(&h, &ct).unwrap();
        assert!(bob.skipped.contains(&a1, 4) && bob.skipped.contains(&a1, 5));
        assert_eq!(bob.skipped_key_count(), 5);
        assert_eq!(bob.previous_sending_chain_len(), 1);
        for (h, ct) in msgs[..3].iter().chain(&more) {
            bob.decrypt(h, ct).unwrap();
        }
        assert_eq!(bob.skipped_key_count(), 0);
    }

    /// §12.5: an attempt is charged its two `SKIP` gaps — the rest of the old chain (`pn − Nr`)
    /// only when the header turns the ratchet, and the gap before `n` in the chain it opens in —
    /// and nothing for an in-order message.
    #[test]
    fn an_attempt_is_charged_its_two_gaps_and_no_more() {
        let Pair { mut alice, mut bob, mut rng } = pair(12);
        let charged = |bob: &mut Session, (header, ct): &(Header, Vec<u8>)| {
            let mut budget = WorkBudget::per_envelope();
            let mut buffer = ct.clone();
            bob.decrypt_within(header, &mut buffer, 0, &mut budget).unwrap();
            crate::e2e::ratchet::MAX_ENVELOPE_CHAIN_STEPS - budget.steps_left()
        };
        let first: Vec<_> = (0..4).map(|_| alice.encrypt(b"a", &mut rng).unwrap()).collect();
        assert_eq!(charged(&mut bob, &first[0]), 0, "in order");
        assert_eq!(charged(&mut bob, &first[2]), 1, "one message skipped");
        let (r, ct) = bob.encrypt(b"r", &mut rng).unwrap();
        alice.decrypt(&r, &ct).unwrap();
        let second: Vec<_> = (0..3).map(|_| alice.encrypt(b"b", &mut rng).unwrap()).collect();
        assert_eq!(second[2].0.pn, 4);
        // Turning: message 3 of the old chain and message 0 of the new one are skipped.
        assert_eq!(charged(&mut bob, &second[1]), 2);
        // Not turning: `pn` (4) is past Bob's old `Nr` (3) but names a chain he has left.
        assert_eq!(charged(&mut bob, &second[2]), 0);
    }

    /// `Ns`, `Nr` and `PN` (§12.2) as §12.3–§12.4 move them: a send counts `Ns`, a message in
    /// order `Nr`, and the first message of a new peer chain moves `Ns` into `PN` and starts both
    /// chains again.
    #[test]
    fn counters_are_ns_nr_and_pn_as_the_spec_moves_them() {
        let Pair { mut alice, mut bob, mut rng } = pair(13);
        let counters =
            |s: &Session| (s.sending_index(), s.receiving_index(), s.previous_sending_chain_len());
        assert_eq!(counters(&alice), (0, 0, 0));
        let sent: Vec<_> = (0..3).map(|_| alice.encrypt(b"a", &mut rng).unwrap()).collect();
        assert_eq!(counters(&alice), (3, 0, 0));
        for (h, ct) in &sent {
            bob.decrypt(h, ct).unwrap();
        }
        assert_eq!(counters(&bob), (0, 3, 0));
        let replies: Vec<_> = (0..2).map(|_| bob.encrypt(b"b", &mut rng).unwrap()).collect();
        assert_eq!(counters(&bob), (2, 3, 0));
        alice.decrypt(&replies[0].0, &replies[0].1).unwrap();
        assert_eq!(counters(&alice), (0, 1, 3));
        let (h, _) = alice.encrypt(b"c", &mut rng).unwrap();
        assert_eq!((h.pn, h.n), (3, 0));
        assert_eq!(counters(&alice), (1, 1, 3));
    }
}
