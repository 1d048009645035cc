//! Wycheproof vectors (C2SP) run through the primitive suite's own API.
//!
//! Every case of each file is classified into exactly one category; the categories are counted,
//! printed, and checked to add up to the file's total, so that no case is skipped silently. The
//! files live in `../shared/vectors/wycheproof/` (see `common::shared_vectors`).

// Integration tests are always built with `cfg(test)`; saying so at the crate root lets clippy's
// `allow-*-in-tests` (clippy.toml) cover the helpers here and in `common`, not only `#[test]` bodies.
#![cfg(test)]

mod common;

use common::{shared_vectors, unhex, unhex_n};
use e2e_protocol::suite::{
    AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, AeadKey, CryptoError, DH_LEN, HASH_LEN, PrivateKey,
    PublicKey, hkdf_sha256,
};
use serde_json::Value;

/// Every test case of a Wycheproof file, across all its groups.
fn cases(doc: &Value) -> Vec<&Value> {
    let groups = doc["testGroups"].as_array().expect("testGroups is an array");
    assert!(!groups.is_empty(), "no test groups");
    groups.iter().flat_map(|g| g["tests"].as_array().expect("tests is an array")).collect()
}

/// The file's declared `numberOfTests`, checked against the cases actually present.
fn declared_total(doc: &Value, cases: &[&Value]) -> usize {
    let n = usize::try_from(doc["numberOfTests"].as_u64().expect("numberOfTests"))
        .expect("numberOfTests fits usize");
    assert_eq!(n, cases.len(), "numberOfTests disagrees with the cases in the file");
    n
}

fn tc_id(case: &Value) -> u64 {
    case["tcId"].as_u64().expect("tcId is an integer")
}

fn result(case: &Value) -> &str {
    case["result"].as_str().expect("result is a string")
}

fn has_flag(case: &Value, flag: &str) -> bool {
    case["flags"].as_array().expect("flags is an array").iter().any(|f| f.as_str() == Some(flag))
}

/// `tcId N (comment)`, for failure messages.
fn label(case: &Value) -> String {
    format!("tcId {} ({})", tc_id(case), case["comment"].as_str().unwrap_or(""))
}

#[test]
fn wycheproof_x25519() {
    let Some(doc) = shared_vectors("wycheproof/x25519_test.json") else {
        return;
    };
    let cases = cases(&doc);
    let total = declared_total(&doc, &cases);

    let (mut valid, mut zero_shared, mut acceptable, mut invalid) =
        (0usize, 0usize, 0usize, 0usize);
    for case in &cases {
        let id = label(case);
        let private = PrivateKey::from_bytes(unhex_n::<DH_LEN>(&case["private"]));
        let public = PublicKey::from_bytes(unhex_n::<DH_LEN>(&case["public"]));
        let expected = unhex_n::<DH_LEN>(&case["shared"]);
        let got = private.diffie_hellman(&public).map(|s| *s.expose());

        if result(case) == "invalid" {
            assert!(got.is_err(), "{id}: invalid case was accepted");
            invalid += 1;
        } else if expected == [0u8; DH_LEN] {
            // The suite's policy (RFC 7748 §6.1): an all-zero result is refused. Wycheproof marks
            // these `acceptable`, never `valid`; a `valid` one would contradict the policy.
            assert_eq!(result(case), "acceptable", "{id}: all-zero shared secret marked valid");
            assert!(has_flag(case, "ZeroSharedSecret"), "{id}: zero secret without its flag");
            assert_eq!(got, Err(CryptoError::NonContributory), "{id}");
            zero_shared += 1;
        } else {
            assert!(!has_flag(case, "ZeroSharedSecret"), "{id}: flag on a non-zero secret");
            assert_eq!(got, Ok(expected), "{id}: wrong shared secret");
            match result(case) {
                "valid" => valid += 1,
                "acceptable" => acceptable += 1,
                other => panic!("{id}: unknown result {other:?}"),
            }
        }
    }

    eprintln!(
        "x25519: {total} cases = {valid} valid + {zero_shared} acceptable all-zero (rejected as \
         NonContributory) + {acceptable} other acceptable + {invalid} invalid"
    );
    assert!(valid > 0 && zero_shared > 0 && acceptable > 0, "an expected category is empty");
    assert_eq!(valid + zero_shared + acceptable + invalid, total, "some case was not classified");
}

