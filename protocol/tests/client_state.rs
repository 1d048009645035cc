//! The persisted client state (SPEC.md §18) through the public API: a client's whole state survives
//! `export_state` / `restore_state` at every interesting point of a hop and an e2e conversation
//! (fresh, after first contact, mid-conversation with skipped keys, with archived and retired
//! sessions, pins and messages waiting for a bundle), the encoding is canonical, restored Alice and
//! Bob carry on their e2e conversation (including messages sealed before the restart), and no input
//! — truncated, bit-flipped, re-checksummed after a flip, of another version, random — makes
//! `restore_state` panic: it restores a client whose export is exactly the input, or fails typed.
#![cfg(test)]

use std::collections::VecDeque;

use e2e_protocol::Error;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::{
    E2eError, MAX_PEERS, MAX_PENDING, MAX_PINNED, MAX_SKIPPED_KEYS_PER_CLIENT,
};
use e2e_protocol::roles::{Client, ClientEvent, LinkId, MAX_STATE_LEN, Server};
use e2e_protocol::state::{
    STATE_CHECKSUM_LEN, STATE_HEADER_LEN, STATE_MAGIC, STATE_VERSION, StateError,
};
use e2e_protocol::suite::{PrivateKey, sha256};
use e2e_protocol::wire::{Body, Codec, Envelope, FetchedBundle, Message, MessageId, Name};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const MAX_PUMPED_FRAMES: usize = 10_000;
const ALICE: LinkId = LinkId(1);
const BOB: LinkId = LinkId(2);

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn body(s: &str) -> Body {
    Body::new(s.as_bytes().to_vec()).unwrap()
}

/// Alice and Bob (both e2e, or both hop-only) connected to an honest server.
struct World {
    rng: ChaCha20Rng,
    server: Server,
    alice: Client,
    bob: Client,
    /// Bob's channel static key, to give a new Bob (a new e2e identity) the same name.
    bob_key: PrivateKey,
}

impl World {
    fn new(seed: u64, e2e: bool) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let server = Server::new(PrivateKey::generate(&mut rng));
        let mut client = |n: &str| {
            let key = PrivateKey::generate(&mut rng);
            let client = if e2e {
                Client::with_e2e(
                    name(n),
                    key.clone(),
                    server.public_key(),
                    Peers::generate(&mut rng),
                )
            } else {
                Client::new(name(n), key.clone(), server.public_key())
            };
            (client, key)
        };
        let ((alice, _), (bob, bob_key)) = (client("alice"), client("bob"));
        let mut w = Self { rng, server, alice, bob, bob_key };
        for link in [ALICE, BOB] {
            w.connect(link);
            if e2e {
                let upload = w.client(link).upload_bundle().unwrap();
                w.through_server(link, upload);
            }
        }
        w
    }

    fn client(&mut self, link: LinkId) -> &mut Client {
        if link == ALICE { &mut self.alice } else { &mut self.bob }
    }

    fn connect(&mut self, link: LinkId) -> Vec<(LinkId, ClientEvent)> {
        let mut rng = self.rng.clone();
        let hello = self.client(link).connect(&mut rng).unwrap();
        self.rng = rng;
        let events = self.through_server(link, hello);
        assert!(self.client(link).is_connected());
        events
    }

    /// The process behind `link` stops and starts again from its exported state: the connection
    /// is gone, the client is restored (and must equal the one that stopped, offline), and it
    /// reconnects. Returns the events of the reconnection.
    fn restart(&mut self, link: LinkId) -> Vec<(LinkId, ClientEvent)> {
        self.server.close_link(link);
        let restored = round_trip(self.client(link));
        *self.client(link) = restored;
        self.connect(link)
    }

    /// Runs the honest server on `frame` from `link` and the network until quiet.
    fn through_server(&mut self, link: LinkId, frame: Vec<u8>) -> Vec<(LinkId, ClientEvent)> {
        let mut to_server = VecDeque::from([(link, frame)]);
        let mut events = Vec::new();
        for _ in 0..MAX_PUMPED_FRAMES {
            let Some((link, frame)) = to_server.pop_front() else { return events };
            let out = self.server.handle(link, &frame, &mut self.rng).unwrap();
            for (to, frame) in out.transmit {
                let mut rng = self.rng.clone();
                let out = self.client(to).handle(&frame, &mut rng).unwrap();
                self.rng = rng;
                events.extend(out.events.into_iter().map(|e| (to, e)));
                to_server.extend(out.transmit.into_iter().map(|f| (to, f)));
            }
        }
        panic!("the network did not quiet down within {MAX_PUMPED_FRAMES} frames");
    }

    fn send(&mut self, from: LinkId, to: &str, text: &str) -> Vec<(LinkId, ClientEvent)> {
        let mut rng = self.rng.clone();
        let out = self.client(from).send_e2e(&name(to), body(text), &mut rng).unwrap();
        self.rng = rng;
        out.transmit.into_iter().flat_map(|f| self.through_server(from, f)).collect()
    }

    fn send_hop(&mut self, from: LinkId, to: &str, text: &str) -> Vec<(LinkId, ClientEvent)> {
        let (_, frame) = self.client(from).send(&name(to), body(text)).unwrap();
        self.through_server(from, frame)
    }

    /// Seals `text` for `to` now (the ratchet advances) and returns the envelope, to submit later.
    fn seal(&mut self, from: LinkId, to: &str, text: &str) -> Envelope {
        let mut rng = self.rng.clone();
        let envelope = self.client(from).seal_e2e(&name(to), &body(text), &mut rng).unwrap();
        self.rng = rng;
        envelope
    }

    fn submit(&mut self, from: LinkId, to: &str, envelope: Envelope) -> Vec<(LinkId, ClientEvent)> {
        let (_, frame) = self.client(from).submit_e2e(&name(to), envelope).unwrap();
        self.through_server(from, frame)
    }

    /// A conversation with both directions, out-of-order delivery (skipped keys on both sides)
    /// and ratchet turns: the state at its end has every part of a session filled in.
    fn converse(&mut self, tag: &str) {
        let late = self.seal(ALICE, "bob", &format!("{tag} late a"));
        assert_eq!(
            received(&self.send(ALICE, "bob", &format!("{tag} a1")), BOB),
            [format!("{tag} a1")]
        );
        let late_b = self.seal(BOB, "alice", &format!("{tag} late b"));
        assert_eq!(
            received(&self.send(BOB, "alice", &format!("{tag} b1")), ALICE),
            [format!("{tag} b1")]
        );
        assert_eq!(received(&self.submit(ALICE, "bob", late), BOB), [format!("{tag} late a")]);
        // Bob's late message stays unsent: Alice holds its skipped key.
        drop(late_b);
    }
}

