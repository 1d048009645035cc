//! The model checker's and the fuzz targets' backend (features `model-memo` and `fuzz-memo`
//! only): the compiled backend's X25519 behind memos keyed by the whole input (crate::memo). Same
//! inputs, same bytes. The AEAD, where every MAC is checked, is called directly; in the checker's
//! build every seal is first recorded in the ghost seal log (crate::seal_log), where the checker
//! finds a nonce used twice under one key.

#[cfg(feature = "backend-aws-lc")]
use super::aws_lc as inner;
#[cfg(not(feature = "backend-aws-lc"))]
use super::dalek as inner;

use zeroize::Zeroize;

use crate::memo::Memo;
use crate::suite::{AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, CryptoError, DH_LEN, SharedSecret};

pub(crate) use inner::{aead_open, aead_open_into, aead_open_to_vec};
// The fuzz targets' build has no seal log (it is the checker's): the backend's seal as it is.
#[cfg(not(feature = "model-memo"))]
pub(crate) use inner::aead_seal;

static PUBLIC_KEYS: Memo<[u8; DH_LEN], [u8; DH_LEN]> = Memo::new();
static SHARED: Memo<([u8; DH_LEN], [u8; DH_LEN]), Result<SharedSecret, CryptoError>> = Memo::new();

/// [`inner::aead_seal`], recorded in this thread's ghost seal log first (crate::seal_log). Not
/// memoised: the log must see every seal.
#[cfg(feature = "model-memo")]
pub(crate) fn aead_seal(
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    body: &mut [u8],
) -> Option<[u8; AEAD_TAG_LEN]> {
    crate::seal_log::record(key, nonce);
    inner::aead_seal(key, nonce, ad, body)
}

/// [`inner::x25519_public_key`], memoised.
#[must_use]
pub(crate) fn x25519_public_key(secret: &[u8; DH_LEN]) -> [u8; DH_LEN] {
    PUBLIC_KEYS.get_or(*secret, || inner::x25519_public_key(secret))
}

/// [`inner::x25519`], memoised.
///
/// # Errors
/// As [`inner::x25519`].
pub(crate) fn x25519(
    secret: &[u8; DH_LEN],
    their_public: &[u8; DH_LEN],
) -> Result<SharedSecret, CryptoError> {
    SHARED.get_or((*secret, *their_public), || inner::x25519(secret, their_public))
}

/// What this backend keeps with a private key: nothing. The memos stand in for a kept key
/// object (a DH on the same inputs is computed once per process), so every DH goes through
/// [`x25519`]; the type gives `suite::PrivateKey` the same calls as the other backends.
#[derive(Clone, Default, PartialEq, Eq, Hash, Zeroize)]
pub(crate) struct DhKey;

impl DhKey {
    /// The (empty) key object for `secret` and its public key, memoised.
    #[must_use]
    pub(crate) fn new(secret: &[u8; DH_LEN]) -> (Self, [u8; DH_LEN]) {
        (Self, x25519_public_key(secret))
    }

    /// [`x25519`], memoised.
    ///
    /// # Errors
    /// As [`inner::x25519`].
    pub(crate) fn x25519(
        &self,
        secret: &[u8; DH_LEN],
        their_public: &[u8; DH_LEN],
    ) -> Result<SharedSecret, CryptoError> {
        x25519(secret, their_public)
    }
}

/// What this backend keeps with an AEAD key that serves many messages: nothing, so that every
/// seal goes through [`aead_seal`] (and the checker's seal log); the type gives
/// `suite::KeptAeadKey` the same calls as the other backends.
#[derive(Clone, Default, PartialEq, Eq, Hash, Zeroize)]
pub(crate) struct AeadObject;

impl AeadObject {
    /// The (empty) key object for `key`.
    #[must_use]
    pub(crate) const fn new(_key: &[u8; AEAD_KEY_LEN]) -> Self {
        Self
    }

    /// [`aead_seal`].
    #[must_use]
    pub(crate) fn seal(
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
    pub(crate) fn open_to_vec(
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
    pub(crate) fn open_into(
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
    pub(crate) fn open_in_place(
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
