//! The hop protocol through the real role state machines: the happy path, the server's decisions
//! (policy, mailbox, unknown recipient, name binding), and every class of bad input — each asserting
//! its typed error *and* that the receiving role is exactly as it was before.
#![cfg(test)]

use e2e_protocol::channel::{ChannelError, PROLOGUE, Responder, Transport};
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::{E2eError, MAX_ONE_TIME_PREKEYS};
use e2e_protocol::hop::{AllowAll, DenyWord};
use e2e_protocol::roles::{
    Client, ClientEvent, ClientOutputs, Delivery, DurableChange, FramePool, LinkId,
    MAILBOX_CAPACITY, Protection, QUEUED_OVERHEAD, Server, ServerEvent, ServerLimits,
    ServerOutputs, Snapshot, SnapshotError, StoredMailbox,
};
use e2e_protocol::suite::{CryptoError, PrivateKey};
use e2e_protocol::wire::{
    AckStatus, Body, BundleRefusal, Codec, LinkFrame, Message, MessageId, Name, RefusalReason,
    RejectReason, WireError,
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
    /// Alice becomes an e2e client (new keys from the world's RNG), not yet connected.
    fn e2e_alice(&mut self) {
        let key = PrivateKey::generate(&mut self.rng);
        let peers = Peers::generate(&mut self.rng);
        self.alice = Client::with_e2e(name("alice"), key, self.server.public_key(), peers);
    }

    /// Alice becomes an e2e client, connects and publishes her bundle (ten one-time prekeys).
    fn e2e_alice_published(&mut self) {
        self.e2e_alice();
        self.connect(ALICE);
        let upload = self.alice.upload_bundle().unwrap();
        let stored = server_handle(&mut self.server, ALICE, &upload, &mut self.rng).unwrap();
        self.deliver(stored);
    }

    fn client(&mut self, link: LinkId) -> &mut Client {
        if link == ALICE { &mut self.alice } else { &mut self.bob }
    }

    /// Connects the client on `link` and runs the exchange to the end (handshake, `Ready`, any
    /// queued messages); returns the clients' events.
    fn connect(&mut self, link: LinkId) -> Vec<ClientEvent> {
        self.connect_seeing_the_server(link).0
    }

    /// [`World::connect`], also returning what the server produced for each frame it handled.
    fn connect_seeing_the_server(
        &mut self,
        link: LinkId,
    ) -> (Vec<ClientEvent>, Vec<ServerOutputs>) {
        let mut rng = self.rng.clone();
        let init = self.client(link).connect(&mut rng).unwrap();
        self.rng = rng;
        let out = server_handle(&mut self.server, link, &init, &mut self.rng).unwrap();
        let mut outs = vec![out.clone()];
        let (events, answers) = self.deliver_seeing_the_server(out);
        outs.extend(answers);
        (events, outs)
    }

    /// Hands every server frame to its client and every client frame back to the server, until
    /// nothing is in flight; returns the clients' events in order.
    fn deliver(&mut self, out: ServerOutputs) -> Vec<ClientEvent> {
        self.deliver_seeing_the_server(out).0
    }

    /// [`World::deliver`], also returning what the server produced for each client frame.
    fn deliver_seeing_the_server(
        &mut self,
        out: ServerOutputs,
    ) -> (Vec<ClientEvent>, Vec<ServerOutputs>) {
        let (mut events, mut answers) = (Vec::new(), Vec::new());
        let mut in_flight: std::collections::VecDeque<_> = out.transmit.into();
        // Bounded, so that a bug that makes frames beget frames fails instead of hanging.
        for pumped in 0.. {
            assert!(pumped < 10_000, "the network did not quiet down within 10000 frames");
            let Some((link, frame)) = in_flight.pop_front() else { break };
            let mut rng = self.rng.clone();
            let client_out = client_handle(self.client(link), &frame, &mut rng).unwrap();
            self.rng = rng;
            events.extend(client_out.events);
            for reply in client_out.transmit {
                let answer = server_handle(&mut self.server, link, &reply, &mut self.rng).unwrap();
                in_flight.extend(answer.transmit.iter().cloned());
                answers.push(answer);
            }
        }
        (events, answers)
    }

    /// Alice sends `text` to Bob through the server; returns the server's outputs undelivered.
    fn alice_sends(&mut self, text: &str) -> (MessageId, ServerOutputs) {
        let (id, frame) = self.alice.send(&name("bob"), body(text)).unwrap();
        let out = server_handle(&mut self.server, ALICE, &frame, &mut self.rng).unwrap();
        (id, out)
    }
}

/// The events `client` reports for `frame` (it must accept the frame).
fn events(client: &mut Client, frame: &[u8]) -> Vec<ClientEvent> {
    client_handle(client, frame, &mut ChaCha20Rng::seed_from_u64(0)).unwrap().events
}

/// What a driver of the in-place API holds before a call: a list entry from an earlier call,
/// which the call must keep (it pushes after it), and a buffer in the pool.
fn sentinel_event() -> ServerEvent {
    ServerEvent::Dropped { link: LinkId(99), error: MisuseError::UnknownLink.into() }
}

/// `server.handle(link, frame)`, checked against `Server::handle_in_place` on a copy of the
/// server and the RNG, in lists that already hold an event and with a pool that holds a buffer:
/// on success the same outputs (after the event), the same server, the frame consumed; on error
/// the same error, and the copy, the frame, the lists and the pool exactly as they were.
fn server_handle<P: e2e_protocol::hop::ContentPolicy>(
    server: &mut Server<P>,
    link: LinkId,
    frame: &[u8],
    rng: &mut ChaCha20Rng,
) -> Result<ServerOutputs, Error> {
    let (mut copy, mut copy_rng) = (server.clone(), rng.clone());
    let expected = server.handle(link, frame, rng);
    let mut buffer = frame.to_vec();
    let mut out = ServerOutputs { events: vec![sentinel_event()], ..Default::default() };
    let mut pool = FramePool::new();
    pool.recycle(Vec::with_capacity(8));
    let got = copy.handle_in_place(link, &mut buffer, &mut copy_rng, &mut out, &mut pool);
    assert_eq!((&copy, &copy_rng), (&*server, &*rng), "in place, the server went elsewhere");
    match &expected {
        Ok(want) => {
            assert_eq!(got, Ok(()));
            assert!(buffer.is_empty(), "the frame was not consumed");
            let mut events = vec![sentinel_event()];
            events.extend(want.events.iter().cloned());
            let want = ServerOutputs { events, ..want.clone() };
            assert_eq!(out, want, "in place, other outputs");
        }
        Err(error) => {
            assert_eq!(got, Err(error.clone()));
            assert_eq!(buffer, frame, "the frame changed on error");
            let before = ServerOutputs { events: vec![sentinel_event()], ..Default::default() };
            assert_eq!((out, pool.len()), (before, 1), "the lists or the pool changed on error");
        }
    }
    expected
}