fn received(events: &[(LinkId, ClientEvent)], at: LinkId) -> Vec<String> {
    events
        .iter()
        .filter(|(l, _)| *l == at)
        .filter_map(|(_, e)| match e {
            ClientEvent::Received { body, .. } => {
                Some(String::from_utf8_lossy(body.as_bytes()).into())
            }
            _ => None,
        })
        .collect()
}

/// Exports `client`, restores it, and checks that the result is the client, offline, and that its
/// export is byte for byte the same (canonical). Returns the restored client.
#[track_caller]
fn round_trip(client: &Client) -> Client {
    let bytes = client.export_state();
    assert!(bytes.len() <= MAX_STATE_LEN);
    let restored = Client::restore_state(bytes.as_bytes()).unwrap();
    let mut offline = client.clone();
    offline.disconnect();
    assert_eq!(restored, offline, "restore(export(c)) is c, offline");
    assert!(!restored.is_connected());
    assert_eq!(restored.export_state().as_bytes(), bytes.as_bytes(), "export is canonical");
    restored
}

/// `header || body || SHA-256(header || body)` for `body`, written from SPEC.md §18.1 alone.
fn seal(version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = STATE_MAGIC.to_vec();
    out.push(version);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    let checksum = sha256(&[&out]);
    out.extend_from_slice(&checksum);
    out
}

/// The body of an encoded state.
fn body_of(bytes: &[u8]) -> &[u8] {
    &bytes[STATE_HEADER_LEN..bytes.len() - STATE_CHECKSUM_LEN]
}

/// `bytes` either restores to a client whose export is exactly `bytes`, or fails; never panics.
#[track_caller]
fn restores_canonically_or_fails(bytes: &[u8]) -> Result<(), StateError> {
    let client = Client::restore_state(bytes)?;
    assert_eq!(client.export_state().as_bytes(), bytes, "an accepted state is canonical");
    Ok(())
}

// ---- round trips ----------------------------------------------------------------------------

#[test]
fn a_hop_client_round_trips_fresh_and_with_replay_windows() {
    let mut w = World::new(1, false);
    round_trip(&w.alice);
    for i in 0..70 {
        assert_eq!(received(&w.send_hop(ALICE, "bob", &format!("m{i}")), BOB), [format!("m{i}")]);
    }
    w.send_hop(BOB, "alice", "reply");
    round_trip(&w.alice);
    round_trip(&w.bob);

    // Restarted, Bob still refuses an id he accepted before: the windows came back.
    w.restart(BOB);
    let replay = Message::Deliver { id: MessageId(70), from: name("alice"), body: body("again") };
    let frame = w.server.seal_transport(BOB, &replay).unwrap();
    let out = w.bob.handle(&frame, &mut w.rng.clone()).unwrap();
    assert!(
        matches!(&out.events[..], [ClientEvent::Dropped { error: Error::Protocol(_) }]),
        "{out:?}"
    );
    // And Alice's ids go on from where they were.
    w.restart(ALICE);
    let (id, frame) = w.alice.send(&name("bob"), body("next")).unwrap();
    assert_eq!(id, MessageId(71));
    assert_eq!(received(&w.through_server(ALICE, frame), BOB), ["next"]);
}

#[test]
fn an_e2e_client_round_trips_fresh_and_after_uploading() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let server_key = PrivateKey::generate(&mut rng).public_key();
    let fresh = Client::with_e2e(
        name("alice"),
        PrivateKey::generate(&mut rng),
        server_key,
        Peers::generate(&mut rng),
    );
    round_trip(&fresh);
    let w = World::new(2, true);
    round_trip(&w.alice);
    round_trip(&w.bob);
}

