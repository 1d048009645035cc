//! The e2e protocol against a malicious server that deviates from the honest code: relabels senders,
//! sends bundles nobody asked for, substitutes keys before the users verify, and delivers messages
//! from more names than a client should keep state for. Each test is an attack found in review; each
//! asserts the refusal *and* that the honest conversation goes on afterwards.
#![cfg(test)]

use std::collections::VecDeque;

use e2e_protocol::e2e::E2eError;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, ClientEvent, LinkId, Server};
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{Body, Codec, FetchedBundle, Message, MessageId, Name};
use e2e_protocol::{Error, ProtocolError};
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

/// Alice, Bob and a server that the tests may make misbehave, all connected, bundles uploaded.
struct World {
    rng: ChaCha20Rng,
    server: Server,
    alice: Client,
    bob: Client,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let server = Server::new(PrivateKey::generate(&mut rng));
        let mut client = |n: &str| {
            let key = PrivateKey::generate(&mut rng);
            Client::with_e2e(name(n), key, server.public_key(), Peers::generate(&mut rng))
        };
        let (alice, bob) = (client("alice"), client("bob"));
        let mut w = Self { rng, server, alice, bob };
        for link in [ALICE, BOB] {
            let mut rng = w.rng.clone();
            let hello = w.client(link).connect(&mut rng).unwrap();
            w.rng = rng;
            w.through_server(link, hello);
            let upload = w.client(link).upload_bundle().unwrap();
            w.through_server(link, upload);
        }
        w
    }

    fn client(&mut self, link: LinkId) -> &mut Client {
        if link == ALICE { &mut self.alice } else { &mut self.bob }
    }

    /// Runs the honest server on `frame` from `link` and the network until quiet; returns every
    /// client event, with the link of the client that reported it.
    fn through_server(&mut self, link: LinkId, frame: Vec<u8>) -> Vec<(LinkId, ClientEvent)> {
        let mut to_server = VecDeque::from([(link, frame)]);
        let mut events = Vec::new();
        while let Some((link, frame)) = to_server.pop_front() {
            let out = self.server.handle(link, &frame, &mut self.rng).unwrap();
            events.extend(self.through_clients(out.transmit, &mut to_server));
        }
        events
    }

    fn through_clients(
        &mut self,
        frames: Vec<(LinkId, Vec<u8>)>,
        to_server: &mut VecDeque<(LinkId, Vec<u8>)>,
    ) -> Vec<(LinkId, ClientEvent)> {
        let mut events = Vec::new();
        for (to, frame) in frames {
            let mut rng = self.rng.clone();
            let out = self.client(to).handle(&frame, &mut rng).unwrap();
            self.rng = rng;
            events.extend(out.events.into_iter().map(|e| (to, e)));
            to_server.extend(out.transmit.into_iter().map(|f| (to, f)));
        }
        events
    }

    /// The malicious server delivers `message` to the client on `link`; returns its events.
    fn inject(&mut self, link: LinkId, message: &Message) -> Vec<ClientEvent> {
        let frame = self.server.seal_transport(link, message).unwrap();
        let mut rng = self.rng.clone();
        let out = self.client(link).handle(&frame, &mut rng).unwrap();
        self.rng = rng;
        out.events
    }

    fn send(&mut self, from: LinkId, to: &str, text: &str) -> Vec<(LinkId, ClientEvent)> {
        let mut rng = self.rng.clone();
        let out = self.client(from).send_e2e(&name(to), body(text), &mut rng).unwrap();
        self.rng = rng;
        out.transmit.into_iter().flat_map(|f| self.through_server(from, f)).collect()
    }

    /// Alice starts a session with Bob and sends `text`; the server lets the fetch through
    /// honestly, then opens her E2eSend itself (keeping the envelope) before processing it honestly,
    /// so Bob receives it once. Returns the id and envelope of that first (prekey) message.
    fn capture_first_message(&mut self, text: &str) -> (MessageId, e2e_protocol::wire::Envelope) {
        let mut rng = self.rng.clone();
        let fetch = self.alice.send_e2e(&name("bob"), body(text), &mut rng).unwrap();
        let reply = self.server.handle(ALICE, &fetch.transmit[0], &mut rng).unwrap();
        let out = self.alice.handle(&reply.transmit[0].1, &mut rng).unwrap();
        self.rng = rng;
        let [frame] = &out.transmit[..] else { panic!("one frame expected: {out:?}") };
        let (_, plaintext) = self.server.open_transport(ALICE, frame).unwrap();
        let Ok(Message::E2eSend { id, envelope, .. }) = Message::decode(&plaintext) else {
            panic!("an E2eSend expected")
        };
        let out = self.server.process(ALICE, plaintext);
        let events = self.through_clients(out.transmit, &mut VecDeque::new());
        assert_eq!(received(&events, BOB), [text]);
        (id, envelope)
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

#[test]
fn a_prekey_message_relabelled_as_another_sender_does_not_open() {
    for strip_one_time_prekeys in [false, true] {
        let mut w = World::new(1);
        if strip_one_time_prekeys {
            // The server hands out Bob's bundle without a one-time prekey: the weakest first message.
            while w.server.take_bundle(&name("bob")).is_some_and(|b| b.one_time_prekey.is_some()) {}
        }
        let (_, first) = w.capture_first_message("pay mallory 100");
        // Bob has it once. Now the server delivers the same envelope as coming from "carol".
        let events = w.inject(
            BOB,
            &Message::E2eDeliver { id: MessageId(1), from: name("carol"), envelope: first },
        );
        // With a one-time prekey, Bob deleted it after the first message, so the replay cannot even
        // start a handshake. Without one, the handshake goes through (same keys) but the first
        // message does not open: its AD names alice, and Bob computes it with carol.
        let expected = if strip_one_time_prekeys {
            E2eError::Ratchet(e2e_protocol::e2e::ratchet::RatchetError::DecryptFailed)
        } else {
            E2eError::UnknownPrekey { id: 2 }
        };
        assert_eq!(events, [ClientEvent::Dropped { error: Error::E2e(expected) }]);
        assert!(w.bob.safety_number(&name("carol")).is_none(), "no session with carol");
        // The conversation goes on.
        let events = w.send(BOB, "alice", "ok");
        assert_eq!(received(&events, ALICE), ["ok"]);
    }
}

#[test]
fn a_bundle_nobody_asked_for_is_refused_and_the_session_survives() {
    let mut w = World::new(2);
    w.send(ALICE, "bob", "one");
    let events = w.send(BOB, "alice", "two");
    assert_eq!(received(&events, ALICE), ["two"]);
    let before = w.alice.safety_number(&name("bob"));
    // The server pushes a (genuine) bundle for Bob that Alice never asked for.
    let bundle: FetchedBundle = w.server.take_bundle(&name("bob")).unwrap();
    let events = w.inject(ALICE, &Message::Bundle { name: name("bob"), bundle });
    assert_eq!(
        events,
        [ClientEvent::Dropped {
            error: Error::Protocol(ProtocolError::Unexpected { state: "online", got: "Bundle" })
        }]
    );
    let events = w.inject(ALICE, &Message::NoBundle { name: name("bob") });
    assert!(matches!(&events[..], [ClientEvent::Dropped { .. }]));
    assert_eq!(w.alice.safety_number(&name("bob")), before, "the session was not replaced");
    let events = w.send(ALICE, "bob", "three");
    assert_eq!(received(&events, BOB), ["three"]);
}

#[test]
fn verifying_after_a_substitution_deletes_the_forged_session() {
    let mut w = World::new(3);
    // The server answers Alice's fetch with a bundle of its own keys as Bob's.
    let mut forger = Peers::generate(&mut w.rng);
    let forged = forger.prepare_upload().unwrap();
    let mut rng = w.rng.clone();
    let out = w.alice.send_e2e(&name("bob"), body("talk first"), &mut rng).unwrap();
    let (_, fetch) = w.server.open_transport(ALICE, &out.transmit[0]).unwrap();
    assert!(matches!(Message::decode(&fetch), Ok(Message::FetchBundle { .. })));
    let bundle = FetchedBundle {
        identity: *forged.identity(),
        signed_prekey: *forged.signed_prekey(),
        one_time_prekey: forged.one_time_prekeys().first().copied(),
    };
    let frame =
        w.server.seal_transport(ALICE, &Message::Bundle { name: name("bob"), bundle }).unwrap();
    let out = w.alice.handle(&frame, &mut rng).unwrap();
    assert_eq!(out.transmit.len(), 1, "Alice, unverified, encrypted to the forged key");
    let (_, sent) = w.server.open_transport(ALICE, &out.transmit[0]).unwrap();
    assert!(matches!(Message::decode(&sent), Ok(Message::E2eSend { .. })));
    assert!(w.alice.safety_number(&name("bob")).is_some());
    // Later Alice and Bob compare safety numbers, see they differ, and Alice verifies Bob's real key.
    let bob_identity = w.bob.identity().unwrap();
    w.alice.verify_peer(name("bob"), bob_identity).unwrap();
    assert!(w.alice.safety_number(&name("bob")).is_none(), "the forged session is gone");
    // Her next message is not encrypted to the forged key: she asks for Bob's bundle again.
    let out = w.alice.send_e2e(&name("bob"), body("secret"), &mut rng).unwrap();
    assert_eq!(out.transmit.len(), 1);
    let (_, request) = w.server.open_transport(ALICE, &out.transmit[0]).unwrap();
    assert!(matches!(Message::decode(&request), Ok(Message::FetchBundle { .. })));
    let _ = forger.identity();
}

#[test]
fn simultaneous_first_contact_converges() {
    let mut w = World::new(4);
    // Both start a session with the other before either's first message arrives: hold the
    // E2eSend frames, deliver them only after both sessions exist.
    let mut held = Vec::new();
    for (from, to, text) in [(ALICE, "bob", "hi bob"), (BOB, "alice", "hi alice")] {
        let mut rng = w.rng.clone();
        let out = w.client(from).send_e2e(&name(to), body(text), &mut rng).unwrap();
        w.rng = rng;
        // The fetch goes through; the bundle comes back; the client answers with its E2eSend.
        let reply = w.server.handle(from, &out.transmit[0], &mut w.rng).unwrap();
        let mut rng = w.rng.clone();
        let client_out = w.client(from).handle(&reply.transmit[0].1, &mut rng).unwrap();
        w.rng = rng;
        held.push((from, client_out.transmit[0].clone()));
    }
    let mut events = Vec::new();
    for (from, frame) in held {
        events.extend(w.through_server(from, frame));
    }
    assert_eq!(received(&events, BOB), ["hi bob"]);
    assert_eq!(received(&events, ALICE), ["hi alice"]);
    // Both now hold two sessions with each other; the conversation must go on both ways.
    for round in 0..3 {
        let events = w.send(ALICE, "bob", &format!("a{round}"));
        assert_eq!(received(&events, BOB), [format!("a{round}")], "round {round}");
        let events = w.send(BOB, "alice", &format!("b{round}"));
        assert_eq!(received(&events, ALICE), [format!("b{round}")], "round {round}");
    }
    assert_eq!(w.alice.safety_number(&name("bob")), w.bob.safety_number(&name("alice")));
}

#[test]
fn a_client_keeps_state_for_at_most_max_peers_senders() {
    let mut w = World::new(5);
    for i in 0..e2e_protocol::e2e::MAX_PEERS {
        // Bob already holds no replay window; each new name takes one.
        let events = w.inject(
            BOB,
            &Message::Deliver { id: MessageId(1), from: name(&format!("n{i}")), body: body("x") },
        );
        assert!(matches!(&events[..], [ClientEvent::Received { .. }]), "sender {i}: {events:?}");
    }
    let events = w.inject(
        BOB,
        &Message::Deliver { id: MessageId(1), from: name("one-too-many"), body: body("x") },
    );
    assert_eq!(events, [ClientEvent::Dropped { error: Error::E2e(E2eError::TooManyPeers) }]);
    // Known senders still get through.
    let events =
        w.inject(BOB, &Message::Deliver { id: MessageId(2), from: name("n0"), body: body("y") });
    assert!(matches!(&events[..], [ClientEvent::Received { .. }]));
}

#[test]
fn e2e_to_oneself_is_refused_and_changes_nothing() {
    let mut w = World::new(6);
    let before = w.alice.clone();
    let mut rng = w.rng.clone();
    assert_eq!(
        w.alice.send_e2e(&name("alice"), body("note to self"), &mut rng),
        Err(Error::Misuse(e2e_protocol::MisuseError::SendToSelf))
    );
    assert_eq!(w.alice, before);
}