/// `client.handle(frame)`, checked against `Client::handle_in_place` as [`server_handle`]
/// checks the server's.
fn client_handle(
    client: &mut Client,
    frame: &[u8],
    rng: &mut ChaCha20Rng,
) -> Result<ClientOutputs, Error> {
    let (mut copy, mut copy_rng) = (client.clone(), rng.clone());
    let expected = client.handle(frame, rng);
    let mut buffer = frame.to_vec();
    let earlier = ClientEvent::Acked { id: MessageId(99), status: AckStatus::Queued };
    let mut out = ClientOutputs { transmit: vec![vec![9]], events: vec![earlier.clone()] };
    let mut pool = FramePool::new();
    pool.recycle(Vec::with_capacity(8));
    let got = copy.handle_in_place(&mut buffer, &mut copy_rng, &mut out, &mut pool);
    assert_eq!((&copy, &copy_rng), (&*client, &*rng), "in place, the client went elsewhere");
    match &expected {
        Ok(want) => {
            assert_eq!(got, Ok(()));
            assert!(buffer.is_empty(), "the frame was not consumed");
            let transmit = [vec![vec![9]], want.transmit.clone()].concat();
            let events = [vec![earlier], want.events.clone()].concat();
            assert_eq!(out, ClientOutputs { transmit, events }, "in place, other outputs");
        }
        Err(error) => {
            assert_eq!(got, Err(error.clone()));
            assert_eq!(buffer, frame, "the frame changed on error");
            let before = ClientOutputs { transmit: vec![vec![9]], events: vec![earlier] };
            assert_eq!((out, pool.len()), (before, 1), "the lists or the pool changed on error");
        }
    }
    expected
}

fn received(from: &str, id: u64, text: &str) -> ClientEvent {
    ClientEvent::Received {
        from: name(from),
        id: MessageId(id),
        body: body(text),
        protection: Protection::Hop,
    }
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
    let out = server_handle(&mut w.server, ALICE, &frame, &mut w.rng).unwrap();
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
    let out = server_handle(&mut w.server, LinkId(9), &init, &mut w.rng).unwrap();
    assert_eq!(out.close, vec![LinkId(9)]);
    assert!(w.server.is_online(&name("bob")), "the real Bob keeps his channel");
    let (_, frame) = &out.transmit[0];
    assert_eq!(events(&mut impostor, frame), vec![ClientEvent::Refused(RefusalReason::NameTaken)]);
    assert!(!impostor.is_connected());
}

#[test]
fn reconnecting_replaces_the_old_link_once_the_new_one_is_confirmed() {
    let mut w = world();
    w.connect(ALICE);
    w.connect(BOB);
    // Alice reconnects on link 5 while the server still has her old link open.
    let mut rng = w.rng.clone();
    w.alice.disconnect();
    let init = w.alice.connect(&mut rng).unwrap();
    let out = server_handle(&mut w.server, LinkId(5), &init, &mut rng).unwrap();
    assert!(out.close.is_empty(), "nothing is displaced before the new link is confirmed");
    assert_eq!(w.server.link_of(&name("alice")), Some(ALICE));
    let (_, resp) = &out.transmit[0];
    let client_out = client_handle(&mut w.alice, resp, &mut rng).unwrap();
    let ready = &client_out.transmit[0];
    let out = server_handle(&mut w.server, LinkId(5), ready, &mut rng).unwrap();
    assert_eq!(out.close, vec![ALICE], "the confirmed new link closes the old one");
    assert_eq!(w.server.link_of(&name("alice")), Some(LinkId(5)));
    // Traffic for Alice now goes to link 5, and the old link is gone.
    let (_, frame) = w.bob.send(&name("alice"), body("on the new link")).unwrap();
    let out = server_handle(&mut w.server, BOB, &frame, &mut rng).unwrap();
    assert_eq!(out.transmit[0].0, LinkId(5));
    let (_, frame) = w.alice.send(&name("bob"), body("x")).unwrap();
    server_refuses(
        &mut w,
        ALICE,
        &frame,
        Error::Protocol(ProtocolError::Unexpected { state: "no channel", got: "Transport" }),
    );
}

/// The server routes by an index of confirmed links by name: closing a link takes its own
/// client offline and nobody else, an unconfirmed link was never in it, and a restored server
/// has no links.
#[test]
fn closing_a_link_takes_only_its_own_client_offline() {
    let mut w = world();
    w.connect(ALICE);
    w.connect(BOB);
    // A second handshake as Alice on link 5, whose connection drops before it is confirmed.
    let mut rng = w.rng.clone();
    let mut second = w.alice.clone();
    second.disconnect();
    let init = second.connect(&mut rng).unwrap();
    server_handle(&mut w.server, LinkId(5), &init, &mut rng).unwrap();
    w.server.close_link(LinkId(5));
    assert_eq!(w.server.link_of(&name("alice")), Some(ALICE), "link 5 was not Alice's active link");
    let before = w.server.clone();
    w.server.close_link(LinkId(42));
    assert_eq!(w.server, before, "closing a link that is not open changes nothing");
    // Bob's link closes: a message to Bob is queued, and Alice is still online.
    w.server.close_link(BOB);
    assert_eq!(w.server.link_of(&name("bob")), None);
    assert!(w.server.is_online(&name("alice")));
    let (id, out) = w.alice_sends("while you were away");
    assert_eq!(w.deliver(out), vec![ClientEvent::Acked { id, status: AckStatus::Queued }]);
    // Bob reconnects: the message is delivered and later ones are routed to his new channel.
    w.bob.disconnect();
    assert_eq!(
        w.connect(BOB),
        vec![ClientEvent::Connected, received("alice", 1, "while you were away")]
    );
    let (id, out) = w.alice_sends("and now");
    assert_eq!(
        w.deliver(out),
        vec![
            received("alice", 2, "and now"),
            ClientEvent::Acked { id, status: AckStatus::Relayed }
        ]
    );
    // A server restored from its state has no links, so nobody is online.
    let restored = w.server.clone().durable().restore(w.server.snapshot()).unwrap();
    assert_eq!((restored.link_of(&name("alice")), restored.link_of(&name("bob"))), (None, None));
}

/// `send_into` appends the frame `send` returns to the caller's buffer, and refuses without
/// touching the buffer or the client.
#[test]
fn send_into_appends_what_send_returns_and_refuses_leaving_the_buffer() {
    let mut w = world();
    let mut buffer = b"earlier".to_vec();
    let before = w.alice.clone();
    assert_eq!(
        w.alice.send_into(&name("bob"), &body("x"), &mut buffer),
        Err(Error::Misuse(MisuseError::NotConnected))
    );
    assert_eq!((&w.alice, &buffer[..]), (&before, &b"earlier"[..]));
    w.connect(ALICE);
    let mut copy = w.alice.clone();
    let (id, frame) = copy.send(&name("bob"), body("hello")).unwrap();
    assert_eq!(w.alice.send_into(&name("bob"), &body("hello"), &mut buffer), Ok(id));
    assert_eq!(buffer, [&b"earlier"[..], &frame].concat());
    assert_eq!(w.alice, copy);
}

