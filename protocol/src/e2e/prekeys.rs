//! The client's private prekey store (SPEC.md §10.2).
//!
//! A client holds, besides its identity ([`super::identity`]):
//!
//! * its **current signed prekey** `(spk_id, spk, spk_sig)`, and at most one **previous** one, kept
//!   after a rotation so that a prekey message built on it still opens (§11.2);
//! * its **one-time prekeys** `opk_id → opk`, each deleted after the first message that used it has
//!   decrypted ([`PrekeyStore::remove_one_time`]; the handshake itself never mutates the store).
//!
//! Ids come from **one counter starting at 1, shared by both kinds**, so no two prekeys of a client
//! ever share an id. Each key pair is drawn from the caller's RNG in id order (§2.4). An **upload
//! watermark** remembers which one-time prekeys the server has already been sent, so that
//! [`PrekeyStore::prepare_upload`] sends each one once. A **stored** flag remembers whether the
//! server has said it stored an upload carrying the current signed prekey: the client role rotates
//! only then, so the signed prekey the server hands out is always one the client still holds
//! (§10.2).
//!
//! The signed prekey's signature covers (§10.2)
//!
//! ```text
//! "e2e-ref/signed-prekey/v1" (24) || IK_dh (32) || BE32(spk_id) (4) || SPK (32)       92 bytes
//! ```
//!
//! built in one place, [`super::signed::signed_prekey_message`], for the signer ([`IdentityKeyPair::sign_prekey`])
//! and the verifier (`super::bundle`) alike.

use core::fmt;
use core::ops::Bound;
use std::collections::BTreeMap;

use rand_core::CryptoRng;

use crate::state::{StateError, StateWriter, ensure, read_count, read_flag, read_private_key};
use crate::suite::{PrivateKey, Signature};
use crate::wire::{
    BundleRefusal, MAX_ENCODED_PREKEYS, OneTimePrekeyPublic, Reader, SignedPrekeyPublic,
    UploadedBundle,
};

use super::identity::IdentityKeyPair;
use super::{
    E2eError, MAX_HELD_ONE_TIME_PREKEYS, MAX_ONE_TIME_PREKEYS, ONE_TIME_PREKEYS_PER_UPLOAD,
};

/// The id of the signed prekey a new store makes; its one-time prekeys follow from `2`.
pub const FIRST_PREKEY_ID: u32 = 1;

// An upload carries at most MAX_ONE_TIME_PREKEYS one-time prekeys, which the codec can always encode.
const _: () = assert!(MAX_ONE_TIME_PREKEYS <= MAX_ENCODED_PREKEYS);

/// The id counter has passed `u32::MAX`: the client has made 2^32 − 1 prekeys and cannot make
/// another without reusing an id, which SPEC.md §10.2 forbids. (Unreachable in practice — it takes
/// four billion rotations or replenishments — but the store stays total rather than wrap.)
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PrekeyIdsExhausted;

impl fmt::Display for PrekeyIdsExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every prekey id has been used")
    }
}

impl std::error::Error for PrekeyIdsExhausted {}

/// A signed prekey the client holds: id, private key, and the identity's signature over the public
/// key (kept so that every upload carries the same bytes).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct SignedPrekey {
    id: u32,
    key: PrivateKey,
    signature: Signature,
}

impl SignedPrekey {
    /// Draws a key pair and signs it.
    fn generate<R: CryptoRng + ?Sized>(identity: &IdentityKeyPair, id: u32, rng: &mut R) -> Self {
        let key = PrivateKey::generate(rng);
        let signature = identity.sign_prekey(id, key.public_key()).signature;
        Self { id, key, signature }
    }

    const fn public(&self) -> SignedPrekeyPublic {
        SignedPrekeyPublic { id: self.id, key: self.key.public_key(), signature: self.signature }
    }
}

