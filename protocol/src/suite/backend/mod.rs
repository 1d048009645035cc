//! The implementations of the primitives that differ between backends, chosen at compile time.
//!
//! [`Backend`] declares the small set of operations over fixed-size byte arrays that a backend
//! provides, with their contract, once: X25519 (public key and DH with the contributory check)
//! and ChaCha20-Poly1305 (seal in place, open in place, into another buffer or into a new one,
//! detached tag), each per call from the key's bytes and with a key object the backend may keep
//! with a key that serves many calls. Each backend is a unit type that implements it:
//!
//! * [`dalek::Dalek`], the default: x25519-dalek and RustCrypto's chacha20poly1305. It keeps no
//!   key objects (`()`), so the trait's provided methods serve it.
//! * `aws_lc::AwsLc`, with the feature `backend-aws-lc`: aws-lc-rs (AWS-LC), whose x86-64 X25519
//!   is s2n-bignum's formally verified assembly and whose ChaCha20-Poly1305 is vectorized
//!   assembly. It keeps AWS-LC's key objects.
//! * `memoized::Memoized`, the model checker's and the fuzz targets' build only: one of the two
//!   behind memos of its X25519 results (below).
//!
//! [`Active`] names the compiled one, a type alias: the suite's types ([`super::PrivateKey`],
//! [`super::AeadKey`], [`super::KeptAeadKey`]) hold the secrets in their zeroizing newtypes and
//! the backend's key objects beside them, and call `Active`'s functions with borrowed bytes —
//! static calls, no dynamic dispatch. Nothing above `suite` sees which backend runs, and both
//! give the same bytes for every input (tests/suite_backends.rs compares them, through the trait,
//! on every Wycheproof case and on random inputs).
//!
//! The other primitives have one implementation for both backends. Ed25519 verification stays
//! with ed25519-dalek, whose `verify_strict` implements SPEC §10.3's strict rules: AWS-LC's
//! `ED25519_verify` gives the same verdicts on every Wycheproof case but checks only the
//! cofactorless equation and a canonical `S`, so it accepts a signature under a key of small order
//! and one whose `R` has small order (tests/suite_backends.rs crafts both); using it would mean
//! decoding the key and `R` around it, and it was not clearly faster here anyway. SHA-256/512,
//! HMAC and HKDF stay with RustCrypto: at the 32- to 64-byte inputs the protocols hash, aws-lc-rs's
//! HMAC and HKDF were slower (a key object and a foreign call per operation) and its SHA-256 within
//! the noise. README "Benchmarks" has the figures.
//!
//! With `backend-aws-lc` the dalek backend is compiled too (it is small, its crates are
//! dependencies either way, and AWS-LC's falls back on it for a public key it cannot compute), so
//! that one test binary can compare the two: both are reachable, with the trait, hidden from the
//! documentation, through `suite::backends`.

use core::hash::Hash;

use zeroize::Zeroize;

use super::{AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, CryptoError, DH_LEN, SharedSecret};

pub mod dalek;

#[cfg(feature = "backend-aws-lc")]
pub mod aws_lc;

// The model checker's build (feature `model-memo`, declared by e2e-protocol-flawed alone) and the
// fuzz targets' (feature `fuzz-memo`, enabled by fuzz/Cargo.toml alone): the same backend behind
// memos of its deterministic results (crate::memo, spec/MODEL.md §8, README "Fuzzing").
#[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
pub(crate) mod memoized;

/// The backend this build runs.
#[cfg(all(
    not(feature = "backend-aws-lc"),
    not(any(feature = "model-memo", feature = "fuzz-memo"))
))]
pub(crate) type Active = dalek::Dalek;

/// The backend this build runs.
#[cfg(all(feature = "backend-aws-lc", not(any(feature = "model-memo", feature = "fuzz-memo"))))]
pub(crate) type Active = aws_lc::AwsLc;

/// The backend this build runs.
#[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
pub(crate) type Active = memoized::Memoized;

/// X25519 and ChaCha20-Poly1305, as a suite backend provides them: the same bytes and the same
/// errors from every backend for every input (tests/suite_backends.rs).
///
/// Every operation comes twice: from the key's bytes alone, for a key used once (a ratchet
/// message key), and with a key object ([`Self::DhObject`], [`Self::AeadObject`]) that the suite
/// builds once for a key that serves many calls and keeps beside the key's bytes (an X25519
/// private key, a channel's AEAD key), so that a backend whose keys need setting up (AWS-LC
/// allocates and prepares one) does that once. A key object is a function of the key's bytes:
/// the `*_with` operations take both, the object only ever made for those bytes, and give what
/// the per-call operation gives on the bytes. The provided methods are for a backend that keeps
/// nothing: the object is [`Default`] and the `*_with` operations ignore it. (`aead_object` is not
/// provided: for such a backend it is an empty function, where a provided `Default::default()`
/// would leave cargo-mutants a mutant no test can tell from it.)
///
/// The operations are associated functions, not methods: a backend is a unit type, named at
/// compile time (`Active`).
pub trait Backend {
    /// What the backend keeps with an X25519 private key (`suite::PrivateKey`). It takes no part
    /// in equality or hashing beyond its key's bytes (two keys are equal exactly when their
    /// bytes are), and [`Zeroize`] releases it; [`Default`] is a valid object that keeps nothing
    /// (then each DH works from the bytes alone).
    type DhObject: Clone + Default + Eq + Hash + Zeroize;

