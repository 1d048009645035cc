//! The backend of the feature `backend-aws-lc`: X25519 and ChaCha20-Poly1305 from aws-lc-rs.
//!
//! AWS-LC's x86-64 X25519 is s2n-bignum's formally verified assembly; its ChaCha20-Poly1305 is
//! vectorized assembly. Both are called through aws-lc-rs's safe API only (`unsafe` stays
//! forbidden in this crate).
//!
//! **Secrets.** An X25519 private key's AWS-LC key object ([`DhKey`]) lives as long as the
//! suite's `PrivateKey` it belongs to, so that a DH does not rebuild it; so does a channel key's
//! AEAD key object ([`AeadObject`], with a `suite::KeptAeadKey`); the ratchet's message keys, each
//! used once, build theirs for the one call. AWS-LC copies a key into memory of its own, and its `OPENSSL_free` erases every
//! allocation before freeing it (`OPENSSL_cleanse`), so no copy of a key outlives its object;
//! the shared secret aws-lc-rs hands back is a `Zeroizing<Vec<u8>>`, copied into a [`Secret`]
//! here.
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

use super::dalek;
use crate::suite::{
    AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, CryptoError, DH_LEN, Secret, SharedSecret,
};

/// An AWS-LC key object kept with the suite key it was built from ([`DhKey`], [`AeadObject`]),
/// shared by the key's clones (a model checker clones states by the thousand), or none: then each
/// call builds its own. It is a function of the key's bytes, which the suite keeps beside it, so
/// it takes no part in equality or hashing ([`PartialEq`] is always true, [`Hash`] writes
/// nothing); [`Zeroize`] drops this handle, and AWS-LC erases the object's memory when the last
/// one goes (`OPENSSL_free`).
struct KeyObject<T>(Option<Arc<T>>);

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

/// AWS-LC's X25519 key object for one private key, built once when the key is made
/// ([`crate::suite::PrivateKey::from_bytes`]) and kept with it, so that each DH is one
/// scalar multiplication: building the object derives the public key (a fixed-base
/// multiplication), which is the key generation's work and need not be repeated per DH.
///
/// **Secrets.** The object holds AWS-LC's copy of the private scalar (and the public key) in
/// memory AWS-LC allocated. [`Zeroize`] drops this handle at once; when the last handle is gone
/// (clones share the object through an [`Arc`]: a model checker clones states by the thousand),
/// `EVP_PKEY_free` frees the key with `OPENSSL_free`, which erases the whole allocation
/// (`OPENSSL_cleanse`) before freeing it. No copy of the scalar is ever read back out of it.
///
/// **Same value, same key.** The object is a function of the private bytes the suite keeps next
/// to it, so it takes no part in equality or hashing ([`PartialEq`] is always true and [`Hash`]
/// writes nothing): two `PrivateKey`s are equal exactly when their bytes are. `None` (AWS-LC
/// could not allocate, or the handle was zeroized) means "build it per DH", as before: slower,
/// never a different result.
#[derive(Clone, Default, PartialEq, Eq, Hash, Zeroize)]
pub struct DhKey(KeyObject<agreement::PrivateKey>);

impl DhKey {
    /// The key object for `secret` and its public key `X25519(secret, 9)`.
    ///
    /// AWS-LC refuses only on an allocation failure of its own; then the dalek backend computes
    /// the same public key, and DH builds the object per call, so this stays total without a
    /// panic.
    #[must_use]
    pub fn new(secret: &[u8; DH_LEN]) -> (Self, [u8; DH_LEN]) {
        let key = agreement::PrivateKey::from_private_key(&X25519, secret).ok();
        let public = key
            .as_ref()
            .and_then(|key| key.compute_public_key().ok())
            .and_then(|public| <[u8; DH_LEN]>::try_from(public.as_ref()).ok());
        match (key, public) {
            (Some(key), Some(public)) => (Self(KeyObject(Some(Arc::new(key)))), public),
            _ => (Self(KeyObject(None)), dalek::x25519_public_key(secret)),
        }
    }