/// `send_e2e_into` appends the frame `send_e2e` sends to the caller's buffer, and refuses —
/// also where `send_e2e` would queue the message, without a session — leaving the buffer and
/// the client as they were.
#[test]
fn send_e2e_into_appends_what_send_e2e_sends_and_refuses_leaving_the_buffer() {
    let mut w = world();
    let mut buffer = b"earlier".to_vec();
    let refuses = |client: &mut Client, to: &str, buffer: &mut Vec<u8>, expected: Error| {
        let before = client.clone();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        assert_eq!(client.send_e2e_into(&name(to), &body("x"), &mut rng, buffer), Err(expected));
        assert_eq!((&*client, &buffer[..]), (&before, &b"earlier"[..]));
    };
    refuses(&mut w.bob, "alice", &mut buffer, MisuseError::NotConnected.into());
    w.e2e_alice_published();
    refuses(&mut w.alice, "alice", &mut buffer, MisuseError::SendToSelf.into());
    let no_session = E2eError::NoSession { name: name("bob") };
    refuses(&mut w.alice, "bob", &mut buffer, no_session.into());
    // Bob publishes a bundle; Alice's first message starts the session.
    let key = PrivateKey::generate(&mut w.rng);
    let peers = Peers::generate(&mut w.rng);
    w.bob = Client::with_e2e(name("bob"), key, w.server.public_key(), peers);
    w.connect(BOB);
    let upload = w.bob.upload_bundle().unwrap();
    let out = server_handle(&mut w.server, BOB, &upload, &mut w.rng).unwrap();
    w.deliver(out);
    let first = w.alice.send_e2e(&name("bob"), body("first"), &mut w.rng).unwrap();
    for frame in first.transmit {
        let out = server_handle(&mut w.server, ALICE, &frame, &mut w.rng).unwrap();
        w.deliver(out);
    }
    let (mut copy, mut rng) = (w.alice.clone(), w.rng.clone());
    let sent = copy.send_e2e(&name("bob"), body("second"), &mut rng).unwrap();
    let ClientEvent::Sent { id, .. } = sent.events[0].clone() else { panic!("{sent:?}") };
    assert_eq!(
        w.alice.send_e2e_into(&name("bob"), &body("second"), &mut w.rng, &mut buffer),
        Ok(id)
    );
    assert_eq!(buffer, [&b"earlier"[..], &sent.transmit[0]].concat());
    assert_eq!((&w.alice, &w.rng), (&copy, &rng));
    buffer.truncate("earlier".len());
    w.alice.disconnect();
    refuses(&mut w.alice, "bob", &mut buffer, MisuseError::NotConnected.into());
}

#[test]
fn a_replayed_handshake_neither_steals_the_mailbox_nor_kicks_the_client() {
    // A network attacker recorded Alice's HandshakeInit and replays it later on a link of its own.
    let mut w = world();
    let mut rng = w.rng.clone();
    let recorded = w.alice.connect(&mut rng).unwrap();
    w.rng = rng;
    let out = server_handle(&mut w.server, ALICE, &recorded, &mut w.rng).unwrap();
    w.deliver(out);
    w.connect(BOB);
    // Alice goes offline; Bob's messages queue for her.
    w.alice.disconnect();
    w.server.close_link(ALICE);
    for text in ["one", "two"] {
        let (_, frame) = w.bob.send(&name("alice"), body(text)).unwrap();
        let out = server_handle(&mut w.server, BOB, &frame, &mut w.rng).unwrap();
        assert!(matches!(
            w.deliver(out)[..],
            [ClientEvent::Acked { status: AckStatus::Queued, .. }]
        ));
    }
    // The replay: the server answers (it cannot tell), but delivers nothing to the replayer.
    let out = server_handle(&mut w.server, LinkId(66), &recorded, &mut w.rng).unwrap();
    assert_eq!(
        out.transmit.len(),
        1,
        "only the handshake response, which the attacker cannot read"
    );
    assert!(out.close.is_empty());
    assert_eq!(w.server.queued(&name("alice")), 2, "the mailbox is untouched");
    // Alice comes back and gets everything; her handshake closes the replayed link, which was never
    // confirmed (at most one unconfirmed link per name).
    let mut rng = w.rng.clone();
    let init = w.alice.connect(&mut rng).unwrap();
    w.rng = rng;
    let out = server_handle(&mut w.server, ALICE, &init, &mut w.rng).unwrap();
    assert_eq!(out.close, vec![LinkId(66)]);
    let events = w.deliver(out);
    assert_eq!(
        events,
        vec![ClientEvent::Connected, received("bob", 1, "one"), received("bob", 2, "two")]
    );
    // A second replay while Alice is online does not displace her confirmed link.
    let out = server_handle(&mut w.server, LinkId(67), &recorded, &mut w.rng).unwrap();
    assert!(out.close.is_empty());
    assert_eq!(w.server.link_of(&name("alice")), Some(ALICE));
    let (_, frame) = w.bob.send(&name("alice"), body("three")).unwrap();
    let out = server_handle(&mut w.server, BOB, &frame, &mut w.rng).unwrap();
    assert_eq!(w.deliver(out)[0], received("bob", 3, "three"));
}

#[test]
fn a_message_to_oneself_advances_one_channel_twice() {
    // Deliver and Ack go out on the same channel: two nonces, in order, and the link stays in step.
    let mut w = world();
    w.connect(ALICE);
    let (id, frame) = w.alice.send(&name("alice"), body("note to self")).unwrap();
    let out = server_handle(&mut w.server, ALICE, &frame, &mut w.rng).unwrap();
    assert_eq!(out.transmit.len(), 2);
    assert_ne!(out.transmit[0].1[6..], out.transmit[1].1[6..]);
    assert_eq!(
        w.deliver(out),
        vec![
            received("alice", 1, "note to self"),
            ClientEvent::Acked { id, status: AckStatus::Relayed }
        ]
    );
    let (_, frame) = w.alice.send(&name("alice"), body("again")).unwrap();
    let out = server_handle(&mut w.server, ALICE, &frame, &mut w.rng).unwrap();
    assert_eq!(w.deliver(out)[0], received("alice", 2, "again"));
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
    assert_eq!(server_handle(&mut w.server, link, frame, &mut w.rng), Err(expected));
    assert_eq!(w.server, before, "server state changed on error");
}

fn client_refuses(client: &mut Client, frame: &[u8], expected: Error) {
    let before = client.clone();
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    assert_eq!(client_handle(client, frame, &mut rng), Err(expected));
    assert_eq!(*client, before, "client state changed on error");
}

