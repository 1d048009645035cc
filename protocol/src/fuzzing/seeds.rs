//! The seed corpus: valid frames and short transcripts for every target, deterministic.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus` writes them to
//! `fuzz/corpus/<target>/seed-<name>`; `protocol/tests/fuzz_corpus.rs` replays the committed files
//! and these seeds. Operation sequences are encoded with `input::Encode` (a trait private to the
//! fuzzing module), and every seed is checked to decode back to exactly the operations it was made
//! from.

use arbitrary::Arbitrary;

use crate::e2e::peers::Peers;
use crate::roles::LinkId;
use crate::roles::Server;
use crate::suite::PrivateKey;
use crate::wire::{
    AckStatus, Body, BundleRefusal, Codec, Envelope, FetchedBundle, LinkFrame, Message, MessageId,
    RefusalReason, RejectReason,
};

use super::bundle_parse::{Batch, Core, IdentityChoice, KeyChoice, SignatureChoice};
use super::channel_handshake::{Mode, TransportOp};
use super::e2e_receive::Id;
use super::hop_server::Request;
use super::input::{Bytes, Encode, Mutation, NameChoice, SmallBytes, decode_all, encode_all, name};
use super::must;
use super::net::{hand_handshake, rng, seal_message};
use super::roles_sequence::{Queue, Setup, Who};

/// One corpus file.
#[derive(Clone, Debug)]
pub struct Seed {
    /// The target whose corpus it belongs to.
    pub target: &'static str,
    /// The file name: `seed-<what it is>`.
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let mut out = wire_decode();
    out.extend(frame_stream(&out));
    out.extend(channel_handshake());
    out.extend(channel_snow());
    out.extend(hop_server());
    out.extend(e2e_receive());
    out.extend(hop_receive());
    out.extend(bundle_parse());
    out.extend(roles_sequence());
    out
}