/// The client's private prekeys (SPEC.md §10.2). Private keys print as `[redacted]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PrekeyStore {
    /// The signed prekey uploads carry and fetched bundles name.
    current: SignedPrekey,
    /// The signed prekey before the last rotation, if any; exactly one is kept.
    previous: Option<SignedPrekey>,
    /// One-time prekeys not yet consumed, by id.
    one_time: BTreeMap<u32, PrivateKey>,
    /// The next id to assign, in `1..=2^32`; `2^32` means the ids are exhausted. Held as `u64` so
    /// that the counter itself never overflows.
    next_id: u64,
    /// The highest one-time prekey id already put into an upload (`0`: none). Every one-time prekey
    /// with a higher id is still to be uploaded.
    uploaded_through: u32,
    /// Whether the server said it stored an upload that carries `current` (SPEC.md §10.2).
    current_stored: bool,
}

impl PrekeyStore {
    /// A new store (SPEC.md §10.2): the signed prekey with id [`FIRST_PREKEY_ID`] (`1`), then
    /// [`ONE_TIME_PREKEYS_PER_UPLOAD`] one-time prekeys with ids `2..=11`, each key drawn from `rng`
    /// in id order. Nothing is uploaded yet.
    pub fn generate<R: CryptoRng + ?Sized>(identity: &IdentityKeyPair, rng: &mut R) -> Self {
        let current = SignedPrekey::generate(identity, FIRST_PREKEY_ID, rng);
        let mut one_time = BTreeMap::new();
        let mut id = FIRST_PREKEY_ID;
        for _ in 0..ONE_TIME_PREKEYS_PER_UPLOAD {
            id += 1; // ids 2..=11, far from the end of the id space
            one_time.insert(id, PrivateKey::generate(rng));
        }
        Self {
            current,
            previous: None,
            one_time,
            next_id: u64::from(id) + 1,
            uploaded_through: 0,
            current_stored: false,
        }
    }

    /// What `upload_bundle` sends (SPEC.md §15.3): the identity, the current signed prekey, and the
    /// one-time prekeys not yet uploaded, lowest id first — at most
    /// [`MAX_ONE_TIME_PREKEYS`] of them, the most the server accepts in one upload (§10.3 step 4);
    /// any beyond that stay pending for the next upload. Advances the upload watermark past the
    /// one-time prekeys included, so the next call does not send them again.
    ///
    /// The watermark advances when the upload is *prepared*: if the server refuses it, the caller
    /// that wants to retry the same keys keeps a clone of the store from before this call.
    ///
    /// `identity` must be the identity that made this store (its signature is on the signed prekey).
    ///
    /// # Errors
    /// None in practice: [`E2eError::Bundle`]`(`[`BundleRefusal::TooManyPrekeys`]`)` only if the
    /// batch could not be encoded, which the cap at `MAX_ONE_TIME_PREKEYS ≤ MAX_ENCODED_PREKEYS`
    /// (checked at compile time) rules out. The store is unchanged on error.
    pub fn prepare_upload(
        &mut self,
        identity: &IdentityKeyPair,
    ) -> Result<UploadedBundle, E2eError> {
        let batch: Vec<OneTimePrekeyPublic> = self
            .one_time
            .range((Bound::Excluded(self.uploaded_through), Bound::Unbounded))
            .take(MAX_ONE_TIME_PREKEYS)
            .map(|(&id, key)| OneTimePrekeyPublic { id, key: key.public_key() })
            .collect();
        let last = batch.last().map(|opk| opk.id);
        let upload = UploadedBundle::new(identity.public(), self.current.public(), batch)
            .map_err(|_| E2eError::Bundle(BundleRefusal::TooManyPrekeys))?;
        if let Some(last) = last {
            self.uploaded_through = last;
        }
        Ok(upload)
    }