/// `frame` authenticates but its content is refused: the client reports `Dropped` with `expected`
/// (and nothing else), and only its channel moves on — shown by the caller's next genuine frame.
fn client_drops(client: &mut Client, frame: &[u8], expected: Error) {
    assert_eq!(events(client, frame), vec![ClientEvent::Dropped { error: expected }]);
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
    let out = server_handle(&mut w.server, ALICE, frame, &mut w.rng).unwrap();
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

/// A pool of `held` buffers, each holding `len` bytes (stale bytes a read writes over).
fn pool_of(held: usize, len: usize) -> FramePool {
    let mut pool = FramePool::new();
    for _ in 0..held {
        pool.recycle(vec![0x55; len]);
    }
    pool
}

/// A frame is read into a buffer of the pool, never in place: a forged one — a flipped
/// ciphertext byte or tag byte — leaves the frame byte for byte as it arrived, the pool with
/// the buffers it had (none, or some as long as the frame), the lists and the role as they were,
/// on every backend (AWS-LC erases what it decrypted when a tag fails: only the pool's buffer).
#[test]
fn a_forged_frame_leaves_the_frame_the_pool_and_the_role_as_they_were() {
    let (mut w, genuine) = connected_with_pending_send();
    let aead_open = Error::Channel(ChannelError::Crypto(CryptoError::AeadOpen));
    let forgeries = |frame: &[u8]| {
        [6, frame.len() - 1].map(|at| {
            let mut forged = frame.to_vec();
            forged[at] ^= 1;
            forged
        })
    };
    for forged in forgeries(&genuine) {
        for held in [0, 2] {
            let mut pool = pool_of(held, genuine.len());
            let (before, mut frame, mut out) =
                (w.server.clone(), forged.clone(), Default::default());
            let got = w.server.handle_in_place(ALICE, &mut frame, &mut w.rng, &mut out, &mut pool);
            assert_eq!(got, Err(aead_open.clone()));
            assert_eq!((&frame, pool.len(), &out), (&forged, held, &ServerOutputs::default()));
            assert_eq!(w.server, before, "the server changed on error");
        }
    }
    let out = server_handle(&mut w.server, ALICE, &genuine, &mut w.rng).unwrap();
    let to_bob = out.transmit.iter().find(|(link, _)| *link == BOB).unwrap().1.clone();
    for forged in forgeries(&to_bob) {
        for held in [0, 2] {
            let mut pool = pool_of(held, to_bob.len());
            let (before, mut frame, mut out) = (w.bob.clone(), forged.clone(), Default::default());
            let got = w.bob.handle_in_place(&mut frame, &mut w.rng, &mut out, &mut pool);
            assert_eq!(got, Err(aead_open.clone()));
            assert_eq!((&frame, pool.len(), &out), (&forged, held, &ClientOutputs::default()));
            assert_eq!(w.bob, before, "the client changed on error");
        }
    }
    assert_eq!(events(&mut w.bob, &to_bob), vec![received("alice", 1, "genuine")]);
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
fn server_drops_an_authentic_but_unexpected_message_and_stays_in_step() {
    // A client that speaks the channel correctly but sends messages the server does not expect.
    let mut w = world();
    w.connect(BOB);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let key = PrivateKey::generate(&mut rng);
    let initiator = e2e_protocol::channel::Initiator::new(PROLOGUE, key, w.server.public_key());
    let register = Message::Register { name: name("mallory") }.encode();
    let (awaiting, m1) =
        initiator.write_message_1(PrivateKey::generate(&mut rng), &register).unwrap();
    let init = LinkFrame::handshake_init(m1).unwrap().encode();
    let out = server_handle(&mut w.server, LinkId(3), &init, &mut rng).unwrap();
    let resp = LinkFrame::decode(&out.transmit[0].1).unwrap();
    let (mut transport, _) = awaiting.read_message_2(resp.noise()).unwrap();
    let mut frame =
        |m: &Message| LinkFrame::transport(transport.write(&m.encode()).unwrap()).unwrap().encode();
    let spoof = Message::Deliver { id: MessageId(1), from: name("bob"), body: body("spoof") };
    let dropped = |state, got| ServerEvent::Dropped {
        link: LinkId(3),
        error: Error::Protocol(ProtocolError::Unexpected { state, got }),
    };
    // Before confirming: only Ready is acceptable — also no relay request, hop or e2e, which the
    // server decodes on a path of its own (its content borrowed from the frame).
    let out = server_handle(&mut w.server, LinkId(3), &frame(&spoof), &mut rng).unwrap();
    assert_eq!(out.events, vec![dropped("unconfirmed", "Deliver")]);
    assert!(out.transmit.is_empty());
    let early = Message::Send { id: MessageId(1), to: name("bob"), body: body("too early") };
    let out = server_handle(&mut w.server, LinkId(3), &frame(&early), &mut rng).unwrap();
    assert_eq!(out.events, vec![dropped("unconfirmed", "Send")]);
    assert!(out.transmit.is_empty());
    let envelope = e2e_protocol::wire::Envelope::new(vec![1; 40]).unwrap();
    let early = Message::E2eSend { id: MessageId(2), to: name("bob"), envelope };
    let out = server_handle(&mut w.server, LinkId(3), &frame(&early), &mut rng).unwrap();
    assert_eq!(out.events, vec![dropped("unconfirmed", "E2eSend")]);
    assert!(out.transmit.is_empty());
    assert!(!w.server.is_online(&name("mallory")));
    // The channel stayed in step: Ready now confirms the link.
    let out = server_handle(&mut w.server, LinkId(3), &frame(&Message::Ready), &mut rng).unwrap();
    assert!(matches!(out.events[..], [ServerEvent::Online { .. }]));
    // After confirming: a server-only message is dropped, and nothing reaches Bob.
    let out = server_handle(&mut w.server, LinkId(3), &frame(&spoof), &mut rng).unwrap();
    assert_eq!(out.events, vec![dropped("open", "Deliver")]);
    assert!(out.transmit.is_empty());
    // Authentic garbage: dropped as malformed.
    let garbage =
        LinkFrame::transport(transport.write(&[1, 0x20, 0, 0, 0, 1]).unwrap()).unwrap().encode();
    let out = server_handle(&mut w.server, LinkId(3), &garbage, &mut rng).unwrap();
    assert!(matches!(out.events[..], [ServerEvent::Dropped { error: Error::Wire(_), .. }]));
    // And the channel is still in step: a real message goes through.
    let send = Message::Send { id: MessageId(1), to: name("bob"), body: body("hello") };
    let frame = LinkFrame::transport(transport.write(&send.encode()).unwrap()).unwrap().encode();
    let out = server_handle(&mut w.server, LinkId(3), &frame, &mut rng).unwrap();
    let (to_bob, deliver) = &out.transmit[0];
    assert_eq!(*to_bob, BOB);
    assert_eq!(events(&mut w.bob, deliver), vec![received("mallory", 1, "hello")]);
}

// ---- a malicious server: a test-built responder holding the server's static key ----------

/// A hand-built server answers Bob's `HandshakeInit` with `Welcome { name: welcomed }`: returns
/// the server side's transport and the handshake response, not yet handed to Bob.
fn evil_server_welcomes(
    w: &mut World<e2e_protocol::hop::AllowAll>,
    welcomed: &str,
) -> (Transport, Vec<u8>) {
    let init = w.bob.connect(&mut w.rng).unwrap();
    let received = Responder::new(PROLOGUE, w.server_key.clone())
        .read_message_1(LinkFrame::decode(&init).unwrap().noise())
        .unwrap();
    let welcome = Message::Welcome { name: name(welcomed) }.encode();
    let (transport, m2) =
        received.write_message_2(PrivateKey::generate(&mut w.rng), &welcome).unwrap();
    (transport, LinkFrame::handshake_resp(m2).unwrap().encode())
}

/// Connects Bob to a hand-built server channel and returns Bob plus the server side's transport.
fn bob_with_evil_server() -> (Client, Transport) {
    let mut w = world();
    let (transport, frame) = evil_server_welcomes(&mut w, "bob");
    let mut bob = w.bob;
    let out = client_handle(&mut bob, &frame, &mut ChaCha20Rng::seed_from_u64(0)).unwrap();
    assert_eq!(out.events, vec![ClientEvent::Connected]);
    assert_eq!(out.transmit.len(), 1, "Bob confirms the channel with Ready");
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
        events(&mut bob, &sealed(&mut server, &deliver(5))),
        vec![received("alice", 5, "hi")]
    );
    // The server re-seals the same id: an authentic channel frame carrying a replayed message id.
    let before = bob.clone();
    client_drops(
        &mut bob,
        &sealed(&mut server, &deliver(5)),
        Error::Protocol(ProtocolError::Replayed { from: name("alice"), id: MessageId(5) }),
    );
    assert_ne!(bob, before, "the channel moved past the authentic frame");
    // An id older than the window.
    assert_eq!(
        events(&mut bob, &sealed(&mut server, &deliver(100))),
        vec![received("alice", 100, "hi")]
    );
    client_drops(
        &mut bob,
        &sealed(&mut server, &deliver(36)),
        Error::Protocol(ProtocolError::OutOfWindow { from: name("alice"), id: MessageId(36) }),
    );
    // On the same channel, after both refusals: the oldest id still in the window, never seen, is
    // accepted — the refusals advanced the channel and recorded nothing.
    assert_eq!(
        events(&mut bob, &sealed(&mut server, &deliver(37))),
        vec![received("alice", 37, "hi")]
    );
    client_drops(
        &mut bob,
        &sealed(&mut server, &deliver(37)),
        Error::Protocol(ProtocolError::Replayed { from: name("alice"), id: MessageId(37) }),
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
        events(&mut bob, &genuine),
        vec![ClientEvent::Acked { id: MessageId(1), status: AckStatus::Relayed }]
    );
    // An authentic message of a kind only clients send: dropped, and the channel stays in step.
    let wrong = sealed(&mut server, &Message::Register { name: name("bob") });
    client_drops(
        &mut bob,
        &wrong,
        Error::Protocol(ProtocolError::Unexpected { state: "online", got: "Register" }),
    );
    // Authentic garbage inside the channel: dropped as malformed, channel in step.
    let garbage =
        LinkFrame::transport(server.write(&[0x01, 0x22, 0, 0]).unwrap()).unwrap().encode();
    client_drops(&mut bob, &garbage, Error::Wire(WireError::Truncated));
    let next = sealed(&mut server, &Message::Ack { id: MessageId(2), status: AckStatus::Queued });
    assert_eq!(
        events(&mut bob, &next),
        vec![ClientEvent::Acked { id: MessageId(2), status: AckStatus::Queued }]
    );
}

#[test]
fn client_refuses_a_bad_handshake_response_and_keeps_waiting() {
    let mut w = world();
    let init = w.alice.connect(&mut w.rng).unwrap();
    let out = server_handle(&mut w.server, ALICE, &init, &mut w.rng).unwrap();
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
    assert_eq!(events(&mut w.alice, &genuine), vec![ClientEvent::Connected]);
}

/// A server that seals what no encoder produces (`Server::seal_plaintext`, a malicious server's
/// tool): an `Ack` with a byte after its last field, the declared length covering it. Alice drops
/// it as malformed (SPEC.md §3.4), her channel moves past it, and the next genuine frame goes
/// through. The same call on a canonical encoding gives `seal_transport`'s frame byte for byte.
#[test]
fn a_control_message_with_trailing_bytes_is_dropped() {
    let (mut w, frame) = connected_with_pending_send();
    let ack = Message::Ack { id: MessageId(1), status: AckStatus::Relayed };
    let mut copy = w.server.clone();
    assert_eq!(
        copy.seal_plaintext(ALICE, &ack.encode()),
        w.server.clone().seal_transport(ALICE, &ack)
    );
    assert_eq!(
        copy.seal_plaintext(LinkId(9), &ack.encode()),
        Err(Error::Misuse(MisuseError::UnknownLink))
    );
    let mut padded = ack.encode();
    padded.push(0);
    let declared = u32::try_from(padded.len() - 6).unwrap();
    padded[2..6].copy_from_slice(&declared.to_be_bytes());
    let sealed = w.server.seal_plaintext(ALICE, &padded).unwrap();
    client_drops(&mut w.alice, &sealed, Error::Wire(WireError::TrailingBytes { extra: 1 }));
    genuine_still_works(&mut w, &frame);
}

/// The server's side of an e2e upload, which its driver relies on: the upload is reported
/// (`BundleStored`, with the one-time prekeys now held), and a durable server hands over the
/// directory entry to store before its answer goes out (SPEC.md §9.2); one without a store, none.
#[test]
fn bundle_upload_is_reported_and_a_durable_server_hands_over_the_entry() {
    for durable in [false, true] {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let server_key = PrivateKey::generate(&mut rng);
        let server = Server::new(server_key.clone());
        let server = if durable { server.durable() } else { server };
        let mut w = world_with(server, server_key, rng);
        w.e2e_alice();
        assert_eq!(w.connect(ALICE), [ClientEvent::Connected]);

        let upload = w.alice.upload_bundle().unwrap();
        let out = server_handle(&mut w.server, ALICE, &upload, &mut w.rng).unwrap();
        let held = w.server.one_time_prekeys(&name("alice"));
        assert!(held > 0);
        assert_eq!(
            out.events,
            [ServerEvent::BundleStored { name: name("alice"), one_time_prekeys: held }]
        );
        assert_eq!(out.transmit.len(), 1);
        if durable {
            assert!(
                matches!(&out.changes[..], [DurableChange::Directory { name: n, .. }] if *n == name("alice")),
                "{:?}",
                out.changes
            );
        } else {
            assert_eq!(out.changes, []);
        }
    }
}

/// An upload that cannot be sent (no channel yet) gives back what preparing it changed: the
/// one-time prekeys it marked uploaded, the signed prekey it rotated, the keys it added — the
/// client is exactly as it was.
#[test]
fn an_upload_that_cannot_be_sent_leaves_the_client_as_it_was() {
    let mut w = world();
    w.e2e_alice();
    let before = w.alice.clone();
    let not_connected = Err(Error::Misuse(MisuseError::NotConnected));
    assert_eq!(w.alice.upload_bundle(), not_connected);
    assert_eq!(w.alice.rotate_signed_prekey(&mut w.rng), not_connected);
    assert_eq!(w.alice.replenish_prekeys(&mut w.rng, 3), not_connected);
    assert_eq!(w.alice, before);
}

/// SPEC.md §10.2: the signed prekey id a client reports is the one its uploads publish — the one
/// the server hands out once it stored them — and a rotation moves it to the next id (12, after
/// the signed prekey 1 and the one-time prekeys 2..=11); a hop-only client has none.
#[test]
fn a_client_reports_the_signed_prekey_its_uploads_publish() {
    let mut w = world();
    assert_eq!(w.alice.signed_prekey_id(), None);
    w.e2e_alice_published();
    let handed_out = |w: &World<AllowAll>| w.server.clone().take_bundle(&name("alice")).unwrap();
    assert_eq!(handed_out(&w).signed_prekey.id, 1);
    assert_eq!(w.alice.signed_prekey_id(), Some(1));
    let rotation = w.alice.rotate_signed_prekey(&mut w.rng).unwrap();
    let stored = server_handle(&mut w.server, ALICE, &rotation, &mut w.rng).unwrap();
    w.deliver(stored);
    assert_eq!(handed_out(&w).signed_prekey.id, 12);
    assert_eq!(w.alice.signed_prekey_id(), Some(12));
}

/// SPEC.md §10.2: a rotation deletes the signed prekey before the current one, so a client rotates
/// only once the server has stored the current one (an upload that carries it answered
/// `BundleStored`) and has answered every upload of the connection; a refused rotation changes
/// nothing. An answer nothing asked for counts for nothing, and `BundleRefused` answers an upload
/// without storing it. (protocol/ref/tests/e2e_roles.rs follows the same rule through lost
/// connections and the state file; this test keeps it in the library's own tests, which judge its
/// mutants.)
#[test]
fn a_client_rotates_only_once_the_server_stored_its_signed_prekey_and_answered_every_upload() {
    let mut w = world();
    w.e2e_alice();
    let refused_unchanged = |w: &mut World<AllowAll>, why: &str| {
        let before = w.alice.clone();
        let refused = w.alice.rotate_signed_prekey(&mut w.rng);
        assert_eq!(refused, Err(Error::Misuse(MisuseError::SignedPrekeyNotStored)), "{why}");
        assert_eq!(w.alice, before, "a refused rotation changed the client: {why}");
    };
    let answer = |w: &mut World<AllowAll>, frame: &[u8]| {
        let out = server_handle(&mut w.server, ALICE, frame, &mut w.rng).unwrap();
        w.deliver(out)
    };
    // The server's end of Alice's channel says `message`, which no upload of hers asked for.
    let unasked = |w: &mut World<AllowAll>, message: &Message| {
        let frame = w.server.seal_transport(ALICE, message).unwrap();
        let out = client_handle(&mut w.alice, &frame, &mut w.rng).unwrap();
        assert!(out.transmit.is_empty(), "{out:?}");
    };
    w.connect(ALICE);
    refused_unchanged(&mut w, "nothing uploaded yet");
    let upload = w.alice.upload_bundle().unwrap();
    refused_unchanged(&mut w, "the upload not answered yet");
    answer(&mut w, &upload);
    let mut rng = w.rng.clone();
    let replenishment = w.alice.replenish_prekeys(&mut rng, 1).unwrap();
    refused_unchanged(&mut w, "stored, but an upload unanswered");
    answer(&mut w, &replenishment);
    // Stored and nothing awaited: a rotation (signed prekey 13), and none again until it is stored.
    let rotation = w.alice.rotate_signed_prekey(&mut w.rng).unwrap();
    refused_unchanged(&mut w, "the rotation not stored yet");
    answer(&mut w, &rotation);
    assert_eq!(w.server.clone().take_bundle(&name("alice")).unwrap().signed_prekey.id, 13);
    // A rotation (14) lost with its connection: on the new one nothing is awaited, nothing stored.
    let reconnect = |w: &mut World<AllowAll>| {
        w.alice.disconnect();
        w.server.close_link(ALICE);
        w.connect(ALICE);
    };
    drop(w.alice.rotate_signed_prekey(&mut w.rng).unwrap());
    reconnect(&mut w);
    unasked(&mut w, &Message::BundleStored { one_time_prekeys: 10 });
    refused_unchanged(&mut w, "a BundleStored nothing asked for");
    // A refusal answers the upload and stores nothing (the upload's frame never reaches the
    // server: the connection starts again, to keep the channel's nonces in step).
    let refusal = Message::BundleRefused { reason: BundleRefusal::TooManyPrekeys };
    drop(w.alice.upload_bundle().unwrap());
    unasked(&mut w, &refusal);
    refused_unchanged(&mut w, "the upload was refused");
    reconnect(&mut w);
    let upload = w.alice.upload_bundle().unwrap();
    answer(&mut w, &upload);
    assert_eq!(w.server.clone().take_bundle(&name("alice")).unwrap().signed_prekey.id, 14);
    // Stored: a refused upload of the same signed prekey is an answer, and the rotation goes.
    w.alice.upload_bundle().unwrap();
    unasked(&mut w, &refusal);
    w.alice.rotate_signed_prekey(&mut w.rng).unwrap();
}

/// A new e2e client, `f{k}` on link `10 + k`, connects and asks for Alice's bundle (for a first
/// message to her); returns the server's outputs for the fetch. A new one each time: a client
/// fetches a bundle once.
fn fetch_as_newcomer(w: &mut World<e2e_protocol::hop::AllowAll>, k: u64) -> ServerOutputs {
    let link = LinkId(10 + k);
    let (peers, key) = (Peers::generate(&mut w.rng), PrivateKey::generate(&mut w.rng));
    let mut fetcher = Client::with_e2e(name(&format!("f{k}")), key, w.server.public_key(), peers);
    let mut in_flight: Vec<_> = {
        let init = fetcher.connect(&mut w.rng).unwrap();
        server_handle(&mut w.server, link, &init, &mut w.rng).unwrap().transmit
    };
    while let Some((_, frame)) = in_flight.pop() {
        for reply in client_handle(&mut fetcher, &frame, &mut w.rng).unwrap().transmit {
            in_flight
                .extend(server_handle(&mut w.server, link, &reply, &mut w.rng).unwrap().transmit);
        }
    }
    let fetch = fetcher.send_e2e(&name("alice"), body("hi"), &mut w.rng).unwrap().transmit;
    server_handle(&mut w.server, link, &fetch[0], &mut w.rng).unwrap()
}

/// SPEC.md §15.2: a fetch that leaves the owner `PREKEYS_LOW_WATER` = 5 one-time prekeys or fewer
/// tells the owner, who is online, `PrekeysLow` — and the owner replenishes; a fetch that leaves
/// more says nothing to the owner.
#[test]
fn the_owner_hears_prekeys_low_once_a_fetch_leaves_five() {
    let mut w = world();
    w.e2e_alice_published();
    assert_eq!(w.server.one_time_prekeys(&name("alice")), 10);
    for k in 1..=5 {
        let out = fetch_as_newcomer(&mut w, k);
        assert_eq!(w.server.one_time_prekeys(&name("alice")), 10 - k as usize);
        let to_alice: Vec<_> = out.transmit.iter().filter(|(l, _)| *l == ALICE).collect();
        if k < 5 {
            assert!(to_alice.is_empty(), "{} left", 10 - k);
        } else {
            assert_eq!(to_alice.len(), 1);
            let heard = events(&mut w.alice, &to_alice[0].1);
            assert_eq!(heard, [ClientEvent::PrekeysReplenished { made: 10 }]);
        }
    }
}

/// A server with a store (SPEC.md §5.4, §6.2) and two clients; nobody connected yet.
fn durable_world() -> World<e2e_protocol::hop::AllowAll> {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let server_key = PrivateKey::generate(&mut rng);
    world_with(Server::new(server_key.clone()).durable(), server_key, rng)
}

/// The durable changes `outs` reported, in order.
fn changes(outs: &[ServerOutputs]) -> Vec<DurableChange> {
    outs.iter().flat_map(|out| out.changes.iter().cloned()).collect()
}

/// The deliveries `outs` left to settle, in order.
fn deliveries(outs: &[ServerOutputs]) -> Vec<Delivery> {
    outs.iter().flat_map(|out| out.delivered.iter().cloned()).collect()
}

/// Bob registered once, and his connection is gone: the server binds him and queues for him.
fn bob_bound_and_offline<P: e2e_protocol::hop::ContentPolicy>(w: &mut World<P>) {
    w.connect(BOB);
    w.bob.disconnect();
    w.server.close_link(BOB);
}

/// SPEC.md §5.4's two rules and §6.2's changes, in order: a first confirmation is `Bound`, a
/// queued message is `Queued` at the next position before its `Ack { Queued }`, a relayed one is
/// not stored; the mailbox is sent on confirmation but kept — a restart before it is settled sends
/// it again, and the recipient refuses the copies — until `settle` removes it, once.
#[test]
fn a_durable_server_stores_what_it_queues_and_removes_a_mailbox_only_once_settled() {
    let mut w = durable_world();
    assert!(w.server.is_durable());
    let (_, outs) = w.connect_seeing_the_server(ALICE);
    let alice_key = w.alice.static_public();
    assert_eq!(changes(&outs), [DurableChange::Bound { name: name("alice"), key: alice_key }]);
    assert_eq!(deliveries(&outs), [], "an empty mailbox leaves nothing to settle");
    bob_bound_and_offline(&mut w);

    for (position, text) in [(0, "one"), (1, "two")] {
        let (id, out) = w.alice_sends(text);
        let message = Message::Deliver { id, from: name("alice"), body: body(text) };
        assert_eq!(out.changes, [DurableChange::Queued { to: name("bob"), position, message }]);
        assert_eq!(w.deliver(out), [ClientEvent::Acked { id, status: AckStatus::Queued }]);
    }
    let held = 2 * QUEUED_OVERHEAD + "one".len() + "two".len();
    assert_eq!((w.server.queued(&name("bob")), w.server.queued_bytes()), (2, held));

    // Bob's key is bound already: his reconnection binds nothing; his mailbox goes out and stays.
    let (events, outs) = w.connect_seeing_the_server(BOB);
    let mail = [received("alice", 1, "one"), received("alice", 2, "two")];
    assert_eq!(events, [&[ClientEvent::Connected][..], &mail].concat());
    assert_eq!(changes(&outs), []);
    let delivery = Delivery { link: BOB, name: name("bob"), until: 2 };
    assert_eq!(deliveries(&outs), std::slice::from_ref(&delivery));
    assert_eq!((w.server.queued(&name("bob")), w.server.queued_bytes()), (2, held));

    // A crash before the delivery is settled: the restarted server sends the mailbox again, and
    // Bob, who kept his replay windows, refuses both copies (§5.4 "exactly once").
    let snapshot = w.server.snapshot();
    w.server = Server::new(w.server_key.clone()).restore(snapshot.clone()).unwrap();
    assert_eq!(w.server.snapshot(), snapshot);
    assert!(!w.server.is_online(&name("bob")), "a restarted server has no links");
    w.bob.disconnect();
    let (events, outs) = w.connect_seeing_the_server(BOB);
    let replayed = |id| ClientEvent::Dropped {
        error: ProtocolError::Replayed { from: name("alice"), id: MessageId(id) }.into(),
    };
    assert_eq!(events, [ClientEvent::Connected, replayed(1), replayed(2)]);
    assert_eq!(deliveries(&outs), std::slice::from_ref(&delivery));

    assert_eq!(
        w.server.settle(&delivery),
        [DurableChange::Removed { name: name("bob"), until: 2 }]
    );
    assert_eq!((w.server.queued(&name("bob")), w.server.queued_bytes()), (0, 0));
    let settled = w.server.clone();
    assert_eq!(w.server.settle(&delivery), [], "a delivery settles once");
    assert_eq!(w.server, settled);

    // What was removed stays removed across a restart, and positions go on from the head.
    let snapshot = w.server.snapshot();
    let emptied = StoredMailbox { name: name("bob"), head: 2, messages: vec![] };
    assert_eq!(snapshot.mailboxes, [emptied]);
    w.server = Server::new(w.server_key.clone()).restore(snapshot).unwrap();
    w.bob.disconnect();
    assert_eq!(w.connect(BOB), [ClientEvent::Connected]);

    // Relayed to an open channel: never stored. Queued again: the next position, never a reused one.
    w.alice.disconnect();
    w.connect(ALICE);
    let (id, out) = w.alice_sends("three");
    assert_eq!(out.changes, []);
    assert_eq!(w.deliver(out)[1], ClientEvent::Acked { id, status: AckStatus::Relayed });
    w.bob.disconnect();
    w.server.close_link(BOB);
    let (id, out) = w.alice_sends("four");
    let message = Message::Deliver { id, from: name("alice"), body: body("four") };
    assert_eq!(out.changes, [DurableChange::Queued { to: name("bob"), position: 2, message }]);
}

/// A server without a store (the default) reports no change, empties a mailbox as it sends it,
/// and has nothing to settle: `settle` changes nothing.
#[test]
fn a_server_without_a_store_reports_no_change_and_forgets_a_mailbox_once_sent() {
    let mut w = world();
    assert!(!w.server.is_durable());
    let (_, outs) = w.connect_seeing_the_server(ALICE);
    assert_eq!(changes(&outs), []);
    bob_bound_and_offline(&mut w);
    let (_, out) = w.alice_sends("one");
    assert_eq!(out.changes, []);
    assert_eq!(w.server.queued_bytes(), QUEUED_OVERHEAD + "one".len());

    let before = w.server.clone();
    assert_eq!(w.server.settle(&Delivery { link: BOB, name: name("bob"), until: 1 }), []);
    assert_eq!(w.server, before);

    let (events, outs) = w.connect_seeing_the_server(BOB);
    assert_eq!(events, [ClientEvent::Connected, received("alice", 1, "one")]);
    assert_eq!((changes(&outs), deliveries(&outs)), (vec![], vec![]));
    assert_eq!((w.server.queued(&name("bob")), w.server.queued_bytes()), (0, 0));
}

/// What a durable server stores with one of everything: Alice (e2e, with a bundle) and Bob bound,
/// two messages waiting for Bob; and the server's static key.
fn stored_state() -> (PrivateKey, Snapshot) {
    let mut w = durable_world();
    w.e2e_alice_published();
    bob_bound_and_offline(&mut w);
    w.alice_sends("one");
    w.alice_sends("two");
    (w.server_key, w.server.snapshot())
}

/// `Server::restore` takes back what `snapshot` gave, and refuses, with its typed error, a
/// snapshot no server within its limits could have written (§5.1's one-to-one binding, §5.4's
/// bounds, state only for bound names) — each bound at its edge.
#[test]
fn restore_takes_back_a_snapshot_and_refuses_one_no_server_could_have_written() {
    let (key, snapshot) = stored_state();
    let restore = |limits: ServerLimits, snapshot: &Snapshot| {
        Server::new(key.clone()).with_limits(limits).restore(snapshot.clone())
    };
    let bytes = 2 * QUEUED_OVERHEAD + "one".len() + "two".len();
    let exact = ServerLimits { max_accounts: 2, max_queued_bytes: bytes };
    let restored = restore(exact, &snapshot).unwrap();
    assert!(restored.is_durable());
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!((restored.account_count(), restored.queued(&name("bob"))), (2, 2));
    assert_eq!(restored.queued_bytes(), bytes);
    assert_eq!(restored.one_time_prekeys(&name("alice")), 10);

    let over = |limits| assert_eq!(restore(limits, &snapshot), Err(SnapshotError::OverLimit));
    over(ServerLimits { max_accounts: 1, ..exact });
    over(ServerLimits { max_queued_bytes: bytes - 1, ..exact });

    let carol = name("carol");
    let bob_key = snapshot.accounts[1].1;
    let alice_entry = snapshot.directory[0].1.clone();
    let bob_mailbox = snapshot.mailboxes[0].clone();
    let deliver = bob_mailbox.messages[0].clone();
    let refused = |edit: &dyn Fn(&mut Snapshot), expected: SnapshotError| {
        let mut bad = snapshot.clone();
        edit(&mut bad);
        assert_eq!(restore(ServerLimits::default(), &bad), Err(expected.clone()), "{expected}");
    };
    let fresh_key = PrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(99)).public_key();
    refused(
        &|s| s.accounts.push((name("alice"), fresh_key)),
        SnapshotError::DuplicateBinding(name("alice")),
    );
    refused(
        &|s| s.accounts.push((carol.clone(), bob_key)),
        SnapshotError::DuplicateBinding(carol.clone()),
    );
    refused(
        &|s| s.mailboxes.push(StoredMailbox { name: carol.clone(), head: 0, messages: vec![] }),
        SnapshotError::Unbound(carol.clone()),
    );
    refused(&|s| s.mailboxes.push(bob_mailbox.clone()), SnapshotError::BadMailbox(name("bob")));
    let send = Message::Send { id: MessageId(1), to: name("bob"), body: body("one") };
    refused(
        &|s| s.mailboxes[0].messages.push(send.clone()),
        SnapshotError::BadMailbox(name("bob")),
    );
    refused(
        &|s| s.directory.push((carol.clone(), alice_entry.clone())),
        SnapshotError::Unbound(carol.clone()),
    );

    // A mailbox holds at most MAILBOX_CAPACITY messages.
    let mut full = snapshot.clone();
    full.mailboxes[0].messages = vec![deliver; MAILBOX_CAPACITY];
    assert_eq!(
        restore(ServerLimits::default(), &full).unwrap().queued(&name("bob")),
        MAILBOX_CAPACITY
    );
    refused(
        &|s| s.mailboxes[0].messages = vec![bob_mailbox.messages[0].clone(); MAILBOX_CAPACITY + 1],
        SnapshotError::OverLimit,
    );
}

