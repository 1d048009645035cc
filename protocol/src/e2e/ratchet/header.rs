//! The message header (SPEC §12.3, §13): `DHs (32) || BE32(PN) || BE32(N)`.

use crate::suite::{DH_LEN, PublicKey};

/// Length of an encoded [`Header`]: 32 + 4 + 4 bytes.
pub const HEADER_LEN: usize = DH_LEN + 4 + 4;

/// The clear-text header of a ratchet message. Public data: it travels unencrypted, and is
/// authenticated as part of the AEAD's associated data `AD || header` (§12.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Header {
    /// The sender's current ratchet public key `DHs`.
    pub dh: PublicKey,
    /// `PN`: the number of messages in the sender's previous sending chain.
    pub pn: u32,
    /// `N`: this message's index in the sender's current sending chain.
    pub n: u32,
}

impl Header {
    /// `dh (32) || BE32(pn) || BE32(n)`.
    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (dh, counters) = out.split_at_mut(DH_LEN);
        let (pn, n) = counters.split_at_mut(4);
        dh.copy_from_slice(self.dh.as_bytes());
        pn.copy_from_slice(&self.pn.to_be_bytes());
        n.copy_from_slice(&self.n.to_be_bytes());
        out
    }

    /// The inverse of [`Self::encode`]. Total: every 40-byte string is a header (a low-order `dh`
    /// is caught by the DH it is used in, §2.1).
    #[must_use]
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let (dh, counters) = bytes.split_at(DH_LEN);
        let (pn, n) = counters.split_at(4);
        let mut key = [0u8; DH_LEN];
        key.copy_from_slice(dh);
        let mut pn_bytes = [0u8; 4];
        pn_bytes.copy_from_slice(pn);
        let mut n_bytes = [0u8; 4];
        n_bytes.copy_from_slice(n);
        Self {
            dh: PublicKey::from_bytes(key),
            pn: u32::from_be_bytes(pn_bytes),
            n: u32::from_be_bytes(n_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_key_then_big_endian_counters() {
        let h = Header { dh: PublicKey::from_bytes([0xab; 32]), pn: 0x0102_0304, n: 0xa0b0_c0d0 };
        let bytes = h.encode();
        assert_eq!(HEADER_LEN, 40);
        assert_eq!(&bytes[..32], &[0xab; 32]);
        assert_eq!(&bytes[32..], &[1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0]);
        assert_eq!(Header::decode(&bytes), h);
    }

    proptest! {
        // Failures are reported, not persisted into the source tree.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn decode_inverts_encode(dh in any::<[u8; 32]>(), pn in any::<u32>(), n in any::<u32>()) {
            let h = Header { dh: PublicKey::from_bytes(dh), pn, n };
            prop_assert_eq!(Header::decode(&h.encode()), h);
        }

        #[test]
        fn encode_inverts_decode(bytes in any::<[u8; 40]>()) {
            prop_assert_eq!(Header::decode(&bytes).encode(), bytes);
        }
    }
}
