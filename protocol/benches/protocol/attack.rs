//! What refusing hostile input costs (SPEC §12.5, §16.3): the worst forged envelope against a peer
//! with every session slot in use, priced against the bound SPEC §12.5 states; and refusing an
//! authentic but unexpected frame (an unsolicited `Bundle`) and an envelope from a sender without
//! a session, in a client with a fresh state and in one with the largest state peers can give it.

use criterion::{BatchSize, Criterion, Throughput};
use e2e_protocol::e2e::envelope::{EnvelopeBody, RatchetMessage};
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::ratchet::Header;
use e2e_protocol::e2e::{MAX_ARCHIVED_SESSIONS, MAX_PEERS};
use e2e_protocol::roles::{Client, ClientEvent};
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{Envelope, FetchedBundle, Message, MessageId, Name};

use super::fixtures::{BOB_LINK, World, body, measured, must, name, rng};

pub const GROUP: &str = "attack";

/// Sessions one peer can have at Bob: the current one and the archived ones.
pub const SESSIONS: usize = 1 + MAX_ARCHIVED_SESSIONS;

/// The forged header's `n`: each of the [`SESSIONS`] attempts derives `n` keys of a new chain, so
/// together they spend the envelope's whole `KDF_CK` budget (`MAX_ENVELOPE_CHAIN_STEPS`), each
/// with its own ratchet DH and AEAD open: the most one envelope can cost (SPEC §12.5).
pub const FORGED_N: u32 = 2 * e2e_protocol::e2e::ratchet::MAX_SKIP / SESSIONS as u32;

/// Length of the forged envelope's ciphertext.
pub const FORGED_CT: usize = 48;

/// Bob's e2e state with [`SESSIONS`] sessions from Alice (each answered once), and a forged
/// ratchet envelope "from alice" that turns the ratchet in every one of them.
fn sessions_and_forgery() -> (Peers, Name, Name, Envelope) {
    let mut rng = rng(11);
    let (alice_name, bob_name) = (name("alice"), name("bob"));
    let mut bob = Peers::generate(&mut rng);
    let upload = must(bob.prepare_upload());
    for i in 0..SESSIONS {
        // One identity per peer (SPEC §11.3): every session is the same Alice's, restarted.
        let mut alice = Peers::generate(&mut rng_for_alice());
        let bundle = FetchedBundle {
            identity: *upload.identity(),
            signed_prekey: *upload.signed_prekey(),
            one_time_prekey: upload.one_time_prekeys().get(i).copied(),
        };
        must(alice.start_session(&alice_name, &bob_name, &bundle, &mut rng));
        let envelope = must(alice.encrypt(&bob_name, &body(8), &mut rng));
        must(bob.decrypt(&bob_name, &alice_name, &envelope));
    }
    let header = Header { dh: PrivateKey::generate(&mut rng).public_key(), pn: 0, n: FORGED_N };
    let forged =
        EnvelopeBody::Ratchet(RatchetMessage { header, ciphertext: vec![0x5a; FORGED_CT] });
    (bob, alice_name, bob_name, must(Envelope::new(forged.encode())))
}

/// Alice's identity is drawn from this RNG every time: the same Alice.
fn rng_for_alice() -> rand_chacha::ChaCha20Rng {
    rng(12)
}

/// Bob (a client) with `peers` peers, each of whose first messages made him store skipped keys.
fn bob_with_peers(peers: usize) -> (World, Message) {
    let mut world = World::new(true);
    let bundle = must(world.server.take_bundle(&name("bob")).ok_or("no bundle"));
    let bundle = FetchedBundle { one_time_prekey: None, ..bundle };
    for i in 0..peers {
        let from = name(&format!("p{i}"));
        let mut sender = Peers::generate(&mut world.rng);
        must(sender.start_session(&from, &name("bob"), &bundle, &mut world.rng));
        // The 41st message first: Bob stores 40 keys per peer (10,240 keys over 256 peers, of
        // which he keeps MAX_SKIPPED_KEYS_PER_CLIENT).
        let mut last = None;
        for _ in 0..=40 {
            last = Some(must(sender.encrypt(&name("bob"), &body(8), &mut world.rng)));
        }
        let envelope = must(last.ok_or("no envelope"));
        let frame =
            must(world.server.seal_transport(
                BOB_LINK,
                &Message::E2eDeliver { id: MessageId(1), from, envelope },
            ));
        let out = must(world.bob.handle(&frame, &mut world.rng));
        assert!(out.events.iter().any(|e| matches!(e, ClientEvent::Received { .. })), "{out:?}");
    }
    (world, Message::Bundle { name: name("nobody"), bundle })
}

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    group.throughput(Throughput::Elements(1));

    let (bob, alice_name, bob_name, forged) = sessions_and_forgery();
    group.bench_function("forged_envelope_worst_case", |b| {
        b.iter_batched_ref(
            || bob.clone(),
            |bob| measured(|| assert!(bob.decrypt(&bob_name, &alice_name, &forged).is_err())),
            BatchSize::SmallInput,
        );
    });

    for (label, peers) in [("fresh_state", 0), ("largest_state", MAX_PEERS)] {
        let (world, unsolicited) = bob_with_peers(peers);
        let server = world.server.clone();
        let bob: Client = world.bob.clone();
        // Every iteration starts from the same Bob and the same server, so the frame sealed for it
        // (outside the timing) carries the nonce that Bob's channel expects next.
        let seal = |message: &Message| must(server.clone().seal_transport(BOB_LINK, message));
        group.bench_function(format!("refuse_unsolicited_bundle/{label}"), |b| {
            b.iter_batched_ref(
                || (bob.clone(), seal(&unsolicited), rng(5)),
                |(bob, frame, rng)| {
                    measured(|| {
                        let out = must(bob.handle(frame, rng));
                        assert!(matches!(out.events[..], [ClientEvent::Dropped { .. }]));
                    });
                },
                BatchSize::LargeInput,
            );
        });
        // A ratchet message "from" a name Bob has no session with.
        let stranger = Message::E2eDeliver {
            id: MessageId(3),
            from: name("stranger"),
            envelope: forged.clone(),
        };
        group.bench_function(format!("refuse_envelope_from_stranger/{label}"), |b| {
            b.iter_batched_ref(
                || (bob.clone(), seal(&stranger), rng(6)),
                |(bob, frame, rng)| {
                    measured(|| {
                        let out = must(bob.handle(frame, rng));
                        assert!(matches!(out.events[..], [ClientEvent::Dropped { .. }]));
                    });
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}
