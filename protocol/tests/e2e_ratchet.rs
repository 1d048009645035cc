//! The Double Ratchet (SPEC §12) through its public API: an independently computed vector,
//! out-of-order delivery within and beyond `MAX_SKIP`, every kind of bad message (each with its
//! typed error, the session unchanged, and the genuine message still accepted), skipped-key
//! eviction, forward secrecy per message, determinism, and randomised conversations.
//!
//! Sessions are built directly from a fixed `SK` (the handshake of §11 is tested elsewhere): Alice
//! is `Session::initiator(SK, AD, SPK_B)`, Bob `Session::responder(SK, AD, spk_B)`.
//!
//! `ChainExhausted` needs `2^32 − 1` messages in one chain; it is tested by unit tests in
//! `src/e2e/ratchet/session.rs`, which can set the counters.
#![cfg(test)]

use std::collections::BTreeSet;
use std::convert::Infallible;

use e2e_protocol::e2e::ratchet::{
    HEADER_LEN, Header, MAX_SKIP, MAX_SKIPPED_KEYS, RatchetError, Session,
};
use e2e_protocol::suite::{PrivateKey, PublicKey, Secret};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng, TryCryptoRng, TryRng};

const SK: [u8; 32] = [0x5c; 32];
const AD: &[u8] = b"IK_A (64) || IK_B (64), abbreviated";

/// A ratchet message as it travels: header and ciphertext.
type Msg = (Header, Vec<u8>);

struct Pair {
    alice: Session,
    bob: Session,
    rng: ChaCha20Rng,
}

/// Alice (initiator) and Bob (responder) sharing `SK` and `AD`; Bob's signed prekey and every
/// ratchet key come from a seeded RNG.
fn pair(seed: u64) -> Pair {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let spk = PrivateKey::generate(&mut rng);
    Pair {
        alice: Session::initiator(Secret::new(SK), AD.to_vec(), spk.public_key()),
        bob: Session::responder(Secret::new(SK), AD.to_vec(), spk),
        rng,
    }
}

fn text(i: usize) -> Vec<u8> {
    format!("message {i}").into_bytes()
}

/// `count` messages from `from`, with plaintexts `text(first..first + count)`.
fn send(from: &mut Session, rng: &mut ChaCha20Rng, first: usize, count: usize) -> Vec<Msg> {
    (first..first + count).map(|i| from.encrypt(&text(i), rng).unwrap()).collect()
}

/// `msg` is refused with `expected` and leaves `to` exactly as it was.
#[track_caller]
fn refused(to: &mut Session, msg: (&Header, &[u8]), expected: RatchetError) {
    let before = to.clone();
    assert_eq!(to.decrypt(msg.0, msg.1), Err(expected));
    assert_eq!(*to, before, "a refused message changed the session");
}

#[track_caller]
fn accepted(to: &mut Session, msg: &Msg, plaintext: &[u8]) {
    assert_eq!(to.decrypt(&msg.0, &msg.1).as_deref(), Ok(plaintext));
}

