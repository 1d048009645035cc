//! The hop protocol through the real role state machines: the happy path, the server's decisions
//! (policy, mailbox, unknown recipient, name binding), and every class of bad input — each asserting
//! its typed error *and* that the receiving role is exactly as it was before.
#![cfg(test)]

use e2e_protocol::channel::{ChannelError, PROLOGUE, Responder, Transport};
use e2e_protocol::hop::DenyWord;
use e2e_protocol::roles::{
    Client, ClientEvent, LinkId, MAILBOX_CAPACITY, Server, ServerEvent, ServerOutputs,
};
use e2e_protocol::suite::{CryptoError, PrivateKey};
use e2e_protocol::wire::{
    AckStatus, Body, Codec, LinkFrame, Message, MessageId, Name, RefusalReason, RejectReason,
    WireError,
};
use e2e_protocol::{Error, MisuseError, ProtocolError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const ALICE: LinkId = LinkId(1);
const BOB: LinkId = LinkId(2);

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn body(s: &str) -> Body {
    Body::new(s.as_bytes().to_vec()).unwrap()
}

/// A server and two clients with keys from a seeded RNG; nobody connected yet.
struct World<P: e2e_protocol::hop::ContentPolicy> {
    rng: ChaCha20Rng,
    server: Server<P>,
    server_key: PrivateKey,
    alice: Client,
    bob: Client,
}

fn world() -> World<e2e_protocol::hop::AllowAll> {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let server_key = PrivateKey::generate(&mut rng);
    world_with(Server::new(server_key.clone()), server_key, rng)
}

fn world_with<P: e2e_protocol::hop::ContentPolicy>(
    server: Server<P>,
    server_key: PrivateKey,
    mut rng: ChaCha20Rng,
) -> World<P> {
    let alice = Client::new(name("alice"), PrivateKey::generate(&mut rng), server.public_key());
    let bob = Client::new(name("bob"), PrivateKey::generate(&mut rng), server.public_key());
    World { rng, server, server_key, alice, bob }
}

impl<P: e2e_protocol::hop::ContentPolicy> World<P> {
    fn client(&mut self, link: LinkId) -> &mut Client {
        if link == ALICE { &mut self.alice } else { &mut self.bob }
    }

    /// Connects the client on `link` and delivers the server's answers to it.
    fn connect(&mut self, link: LinkId) -> Vec<ClientEvent> {
        let mut rng = self.rng.clone();
        let init = self.client(link).connect(&mut rng).unwrap();
        self.rng = rng;
        let out = self.server.handle(link, &init, &mut self.rng).unwrap();
        self.deliver(out)
    }

    /// Hands every server frame to its client; returns the clients' events in order.
    fn deliver(&mut self, out: ServerOutputs) -> Vec<ClientEvent> {
        let mut events = Vec::new();
        for (link, frame) in out.transmit {
            events.extend(self.client(link).handle(&frame).unwrap());
        }
        events
    }

    /// Alice sends `text` to Bob through the server; returns the server's outputs undelivered.
    fn alice_sends(&mut self, text: &str) -> (MessageId, ServerOutputs) {
        let (id, frame) = self.alice.send(&name("bob"), body(text)).unwrap();
        let out = self.server.handle(ALICE, &frame, &mut self.rng).unwrap();
        (id, out)
    }
}

fn received(from: &str, id: u64, text: &str) -> ClientEvent {
    ClientEvent::Received { from: name(from), id: MessageId(id), body: body(text) }
}

#[test]
fn message_is_read_by_the_server_and_delivered_once() {
    let mut w = world();
    assert_eq!(w.connect(ALICE), vec![ClientEvent::Connected]);
    assert_eq!(w.connect(BOB), vec![ClientEvent::Connected]);
    let (id, out) = w.alice_sends("meet at noon");
    assert_eq!(id, MessageId(1));
    assert!(out.events.contains(&ServerEvent::Read {
        from: name("alice"),
        to: name("bob"),
        id,
        body: body("meet at noon"),
    }));
    for (_, frame) in &out.transmit {
        let hex = hex::encode(frame);
        assert!(!hex.contains(&hex::encode("meet at noon")), "plaintext on the link");
    }
    let events = w.deliver(out);
    assert_eq!(
        events,
        vec![
            received("alice", 1, "meet at noon"),
            ClientEvent::Acked { id, status: AckStatus::Relayed }
        ]
    );
}

#[test]
fn offline_recipient_gets_queued_messages_on_connect_in_order() {
    let mut w = world();
    w.connect(ALICE);
    w.connect(BOB);
    w.bob.disconnect();
    w.server.close_link(BOB);
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let (_, out) = w.alice_sends(text);
        let acks = w.deliver(out);
        assert_eq!(
            acks,
            vec![ClientEvent::Acked { id: MessageId(i as u64 + 1), status: AckStatus::Queued }]
        );
    }
    assert_eq!(w.server.queued(&name("bob")), 3);
    let events = w.connect(BOB);
    assert_eq!(
        events,
        vec![
            ClientEvent::Connected,
            received("alice", 1, "one"),
            received("alice", 2, "two"),
            received("alice", 3, "three"),
        ]
    );
    assert_eq!(w.server.queued(&name("bob")), 0);
}

