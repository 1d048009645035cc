//! Safety numbers (SPEC.md §14.1): a 60-digit number two users compare out of band to detect a
//! server that substituted keys.
//!
//! ```text
//! h = SHA-512(0x00 0x00 || IK || N)
//! repeat 5200 times:  h = SHA-512(h || IK)
//! fingerprint(IK, N) = for each of the first six 5-byte chunks c of h (bytes 0..30):
//!                        (c as a 40-bit big-endian integer) mod 100000, as 5 decimal digits
//!                      → 30 digits
//! safety number(A, B) = the two fingerprints concatenated, the lexicographically smaller first
//!                      → 60 digits, shown in 12 groups of 5
//! ```
//!
//! `IK` is the 64-byte `IK_dh || IK_sig` (§10.1); `N` is the name's bytes without their length
//! prefix. This is Signal's numeric fingerprint (version 0, 5200 iterations) with the name as the
//! stable identifier. The iterations make a targeted collision (a key whose fingerprint matches a
//! victim's) cost 5200 hashes per try; 30 digits of one side give about 99.7 bits.

use core::fmt;

use crate::suite::sha512;
use crate::wire::{IdentityPublic, Name};

/// Iterations of `h = SHA-512(h || IK)` (SPEC.md §14.1), as Signal's numeric fingerprint.
pub const FINGERPRINT_ITERATIONS: u32 = 5200;

/// The fingerprint format version prepended to the first hash input: `00 00`.
pub const FINGERPRINT_VERSION: [u8; 2] = [0x00, 0x00];

/// Digits in one party's fingerprint: six chunks of five.
pub const FINGERPRINT_DIGITS: usize = 30;

/// Digits in a safety number: two fingerprints.
pub const SAFETY_NUMBER_DIGITS: usize = 2 * FINGERPRINT_DIGITS;

/// Bytes of the hash read per 5-digit group: 40 bits, reduced mod 100000.
const CHUNK_LEN: usize = 5;

/// One party's 30-digit fingerprint (SPEC.md §14.1).
#[must_use]
pub fn fingerprint(identity: &IdentityPublic, name: &Name) -> String {
    // The model checker's and the fuzz targets' builds only: the same function, memoised on its
    // whole input (crate::memo).
    #[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
    {
        static FINGERPRINTS: crate::memo::Memo<(IdentityPublic, Name), String> =
            crate::memo::Memo::new();
        FINGERPRINTS.get_or((*identity, name.clone()), || compute_fingerprint(identity, name))
    }
    #[cfg(not(any(feature = "model-memo", feature = "fuzz-memo")))]
    compute_fingerprint(identity, name)
}

fn compute_fingerprint(identity: &IdentityPublic, name: &Name) -> String {
    let ik = identity.to_bytes();
    let mut h = sha512(&[&FINGERPRINT_VERSION, &ik, name.as_str().as_bytes()]);
    for _ in 0..FINGERPRINT_ITERATIONS {
        h = sha512(&[&h, &ik]);
    }
    let mut digits = String::with_capacity(FINGERPRINT_DIGITS);
    for chunk in h.chunks_exact(CHUNK_LEN).take(FINGERPRINT_DIGITS / 5) {
        let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        digits.push_str(&format!("{:05}", value % 100_000));
    }
    digits
}

/// The safety number of two parties (SPEC.md §14.1): both fingerprints, the lexicographically
/// smaller first, so that both sides compute the same 60 digits whatever their order.
///
/// `Display` shows 12 groups of 5 digits separated by single spaces.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct SafetyNumber {
    digits: String,
}

impl SafetyNumber {
    /// The safety number of `a` and `b`, each an identity with the name it is used under.
    /// Symmetric: `new(a, b) == new(b, a)`.
    #[must_use]
    pub fn new(a: (&IdentityPublic, &Name), b: (&IdentityPublic, &Name)) -> Self {
        let fa = fingerprint(a.0, a.1);
        let fb = if crate::flaws::on(crate::flaws::Flaw::SafetyNumberOneIdentity) {
            fingerprint(a.0, b.1) // seeded flaw hook: `a`'s identity under `b`'s name
        } else {
            fingerprint(b.0, b.1)
        };
        let (first, second) = if fa <= fb { (fa, fb) } else { (fb, fa) };
        Self { digits: first + &second }
    }

