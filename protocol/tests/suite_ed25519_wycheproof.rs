//! Every Wycheproof Ed25519 case (C2SP `ed25519_test.json`) through the suite's strict verifier,
//! [`VerifyingKey::verify`], which signs and checks prekeys (SPEC.md §10.3 steps 1 and 3).
//!
//! Each case lands in exactly one category, counted and printed; the counts must add up to the file's
//! `numberOfTests`, so no case is skipped silently:
//!
//! * `valid` — must verify;
//! * `invalid`, rejected with `BadSignature` or with `BadSigningKey`;
//! * `invalid`, rejected by type — a key that is not 32 bytes or a signature that is not 64 bytes
//!   cannot even be passed to `verify` (`[u8; 32]`, `[u8; 64]`); such a case must be `invalid`.
//!
//! The file has no `acceptable` cases; one appearing would fail the test, to be classified by hand.

// Integration tests are always built with `cfg(test)`; saying so at the crate root lets clippy's
// `allow-*-in-tests` (clippy.toml) cover the helpers here and in `common`, not only `#[test]` bodies.
#![cfg(test)]

mod common;

use common::{shared_vectors, unhex};
use e2e_protocol::suite::{CryptoError, SIGNATURE_LEN, SIGNING_KEY_LEN, Signature, VerifyingKey};
use serde_json::Value;

fn label(case: &Value) -> String {
    format!(
        "tcId {} ({})",
        case["tcId"].as_u64().expect("tcId is an integer"),
        case["comment"].as_str().unwrap_or("")
    )
}

#[test]
fn wycheproof_ed25519() {
    let Some(doc) = shared_vectors("wycheproof/ed25519_test.json") else {
        return;
    };
    let total = usize::try_from(doc["numberOfTests"].as_u64().expect("numberOfTests")).unwrap();
    let groups = doc["testGroups"].as_array().expect("testGroups is an array");
    assert!(!groups.is_empty(), "no test groups");

    let (mut valid, mut bad_signature, mut bad_key, mut by_type) = (0usize, 0usize, 0usize, 0usize);
    let mut seen = 0usize;
    for group in groups {
        let pk = unhex(&group["publicKey"]["pk"]);
        for case in group["tests"].as_array().expect("tests is an array") {
            seen += 1;
            let id = label(case);
            let result = case["result"].as_str().expect("result is a string");
            assert!(matches!(result, "valid" | "invalid"), "{id}: unexpected result {result:?}");
            let msg = unhex(&case["msg"]);
            let sig = unhex(&case["sig"]);

            let (Ok(key), Ok(sig)) = (
                <[u8; SIGNING_KEY_LEN]>::try_from(pk.as_slice()),
                <[u8; SIGNATURE_LEN]>::try_from(sig.as_slice()),
            ) else {
                assert_eq!(
                    result,
                    "invalid",
                    "{id}: a {}-byte key / {}-byte signature",
                    pk.len(),
                    sig.len()
                );
                by_type += 1;
                continue;
            };
            let got = VerifyingKey::from_bytes(key).verify(&msg, &Signature::from_bytes(sig));
            match (result, got) {
                ("valid", Ok(())) => valid += 1,
                ("invalid", Err(CryptoError::BadSignature)) => bad_signature += 1,
                ("invalid", Err(CryptoError::BadSigningKey)) => bad_key += 1,
                (_, got) => panic!("{id}: expected {result}, got {got:?}"),
            }
        }
    }

    eprintln!(
        "ed25519: {total} cases = {valid} valid + {bad_signature} invalid (BadSignature) + \
         {bad_key} invalid (BadSigningKey) + {by_type} invalid (wrong length, rejected by type)"
    );
    assert_eq!(seen, total, "numberOfTests disagrees with the cases in the file");
    assert!(valid > 0 && bad_signature > 0 && by_type > 0, "an expected category is empty");
    assert_eq!(valid + bad_signature + bad_key + by_type, total, "some case was not classified");
}
