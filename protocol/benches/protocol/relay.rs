//! A message from Alice through the server to Bob, with everyone's work: Alice seals, the server
//! opens, checks and re-seals it for Bob and seals Alice's `Ack`, Bob opens it, Alice opens the
//! `Ack` (SPEC §5.2, §15).

use criterion::{BenchmarkId, Criterion, Throughput};
use e2e_protocol::roles::{ClientEvent, ServerEvent};
use e2e_protocol::wire::{Body, Name};

use super::fixtures::{ALICE_LINK, BOB_LINK, SIZES, World, body, measured, must, name};

pub const GROUP: &str = "relay";

impl World {
    /// Alice seals `body` for `to` into `self.io.frame`, an e2e message in the session she has.
    fn send_e2e(&mut self, to: &Name, body: &Body) {
        must(self.alice.send_e2e_into(to, body, &mut self.rng, &mut self.io.frame));
    }

    /// Relays the frame Alice wrote into `self.io.frame` to Bob, and the `Ack` back, through the
    /// roles' in-place API, as a driver that reuses its buffers does: every frame is read in the
    /// buffer it arrived in, sealed into a buffer from the pool, and given back once "sent"; the
    /// output lists are cleared, not dropped; the bodies read (the server's and Bob's) are given
    /// back too once looked at. Returns the length of the body Bob received.
    fn relay(&mut self) -> usize {
        let io = &mut self.io;
        must(self.server.handle_in_place(
            ALICE_LINK,
            &mut io.frame,
            &mut self.rng,
            &mut io.server,
            &mut io.pool,
        ));
        for (link, mut frame) in io.server.transmit.drain(..) {
            let client = if link == BOB_LINK { &mut self.bob } else { &mut self.alice };
            must(client.handle_in_place(&mut frame, &mut self.rng, &mut io.client, &mut io.pool));
            io.pool.recycle(frame);
        }
        for event in io.server.events.drain(..) {
            if let ServerEvent::Read { body, .. } = event {
                io.pool.recycle(body.into_buffer());
            }
        }
        // Checked in every iteration (a few ns): a refused message must not be timed as relayed.
        let mut received = None;
        for event in io.client.events.drain(..) {
            match event {
                ClientEvent::Received { body, .. } => {
                    received = Some(body.as_bytes().len());
                    io.pool.recycle(body.into_buffer());
                }
                ClientEvent::Acked { .. } => {}
                other => panic!("bench fixture: {other:?}"),
            }
        }
        must(received.ok_or("nothing received"))
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
            b.iter(|| {
                measured(|| {
                    must(world.alice.send_into(&bob, &message, &mut world.io.frame));
                    world.relay()
                });
            });
        });

        // Alice's first message after Bob's answer turns the DH ratchet: relayed here, not in the
        // measurement, so that every measured message is an ordinary chain step.
        let mut world = World::new(true);
        world.send_e2e(&bob, &message);
        world.relay();
        group.bench_with_input(BenchmarkId::new("e2e", size), &size, |b, _| {
            b.iter(|| {
                measured(|| {
                    world.send_e2e(&bob, &message);
                    world.relay()
                });
            });
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
