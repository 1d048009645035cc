//! The root key and `KDF_RK` (SPEC §12.1).

use crate::suite::{DH_LEN, HASH_LEN, Secret, SharedSecret};

use super::chain_key::ChainKey;
use super::kdf::hkdf_two_blocks;

/// `info` of `KDF_RK`: the 23 ASCII bytes `e2e-ref/ratchet/root/v1`.
pub(super) const ROOT_INFO: &[u8] = b"e2e-ref/ratchet/root/v1";

/// The root key `RK` (§12.2): the initial `SK` of the handshake, then the output of each DH ratchet
/// step. A [`Secret`]: zeroized on drop, redacted `Debug`, constant-time `==`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RootKey(Secret<HASH_LEN>);

impl RootKey {
    /// Wraps a root key; a session's first is the handshake's `SK` (§12.2).
    #[must_use]
    pub const fn new(key: Secret<HASH_LEN>) -> Self {
        Self(key)
    }

    /// `KDF_RK(rk, dh_out)` (§12.1):
    /// `HKDF(salt = rk, ikm = dh_out, info = "e2e-ref/ratchet/root/v1", L = 64)`, whose bytes
    /// `0..32` are the new root key and bytes `32..64` a new chain key (sending or receiving).
    #[must_use]
    pub fn kdf_rk(&self, dh_out: &SharedSecret) -> (Self, ChainKey) {
        let (root, chain) = hkdf_two_blocks(self.0.expose(), dh_out.expose(), ROOT_INFO);
        (Self(root), ChainKey::new(chain))
    }

    /// The key bytes, for test-vector generation only.
    #[must_use]
    pub const fn expose(&self) -> &[u8; DH_LEN] {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::hkdf_sha256;

    #[test]
    fn info_is_the_23_bytes_of_the_spec() {
        assert_eq!(ROOT_INFO.len(), 23);
    }

    #[test]
    fn kdf_rk_splits_64_bytes_of_hkdf_with_the_root_key_as_salt() {
        let rk = RootKey::new(Secret::new([0x5a; 32]));
        let dh_out = Secret::new([0xc3; 32]);
        let mut okm = [0u8; 64];
        hkdf_sha256(Some(&[0x5a; 32]), &[0xc3; 32], b"e2e-ref/ratchet/root/v1", &mut okm).unwrap();

        let (next, chain) = rk.kdf_rk(&dh_out);
        assert_eq!(next.expose(), &okm[..32]);
        assert_eq!(chain.expose(), &okm[32..]);
        // Deterministic, and both inputs matter.
        assert_eq!(rk.kdf_rk(&dh_out), (next.clone(), chain.clone()));
        assert_ne!(rk.kdf_rk(&Secret::new([0xc4; 32])).0, next);
        assert_ne!(RootKey::new(Secret::new([0x5b; 32])).kdf_rk(&dh_out).1, chain);
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", RootKey::new(Secret::new([0x41; 32]))), "RootKey([redacted])");
    }
}
