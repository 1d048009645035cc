//! The floor: each primitive operation the protocols are built from, called on the underlying
//! crates directly (no e2e-ref code), at the shapes the protocols use them. These are the default
//! (dalek) backend's crates; `primitives_aws_lc` measures the other backend's.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use criterion::{BenchmarkId, Criterion, Throughput};
use hmac::Mac;
use sha2::{Digest, Sha256};
use std::hint::black_box;

use super::fixtures::{RATCHET_AD_LEN, SIZES, measured};

/// The primitives are measured three times — first, between the e2e and relay paths, and last —
/// under these group names: the floor takes the lowest median of each, and the summary shows all
/// three, so that a machine whose speed drifted during the run is visible.
pub const GROUPS: [&str; 3] = ["primitives", "primitives-middle", "primitives-last"];

/// The AEAD benches, for both backends: (id, bytes, bytes of associated data). The floor takes
/// the cost of the ratchet's associated data as `aead_seal_open_ad/64 − aead_seal_open/64`.
pub const AEAD_CASES: [(&str, usize, usize); 4] = [
    ("aead_seal_open", SIZES[0], 0),
    ("aead_seal_open", SIZES[1], 0),
    ("aead_seal_open", SIZES[2], 0),
    ("aead_seal_open_ad", SIZES[0], RATCHET_AD_LEN),
];

/// The X25519 public key of `secret` (x25519-dalek), for the DH benches' peer key.
pub fn x25519_public(secret: [u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes()
}

pub fn bench(c: &mut Criterion, group: &str) {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));

    // X25519 key generation: one fixed-base scalar multiplication (a public key from 32 bytes).
    let scalar = [0x42u8; 32];
    group.bench_function("x25519_keygen", |b| {
        b.iter(|| {
            measured(|| {
                let secret = x25519_dalek::StaticSecret::from(black_box(scalar));
                x25519_dalek::PublicKey::from(&secret)
            })
        });
    });

    // X25519: one variable-base scalar multiplication and the contributory check of SPEC §2.1.
    let ours = x25519_dalek::StaticSecret::from([0x42u8; 32]);
    let theirs = x25519_dalek::PublicKey::from(x25519_public([0x24u8; 32]));
    group.bench_function("x25519_dh", |b| {
        b.iter(|| {
            measured(|| {
                let shared = black_box(&ours).diffie_hellman(black_box(&theirs));
                (shared.was_contributory(), shared.to_bytes())
            })
        });
    });

    // Ed25519: decode the 32-byte key and verify strictly (RFC 8032), over the 92-byte message a
    // signed prekey signature covers (SPEC §10.2: the 24-byte label, IK_dh, BE32(spk_id), SPK).
    // The identity binding message of §10.1 (51 bytes) costs the same: with R || A in front, both
    // are two SHA-512 blocks (64 + 92 and 64 + 51 bytes, plus padding, fit in 256).
    let signing = ed25519_dalek::SigningKey::from_bytes(&[0x11u8; 32]);
    let key_bytes = signing.verifying_key().to_bytes();
    let message = [0x5au8; 92];
    let signature = ed25519_dalek::Signer::sign(&signing, &message);
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| {
            measured(|| {
                let key = ed25519_dalek::VerifyingKey::from_bytes(black_box(&key_bytes))
                    .map_err(|_| ())?;
                key.verify_strict(black_box(&message), &signature).map_err(|_| ())
            })
        });
    });

    // HKDF-SHA-256, extract then expand to 64 bytes: the shape of Noise's MixKey and Split, KDF_RK
    // and the message-key derivation (SPEC §4, §12.1).
    let (salt, ikm, info) = ([1u8; 32], [2u8; 32], *b"e2e-ref/ratchet/message/v1");
    group.bench_function("hkdf_sha256", |b| {
        b.iter(|| {
            measured(|| {
                let mut okm = [0u8; 64];
                hkdf::Hkdf::<Sha256>::new(Some(black_box(&salt)), black_box(&ikm))
                    .expand(&info, &mut okm)
                    .map(|()| okm)
                    .map_err(|_| ())
            })
        });
    });

    // HMAC-SHA-256 with a 32-byte key over one byte: one half of KDF_CK (SPEC §12.1).
    let key = [3u8; 32];
    group.bench_function("hmac_sha256", |b| {
        b.iter(|| {
            measured(|| {
                let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(black_box(&key))
                    .map_err(|_| ())?;
                mac.update(&[0x01]);
                Ok::<_, ()>(mac.finalize().into_bytes())
            })
        });
    });

    // KDF_CK (SPEC §12.1): HMAC-SHA-256 keyed once with the chain key, then two MACs over one byte
    // each (the message key and the next chain key), as the ratchet computes it.
    group.bench_function("kdf_ck", |b| {
        b.iter(|| {
            measured(|| {
                let mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(black_box(&key))
                    .map_err(|_| ())?;
                let message_key = mac.clone().chain_update([0x01]).finalize().into_bytes();
                let chain_key = mac.chain_update([0x02]).finalize().into_bytes();
                Ok::<_, ()>((message_key, chain_key))
            })
        });
    });

    // SHA-256 over 64 bytes: Noise's MixHash of a key (h || 32 bytes).
    let input = [4u8; 64];
    group.bench_function("sha256_64", |b| b.iter(|| measured(|| Sha256::digest(black_box(input)))));

    // ChaCha20-Poly1305 key setup: what a ratchet message key pays on each side (it serves one
    // message); a channel key is set up once for many (suite::KeptAeadKey).
    let key = Key::from([5u8; 32]);
    group.bench_function("aead_key", |b| {
        b.iter(|| measured(|| ChaCha20Poly1305::new(black_box(&key))));
    });

    // ChaCha20-Poly1305: one seal and one open of `size` bytes in place under keys already set
    // up, without associated data, and at 64 bytes with the ratchet's (`AD || header`).
    let sealer = ChaCha20Poly1305::new(&key);
    let opener = ChaCha20Poly1305::new(&key);
    for (id, size, ad) in AEAD_CASES {
        group.throughput(Throughput::Bytes(size as u64));
        let nonce = Nonce::from([0u8; 12]);
        let ad = vec![8u8; ad];
        let mut buffer = vec![6u8; size];
        group.bench_with_input(BenchmarkId::new(id, size), &size, |b, _| {
            b.iter(|| {
                measured(|| {
                    let tag: Tag = black_box(&sealer)
                        .encrypt_inout_detached(&nonce, &ad, buffer.as_mut_slice().into())
                        .map_err(|_| ())?;
                    black_box(&opener)
                        .decrypt_inout_detached(&nonce, &ad, buffer.as_mut_slice().into(), &tag)
                        .map_err(|_| ())
                })
            });
        });
    }
    group.finish();
}