    /// Rotation (SPEC.md §10.2): makes a new signed prekey with the next id, drawn from `rng` and
    /// signed by `identity`; the current one becomes the previous one, and the one before that is
    /// deleted (exactly one previous signed prekey is kept). Returns the new id.
    ///
    /// The next [`PrekeyStore::prepare_upload`] carries the new signed prekey; the server then hands
    /// it out instead of the old one (§15.2).
    ///
    /// # Errors
    /// [`PrekeyIdsExhausted`] if no id is left; the store is unchanged.
    pub fn rotate_signed<R: CryptoRng + ?Sized>(
        &mut self,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<u32, PrekeyIdsExhausted> {
        let id = self.reserve_ids(1)?;
        let new = SignedPrekey::generate(identity, id, rng);
        self.previous = Some(core::mem::replace(&mut self.current, new));
        self.current_stored = false;
        Ok(id)
    }

    /// Whether the server said it stored an upload that carries the current signed prekey: until
    /// then it may still hand out the previous one, which the next rotation would delete (§10.2).
    #[must_use]
    pub const fn current_stored(&self) -> bool {
        self.current_stored
    }

    /// Records that the server stored an upload that carries the current signed prekey.
    pub(crate) const fn mark_current_stored(&mut self) {
        self.current_stored = true;
    }

    /// Replenishment (SPEC.md §10.2): makes `count` one-time prekeys with the next ids, drawn from
    /// `rng` in id order. They go out with the next [`PrekeyStore::prepare_upload`].
    ///
    /// The server stores at most [`MAX_ONE_TIME_PREKEYS`] per client and refuses an upload that
    /// would exceed that (§10.3 step 4); the caller sizes `count` by the server's `BundleStored`
    /// count (SPEC.md §15.1). [`ONE_TIME_PREKEYS_PER_UPLOAD`] is the usual batch.
    ///
    /// # Errors
    /// [`PrekeyIdsExhausted`] if fewer than `count` ids are left; then no key is made and the store
    /// is unchanged.
    pub fn replenish<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        count: usize,
    ) -> Result<(), PrekeyIdsExhausted> {
        let count = u32::try_from(count).map_err(|_| PrekeyIdsExhausted)?;
        if count == 0 {
            return Ok(());
        }
        let first = self.reserve_ids(count)?;
        for id in (0..count).map(|i| first + i) {
            self.one_time.insert(id, PrivateKey::generate(rng));
        }
        // Keys handed out but never used pile up with every replenishment: keep the newest
        // MAX_HELD_ONE_TIME_PREKEYS (SPEC.md §10.2).
        while self.one_time.len() > MAX_HELD_ONE_TIME_PREKEYS {
            self.one_time.pop_first();
        }
        Ok(())
    }

    /// Assigns `count ≥ 1` consecutive ids and returns the first, or fails without assigning any.
    /// `first + count - 1 ≤ u32::MAX` holds on success, so `first + i` for `i < count` cannot overflow.
    fn reserve_ids(&mut self, count: u32) -> Result<u32, PrekeyIdsExhausted> {
        let first = u32::try_from(self.next_id).map_err(|_| PrekeyIdsExhausted)?;
        let end = self.next_id + u64::from(count); // ≤ 2^32 + 2^32: no overflow in u64
        if end > u64::from(u32::MAX) + 1 {
            return Err(PrekeyIdsExhausted);
        }
        self.next_id = end;
        Ok(first)
    }