#[test]
fn restored_alice_and_bob_continue_their_conversation() {
    let mut w = World::new(3, true);
    // First contact: Alice's session is an unanswered initiator's (prekey header), Bob's a
    // responder's.
    assert_eq!(received(&w.send(ALICE, "bob", "hello"), BOB), ["hello"]);
    round_trip(&w.alice);
    round_trip(&w.bob);
    w.converse("one");
    assert!(w.alice.safety_number(&name("bob")).is_some());

    // Messages sealed before the restart, delivered after it: the skipped keys and chains the
    // restored clients hold must open them.
    let before_a = w.seal(ALICE, "bob", "sealed before the restart");
    assert_eq!(received(&w.send(ALICE, "bob", "overtakes it"), BOB), ["overtakes it"]);
    let before_b = w.seal(BOB, "alice", "sealed by bob");
    w.restart(ALICE);
    w.restart(BOB);
    // Bob opens the overtaken message with the skipped key he restored; Alice opens Bob's
    // message with the chain she restored.
    assert_eq!(received(&w.submit(ALICE, "bob", before_a), BOB), ["sealed before the restart"]);
    assert_eq!(received(&w.submit(BOB, "alice", before_b), ALICE), ["sealed by bob"]);
    w.converse("two");
    for i in 0..3 {
        assert_eq!(received(&w.send(BOB, "alice", &format!("b{i}")), ALICE), [format!("b{i}")]);
        w.restart(if i % 2 == 0 { ALICE } else { BOB });
        assert_eq!(received(&w.send(ALICE, "bob", &format!("a{i}")), BOB), [format!("a{i}")]);
    }
    assert_eq!(w.alice.safety_number(&name("bob")), w.bob.safety_number(&name("alice")));
}

/// The bytes of two fresh clients, built by hand from SPEC.md §18 and the draws of §2.4 / §10: a hop
/// client, and an e2e client whose identity and prekeys come from a seeded RNG.
#[test]
fn fresh_states_are_the_bytes_the_spec_describes() {
    let static_key = [1u8; 32];
    let server_key = PrivateKey::from_bytes([7; 32]).public_key();
    let mut head = vec![5];
    head.extend_from_slice(b"alice");
    head.extend_from_slice(&static_key);
    head.extend_from_slice(server_key.as_bytes());
    head.extend_from_slice(&0u64.to_be_bytes()); // last_id
    head.extend_from_slice(&0u64.to_be_bytes()); // windows: clock
    head.extend_from_slice(&0u16.to_be_bytes()); // windows: count

    let hop = Client::new(name("alice"), PrivateKey::from_bytes(static_key), server_key);
    let expected = seal(STATE_VERSION, &[head.as_slice(), &[0x00]].concat());
    assert_eq!(hop.export_state().as_bytes(), expected.as_slice());
    assert_eq!(expected.len(), 25 + 6 + 32 + 32 + 8 + 10 + 1 + 32);

    // Peers::generate draws ik, isk, spk (id 1), then opk 2..=11, 32 bytes each (§10.1–§10.2).
    let peers = Peers::generate(&mut ChaCha20Rng::seed_from_u64(18));
    let mut draws = ChaCha20Rng::seed_from_u64(18);
    let mut draw = || {
        let mut key = [0u8; 32];
        rand_core::Rng::fill_bytes(&mut draws, &mut key);
        key
    };
    let mut body = head;
    body.push(0x01); // e2e
    body.extend_from_slice(&draw()); // ik
    body.extend_from_slice(&draw()); // isk
    body.extend_from_slice(&12u64.to_be_bytes()); // next_id
    body.extend_from_slice(&0u32.to_be_bytes()); // uploaded_through
    body.extend_from_slice(&1u32.to_be_bytes()); // spk_id
    body.extend_from_slice(&draw()); // spk
    body.push(0x00); // no previous signed prekey
    body.extend_from_slice(&10u16.to_be_bytes());
    for id in 2u32..=11 {
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&draw());
    }
    body.push(0x00); // the signed prekey is not stored at the server yet
    body.extend_from_slice(&0u64.to_be_bytes()); // clock
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // no peers, pins, or messages waiting
    let e2e =
        Client::with_e2e(name("alice"), PrivateKey::from_bytes(static_key), server_key, peers);
    assert_eq!(e2e.export_state().as_bytes(), seal(STATE_VERSION, &body).as_slice());
}

#[test]
fn a_restored_state_refuses_what_the_original_refused() {
    let mut w = World::new(4, true);
    w.send(ALICE, "bob", "one");
    // The server keeps a copy of Alice's next message, delivers it, then replays it to the
    // restored Bob: the ratchet he restored must refuse it.
    let mut rng = w.rng.clone();
    let out = w.alice.send_e2e(&name("bob"), body("two"), &mut rng).unwrap();
    w.rng = rng;
    let (_, plaintext) = w.server.open_transport(ALICE, &out.transmit[0]).unwrap();
    let Ok(Message::E2eSend { id, envelope, .. }) = Message::decode(&plaintext) else {
        panic!("an E2eSend expected")
    };
    let relayed = w.server.process(ALICE, plaintext);
    let mut events = Vec::new();
    for (to, frame) in relayed.transmit {
        let mut rng = w.rng.clone();
        let out = w.client(to).handle(&frame, &mut rng).unwrap();
        events.extend(out.events.into_iter().map(|e| (to, e)));
    }
    assert_eq!(received(&events, BOB), ["two"]);
    w.restart(BOB);
    let replay = Message::E2eDeliver { id, from: name("alice"), envelope };
    let frame = w.server.seal_transport(BOB, &replay).unwrap();
    let out = w.bob.handle(&frame, &mut w.rng.clone()).unwrap();
    assert!(matches!(&out.events[..], [ClientEvent::Dropped { error: Error::E2e(_) }]), "{out:?}");
}