#[test]
fn full_mailbox_is_a_typed_rejection_and_nothing_is_dropped() {
    let mut w = world();
    w.connect(ALICE);
    w.connect(BOB);
    w.bob.disconnect();
    w.server.close_link(BOB);
    for i in 0..MAILBOX_CAPACITY {
        let (_, out) = w.alice_sends(&format!("m{i}"));
        assert!(matches!(
            w.deliver(out)[..],
            [ClientEvent::Acked { status: AckStatus::Queued, .. }]
        ));
    }
    let (id, out) = w.alice_sends("one too many");
    assert_eq!(
        w.deliver(out),
        vec![ClientEvent::Rejected { id, reason: RejectReason::MailboxFull }]
    );
    let events = w.connect(BOB);
    assert_eq!(events.len(), 1 + MAILBOX_CAPACITY);
    for (i, event) in events[1..].iter().enumerate() {
        assert_eq!(event, &received("alice", i as u64 + 1, &format!("m{i}")));
    }
}

#[test]
fn deny_word_policy_rejects_to_the_sender_and_bob_sees_nothing() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let key = PrivateKey::generate(&mut rng);
    let mut w = world_with(Server::with_policy(key.clone(), DenyWord::new("attack")), key, rng);
    w.connect(ALICE);
    w.connect(BOB);
    let (id, out) = w.alice_sends("Attack at dawn");
    assert!(out.transmit.iter().all(|(link, _)| *link == ALICE), "nothing may go to Bob");
    assert_eq!(w.deliver(out), vec![ClientEvent::Rejected { id, reason: RejectReason::Policy }]);
    let (id, out) = w.alice_sends("lunch at dawn");
    assert_eq!(
        w.deliver(out),
        vec![
            received("alice", 2, "lunch at dawn"),
            ClientEvent::Acked { id, status: AckStatus::Relayed }
        ]
    );
}

#[test]
fn unknown_recipient_is_rejected() {
    let mut w = world();
    w.connect(ALICE);
    let (id, frame) = w.alice.send(&name("carol"), body("hello?")).unwrap();
    let out = w.server.handle(ALICE, &frame, &mut w.rng).unwrap();
    assert_eq!(
        w.deliver(out),
        vec![ClientEvent::Rejected { id, reason: RejectReason::UnknownRecipient }]
    );
}

#[test]
fn a_name_stays_bound_to_the_first_static_key() {
    let mut w = world();
    w.connect(BOB);
    let mut impostor =
        Client::new(name("bob"), PrivateKey::generate(&mut w.rng), w.server.public_key());
    let init = impostor.connect(&mut w.rng).unwrap();
    let out = w.server.handle(LinkId(9), &init, &mut w.rng).unwrap();
    assert_eq!(out.close, vec![LinkId(9)]);
    assert!(w.server.is_online(&name("bob")), "the real Bob keeps his channel");
    let (_, frame) = &out.transmit[0];
    assert_eq!(
        impostor.handle(frame).unwrap(),
        vec![ClientEvent::Refused(RefusalReason::NameTaken)]
    );
    assert!(!impostor.is_connected());
}

#[test]
fn reconnecting_replaces_the_old_link() {
    let mut w = world();
    w.connect(ALICE);
    let mut rng = w.rng.clone();
    w.alice.disconnect();
    let init = w.alice.connect(&mut rng).unwrap();
    let out = w.server.handle(LinkId(5), &init, &mut rng).unwrap();
    assert_eq!(out.close, vec![ALICE]);
}

