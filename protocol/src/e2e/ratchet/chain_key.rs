//! A chain key and `KDF_CK` (SPEC §12.1).

use zeroize::Zeroize;

use crate::suite::{HASH_LEN, HmacKey, Secret};

use super::message_key::MessageKey;

/// `KDF_CK`'s HMAC input for the message key: the single byte `0x01`.
const MESSAGE_KEY_INPUT: u8 = 0x01;
/// `KDF_CK`'s HMAC input for the next chain key: the single byte `0x02`.
const CHAIN_KEY_INPUT: u8 = 0x02;

/// A sending or receiving chain key `CKs` / `CKr` (§12.2). A [`Secret`]: zeroized on drop,
/// redacted `Debug`, constant-time `==`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ChainKey(Secret<HASH_LEN>);

impl ChainKey {
    /// Wraps a chain key (made by [`super::RootKey::kdf_rk`], or fixed by a test vector).
    #[must_use]
    pub const fn new(key: Secret<HASH_LEN>) -> Self {
        Self(key)
    }

    /// `KDF_CK(ck)` (§12.1): the message key `MK = HMAC(ck, 0x01)` and the next chain key
    /// `HMAC(ck, 0x02)`. The caller replaces `self` with the second and uses the first once.
    #[must_use]
    pub fn step(&self) -> (MessageKey, Self) {
        let key = HmacKey::new(self.0.expose());
        let mut mk = key.mac(&[&[MESSAGE_KEY_INPUT]]);
        let mut ck = key.mac(&[&[CHAIN_KEY_INPUT]]);
        let out = (MessageKey::new(Secret::new(mk)), Self(Secret::new(ck)));
        mk.zeroize();
        ck.zeroize();
        out
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
    use crate::suite::hmac_sha256;

    #[test]
    fn step_is_hmac_with_single_byte_inputs() {
        let ck = ChainKey::new(Secret::new([0x07; 32]));
        let (mk, next) = ck.step();
        assert_eq!(mk.expose(), &hmac_sha256(&[0x07; 32], &[&[0x01]]));
        assert_eq!(next.expose(), &hmac_sha256(&[0x07; 32], &[&[0x02]]));
        assert_ne!(mk.expose(), next.expose());
    }

    #[test]
    fn the_chain_never_repeats_a_key_in_a_short_walk() {
        let mut ck = ChainKey::new(Secret::new([0x07; 32]));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let (mk, next) = ck.step();
            assert!(seen.insert(*mk.expose()));
            assert!(seen.insert(*next.expose()));
            ck = next;
        }
    }
}