    /// `X25519(secret, their_public)` with this key object, which must be the one [`Self::new`]
    /// made for `secret`; as [`x25519`].
    ///
    /// # Errors
    /// [`CryptoError::NonContributory`] if the output is all zero.
    pub fn x25519(
        &self,
        secret: &[u8; DH_LEN],
        their_public: &[u8; DH_LEN],
    ) -> Result<SharedSecret, CryptoError> {
        match &self.0.0 {
            Some(ours) => agree(ours, their_public),
            None => x25519(secret, their_public),
        }
    }
}

/// `X25519(secret, 9)`, as [`dalek::x25519_public_key`] (through [`DhKey::new`]).
#[must_use]
pub fn x25519_public_key(secret: &[u8; DH_LEN]) -> [u8; DH_LEN] {
    DhKey::new(secret).1
}

/// `X25519(secret, their_public)`, refused if the result is all zero, as [`dalek::x25519`]: the
/// key object built for this one call ([`DhKey::x25519`] reuses one).
///
/// # Errors
/// [`CryptoError::NonContributory`] if the output is all zero.
pub fn x25519(
    secret: &[u8; DH_LEN],
    their_public: &[u8; DH_LEN],
) -> Result<SharedSecret, CryptoError> {
    let ours = agreement::PrivateKey::from_private_key(&X25519, secret)
        .map_err(|_| CryptoError::NonContributory)?;
    agree(&ours, their_public)
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

/// AWS-LC's ChaCha20-Poly1305 key object for a key that serves many messages (a Noise
/// `CipherState`'s, `suite::KeptAeadKey`), built once with the key and kept with it, as [`DhKey`]
/// is for an X25519 key: building one allocates AWS-LC memory, sets it up and erases and frees
/// it again, about a quarter of a 64-byte seal and open (README "Benchmarks"), which the free
/// functions below pay on every call.
///
/// **Secrets**, **same value, same key**, `None`: as [`DhKey`]. AWS-LC keeps its copy of the key
/// in memory it allocated, erased by `OPENSSL_free` when the last handle is dropped; the object
/// takes no part in `==` or `Hash`; without one (AWS-LC could not allocate it, or the handle was
/// zeroized) every call builds its own, as the free functions do: slower, never a different
/// result.
#[derive(Clone, Default, PartialEq, Eq, Hash, Zeroize)]
pub struct AeadObject(KeyObject<LessSafeKey>);

impl AeadObject {
    /// The key object for `key`.
    #[must_use]
    pub fn new(key: &[u8; AEAD_KEY_LEN]) -> Self {
        Self(KeyObject(aead_key(key).map(Arc::new)))
    }

    /// [`aead_seal`] with this key object, which must be the one [`Self::new`] made for `key`.
    #[must_use]
    pub fn seal(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; AEAD_TAG_LEN]> {
        match &self.0.0 {
            Some(object) => seal_with(object, nonce, ad, body),
            None => aead_seal(key, nonce, ad, body),
        }
    }

    /// [`aead_open_to_vec`] with this key object, which must be the one [`Self::new`] made for
    /// `key`.
    ///
    /// # Errors
    /// [`CryptoError::AeadOpen`] if the tag does not verify.
    pub fn open_to_vec(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        match &self.0.0 {
            Some(object) => open_to_vec_with(object, nonce, ad, ciphertext, tag),
            None => aead_open_to_vec(key, nonce, ad, ciphertext, tag),
        }
    }

    /// [`aead_open_into`] with this key object, which must be the one [`Self::new`] made for
    /// `key`.
    ///
    /// # Errors
    /// [`CryptoError::AeadOpen`] if the tag does not verify; `ciphertext` is only read.
    pub fn open_into(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        match &self.0.0 {
            Some(object) => open_into_with(object, nonce, ad, ciphertext, tag, out),
            None => aead_open_into(key, nonce, ad, ciphertext, tag, out),
        }
    }

    /// [`aead_open`] with this key object, which must be the one [`Self::new`] made for `key`.
    ///
    /// # Errors
    /// [`CryptoError::AeadOpen`] if the tag does not verify; `body` is then as it was.
    pub fn open_in_place(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), CryptoError> {
        match &self.0.0 {
            Some(object) => open_in_place_with(object, nonce, ad, body, tag),
            None => aead_open(key, nonce, ad, body, tag),
        }
    }
}

/// Encrypts `body` in place and returns the tag, as [`dalek::aead_seal`]; `None` if AWS-LC
/// refuses (a body over ChaCha20's 2^38-byte limit, or an allocation failure): then `body` holds
/// no plaintext but is otherwise unspecified, and the caller discards it.
#[must_use]
pub fn aead_seal(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    body: &mut [u8],
) -> Option<[u8; AEAD_TAG_LEN]> {
    seal_with(&aead_key(key)?, nonce, ad, body)
}

/// [`aead_seal`] with the key object `key`.
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

/// How much of the ciphertext backup [`aead_open`] keeps between calls: every link frame fits
/// (`wire::MAX_FRAME_LEN` is 64 KiB and a few bytes), so a thread that only opens protocol frames
/// allocates it once; a larger one is freed after its call.
const BACKUP_KEPT: usize = 1 << 17;

std::thread_local! {
    /// The ciphertext [`aead_open`] restores on failure. It only ever holds ciphertext, which is
    /// public (it crossed the network), never a plaintext or a key.
    static CIPHERTEXT_BACKUP: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Verifies `tag` and decrypts `body` in place, as [`dalek::aead_open`]: on error `body` is
/// exactly as it was.
///
/// AWS-LC decrypts while it authenticates and erases its output when the tag does not verify
/// (`EVP_AEAD_CTX_open_gather`), which would destroy a ciphertext the caller may still try
/// another key on (the e2e ratchet tries an envelope in several sessions). So the ciphertext is
/// copied first and put back on failure. The copy goes to a buffer of this thread that is reused
/// from call to call, so that opening a message allocates nothing, as with the dalek backend
/// (tests/allocations.rs counts it).
///
/// # Errors
/// [`CryptoError::AeadOpen`] if the tag does not verify.
pub fn aead_open(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    body: &mut [u8],
    tag: &[u8; AEAD_TAG_LEN],
) -> Result<(), CryptoError> {
    open_in_place_with(&aead_key(key).ok_or(CryptoError::AeadOpen)?, nonce, ad, body, tag)
}

/// [`aead_open`] with the key object `key`.
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

/// [`aead_open`] with `backup` as the place to save the ciphertext in.
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

/// [`aead_open`] from one buffer into another, as [`dalek::aead_open_into`]: AWS-LC decrypts
/// `ciphertext` into `out` (as long) while it authenticates (`EVP_AEAD_CTX_open_gather`), and on
/// a refused tag erases `out` — which is all it writes: `ciphertext` is only read, so no backup is
/// needed. A caller whose plaintext is to land in another buffer anyway (a role that reads a frame
/// into a buffer of its pool, `channel::Transport::read_into`) saves the copy [`aead_open`]
/// makes.
///
/// # Errors
/// [`CryptoError::AeadOpen`] if the tag does not verify or the lengths differ; `out` is then
/// unspecified (AWS-LC zeroes it) and holds no plaintext.
pub fn aead_open_into(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; AEAD_TAG_LEN],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    open_into_with(&aead_key(key).ok_or(CryptoError::AeadOpen)?, nonce, ad, ciphertext, tag, out)
}

/// [`aead_open_into`] with the key object `key`.
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

/// [`aead_open`] out of place, as [`dalek::aead_open_to_vec`]: a copy of `ciphertext` in a new
/// buffer is decrypted in place, and `ciphertext` is only read, so no backup is needed — a caller
/// that does not have to keep its ciphertext (`AeadKey::open`) saves the copy [`aead_open`] makes.
/// On error the new buffer (which AWS-LC zeroes, `EVP_AEAD_CTX_open_gather`) is dropped.
///
/// # Errors
/// [`CryptoError::AeadOpen`] if the tag does not verify.
pub fn aead_open_to_vec(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; AEAD_TAG_LEN],
) -> Result<Vec<u8>, CryptoError> {
    open_to_vec_with(&aead_key(key).ok_or(CryptoError::AeadOpen)?, nonce, ad, ciphertext, tag)
}

/// [`aead_open_to_vec`] with the key object `key`.
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