#[test]
fn archived_sessions_round_trip_and_still_open_messages() {
    let mut w = World::new(5, true);
    // Simultaneous first contact: each holds two sessions with the other (one archived).
    let mut held = Vec::new();
    for (from, to, text) in [(ALICE, "bob", "hi bob"), (BOB, "alice", "hi alice")] {
        let mut rng = w.rng.clone();
        let out = w.client(from).send_e2e(&name(to), body(text), &mut rng).unwrap();
        let reply = w.server.handle(from, &out.transmit[0], &mut rng).unwrap();
        let client_out = w.client(from).handle(&reply.transmit[0].1, &mut rng).unwrap();
        w.rng = rng;
        held.push((from, client_out.transmit[0].clone()));
    }
    let mut events = Vec::new();
    for (from, frame) in held {
        events.extend(w.through_server(from, frame));
    }
    assert_eq!(received(&events, BOB), ["hi bob"]);
    w.restart(ALICE);
    w.restart(BOB);
    for round in 0..3 {
        assert_eq!(
            received(&w.send(ALICE, "bob", &format!("a{round}")), BOB),
            [format!("a{round}")]
        );
        assert_eq!(
            received(&w.send(BOB, "alice", &format!("b{round}")), ALICE),
            [format!("b{round}")]
        );
    }
}

#[test]
fn an_identity_change_and_pins_round_trip() {
    let mut w = World::new(6, true);
    w.send(ALICE, "bob", "hello");
    w.send(BOB, "alice", "hello back");
    // Bob loses his e2e state and starts over with a new identity under the same name and
    // channel key. Alice's sessions with the old identity are deleted, their base keys retired.
    w.server.close_link(BOB);
    let peers = Peers::generate(&mut w.rng);
    w.bob = Client::with_e2e(name("bob"), w.bob_key.clone(), w.server.public_key(), peers);
    w.connect(BOB);
    let upload = w.bob.upload_bundle().unwrap();
    w.through_server(BOB, upload);
    let events = w.send(BOB, "alice", "new me");
    assert_eq!(received(&events, ALICE), ["new me"]);
    assert!(events.iter().any(|(_, e)| matches!(e, ClientEvent::IdentityChanged { .. })));
    round_trip(&w.alice);
    // Alice pins the new identity, and an identity for a name she never talked to.
    let bob = w.bob.identity().unwrap();
    w.alice.verify_peer(name("bob"), bob).unwrap();
    w.alice.verify_peer(name("carol"), bob).unwrap();
    w.restart(ALICE);
    w.restart(BOB);
    assert_eq!(received(&w.send(ALICE, "bob", "pinned"), BOB), ["pinned"]);
    assert_eq!(w.alice.safety_number(&name("bob")), w.bob.safety_number(&name("alice")));
}

/// Alice starts a new session with Bob and sends `text`; the server relays it honestly but keeps
/// a copy of the prekey message. Returns that message as the server would deliver it again.
fn capture_first_message(w: &mut World, text: &str) -> Message {
    let mut rng = w.rng.clone();
    let fetch = w.alice.send_e2e(&name("bob"), body(text), &mut rng).unwrap();
    let reply = w.server.handle(ALICE, &fetch.transmit[0], &mut rng).unwrap();
    let out = w.alice.handle(&reply.transmit[0].1, &mut rng).unwrap();
    w.rng = rng;
    let (_, plaintext) = w.server.open_transport(ALICE, &out.transmit[0]).unwrap();
    let Ok(Message::E2eSend { id, envelope, .. }) = Message::decode(&plaintext) else {
        panic!("an E2eSend expected")
    };
    let relayed = w.server.process(ALICE, plaintext);
    let mut events = Vec::new();
    for (to, frame) in relayed.transmit {
        let mut rng = w.rng.clone();
        let out = w.client(to).handle(&frame, &mut rng).unwrap();
        events.extend(out.events.into_iter().map(|e| (to, e)));
    }
    assert_eq!(received(&events, BOB), [text]);
    Message::E2eDeliver { id, from: name("alice"), envelope }
}

#[test]
fn archived_and_retired_sessions_round_trip() {
    // Alice starts six sessions with Bob, one after the other: Bob keeps the newest as current,
    // four archived, and retires the first one's base key.
    let mut w = World::new(7, true);
    let mut first = None;
    for round in 0..6 {
        let message = capture_first_message(&mut w, &format!("first {round}"));
        first.get_or_insert(message);
        // Alice forgets her session (pinning another identity deletes it) and pins Bob again.
        let bob = w.bob.identity().unwrap();
        let other = Peers::generate(&mut ChaCha20Rng::seed_from_u64(round)).identity();
        w.alice.verify_peer(name("bob"), other).unwrap();
        w.alice.verify_peer(name("bob"), bob).unwrap();
    }
    round_trip(&w.bob);
    w.restart(BOB);
    // The restored Bob still refuses the retired session's prekey message as a replay.
    let frame = w.server.seal_transport(BOB, &first.unwrap()).unwrap();
    let out = w.bob.handle(&frame, &mut w.rng.clone()).unwrap();
    assert_eq!(
        out.events,
        [ClientEvent::Dropped { error: Error::E2e(E2eError::ReplayedPrekeyMessage) }]
    );
    assert_eq!(received(&w.send(ALICE, "bob", "last"), BOB), ["last"]);
    assert_eq!(received(&w.send(BOB, "alice", "reply"), ALICE), ["reply"]);
}

