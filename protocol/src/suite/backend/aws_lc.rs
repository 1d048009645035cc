//! The backend of the feature `backend-aws-lc`: X25519 and ChaCha20-Poly1305 from aws-lc-rs.
//!
//! AWS-LC's x86-64 X25519 is s2n-bignum's formally verified assembly; its ChaCha20-Poly1305 is
//! vectorized assembly. Both are called through aws-lc-rs's safe API only (`unsafe` stays
//! forbidden in this crate).
//!
//! **Secrets.** An X25519 private key's AWS-LC key object ([`AwsLc::dh_object`]) lives as long
//! as the suite's `PrivateKey` it belongs to, so that a DH does not rebuild it; so does a channel
//! key's AEAD key object ([`AwsLc::aead_object`], with a `suite::KeptAeadKey`); the ratchet's
//! message keys, each used once, build theirs for the one call. AWS-LC copies a key into memory
//! of its own, and its `OPENSSL_free` erases every allocation before freeing it
//! (`OPENSSL_cleanse`), so no copy of a key outlives its object; the shared secret aws-lc-rs hands
//! back is a `Zeroizing<Vec<u8>>`, copied into a [`Secret`] here.
//!
//! **Same rules, same bytes.** Clamping happens inside AWS-LC's `X25519` exactly as RFC 7748 §5
//! says, as in x25519-dalek, and bit 255 of a peer key is ignored by both; the private bytes come
//! from the caller (the suite draws them from the caller's RNG), never from AWS-LC's RNG, so a
//! seeded run is byte-identical on both backends. tests/suite_backends.rs checks all of it.

use core::cell::RefCell;
use core::hash::{Hash, Hasher};
use std::sync::Arc;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, X25519};
use zeroize::Zeroize;

use super::Backend;
use super::dalek::Dalek;
use crate::suite::{
    AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, CryptoError, DH_LEN, Secret, SharedSecret,
};

/// aws-lc-rs's X25519 and ChaCha20-Poly1305, with AWS-LC's key objects kept for the keys that
/// serve many calls (`KeyObject`).
pub struct AwsLc;

/// An AWS-LC key object kept with the suite key it was built from ([`AwsLc`]'s
/// [`Backend::DhObject`] and [`Backend::AeadObject`]), shared by the key's clones, or none: then
/// each call builds its own.
///
/// **Secrets.** The object holds AWS-LC's copy of the key (for X25519 the private scalar and the
/// public key) in memory AWS-LC allocated. [`Zeroize`] drops this handle at once; when the last
/// handle is gone (clones share the object through an [`Arc`]: a model checker clones states by
/// the thousand), AWS-LC frees the key with `OPENSSL_free`, which erases the whole allocation
/// (`OPENSSL_cleanse`) before freeing it. No copy of a key is ever read back out of it.
///
/// **Same value, same key.** The object is a function of the key's bytes, which the suite keeps
/// beside it, so it takes no part in equality or hashing ([`PartialEq`] is always true and
/// [`Hash`] writes nothing): two suite keys are equal exactly when their bytes are. `None`
/// (AWS-LC could not allocate it, or the handle was zeroized) means "build it per call": slower,
/// never a different result.
pub struct KeyObject<T>(Option<Arc<T>>);

impl<T> Clone for KeyObject<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for KeyObject<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> PartialEq for KeyObject<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for KeyObject<T> {}

impl<T> Hash for KeyObject<T> {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

impl<T> Zeroize for KeyObject<T> {
    fn zeroize(&mut self) {
        self.0 = None;
    }
}

impl Backend for AwsLc {
    /// AWS-LC's X25519 key object, so that each DH is one scalar multiplication: building the
    /// object derives the public key (a fixed-base multiplication), which is the key generation's
    /// work and need not be repeated per DH.
    type DhObject = KeyObject<agreement::PrivateKey>;

    /// AWS-LC's ChaCha20-Poly1305 key object: building one allocates AWS-LC memory, sets it up
    /// and erases and frees it again, about a quarter of a 64-byte seal and open (README
    /// "Benchmarks"), which the per-call operations pay on every call.
    type AeadObject = KeyObject<LessSafeKey>;

