//! The primitive suite: the only module that touches cryptographic primitives.
//!
//! Everything above this layer (wire, channel, hop, e2e, roles) calls these functions and types and
//! never a primitive crate directly. The suite is fixed — there is no negotiation:
//!
//! | role              | primitive                    | crate (default)       | with `backend-aws-lc` |
//! |-------------------|------------------------------|-----------------------|-----------------------|
//! | key agreement     | X25519 (RFC 7748)            | `x25519-dalek`        | `aws-lc-rs`           |
//! | AEAD              | ChaCha20-Poly1305 (RFC 8439) | `chacha20poly1305`    | `aws-lc-rs`           |
//! | hash              | SHA-256, SHA-512 (FIPS 180-4)| `sha2`                | `sha2`                |
//! | MAC / KDF         | HMAC-SHA-256, HKDF-SHA-256   | `hmac`, `hkdf`        | `hmac`, `hkdf`        |
//! | prekey signatures | Ed25519 (RFC 8032), strict   | `ed25519-dalek`       | `ed25519-dalek`       |
//!
//! The backend is chosen at compile time (the Cargo feature `backend-aws-lc`, off by default) and
//! only inside this module (`backend`, which says why the last three rows stay the same); the
//! bytes on the wire, the errors and the rules below are the same with either.
//!
//! Secret values are [`Secret`] newtypes: fixed-size arrays that zeroize on drop, print as
//! `[redacted]`, compare in constant time and are never serialized.

mod aead;
mod backend;
mod dh;
mod hash;
mod secret;
mod sign;

/// Writes `bytes` as lower-case hex: how public keys, signatures and binary bodies print in `Debug`
/// (the library needs no hex crate for it).
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Not part of the API: both backends side by side, with the trait they implement, for the test
/// that compares them (tests/suite_backends.rs). Only with the feature `backend-aws-lc`.
#[doc(hidden)]
#[cfg(feature = "backend-aws-lc")]
pub mod backends {
    pub use super::backend::Backend;
    pub use super::backend::aws_lc::AwsLc;
    pub use super::backend::dalek::Dalek;
}

pub use aead::{AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, AeadKey, KeptAeadKey};
pub use dh::{DH_LEN, PrivateKey, PublicKey, SharedSecret};
pub use hash::{HASH_LEN, HmacKey, hkdf_sha256, hmac_sha256, sha256, sha512};
pub use secret::Secret;
pub use sign::{SIGNATURE_LEN, SIGNING_KEY_LEN, Signature, SigningKey, VerifyingKey};

/// Errors raised by the suite. Each is a distinct, matchable condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CryptoError {
    /// X25519 produced the all-zero shared secret: the peer's public key has small order (or is a
    /// non-canonical encoding of such a point), so the result is predictable and must not be used.
    NonContributory,
    /// AEAD authentication failed: wrong key, nonce, associated data, or a modified ciphertext or tag.
    AeadOpen,
    /// An AEAD ciphertext shorter than its 16-byte tag.
    AeadTruncated,
    /// HKDF was asked for more than 255 × 32 bytes of output.
    KdfOutputTooLong,
    /// An Ed25519 signature did not verify (strict RFC 8032 verification).
    BadSignature,
    /// An Ed25519 public key is not a valid point encoding, or is of small order.
    BadSigningKey,
}

impl core::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NonContributory => "X25519 result is all zero (low-order public key)",
            Self::AeadOpen => "AEAD authentication failed",
            Self::AeadTruncated => "AEAD ciphertext shorter than its tag",
            Self::KdfOutputTooLong => "HKDF output longer than 255 hash lengths",
            Self::BadSignature => "Ed25519 signature does not verify",
            Self::BadSigningKey => "Ed25519 public key invalid or of small order",
        })
    }
}

impl std::error::Error for CryptoError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the suite's types print: public values as lower-case hex, so that transcripts and
    /// failed assertions show them; secrets as `[redacted]`, next to their public half only.
    #[test]
    fn debug_prints_public_values_in_hex_and_secrets_redacted() {
        assert_eq!(Hex(&[0x00, 0x0f, 0xa0, 0xff]).to_string(), "000fa0ff");

        let private = PrivateKey::from_bytes([0x5a; DH_LEN]);
        let public = format!("PublicKey({})", hex::encode(private.public_key().as_bytes()));
        assert_eq!(format!("{:?}", private.public_key()), public);
        assert_eq!(
            format!("{private:?}"),
            format!("PrivateKey {{ secret: [redacted], public: {public} }}")
        );

        let signing = SigningKey::from_seed([0x5a; SIGNING_KEY_LEN]);
        let verifying =
            format!("VerifyingKey({})", hex::encode(signing.verifying_key().as_bytes()));
        assert_eq!(format!("{:?}", signing.verifying_key()), verifying);
        assert_eq!(
            format!("{signing:?}"),
            format!("SigningKey {{ seed: [redacted], public: {verifying} }}")
        );
        let signature = signing.sign(b"m");
        assert_eq!(
            format!("{signature:?}"),
            format!("Signature({})", hex::encode(signature.as_bytes()))
        );

        assert_eq!(format!("{:?}", HmacKey::new(&[0x5a; 32])), "HmacKey([redacted])");
    }
}