#[test]
fn messages_waiting_for_a_bundle_survive_a_restart_and_are_sent_after_it() {
    let mut w = World::new(8, true);
    // Alice queues two messages for Bob; her FetchBundle never reaches the server (the process
    // stops first).
    let mut rng = w.rng.clone();
    let out = w.alice.send_e2e(&name("bob"), body("queued 1"), &mut rng).unwrap();
    assert_eq!(out.transmit.len(), 1);
    let out = w.alice.send_e2e(&name("bob"), body("queued 2"), &mut rng).unwrap();
    assert!(out.transmit.is_empty());
    w.rng = rng;
    // On reconnection the restored Alice asks for the bundle again and sends both (SPEC.md §15.3).
    let events = w.restart(ALICE);
    assert_eq!(received(&events, BOB), ["queued 1", "queued 2"]);
}

// ---- bounds that make the state finite ------------------------------------------------------

#[test]
fn pins_and_peers_awaited_are_bounded() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut peers = Peers::generate(&mut rng);
    let identity = peers.identity();
    for i in 0..MAX_PINNED {
        peers.pin(name(&format!("p{i}")), identity).unwrap();
    }
    let before = peers.clone();
    assert_eq!(peers.pin(name("one-more"), identity), Err(E2eError::TooManyPinned));
    assert_eq!(peers, before);
    peers.pin(name("p0"), identity).unwrap(); // re-pinning a pinned name is no growth

    for i in 0..MAX_PEERS {
        assert_eq!(peers.queue(&name(&format!("q{i}")), body("x")), Ok(true));
    }
    let before = peers.clone();
    assert_eq!(peers.queue(&name("one-more"), body("x")), Err(E2eError::PendingFull));
    assert_eq!(peers, before);
    for _ in 1..MAX_PENDING {
        assert_eq!(peers.queue(&name("q0"), body("x")), Ok(false));
    }
    assert_eq!(peers.queue(&name("q0"), body("x")), Err(E2eError::PendingFull));

    // The fullest pins and queue still round trip.
    let server_key = PrivateKey::generate(&mut rng).public_key();
    let client = Client::with_e2e(name("alice"), PrivateKey::generate(&mut rng), server_key, peers);
    round_trip(&client);
}

/// Bob holds as many skipped keys as a client may (SPEC.md §12.5), over ten senders' sessions: the
/// bound §18.3 checks admits the state at the bound.
#[test]
fn a_client_at_the_skipped_key_bound_round_trips() {
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let bob_name = name("bob");
    let mut bob = Peers::generate(&mut rng);
    let upload = bob.prepare_upload().unwrap();
    let bundle = FetchedBundle {
        identity: *upload.identity(),
        signed_prekey: *upload.signed_prekey(),
        one_time_prekey: None,
    };
    for i in 0..MAX_SKIPPED_KEYS_PER_CLIENT / 1000 + 2 {
        let from = name(&format!("p{i}"));
        let mut peer = Peers::generate(&mut rng);
        peer.start_session(&from, &bob_name, &bundle, &mut rng).unwrap();
        let mut last = None;
        for k in 0..=1000 {
            last = Some(peer.encrypt(&bob_name, &body(&format!("{k}")), &mut rng).unwrap());
        }
        // The last arrives first: Bob stores the keys of the 1000 before it.
        bob.decrypt(&bob_name, &from, &last.unwrap()).unwrap();
    }
    assert_eq!(bob.skipped_key_count(), MAX_SKIPPED_KEYS_PER_CLIENT);
    let server_key = PrivateKey::generate(&mut rng).public_key();
    let client = Client::with_e2e(bob_name, PrivateKey::generate(&mut rng), server_key, bob);
    round_trip(&client);
}

