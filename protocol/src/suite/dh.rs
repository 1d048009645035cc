//! X25519 key agreement (RFC 7748) with the contributory-behaviour check.

use core::fmt;
use rand_core::CryptoRng;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::backend::{Active, Backend};
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
    /// cofactor 8 — the definition of SPEC §10.3 step 2 is `X25519(k, key) == 0`.
    ///
    /// Tested without a scalar multiplication, as libsodium's `has_small_order` does: the key,
    /// with bit 255 cleared (X25519 ignores it, RFC 7748 §5), is compared with each of the seven
    /// encodings of small-order points that SPEC §10.3 lists. The comparisons are constant time
    /// and all run (no early exit); unit tests check the result against `X25519(k, key) == 0`
    /// computed by x25519-dalek, for every listed encoding, their neighbours and random keys.
    #[must_use]
    pub fn is_low_order(&self) -> bool {
        // The model checker's and the fuzz targets' builds only: the same answer, memoised on the
        // 32 bytes (crate::memo). Under the fuzzers' instrumentation the 224 constant-time byte
        // comparisons cost each a call into libFuzzer, and bundle_parse checks up to 255 keys per
        // upload. (A memo is not constant time; no build that handles real keys has one.)
        #[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
        {
            static LOW_ORDER: crate::memo::Memo<[u8; DH_LEN], bool> = crate::memo::Memo::new();
            LOW_ORDER.get_or(self.0, || self.compute_is_low_order())
        }
        #[cfg(not(any(feature = "model-memo", feature = "fuzz-memo")))]
        self.compute_is_low_order()
    }

    fn compute_is_low_order(&self) -> bool {
        let mut key = self.0;
        key[DH_LEN - 1] &= 0x7f;
        let mut found = Choice::from(0);
        for encoding in &LOW_ORDER_ENCODINGS {
            found |= key.ct_eq(encoding);
        }
        bool::from(found)
    }
}

/// The encodings, bit 255 clear, of every point whose X25519 with any clamped scalar is zero.
///
/// On Curve25519 (group `Z/8 × Z/ℓ`) and its twist (`Z/4 × Z/ℓ'`), these are the points of order
/// dividing 8: the u-coordinates `0` (order 2), `1` (order 4), `p − 1` (order 4 on the twist) and
/// the two u-coordinates of the four order-8 points; plus the only other encodings below `2^255`
/// of the same values, `p` (= 0) and `p + 1` (= 1) (`p − 1 + p` and the order-8 values plus `p`
/// are at least `2^255`). Little-endian, `p = 2^255 − 19`. The tests check each against the
/// definition, and SPEC §10.3 step 2 lists them.
const LOW_ORDER_ENCODINGS: [[u8; DH_LEN]; 7] = [
    // 0
    [0; DH_LEN],
    // 1
    le_u8(1),
    // u of the order-8 points P, −P (u(2P) = 1)
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    // u of the other two order-8 points (u(2P) = 1)
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    // p − 1
    near_p(0xec),
    // p (non-canonical 0)
    near_p(0xed),
    // p + 1 (non-canonical 1)
    near_p(0xee),
];

/// The little-endian encoding of the small integer `v`.
const fn le_u8(v: u8) -> [u8; DH_LEN] {
    let mut out = [0; DH_LEN];
    out[0] = v;
    out
}

/// `0x7fff…ff` with the low byte `low`, little-endian: `p = 2^255 − 19` for `low = 0xed`.
const fn near_p(low: u8) -> [u8; DH_LEN] {
    let mut out = [0xff; DH_LEN];
    out[0] = low;
    out[DH_LEN - 1] = 0x7f;
    out
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", super::Hex(&self.0))
    }
}