    /// The private key of the signed prekey `id`, if it is the current or the previous one
    /// (SPEC.md §11.2).
    #[must_use]
    pub fn signed_prekey(&self, id: u32) -> Option<&PrivateKey> {
        core::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|spk| spk.id == id)
            .map(|spk| &spk.key)
    }

    /// The current signed prekey as published: id, public key, signature.
    #[must_use]
    pub const fn current_signed_prekey(&self) -> SignedPrekeyPublic {
        self.current.public()
    }

    /// The private key of the one-time prekey `id`, if it is still held.
    #[must_use]
    pub fn one_time_prekey(&self, id: u32) -> Option<&PrivateKey> {
        self.one_time.get(&id)
    }

    /// Deletes the one-time prekey `id` (a no-op if it is not held). The client calls this only
    /// after the first message of the session built on it has decrypted (SPEC.md §11.2), so that a
    /// forged prekey message cannot burn a one-time prekey.
    pub fn remove_one_time(&mut self, id: u32) {
        self.one_time.remove(&id);
    }

    /// How many one-time prekeys the client holds (uploaded or not).
    #[must_use]
    pub fn one_time_count(&self) -> usize {
        self.one_time.len()
    }

    /// The persisted form (SPEC.md §18.3): `BE64(next_id) || BE32(uploaded_through)`, the current
    /// signed prekey `BE32(id) || spk (32)`, the previous one (flag, then the same), and
    /// `count: u16` one-time prekeys `BE32(id) || opk (32)` in ascending id order, then whether the
    /// current signed prekey is stored at the server (flag). Signatures are not stored: Ed25519 is
    /// deterministic, so [`Self::read_state`] signs again.
    pub(crate) fn write_state(&self, w: &mut StateWriter) {
        w.u64(self.next_id);
        w.u32(self.uploaded_through);
        w.u32(self.current.id);
        w.private_key(&self.current.key);
        w.flag(self.previous.is_some());
        if let Some(previous) = &self.previous {
            w.u32(previous.id);
            w.private_key(&previous.key);
        }
        w.count(self.one_time.len());
        for (id, key) in &self.one_time {
            w.u32(*id);
            w.private_key(key);
        }
        w.flag(self.current_stored);
    }

    /// Reads [`Self::write_state`]'s form for `identity` (which signs the signed prekeys again),
    /// and checks the id rules of SPEC.md §10.2: every id was assigned (`1 ≤ id < next_id ≤
    /// 2^32`), none twice, the previous signed prekey older than the current one.
    ///
    /// # Errors
    /// A count over [`MAX_HELD_ONE_TIME_PREKEYS`], ids out of order, an id rule broken, a bad flag,
    /// or truncation.
    pub(crate) fn read_state(
        r: &mut Reader<'_>,
        identity: &IdentityKeyPair,
    ) -> Result<Self, StateError> {
        let next_id = r.u64()?;
        let uploaded_through = r.u32()?;
        let read_signed = |r: &mut Reader<'_>| -> Result<SignedPrekey, StateError> {
            let id = r.u32()?;
            let key = read_private_key(r)?;
            let signature = identity.sign_prekey(id, key.public_key()).signature;
            Ok(SignedPrekey { id, key, signature })
        };
        let current = read_signed(r)?;
        let previous =
            if read_flag(r, "previous signed prekey")? { Some(read_signed(r)?) } else { None };
        let count = read_count(r, "one-time prekeys", MAX_HELD_ONE_TIME_PREKEYS)?;
        let mut one_time = BTreeMap::new();
        let mut last = None;
        for _ in 0..count {
            let id = r.u32()?;
            if last.is_some_and(|last| last >= id) {
                return Err(StateError::InvalidValue { field: "one-time prekey id" });
            }
            last = Some(id);
            one_time.insert(id, read_private_key(r)?);
        }
        let current_stored = read_flag(r, "current signed prekey stored")?;
        let assigned = |id: u32| id >= FIRST_PREKEY_ID && u64::from(id) < next_id;
        ensure(next_id <= u64::from(u32::MAX) + 1, "prekey id counter beyond 2^32")?;
        ensure(assigned(current.id), "signed prekey id never assigned")?;
        ensure(
            previous.as_ref().is_none_or(|p| p.id >= FIRST_PREKEY_ID && p.id < current.id),
            "previous signed prekey not older than the current one",
        )?;
        ensure(
            one_time.keys().all(|&id| {
                assigned(id) && id != current.id && previous.as_ref().is_none_or(|p| p.id != id)
            }),
            "one-time prekey id never assigned, or shared with a signed prekey",
        )?;
        ensure(u64::from(uploaded_through) < next_id, "upload watermark beyond the id counter")?;
        Ok(Self { current, previous, one_time, next_id, uploaded_through, current_stored })
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::e2e::bundle::validate_upload;
    use crate::e2e::signed::signed_prekey_message;

    fn setup(seed: u64) -> (IdentityKeyPair, PrekeyStore, ChaCha20Rng) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = IdentityKeyPair::generate(&mut rng);
        let store = PrekeyStore::generate(&identity, &mut rng);
        (identity, store, rng)
    }

    fn ids(upload: &UploadedBundle) -> Vec<u32> {
        upload.one_time_prekeys().iter().map(|o| o.id).collect()
    }

    #[test]
    fn generate_draws_spk_1_then_opks_2_to_11_in_id_order() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let identity = IdentityKeyPair::generate(&mut rng);
        let store = PrekeyStore::generate(&identity, &mut rng.clone());

        // Replay the RNG: the next 11 draws are spk (id 1), then opk 2, …, opk 11.
        let mut replay = rng;
        let spk = PrivateKey::generate(&mut replay);
        assert_eq!(store.signed_prekey(1), Some(&spk));
        for id in 2..=11 {
            assert_eq!(store.one_time_prekey(id), Some(&PrivateKey::generate(&mut replay)));
        }
        assert_eq!(store.one_time_count(), ONE_TIME_PREKEYS_PER_UPLOAD);
        assert_eq!(store.one_time_prekey(1), None);
        assert_eq!(store.one_time_prekey(12), None);
        assert_eq!(store.signed_prekey(2), None);
        assert_eq!(store.current_signed_prekey().id, 1);
        assert_eq!(store.current_signed_prekey(), identity.sign_prekey(1, spk.public_key()));
    }

    #[test]
    fn upload_carries_identity_spk_and_each_one_time_prekey_once() {
        let (identity, mut store, mut rng) = setup(4);
        let first = store.prepare_upload(&identity).unwrap();
        assert_eq!(first.identity(), &identity.public());
        assert_eq!(first.signed_prekey(), &store.current_signed_prekey());
        assert_eq!(ids(&first), (2..=11).collect::<Vec<_>>());
        for opk in first.one_time_prekeys() {
            assert_eq!(Some(opk.key), store.one_time_prekey(opk.id).map(PrivateKey::public_key));
        }
        assert_eq!(validate_upload(&first, [], 0), Ok(()));

        // Nothing new: the next upload repeats the signed prekey only.
        let again = store.prepare_upload(&identity).unwrap();
        assert!(again.one_time_prekeys().is_empty());
        assert_eq!(again.signed_prekey(), first.signed_prekey());

        // Replenish: only the new ones go out, and the server (holding 2..=11 and spk 1) takes them.
        store.replenish(&mut rng, 3).unwrap();
        assert_eq!(store.one_time_count(), 13);
        let more = store.prepare_upload(&identity).unwrap();
        assert_eq!(ids(&more), vec![12, 13, 14]);
        let stored: Vec<u32> = (1..=11).collect();
        assert_eq!(validate_upload(&more, stored.iter().copied(), 10), Ok(()));
    }

    #[test]
    fn watermark_survives_consumed_prekeys() {
        let (identity, mut store, mut rng) = setup(5);
        store.prepare_upload(&identity).unwrap();
        store.remove_one_time(11); // the highest uploaded one is used and deleted
        store.remove_one_time(11); // removing twice is a no-op
        assert_eq!(store.one_time_count(), 9);
        store.replenish(&mut rng, 1).unwrap();
        assert_eq!(ids(&store.prepare_upload(&identity).unwrap()), vec![12]);
    }

    #[test]
    fn one_upload_carries_at_most_max_one_time_prekeys() {
        let (identity, mut store, mut rng) = setup(6);
        store.replenish(&mut rng, 95).unwrap(); // 105 pending: ids 2..=106
        let first = store.prepare_upload(&identity).unwrap();
        assert_eq!(ids(&first), (2..=101).collect::<Vec<_>>());
        assert_eq!(validate_upload(&first, [], 0), Ok(()));
        assert_eq!(ids(&store.prepare_upload(&identity).unwrap()), (102..=106).collect::<Vec<_>>());
    }

    #[test]
    fn ids_are_shared_between_signed_and_one_time_prekeys() {
        let (identity, mut store, mut rng) = setup(7);
        assert_eq!(store.rotate_signed(&identity, &mut rng), Ok(12));
        store.replenish(&mut rng, 2).unwrap(); // 13, 14
        assert_eq!(store.rotate_signed(&identity, &mut rng), Ok(15));
        store.replenish(&mut rng, 1).unwrap(); // 16
        let all: Vec<u32> = store.one_time.keys().copied().collect();
        assert_eq!(all, [(2..=11).collect::<Vec<_>>(), vec![13, 14, 16]].concat());
    }

    #[test]
    fn rotation_keeps_exactly_one_previous_signed_prekey() {
        let (identity, mut store, mut rng) = setup(8);
        let first = store.signed_prekey(1).cloned().unwrap();
        let id2 = store.rotate_signed(&identity, &mut rng).unwrap();
        assert_eq!(store.current_signed_prekey().id, id2);
        assert_eq!(store.signed_prekey(1), Some(&first), "previous is kept");
        assert!(store.signed_prekey(id2).is_some());
        let spk = store.current_signed_prekey();
        assert_eq!(
            identity.public().sign.verify(
                &signed_prekey_message(&identity.public().dh, spk.id, &spk.key),
                &spk.signature
            ),
            Ok(())
        );
        // The rotated key goes out in the next upload.
        assert_eq!(store.prepare_upload(&identity).unwrap().signed_prekey(), &spk);

        let id3 = store.rotate_signed(&identity, &mut rng).unwrap();
        assert_eq!(store.signed_prekey(1), None, "the one before the previous is deleted");
        assert!(store.signed_prekey(id2).is_some() && store.signed_prekey(id3).is_some());
        assert_eq!(store.one_time_count(), ONE_TIME_PREKEYS_PER_UPLOAD, "one-time keys untouched");
    }

    #[test]
    fn id_space_exhaustion_is_an_error_that_changes_nothing() {
        let (identity, mut store, mut rng) = setup(9);
        store.next_id = u64::from(u32::MAX) - 1; // ids u32::MAX - 1 and u32::MAX are left
        let before = store.clone();
        assert_eq!(store.replenish(&mut rng, 3), Err(PrekeyIdsExhausted));
        assert_eq!(store, before);
        assert_eq!(store.replenish(&mut rng, 0), Ok(()));
        assert_eq!(store.replenish(&mut rng, 1), Ok(()));
        assert!(store.one_time_prekey(u32::MAX - 1).is_some());
        assert_eq!(store.rotate_signed(&identity, &mut rng), Ok(u32::MAX));
        let before = store.clone();
        assert_eq!(store.rotate_signed(&identity, &mut rng), Err(PrekeyIdsExhausted));
        assert_eq!(store.replenish(&mut rng, 1), Err(PrekeyIdsExhausted));
        assert_eq!(store, before);
        assert_eq!(store.replenish(&mut rng, usize::MAX), Err(PrekeyIdsExhausted));

        // The watermark works at the top of the id space too.
        let upload = store.prepare_upload(&identity).unwrap();
        assert_eq!(ids(&upload), [(2..=11).collect::<Vec<_>>(), vec![u32::MAX - 1]].concat());
        assert!(store.prepare_upload(&identity).unwrap().one_time_prekeys().is_empty());
    }

    #[test]
    fn debug_hides_private_keys() {
        let (_, store, _) = setup(10);
        let shown = format!("{store:?}");
        let secret = hex::encode(store.signed_prekey(1).unwrap().expose());
        assert!(!shown.contains(&secret), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn exhaustion_says_what_ran_out() {
        assert_eq!(PrekeyIdsExhausted.to_string(), "every prekey id has been used");
    }

    /// §10.2: the store holds at most `MAX_HELD_ONE_TIME_PREKEYS` one-time prekeys — up to the
    /// bound, every one; beyond it, the oldest (lowest ids) go first.
    #[test]
    fn held_one_time_prekeys_are_bounded_keeping_the_newest() {
        let (_, mut store, mut rng) = setup(11); // one-time prekeys 2..=11
        store.replenish(&mut rng, MAX_HELD_ONE_TIME_PREKEYS - ONE_TIME_PREKEYS_PER_UPLOAD).unwrap();
        assert_eq!(store.one_time_count(), MAX_HELD_ONE_TIME_PREKEYS);
        assert!(store.one_time_prekey(2).is_some(), "at the bound, nothing goes");
        store.replenish(&mut rng, 3).unwrap();
        assert_eq!(store.one_time_count(), MAX_HELD_ONE_TIME_PREKEYS);
        assert!((2..5).all(|id| store.one_time_prekey(id).is_none()));
        assert!(store.one_time_prekey(5).is_some());
    }
}