    /// Through [`Self::dh_object`].
    fn x25519_public_key(secret: &[u8; DH_LEN]) -> [u8; DH_LEN] {
        Self::dh_object(secret).1
    }

    /// With a key object built for this one call ([`Self::x25519_with`] reuses one).
    fn x25519(
        secret: &[u8; DH_LEN],
        their_public: &[u8; DH_LEN],
    ) -> Result<SharedSecret, CryptoError> {
        let ours = agreement::PrivateKey::from_private_key(&X25519, secret)
            .map_err(|_| CryptoError::NonContributory)?;
        agree(&ours, their_public)
    }

    /// AWS-LC refuses only on an allocation failure of its own; then the dalek backend computes
    /// the same public key, and each DH builds the object, so this stays total without a panic.
    fn dh_object(secret: &[u8; DH_LEN]) -> (Self::DhObject, [u8; DH_LEN]) {
        let key = agreement::PrivateKey::from_private_key(&X25519, secret).ok();
        let public = key
            .as_ref()
            .and_then(|key| key.compute_public_key().ok())
            .and_then(|public| <[u8; DH_LEN]>::try_from(public.as_ref()).ok());
        match (key, public) {
            (Some(key), Some(public)) => (KeyObject(Some(Arc::new(key))), public),
            _ => (KeyObject(None), Dalek::x25519_public_key(secret)),
        }
    }

    fn x25519_with(
        object: &Self::DhObject,
        secret: &[u8; DH_LEN],
        their_public: &[u8; DH_LEN],
    ) -> Result<SharedSecret, CryptoError> {
        match &object.0 {
            Some(ours) => agree(ours, their_public),
            None => Self::x25519(secret, their_public),
        }
    }

    fn aead_seal(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; AEAD_TAG_LEN]> {
        seal_with(&aead_key(key)?, nonce, ad, body)
    }

    /// AWS-LC decrypts while it authenticates and erases its output when the tag does not verify
    /// (`EVP_AEAD_CTX_open_gather`), which would destroy a ciphertext the caller may still try
    /// another key on. So the ciphertext is copied first and put back on failure
    /// ([`open_in_place_with`]).
    fn aead_open(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), CryptoError> {
        open_in_place_with(&aead_key(key).ok_or(CryptoError::AeadOpen)?, nonce, ad, body, tag)
    }

    /// AWS-LC decrypts `ciphertext` into `out` while it authenticates
    /// (`EVP_AEAD_CTX_open_gather`), and on a refused tag erases `out` — which is all it writes,
    /// so no backup is needed. A caller whose plaintext is to land in another buffer anyway (a
    /// role that reads a frame into a buffer of its pool, `channel::Transport::read_into`) saves
    /// the copy [`Self::aead_open`] makes.
    fn aead_open_into(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        open_into_with(
            &aead_key(key).ok_or(CryptoError::AeadOpen)?,
            nonce,
            ad,
            ciphertext,
            tag,
            out,
        )
    }

    /// A copy of `ciphertext` decrypted in place without the backup [`Self::aead_open`] makes:
    /// the new buffer is this function's own (AWS-LC zeroes it on a refusal, and it is dropped).
    /// A caller that does not have to keep its ciphertext (`AeadKey::open`) saves that copy.
    fn aead_open_to_vec(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        open_to_vec_with(&aead_key(key).ok_or(CryptoError::AeadOpen)?, nonce, ad, ciphertext, tag)
    }

    /// `None` inside (the per-call operations then) if AWS-LC cannot allocate it.
    fn aead_object(key: &[u8; AEAD_KEY_LEN]) -> Self::AeadObject {
        KeyObject(aead_key(key).map(Arc::new))
    }

    fn aead_seal_with(
        object: &Self::AeadObject,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; AEAD_TAG_LEN]> {
        match &object.0 {
            Some(object) => seal_with(object, nonce, ad, body),
            None => Self::aead_seal(key, nonce, ad, body),
        }
    }

