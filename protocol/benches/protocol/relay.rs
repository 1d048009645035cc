//! A message from Alice through the server to Bob, with everyone's work: Alice seals, the server
//! opens, checks and re-seals it for Bob and seals Alice's `Ack`, Bob opens it, Alice opens the
//! `Ack` (SPEC §5.2, §15).

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use e2e_protocol::roles::{ClientEvent, ClientOutputs};
use e2e_protocol::wire::{Body, Name};

use super::fixtures::{ALICE_LINK, BOB_LINK, SIZES, World, body, measured, must, name};

pub const GROUP: &str = "relay";

impl World {
    /// Relays one frame Alice sent to Bob, and the `Ack` back. Returns what Bob's client reported.
    fn relay(&mut self, frame: &[u8]) -> ClientOutputs {
        let out = must(self.server.handle(ALICE_LINK, frame, &mut self.rng));
        let mut delivered = ClientOutputs::default();
        for (link, frame) in &out.transmit {
            if *link == BOB_LINK {
                delivered = must(self.bob.handle(frame, &mut self.rng));
            } else {
                must(self.alice.handle(frame, &mut self.rng));
            }
        }
        // Checked in every iteration (a few ns): a refused message must not be timed as relayed.
        assert!(matches!(delivered.events.as_slice(), [ClientEvent::Received { .. }]));
        delivered
    }
}

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    let bob = name("bob");
    for size in SIZES {
        let message = body(size);
        group.throughput(Throughput::Bytes(size as u64));

        let mut world = World::new(false);
        group.bench_with_input(BenchmarkId::new("hop", size), &size, |b, _| {
            b.iter_batched(
                || message.clone(),
                |message: Body| {
                    measured(|| {
                        let (_, frame) = must(world.alice.send(&bob, message));
                        world.relay(&frame)
                    })
                },
                BatchSize::SmallInput,
            );
        });

        // Alice's first message after Bob's answer turns the DH ratchet: relayed here, not in the
        // measurement, so that every measured message is an ordinary chain step.
        let mut world = World::new(true);
        let out = must(world.alice.send_e2e(&bob, message.clone(), &mut world.rng));
        world.relay(&out.transmit[0]);
        group.bench_with_input(BenchmarkId::new("e2e", size), &size, |b, _| {
            b.iter_batched(
                || message.clone(),
                |message: Body| {
                    measured(|| {
                        let out = must(world.alice.send_e2e(&bob, message, &mut world.rng));
                        world.relay(&out.transmit[0])
                    })
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// The bytes each channel message of a relayed message carries, for the floor: Alice's frame to
/// the server, the server's frame to Bob, and the `Ack`.
pub fn channel_plaintexts(e2e: bool, size: usize) -> [usize; 3] {
    let mut world = World::new(e2e);
    let bob: Name = name("bob");
    let frame = if e2e {
        let out = must(world.alice.send_e2e(&bob, body(size), &mut world.rng));
        out.transmit[0].clone()
    } else {
        must(world.alice.send(&bob, body(size))).1
    };
    let out = must(world.server.handle(ALICE_LINK, &frame, &mut world.rng));
    let plaintext = |frame: &[u8]| frame.len() - e2e_protocol::wire::HEADER_LEN - 16;
    let to_bob = out.transmit.iter().find(|(l, _)| *l == BOB_LINK).map(|(_, f)| plaintext(f));
    let ack = out.transmit.iter().find(|(l, _)| *l == ALICE_LINK).map(|(_, f)| plaintext(f));
    [plaintext(&frame), to_bob.unwrap_or(0), ack.unwrap_or(0)]
}
