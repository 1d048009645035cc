//! X25519 key agreement (RFC 7748) with the contributory-behaviour check.

use core::fmt;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{CryptoError, Secret};

/// Length of an X25519 public key, private key and shared secret (Noise's `DHLEN`).
pub const DH_LEN: usize = 32;

/// The 32-byte output of a successful, contributory X25519.
pub type SharedSecret = Secret<DH_LEN>;

/// An X25519 public key: the 32-byte little-endian u-coordinate, exactly as received.
///
/// Public keys are not secret; they print as hex. No validation happens at construction: RFC 7748
/// accepts every 32-byte string, and a low-order key is caught where it matters, when a DH with it
/// yields the all-zero secret ([`CryptoError::NonContributory`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; DH_LEN]);

impl PublicKey {
    /// Wraps 32 bytes as a public key.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; DH_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes of the key.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; DH_LEN] {
        &self.0
    }

    /// Whether this key has small order (including non-canonical encodings of such points): then
    /// every X25519 with it yields the all-zero output, since clamped scalars are multiples of the
    /// cofactor 8. Tested as `X25519(1^32, key) == 0` (any clamped scalar gives the same answer);
    /// the comparison is constant time.
    #[must_use]
    pub fn is_low_order(&self) -> bool {
        let probe = x25519_dalek::StaticSecret::from([1u8; DH_LEN]);
        !probe.diffie_hellman(&x25519_dalek::PublicKey::from(self.0)).was_contributory()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

/// An X25519 private key, with its public key cached.
///
/// The private scalar is held as the 32 bytes it was created from (clamping happens inside each DH,
/// as RFC 7748 specifies), so a key generated from an RNG is exactly the 32 bytes the RNG produced.
#[derive(Clone, PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey {
    secret: Secret<DH_LEN>,
    #[zeroize(skip)]
    public: PublicKey,
}

impl PrivateKey {
    /// Draws a new key: 32 bytes from `rng`, in the order the RNG yields them.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; DH_LEN];
        rng.fill_bytes(&mut bytes);
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        key
    }

    /// Builds a key from its 32 private bytes (for example a test vector's `init_static`).
    #[must_use]
    pub fn from_bytes(bytes: [u8; DH_LEN]) -> Self {
        let dalek = x25519_dalek::StaticSecret::from(bytes);
        let public = PublicKey(x25519_dalek::PublicKey::from(&dalek).to_bytes());
        Self { secret: Secret::new(bytes), public }
    }

    /// The public key `X25519(k, 9)`.
    #[must_use]
    pub const fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The private bytes, for test-vector generation only.
    #[must_use]
    pub const fn expose(&self) -> &[u8; DH_LEN] {
        self.secret.expose()
    }

    /// `X25519(self, their_public)`.
    ///
    /// # Errors
    /// [`CryptoError::NonContributory`] if the result is all zero, which happens exactly when
    /// `their_public` has small order. The check is constant time.
    pub fn diffie_hellman(&self, their_public: &PublicKey) -> Result<SharedSecret, CryptoError> {
        let dalek = x25519_dalek::StaticSecret::from(*self.secret.expose());
        let shared = dalek.diffie_hellman(&x25519_dalek::PublicKey::from(their_public.0));
        if !shared.was_contributory() {
            return Err(CryptoError::NonContributory);
        }
        Ok(Secret::new(shared.to_bytes()))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("secret", &self.secret)
            .field("public", &self.public)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7748_section_6_1() {
        let a = PrivateKey::from_bytes(hex_32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let b = PrivateKey::from_bytes(hex_32(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            a.public_key().as_bytes(),
            &hex_32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        let k = hex_32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(a.diffie_hellman(&b.public_key()).map(|s| *s.expose()), Ok(k));
        assert_eq!(b.diffie_hellman(&a.public_key()).map(|s| *s.expose()), Ok(k));
    }

    #[test]
    fn all_zero_public_key_is_rejected() {
        let a = PrivateKey::from_bytes([1u8; 32]);
        assert_eq!(
            a.diffie_hellman(&PublicKey::from_bytes([0u8; 32])),
            Err(CryptoError::NonContributory)
        );
    }

    #[test]
    fn low_order_points_are_detected() {
        // u = 0 and u = 1 have small order; u = 9 (the base point) does not.
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut nine = [0u8; 32];
        nine[0] = 9;
        assert!(PublicKey::from_bytes([0u8; 32]).is_low_order());
        assert!(PublicKey::from_bytes(one).is_low_order());
        assert!(!PublicKey::from_bytes(nine).is_low_order());
        assert!(!PrivateKey::from_bytes([7u8; 32]).public_key().is_low_order());
    }

    #[test]
    fn debug_hides_the_private_key() {
        let a = PrivateKey::from_bytes([0x5a; 32]);
        assert!(!format!("{a:?}").contains("5a5a5a"));
    }

    fn hex_32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).unwrap_or_else(|e| unreachable!("{e}"));
        out
    }
}