#[test]
fn wycheproof_chacha20_poly1305() {
    let Some(doc) = shared_vectors("wycheproof/chacha20_poly1305_test.json") else {
        return;
    };
    let cases = cases(&doc);
    let total = declared_total(&doc, &cases);

    let (mut valid, mut rejected_open, mut rejected_truncated, mut rejected_by_type) =
        (0usize, 0usize, 0usize, 0usize);
    for case in &cases {
        let id = label(case);
        let iv = unhex(&case["iv"]);
        let Ok(nonce) = <[u8; AEAD_NONCE_LEN]>::try_from(iv.as_slice()) else {
            // `seal`/`open` take `&[u8; 12]`: a nonce of another length cannot even be passed.
            assert_eq!(result(case), "invalid", "{id}: {}-byte nonce marked as usable", iv.len());
            assert!(has_flag(case, "InvalidNonceSize"), "{id}: {}-byte nonce", iv.len());
            rejected_by_type += 1;
            continue;
        };
        let key = AeadKey::new(unhex_n::<AEAD_KEY_LEN>(&case["key"]));
        let aad = unhex(&case["aad"]);
        let msg = unhex(&case["msg"]);
        let mut sealed = unhex(&case["ct"]);
        sealed.extend_from_slice(&unhex(&case["tag"]));

        match result(case) {
            "valid" => {
                assert_eq!(key.seal(&nonce, &aad, &msg), sealed, "{id}: seal");
                assert_eq!(key.open(&nonce, &aad, &sealed), Ok(msg.clone()), "{id}: open");
                // The same ciphertext with one tag bit flipped must not open.
                let mut tampered = sealed.clone();
                *tampered.last_mut().expect("sealed has a tag") ^= 0x01;
                assert_eq!(
                    key.open(&nonce, &aad, &tampered),
                    Err(CryptoError::AeadOpen),
                    "{id}: tampered tag opened"
                );
                // In place after a prefix: the prefix stays, the rest becomes the plaintext; a
                // refused buffer is left exactly as it was.
                let (mut buffer, mut refused) = (b"head".to_vec(), b"head".to_vec());
                buffer.extend_from_slice(&sealed);
                refused.extend_from_slice(&tampered);
                let kept = refused.clone();
                assert_eq!(key.open_in_place(&nonce, &aad, &mut buffer, 4), Ok(()), "{id}");
                assert_eq!(buffer, [&b"head"[..], &msg].concat(), "{id}: open in place");
                let got = key.open_in_place(&nonce, &aad, &mut refused, 4);
                assert_eq!((got, refused), (Err(CryptoError::AeadOpen), kept), "{id}: in place");
                valid += 1;
            }
            "invalid" => {
                let got = key.open(&nonce, &aad, &sealed);
                let mut buffer = sealed.clone();
                let in_place = key.open_in_place(&nonce, &aad, &mut buffer, 0);
                assert_eq!((in_place, &buffer), (got.clone().map(drop), &sealed), "{id}: in place");
                if sealed.len() < AEAD_TAG_LEN {
                    assert_eq!(got, Err(CryptoError::AeadTruncated), "{id}");
                    rejected_truncated += 1;
                } else {
                    assert_eq!(got, Err(CryptoError::AeadOpen), "{id}: invalid case opened");
                    rejected_open += 1;
                }
            }
            other => panic!("{id}: unexpected result {other:?}"),
        }
    }

    eprintln!(
        "chacha20_poly1305: {total} cases = {valid} valid (seal and open) + {rejected_open} \
         invalid rejected as AeadOpen + {rejected_truncated} invalid rejected as AeadTruncated + \
         {rejected_by_type} invalid nonce size (rejected by the [u8; 12] type)"
    );
    assert!(
        valid > 0 && rejected_open > 0 && rejected_by_type > 0,
        "an expected category is empty"
    );
    assert_eq!(
        valid + rejected_open + rejected_truncated + rejected_by_type,
        total,
        "some case was not classified"
    );
}

