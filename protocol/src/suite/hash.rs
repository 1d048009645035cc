//! SHA-256, SHA-512, HMAC-SHA-256 and HKDF-SHA-256 (RFC 2104, RFC 5869).

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::CryptoError;

/// Length of a SHA-256 output (Noise's `HASHLEN`).
pub const HASH_LEN: usize = 32;

/// `SHA-256(parts[0] || parts[1] || …)`.
#[must_use]
pub fn sha256(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// `SHA-512(parts[0] || parts[1] || …)`.
#[must_use]
pub fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// `HMAC-SHA-256(key, parts[0] || parts[1] || …)`. Keys of any length are accepted (RFC 2104).
#[must_use]
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable_hmac_key());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

// HMAC takes keys of every length, so `new_from_slice` cannot fail; this keeps the call total
// without an `unwrap` while documenting why.
#[cold]
fn unreachable_hmac_key() -> hmac::Hmac<Sha256> {
    <hmac::Hmac<Sha256> as KeyInit>::new(&Default::default())
}

/// HKDF-SHA-256 (RFC 5869): extract with `salt` (`None` means 32 zero bytes), then expand with
/// `info` into all of `okm`.
///
/// # Errors
/// [`CryptoError::KdfOutputTooLong`] if `okm` is longer than 255 × 32 bytes; `okm` is left as it was.
pub fn hkdf_sha256(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[u8],
    okm: &mut [u8],
) -> Result<(), CryptoError> {
    hkdf::Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, okm)
        .map_err(|_| CryptoError::KdfOutputTooLong)
}
