//! The default backend: x25519-dalek and RustCrypto's chacha20poly1305.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use super::Backend;
use crate::suite::{
    AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, CryptoError, DH_LEN, Secret, SharedSecret,
};

/// x25519-dalek and RustCrypto's chacha20poly1305. It keeps no key objects: x25519-dalek works
/// from the 32 bytes directly (a copy per DH), and setting up a RustCrypto ChaCha20-Poly1305 key
/// is a copy of its 32 bytes.
pub struct Dalek;

impl Backend for Dalek {
    type DhObject = ();
    type AeadObject = ();

    fn aead_object(_key: &[u8; AEAD_KEY_LEN]) {}

    fn x25519_public_key(secret: &[u8; DH_LEN]) -> [u8; DH_LEN] {
        let dalek = x25519_dalek::StaticSecret::from(*secret);
        x25519_dalek::PublicKey::from(&dalek).to_bytes()
    }

    /// The all-zero check is x25519-dalek's `was_contributory`, a constant-time comparison.
    fn x25519(
        secret: &[u8; DH_LEN],
        their_public: &[u8; DH_LEN],
    ) -> Result<SharedSecret, CryptoError> {
        // `StaticSecret` zeroizes on drop (feature `zeroize`), as does the `SharedSecret` it
        // returns.
        let dalek = x25519_dalek::StaticSecret::from(*secret);
        let shared = dalek.diffie_hellman(&x25519_dalek::PublicKey::from(*their_public));
        if !shared.was_contributory() {
            return Err(CryptoError::NonContributory);
        }
        Ok(Secret::new(shared.to_bytes()))
    }

    /// On a refusal `body` is unchanged.
    fn aead_seal(
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

    /// The tag is verified before anything is decrypted, so on error `body` is exactly as it
    /// was. That is how `chacha20poly1305` 0.11 decrypts, not a promise of its trait; the
    /// Wycheproof tests check it for every case, so a version that decrypted first would fail
    /// there.
    fn aead_open(
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

    /// Nothing is decrypted before the tag verifies, so on error `out` is as it was.
    fn aead_open_into(
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
}