    /// What the backend keeps with a ChaCha20-Poly1305 key that serves many messages
    /// (`suite::KeptAeadKey`), under the same rules as [`Self::DhObject`].
    type AeadObject: Clone + Default + Eq + Hash + Zeroize;

    /// `X25519(secret, 9)`: the public key of the 32 private bytes (clamped inside, RFC 7748 §5).
    #[must_use]
    fn x25519_public_key(secret: &[u8; DH_LEN]) -> [u8; DH_LEN];

    /// `X25519(secret, their_public)`, refused if the result is all zero (a constant-time
    /// check). Bit 255 of `their_public` is ignored and the scalar clamped, as RFC 7748 says.
    ///
    /// # Errors
    /// [`CryptoError::NonContributory`] if the output is all zero, which happens exactly when
    /// `their_public` has small order.
    fn x25519(
        secret: &[u8; DH_LEN],
        their_public: &[u8; DH_LEN],
    ) -> Result<SharedSecret, CryptoError>;

    /// The key object for `secret` and its public key `X25519(secret, 9)`. Total: a backend that
    /// cannot build an object returns the [`Default`] one, which keeps nothing.
    #[must_use]
    fn dh_object(secret: &[u8; DH_LEN]) -> (Self::DhObject, [u8; DH_LEN]) {
        (Self::DhObject::default(), Self::x25519_public_key(secret))
    }

    /// [`Self::x25519`] with the key object [`Self::dh_object`] made for `secret` (or the
    /// [`Default`] one).
    ///
    /// # Errors
    /// As [`Self::x25519`].
    fn x25519_with(
        _object: &Self::DhObject,
        secret: &[u8; DH_LEN],
        their_public: &[u8; DH_LEN],
    ) -> Result<SharedSecret, CryptoError> {
        Self::x25519(secret, their_public)
    }

    /// Encrypts `body` in place and returns the tag; `None` only for a body over ChaCha20's
    /// 2^38-byte limit (or a backend's failure to allocate): then `body` holds no plaintext but
    /// is otherwise unspecified, and the caller discards it.
    #[must_use]
    fn aead_seal(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; AEAD_TAG_LEN]>;

    /// Verifies `tag` over `ad` and `body`, then decrypts `body` in place. On error `body` is
    /// exactly as it was, whatever the backend does inside: a caller may try another key on it
    /// (the e2e ratchet tries an envelope in several sessions).
    ///
    /// # Errors
    /// [`CryptoError::AeadOpen`] if the tag does not verify.
    fn aead_open(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), CryptoError>;

    /// [`Self::aead_open`] from one buffer into another: verifies `tag` over `ad` and
    /// `ciphertext` and decrypts `ciphertext` into `out`, which must be as long. `ciphertext` is
    /// only read, so no backend needs to keep a copy of it to restore.
    ///
    /// # Errors
    /// [`CryptoError::AeadOpen`] if the tag does not verify or the lengths differ; `out` then
    /// holds no plaintext but is otherwise unspecified.
    fn aead_open_into(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
        out: &mut [u8],
    ) -> Result<(), CryptoError>;

    /// [`Self::aead_open`] out of place: verifies `tag` over `ad` and `ciphertext`, then returns
    /// the plaintext in a new buffer; `ciphertext` is only read. Provided as a copy of the
    /// ciphertext opened in place; a backend whose in-place open must back the ciphertext up
    /// (the new buffer is its own, so it need not) does better.
    ///
    /// # Errors
    /// [`CryptoError::AeadOpen`] if the tag does not verify.
    fn aead_open_to_vec(
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = ciphertext.to_vec();
        Self::aead_open(key, nonce, ad, &mut out, tag)?;
        Ok(out)
    }

    /// The key object for the AEAD key `key`; the [`Default`] one (which keeps nothing) if the
    /// backend keeps none or cannot build one.
    #[must_use]
    fn aead_object(key: &[u8; AEAD_KEY_LEN]) -> Self::AeadObject;

    /// [`Self::aead_seal`] with the key object [`Self::aead_object`] made for `key` (or the
    /// [`Default`] one).
    #[must_use]
    fn aead_seal_with(
        _object: &Self::AeadObject,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
    ) -> Option<[u8; AEAD_TAG_LEN]> {
        Self::aead_seal(key, nonce, ad, body)
    }

    /// [`Self::aead_open`] with the key object for `key`, as [`Self::aead_seal_with`].
    ///
    /// # Errors
    /// As [`Self::aead_open`]; `body` is then as it was.
    fn aead_open_with(
        _object: &Self::AeadObject,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), CryptoError> {
        Self::aead_open(key, nonce, ad, body, tag)
    }

    /// [`Self::aead_open_into`] with the key object for `key`, as [`Self::aead_seal_with`].
    ///
    /// # Errors
    /// As [`Self::aead_open_into`].
    fn aead_open_into_with(
        _object: &Self::AeadObject,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        Self::aead_open_into(key, nonce, ad, ciphertext, tag, out)
    }

    /// [`Self::aead_open_to_vec`] with the key object for `key`, as [`Self::aead_seal_with`].
    ///
    /// # Errors
    /// As [`Self::aead_open_to_vec`].
    fn aead_open_to_vec_with(
        _object: &Self::AeadObject,
        key: &[u8; AEAD_KEY_LEN],
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        Self::aead_open_to_vec(key, nonce, ad, ciphertext, tag)
    }
}