#[test]
fn client_api_misuse_is_typed_and_changes_nothing() {
    let mut w = world();
    let before = w.alice.clone();
    assert_eq!(
        w.alice.send(&name("bob"), body("x")),
        Err(Error::Misuse(MisuseError::NotConnected))
    );
    assert_eq!(w.alice, before);
    w.connect(ALICE);
    let before = w.alice.clone();
    assert_eq!(w.alice.connect(&mut w.rng), Err(Error::Misuse(MisuseError::AlreadyConnected)));
    assert_eq!(w.alice, before);
}

// ---- bad input: every class, typed error, state unchanged ----------------------------------

/// Feeds `frame` to the server on `link` and asserts the error and that the server is unchanged.
fn server_refuses<P: e2e_protocol::hop::ContentPolicy>(
    w: &mut World<P>,
    link: LinkId,
    frame: &[u8],
    expected: Error,
) {
    let before = w.server.clone();
    assert_eq!(w.server.handle(link, frame, &mut w.rng), Err(expected));
    assert_eq!(w.server, before, "server state changed on error");
}

fn client_refuses(client: &mut Client, frame: &[u8], expected: Error) {
    let before = client.clone();
    assert_eq!(client.handle(frame), Err(expected));
    assert_eq!(*client, before, "client state changed on error");
}

/// Both connected; returns a genuine Alice→server frame (not yet delivered).
fn connected_with_pending_send() -> (World<e2e_protocol::hop::AllowAll>, Vec<u8>) {
    let mut w = world();
    w.connect(ALICE);
    w.connect(BOB);
    let (_, frame) = w.alice.send(&name("bob"), body("genuine")).unwrap();
    (w, frame)
}

/// After bad input, the genuine frame must still go through: nothing was lost.
fn genuine_still_works(w: &mut World<e2e_protocol::hop::AllowAll>, frame: &[u8]) {
    let out = w.server.handle(ALICE, frame, &mut w.rng).unwrap();
    assert_eq!(w.deliver(out)[0], received("alice", 1, "genuine"));
}

#[test]
fn server_malformed_frames() {
    let (mut w, genuine) = connected_with_pending_send();
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        ("empty", vec![], Error::Wire(WireError::Truncated)),
        ("header cut", genuine[..3].to_vec(), Error::Wire(WireError::Truncated)),
        ("body cut", genuine[..genuine.len() - 1].to_vec(), Error::Wire(WireError::Truncated)),
        (
            "trailing byte",
            [&genuine[..], &[0]].concat(),
            Error::Wire(WireError::TrailingBytes { extra: 1 }),
        ),
        (
            "version 2",
            [&[2u8][..], &genuine[1..]].concat(),
            Error::Wire(WireError::UnknownVersion(2)),
        ),
        (
            "type 0x7f",
            [&[1u8, 0x7f][..], &genuine[2..]].concat(),
            Error::Wire(WireError::UnknownType(0x7f)),
        ),
        (
            "message type on the link",
            Message::Ack { id: MessageId(1), status: AckStatus::Relayed }.encode(),
            Error::Wire(WireError::UnknownType(0x22)),
        ),
        (
            "oversized input",
            vec![0u8; e2e_protocol::wire::MAX_FRAME_LEN + 1],
            Error::Wire(WireError::Oversized {
                len: e2e_protocol::wire::MAX_FRAME_LEN + 1,
                max: e2e_protocol::wire::MAX_FRAME_LEN,
            }),
        ),
        (
            "declared length over the maximum",
            vec![1, 3, 0x00, 0x01, 0x00, 0x00],
            Error::Wire(WireError::Oversized { len: 65542, max: 65541 }),
        ),
        (
            "transport shorter than a tag",
            vec![1, 3, 0, 0, 0, 15].into_iter().chain([0u8; 15]).collect(),
            Error::Wire(WireError::BadLength { field: "transport", len: 15 }),
        ),
    ];
    for (what, frame, expected) in cases {
        eprintln!("case: {what}");
        server_refuses(&mut w, ALICE, &frame, expected);
    }
    genuine_still_works(&mut w, &genuine);
}