/// SPEC.md §15.3 with §12.5's bound: messages that waited for a bundle go out, in order, in the
/// session the peer started meanwhile; if its sending chain runs out part-way (`Ns` reaches
/// `2^32 − 1`), the rest are discarded and counted — exactly those not sent. The chain is brought
/// near its end through the state file (§18.3 allows any `Ns` with a sending chain), not by
/// `2^32` messages.
#[test]
fn waiting_messages_beyond_the_end_of_the_sending_chain_are_counted_as_discarded() {
    let mut w = World::new(18, true);
    // Alice queues three messages for Bob; her FetchBundle is lost with her connection.
    w.server.close_link(ALICE);
    for text in ["p1", "p2", "p3"] {
        w.alice.send_e2e(&name("bob"), body(text), &mut w.rng).unwrap();
    }
    w.alice.disconnect();
    // Bob starts a session meanwhile; his first message waits in Alice's mailbox.
    w.send(BOB, "alice", "hello");
    // Alice reconnects; Ready reaches the server, which delivers Bob's message, but the
    // FetchBundle she repeats after it does not.
    let init = w.alice.connect(&mut w.rng).unwrap();
    let welcome = w.server.handle(ALICE, &init, &mut w.rng).unwrap().transmit;
    let ready = w.alice.handle(&welcome[0].1, &mut w.rng).unwrap().transmit;
    assert_eq!(ready.len(), 2, "Ready, then the FetchBundle for Bob");
    for (_, frame) in w.server.handle(ALICE, &ready[0], &mut w.rng).unwrap().transmit {
        w.alice.handle(&frame, &mut w.rng).unwrap();
    }
    // One message straight into that session (Ns = 1), and the connection is gone again.
    w.alice.send_e2e(&name("bob"), body("direct"), &mut w.rng).unwrap();
    w.alice.disconnect();
    w.server.close_link(ALICE);

    // Her session with Bob is the one ratchet at (Ns, Nr, PN) = (1, 1, 0): Ns becomes 2^32 − 2.
    let bytes = w.alice.export_state();
    let mut state = body_of(bytes.as_bytes()).to_vec();
    let counters: Vec<u8> = [1u32, 1, 0].iter().flat_map(|n| n.to_be_bytes()).collect();
    let at: Vec<usize> = (0..state.len() - 12).filter(|&i| state[i..i + 12] == counters).collect();
    assert_eq!(at.len(), 1, "Ns, Nr, PN found at {at:?}");
    state[at[0]..at[0] + 4].copy_from_slice(&(u32::MAX - 1).to_be_bytes());
    w.alice = Client::restore_state(&seal(STATE_VERSION, &state)).unwrap();

    let events: Vec<ClientEvent> =
        w.connect(ALICE).into_iter().filter(|(l, _)| *l == ALICE).map(|(_, e)| e).collect();
    assert!(matches!(&events[1], ClientEvent::Sent { to, .. } if *to == name("bob")), "{events:?}");
    assert!(
        matches!(
            &events[2],
            ClientEvent::SendFailed { peer, error: E2eError::Ratchet(_), discarded: 2 }
                if *peer == name("bob")
        ),
        "{events:?}"
    );
}

#[test]
fn a_client_refuses_pinning_beyond_the_bound_as_an_error() {
    let mut w = World::new(10, true);
    let identity = w.bob.identity().unwrap();
    for i in 0..MAX_PINNED {
        w.alice.verify_peer(name(&format!("p{i}")), identity).unwrap();
    }
    assert_eq!(
        w.alice.verify_peer(name("one-more"), identity),
        Err(Error::E2e(E2eError::TooManyPinned))
    );
}

// ---- hostile and damaged input --------------------------------------------------------------

/// [`busy_state`], computed once.
fn busy() -> &'static [u8] {
    static STATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    STATE.get_or_init(busy_state)
}

/// A mid-conversation e2e state: sessions, skipped keys, a prekey store that has been used.
fn busy_state() -> Vec<u8> {
    let mut w = World::new(11, true);
    w.send(ALICE, "bob", "hello");
    w.converse("x");
    // Alice holds a skipped key (Bob's late message), an answered session, a used prekey store.
    w.alice.export_state().as_bytes().to_vec()
}

#[test]
fn every_truncation_is_a_typed_error() {
    for bytes in [busy_state(), World::new(12, false).alice.export_state().as_bytes().to_vec()] {
        for len in 0..bytes.len() {
            let error = Client::restore_state(&bytes[..len]).unwrap_err();
            assert_eq!(error, StateError::Truncated, "prefix of {len}");
        }
    }
}

#[test]
fn every_single_bit_flip_is_refused() {
    // Every bit of the header, one bit of every other byte (a different one from byte to byte).
    let bytes = busy_state();
    for byte in 0..bytes.len() {
        let bits = if byte < STATE_HEADER_LEN { 0..8 } else { byte % 8..byte % 8 + 1 };
        for bit in bits {
            let mut flipped = bytes.clone();
            flipped[byte] ^= 1 << bit;
            let error = Client::restore_state(&flipped).unwrap_err();
            let expected = match byte {
                0..20 => matches!(error, StateError::BadMagic),
                20 => matches!(error, StateError::UnknownVersion(_)),
                21..25 => matches!(
                    error,
                    StateError::Oversized { .. }
                        | StateError::Truncated
                        | StateError::TrailingBytes { .. }
                ),
                _ => error == StateError::ChecksumMismatch,
            };
            assert!(expected, "byte {byte} bit {bit}: {error:?}");
        }
    }
}

/// With the checksum made to fit, a flipped bit reaches the body parser: each flip is refused with
/// a typed error, or it is a valid different state whose export is exactly the flipped bytes.
#[test]
fn a_bit_flip_behind_a_fitting_checksum_is_refused_or_canonical() {
    let bytes = busy_state();
    let body = body_of(&bytes);
    let mut accepted = 0;
    for i in 0..body.len() {
        let mut flipped = body.to_vec();
        flipped[i] ^= 1 << (i % 8);
        if restores_canonically_or_fails(&seal(STATE_VERSION, &flipped)).is_ok() {
            accepted += 1;
        }
    }
    // Counters, clocks and key bytes take any value; lengths, flags, names, orders do not.
    assert!(accepted > 0 && accepted < body.len(), "{accepted} of {}", body.len());
}

#[test]
fn another_version_is_refused_before_anything_else() {
    let bytes = busy_state();
    for version in [0x00, 0x02, 0xff] {
        let resealed = seal(version, body_of(&bytes));
        assert_eq!(Client::restore_state(&resealed), Err(StateError::UnknownVersion(version)));
    }
    assert!(Client::restore_state(&seal(STATE_VERSION, body_of(&bytes))).is_ok());
}

