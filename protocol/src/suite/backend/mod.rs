//! The implementations of the primitives that differ between backends, chosen at compile time.
//!
//! Two backends implement the same small set of functions over fixed-size byte arrays: X25519
//! (public key and DH with the contributory check) and ChaCha20-Poly1305 (seal in place, open in
//! place or into another buffer, detached tag). The suite's types ([`super::PrivateKey`],
//! [`super::AeadKey`]) hold the secrets in their zeroizing newtypes and call [`active`] with
//! borrowed bytes (a `PrivateKey` also keeps
//! the backend's `DhKey`, built once from its bytes: aws-lc's key object, or nothing); nothing
//! above `suite` sees which backend runs, and both give the same bytes for every input
//! (tests/suite_backends.rs compares them on every Wycheproof case and on random inputs).
//!
//! * [`dalek`], the default: x25519-dalek and RustCrypto's chacha20poly1305.
//! * `aws_lc`, with the feature `backend-aws-lc`: aws-lc-rs (AWS-LC), whose x86-64 X25519 is
//!   s2n-bignum's formally verified assembly and whose ChaCha20-Poly1305 is vectorized assembly.
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
//! With `backend-aws-lc` the dalek backend is compiled too (it is small, and its crates are
//! dependencies either way), so that one test binary can compare the two: both are reachable,
//! hidden from the documentation, through `suite::backends`.

pub mod dalek;

#[cfg(feature = "backend-aws-lc")]
pub mod aws_lc;

#[cfg(all(
    not(feature = "backend-aws-lc"),
    not(any(feature = "model-memo", feature = "fuzz-memo"))
))]
pub(crate) use dalek as active;

#[cfg(all(
    feature = "backend-aws-lc",
    not(any(feature = "model-memo", feature = "fuzz-memo"))
))]
pub(crate) use aws_lc as active;

// The model checker's build (feature `model-memo`, declared by e2e-protocol-flawed alone) and the
// fuzz targets' (feature `fuzz-memo`, enabled by fuzz/Cargo.toml alone): the same backend behind
// memos of its deterministic results (crate::memo, spec/MODEL.md §8, README "Fuzzing").
#[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
pub(crate) mod memoized;

#[cfg(any(feature = "model-memo", feature = "fuzz-memo"))]
pub(crate) use memoized as active;
