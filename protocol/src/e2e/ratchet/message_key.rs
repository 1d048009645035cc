//! A message key, its AEAD key and nonce (SPEC §12.1), and the one AEAD operation it is used for.

use crate::suite::{AEAD_NONCE_LEN, AeadKey, CryptoError, HASH_LEN, Secret};

use super::kdf::hkdf_two_blocks;

/// `info` of the message-key derivation: the 26 ASCII bytes `e2e-ref/ratchet/message/v1`.
pub(super) const MESSAGE_INFO: &[u8] = b"e2e-ref/ratchet/message/v1";

/// An AEAD nonce derived from a message key. Secret like the key it comes with: it is never sent.
pub type MessageNonce = Secret<AEAD_NONCE_LEN>;

/// A message key `MK` (§12.1), made by [`super::ChainKey::step`].
///
/// It is used for exactly one AEAD operation, so [`Self::seal`] and [`Self::open`] consume it, and
/// the nonce derived from it is never reused under its key. A [`Secret`]: zeroized on drop,
/// redacted `Debug`, constant-time `==`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MessageKey(Secret<HASH_LEN>);

impl MessageKey {
    /// Wraps a message key (made by [`super::ChainKey::step`], or fixed by a test vector).
    #[must_use]
    pub const fn new(key: Secret<HASH_LEN>) -> Self {
        Self(key)
    }

    /// `message keys(MK)` (§12.1):
    /// `HKDF(salt = 32 zero bytes, ikm = MK, info = "e2e-ref/ratchet/message/v1", L = 44)`, whose
    /// bytes `0..32` are the AEAD key and bytes `32..44` the AEAD nonce.
    #[must_use]
    pub fn aead_key_and_nonce(&self) -> (AeadKey, MessageNonce) {
        let (key, rest) = hkdf_two_blocks(&[0u8; HASH_LEN], self.0.expose(), MESSAGE_INFO);
        let mut nonce = [0u8; AEAD_NONCE_LEN];
        nonce.copy_from_slice(&rest.expose()[..AEAD_NONCE_LEN]);
        (key, Secret::new(nonce))
    }

    /// `AEAD-Seal(key(MK), nonce(MK), ad, plaintext)`: `plaintext.len() + 16` bytes.
    #[must_use]
    pub fn seal(self, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let (key, nonce) = self.aead_key_and_nonce();
        key.seal(nonce.expose(), ad, plaintext)
    }

    /// [`Self::seal`] in place: encrypts `buffer[start..]` and appends the tag.
    pub fn seal_in_place(self, ad: &[u8], buffer: &mut Vec<u8>, start: usize) {
        let (key, nonce) = self.aead_key_and_nonce();
        key.seal_in_place(nonce.expose(), ad, buffer, start);
    }

    /// `AEAD-Open(key(MK), nonce(MK), ad, ciphertext)`.
    ///
    /// # Errors
    /// [`CryptoError::AeadTruncated`] for a ciphertext shorter than the 16-byte tag,
    /// [`CryptoError::AeadOpen`] if the tag does not verify. No plaintext is released on error.
    pub fn open(self, ad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (key, nonce) = self.aead_key_and_nonce();
        key.open(nonce.expose(), ad, ciphertext)
    }

    /// [`Self::open`] in place: `buffer[start..]` is the ciphertext and becomes the plaintext. On
    /// error `buffer` is unchanged.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_in_place(
        self,
        ad: &[u8],
        buffer: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), CryptoError> {
        let (key, nonce) = self.aead_key_and_nonce();
        key.open_in_place(nonce.expose(), ad, buffer, start)
    }

    /// The key bytes, for test-vector generation only.
    #[must_use]
    pub const fn expose(&self) -> &[u8; HASH_LEN] {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{AEAD_TAG_LEN, hkdf_sha256};

    fn mk(byte: u8) -> MessageKey {
        MessageKey::new(Secret::new([byte; 32]))
    }

    #[test]
    fn info_is_the_26_bytes_of_the_spec() {
        assert_eq!(MESSAGE_INFO.len(), 26);
    }

    #[test]
    fn key_and_nonce_are_44_bytes_of_hkdf_with_a_zero_salt() {
        let mut okm = [0u8; 44];
        hkdf_sha256(None, &[0x99; 32], b"e2e-ref/ratchet/message/v1", &mut okm).unwrap();
        let (key, nonce) = mk(0x99).aead_key_and_nonce();
        assert_eq!(key.expose(), &okm[..32]);
        assert_eq!(nonce.expose(), &okm[32..]);
    }

    #[test]
    fn seal_is_the_suite_aead_under_the_derived_key_and_nonce() {
        let (key, nonce) = mk(1).aead_key_and_nonce();
        let ct = mk(1).seal(b"ad", b"hello");
        assert_eq!(ct, key.seal(nonce.expose(), b"ad", b"hello"));
        assert_eq!(ct.len(), 5 + AEAD_TAG_LEN);
    }

    #[test]
    fn open_round_trips_and_rejects_every_mismatch() {
        let ct = mk(1).seal(b"ad", b"hello");
        assert_eq!(mk(1).open(b"ad", &ct).unwrap(), b"hello");
        assert_eq!(mk(2).open(b"ad", &ct), Err(CryptoError::AeadOpen));
        assert_eq!(mk(1).open(b"aD", &ct), Err(CryptoError::AeadOpen));
        assert_eq!(mk(1).open(b"ad", &ct[..ct.len() - 1]), Err(CryptoError::AeadOpen));
        assert_eq!(mk(1).open(b"ad", &ct[..15]), Err(CryptoError::AeadTruncated));
    }

    #[test]
    fn debug_is_redacted() {
        let shown = format!("{:?} {:?}", mk(0x41), mk(0x41).aead_key_and_nonce());
        assert!(!shown.contains("41"), "{shown}");
    }
}