/// A sealed input shorter than the tag is refused as truncated, whatever its bytes; exactly a tag's
/// length is a well-formed (empty) ciphertext and fails authentication instead.
#[test]
fn aead_open_shorter_than_tag_is_truncated() {
    // Wycheproof tcId 1 / RFC 8439 §2.8.2 key and nonce.
    let key = AeadKey::new(unhex_n(&Value::from(
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
    )));
    let nonce: [u8; AEAD_NONCE_LEN] = unhex_n(&Value::from("070000004041424344454647"));
    let sealed = key.seal(&nonce, b"ad", b"");
    assert_eq!(sealed.len(), AEAD_TAG_LEN);
    assert_eq!(key.open(&nonce, b"ad", &sealed), Ok(Vec::new()));

    for len in 0..AEAD_TAG_LEN {
        assert_eq!(
            key.open(&nonce, b"ad", &sealed[..len]),
            Err(CryptoError::AeadTruncated),
            "{len}-byte input"
        );
    }
    let mut wrong_tag = sealed;
    wrong_tag[0] ^= 0x80;
    assert_eq!(key.open(&nonce, b"ad", &wrong_tag), Err(CryptoError::AeadOpen));
}

#[test]
fn wycheproof_hkdf_sha256() {
    let Some(doc) = shared_vectors("wycheproof/hkdf_sha256_test.json") else {
        return;
    };
    let cases = cases(&doc);
    let total = declared_total(&doc, &cases);

    let (mut valid, mut valid_empty_salt, mut too_long) = (0usize, 0usize, 0usize);
    for case in &cases {
        let id = label(case);
        let ikm = unhex(&case["ikm"]);
        let salt = unhex(&case["salt"]);
        let info = unhex(&case["info"]);
        let size = usize::try_from(case["size"].as_u64().expect("size is an integer"))
            .expect("size fits usize");

        match result(case) {
            "valid" => {
                let expected = unhex(&case["okm"]);
                assert_eq!(expected.len(), size, "{id}: okm length disagrees with size");
                let mut okm = vec![0xa5u8; size];
                assert_eq!(hkdf_sha256(Some(&salt), &ikm, &info, &mut okm), Ok(()), "{id}");
                assert_eq!(okm, expected, "{id}: okm with the file's salt");
                if salt.is_empty() {
                    // RFC 5869 §2.2: an absent salt is HashLen zero bytes; HMAC pads an empty key
                    // to the same block, so all three spellings must agree.
                    for (what, s) in [("None", None), ("32 zero bytes", Some(&[0u8; HASH_LEN][..]))]
                    {
                        let mut okm = vec![0x5au8; size];
                        assert_eq!(hkdf_sha256(s, &ikm, &info, &mut okm), Ok(()), "{id}: {what}");
                        assert_eq!(okm, expected, "{id}: okm with salt {what}");
                    }
                    valid_empty_salt += 1;
                }
                valid += 1;
            }
            "invalid" => {
                assert!(has_flag(case, "SizeTooLarge"), "{id}: unexpected invalid case");
                assert!(size > 255 * HASH_LEN, "{id}: size {size} is within the limit");
                let salt_arg = if salt.is_empty() { None } else { Some(salt.as_slice()) };
                for s in [Some(salt.as_slice()), salt_arg] {
                    let sentinel: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                    let mut okm = sentinel.clone();
                    assert_eq!(
                        hkdf_sha256(s, &ikm, &info, &mut okm),
                        Err(CryptoError::KdfOutputTooLong),
                        "{id}"
                    );
                    assert!(okm == sentinel, "{id}: okm was modified by a failed expand");
                }
                too_long += 1;
            }
            other => panic!("{id}: unexpected result {other:?}"),
        }
    }

    eprintln!(
        "hkdf_sha256: {total} cases = {valid} valid (of which {valid_empty_salt} with empty salt, \
         also checked as None and as 32 zero bytes) + {too_long} invalid SizeTooLarge"
    );
    assert!(valid > 0 && valid_empty_salt > 0 && too_long > 0, "an expected category is empty");
    assert_eq!(valid + too_long, total, "some case was not classified");
}