#[test]
fn server_refuses_bad_tag_replay_and_wrong_state() {
    let (mut w, genuine) = connected_with_pending_send();
    let mut forged = genuine.clone();
    *forged.last_mut().unwrap() ^= 1;
    server_refuses(
        &mut w,
        ALICE,
        &forged,
        Error::Channel(ChannelError::Crypto(CryptoError::AeadOpen)),
    );
    // The genuine frame on the wrong link: Bob's channel keys cannot open it.
    server_refuses(
        &mut w,
        BOB,
        &genuine,
        Error::Channel(ChannelError::Crypto(CryptoError::AeadOpen)),
    );
    // Transport on a link with no channel.
    server_refuses(
        &mut w,
        LinkId(42),
        &genuine,
        Error::Protocol(ProtocolError::Unexpected { state: "no channel", got: "Transport" }),
    );
    // A handshake response sent to the server.
    let resp = LinkFrame::handshake_resp(vec![0u8; 48]).unwrap().encode();
    server_refuses(
        &mut w,
        ALICE,
        &resp,
        Error::Protocol(ProtocolError::Unexpected { state: "open", got: "HandshakeResp" }),
    );
    genuine_still_works(&mut w, &genuine);
    // Replay of the frame just accepted: its nonce is spent.
    server_refuses(
        &mut w,
        ALICE,
        &genuine,
        Error::Channel(ChannelError::Crypto(CryptoError::AeadOpen)),
    );
}

#[test]
fn server_refuses_low_order_ephemeral_and_garbage_handshakes() {
    let mut w = world();
    let mut rng = w.rng.clone();
    let mut init = w.alice.connect(&mut rng).unwrap();
    // Replace the ephemeral (first 32 bytes of the Noise message, after the 6-byte header) by zero,
    // a low-order point: DH(e, s) is then all zero.
    init[6..38].fill(0);
    server_refuses(
        &mut w,
        ALICE,
        &init,
        Error::Channel(ChannelError::Crypto(CryptoError::NonContributory)),
    );
    let garbage = LinkFrame::handshake_init(vec![0x55; 120]).unwrap().encode();
    server_refuses(
        &mut w,
        ALICE,
        &garbage,
        Error::Channel(ChannelError::Crypto(CryptoError::AeadOpen)),
    );
}

#[test]
fn server_refuses_an_authentic_but_unexpected_message() {
    // A client that speaks the channel correctly but sends a server-only message (Deliver).
    let mut w = world();
    w.connect(BOB);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let key = PrivateKey::generate(&mut rng);
    let initiator = e2e_protocol::channel::Initiator::new(PROLOGUE, key, w.server.public_key());
    let register = Message::Register { name: name("mallory") }.encode();
    let (awaiting, m1) =
        initiator.write_message_1(PrivateKey::generate(&mut rng), &register).unwrap();
    let out = w
        .server
        .handle(LinkId(3), &LinkFrame::handshake_init(m1).unwrap().encode(), &mut rng)
        .unwrap();
    let resp = LinkFrame::decode(&out.transmit[0].1).unwrap();
    let (mut transport, _) = awaiting.read_message_2(resp.noise()).unwrap();
    let deliver = Message::Deliver { id: MessageId(1), from: name("bob"), body: body("spoof") };
    let frame = LinkFrame::transport(transport.write(&deliver.encode()).unwrap()).unwrap().encode();
    server_refuses(
        &mut w,
        LinkId(3),
        &frame,
        Error::Protocol(ProtocolError::Unexpected { state: "open", got: "Deliver" }),
    );
}

// ---- a malicious server: a test-built responder holding the server's static key ----------

/// Connects Bob to a hand-built server channel and returns Bob plus the server side's transport.
fn bob_with_evil_server() -> (Client, Transport) {
    let mut w = world();
    let init = w.bob.connect(&mut w.rng).unwrap();
    let received = Responder::new(PROLOGUE, w.server_key.clone())
        .read_message_1(LinkFrame::decode(&init).unwrap().noise())
        .unwrap();
    let welcome = Message::Welcome { name: name("bob") }.encode();
    let (transport, m2) =
        received.write_message_2(PrivateKey::generate(&mut w.rng), &welcome).unwrap();
    let mut bob = w.bob;
    assert_eq!(
        bob.handle(&LinkFrame::handshake_resp(m2).unwrap().encode()).unwrap(),
        vec![ClientEvent::Connected]
    );
    (bob, transport)
}

fn sealed(transport: &mut Transport, message: &Message) -> Vec<u8> {
    LinkFrame::transport(transport.write(&message.encode()).unwrap()).unwrap().encode()
}