/// An X25519 private key, with its public key cached.
///
/// The private scalar is held as the 32 bytes it was created from (clamping happens inside each DH,
/// as RFC 7748 specifies), so a key generated from an RNG is exactly the 32 bytes the RNG produced.
/// The backend may keep a key object of its own next to them (`Backend::DhObject`: AWS-LC's key
/// object on the aws-lc backend, nothing on the default one), built once here so that a DH is one
/// scalar multiplication; it is a function of the bytes, takes no part in `==` or `Hash`, and is
/// released when the key is zeroized or dropped.
#[derive(Clone, PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey {
    secret: Secret<DH_LEN>,
    #[zeroize(skip)]
    public: PublicKey,
    prepared: <Active as Backend>::DhObject,
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
        let (prepared, public) = Active::dh_object(&bytes);
        Self { secret: Secret::new(bytes), public: PublicKey(public), prepared }
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
        let shared = Active::x25519_with(&self.prepared, self.secret.expose(), &their_public.0);
        if shared == Err(CryptoError::NonContributory)
            && crate::flaws::on(crate::flaws::Flaw::AcceptLowOrderPoint)
        {
            return Ok(Secret::new([0; DH_LEN]));
        } // seeded flaw hook: the all-zero output X25519 gives for a small-order point
        shared
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
    use proptest::prelude::*;

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

    /// The seven encodings as SPEC §10.3 step 2 lists them (little-endian hex).
    const SPEC_LOW_ORDER_HEX: [&str; 7] = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];

    /// Clamped or not, these are scalars X25519 clamps: each one decides the definition alone
    /// (a clamped scalar is `8m` with `0 < m < ℓ, ℓ'`), so the oracle also checks they agree.
    const ORACLE_SCALARS: [[u8; 32]; 4] = [[1; 32], [0x5a; 32], [0xff; 32], [0x80; 32]];

    /// The definition (SPEC §2.1, §10.3 step 2): `X25519(k, key) == 0`, by x25519-dalek directly.
    fn oracle(key: [u8; 32]) -> bool {
        let zero: Vec<bool> =
            ORACLE_SCALARS.iter().map(|k| x25519_dalek::x25519(*k, key) == [0u8; 32]).collect();
        assert!(zero.iter().all(|z| *z == zero[0]), "scalars disagree on {}", hex::encode(key));
        zero[0]
    }

    fn with_top_bit(mut key: [u8; 32], set: bool) -> [u8; 32] {
        key[31] = if set { key[31] | 0x80 } else { key[31] & 0x7f };
        key
    }

    /// `key + delta` as a little-endian 256-bit integer, wrapping.
    fn add_le(key: [u8; 32], delta: i8) -> [u8; 32] {
        // `delta` sign-extended to 256 bits, two's complement.
        let mut addend = [if delta < 0 { 0xff } else { 0 }; 32];
        addend[0] = delta.to_le_bytes()[0];
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for ((o, k), a) in out.iter_mut().zip(key).zip(addend) {
            let sum = u16::from(k) + u16::from(a) + carry;
            *o = sum.to_le_bytes()[0];
            carry = sum >> 8;
        }
        out
    }

    #[test]
    fn the_list_is_the_specs() {
        let spec: Vec<[u8; 32]> = SPEC_LOW_ORDER_HEX.iter().map(|h| hex_32(h)).collect();
        assert_eq!(spec, LOW_ORDER_ENCODINGS);
        let distinct: std::collections::BTreeSet<_> = spec.iter().collect();
        assert_eq!(distinct.len(), 7);
    }

    #[test]
    fn every_listed_encoding_is_low_order_by_definition_with_either_top_bit() {
        for encoding in LOW_ORDER_ENCODINGS {
            for set in [false, true] {
                let key = with_top_bit(encoding, set);
                for k in ORACLE_SCALARS {
                    assert_eq!(x25519_dalek::x25519(k, key), [0u8; 32], "{}", hex::encode(key));
                }
                assert!(PublicKey::from_bytes(key).is_low_order(), "{}", hex::encode(key));
                let dh =
                    PrivateKey::from_bytes([3; 32]).diffie_hellman(&PublicKey::from_bytes(key));
                assert_eq!(dh, Err(CryptoError::NonContributory));
            }
        }
    }

    #[test]
    fn neighbours_of_the_listed_encodings_agree_with_the_definition() {
        for encoding in LOW_ORDER_ENCODINGS {
            for delta in [-2, -1, 0, 1, 2] {
                for set in [false, true] {
                    let key = with_top_bit(add_le(encoding, delta), set);
                    let ours = PublicKey::from_bytes(key).is_low_order();
                    assert_eq!(ours, oracle(key), "{}", hex::encode(key));
                }
            }
        }
    }

    #[test]
    fn add_le_wraps_and_carries() {
        assert_eq!(add_le([0; 32], -1), [0xff; 32]);
        assert_eq!(add_le([0xff; 32], 1), [0; 32]);
        let mut x = [0u8; 32];
        x[1] = 1;
        assert_eq!(add_le(x, -1)[..2], [0xff, 0]);
        assert_eq!(add_le(add_le(x, -2), 2), x);
    }

    proptest! {
        // Failures are reported, not persisted into the source tree.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_keys_agree_with_the_definition(key in any::<[u8; 32]>()) {
            prop_assert_eq!(PublicKey::from_bytes(key).is_low_order(), oracle(key));
        }

        #[test]
        fn keys_near_the_listed_encodings_agree_with_the_definition(
            index in 0..LOW_ORDER_ENCODINGS.len(),
            delta in -3i8..=3,
            set in any::<bool>(),
            flip in any::<Option<(usize, u8)>>(),
        ) {
            let mut key = with_top_bit(add_le(LOW_ORDER_ENCODINGS[index], delta), set);
            if let Some((at, bits)) = flip {
                key[at % 32] ^= bits;
            }
            prop_assert_eq!(PublicKey::from_bytes(key).is_low_order(), oracle(key));
        }
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