#[test]
fn targeted_invalid_fields_have_their_typed_errors() {
    let hop = World::new(13, false).alice.export_state().as_bytes().to_vec();
    let body = body_of(&hop).to_vec();
    // `name ("alice": 6 bytes) || static key (32) || server key (32) || ...`: a low-order server key.
    let mut low = body.clone();
    low[38..70].fill(0);
    assert_eq!(
        Client::restore_state(&seal(STATE_VERSION, &low)),
        Err(StateError::InvalidKey { field: "server key" })
    );
    // The last byte of a hop client's body is its e2e flag.
    let mut flag = body.clone();
    *flag.last_mut().unwrap() = 2;
    assert_eq!(
        Client::restore_state(&seal(STATE_VERSION, &flag)),
        Err(StateError::InvalidValue { field: "e2e" })
    );
    // A byte after the last field.
    let mut longer = body.clone();
    longer.push(0);
    assert_eq!(
        Client::restore_state(&seal(STATE_VERSION, &longer)),
        Err(StateError::TrailingBytes { extra: 1 })
    );
    // A declared length beyond the maximum is refused before the body is looked at.
    let mut huge = hop.clone();
    huge[21..25].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(Client::restore_state(&huge), Err(StateError::Oversized { .. })));
}

/// The prekey id rules of SPEC.md §18.3, each broken in a fresh e2e client's state, at offsets
/// read off §18.2–§18.3: `name` ("alice": 6) · static key (32) · server key (32) · `last_id` (8) ·
/// windows (clock 8, count 2, none) · e2e flag (1) · `ik` (32) · `isk` (32) — then the prekeys at
/// 153: `next_id` (8), `uploaded_through` (4), `spk_id` (4), `spk` (32), previous flag (1), count
/// (2), then `(opk_id, opk)` from 204.
#[test]
fn each_prekey_id_rule_has_its_error() {
    let mut rng = ChaCha20Rng::seed_from_u64(16);
    let server_key = PrivateKey::generate(&mut rng).public_key();
    let key = PrivateKey::generate(&mut rng);
    let client = Client::with_e2e(name("alice"), key, server_key, Peers::generate(&mut rng));
    let bytes = client.export_state();
    let body = body_of(bytes.as_bytes()).to_vec();
    assert_eq!(&body[153..161], &12u64.to_be_bytes(), "next_id: spk 1 and opks 2..=11 assigned");
    assert_eq!(&body[165..169], &1u32.to_be_bytes(), "spk_id");
    assert_eq!(&body[201..204], &[0, 0, 10], "no previous spk, 10 one-time prekeys");
    assert_eq!(&body[204..208], &2u32.to_be_bytes(), "the first opk_id");
    let with = |at: usize, value: &[u8]| {
        let mut changed = body.clone();
        changed[at..at + value.len()].copy_from_slice(value);
        Client::restore_state(&seal(STATE_VERSION, &changed))
    };
    let inconsistent = |what| Err(StateError::Inconsistent { what });
    assert_eq!(
        with(153, &11u64.to_be_bytes()),
        inconsistent("one-time prekey id never assigned, or shared with a signed prekey")
    );
    assert_eq!(with(153, &1u64.to_be_bytes()), inconsistent("signed prekey id never assigned"));
    assert_eq!(
        with(153, &(1u64 << 32 | 1).to_be_bytes()),
        inconsistent("prekey id counter beyond 2^32")
    );
    assert_eq!(
        with(161, &12u32.to_be_bytes()),
        inconsistent("upload watermark beyond the id counter")
    );
    assert_eq!(with(165, &0u32.to_be_bytes()), inconsistent("signed prekey id never assigned"));
    assert_eq!(
        with(204, &1u32.to_be_bytes()),
        inconsistent("one-time prekey id never assigned, or shared with a signed prekey")
    );
    assert_eq!(
        with(204, &3u32.to_be_bytes()),
        Err(StateError::InvalidValue { field: "one-time prekey id" })
    );
    assert_eq!(with(201, &[2]), Err(StateError::InvalidValue { field: "previous signed prekey" }));
    assert_eq!(
        with(202, &[0, 201]),
        Err(StateError::BadLength { field: "one-time prekeys", len: 201 })
    );
    // The largest id counter there is, and a watermark below it, are fine.
    assert!(with(153, &(1u64 << 32).to_be_bytes()).is_ok());
    assert!(with(161, &11u32.to_be_bytes()).is_ok());
}

/// After a rotation the state holds a previous signed prekey, which must be an assigned id older
/// than the current one (SPEC.md §10.2): id 0, the current id or a later one is refused.
#[test]
fn a_previous_signed_prekey_must_be_older_than_the_current_one() {
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let server_key = PrivateKey::generate(&mut rng).public_key();
    let key = PrivateKey::generate(&mut rng);
    let mut peers = Peers::generate(&mut rng);
    peers.rotate_signed_prekey(&mut rng).unwrap();
    let client = Client::with_e2e(name("alice"), key, server_key, peers);
    let bytes = client.export_state();
    let body = body_of(bytes.as_bytes()).to_vec();
    assert_eq!(&body[165..169], &12u32.to_be_bytes(), "spk_id: the rotation's");
    assert_eq!(&body[201..206], &[1, 0, 0, 0, 1], "the previous spk, id 1");
    let with_previous = |id: u32| {
        let mut changed = body.clone();
        changed[202..206].copy_from_slice(&id.to_be_bytes());
        Client::restore_state(&seal(STATE_VERSION, &changed))
    };
    for id in [0, 12, 13] {
        assert_eq!(
            with_previous(id),
            Err(StateError::Inconsistent {
                what: "previous signed prekey not older than the current one"
            }),
            "previous id {id}"
        );
    }
    assert!(with_previous(1).is_ok());
}

