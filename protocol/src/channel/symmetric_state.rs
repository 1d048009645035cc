//! Noise `SymmetricState` (spec rev 34, §5.2) and the spec's `HKDF` (§4.3).

use zeroize::Zeroize;

use crate::suite::{AeadKey, HASH_LEN, Secret, hmac_sha256, sha256};

use super::ChannelError;
use super::cipher_state::CipherState;

/// A Noise chaining key `ck`.
type ChainingKey = Secret<HASH_LEN>;

/// Noise's `HKDF(chaining_key, input_key_material, 2)` (§4.3), written as the spec writes it, with
/// HMAC-SHA-256 directly:
///
/// ```text
/// temp_key = HMAC(chaining_key, input_key_material)
/// output1  = HMAC(temp_key, 0x01)
/// output2  = HMAC(temp_key, output1 || 0x02)
/// ```
///
/// This is RFC 5869 HKDF with `salt = chaining_key`, empty `info` and 64 bytes of output (a unit
/// test checks the two agree). Temporaries are zeroized.
fn hkdf2(chaining_key: &ChainingKey, ikm: &[u8]) -> (Secret<HASH_LEN>, AeadKey) {
    let mut temp_key = hmac_sha256(chaining_key.expose(), &[ikm]);
    let mut output1 = hmac_sha256(&temp_key, &[&[0x01]]);
    let mut output2 = hmac_sha256(&temp_key, &[&output1, &[0x02]]);
    let keys = (Secret::new(output1), Secret::new(output2));
    temp_key.zeroize();
    output1.zeroize();
    output2.zeroize();
    keys
}

/// `SymmetricState` (§5.2): chaining key `ck`, handshake hash `h`, and a [`CipherState`].
///
/// `h` is a hash of the public transcript (it binds, but does not hide), so it is a plain array;
/// `ck` and the cipher key are [`Secret`]s.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct SymmetricState {
    ck: ChainingKey,
    h: [u8; HASH_LEN],
    cipher: CipherState,
}

impl SymmetricState {
    /// `InitializeSymmetric(protocol_name)` (§5.2): `h` is the name padded with zeros to `HASHLEN`
    /// if it fits, else `HASH(name)`; `ck = h`; no cipher key.
    pub(crate) fn initialize(protocol_name: &[u8]) -> Self {
        let h = if protocol_name.len() <= HASH_LEN {
            let mut h = [0u8; HASH_LEN];
            let (prefix, _) = h.split_at_mut(protocol_name.len());
            prefix.copy_from_slice(protocol_name);
            h
        } else {
            sha256(&[protocol_name])
        };
        Self { ck: Secret::new(h), h, cipher: CipherState::empty() }
    }

    /// `MixKey(input_key_material)` (§5.2): `ck, temp_k = HKDF(ck, ikm, 2)`, then
    /// `InitializeKey(temp_k)`. No truncation: `HASHLEN` = 32 = the key length, which the types
    /// enforce (`hkdf2` returns `AeadKey`s).
    pub(crate) fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, temp_k) = hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.cipher = CipherState::new(temp_k);
    }

    /// `MixHash(data)` (§5.2): `h = HASH(h || data)`.
    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        self.h = sha256(&[&self.h, data]);
    }

    /// `EncryptAndHash(plaintext)` (§5.2): `ciphertext = EncryptWithAd(h, plaintext)`, then
    /// `MixHash(ciphertext)`.
    ///
    /// # Errors
    /// [`ChannelError::NonceExhausted`] (unreachable in a handshake, which uses nonces 0 and 1).
    pub(crate) fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let ciphertext = self.cipher.encrypt_with_ad(&self.h, plaintext)?;
        self.mix_hash(&ciphertext);
        Ok(ciphertext)
    }

    /// `DecryptAndHash(ciphertext)` (§5.2): `plaintext = DecryptWithAd(h, ciphertext)`, then
    /// `MixHash(ciphertext)`.
    ///
    /// # Errors
    /// [`ChannelError::Crypto`] if the AEAD fails; the state is then unchanged.
    pub(crate) fn decrypt_and_hash(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let plaintext = self.cipher.decrypt_with_ad(&self.h, ciphertext)?;
        self.mix_hash(ciphertext);
        Ok(plaintext)
    }

    /// `Split()` (§5.2): `temp_k1, temp_k2 = HKDF(ck, zerolen, 2)`, returned as two fresh
    /// `CipherState`s — the initiator sends with the first, the responder with the second — together
    /// with the final handshake hash `h` (`GetHandshakeHash()`, §5.2). Consumes the state, which
    /// zeroizes `ck` on drop.
    pub(crate) fn split(self) -> (CipherState, CipherState, [u8; HASH_LEN]) {
        let (k1, k2) = hkdf2(&self.ck, &[]);
        (CipherState::new(k1), CipherState::new(k2), self.h)
    }

    /// The current handshake hash `h`.
    #[cfg(test)]
    pub(crate) const fn h(&self) -> &[u8; HASH_LEN] {
        &self.h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::hkdf_sha256;

    #[test]
    fn hkdf2_equals_rfc5869_hkdf_with_ck_as_salt() {
        let ck = Secret::new([0x11; 32]);
        for ikm in [&b""[..], &[0x22; 32][..], &[0x33; 100][..]] {
            let (o1, o2) = hkdf2(&ck, ikm);
            let mut okm = [0u8; 64];
            hkdf_sha256(Some(ck.expose()), ikm, b"", &mut okm).unwrap();
            assert_eq!(o1.expose(), &okm[..32]);
            assert_eq!(o2.expose(), &okm[32..]);
        }
    }

    #[test]
    fn initialize_pads_short_names_and_hashes_long_ones() {
        let exact = SymmetricState::initialize(super::super::PROTOCOL_NAME.as_bytes());
        assert_eq!(exact.h(), super::super::PROTOCOL_NAME.as_bytes());
        assert_eq!(exact.ck.expose(), exact.h());

        let short = SymmetricState::initialize(b"Noise_NN");
        assert_eq!(&short.h()[..8], b"Noise_NN");
        assert_eq!(&short.h()[8..], &[0u8; 24]);

        let long_name = b"Noise_XXhfs+psk0_25519+Kyber1024_ChaChaPoly_BLAKE2s";
        assert_eq!(SymmetricState::initialize(long_name).h(), &sha256(&[long_name]));
    }

    #[test]
    fn encrypt_is_identity_before_mix_key_and_hashes_either_way() {
        let mut a = SymmetricState::initialize(b"x");
        let h0 = *a.h();
        assert_eq!(a.encrypt_and_hash(b"pt").unwrap(), b"pt");
        assert_eq!(a.h(), &sha256(&[&h0, b"pt"]));
    }

    #[test]
    fn failed_decrypt_and_hash_changes_nothing() {
        let mut a = SymmetricState::initialize(b"x");
        a.mix_key(b"ikm");
        let mut b = a.clone();
        let ct = a.encrypt_and_hash(b"secret").unwrap();
        let mut bad = ct.clone();
        bad[3] ^= 0x80;
        let before = b.clone();
        assert!(b.decrypt_and_hash(&bad).is_err());
        assert_eq!(b, before);
        assert_eq!(b.decrypt_and_hash(&ct).unwrap(), b"secret");
        assert_eq!(a, b);
    }
}
