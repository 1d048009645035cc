//! The codec (SPEC §3, §13): decode then re-encode one frame of each type.

use criterion::{BenchmarkId, Criterion, Throughput};
use e2e_protocol::channel::{Initiator, PROLOGUE, Responder};
use e2e_protocol::e2e::envelope::EnvelopeBody;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::Directory;
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{
    AckStatus, BundleRefusal, Codec, LinkFrame, Message, MessageId, RefusalReason, RejectReason,
};

use super::fixtures::{body, must, name, rng};

pub const GROUP: &str = "codec";

/// Named encodings: `(type name, bytes)`.
type Samples = Vec<(&'static str, Vec<u8>)>;

/// One value of every link-frame and message type, with realistic contents: real handshake
/// messages, bundles and envelopes, 64-byte bodies.
fn samples() -> (Samples, Samples) {
    let mut rng = rng(5);
    let (client, server) = (PrivateKey::generate(&mut rng), PrivateKey::generate(&mut rng));
    let register = Message::Register { name: name("alice") }.encode();
    let initiator = Initiator::new(PROLOGUE, client, server.public_key());
    let (_, m1) = must(initiator.write_message_1(PrivateKey::generate(&mut rng), &register));
    let received = must(Responder::new(PROLOGUE, server).read_message_1(&m1));
    let welcome = Message::Welcome { name: name("alice") }.encode();
    let (mut transport, m2) =
        must(received.write_message_2(PrivateKey::generate(&mut rng), &welcome));
    let links = vec![
        ("HandshakeInit", must(LinkFrame::handshake_init(m1)).encode()),
        ("HandshakeResp", must(LinkFrame::handshake_resp(m2)).encode()),
        ("Transport", must(LinkFrame::transport(must(transport.write(&[9; 1024])))).encode()),
    ];

    let mut alice = Peers::generate(&mut rng);
    let mut bob = Peers::generate(&mut rng);
    let upload = must(bob.prepare_upload());
    let mut directory = Directory::default();
    must(directory.upload(&name("bob"), &upload));
    let bundle = must(directory.fetch(&name("bob")).ok_or("no bundle"));
    must(alice.start_session(&name("alice"), &name("bob"), &bundle, &mut rng));
    let envelope = must(alice.encrypt(&name("bob"), &body(64), &mut rng));
    let (id, alice_name, bob_name) = (MessageId(42), name("alice"), name("bob"));
    let messages = [
        Message::Register { name: alice_name.clone() },
        Message::Welcome { name: alice_name.clone() },
        Message::Refused { reason: RefusalReason::NameTaken },
        Message::Ready,
        Message::Send { id, to: bob_name.clone(), body: body(64) },
        Message::Deliver { id, from: alice_name.clone(), body: body(64) },
        Message::Ack { id, status: AckStatus::Relayed },
        Message::Reject { id, reason: RejectReason::UnknownRecipient },
        Message::UploadBundle { bundle: upload },
        Message::BundleStored { one_time_prekeys: 10 },
        Message::BundleRefused { reason: BundleRefusal::BadSignature },
        Message::FetchBundle { name: bob_name.clone() },
        Message::Bundle { name: bob_name.clone(), bundle },
        Message::NoBundle { name: bob_name.clone() },
        Message::E2eSend { id, to: bob_name, envelope: envelope.clone() },
        Message::E2eDeliver { id, from: alice_name, envelope },
    ];
    let messages = messages.iter().map(|m| (m.type_name(), m.encode())).collect();
    (links, messages)
}

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    let (links, messages) = samples();
    for (type_name, bytes) in links {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("link", type_name), &bytes, |b, bytes| {
            b.iter(|| must(LinkFrame::decode(bytes)).encode());
        });
    }
    for (type_name, bytes) in &messages {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("message", type_name), bytes, |b, bytes| {
            b.iter(|| must(Message::decode(bytes)).encode());
        });
    }
    // The envelope inside E2eSend: the server never parses it; the recipient does.
    let e2e_send = messages.iter().find(|(t, _)| *t == "E2eSend").map(|(_, b)| b.as_slice());
    let Message::E2eSend { envelope, .. } = must(Message::decode(must(e2e_send.ok_or("none"))))
    else {
        panic!("E2eSend decoded to another message");
    };
    let bytes = envelope.as_bytes().to_vec();
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_with_input(BenchmarkId::new("envelope", "Prekey"), &bytes, |b, bytes| {
        b.iter(|| must(EnvelopeBody::decode(bytes)).encode());
    });
    group.finish();
}