    fn aead_open_with(
        object: &Self::AeadObject,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), CryptoError> {
        match &object.0 {
            Some(object) => open_in_place_with(object, nonce, ad, body, tag),
            None => Self::aead_open(key, nonce, ad, body, tag),
        }
    }

    fn aead_open_into_with(
        object: &Self::AeadObject,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        match &object.0 {
            Some(object) => open_into_with(object, nonce, ad, ciphertext, tag, out),
            None => Self::aead_open_into(key, nonce, ad, ciphertext, tag, out),
        }
    }

    fn aead_open_to_vec_with(
        object: &Self::AeadObject,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        match &object.0 {
            Some(object) => open_to_vec_with(object, nonce, ad, ciphertext, tag),
            None => Self::aead_open_to_vec(key, nonce, ad, ciphertext, tag),
        }
    }
}

/// The DH itself.
///
/// AWS-LC's `X25519` refuses the all-zero output (a constant-time comparison, `CRYPTO_memcmp`);
/// aws-lc-rs accepts every 32-byte public key (RFC 7748: no validation), so for these
/// fixed-size inputs its refusal means exactly that, and is reported as
/// [`CryptoError::NonContributory`]. An allocation failure inside AWS-LC would be reported the
/// same way: a refusal, never a predictable key.
fn agree(
    ours: &agreement::PrivateKey,
    their_public: &[u8; DH_LEN],
) -> Result<SharedSecret, CryptoError> {
    let theirs = agreement::UnparsedPublicKey::new(&X25519, their_public);
    agreement::agree(ours, theirs, CryptoError::NonContributory, |shared| {
        <[u8; DH_LEN]>::try_from(shared).map(Secret::new).map_err(|_| CryptoError::NonContributory)
    })
}

/// A ChaCha20-Poly1305 key object; `None` only if AWS-LC cannot allocate it.
fn aead_key(key: &[u8; AEAD_KEY_LEN]) -> Option<LessSafeKey> {
    UnboundKey::new(&CHACHA20_POLY1305, key).ok().map(LessSafeKey::new)
}

/// [`Backend::aead_seal`] with the key object `key`; `None` if AWS-LC refuses (a body over
/// ChaCha20's 2^38-byte limit), and then `body` holds no plaintext but is otherwise unspecified.
#[inline]
fn seal_with(
    key: &LessSafeKey,
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    body: &mut [u8],
) -> Option<[u8; AEAD_TAG_LEN]> {
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(ad), body)
        .ok()?;
    <[u8; AEAD_TAG_LEN]>::try_from(tag.as_ref()).ok()
}

/// How much of the ciphertext backup [`open_in_place_with`] keeps between calls: every link
/// frame fits (`wire::MAX_FRAME_LEN` is 64 KiB and a few bytes), so a thread that only opens
/// protocol frames allocates it once; a larger one is freed after its call.
const BACKUP_KEPT: usize = 1 << 17;

std::thread_local! {
    /// The ciphertext [`open_in_place_with`] restores on failure. It only ever holds ciphertext,
    /// which is public (it crossed the network), never a plaintext or a key.
    static CIPHERTEXT_BACKUP: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// [`Backend::aead_open`] with the key object `key`: the ciphertext is backed up and restored on
/// failure ([`AwsLc::aead_open`] says why). The backup goes to a buffer of this thread that is
/// reused from call to call, so that opening a message allocates nothing, as with the dalek
/// backend (tests/allocations.rs counts it).
fn open_in_place_with(
    key: &LessSafeKey,
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    body: &mut [u8],
    tag: &[u8; AEAD_TAG_LEN],
) -> Result<(), CryptoError> {
    let reused = CIPHERTEXT_BACKUP.try_with(|backup| {
        backup
            .try_borrow_mut()
            .ok()
            .map(|mut backup| open_restoring(key, nonce, ad, body, tag, &mut backup))
    });
    match reused {
        Ok(Some(result)) => result,
        // The thread's buffer is gone (thread teardown) or in use (not re-entrant): a fresh one.
        _ => open_restoring(key, nonce, ad, body, tag, &mut Vec::new()),
    }
}

/// [`open_in_place_with`] with `backup` as the place to save the ciphertext in.
fn open_restoring(
    key: &LessSafeKey,
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    body: &mut [u8],
    tag: &[u8; AEAD_TAG_LEN],
    backup: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    backup.clear();
    backup.extend_from_slice(body);
    let opened = key
        .open_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(ad), tag, body)
        .map(|_| ());
    if opened.is_err() {
        body.copy_from_slice(backup);
    }
    if backup.capacity() > BACKUP_KEPT {
        *backup = Vec::new();
    }
    opened.map_err(|_| CryptoError::AeadOpen)
}

