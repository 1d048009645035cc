//! The channel (SPEC §4): a full Noise IK handshake, and transport messages.

use criterion::{BenchmarkId, Criterion, Throughput};
use e2e_protocol::channel::{Initiator, PROLOGUE, Responder, TRANSPORT_OVERHEAD, Transport};
use e2e_protocol::suite::PrivateKey;

use super::fixtures::{SIZES, measured, must, rng};

pub const GROUP: &str = "channel";

/// Both ends of a finished handshake.
fn handshake(
    client: &PrivateKey,
    server: &PrivateKey,
    ephemerals: (PrivateKey, PrivateKey),
) -> (Transport, Transport) {
    let initiator = Initiator::new(PROLOGUE, client.clone(), server.public_key());
    let (awaiting, m1) = must(initiator.write_message_1(ephemerals.0, &[]));
    let received = must(Responder::new(PROLOGUE, server.clone()).read_message_1(&m1));
    let (responder, m2) = must(received.write_message_2(ephemerals.1, &[]));
    let (initiator, _) = must(awaiting.read_message_2(&m2));
    (initiator, responder)
}

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    let mut rng = rng(1);
    let client = PrivateKey::generate(&mut rng);
    let server = PrivateKey::generate(&mut rng);

    // Messages 1 and 2 written and read, empty payloads. Drawing the two ephemeral keys (32 random
    // bytes and a public key each) is part of the handshake, so it is measured.
    group.throughput(Throughput::Elements(1));
    group.bench_function("handshake", |b| {
        b.iter(|| {
            measured(|| {
                let ephemerals = (PrivateKey::generate(&mut rng), PrivateKey::generate(&mut rng));
                handshake(&client, &server, ephemerals)
            })
        });
    });

    // One transport message written by one end and read by the other, in place in one buffer
    // that serves every message (`write_in_place`, `read_in_place`): what the channel costs
    // beyond the AEAD, without the buffers `write` and `read` allocate for their results.
    let (mut sender, mut receiver) = handshake(
        &client,
        &server,
        (PrivateKey::generate(&mut rng), PrivateKey::generate(&mut rng)),
    );
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buffer = Vec::with_capacity(size + TRANSPORT_OVERHEAD);
        buffer.resize(size, 7u8);
        group.bench_with_input(BenchmarkId::new("transport", size), &size, |b, _| {
            b.iter(|| {
                measured(|| {
                    must(sender.write_in_place(&mut buffer, 0));
                    must(receiver.read_in_place(&mut buffer, 0));
                })
            });
        });
    }
    group.finish();
}