/// Every permutation of `0..n`, in lexicographic order.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn extend(prefix: &mut Vec<usize>, n: usize, out: &mut Vec<Vec<usize>>) {
        if prefix.len() == n {
            out.push(prefix.clone());
            return;
        }
        for i in 0..n {
            if !prefix.contains(&i) {
                prefix.push(i);
                extend(prefix, n, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    extend(&mut Vec::new(), n, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// A vector computed independently (Python: pyca/cryptography X25519 and ChaCha20-Poly1305, hashlib
// HMAC/HKDF) from the text of §12 alone.

/// An "RNG" that yields fixed bytes, so that the vector can name every ratchet key drawn.
struct Fixed(Vec<u8>);

impl TryRng for Fixed {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("the ratchet draws bytes only")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("the ratchet draws bytes only")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(self.0.len() >= dst.len(), "the vector's RNG ran dry");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}

impl TryCryptoRng for Fixed {}

fn hex_msg(header: &str, ct: &str) -> Msg {
    let header: [u8; HEADER_LEN] = hex::decode(header).unwrap().try_into().unwrap();
    (Header::decode(&header), hex::decode(ct).unwrap())
}

#[test]
fn independently_computed_vector() {
    let sk: [u8; 32] = core::array::from_fn(|i| i as u8); // 00 01 … 1f
    let ad = [[0xa0u8; 64], [0xb0u8; 64]].concat(); // the shape of IK_A || IK_B
    let key = |h: &str| <[u8; 32]>::try_from(hex::decode(h).unwrap()).unwrap();
    // RFC 7748 §6.1's key pairs: Bob's is his signed prekey, Alice's her first ratchet key.
    let spk = PrivateKey::from_bytes(key(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    ));
    let a1 = key("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let (b1, a2) = ([0x0b; 32], [0x0a; 32]);

    let expected = [
        hex_msg(
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a0000000000000000",
            "cda60503467f39066cfc41c4050ff2c27e91637f48523b6d66",
        ),
        hex_msg(
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a0000000000000001",
            "3fe737837f93f4a67dc54c124666116c",
        ),
        hex_msg(
            "73b2d8b76aa9b53660032bc8f5d8bee3a3ae4e3b3a7fd49ade81f7347a34aa680000000000000000",
            "e6193b35bc27a8a4500e6f428b8ebb24132b5bc969d55c4f",
        ),
        hex_msg(
            "f77ff4b10788bfdca62ca0bb160d427cf5762d85f2b5cad6807ec9c3febbde090000000200000000",
            "160391802880051938be9158765b79aceafe725cae",
        ),
    ];

    let mut alice = Session::initiator(Secret::new(sk), ad.clone(), spk.public_key());
    let mut bob = Session::responder(Secret::new(sk), ad, spk);
    let mut alice_rng = Fixed([a1, a2].concat());
    let mut bob_rng = Fixed(b1.to_vec());

    // Alice: two messages in her first chain; the second has an empty plaintext.
    assert_eq!(alice.encrypt(b"hello bob", &mut alice_rng).unwrap(), expected[0]);
    assert_eq!(alice.encrypt(b"", &mut alice_rng).unwrap(), expected[1]);
    accepted(&mut bob, &expected[0], b"hello bob");
    accepted(&mut bob, &expected[1], b"");
    // Bob answers under his first own ratchet key; Alice answers under her second (pn = 2).
    assert_eq!(bob.encrypt(b"hi alice", &mut bob_rng).unwrap(), expected[2]);
    accepted(&mut alice, &expected[2], b"hi alice");
    assert_eq!(alice.encrypt(b"third", &mut alice_rng).unwrap(), expected[3]);
    accepted(&mut bob, &expected[3], b"third");
    assert!(alice_rng.0.is_empty() && bob_rng.0.is_empty(), "one key per DH ratchet step");
}

// ---------------------------------------------------------------------------------------------
// 1. Every out-of-order pattern within MAX_SKIP decrypts.

#[test]
fn every_order_of_five_messages_in_one_chain() {
    let Pair { mut alice, bob, mut rng } = pair(1);
    let msgs = send(&mut alice, &mut rng, 0, 5);
    let orders = permutations(5);
    assert_eq!(orders.len(), 120);
    for order in orders {
        let mut bob = bob.clone();
        for &i in &order {
            accepted(&mut bob, &msgs[i], &text(i));
        }
        assert_eq!(bob.skipped_key_count(), 0, "order {order:?}");
        for msg in &msgs {
            refused(&mut bob, (&msg.0, &msg.1), RatchetError::Replayed);
        }
    }
}

#[test]
fn every_order_of_five_messages_across_a_ratchet_turn() {
    // Alice's chain A1: m0 (which Bob receives, so he can answer), then m1, m2 in flight.
    // Bob answers; Alice receives it and starts chain A2 with m3, m4, m5 (pn = 3).
    // Bob receives m1..m5 in every order: old-chain messages after new-chain ones use pn.
    let Pair { mut alice, mut bob, mut rng } = pair(2);
    let a1 = send(&mut alice, &mut rng, 0, 3);
    accepted(&mut bob, &a1[0], &text(0));
    let reply = bob.encrypt(b"reply", &mut rng).unwrap();
    accepted(&mut alice, &reply, b"reply");
    let a2 = send(&mut alice, &mut rng, 3, 3);
    assert!(a2.iter().all(|(h, _)| h.pn == 3 && h.dh != a1[0].0.dh));

    let in_flight: Vec<(usize, &Msg)> =
        a1.iter().chain(&a2).enumerate().skip(1).collect::<Vec<_>>();
    for order in permutations(5) {
        let mut bob = bob.clone();
        for &k in &order {
            let (i, msg) = in_flight[k];
            accepted(&mut bob, msg, &text(i));
        }
        assert_eq!(bob.skipped_key_count(), 0, "order {order:?}");
        // Bob can still answer, and Alice reads it.
        let mut alice = alice.clone();
        let answer = bob.encrypt(b"answer", &mut rng).unwrap();
        accepted(&mut alice, &answer, b"answer");
    }
}

#[test]
fn gap_of_exactly_max_skip_in_one_chain() {
    let Pair { mut alice, mut bob, mut rng } = pair(3);
    let msgs = send(&mut alice, &mut rng, 0, MAX_SKIP as usize + 1);
    // The last first: Nr = 0, n = MAX_SKIP, so SKIP stores exactly MAX_SKIP keys.
    accepted(&mut bob, &msgs[MAX_SKIP as usize], &text(MAX_SKIP as usize));
    assert_eq!(bob.skipped_key_count(), MAX_SKIP as usize);
    for (i, msg) in msgs.iter().enumerate().rev().skip(1) {
        accepted(&mut bob, msg, &text(i));
    }
    assert_eq!(bob.skipped_key_count(), 0);
}

/// Bob has received message 0 of Alice's first chain and answered; Alice has sent `chain_len`
/// messages in that chain, read Bob's answer and sent one message in her second chain
/// (`pn = chain_len`). Returns the pair, the first chain and the second chain's message.
fn turn_after_a_long_chain(seed: u64, chain_len: usize) -> (Pair, Vec<Msg>, Msg) {
    let Pair { mut alice, mut bob, mut rng } = pair(seed);
    let a1 = send(&mut alice, &mut rng, 0, chain_len);
    accepted(&mut bob, &a1[0], &text(0));
    let reply = bob.encrypt(b"reply", &mut rng).unwrap();
    accepted(&mut alice, &reply, b"reply");
    let next = alice.encrypt(b"new chain", &mut rng).unwrap();
    assert_eq!(next.0.pn, chain_len as u32);
    (Pair { alice, bob, rng }, a1, next)
}

#[test]
fn gap_of_exactly_max_skip_via_pn_on_a_ratchet_turn() {
    // Nr = 1 in the old chain, pn = MAX_SKIP + 1: SKIP(pn) stores exactly MAX_SKIP keys.
    let (Pair { mut bob, .. }, a1, next) = turn_after_a_long_chain(4, MAX_SKIP as usize + 1);
    accepted(&mut bob, &next, b"new chain");
    assert_eq!(bob.skipped_key_count(), MAX_SKIP as usize);
    for (i, msg) in a1.iter().enumerate().skip(1).rev() {
        accepted(&mut bob, msg, &text(i));
    }
    assert_eq!(bob.skipped_key_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Beyond MAX_SKIP: TooFarAhead, session unchanged, the in-window message still decrypts.

#[test]
fn gap_beyond_max_skip_in_one_chain_is_refused() {
    let Pair { mut alice, mut bob, mut rng } = pair(5);
    let msgs = send(&mut alice, &mut rng, 0, MAX_SKIP as usize + 2);
    let (far, near) = (MAX_SKIP as usize + 1, MAX_SKIP as usize);
    refused(&mut bob, (&msgs[far].0, &msgs[far].1), RatchetError::TooFarAhead { gap: 1001 });
    accepted(&mut bob, &msgs[near], &text(near));
    // Now the same message is within reach.
    accepted(&mut bob, &msgs[far], &text(far));
    accepted(&mut bob, &msgs[0], &text(0));

    // Far beyond: the gap is reported, and counted in 64 bits.
    let forged = Header { n: u32::MAX, ..msgs[far].0 };
    let gap = u64::from(u32::MAX) - (far as u64 + 1);
    refused(&mut bob, (&forged, &msgs[far].1), RatchetError::TooFarAhead { gap });
}

#[test]
fn gap_beyond_max_skip_via_pn_on_a_ratchet_turn_is_refused() {
    // Nr = 1 in the old chain, pn = MAX_SKIP + 2: SKIP(pn) would have to store MAX_SKIP + 1 keys.
    let (Pair { mut bob, .. }, a1, next) = turn_after_a_long_chain(6, MAX_SKIP as usize + 2);
    refused(&mut bob, (&next.0, &next.1), RatchetError::TooFarAhead { gap: 1001 });
    // An in-window message of the old chain still decrypts, and brings the new chain within reach.
    accepted(&mut bob, &a1[1], &text(1));
    accepted(&mut bob, &next, b"new chain");
    assert_eq!(bob.skipped_key_count(), MAX_SKIP as usize);
}

// ---------------------------------------------------------------------------------------------
// 3. Replays, tampering, truncation, wrong AD: a typed error, the session unchanged, and the
// genuine message still decrypts.

#[test]
fn replayed_message_is_refused() {
    let Pair { mut alice, mut bob, mut rng } = pair(7);
    let msgs = send(&mut alice, &mut rng, 0, 2);
    accepted(&mut bob, &msgs[0], &text(0));
    refused(&mut bob, (&msgs[0].0, &msgs[0].1), RatchetError::Replayed);
    accepted(&mut bob, &msgs[1], &text(1));
    refused(&mut bob, (&msgs[1].0, &msgs[1].1), RatchetError::Replayed);
    refused(&mut bob, (&msgs[0].0, &msgs[0].1), RatchetError::Replayed);
}

#[test]
fn replayed_skipped_then_used_key_is_refused() {
    let Pair { mut alice, mut bob, mut rng } = pair(8);
    let msgs = send(&mut alice, &mut rng, 0, 3);
    accepted(&mut bob, &msgs[2], &text(2));
    assert_eq!(bob.skipped_key_count(), 2);
    accepted(&mut bob, &msgs[0], &text(0)); // taken from the store, and deleted
    assert_eq!(bob.skipped_key_count(), 1);
    refused(&mut bob, (&msgs[0].0, &msgs[0].1), RatchetError::Replayed);
    accepted(&mut bob, &msgs[1], &text(1));
}

#[test]
fn replayed_message_of_an_old_chain_is_refused() {
    // After the ratchet has turned, an old chain's used (or skipped-then-used) key is gone: the
    // replay names a stale DHr, and the attempted ratchet step yields a key that does not open it.
    let (Pair { mut bob, .. }, a1, next) = turn_after_a_long_chain(9, 3);
    accepted(&mut bob, &a1[2], &text(2));
    accepted(&mut bob, &next, b"new chain");
    accepted(&mut bob, &a1[1], &text(1));
    for i in [0, 1, 2] {
        refused(&mut bob, (&a1[i].0, &a1[i].1), RatchetError::DecryptFailed);
    }
    refused(&mut bob, (&next.0, &next.1), RatchetError::Replayed);
}

/// Each header field altered, in the first message of a chain (a DH ratchet step) and in a later
/// one.
#[test]
fn tampered_header_fields_are_refused() {
    let Pair { mut alice, mut bob, mut rng } = pair(10);
    let msgs = send(&mut alice, &mut rng, 0, 3);
    // Bob holds message 0 back for a moment: message 1 is the first he sees (a ratchet step).
    for i in [1, 2] {
        let (h, ct) = &msgs[i];
        let mut dh = *h.dh.as_bytes();
        dh[7] ^= 0x10;
        let nr = bob.receiving_index(); // 0, then 2
        let cases = [
            (Header { dh: PublicKey::from_bytes(dh), ..*h }, RatchetError::DecryptFailed),
            (Header { pn: h.pn + 1, ..*h }, RatchetError::DecryptFailed),
            (Header { pn: h.pn ^ 0x8000_0000, ..*h }, RatchetError::DecryptFailed),
            (Header { n: h.n + 1, ..*h }, RatchetError::DecryptFailed),
            (Header { n: nr + MAX_SKIP + 1, ..*h }, RatchetError::TooFarAhead { gap: 1001 }),
        ];
        for (forged, expected) in cases {
            refused(&mut bob, (&forged, ct), expected);
        }
        accepted(&mut bob, &msgs[i], &text(i));
    }
    // An n lowered to an index already used is a replay; lowered to a skipped one, a wrong key.
    let (h, ct) = &msgs[2];
    refused(&mut bob, (&Header { n: 1, ..*h }, ct), RatchetError::Replayed);
    let (h, ct) = &msgs[0];
    refused(&mut bob, (&Header { n: 0, pn: 9, ..*h }, ct), RatchetError::DecryptFailed);
    accepted(&mut bob, &msgs[0], &text(0));
}

/// `pn` where it is used: the first message of a new chain, while Bob still has the old one
/// (he has read message 0 of three, so `Nr = 1` and the genuine `pn` is 3).
#[test]
fn tampered_pn_on_a_ratchet_turn_is_refused() {
    let (Pair { mut bob, .. }, a1, next) = turn_after_a_long_chain(20, 3);
    let (h, ct) = &next;
    for (pn, expected) in [
        (0, RatchetError::DecryptFailed),
        (2, RatchetError::DecryptFailed),
        (4, RatchetError::DecryptFailed),
        (1 + MAX_SKIP, RatchetError::DecryptFailed),
        (2 + MAX_SKIP, RatchetError::TooFarAhead { gap: 1001 }),
    ] {
        refused(&mut bob, (&Header { pn, ..*h }, ct), expected);
    }
    accepted(&mut bob, &next, b"new chain");
    accepted(&mut bob, &a1[2], &text(2));
    accepted(&mut bob, &a1[1], &text(1));
}

#[test]
fn tampered_body_is_refused() {
    let Pair { mut alice, mut bob, mut rng } = pair(11);
    let genuine = alice.encrypt(b"a body of some length", &mut rng).unwrap();
    let (h, ct) = &genuine;
    let body_len = ct.len() - 16;
    // Each region: first, middle and last body byte; first and last tag byte.
    for pos in [0, body_len / 2, body_len - 1, body_len, ct.len() - 1] {
        let mut forged = ct.clone();
        forged[pos] ^= 0x01;
        refused(&mut bob, (h, &forged), RatchetError::DecryptFailed);
    }
    let mut appended = ct.clone();
    appended.push(0);
    refused(&mut bob, (h, &appended), RatchetError::DecryptFailed);
    accepted(&mut bob, &genuine, b"a body of some length");
}

#[test]
fn truncated_ciphertext_is_refused() {
    let Pair { mut alice, mut bob, mut rng } = pair(12);
    let genuine = alice.encrypt(b"to be cut", &mut rng).unwrap();
    let (h, ct) = &genuine;
    // Shorter than a tag; exactly a tag; cut by one byte.
    for len in [0, 1, 15, 16, ct.len() - 1] {
        refused(&mut bob, (h, &ct[..len]), RatchetError::DecryptFailed);
    }
    accepted(&mut bob, &genuine, b"to be cut");
}

#[test]
fn wrong_associated_data_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let spk = PrivateKey::generate(&mut rng);
    let mut alice = Session::initiator(Secret::new(SK), AD.to_vec(), spk.public_key());
    let mut bob = Session::responder(Secret::new(SK), AD.to_vec(), spk.clone());
    let mut other_ad = AD.to_vec();
    other_ad[0] ^= 1;
    let mut mallory = Session::responder(Secret::new(SK), other_ad, spk.clone());
    let mut short_ad = Session::responder(Secret::new(SK), AD[..AD.len() - 1].to_vec(), spk);

    let genuine = alice.encrypt(b"bound to AD", &mut rng).unwrap();
    refused(&mut mallory, (&genuine.0, &genuine.1), RatchetError::DecryptFailed);
    refused(&mut short_ad, (&genuine.0, &genuine.1), RatchetError::DecryptFailed);
    accepted(&mut bob, &genuine, b"bound to AD");
    assert_eq!(bob.ad(), AD);
}

// ---------------------------------------------------------------------------------------------
// 4. Eviction at MAX_SKIPPED_KEYS: oldest first.

#[test]
fn skipped_key_store_evicts_the_oldest_first() {
    let m = MAX_SKIP as usize;
    let Pair { mut alice, mut bob, mut rng } = pair(14);

    // Chain A1: Bob sees only its last message, skipping (A1, 0..1000).
    let a1 = send(&mut alice, &mut rng, 0, m + 1);
    accepted(&mut bob, &a1[m], &text(m));
    let reply = bob.encrypt(b"reply", &mut rng).unwrap();
    accepted(&mut alice, &reply, b"reply");

    // Chain A2: again only its message 1000, skipping (A2, 0..1000): the store is exactly full.
    let a2 = send(&mut alice, &mut rng, 10_000, m + 1);
    accepted(&mut bob, &a2[m], &text(10_000 + m));
    assert_eq!(bob.skipped_key_count(), MAX_SKIPPED_KEYS);
    accepted(&mut bob.clone(), &a1[0], &text(0)); // nothing evicted yet

    // Message 1002 skips (A2, 1001): one more key, so (A2, 1001) enters and (A1, 0) leaves.
    let extra = send(&mut alice, &mut rng, 20_000, 2);
    accepted(&mut bob, &extra[1], &text(20_001));
    assert_eq!(bob.skipped_key_count(), MAX_SKIPPED_KEYS);
    refused(&mut bob, (&a1[0].0, &a1[0].1), RatchetError::DecryptFailed);
    accepted(&mut bob, &a1[1], &text(1));
    assert_eq!(bob.skipped_key_count(), MAX_SKIPPED_KEYS - 1);

    // With a free slot, the next skipped key evicts nothing; the one after evicts (A1, 2).
    let later = send(&mut alice, &mut rng, 30_000, 4);
    accepted(&mut bob, &later[1], &text(30_001));
    assert_eq!(bob.skipped_key_count(), MAX_SKIPPED_KEYS);
    accepted(&mut bob.clone(), &a1[2], &text(2));
    accepted(&mut bob, &later[3], &text(30_003));
    refused(&mut bob, (&a1[2].0, &a1[2].1), RatchetError::DecryptFailed);

    // Everything not evicted still opens, old chain and new.
    for (i, msg) in a1.iter().enumerate().take(m).skip(3) {
        accepted(&mut bob, msg, &text(i));
    }
    for (i, msg) in a2.iter().enumerate().take(m) {
        accepted(&mut bob, msg, &text(10_000 + i));
    }
    accepted(&mut bob, &extra[0], &text(20_000));
    accepted(&mut bob, &later[0], &text(30_000));
    accepted(&mut bob, &later[2], &text(30_002));
    assert_eq!(bob.skipped_key_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// 5. A responder cannot speak first.

#[test]
fn responder_cannot_send_before_receiving() {
    let Pair { mut alice, mut bob, mut rng } = pair(15);
    let before = bob.clone();
    let rng_before = rng.clone();
    assert_eq!(bob.encrypt(b"too early", &mut rng), Err(RatchetError::NoSession));
    assert_eq!(bob, before);
    assert_eq!(rng, rng_before, "no key is drawn for a message that cannot be sent");
    assert!(!bob.has_received());

    let first = alice.encrypt(b"hello", &mut rng).unwrap();
    accepted(&mut bob, &first, b"hello");
    assert!(bob.has_received());
    let answer = bob.encrypt(b"now I can", &mut rng).unwrap();
    assert!(!alice.has_received());
    accepted(&mut alice, &answer, b"now I can");
    assert!(alice.has_received());
}

// ---------------------------------------------------------------------------------------------
// 6. Forward secrecy per message: the state after a message cannot decrypt it again; the state
// before still can (so the check is not vacuous).

#[test]
fn state_after_a_message_cannot_decrypt_it() {
    let Pair { mut alice, mut bob, mut rng } = pair(16);
    let msgs = send(&mut alice, &mut rng, 0, 3);

    // In order (a key derived and used, never stored) …
    let before = bob.clone();
    accepted(&mut bob, &msgs[0], &text(0));
    refused(&mut bob, (&msgs[0].0, &msgs[0].1), RatchetError::Replayed);
    accepted(&mut before.clone(), &msgs[0], &text(0));

    // … out of order (a key taken from the store) …
    accepted(&mut bob, &msgs[2], &text(2));
    let before = bob.clone();
    accepted(&mut bob, &msgs[1], &text(1));
    refused(&mut bob, (&msgs[1].0, &msgs[1].1), RatchetError::Replayed);
    accepted(&mut before.clone(), &msgs[1], &text(1));

    // … and across a DH ratchet step.
    let reply = bob.encrypt(b"reply", &mut rng).unwrap();
    let before = alice.clone();
    accepted(&mut alice, &reply, b"reply");
    refused(&mut alice, (&reply.0, &reply.1), RatchetError::Replayed);
    accepted(&mut before.clone(), &reply, b"reply");
    let next = alice.encrypt(b"next", &mut rng).unwrap();
    accepted(&mut bob, &next, b"next");
    refused(&mut bob, (&msgs[2].0, &msgs[2].1), RatchetError::DecryptFailed);
}

// ---------------------------------------------------------------------------------------------
// 8. Determinism.

/// A fixed conversation: both directions, reordering, several ratchet turns.
fn scripted(seed: u64) -> (Vec<Msg>, Session, Session) {
    let Pair { mut alice, mut bob, mut rng } = pair(seed);
    let mut transcript = Vec::new();
    for round in 0..4 {
        let a = send(&mut alice, &mut rng, round * 10, 3);
        for i in [2, 0, 1] {
            accepted(&mut bob, &a[i], &text(round * 10 + i));
        }
        let b = send(&mut bob, &mut rng, round * 10 + 5, 2);
        for i in [1, 0] {
            accepted(&mut alice, &b[i], &text(round * 10 + 5 + i));
        }
        transcript.extend(a.into_iter().chain(b));
    }
    (transcript, alice, bob)
}

#[test]
fn same_seed_same_bytes() {
    let (t1, alice1, bob1) = scripted(17);
    let (t2, alice2, bob2) = scripted(17);
    let encoded = |t: &[Msg]| -> Vec<Vec<u8>> {
        t.iter().map(|(h, ct)| [h.encode().as_slice(), ct].concat()).collect()
    };
    assert_eq!(encoded(&t1), encoded(&t2));
    assert_eq!((alice1, bob1), (alice2, bob2));

    let (t3, ..) = scripted(18);
    let (e1, e3) = (encoded(&t1), encoded(&t3));
    assert!(e1.iter().zip(&e3).all(|(a, b)| a != b), "another seed shares no message");
}

// ---------------------------------------------------------------------------------------------
// 7. Randomised conversations.

/// One side's batch: `order` delivers the batch's messages (a permutation of its indices); messages
/// marked in `hold` are delivered only later, after other batches, through their chain's pn.
#[derive(Clone, Debug)]
struct Turn {
    from_alice: bool,
    order: Vec<usize>,
    hold: Vec<bool>,
    /// Deliver every held message (in reverse order of holding) at the end of this turn.
    flush: bool,
    /// Which delivered message to replay at the end of this turn.
    replay: u32,
}

/// A message in flight or delivered: who receives it, the id of its plaintext, the message.
struct Sent {
    to_bob: bool,
    id: usize,
    msg: Msg,
}

fn plaintext(id: usize) -> Vec<u8> {
    let mut p = format!("#{id}:").into_bytes();
    p.resize(p.len() + id % 41, b'.');
    p
}

struct Conversation {
    alice: Session,
    bob: Session,
    rng: ChaCha20Rng,
    next_id: usize,
    held: Vec<Sent>,
    delivered: Vec<Sent>,
    ids: BTreeSet<usize>,
}

impl Conversation {
    fn new(seed: u64) -> Self {
        let Pair { alice, bob, rng } = pair(seed);
        Self { alice, bob, rng, next_id: 0, held: vec![], delivered: vec![], ids: BTreeSet::new() }
    }

    fn session(&mut self, bob: bool) -> &mut Session {
        if bob { &mut self.bob } else { &mut self.alice }
    }

    /// Delivers `sent`, which must decrypt to its own plaintext, exactly once.
    fn deliver(&mut self, sent: Sent) {
        let (h, ct) = &sent.msg;
        let got = self.session(sent.to_bob).decrypt(h, ct);
        assert_eq!(got, Ok(plaintext(sent.id)), "message #{}", sent.id);
        assert!(self.ids.insert(sent.id), "message #{} decrypted twice", sent.id);
        self.delivered.push(sent);
    }

    /// Replays an already delivered message: refused, and nothing changes.
    fn replay(&mut self, index: usize) {
        let Some(sent) = self.delivered.get(index) else { return };
        let (to_bob, msg) = (sent.to_bob, sent.msg.clone());
        let session = self.session(to_bob);
        let before = session.clone();
        let got = session.decrypt(&msg.0, &msg.1);
        assert!(
            matches!(got, Err(RatchetError::Replayed | RatchetError::DecryptFailed)),
            "replay gave {got:?}"
        );
        assert_eq!(*session, before);
    }

    fn play(&mut self, turn: &Turn) {
        let to_bob = turn.from_alice;
        let sender_is_bob = !turn.from_alice;
        if sender_is_bob && !self.bob.has_received() {
            let before = self.bob.clone();
            assert_eq!(self.bob.encrypt(b"x", &mut self.rng), Err(RatchetError::NoSession));
            assert_eq!(self.bob, before);
            return;
        }
        let mut batch: Vec<Option<Sent>> = Vec::new();
        for _ in &turn.order {
            let id = self.next_id;
            self.next_id += 1;
            let mut rng = self.rng.clone();
            let msg = self.session(sender_is_bob).encrypt(&plaintext(id), &mut rng).unwrap();
            self.rng = rng;
            batch.push(Some(Sent { to_bob, id, msg }));
        }
        for &i in &turn.order {
            let Some(sent) = batch[i].take() else { unreachable!("order is a permutation") };
            if turn.hold[i] { self.held.push(sent) } else { self.deliver(sent) }
        }
        if turn.flush {
            while let Some(sent) = self.held.pop() {
                self.deliver(sent);
            }
        }
        if !self.delivered.is_empty() {
            self.replay(turn.replay as usize % self.delivered.len());
        }
    }

    /// Delivers everything still held, then replays every `stride`-th delivered message.
    fn finish(&mut self, stride: usize) {
        while let Some(sent) = self.held.pop() {
            self.deliver(sent);
        }
        assert_eq!(self.ids.len(), self.next_id, "every message decrypted exactly once");
        assert_eq!((self.alice.skipped_key_count(), self.bob.skipped_key_count()), (0, 0));
        for index in (0..self.delivered.len()).step_by(stride) {
            self.replay(index);
        }
    }
}

/// Plays `turns`, then replays every `replay_stride`-th delivered message; returns how many
/// messages were sent.
fn run(seed: u64, turns: &[Turn], replay_stride: usize) -> usize {
    let mut c = Conversation::new(seed);
    for turn in turns {
        c.play(turn);
    }
    c.finish(replay_stride);
    c.next_id
}

fn turn_strategy(max_batch: usize) -> impl Strategy<Value = Turn> {
    (any::<bool>(), 1..=max_batch)
        .prop_flat_map(|(from_alice, n)| {
            (
                Just(from_alice),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
                proptest::collection::vec(proptest::bool::weighted(0.15), n),
                proptest::bool::weighted(0.3),
                any::<u32>(),
            )
        })
        .prop_map(|(from_alice, order, hold, flush, replay)| Turn {
            from_alice,
            order,
            hold,
            flush,
            replay,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Up to 10 turns of up to 10 messages, random directions, shuffled and held-back deliveries.
    #[test]
    fn random_conversations(
        seed in any::<u64>(),
        turns in proptest::collection::vec(turn_strategy(10), 1..=10),
    ) {
        run(seed, &turns, 1);
    }
}

/// The same conversation model, 5000 messages, decisions from a seeded RNG. Besides the one replay
/// per turn, every `REPLAY_STRIDE`-th message is replayed at the end (replaying all 5000 costs a DH
/// each for old chains, seconds in a debug build, and tests nothing the random conversations do
/// not).
#[test]
fn five_thousand_message_conversation() {
    const REPLAY_STRIDE: usize = 10;
    let mut decide = ChaCha20Rng::seed_from_u64(19);
    let mut turns = Vec::new();
    let mut total = 0usize;
    while total < 5000 {
        let n = (decide.next_u32() as usize % 20 + 1).min(5000 - total);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, decide.next_u32() as usize % (i + 1));
        }
        turns.push(Turn {
            from_alice: decide.next_u32() % 2 == 0,
            hold: (0..n).map(|_| decide.next_u32() % 10 == 0).collect(),
            order,
            flush: decide.next_u32() % 4 == 0,
            replay: decide.next_u32(),
        });
        total += n;
    }
    let sent = run(20, &turns, REPLAY_STRIDE);
    // Turns by Bob before he has heard from Alice send nothing.
    assert!(sent > 4900, "{sent}");
}
