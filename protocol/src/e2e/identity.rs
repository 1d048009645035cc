//! A client's long-term e2e identity (SPEC.md §10.1): an X25519 key pair for the handshake's
//! Diffie-Hellmans and an Ed25519 key pair that signs prekeys.
//!
//! ```text
//! IK = IK_dh (32) || IK_sig (32)          the public encoding, crate::wire::IdentityPublic
//! ```
//!
//! The Ed25519 half signs the X25519 half once (§10.1):
//!
//! ```text
//! id_sig = Ed25519-Sign(isk, "e2e-ref/identity/v1" || IK_dh)
//! ```
//!
//! A bundle binds the two halves through the signed prekey's signature (which covers `IK_dh`); a
//! prekey message carries `id_sig` for the same purpose, so a responder never accepts an identity
//! that pairs somebody's X25519 key with somebody else's signing key.
//!
//! The identity is independent of the channel's Noise static key (SPEC.md §4), which authenticates a
//! device to the server; the server never sees an e2e private key.

use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::state::{StateError, StateWriter, read_private_key};
use crate::suite::{PrivateKey, PublicKey, Signature, SigningKey};
use crate::wire::{IdentityPublic, Reader, SignedPrekeyPublic};

use super::signed::{identity_binding_message, signed_prekey_message};

/// An identity key pair `((ik, IK_dh), (isk, IK_sig))`.
///
/// Both halves are suite secrets: they zeroize on drop, compare in constant time, and print as
/// `[redacted]` (the derived `Debug` shows only the public keys).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct IdentityKeyPair {
    dh: PrivateKey,
    sign: SigningKey,
}

impl IdentityKeyPair {
    /// Draws a new identity: 32 bytes for the X25519 key `ik`, **then** 32 bytes for the Ed25519 seed
    /// `isk` (SPEC.md §10.1, §2.4). The order is part of the protocol: it fixes which RNG bytes
    /// become which key, so that seeded runs are reproducible by another implementation.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let dh = PrivateKey::generate(rng);
        let sign = SigningKey::generate(rng);
        Self { dh, sign }
    }

    /// Assembles an identity from its two private keys (for example from a test vector).
    #[must_use]
    pub const fn from_parts(dh: PrivateKey, sign: SigningKey) -> Self {
        Self { dh, sign }
    }

    /// The public identity `IK = IK_dh || IK_sig`.
    #[must_use]
    pub fn public(&self) -> IdentityPublic {
        IdentityPublic { dh: self.dh.public_key(), sign: self.sign.verifying_key() }
    }

    /// The X25519 private key `ik`, for the handshake's `DH1` (initiator) and `DH2` (responder).
    #[must_use]
    pub const fn dh(&self) -> &PrivateKey {
        &self.dh
    }

    /// The identity binding signature `id_sig` (SPEC.md §10.1): the signing half vouches for the
    /// X25519 half. Ed25519 signatures are deterministic, so this is the same every time.
    #[must_use]
    pub fn binding_signature(&self) -> Signature {
        self.sign.sign(&identity_binding_message(&self.dh.public_key()))
    }

    /// The persisted form (SPEC.md §18.3): `ik (32) || isk (32)`, the two private keys.
    pub(crate) fn write_state(&self, w: &mut StateWriter) {
        w.private_key(&self.dh);
        w.bytes(self.sign.expose());
    }

    /// Reads [`Self::write_state`]'s form. Every 64-byte string is an identity.
    ///
    /// # Errors
    /// Truncation.
    pub(crate) fn read_state(r: &mut Reader<'_>) -> Result<Self, StateError> {
        let dh = read_private_key(r)?;
        let mut seed: [u8; 32] = r.array()?;
        let sign = SigningKey::from_seed(seed);
        seed.zeroize();
        Ok(Self { dh, sign })
    }

    /// Signs a signed prekey (SPEC.md §10.2):
    /// `spk_sig = Ed25519-Sign(isk, "e2e-ref/signed-prekey/v1" || IK_dh || BE32(id) || key)`.
    ///
    /// The message is built by [`signed_prekey_message`], the same function the verifier uses.
    #[must_use]
    pub fn sign_prekey(&self, id: u32, key: PublicKey) -> SignedPrekeyPublic {
        let message = signed_prekey_message(&self.dh.public_key(), id, &key);
        SignedPrekeyPublic { id, key, signature: self.sign.sign(&message) }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn generate_draws_the_x25519_key_first_then_the_ed25519_seed() {
        let identity = IdentityKeyPair::generate(&mut ChaCha20Rng::seed_from_u64(7));
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut ik = [0u8; 32];
        let mut isk = [0u8; 32];
        rng.fill_bytes(&mut ik);
        rng.fill_bytes(&mut isk);
        let expected =
            IdentityKeyPair::from_parts(PrivateKey::from_bytes(ik), SigningKey::from_seed(isk));
        assert_eq!(identity, expected);
        assert_eq!(identity.dh().expose(), &ik);
        assert_eq!(identity.public().dh, PrivateKey::from_bytes(ik).public_key());
        assert_eq!(identity.public().sign, SigningKey::from_seed(isk).verifying_key());
    }

    #[test]
    fn prekey_signature_verifies_over_the_spec_message() {
        let identity = IdentityKeyPair::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let key = PrivateKey::from_bytes([3u8; 32]).public_key();
        let spk = identity.sign_prekey(42, key);
        assert_eq!((spk.id, spk.key), (42, key));

        // The message, spelled out byte by byte from SPEC.md §10.2.
        let mut message = b"e2e-ref/signed-prekey/v1".to_vec();
        assert_eq!(message.len(), 24);
        message.extend_from_slice(identity.public().dh.as_bytes());
        message.extend_from_slice(&[0, 0, 0, 42]);
        message.extend_from_slice(key.as_bytes());
        assert_eq!(identity.public().sign.verify(&message, &spk.signature), Ok(()));
    }

    #[test]
    fn debug_hides_both_private_keys() {
        let identity = IdentityKeyPair::from_parts(
            PrivateKey::from_bytes([0x5a; 32]),
            SigningKey::from_seed([0x6b; 32]),
        );
        let shown = format!("{identity:?}");
        assert!(!shown.contains("5a5a5a") && !shown.contains("6b6b6b"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