/// A structured seed, checked to decode back to `head` and `ops`: a change in how `arbitrary`
/// decodes fails here instead of silently turning the corpus into noise.
fn structured<H, T>(target: &'static str, name: &str, head: &H, ops: &[T]) -> Seed
where
    H: Encode + for<'a> Arbitrary<'a> + PartialEq + core::fmt::Debug,
    T: Encode + for<'a> Arbitrary<'a> + PartialEq + core::fmt::Debug,
{
    assert!(ops.len() <= super::input::MAX_OPS, "seed {name} is longer than an input may be");
    let bytes = encode_all(head, ops);
    let decoded = must(decode_all::<H, T>(&bytes).ok_or("nothing decoded"), "seed decodes");
    assert!(
        decoded.0 == *head && decoded.1 == ops,
        "seed {name} decodes to {decoded:?}, not what it was made from"
    );
    Seed { target, name: format!("seed-{name}"), bytes }
}

fn raw(target: &'static str, name: &str, bytes: Vec<u8>) -> Seed {
    Seed { target, name: format!("seed-{name}"), bytes }
}

fn body(text: &str) -> Body {
    must(Body::new(text.as_bytes().to_vec()), "body")
}

fn small(text: &str) -> SmallBytes {
    SmallBytes(text.as_bytes().to_vec())
}

/// Every message type, the three link frames and both envelope kinds, made by the real code.
fn wire_decode() -> Vec<Seed> {
    const T: &str = "wire_decode";
    let mut rng = rng(0x5345_4544);
    let mut server = Server::new(PrivateKey::generate(&mut rng));
    let register = Message::Register { name: name("alice") }.encode();
    let key = PrivateKey::generate(&mut rng);
    let (result, client, init) = hand_handshake(&mut server, LinkId(1), key, &register, &mut rng);
    let resp =
        must(result, "handshake").transmit.first().map(|(_, f)| f.clone()).unwrap_or_default();
    let mut client = must(client.ok_or("refused"), "handshake");
    let ready = seal_message(&mut client.transport, &Message::Ready);

    let mut alice = Peers::generate(&mut rng);
    let mut bob = Peers::generate(&mut rng);
    let upload = must(bob.prepare_upload(), "upload");
    let fetched = FetchedBundle {
        identity: *upload.identity(),
        signed_prekey: *upload.signed_prekey(),
        one_time_prekey: upload.one_time_prekeys().first().copied(),
    };
    must(alice.start_session(&name("alice"), &name("bob"), &fetched, &mut rng), "session");
    let prekey = must(alice.encrypt(&name("bob"), &body("hi"), &mut rng), "encrypt");
    must(bob.decrypt(&name("bob"), &name("alice"), &prekey), "decrypt");
    let ratchet = must(bob.encrypt(&name("alice"), &body("ho"), &mut rng), "encrypt");

    let messages = [
        ("register", Message::Register { name: name("alice") }),
        ("welcome", Message::Welcome { name: NameChoice::Longest.name() }),
        ("refused", Message::Refused { reason: RefusalReason::NameTaken }),
        ("refused-key-in-use", Message::Refused { reason: RefusalReason::KeyInUse }),
        ("refused-server-full", Message::Refused { reason: RefusalReason::ServerFull }),
        ("ready", Message::Ready),
        ("send", Message::Send { id: MessageId(1), to: name("bob"), body: body("meet at noon") }),
        (
            "deliver",
            Message::Deliver { id: MessageId(u64::MAX), from: name("alice"), body: body("") },
        ),
        ("ack", Message::Ack { id: MessageId(1), status: AckStatus::Queued }),
        ("reject", Message::Reject { id: MessageId(2), reason: RejectReason::MailboxFull }),
        (
            "reject-server-full",
            Message::Reject { id: MessageId(3), reason: RejectReason::ServerFull },
        ),
        ("upload-bundle", Message::UploadBundle { bundle: upload }),
        ("bundle-stored", Message::BundleStored { one_time_prekeys: 10 }),
        ("bundle-refused", Message::BundleRefused { reason: BundleRefusal::DuplicatePrekeyId }),
        ("fetch-bundle", Message::FetchBundle { name: name("bob") }),
        ("bundle", Message::Bundle { name: name("bob"), bundle: fetched }),
        (
            "bundle-without-one-time-prekey",
            Message::Bundle {
                name: name("bob"),
                bundle: FetchedBundle { one_time_prekey: None, ..fetched },
            },
        ),
        ("no-bundle", Message::NoBundle { name: name("carol") }),
        ("prekeys-low", Message::PrekeysLow { one_time_prekeys: 5 }),
        (
            "e2e-send",
            Message::E2eSend { id: MessageId(3), to: name("bob"), envelope: prekey.clone() },
        ),
        (
            "e2e-deliver",
            Message::E2eDeliver { id: MessageId(3), from: name("bob"), envelope: ratchet.clone() },
        ),
    ];
    let mut seeds: Vec<Seed> =
        messages.iter().map(|(n, m)| raw(T, &format!("message-{n}"), m.encode())).collect();
    seeds.push(raw(T, "link-handshake-init", init));
    seeds.push(raw(T, "link-handshake-resp", resp));
    seeds.push(raw(T, "link-transport", ready));
    seeds.push(raw(
        T,
        "link-transport-minimal",
        must(LinkFrame::transport(vec![0; 16]), "frame").encode(),
    ));
    seeds.push(raw(T, "envelope-prekey", prekey.as_bytes().to_vec()));
    seeds.push(raw(T, "envelope-ratchet", ratchet.as_bytes().to_vec()));
    seeds
}

/// Streams of `wire_decode`'s link frames and of its messages, whole, byte by byte and in uneven
/// pieces; then with a refused header after two frames, and ending inside a frame.
fn frame_stream(wire: &[Seed]) -> Vec<Seed> {
    const T: &str = "frame_stream";
    let family = |prefix: &str| -> Vec<u8> {
        wire.iter().filter(|s| s.name.starts_with(prefix)).flat_map(|s| s.bytes.clone()).collect()
    };
    let links = family("seed-link-");
    let messages = family("seed-message-");
    let input = |messages: bool, pieces: &[u8], stream: &[u8]| {
        let n = u8::try_from(pieces.len()).unwrap_or(u8::MAX);
        [&[u8::from(messages), n][..], pieces, stream].concat()
    };
    let two = |frames: &[u8], prefix: &str| {
        wire.iter()
            .filter(|s| s.name.starts_with(prefix))
            .take(2)
            .flat_map(|s| s.bytes.clone())
            .chain(frames.iter().copied())
            .collect::<Vec<u8>>()
    };
    let mut seeds = Vec::new();
    for (messages, name, stream) in [(false, "links", &links), (true, "messages", &messages)] {
        seeds.push(raw(T, &format!("{name}-whole"), input(messages, &[], stream)));
        seeds.push(raw(T, &format!("{name}-bytewise"), input(messages, &[1], stream)));
        seeds.push(raw(T, &format!("{name}-uneven"), input(messages, &[5, 1, 0, 7, 200], stream)));
        let tail = &stream[..stream.len() - 3];
        seeds.push(raw(T, &format!("{name}-cut-short"), input(messages, &[4, 9], tail)));
    }
    let prefix = ["seed-link-", "seed-message-"];
    for (messages, prefix) in [(false, prefix[0]), (true, prefix[1])] {
        let family = if messages { "messages" } else { "links" };
        let bad = [
            ("bad-version", vec![2, 1, 0, 0, 0, 0]),
            ("unknown-type", vec![1, 0xee, 0, 0, 0, 0]),
            ("oversized", vec![1, if messages { 0x10 } else { 3 }, 0, 1, 0, 0]),
        ];
        for (what, header) in bad {
            let stream = two(&header, prefix);
            seeds.push(raw(T, &format!("{family}-{what}"), input(messages, &[3], &stream)));
        }
    }
    seeds
}

/// Handshakes whole and damaged, and transport frames in order, replayed, damaged and raw.
fn channel_snow() -> Vec<Seed> {
    use super::channel_snow::Handshake;
    const T: &str = "channel_snow";
    use TransportOp::{Deliver, Raw, Write};
    let genuine = Handshake {
        initiator_static: [1; 32],
        initiator_ephemeral: [2; 32],
        responder_static: [3; 32],
        responder_ephemeral: [4; 32],
        payload_1: SmallBytes(Message::Register { name: name("alice") }.encode()),
        payload_2: SmallBytes(Message::Welcome { name: name("alice") }.encode()),
        message_1: Mutation::None,
        message_2: Mutation::None,
    };
    let none: &[TransportOp] = &[];
    let damaged = |message_1, message_2| Handshake { message_1, message_2, ..genuine.clone() };
    let zeros = || Mutation::Overwrite { pos: 0, bytes: SmallBytes(vec![0; 32]) };
    vec![
        structured(T, "handshake", &genuine, none),
        structured(
            T,
            "empty-payloads",
            &Handshake {
                payload_1: SmallBytes::default(),
                payload_2: SmallBytes::default(),
                ..genuine.clone()
            },
            none,
        ),
        structured(
            T,
            "message-1-flipped",
            &damaged(Mutation::Flip { pos: 40, xor: 1 }, Mutation::None),
            none,
        ),
        structured(T, "message-1-low-order-ephemeral", &damaged(zeros(), Mutation::None), none),
        structured(T, "message-2-low-order-ephemeral", &damaged(Mutation::None, zeros()), none),
        structured(
            T,
            "message-2-truncated",
            &damaged(Mutation::None, Mutation::Truncate { len: 47 }),
            none,
        ),
        structured(
            T,
            "transport",
            &genuine,
            &[
                Write { to_responder: true, plaintext: small("ready") },
                Write { to_responder: false, plaintext: small("ack") },
                Write { to_responder: true, plaintext: small("two") },
                Deliver { to_responder: true, index: 1, mutation: Mutation::None },
                Deliver { to_responder: true, index: 0, mutation: Mutation::None },
                Deliver { to_responder: true, index: 0, mutation: Mutation::None },
                Deliver {
                    to_responder: false,
                    index: 0,
                    mutation: Mutation::Flip { pos: 3, xor: 8 },
                },
                Deliver { to_responder: false, index: 0, mutation: Mutation::None },
                Raw { to_responder: true, bytes: Bytes(vec![0; 16]) },
                Deliver { to_responder: true, index: 1, mutation: Mutation::None },
            ],
        ),
    ]
}

fn channel_handshake() -> Vec<Seed> {
    const T: &str = "channel_handshake";
    use TransportOp::{Deliver, Raw, Write};
    let none: &[TransportOp] = &[];
    let write = |to_responder, text: &str| Write { to_responder, plaintext: small(text) };
    let deliver = |to_responder, index, mutation| Deliver { to_responder, index, mutation };
    vec![
        structured(T, "message-1", &Mode::Message1(Mutation::None), none),
        structured(
            T,
            "message-1-flipped",
            &Mode::Message1(Mutation::Flip { pos: 40, xor: 1 }),
            none,
        ),
        structured(
            T,
            "message-1-low-order-ephemeral",
            &Mode::Message1(Mutation::Overwrite { pos: 0, bytes: SmallBytes(vec![0; 32]) }),
            none,
        ),
        structured(T, "message-1-truncated", &Mode::Message1(Mutation::Truncate { len: 95 }), none),
        structured(T, "message-2", &Mode::Message2(Mutation::None), none),
        structured(
            T,
            "message-2-low-order-ephemeral",
            &Mode::Message2(Mutation::Overwrite {
                pos: 0,
                bytes: SmallBytes([&[1][..], &[0; 31]].concat()),
            }),
            none,
        ),
        structured(
            T,
            "message-2-appended",
            &Mode::Message2(Mutation::Append(SmallBytes(vec![0]))),
            none,
        ),
        structured(
            T,
            "transport-in-order",
            &Mode::Transport,
            &[
                write(true, "one"),
                write(true, "two"),
                deliver(true, 0, Mutation::None),
                deliver(true, 1, Mutation::None),
                write(false, "back"),
                deliver(false, 0, Mutation::None),
            ],
        ),
        structured(
            T,
            "transport-replayed-reordered-forged",
            &Mode::Transport,
            &[
                write(true, "a"),
                write(true, "b"),
                deliver(true, 1, Mutation::None),
                deliver(true, 0, Mutation::None),
                deliver(true, 0, Mutation::None),
                deliver(true, 1, Mutation::Flip { pos: 3, xor: 0x80 }),
                deliver(true, 1, Mutation::Truncate { len: 15 }),
                deliver(true, 1, Mutation::None),
            ],
        ),
        structured(
            T,
            "transport-raw",
            &Mode::Transport,
            &[
                Raw { to_responder: true, bytes: Bytes(vec![7; 15]) },
                Raw { to_responder: false, bytes: Bytes(vec![0; 16]) },
            ],
        ),
        structured(
            T,
            "handshake",
            &Mode::Handshake {
                initiator_static: [1; 32],
                initiator_ephemeral: [2; 32],
                responder_ephemeral: [3; 32],
                payload_1: Bytes(Message::Register { name: name("alice") }.encode()),
                payload_2: Bytes(Message::Welcome { name: name("alice") }.encode()),
            },
            none,
        ),
    ]
}

fn hop_server() -> Vec<Seed> {
    const T: &str = "hop_server";
    use super::hop_server::Op::{Close, Connect, Raw, Replay, Seal, Send};
    let send = |channel, id, to, text: &str| Send {
        channel,
        request: Request::Send { id, to, body: Bytes(text.as_bytes().to_vec()) },
    };
    let ready = |channel| Send { channel, request: Request::Ready };
    let connect = |key, who| Connect { key, register: Some(who), payload: Bytes::default() };
    let mut full = vec![Close { link: 2 }];
    full.extend((1..=65).map(|id| send(0, id, NameChoice::Bob, "x")));
    vec![
        structured(
            T,
            "relay",
            &(),
            &[send(0, 1, NameChoice::Bob, "meet at noon"), send(1, 1, NameChoice::Alice, "ok")],
        ),
        structured(
            T,
            "e2e-relay",
            &(),
            &[Send {
                channel: 0,
                request: Request::E2eSend {
                    id: 1,
                    to: NameChoice::Bob,
                    envelope: Bytes(vec![2; 60]),
                },
            }],
        ),
        structured(T, "unknown-recipient", &(), &[send(0, 1, NameChoice::Carol, "hello?")]),
        structured(T, "to-self", &(), &[send(0, 1, NameChoice::Alice, "note to self")]),
        structured(
            T,
            "mailbox",
            &(),
            &[
                Close { link: 2 },
                send(0, 1, NameChoice::Bob, "queued"),
                send(0, 2, NameChoice::Bob, "queued too"),
                connect(1, NameChoice::Bob),
                ready(1),
            ],
        ),
        structured(T, "mailbox-full", &(), &full),
        structured(
            T,
            "newest-link-wins",
            &(),
            &[connect(0, NameChoice::Alice), ready(2), send(2, 1, NameChoice::Bob, "new link")],
        ),
        structured(
            T,
            "key-in-use",
            &(),
            &[
                connect(2, NameChoice::Carol),
                connect(2, NameChoice::Longest),
                ready(2),
                ready(3),
                connect(2, NameChoice::Longest),
                connect(0, NameChoice::Carol),
                connect(0, NameChoice::Longest),
                send(0, 1, NameChoice::Longest, "to nobody"),
            ],
        ),
        structured(
            T,
            "server-full",
            &(),
            &[
                connect(2, NameChoice::Carol),
                connect(3, NameChoice::Longest),
                send(0, 1, NameChoice::Carol, "not bound yet"),
                ready(2),
                ready(3),
                connect(3, NameChoice::Longest),
                send(0, 2, NameChoice::Carol, "bound now"),
            ],
        ),
        structured(
            T,
            "queued-bytes-full",
            &(),
            &[
                Close { link: 2 },
                send(0, 1, NameChoice::Bob, &"a".repeat(4096)),
                send(0, 2, NameChoice::Bob, &"b".repeat(4096)),
                send(0, 3, NameChoice::Bob, "small"),
                connect(1, NameChoice::Bob),
                ready(1),
                send(0, 4, NameChoice::Bob, &"c".repeat(4096)),
            ],
        ),
        structured(T, "name-taken", &(), &[connect(3, NameChoice::Alice)]),
        structured(
            T,
            "not-a-registration",
            &(),
            &[
                Connect { key: 2, register: None, payload: Bytes(Message::Ready.encode()) },
                Connect {
                    key: 2,
                    register: None,
                    payload: Bytes(b"\x01\x10\x00\x00\x00\x02\x01A".to_vec()),
                },
            ],
        ),
        structured(
            T,
            "unconfirmed-link",
            &(),
            &[
                connect(2, NameChoice::Carol),
                send(2, 1, NameChoice::Alice, "before ready"),
                ready(2),
                send(2, 2, NameChoice::Alice, "after ready"),
                send(0, 1, NameChoice::Carol, "to the newcomer"),
            ],
        ),
        structured(
            T,
            "unexpected",
            &(),
            &[
                Send { channel: 0, request: Request::Deliver { id: 1, from: NameChoice::Bob } },
                Send { channel: 0, request: Request::Register(NameChoice::Alice) },
                ready(0),
                Send { channel: 1, request: Request::FetchBundle(NameChoice::Alice) },
            ],
        ),
        structured(
            T,
            "malformed",
            &(),
            &[
                Seal { channel: 0, plaintext: Bytes(b"\x01\x20\x00\x00\x00\x03abc".to_vec()) },
                Seal { channel: 0, plaintext: Bytes::default() },
            ],
        ),
        structured(
            T,
            "replay",
            &(),
            &[
                send(0, 1, NameChoice::Bob, "once"),
                Replay { index: 0 },
                Raw { link: 1, frame: Bytes(b"\x01\x03\x00\x00\x00\x10AAAAAAAAAAAAAAAA".to_vec()) },
                Raw {
                    link: 0,
                    frame: Bytes([&b"\x01\x01\x00\x00\x00\x60"[..], &[0; 96]].concat()),
                },
            ],
        ),
        structured(
            T,
            "closed-link",
            &(),
            &[connect(2, NameChoice::Carol), Close { link: 3 }, Replay { index: 0 }],
        ),
    ]
}

fn e2e_receive() -> Vec<Seed> {
    const T: &str = "e2e_receive";
    use super::e2e_receive::Op::{
        Deliver, Forge, HopDeliver, Mutate, Plaintext, Raw, Reconnect, Relabel, Replay,
        ReplayFrame, Reply, Restart, Seal,
    };
    let seal = |text: &str| Seal(small(text));
    let deliver = |index| Deliver { index, id: Id::Fresh };
    vec![
        structured(T, "unanswered", &false, &[seal("hi"), deliver(0)]),
        structured(
            T,
            "unanswered-out-of-order",
            &false,
            &[seal("a"), seal("b"), deliver(1), deliver(0)],
        ),
        structured(
            T,
            "unanswered-mutated",
            &false,
            &[
                seal("a"),
                Mutate { index: 0, mutation: Mutation::Flip { pos: 5, xor: 1 }, id: Id::Fresh },
                Mutate { index: 0, mutation: Mutation::Flip { pos: 70, xor: 1 }, id: Id::Fresh },
                Mutate { index: 0, mutation: Mutation::Flip { pos: 100, xor: 1 }, id: Id::Fresh },
                Mutate { index: 0, mutation: Mutation::Truncate { len: 120 }, id: Id::Fresh },
                deliver(0),
                Replay { index: 0, id: Id::Fresh },
            ],
        ),
        structured(T, "in-order", &true, &[seal("a"), deliver(0), seal("b"), deliver(0)]),
        structured(
            T,
            "out-of-order",
            &true,
            &[seal("a"), seal("b"), seal("c"), deliver(2), deliver(0), deliver(0)],
        ),
        structured(
            T,
            "replay",
            &true,
            &[
                seal("a"),
                deliver(0),
                Replay { index: 0, id: Id::Fresh },
                Replay { index: 0, id: Id::Exact(3) },
            ],
        ),
        structured(T, "replayed-id", &true, &[seal("a"), Deliver { index: 0, id: Id::Exact(2) }]),
        structured(
            T,
            "ratchet-turns",
            &true,
            &[
                seal("a"),
                Reply(small("x")),
                seal("b"),
                deliver(1),
                Reply(small("y")),
                seal("c"),
                deliver(0),
                deliver(0),
            ],
        ),
        structured(
            T,
            "header-mutated",
            &true,
            &[
                seal("a"),
                Mutate {
                    index: 0,
                    mutation: Mutation::Overwrite {
                        pos: 37,
                        bytes: SmallBytes(vec![0, 0, 0x10, 0]),
                    },
                    id: Id::Fresh,
                },
                Mutate {
                    index: 0,
                    mutation: Mutation::Overwrite { pos: 33, bytes: SmallBytes(vec![0xff; 8]) },
                    id: Id::Fresh,
                },
                Mutate {
                    index: 0,
                    mutation: Mutation::Overwrite { pos: 1, bytes: SmallBytes(vec![0; 32]) },
                    id: Id::Fresh,
                },
                deliver(0),
            ],
        ),
        structured(
            T,
            "forged",
            &true,
            &[
                Forge { from: NameChoice::Carol, id: Id::Fresh, envelope: Bytes(vec![1; 200]) },
                Forge { from: NameChoice::Alice, id: Id::Fresh, envelope: Bytes(vec![2; 60]) },
                Forge { from: NameChoice::Bob, id: Id::Exact(9), envelope: Bytes(vec![3]) },
            ],
        ),
        structured(
            T,
            "plaintext",
            &true,
            &[
                Plaintext(Bytes(b"\x01\x37\x00\x00\x00\x00".to_vec())),
                Plaintext(Bytes::default()),
                HopDeliver { from: NameChoice::Alice, id: Id::Fresh, body: small("hop") },
                HopDeliver { from: NameChoice::Carol, id: Id::Exact(1), body: small("x") },
            ],
        ),
        structured(
            T,
            "prekeys-low",
            &true,
            &[
                Plaintext(Bytes(Message::PrekeysLow { one_time_prekeys: 3 }.encode())),
                Reply(small("after the upload")),
                Plaintext(Bytes(Message::PrekeysLow { one_time_prekeys: 95 }.encode())),
                Plaintext(Bytes(Message::PrekeysLow { one_time_prekeys: 100 }.encode())),
                seal("a"),
                deliver(0),
                Reply(small("b")),
            ],
        ),
        // Reached by no fuzzing run before (README "Fuzzing", coverage): the client's handling of
        // `Refused` (§5.1: the answer to `Ready` when the name was bound meanwhile; Bob goes
        // offline) and of `BundleRefused` on an open channel.
        structured(
            T,
            "refused-while-open",
            &true,
            &[
                Plaintext(Bytes(Message::Refused { reason: RefusalReason::NameTaken }.encode())),
                seal("a"),
                deliver(0),
                Reconnect,
                seal("b"),
                deliver(0),
            ],
        ),
        structured(
            T,
            "bundle-refused",
            &true,
            &[
                Plaintext(Bytes(
                    Message::BundleRefused { reason: BundleRefusal::BadSignature }.encode(),
                )),
                seal("a"),
                deliver(0),
            ],
        ),
        structured(
            T,
            "hop-refused",
            &true,
            &[
                HopDeliver {
                    from: NameChoice::Alice,
                    id: Id::Fresh,
                    body: small("from the server"),
                },
                seal("a"),
                HopDeliver { from: NameChoice::Alice, id: Id::Exact(u64::MAX), body: small("x") },
                deliver(0),
            ],
        ),
        structured(
            T,
            "outside-the-channel",
            &true,
            &[Raw(Bytes(vec![1, 3, 0, 0, 0, 16, 9, 9])), seal("a"), deliver(0), ReplayFrame(0)],
        ),
        structured(T, "reconnect", &true, &[seal("a"), Reconnect, deliver(0), ReplayFrame(0)]),
        structured(
            T,
            "relabelled",
            &true,
            &[
                seal("a"),
                Relabel { index: 0, from: NameChoice::Carol, id: Id::Fresh },
                Relabel { index: 0, from: NameChoice::Bob, id: Id::Fresh },
                deliver(0),
            ],
        ),
        structured(
            T,
            "restarts",
            &true,
            &[
                seal("old session"),
                Restart,
                seal("new session"),
                deliver(1),
                Reply(small("which session?")),
                deliver(0),
                Restart,
                Restart,
                seal("newest"),
                deliver(0),
            ],
        ),
    ]
}

/// Seeds of `e2e_receive`'s hop mode (`hop_receive`): a first byte with bit 1 set, then the
/// operations.
fn hop_receive() -> Vec<Seed> {
    use super::hop_receive::Op::{Deliver, Plaintext, Raw, Reconnect, ReplayFrame};
    use super::hop_receive::{Answer, HopId, Reason};
    let seed = |name: &str, ops: &[super::hop_receive::Op]| {
        let mut seed = structured("e2e_receive", &format!("hop-client-{name}"), &(), ops);
        seed.bytes.insert(0, 2);
        seed
    };
    let deliver = |from, id| Deliver { from, id, body: small("hop") };
    let plaintext = |message: Message| Plaintext(Bytes(message.encode()));
    let (alice, carol) = (NameChoice::Alice, NameChoice::Carol);
    vec![
        // SPEC.md §5.3: in order, a replay, id 0, a jump, the window's last id and the first
        // beyond it, another sender's window.
        seed(
            "id-window",
            &[
                deliver(alice, HopId::Next),
                deliver(alice, HopId::Next),
                deliver(alice, HopId::Back(1)),
                deliver(alice, HopId::Back(0)),
                deliver(alice, HopId::Exact(0)),
                deliver(alice, HopId::Exact(100)),
                deliver(alice, HopId::Back(63)),
                deliver(alice, HopId::Back(64)),
                deliver(alice, HopId::Back(63)),
                deliver(carol, HopId::Exact(u64::MAX)),
                deliver(carol, HopId::Next),
            ],
        ),
        seed(
            "connect-wrong-name",
            &[
                deliver(alice, HopId::Next),
                Reconnect(Answer::WelcomeAs(carol)),
                deliver(alice, HopId::Back(0)),
            ],
        ),
        seed(
            "connect-refused",
            &[Reconnect(Answer::Refused(Reason::NameTaken)), deliver(alice, HopId::Next)],
        ),
        seed(
            "connect-garbage",
            &[Reconnect(Answer::Payload(Bytes(vec![1, 0x0b, 0, 0]))), ReplayFrame(0)],
        ),
        seed(
            "refused-while-open",
            &[
                plaintext(Message::Refused { reason: RefusalReason::KeyInUse }),
                deliver(alice, HopId::Next),
            ],
        ),
        // A hop-only client has no e2e identity: every e2e message is refused, nothing answered.
        seed(
            "no-e2e",
            &[
                plaintext(Message::PrekeysLow { one_time_prekeys: 1 }),
                plaintext(Message::NoBundle { name: name("alice") }),
                plaintext(Message::E2eDeliver {
                    id: MessageId(1),
                    from: name("alice"),
                    envelope: must(Envelope::new(vec![1, 2, 3]), "envelope"),
                }),
                Raw(Bytes(vec![3, 3, 0, 0, 0, 16])),
                ReplayFrame(1),
                deliver(alice, HopId::Next),
            ],
        ),
    ]
}

fn bundle_parse() -> Vec<Seed> {
    const T: &str = "bundle_parse";
    use super::bundle_parse::Op::{ClientBundle, Fetch, Pin, RawBundle, RawUpload, Upload};
    let genuine = |pool, spk_id| Core {
        identity: IdentityChoice::Pool(pool),
        spk_id,
        spk: KeyChoice::Pool(pool),
        signature: SignatureChoice::Genuine,
    };
    let batch = |count, first_id, step| Batch { count, first_id, step, low_order_at: None };
    let upload = |core, batch| Upload { bob: false, core, batch };
    let raw_identity = |sign: [u8; 32]| Core {
        identity: IdentityChoice::Raw { dh: KeyChoice::Pool(0), sign },
        ..genuine(0, 1)
    };
    let mut non_canonical = [0xff; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    let mut small_order = [0; 32];
    small_order[0] = 1;

    let mut rng = rng(0x5345_4542);
    let upload_body = must(Peers::generate(&mut rng).prepare_upload(), "upload");
    let upload_body = Message::UploadBundle { bundle: upload_body }.encode().split_off(6);
    vec![
        structured(T, "upload", &(), &[upload(genuine(0, 1), batch(10, 2, 1))]),
        structured(
            T,
            "upload-fetch",
            &(),
            &[
                upload(genuine(0, 1), batch(2, 2, 1)),
                Fetch { bob: true, name: NameChoice::Alice, to_client: true },
                Fetch { bob: true, name: NameChoice::Alice, to_client: false },
                Fetch { bob: false, name: NameChoice::Alice, to_client: true },
            ],
        ),
        structured(
            T,
            "one-per-requester",
            &(),
            &[
                upload(genuine(0, 1), batch(10, 2, 1)),
                Fetch { bob: true, name: NameChoice::Alice, to_client: false },
                Fetch { bob: true, name: NameChoice::Alice, to_client: false },
                Fetch { bob: false, name: NameChoice::Alice, to_client: false },
                upload(genuine(0, 1), batch(0, 0, 0)),
                Fetch { bob: true, name: NameChoice::Alice, to_client: false },
                upload(genuine(1, 1), batch(1, 2, 1)),
                Fetch { bob: true, name: NameChoice::Alice, to_client: false },
                Fetch { bob: true, name: NameChoice::Alice, to_client: true },
            ],
        ),
        structured(
            T,
            "prekeys-low",
            &(),
            &[
                upload(genuine(0, 1), batch(7, 2, 1)),
                Upload { bob: true, core: genuine(1, 1), batch: batch(6, 2, 1) },
                Fetch { bob: true, name: NameChoice::Alice, to_client: false },
                Fetch { bob: false, name: NameChoice::Alice, to_client: false },
                Fetch { bob: false, name: NameChoice::Bob, to_client: false },
                Fetch { bob: true, name: NameChoice::Bob, to_client: false },
                upload(genuine(0, 1), batch(1, 20, 1)),
                Fetch { bob: true, name: NameChoice::Alice, to_client: false },
            ],
        ),
        structured(
            T,
            "too-many",
            &(),
            &[
                upload(genuine(0, 1), batch(101, 2, 1)),
                upload(genuine(0, 1), batch(60, 2, 1)),
                upload(genuine(0, 1), batch(41, 100, 1)),
                upload(genuine(0, 1), batch(40, 100, 1)),
            ],
        ),
        structured(
            T,
            "duplicate-ids",
            &(),
            &[
                upload(genuine(0, 1), batch(2, 5, 0)),
                upload(genuine(0, 1), batch(2, 1, 1)),
                upload(genuine(0, 1), batch(3, 2, 1)),
                upload(genuine(0, 1), batch(1, 3, 1)),
                upload(genuine(0, 9), batch(1, 1, 1)),
                upload(genuine(1, 1), batch(1, 3, 1)),
            ],
        ),
        structured(
            T,
            "low-order",
            &(),
            &[
                upload(Core { spk: KeyChoice::LowOrder(0), ..genuine(0, 1) }, batch(1, 2, 1)),
                upload(
                    genuine(0, 1),
                    Batch { count: 3, first_id: 2, step: 1, low_order_at: Some(2) },
                ),
                upload(
                    Core {
                        identity: IdentityChoice::Raw { dh: KeyChoice::LowOrder(1), sign: [0; 32] },
                        ..genuine(0, 1)
                    },
                    batch(0, 0, 0),
                ),
            ],
        ),
        structured(
            T,
            "bad-signature",
            &(),
            &[
                upload(
                    Core {
                        signature: SignatureChoice::Flipped { pos: 3, xor: 1 },
                        ..genuine(0, 1)
                    },
                    batch(1, 2, 1),
                ),
                upload(
                    Core {
                        signature: SignatureChoice::Flipped { pos: 63, xor: 0x10 },
                        ..genuine(0, 1)
                    },
                    batch(0, 0, 0),
                ),
                upload(
                    Core { signature: SignatureChoice::Raw([0; 64]), ..genuine(0, 1) },
                    batch(0, 0, 0),
                ),
            ],
        ),
        structured(
            T,
            "bad-signing-key",
            &(),
            &[
                upload(raw_identity(small_order), batch(0, 0, 0)),
                upload(raw_identity(non_canonical), batch(0, 0, 0)),
                upload(raw_identity([2; 32]), batch(0, 0, 0)),
            ],
        ),
        structured(
            T,
            "client-bundle",
            &(),
            &[
                ClientBundle {
                    name: NameChoice::Bob,
                    core: genuine(1, 7),
                    one_time: Some((9, KeyChoice::Pool(1))),
                    queue: true,
                },
                ClientBundle {
                    name: NameChoice::Bob,
                    core: genuine(1, 7),
                    one_time: None,
                    queue: true,
                },
            ],
        ),
        structured(
            T,
            "client-pinned",
            &(),
            &[
                Pin { name: NameChoice::Bob, identity: IdentityChoice::Pool(2) },
                ClientBundle {
                    name: NameChoice::Bob,
                    core: genuine(1, 7),
                    one_time: None,
                    queue: true,
                },
                ClientBundle {
                    name: NameChoice::Bob,
                    core: genuine(2, 7),
                    one_time: None,
                    queue: true,
                },
            ],
        ),
        structured(
            T,
            "client-bad-bundles",
            &(),
            &[
                ClientBundle {
                    name: NameChoice::Alice,
                    core: Core {
                        signature: SignatureChoice::Flipped { pos: 0, xor: 1 },
                        ..genuine(0, 1)
                    },
                    one_time: None,
                    queue: true,
                },
                ClientBundle {
                    name: NameChoice::Alice,
                    core: genuine(0, 1),
                    one_time: Some((2, KeyChoice::LowOrder(2))),
                    queue: false,
                },
            ],
        ),
        structured(
            T,
            "raw",
            &(),
            &[
                RawUpload(Bytes(upload_body)),
                RawUpload(Bytes(vec![0; 40])),
                RawBundle(Bytes(vec![3, b'b', b'o', b'b'])),
            ],
        ),
        structured(
            T,
            "no-bundle",
            &(),
            &[
                Fetch { bob: false, name: NameChoice::Carol, to_client: true },
                Fetch { bob: true, name: NameChoice::Longest, to_client: false },
            ],
        ),
    ]
}

fn roles_sequence() -> Vec<Seed> {
    const T: &str = "roles_sequence";
    use super::roles_sequence::Op::{
        Corrupt, Deliver, DeliverAll, Disconnect, Drop, Duplicate, Inject, Reconnect, Reorder,
        SendE2e, SendHop, Upload,
    };
    let hop = |from, to, text: &str| SendHop { from, to, body: small(text) };
    let e2e = |from, text: &str| SendE2e { from, to_peer: true, body: small(text) };
    let (a, b) = (Who::Alice, Who::Bob);
    let heal = Setup { heal: true, ..Setup::default() };
    let low = Setup { low_prekeys: true, ..heal };
    vec![
        structured(
            T,
            "hop",
            &heal,
            &[
                hop(a, NameChoice::Bob, "meet at noon"),
                DeliverAll,
                hop(b, NameChoice::Alice, "ok"),
                DeliverAll,
            ],
        ),
        structured(
            T,
            "e2e",
            &heal,
            &[e2e(a, "a"), e2e(b, "b"), DeliverAll, e2e(a, "c"), DeliverAll],
        ),
        structured(
            T,
            "offline",
            &heal,
            &[
                Disconnect(b),
                hop(a, NameChoice::Bob, "queued"),
                e2e(a, "queued e2e"),
                DeliverAll,
                Reconnect(b),
                DeliverAll,
            ],
        ),
        structured(
            T,
            "duplicate",
            &heal,
            &[
                e2e(a, "x"),
                Duplicate { queue: Queue::Server, index: 0 },
                Deliver(Queue::Server),
                Duplicate { queue: Queue::Bob, index: 0 },
                DeliverAll,
            ],
        ),
        structured(
            T,
            "reorder",
            &heal,
            &[e2e(a, "1"), e2e(a, "2"), Reorder { queue: Queue::Server, index: 1 }, DeliverAll],
        ),
        structured(
            T,
            "reorder-at-bob",
            &heal,
            &[
                e2e(a, "1"),
                e2e(a, "2"),
                Deliver(Queue::Server),
                Deliver(Queue::Server),
                Reorder { queue: Queue::Bob, index: 2 },
                DeliverAll,
            ],
        ),
        structured(
            T,
            "corrupt",
            &heal,
            &[
                e2e(a, "1"),
                Deliver(Queue::Server),
                Corrupt { queue: Queue::Bob, index: 0, pos: 20, xor: 1 },
                DeliverAll,
            ],
        ),
        structured(
            T,
            "drop",
            &heal,
            &[
                e2e(a, "1"),
                e2e(a, "2"),
                Deliver(Queue::Server),
                Deliver(Queue::Server),
                Drop { queue: Queue::Bob, index: 0 },
                DeliverAll,
                e2e(a, "3"),
                DeliverAll,
            ],
        ),
        structured(
            T,
            "no-bundle",
            &heal,
            &[
                SendE2e { from: a, to_peer: false, body: small("to carol") },
                DeliverAll,
                hop(a, NameChoice::Carol, "x"),
                DeliverAll,
            ],
        ),
        structured(
            T,
            "inject",
            &heal,
            &[
                hop(a, NameChoice::Bob, "x"),
                DeliverAll,
                Inject { index: 0, queue: Queue::Server },
                Inject { index: 1, queue: Queue::Bob },
                Inject { index: 2, queue: Queue::Alice },
                DeliverAll,
            ],
        ),
        structured(
            T,
            "reconnect",
            &heal,
            &[
                Reconnect(a),
                Disconnect(a),
                Reconnect(a),
                Reconnect(a),
                Duplicate { queue: Queue::Server, index: 0 },
                DeliverAll,
                Upload(a),
                DeliverAll,
            ],
        ),
        structured(
            T,
            "without-healing",
            &Setup::default(),
            &[hop(b, NameChoice::Alice, "x"), e2e(b, "y"), DeliverAll],
        ),
        structured(
            T,
            "queued-while-offline",
            &heal,
            &[
                SendE2e { from: a, to_peer: false, body: small("to carol") },
                Disconnect(a),
                SendE2e { from: a, to_peer: false, body: small("still to carol") },
                Reconnect(a),
                DeliverAll,
            ],
        ),
        structured(
            T,
            "prekeys-low",
            &low,
            &[Deliver(Queue::Alice), Deliver(Queue::Bob), DeliverAll, e2e(a, "after"), DeliverAll],
        ),
        structured(
            T,
            "prekeys-low-lost",
            &low,
            &[
                Drop { queue: Queue::Bob, index: 0 },
                Deliver(Queue::Bob),
                Disconnect(b),
                Reconnect(b),
                Duplicate { queue: Queue::Alice, index: 0 },
                DeliverAll,
            ],
        ),
        structured(
            T,
            "prekeys-low-reordered",
            &low,
            &[
                Deliver(Queue::Bob),
                Upload(b),
                Reorder { queue: Queue::Server, index: 1 },
                DeliverAll,
            ],
        ),
        structured(
            T,
            "hop-to-e2e",
            &Setup { hop_to_e2e: true, ..heal },
            &[
                hop(a, NameChoice::Bob, "refused"),
                DeliverAll,
                Disconnect(b),
                hop(a, NameChoice::Bob, "queued, then refused"),
                hop(b, NameChoice::Alice, "offline"),
                Reconnect(b),
                DeliverAll,
            ],
        ),
    ]
}
