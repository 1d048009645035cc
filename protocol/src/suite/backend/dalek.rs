//! The default backend: x25519-dalek and RustCrypto's chacha20poly1305.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use zeroize::Zeroize;

use crate::suite::{
    AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, CryptoError, DH_LEN, Secret, SharedSecret,
};

/// What this backend keeps with a private key besides its bytes: nothing (x25519-dalek works
/// from the 32 bytes directly, a copy per DH); the type exists so that both backends offer the
/// same calls to `suite::PrivateKey`. (The model checker's and the fuzz targets' builds, features
/// `model-memo` and `fuzz-memo`, use `memoized::DhKey` instead.)
#[derive(Clone, Default, PartialEq, Eq, Hash, Zeroize)]
#[cfg_attr(any(feature = "model-memo", feature = "fuzz-memo"), allow(dead_code))]
pub struct DhKey;

#[cfg_attr(any(feature = "model-memo", feature = "fuzz-memo"), allow(dead_code))]
impl DhKey {
    /// The (empty) key object for `secret` and its public key `X25519(secret, 9)`.
    #[must_use]
    pub fn new(secret: &[u8; DH_LEN]) -> (Self, [u8; DH_LEN]) {
        (Self, x25519_public_key(secret))
    }

    /// [`x25519`].
    ///
    /// # Errors
    /// As [`x25519`].
    pub fn x25519(
        &self,
        secret: &[u8; DH_LEN],
        their_public: &[u8; DH_LEN],
    ) -> Result<SharedSecret, CryptoError> {
        x25519(secret, their_public)
    }
}

/// What this backend keeps with an AEAD key that serves many messages (`suite::KeptAeadKey`):
/// nothing (setting up a RustCrypto ChaCha20-Poly1305 key is a copy of its 32 bytes); the type
/// exists so that both backends offer the same calls.
#[derive(Clone, Default, PartialEq, Eq, Hash, Zeroize)]
#[cfg_attr(any(feature = "model-memo", feature = "fuzz-memo"), allow(dead_code))]
pub struct AeadObject;

#[cfg_attr(any(feature = "model-memo", feature = "fuzz-memo"), allow(dead_code))]
impl AeadObject {
    /// The (empty) key object for `key`.
    #[must_use]
    pub const fn new(_key: &[u8; AEAD_KEY_LEN]) -> Self {
        Self
    }

    /// [`aead_seal`].
    #[must_use]
    pub fn seal(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; AEAD_TAG_LEN]> {
        aead_seal(key, nonce, ad, body)
    }

    /// [`aead_open_to_vec`].
    ///
    /// # Errors
    /// As [`aead_open_to_vec`].
    pub fn open_to_vec(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        aead_open_to_vec(key, nonce, ad, ciphertext, tag)
    }

    /// [`aead_open_into`].
    ///
    /// # Errors
    /// As [`aead_open_into`].
    pub fn open_into(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        aead_open_into(key, nonce, ad, ciphertext, tag, out)
    }

    /// [`aead_open`].
    ///
    /// # Errors
    /// As [`aead_open`].
    pub fn open_in_place(
        &self,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), CryptoError> {
        aead_open(key, nonce, ad, body, tag)
    }
}

/// `X25519(secret, 9)`: the public key of the 32 private bytes (clamped inside, RFC 7748 §5).
#[must_use]
pub fn x25519_public_key(secret: &[u8; DH_LEN]) -> [u8; DH_LEN] {
    let dalek = x25519_dalek::StaticSecret::from(*secret);
    x25519_dalek::PublicKey::from(&dalek).to_bytes()
}

/// `X25519(secret, their_public)`, refused if the result is all zero.
///
/// # Errors
/// [`CryptoError::NonContributory`] if the output is all zero (x25519-dalek's
/// `was_contributory`, a constant-time comparison).
pub fn x25519(
    secret: &[u8; DH_LEN],
    their_public: &[u8; DH_LEN],
) -> Result<SharedSecret, CryptoError> {
    // `StaticSecret` zeroizes on drop (feature `zeroize`), as does the `SharedSecret` it returns.
    let dalek = x25519_dalek::StaticSecret::from(*secret);
    let shared = dalek.diffie_hellman(&x25519_dalek::PublicKey::from(*their_public));
    if !shared.was_contributory() {
        return Err(CryptoError::NonContributory);
    }
    Ok(Secret::new(shared.to_bytes()))
}

/// Encrypts `body` in place and returns the tag; `None` only for a body over ChaCha20's 2^38-byte
/// limit (then `body` is unchanged).
#[must_use]
pub fn aead_seal(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    body: &mut [u8],
) -> Option<[u8; AEAD_TAG_LEN]> {
    ChaCha20Poly1305::new(&Key::from(*key))
        .encrypt_inout_detached(&Nonce::from(*nonce), ad, body.into())
        .ok()
        .map(Into::into)
}

/// Verifies `tag` over `ad` and `body`, then decrypts `body` in place.
///
/// The tag is verified before anything is decrypted, so on error `body` is exactly as it was.
/// That is how `chacha20poly1305` 0.11 decrypts, not a promise of its trait; the Wycheproof tests
/// check it for every case, so a version that decrypted first would fail there.
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
    ChaCha20Poly1305::new(&Key::from(*key))
        .decrypt_inout_detached(&Nonce::from(*nonce), ad, body.into(), &Tag::from(*tag))
        .map_err(|_| CryptoError::AeadOpen)
}

/// [`aead_open`] out of place: verifies `tag` over `ad` and `ciphertext`, then returns the
/// plaintext in a new buffer (a copy of the ciphertext, decrypted in place); `ciphertext` is only
/// read.
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
    let mut out = ciphertext.to_vec();
    aead_open(key, nonce, ad, &mut out, tag)?;
    Ok(out)
}

/// [`aead_open`] from one buffer into another: verifies `tag` over `ad` and `ciphertext`, then
/// decrypts `ciphertext` into `out`, which must be as long. `ciphertext` is only read; on error
/// `out` is as it was (nothing is decrypted before the tag verifies).
///
/// # Errors
/// [`CryptoError::AeadOpen`] if the tag does not verify or the lengths differ.
pub fn aead_open_into(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; AEAD_TAG_LEN],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let buffer = InOutBuf::new(ciphertext, out).map_err(|_| CryptoError::AeadOpen)?;
    ChaCha20Poly1305::new(&Key::from(*key))
        .decrypt_inout_detached(&Nonce::from(*nonce), ad, buffer, &Tag::from(*tag))
        .map_err(|_| CryptoError::AeadOpen)
}