/// The offsets of the two activity clocks in a client state body (SPEC.md §18.2–§18.3), found by
/// walking the fields in front of them: the hop windows' `clock`, and the e2e `clock` if the
/// client speaks e2e.
fn clock_offsets(body: &[u8]) -> (usize, Option<usize>) {
    let name_len = |at: usize| 1 + usize::from(body[at]);
    let u16_at = |at: usize| usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    // name · static key · server key · last_id
    let windows = name_len(0) + 32 + 32 + 8;
    let mut at = windows + 8;
    let count = u16_at(at);
    at += 2;
    for _ in 0..count {
        at += name_len(at) + 8 + 8 + 8; // sender · highest · seen · at
    }
    if body[at] == 0 {
        return (windows, None);
    }
    // flag · ik · isk · next_id · uploaded_through · spk_id · spk · previous (flag [· id · key])
    at += 1 + 32 + 32 + 8 + 4 + 4 + 32;
    at += if body[at] == 1 { 1 + 4 + 32 } else { 1 };
    at += 2 + u16_at(at) * (4 + 32) + 1; // one-time prekeys · stored flag
    (windows, Some(at))
}

/// Every activity stamps a replay window or a peer with the clock it advanced (SPEC.md §5.3,
/// §11.3), so a state whose clock is behind a stamp is one no client wrote: `Inconsistent`. A clock
/// ahead of every stamp is fine.
#[test]
fn a_clock_behind_its_own_stamps_is_refused() {
    let mut hop = World::new(18, false);
    for i in 0..3 {
        assert_eq!(
            received(&hop.send_hop(BOB, "alice", &format!("m{i}")), ALICE),
            [format!("m{i}")]
        );
    }
    let e2e = busy();
    for (state, windows_used) in
        [(hop.alice.export_state().as_bytes().to_vec(), true), (e2e.to_vec(), false)]
    {
        let body = body_of(&state).to_vec();
        let (windows, e2e_clock) = clock_offsets(&body);
        let with_clock = |at: usize, clock: u64| {
            let mut changed = body.clone();
            changed[at..at + 8].copy_from_slice(&clock.to_be_bytes());
            Client::restore_state(&seal(STATE_VERSION, &changed))
        };
        if windows_used {
            assert_eq!(&body[windows..windows + 8], &3u64.to_be_bytes(), "three messages accepted");
            assert_eq!(
                with_clock(windows, 2),
                Err(StateError::Inconsistent { what: "a replay window accepted after the clock" })
            );
            assert!(with_clock(windows, u64::MAX).is_ok());
        }
        assert_eq!(e2e_clock.is_some(), !windows_used);
        if let Some(at) = e2e_clock {
            let clock = u64::from_be_bytes(body[at..at + 8].try_into().unwrap());
            assert!(clock >= 2, "Alice was active with bob: clock {clock}");
            assert_eq!(
                with_clock(at, clock - 1),
                Err(StateError::Inconsistent { what: "a peer active after the clock" })
            );
            assert!(with_clock(at, u64::MAX).is_ok());
        }
    }
}

/// A session's `AD` names both parties (SPEC.md §11.1): a state whose client name was changed no
/// longer fits its sessions.
#[test]
fn a_state_under_another_name_does_not_fit_its_sessions() {
    let mut body = body_of(busy()).to_vec();
    assert_eq!(&body[..6], b"\x05alice");
    body[1] = b'e';
    assert_eq!(
        Client::restore_state(&seal(STATE_VERSION, &body)),
        Err(StateError::Inconsistent { what: "a session's AD is not the one of its two parties" })
    );
}

#[test]
fn debug_shows_no_secret() {
    let w = World::new(14, true);
    let bytes = w.alice.export_state();
    assert!(format!("{bytes:?}").contains("[redacted]"));
    let shown = format!("{:?}", Client::restore_state(bytes.as_bytes()).unwrap());
    // The static key's bytes sit right after the name in the body.
    let secret: String =
        body_of(bytes.as_bytes())[6..38].iter().map(|b| format!("{b:02x}")).collect();
    assert!(!shown.contains(&secret), "{shown}");
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Client::restore_state(&bytes);
    }

    /// Random bodies behind a valid header and checksum reach the body parser.
    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = restores_canonically_or_fails(&seal(STATE_VERSION, &body));
    }

    /// A real state with a random stretch overwritten, behind a fitting checksum.
    #[test]
    fn overwritten_states_never_panic(at in any::<prop::sample::Index>(), junk in proptest::collection::vec(any::<u8>(), 1..16)) {
        let mut body = body_of(busy()).to_vec();
        let start = at.index(body.len());
        for (slot, b) in body[start..].iter_mut().zip(junk) {
            *slot = b;
        }
        let _ = restores_canonically_or_fails(&seal(STATE_VERSION, &body));
    }
}
