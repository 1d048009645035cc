//! e2e without the server (SPEC §10–§13): session setup, then messages in one direction (symmetric
//! ratchet only), alternating (a DH ratchet step every message), and out of order.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::safety_number::SafetyNumber;
use e2e_protocol::roles::Directory;
use e2e_protocol::wire::{Body, FetchedBundle, Name};
use rand_chacha::ChaCha20Rng;

use super::fixtures::{SIZES, body, measured, must, name, rng};

pub const GROUP: &str = "e2e";

/// Messages in the out-of-order bench.
pub const OUT_OF_ORDER: usize = 100;

struct Pair {
    alice: Peers,
    bob: Peers,
    alice_name: Name,
    bob_name: Name,
    rng: ChaCha20Rng,
}

impl Pair {
    /// Sends `body` from one side to the other and checks it arrived.
    fn send(&mut self, from_alice: bool, body: &Body) {
        let (sender, receiver, to, from) = if from_alice {
            (&mut self.alice, &mut self.bob, &self.bob_name, &self.alice_name)
        } else {
            (&mut self.bob, &mut self.alice, &self.alice_name, &self.bob_name)
        };
        let envelope = must(sender.encrypt(to, body, &mut self.rng));
        // The receiver gives up the envelope it received, as a client does with the one it
        // decoded: decrypted in its own buffer, not in a copy (`decrypt` copies it first).
        let decrypted = must(receiver.decrypt_owned(to, from, envelope));
        // Checked in every iteration: a wrong decryption must not be timed as a message.
        assert_eq!(decrypted.body.as_bytes().len(), body.as_bytes().len());
    }
}

/// Alice, Bob with his bundle published, and the bundle as Alice fetches it (with a one-time
/// prekey).
fn fresh() -> (Pair, FetchedBundle) {
    let mut rng = rng(2);
    let alice = Peers::generate(&mut rng);
    let mut bob = Peers::generate(&mut rng);
    let bob_name = name("bob");
    let mut directory = Directory::default();
    must(directory.upload(&bob_name, &must(bob.prepare_upload())));
    let bundle = must(directory.fetch(&bob_name).ok_or("no bundle"));
    assert!(bundle.one_time_prekey.is_some());
    (Pair { alice, bob, alice_name: name("alice"), bob_name, rng }, bundle)
}

/// A session both sides have used: Alice started it, each sent one message.
fn answered() -> Pair {
    let (mut pair, bundle) = fresh();
    must(pair.alice.start_session(&pair.alice_name, &pair.bob_name, &bundle, &mut pair.rng));
    pair.send(true, &body(8));
    pair.send(false, &body(8));
    pair
}

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);

    // Bundle validation and X3DH on both sides, and the first (prekey) message, 64 bytes.
    let (pair, bundle) = fresh();
    let first = body(64);
    group.throughput(Throughput::Elements(1));
    group.bench_function("session_setup", |b| {
        b.iter_batched_ref(
            || (pair.alice.clone(), pair.bob.clone(), rng(3)),
            |(alice, bob, rng)| {
                measured(|| {
                    must(alice.start_session(&pair.alice_name, &pair.bob_name, &bundle, rng));
                    let envelope = must(alice.encrypt(&pair.bob_name, &first, rng));
                    must(bob.decrypt(&pair.bob_name, &pair.alice_name, &envelope))
                })
            },
            BatchSize::SmallInput,
        );
    });

    for size in SIZES {
        let message = body(size);
        group.throughput(Throughput::Bytes(size as u64));

        // Alice to Bob every time: one chain step on each side, no DH. (Her first message after
        // Bob's answer turns the DH ratchet: sent here, not in the measurement.)
        let mut pair = answered();
        pair.send(true, &message);
        group.bench_with_input(BenchmarkId::new("symmetric", size), &size, |b, _| {
            b.iter(|| measured(|| pair.send(true, &message)));
        });

        // Turn about: each message is a new DH ratchet step (the sender draws a key, both DH).
        let mut pair = answered();
        let mut from_alice = true;
        group.bench_with_input(BenchmarkId::new("alternating", size), &size, |b, _| {
            b.iter(|| {
                measured(|| {
                    pair.send(from_alice, &message);
                    from_alice = !from_alice;
                })
            });
        });
    }

    // 100 messages of 64 bytes, encrypted in order and delivered last first: the receiver derives
    // and stores 99 skipped keys on the first, then takes each of the others from the store. Alice
    // has sent last, so all 100 are in one sending chain (no DH ratchet step in the measurement).
    let mut pair = answered();
    pair.send(true, &body(8));
    let message = body(64);
    group.throughput(Throughput::Elements(OUT_OF_ORDER as u64));
    group.bench_function("out_of_order_100", |b| {
        b.iter_batched_ref(
            || (pair.alice.clone(), pair.bob.clone(), rng(4)),
            |(alice, bob, rng)| {
                measured(|| {
                    let envelopes: Vec<_> = (0..OUT_OF_ORDER)
                        .map(|_| must(alice.encrypt(&pair.bob_name, &message, rng)))
                        .collect();
                    for envelope in envelopes.iter().rev() {
                        must(bob.decrypt(&pair.bob_name, &pair.alice_name, envelope));
                    }
                });
            },
            BatchSize::SmallInput,
        );
    });

    // The safety number of two identities (SPEC §14.1: 5200 SHA-512 iterations per side), which a
    // client computes when its user asks for it.
    let (alice, bob) = (pair.alice.identity(), pair.bob.identity());
    group.throughput(Throughput::Elements(1));
    group.bench_function("safety_number", |b| {
        b.iter(|| {
            measured(|| SafetyNumber::new((&alice, &pair.alice_name), (&bob, &pair.bob_name)))
        });
    });
    group.finish();
}
