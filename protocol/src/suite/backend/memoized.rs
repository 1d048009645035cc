//! The model checker's and the fuzz targets' backend (features `model-memo` and `fuzz-memo`
//! only): the compiled backend's X25519 behind memos keyed by the whole input (crate::memo). Same
//! inputs, same bytes. The AEAD, where every MAC is checked, is called directly; in the checker's
//! build every seal is first recorded in the ghost seal log (crate::seal_log), where the checker
//! finds a nonce used twice under one key.

use super::Backend;
use crate::memo::Memo;
use crate::suite::{AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, CryptoError, DH_LEN, SharedSecret};

/// The backend behind the memos.
#[cfg(feature = "backend-aws-lc")]
type Inner = super::aws_lc::AwsLc;
/// The backend behind the memos.
#[cfg(not(feature = "backend-aws-lc"))]
type Inner = super::dalek::Dalek;

static PUBLIC_KEYS: Memo<[u8; DH_LEN], [u8; DH_LEN]> = Memo::new();
static SHARED: Memo<([u8; DH_LEN], [u8; DH_LEN]), Result<SharedSecret, CryptoError>> = Memo::new();

/// [`Inner`] behind the memos. It keeps no key objects: the memos stand in for a kept X25519 key
/// object (a DH on the same inputs is computed once per process), so every DH goes through
/// them, and without an AEAD key object every seal goes through [`Backend::aead_seal`] (and the
/// checker's seal log).
pub(crate) struct Memoized;

impl Backend for Memoized {
    type DhObject = ();
    type AeadObject = ();

    fn aead_object(_key: &[u8; AEAD_KEY_LEN]) {}

    /// Memoised.
    fn x25519_public_key(secret: &[u8; DH_LEN]) -> [u8; DH_LEN] {
        PUBLIC_KEYS.get_or(*secret, || Inner::x25519_public_key(secret))
    }

    /// Memoised, the refusals too.
    fn x25519(
        secret: &[u8; DH_LEN],
        their_public: &[u8; DH_LEN],
    ) -> Result<SharedSecret, CryptoError> {
        SHARED.get_or((*secret, *their_public), || Inner::x25519(secret, their_public))
    }

    /// In the checker's build, recorded in this thread's ghost seal log first (crate::seal_log);
    /// the fuzz targets' build has no seal log. Not memoised: the log must see every seal.
    fn aead_seal(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; AEAD_TAG_LEN]> {
        #[cfg(feature = "model-memo")]
        crate::seal_log::record(key, nonce);
        Inner::aead_seal(key, nonce, ad, body)
    }

    fn aead_open(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), CryptoError> {
        Inner::aead_open(key, nonce, ad, body, tag)
    }

    fn aead_open_into(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        Inner::aead_open_into(key, nonce, ad, ciphertext, tag, out)
    }

    fn aead_open_to_vec(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        Inner::aead_open_to_vec(key, nonce, ad, ciphertext, tag)
    }
}
