//! The floor of the `backend-aws-lc` build: the primitives that backend takes from aws-lc-rs,
//! called on aws-lc-rs directly, exactly as `suite/backend/aws_lc.rs` calls them (an X25519 key
//! object built with the key and kept for its DHs, an AEAD key object built per message key and
//! kept per channel key, measured apart), at the
//! shapes the protocols use them. The primitives both
//! backends share (SHA-2, HMAC, HKDF, Ed25519) are priced from the `primitives` groups.
//!
//! [`bench_alternatives`] also measures what aws-lc-rs offers for those shared primitives, and a DH
//! that rebuilds the key object each time (what the backend did before), so the README can say
//! with figures why they are not used; the floor uses none of them.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, X25519};
use aws_lc_rs::{digest, hkdf, hmac, signature};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

use super::fixtures::measured;
use super::primitives::AEAD_CASES;

/// As [`super::primitives::GROUPS`], for this backend's primitives.
pub const GROUPS: [&str; 3] =
    ["primitives-aws-lc", "primitives-aws-lc-middle", "primitives-aws-lc-last"];

/// aws-lc-rs's versions of what the suite takes from elsewhere: measured, not used by the floor.
pub const ALTERNATIVES: &str = "aws-lc-not-used";

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).unwrap())
}

pub fn bench(c: &mut Criterion, group: &str) {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));

    // X25519 key generation: AWS-LC's key object from 32 bytes (it derives the public key), then
    // the public key's bytes.
    let scalar = [0x42u8; 32];
    group.bench_function("x25519_keygen", |b| {
        b.iter(|| {
            measured(|| {
                let key =
                    agreement::PrivateKey::from_private_key(&X25519, black_box(&scalar)).unwrap();
                let public = key.compute_public_key().unwrap();
                <[u8; 32]>::try_from(public.as_ref()).unwrap()
            })
        });
    });

    // X25519 as the backend does it: the key object was built once with the key (that is the
    // key generation above), so a DH parses the peer's key and multiplies; AWS-LC refuses the
    // all-zero output itself.
    let ours = agreement::PrivateKey::from_private_key(&X25519, &scalar).unwrap();
    let theirs = super::primitives::x25519_public([0x24u8; 32]);
    group.bench_function("x25519_dh", |b| {
        b.iter(|| {
            measured(|| {
                let peer = agreement::UnparsedPublicKey::new(&X25519, black_box(&theirs));
                agreement::agree(black_box(&ours), peer, (), |s| {
                    Ok(<[u8; 32]>::try_from(s).unwrap())
                })
            })
        });
    });

    // ChaCha20-Poly1305 key setup: AWS-LC's key object built and dropped (erased, freed), what a
    // ratchet message key pays on each side; a channel key keeps its object (suite::KeptAeadKey).
    let key = [5u8; 32];
    group.bench_function("aead_key", |b| {
        b.iter(|| measured(|| aead_key(black_box(&key))));
    });

    // ChaCha20-Poly1305: one seal and one open of `size` bytes in place with key objects already
    // built, without associated data, and at 64 bytes with the ratchet's (`AD || header`).
    let (sealer, opener) = (aead_key(&key), aead_key(&key));
    for (id, size, ad) in AEAD_CASES {
        group.throughput(Throughput::Bytes(size as u64));
        let ad = vec![8u8; ad];
        let mut buffer = vec![6u8; size];
        group.bench_with_input(BenchmarkId::new(id, size), &size, |b, _| {
            b.iter(|| {
                measured(|| {
                    let nonce = || Nonce::assume_unique_for_key([0u8; 12]);
                    let tag = black_box(&sealer)
                        .seal_in_place_separate_tag(nonce(), Aad::from(&ad), &mut buffer)
                        .map_err(|_| ())?;
                    black_box(&opener)
                        .open_in_place_separate_tag(
                            nonce(),
                            Aad::from(&ad),
                            tag.as_ref(),
                            &mut buffer,
                        )
                        .map(|_| ())
                        .map_err(|_| ())
                })
            });
        });
    }
    group.finish();
}

/// An HKDF output length for aws-lc-rs.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

pub fn bench_alternatives(c: &mut Criterion) {
    let mut group = c.benchmark_group(ALTERNATIVES);
    group.throughput(Throughput::Elements(1));

    // X25519 rebuilding AWS-LC's key object from the private bytes for each DH (which derives
    // the public key again, a fixed-base multiplication): what the backend did before it kept
    // the object with the key.
    let scalar = [0x42u8; 32];
    let theirs = super::primitives::x25519_public([0x24u8; 32]);
    group.bench_function("x25519_dh_key_per_call", |b| {
        b.iter(|| {
            measured(|| {
                let ours =
                    agreement::PrivateKey::from_private_key(&X25519, black_box(&scalar)).unwrap();
                let peer = agreement::UnparsedPublicKey::new(&X25519, black_box(&theirs));
                agreement::agree(&ours, peer, (), |s| Ok(<[u8; 32]>::try_from(s).unwrap()))
            })
        });
    });

    // Ed25519 (AWS-LC's verification, which is not SPEC §10.3's strict one: see
    // suite/backend/mod.rs), same key, message and signature shape as `primitives`.
    let signing = ed25519_dalek::SigningKey::from_bytes(&[0x11u8; 32]);
    let key_bytes = signing.verifying_key().to_bytes();
    let message = [0x5au8; 92];
    let sig = ed25519_dalek::Signer::sign(&signing, &message).to_bytes();
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| {
            measured(|| {
                signature::UnparsedPublicKey::new(&signature::ED25519, black_box(&key_bytes))
                    .verify(black_box(&message), &sig)
            })
        });
    });

    let (salt, ikm, info) = ([1u8; 32], [2u8; 32], *b"e2e-ref/ratchet/message/v1");
    group.bench_function("hkdf_sha256", |b| {
        b.iter(|| {
            measured(|| {
                let mut okm = [0u8; 64];
                let prk =
                    hkdf::Salt::new(hkdf::HKDF_SHA256, black_box(&salt)).extract(black_box(&ikm));
                prk.expand(&[&info], Len(64)).and_then(|o| o.fill(&mut okm)).map(|()| okm)
            })
        });
    });

    let key = [3u8; 32];
    group.bench_function("hmac_sha256", |b| {
        b.iter(|| {
            measured(|| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, black_box(&key)), &[0x01]))
        });
    });

    let input = [4u8; 64];
    group.bench_function("sha256_64", |b| {
        b.iter(|| measured(|| digest::digest(&digest::SHA256, black_box(&input))));
    });
    group.finish();
}