    /// The 60 digits, without spaces.
    #[must_use]
    pub fn digits(&self) -> &str {
        &self.digits
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digits are ASCII, so every 5-byte chunk is valid UTF-8.
        for (i, group) in self.digits.as_bytes().chunks(5).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(core::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{PrivateKey, PublicKey, SigningKey, VerifyingKey};

    fn identity(seed: u8) -> IdentityPublic {
        IdentityPublic {
            dh: PrivateKey::from_bytes([seed; 32]).public_key(),
            sign: SigningKey::from_seed([seed.wrapping_add(1); 32]).verifying_key(),
        }
    }

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn shape_and_symmetry() {
        let (a, b) = ((identity(1), name("alice")), (identity(2), name("bob")));
        let ab = SafetyNumber::new((&a.0, &a.1), (&b.0, &b.1));
        let ba = SafetyNumber::new((&b.0, &b.1), (&a.0, &a.1));
        assert_eq!(ab, ba);
        assert_eq!(ab.digits().len(), SAFETY_NUMBER_DIGITS);
        assert!(ab.digits().bytes().all(|c| c.is_ascii_digit()));

        let fa = fingerprint(&a.0, &a.1);
        let fb = fingerprint(&b.0, &b.1);
        assert_eq!(fa.len(), 30);
        let expected = if fa < fb { fa + &fb } else { fb + &fa };
        assert_eq!(ab.digits(), expected);

        let shown = ab.to_string();
        let groups: Vec<&str> = shown.split(' ').collect();
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|g| g.len() == 5));
        assert_eq!(groups.concat(), ab.digits());
    }

    /// `IK` with bit 0 of byte `i` flipped.
    fn flip(ik: &IdentityPublic, i: usize) -> IdentityPublic {
        let mut bytes = ik.to_bytes();
        bytes[i] ^= 0x01;
        let (dh, sign) = bytes.split_at(32);
        IdentityPublic {
            dh: PublicKey::from_bytes(dh.try_into().unwrap()),
            sign: VerifyingKey::from_bytes(sign.try_into().unwrap()),
        }
    }

    #[test]
    fn every_identity_byte_changes_the_fingerprint() {
        let (ik, n) = (identity(1), name("alice"));
        let base = fingerprint(&ik, &n);
        for i in 0..IdentityPublic::LEN {
            assert_ne!(fingerprint(&flip(&ik, i), &n), base, "byte {i} of IK");
        }
    }

    #[test]
    fn either_identity_or_name_changes_the_safety_number() {
        let (a, b) = ((identity(1), name("alice")), (identity(2), name("bob")));
        let base = SafetyNumber::new((&a.0, &a.1), (&b.0, &b.1));
        for i in [0, 31, 32, 63] {
            let changed = flip(&a.0, i);
            assert_ne!(SafetyNumber::new((&changed, &a.1), (&b.0, &b.1)), base, "byte {i} of IK_A");
            let changed = flip(&b.0, i);
            assert_ne!(SafetyNumber::new((&a.0, &a.1), (&changed, &b.1)), base, "byte {i} of IK_B");
        }
        assert_ne!(SafetyNumber::new((&a.0, &name("alicf")), (&b.0, &b.1)), base);
        assert_ne!(SafetyNumber::new((&a.0, &a.1), (&b.0, &name("bo"))), base);
        // Swapping which name goes with which identity changes it too.
        assert_ne!(SafetyNumber::new((&a.0, &b.1), (&b.0, &a.1)), base);
    }

    #[test]
    fn equal_fingerprints_still_give_sixty_digits() {
        let a = (identity(1), name("alice"));
        let n = SafetyNumber::new((&a.0, &a.1), (&a.0, &a.1));
        assert_eq!(n.digits(), fingerprint(&a.0, &a.1).repeat(2));
    }
}