/// Each `SnapshotError` says what the store held wrong, naming the name concerned.
#[test]
fn snapshot_errors_print_what_was_wrong() {
    let carol = name("carol");
    let printed: Vec<String> = [
        SnapshotError::DuplicateBinding(carol.clone()),
        SnapshotError::Unbound(carol.clone()),
        SnapshotError::BadMailbox(carol.clone()),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    for text in &printed {
        assert!(text.contains("carol"), "{text}");
    }
    assert_eq!(printed[0], "carol is bound twice, or its key is");
    assert_eq!(
        SnapshotError::OverLimit.to_string(),
        "the stored state exceeds the server's limits"
    );
    assert_ne!(printed[1], printed[2]);
}

/// SPEC.md §5.1 step 5, §15.2: an owner that was offline while fetches left it
/// `PREKEYS_LOW_WATER` = 5 one-time prekeys or fewer hears `PrekeysLow` when it next confirms a
/// link, and replenishes; with six left it hears nothing.
#[test]
fn an_offline_owner_hears_prekeys_low_when_it_next_confirms_a_link() {
    let mut w = world();
    w.e2e_alice_published();
    let alice_goes_offline = |w: &mut World<_>| {
        w.alice.disconnect();
        w.server.close_link(ALICE);
    };
    alice_goes_offline(&mut w);
    for k in 1..=4 {
        fetch_as_newcomer(&mut w, k);
    }
    assert_eq!(w.server.one_time_prekeys(&name("alice")), 6);
    assert_eq!(w.connect(ALICE), [ClientEvent::Connected]);
    alice_goes_offline(&mut w);
    fetch_as_newcomer(&mut w, 5);
    assert_eq!(
        w.connect(ALICE),
        [
            ClientEvent::Connected,
            ClientEvent::PrekeysReplenished { made: 10 },
            ClientEvent::BundleStored { one_time_prekeys: 15 }
        ]
    );
}

/// SPEC.md §9.2, beyond a relay's connection limit: `Server::refuse` answers a valid
/// `HandshakeInit` with `Refused { reason }` in handshake message 2 and changes nothing; the client
/// reports the refusal and is offline. A frame that is not a `HandshakeInit` gets no answer.
#[test]
fn a_connection_turned_away_hears_refused_and_the_server_is_unchanged() {
    let mut w = world();
    w.connect(ALICE);
    let before = w.server.clone();
    let init = w.bob.connect(&mut w.rng).unwrap();
    let answer = w.server.refuse(&init, RefusalReason::ServerFull, &mut w.rng).unwrap();
    assert_eq!(w.server, before);
    assert_eq!(events(&mut w.bob, &answer), [ClientEvent::Refused(RefusalReason::ServerFull)]);
    assert!(!w.bob.is_connected());
    assert_eq!(w.server.account(&name("bob")), None, "a refused connection binds nothing");

    let (_, frame) = w.alice.send(&name("alice"), body("not a handshake")).unwrap();
    let unexpected = ProtocolError::Unexpected { state: "no channel", got: "Transport" };
    assert_eq!(
        w.server.refuse(&frame, RefusalReason::ServerFull, &mut w.rng),
        Err(unexpected.into())
    );
    assert_eq!(w.server.account(&name("alice")), Some(w.alice.static_public()));
}

/// SPEC.md §15.3: told `PrekeysLow { n }`, a client makes
/// `min(ONE_TIME_PREKEYS_PER_UPLOAD, MAX_ONE_TIME_PREKEYS − n)` one-time prekeys and sends the
/// upload — none, and nothing at all, once the server says it holds `MAX_ONE_TIME_PREKEYS` or
/// more.
#[test]
fn prekeys_low_tops_the_server_up_to_its_bound_and_never_past_it() {
    let mut w = world();
    w.e2e_alice();
    w.connect(ALICE);
    let max = u16::try_from(MAX_ONE_TIME_PREKEYS).unwrap();
    for (held, made) in [(0, 10), (max - 3, 3), (max - 1, 1), (max, 0), (u16::MAX, 0)] {
        let low = Message::PrekeysLow { one_time_prekeys: held };
        let frame = w.server.seal_transport(ALICE, &low).unwrap();
        let out = client_handle(&mut w.alice, &frame, &mut w.rng).unwrap();
        if made == 0 {
            assert_eq!((out.transmit.len(), out.events), (0, vec![]), "{held} held");
        } else {
            assert_eq!(out.events, [ClientEvent::PrekeysReplenished { made }], "{held} held");
            assert_eq!(out.transmit.len(), 1, "the upload");
        }
    }
}

/// SPEC.md §15.2–§15.3: messages for a peer without a session wait for its bundle, asked for
/// once; when the server has none (`NoBundle`), they are discarded unencrypted and counted in
/// `SendFailed`.
#[test]
fn messages_waiting_for_a_bundle_the_server_lacks_are_discarded_and_counted() {
    let mut w = world();
    w.e2e_alice();
    w.connect(ALICE);
    w.connect(BOB);
    let first = w.alice.send_e2e(&name("bob"), body("one"), &mut w.rng).unwrap();
    let second = w.alice.send_e2e(&name("bob"), body("two"), &mut w.rng).unwrap();
    assert_eq!((first.transmit.len(), second.transmit.len()), (1, 0), "one FetchBundle");
    let out = server_handle(&mut w.server, ALICE, &first.transmit[0], &mut w.rng).unwrap();
    let error = E2eError::NoBundle { name: name("bob") };
    assert_eq!(
        w.deliver(out),
        [ClientEvent::SendFailed { peer: name("bob"), error, discarded: 2 }]
    );
}

/// SPEC.md §5.1 step 4: a client accepts `Welcome` only for the name it registered; one for another
/// name is `WrongName`, and the client, still waiting, is unchanged.
#[test]
fn a_welcome_for_another_name_is_refused() {
    let mut w = world();
    let (_, frame) = evil_server_welcomes(&mut w, "mallory");
    client_refuses(&mut w.bob, &frame, Error::Protocol(ProtocolError::WrongName));
    assert!(!w.bob.is_connected());
}
