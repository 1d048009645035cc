//! The model checker's backend (feature `model-memo` only): the compiled backend's X25519 behind
//! memos keyed by the whole input (crate::memo). Same inputs, same bytes; the AEAD, cheap at the
//! model's message sizes, is called directly.

#[cfg(feature = "backend-aws-lc")]
use super::aws_lc as inner;
#[cfg(not(feature = "backend-aws-lc"))]
use super::dalek as inner;

use crate::memo::Memo;
use crate::suite::{CryptoError, DH_LEN, SharedSecret};

pub(crate) use inner::{aead_open, aead_seal};

static PUBLIC_KEYS: Memo<[u8; DH_LEN], [u8; DH_LEN]> = Memo::new();
static SHARED: Memo<([u8; DH_LEN], [u8; DH_LEN]), Result<SharedSecret, CryptoError>> = Memo::new();

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