/// [`Backend::aead_open_into`] with the key object `key` ([`AwsLc::aead_open_into`]).
fn open_into_with(
    key: &LessSafeKey,
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; AEAD_TAG_LEN],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    key.open_separate_gather(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(ad),
        ciphertext,
        tag,
        out,
    )
    .map_err(|_| CryptoError::AeadOpen)
}

/// [`Backend::aead_open_to_vec`] with the key object `key` ([`AwsLc::aead_open_to_vec`]).
fn open_to_vec_with(
    key: &LessSafeKey,
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; AEAD_TAG_LEN],
) -> Result<Vec<u8>, CryptoError> {
    // A copy of the ciphertext, decrypted in place: the buffer is this function's own, so a
    // refused open needs no backup (AWS-LC zeroes it, and it is dropped). Copying costs what
    // zeroing a new buffer for an out-of-place open would, without the zeroing allocation.
    let mut out = ciphertext.to_vec();
    key.open_in_place_separate_tag(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(ad),
        tag,
        &mut out,
    )
    .map_err(|_| CryptoError::AeadOpen)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the suite's keys rely on, which the same bytes from both backends
    /// (tests/suite_backends.rs) cannot show: an object is built and kept, clones share it rather
    /// than build their own, `==` ignores it, and zeroizing drops this handle only.
    fn kept_shared_and_released<T>(mut object: KeyObject<T>) {
        let built = object.0.clone().expect("AWS-LC built the key object");
        let copy = object.clone();
        assert!(copy.0.as_ref().is_some_and(|shared| Arc::ptr_eq(shared, &built)));
        assert!(object == KeyObject::default(), "a key object takes no part in `==`");
        object.zeroize();
        assert!(object.0.is_none(), "zeroizing drops the handle");
        assert!(copy.0.is_some(), "and only this one");
    }

    #[test]
    fn key_objects_are_kept_shared_and_released() {
        let (dh, public) = AwsLc::dh_object(&[7; DH_LEN]);
        assert_eq!(public, Dalek::x25519_public_key(&[7; DH_LEN]));
        kept_shared_and_released(dh);
        kept_shared_and_released(AwsLc::aead_object(&[7; AEAD_KEY_LEN]));
    }

    /// The bytes of the ciphertext backup's buffer that this thread keeps after an open in place
    /// of `len` bytes (a test runs in a thread of its own, so the buffer starts empty).
    fn backup_kept_after_opening(len: usize) -> usize {
        let (key, nonce) = ([7; AEAD_KEY_LEN], [9; AEAD_NONCE_LEN]);
        let mut body = vec![0x5a; len];
        let tag = AwsLc::aead_seal(&key, &nonce, b"ad", &mut body).expect("sealed");
        assert_eq!(AwsLc::aead_open(&key, &nonce, b"ad", &mut body, &tag), Ok(()));
        CIPHERTEXT_BACKUP.with(|backup| backup.borrow().capacity())
    }

    #[test]
    fn the_backup_of_a_link_frame_is_kept() {
        assert!(backup_kept_after_opening(1000) >= 1000);
        assert!(backup_kept_after_opening(BACKUP_KEPT) >= BACKUP_KEPT);
    }

    #[test]
    fn a_larger_backup_is_freed() {
        assert_eq!(backup_kept_after_opening(BACKUP_KEPT + 1), 0);
    }
}
