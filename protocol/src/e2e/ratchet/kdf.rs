//! HKDF-SHA-256 (RFC 5869) with exactly two output blocks: the shape of every KDF of SPEC §12.1.
//!
//! `KDF_RK` asks for `L = 64` bytes and the message-key derivation for `L = 44`; both are at most
//! two SHA-256 blocks. Written out with the suite's HMAC, as RFC 5869 §2.2–2.3 defines it, the
//! function is total: the suite's [`crate::suite::hkdf_sha256`] returns a `Result` for outputs over
//! `255 × 32` bytes, an error these fixed lengths can never raise and that callers should not have
//! to carry. A unit test checks this function against the suite's HKDF and RFC 5869's test vectors.

use zeroize::Zeroize;

use crate::suite::{HASH_LEN, HmacKey, Secret, hmac_sha256};

/// `HKDF(salt, ikm, info, L = 64)`, returned as its two 32-byte blocks `(T(1), T(2))`:
///
/// ```text
/// PRK  = HMAC(salt, ikm)                  extract (a zero-length salt is 32 zero bytes to HMAC)
/// T(1) = HMAC(PRK, info || 0x01)          expand
/// T(2) = HMAC(PRK, T(1) || info || 0x02)
/// ```
///
/// `HKDF(…, L)` for any `L ≤ 64` is the first `L` bytes of `T(1) || T(2)`. `PRK` is zeroized.
pub(super) fn hkdf_two_blocks(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
) -> (Secret<HASH_LEN>, Secret<HASH_LEN>) {
    let mut prk = hmac_sha256(salt, &[ikm]);
    let expand = HmacKey::new(&prk);
    let mut t1 = expand.mac(&[info, &[0x01]]);
    let mut t2 = expand.mac(&[&t1, info, &[0x02]]);
    let blocks = (Secret::new(t1), Secret::new(t2));
    prk.zeroize();
    t1.zeroize();
    t2.zeroize();
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::hkdf_sha256;

    fn joined(blocks: &(Secret<32>, Secret<32>)) -> Vec<u8> {
        [blocks.0.expose().as_slice(), blocks.1.expose().as_slice()].concat()
    }

    #[test]
    fn equals_the_suite_hkdf_for_every_length_up_to_64() {
        for (salt, ikm, info) in [
            (&[0x11u8; 32][..], &[0x22u8; 32][..], &b"e2e-ref/ratchet/root/v1"[..]),
            (&[0u8; 32][..], &[0x33u8; 32][..], &b"e2e-ref/ratchet/message/v1"[..]),
            (&[][..], &[][..], &[][..]),
        ] {
            let ours = joined(&hkdf_two_blocks(salt, ikm, info));
            for len in 1..=64 {
                let mut okm = vec![0u8; len];
                hkdf_sha256(Some(salt), ikm, info, &mut okm).unwrap();
                assert_eq!(okm, ours[..len], "L = {len}");
            }
        }
    }

    #[test]
    fn zero_salt_is_the_absent_salt() {
        let mut okm = [0u8; 64];
        hkdf_sha256(None, b"ikm", b"info", &mut okm).unwrap();
        assert_eq!(joined(&hkdf_two_blocks(&[0u8; 32], b"ikm", b"info")), okm);
    }

    #[test]
    fn rfc5869_test_cases_1_and_3() {
        // A.1: basic test case with SHA-256, L = 42.
        let ikm = [0x0bu8; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let okm =
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
        assert_eq!(hex::encode(&joined(&hkdf_two_blocks(&salt, &ikm, &info))[..42]), okm);

        // A.3: zero-length salt and info, L = 42.
        let okm =
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8";
        assert_eq!(hex::encode(&joined(&hkdf_two_blocks(&[], &ikm, &[]))[..42]), okm);
    }
}