#[test]
fn client_accepts_each_message_id_at_most_once() {
    let (mut bob, mut server) = bob_with_evil_server();
    let deliver =
        |id| Message::Deliver { id: MessageId(id), from: name("alice"), body: body("hi") };
    assert_eq!(
        bob.handle(&sealed(&mut server, &deliver(5))).unwrap(),
        vec![received("alice", 5, "hi")]
    );
    // The server re-seals the same id: authentic channel frame, replayed message id.
    let replay = sealed(&mut server, &deliver(5));
    client_refuses(
        &mut bob,
        &replay,
        Error::Protocol(ProtocolError::Replayed { from: name("alice"), id: MessageId(5) }),
    );
    // An id older than the window.
    let (mut bob, mut server) = bob_with_evil_server();
    bob.handle(&sealed(&mut server, &deliver(100))).unwrap();
    let stale = sealed(&mut server, &deliver(36));
    client_refuses(
        &mut bob,
        &stale,
        Error::Protocol(ProtocolError::OutOfWindow { from: name("alice"), id: MessageId(36) }),
    );
    // Within the window and unseen: accepted (the refused frames consumed no nonce).
    let (mut bob, mut server) = bob_with_evil_server();
    bob.handle(&sealed(&mut server, &deliver(100))).unwrap();
    assert_eq!(
        bob.handle(&sealed(&mut server, &deliver(37))).unwrap(),
        vec![received("alice", 37, "hi")]
    );
}

#[test]
fn client_malformed_and_unauthentic_frames() {
    let (mut bob, mut server) = bob_with_evil_server();
    let genuine =
        sealed(&mut server, &Message::Ack { id: MessageId(1), status: AckStatus::Relayed });
    let mut forged = genuine.clone();
    forged[10] ^= 0x80;
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        ("truncated", genuine[..genuine.len() - 2].to_vec(), Error::Wire(WireError::Truncated)),
        (
            "trailing",
            [&genuine[..], &[1, 2]].concat(),
            Error::Wire(WireError::TrailingBytes { extra: 2 }),
        ),
        (
            "version 0",
            [&[0u8][..], &genuine[1..]].concat(),
            Error::Wire(WireError::UnknownVersion(0)),
        ),
        ("type 9", [&[1u8, 9][..], &genuine[2..]].concat(), Error::Wire(WireError::UnknownType(9))),
        ("bad tag", forged, Error::Channel(ChannelError::Crypto(CryptoError::AeadOpen))),
        (
            "handshake init to a client",
            LinkFrame::handshake_init(vec![0; 96]).unwrap().encode(),
            Error::Protocol(ProtocolError::Unexpected { state: "online", got: "HandshakeInit" }),
        ),
    ];
    for (what, frame, expected) in cases {
        eprintln!("case: {what}");
        client_refuses(&mut bob, &frame, expected);
    }
    // The genuine frame still opens: every refusal above left the channel where it was.
    assert_eq!(
        bob.handle(&genuine).unwrap(),
        vec![ClientEvent::Acked { id: MessageId(1), status: AckStatus::Relayed }]
    );
    // An authentic message of a kind only clients send.
    let wrong = sealed(&mut server, &Message::Register { name: name("bob") });
    client_refuses(
        &mut bob,
        &wrong,
        Error::Protocol(ProtocolError::Unexpected { state: "online", got: "Register" }),
    );
}

#[test]
fn client_refuses_a_bad_handshake_response_and_keeps_waiting() {
    let mut w = world();
    let init = w.alice.connect(&mut w.rng).unwrap();
    let out = w.server.handle(ALICE, &init, &mut w.rng).unwrap();
    let genuine = out.transmit[0].1.clone();
    let mut forged = genuine.clone();
    *forged.last_mut().unwrap() ^= 1;
    client_refuses(
        &mut w.alice,
        &forged,
        Error::Channel(ChannelError::Crypto(CryptoError::AeadOpen)),
    );
    let mut low_order = genuine.clone();
    low_order[6..38].fill(0);
    client_refuses(
        &mut w.alice,
        &low_order,
        Error::Channel(ChannelError::Crypto(CryptoError::NonContributory)),
    );
    assert_eq!(w.alice.handle(&genuine).unwrap(), vec![ClientEvent::Connected]);
}
