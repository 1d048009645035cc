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
    HmacKey::new(key).mac(parts)
}

/// An HMAC-SHA-256 key, prepared once (the inner and outer pads absorbed) for several MACs under
/// it: each [`Self::mac`] then costs the message's blocks plus one, not two more for the key. The
/// output is exactly [`hmac_sha256`]'s.
///
/// The prepared state can compute `HMAC(key, ·)`, so it is as secret as the key: it erases itself
/// when dropped (the `zeroize` features of `hmac` and `sha2`), prints redacted, and lives only as
/// long as the derivation that uses it.
#[derive(Clone)]
pub struct HmacKey(hmac::Hmac<Sha256>);

impl HmacKey {
    /// Prepares `key` (any length, RFC 2104).
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        Self(
            <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable_hmac_key()),
        )
    }

    /// `HMAC-SHA-256(key, parts[0] || parts[1] || …)`.
    #[must_use]
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; HASH_LEN] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl core::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HmacKey([redacted])")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A prepared key can compute `HMAC(key, ·)`, so it is as secret as the key. Its state is two
    /// SHA-256 cores and a block buffer; with the `zeroize` features of `hmac` and `sha2` (root
    /// Cargo.toml) each erases itself when dropped. `hmac` does not carry the marker trait, so this
    /// compile-time check is on the SHA-256 state it is made of: it fails if the feature is lost.
    #[test]
    fn hash_state_zeroizes_on_drop() {
        fn zeroizes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroizes_on_drop::<Sha256>();
        zeroizes_on_drop::<Sha512>();
    }

    /// RFC 4231 test case 2 (key "Jefe"), then a second MAC under the same prepared key: each MAC
    /// starts from the prepared key alone, whatever was computed before.
    #[test]
    fn prepared_key_gives_independent_macs() {
        let key = HmacKey::new(b"Jefe");
        let expected =
            hex::decode("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(key.mac(&[b"what do ya want ", b"for nothing?"]).to_vec(), expected.unwrap());
        let other = key.mac(&[b"another message"]);
        assert_eq!(other, hmac_sha256(b"Jefe", &[b"another message"]));
        assert_eq!(
            key.mac(&[b"what do ya want for nothing?"]),
            key.mac(&[b"what do ya want ", b"for nothing?"])
        );
    }
}
