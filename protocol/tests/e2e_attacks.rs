//! The protocols against a malicious server, a malicious client and a malicious peer that deviate
//! from the honest code: relabel senders, send bundles nobody asked for, substitute keys, inject hop
//! messages into e2e conversations, register throw-away names, forge ids and identities. Each test
//! is an attack found in review, named after it; each asserts the refusal *and* that the honest
//! conversation goes on afterwards.
//!
//! The second half is the independent security review of 2026-12 (one test or more per finding,
//! each of which failed on the code before its fix): a forged hop `Deliver` shown as an e2e message,
//! lock-out and growth by throw-away names, a silent identity switch, a forged id that silences a
//! peer, a delayed message refused by a shared window, one-time prekeys drained, unbounded work per
//! forged envelope, unbounded skipped keys, an initiator identity not validated in full, and pins
//! compared against identities that mix two identities' halves.
#![cfg(test)]

use std::collections::VecDeque;

use e2e_protocol::e2e::bundle::verify_fetched;
use e2e_protocol::e2e::envelope::EnvelopeBody;
use e2e_protocol::e2e::identity::IdentityKeyPair;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::ratchet::{Header, RatchetError, Session, WorkBudget};
use e2e_protocol::e2e::safety_number::SafetyNumber;
use e2e_protocol::e2e::signed::signed_prekey_message;
use e2e_protocol::e2e::{E2eError, MAX_PEERS, MAX_SKIPPED_KEYS_PER_CLIENT};
use e2e_protocol::roles::{
    Client, ClientEvent, LinkId, Protection, Server, ServerLimits, queued_len,
};
use e2e_protocol::suite::{PrivateKey, Secret, SigningKey, VerifyingKey};
use e2e_protocol::wire::{
    AckStatus, Body, BundleRefusal, Codec, Envelope, FetchedBundle, IdentityPublic, Message,
    MessageId, Name, RefusalReason, RejectReason, SignedPrekeyPublic,
};
use e2e_protocol::{Error, ProtocolError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The most frames one pump of the network may carry before a test fails (no test needs a
/// hundredth of it).
const MAX_PUMPED_FRAMES: usize = 10_000;

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
        // Bounded, so that a bug that makes frames beget frames fails instead of hanging.
        for _ in 0..MAX_PUMPED_FRAMES {
            let Some((link, frame)) = to_server.pop_front() else { return events };
            let out = self.server.handle(link, &frame, &mut self.rng).unwrap();
            events.extend(self.through_clients(out.transmit, &mut to_server));
        }
        panic!("the network did not quiet down within {MAX_PUMPED_FRAMES} frames");
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
            for _ in 0..=e2e_protocol::e2e::MAX_ONE_TIME_PREKEYS {
                w.server.take_bundle(&name("bob"));
            }
            assert_eq!(w.server.one_time_prekeys(&name("bob")), 0);
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

/// Pinning deletes the sessions of another identity and retires their base keys, as an identity
/// change does (SPEC.md §11.3, §14.2). Before the fix it only deleted them: a user who later pinned
/// that identity again let a replayed prekey message without a one-time prekey start a session
/// again, and its content was delivered twice.
#[test]
fn pinning_retires_the_base_keys_of_the_sessions_it_deletes() {
    let mut w = World::new(12);
    let mut bundle = w.server.take_bundle(&name("bob")).unwrap();
    bundle.one_time_prekey = None;
    let (forger, envelope) = forged_first_message(&bundle, "alice", "hello", &mut w.rng);
    let deliver = Message::E2eDeliver { id: MessageId(1), from: name("alice"), envelope };
    let accepted =
        |events: &[ClientEvent]| events.iter().any(|e| matches!(e, ClientEvent::Received { .. }));
    assert!(accepted(&w.inject(BOB, &deliver)), "unverified, Bob accepts the first message");
    // Bob's user pins alice's real identity: the session with the other one is deleted.
    let real = w.alice.identity().unwrap();
    w.bob.verify_peer(name("alice"), real).unwrap();
    assert!(w.bob.safety_number(&name("alice")).is_none());
    // While that pin holds, the replay claims another identity.
    let refused = |events: &[ClientEvent], wanted: E2eError| matches!(events, [ClientEvent::Dropped { error: Error::E2e(e) }] if *e == wanted);
    let events = w.inject(BOB, &deliver);
    assert!(refused(&events, E2eError::IdentityMismatch { name: name("alice") }), "{events:?}");
    // The user later pins the deleted session's identity after all: its base key stays retired.
    w.bob.verify_peer(name("alice"), forger.identity()).unwrap();
    let events = w.inject(BOB, &deliver);
    assert!(refused(&events, E2eError::ReplayedPrekeyMessage), "{events:?}");
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

// ---- the security review of 2026-12 ----------------------------------------------------------

/// Runs `client`'s registration on `link` through `server` (handshake, `Ready`, and whatever the
/// server answers); returns the client's events. Frames for other links are dropped.
fn register(
    server: &mut Server,
    link: LinkId,
    client: &mut Client,
    rng: &mut ChaCha20Rng,
) -> Vec<ClientEvent> {
    let mut to_server = VecDeque::from([client.connect(rng).unwrap()]);
    let mut events = Vec::new();
    for _ in 0..MAX_PUMPED_FRAMES {
        let Some(frame) = to_server.pop_front() else { return events };
        let Ok(out) = server.handle(link, &frame, rng) else { return events };
        for (to, frame) in out.transmit {
            if to == link {
                let out = client.handle(&frame, rng).unwrap();
                events.extend(out.events);
                to_server.extend(out.transmit);
            }
        }
    }
    panic!("registration did not settle");
}

/// `bob`'s bundle as a fetch without a one-time prekey gives it (his first upload, prepared now).
fn bundle_without_one_time_prekey(bob: &mut Peers) -> FetchedBundle {
    let upload = bob.prepare_upload().unwrap();
    FetchedBundle {
        identity: *upload.identity(),
        signed_prekey: *upload.signed_prekey(),
        one_time_prekey: None,
    }
}

/// A prekey message from a forged identity (the malicious server's, or a throw-away sender's) to
/// Bob, from his bundle `bundle`.
fn forged_first_message(
    bundle: &FetchedBundle,
    from: &str,
    text: &str,
    rng: &mut ChaCha20Rng,
) -> (Peers, Envelope) {
    let mut forger = Peers::generate(rng);
    forger.start_session(&name(from), &name("bob"), bundle, rng).unwrap();
    let envelope = forger.encrypt(&name("bob"), &body(text), rng).unwrap();
    (forger, envelope)
}

/// Item 1: the server seals a hop `Deliver` "from alice" into Bob's channel, after Bob verified
/// Alice's e2e identity. Before the fix Bob reported it as `Received` from alice, exactly like an
/// e2e message.
#[test]
fn forged_hop_deliver_from_a_verified_peer_is_refused() {
    let mut w = World::new(10);
    let alice = w.alice.identity().unwrap();
    w.bob.verify_peer(name("alice"), alice).unwrap();
    w.send(ALICE, "bob", "hello");
    let before = w.bob.safety_number(&name("alice"));
    let forged =
        Message::Deliver { id: MessageId(2), from: name("alice"), body: body("wire 1000 EUR") };
    let events = w.inject(BOB, &forged);
    let refused = Error::Protocol(ProtocolError::Unexpected { state: "e2e", got: "Deliver" });
    assert_eq!(events, [ClientEvent::Dropped { error: refused }]);
    assert_eq!(w.bob.safety_number(&name("alice")), before);
    // The genuine conversation goes on, and says who authenticated it.
    let events = w.send(ALICE, "bob", "the real one");
    let at_bob: Vec<_> = events.into_iter().filter(|(l, _)| *l == BOB).map(|(_, e)| e).collect();
    assert_eq!(
        at_bob,
        [ClientEvent::Received {
            from: name("alice"),
            id: MessageId(2),
            body: body("the real one"),
            protection: Protection::E2e { identity: alice },
        }]
    );
}

/// Item 2: one static key registers many names. Now one key binds one name, and a name is bound
/// only once its link is confirmed.
#[test]
fn throw_away_names_one_key_binds_one_name_and_only_after_key_confirmation() {
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    let mut server = Server::new(PrivateKey::generate(&mut rng));
    let key = PrivateKey::generate(&mut rng);
    let mut first = Client::new(name("m0"), key.clone(), server.public_key());
    assert_eq!(register(&mut server, LinkId(1), &mut first, &mut rng), [ClientEvent::Connected]);
    let mut second = Client::new(name("m1"), key.clone(), server.public_key());
    assert_eq!(
        register(&mut server, LinkId(2), &mut second, &mut rng),
        [ClientEvent::Refused(RefusalReason::KeyInUse)]
    );
    assert_eq!(server.account(&name("m1")), None);
    assert_eq!(server.account_count(), 1);

    // A handshake whose client never confirms binds nothing: the name stays free for the first
    // client that does.
    let mut squatter =
        Client::new(name("carol"), PrivateKey::generate(&mut rng), server.public_key());
    let hello = squatter.connect(&mut rng).unwrap();
    let out = server.handle(LinkId(3), &hello, &mut rng).unwrap();
    assert_eq!(out.transmit.len(), 1, "Welcome, which the squatter never answers");
    assert_eq!(server.account(&name("carol")), None);
    let carol_key = PrivateKey::generate(&mut rng);
    let mut carol = Client::new(name("carol"), carol_key.clone(), server.public_key());
    assert_eq!(register(&mut server, LinkId(4), &mut carol, &mut rng), [ClientEvent::Connected]);
    assert_eq!(server.account(&name("carol")), Some(carol_key.public_key()));
}

/// Item 2: a key confirmed for a name by one link, while a second link of the same key waits for
/// its `Ready` under another name: that `Ready` is refused in the channel, and the link closed.
#[test]
fn throw_away_names_a_second_name_confirmed_later_is_refused_at_ready() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let mut server = Server::new(PrivateKey::generate(&mut rng));
    let key = PrivateKey::generate(&mut rng);
    let mut first = Client::new(name("m0"), key.clone(), server.public_key());
    let mut second = Client::new(name("m1"), key, server.public_key());
    let hello_1 = first.connect(&mut rng).unwrap();
    let hello_2 = second.connect(&mut rng).unwrap();
    let welcome_1 = server.handle(LinkId(1), &hello_1, &mut rng).unwrap().transmit.remove(0).1;
    let welcome_2 = server.handle(LinkId(2), &hello_2, &mut rng).unwrap().transmit.remove(0).1;
    let ready_1 = first.handle(&welcome_1, &mut rng).unwrap().transmit.remove(0);
    let ready_2 = second.handle(&welcome_2, &mut rng).unwrap().transmit.remove(0);
    server.handle(LinkId(1), &ready_1, &mut rng).unwrap();
    let out = server.handle(LinkId(2), &ready_2, &mut rng).unwrap();
    assert_eq!(out.close, [LinkId(2)]);
    let events = second.handle(&out.transmit[0].1, &mut rng).unwrap().events;
    assert_eq!(events, [ClientEvent::Refused(RefusalReason::KeyInUse)]);
    assert!(!second.is_connected());
    assert_eq!(server.account(&name("m1")), None);
    assert!(server.is_online(&name("m0")));
}

/// Item 2: the server's accounts and the bytes of all its mailboxes are bounded, with typed
/// refusals at the boundary (here with small limits; the defaults are SPEC.md §8's).
#[test]
fn throw_away_names_cannot_grow_the_server_without_bound() {
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let text = body(&"x".repeat(1000));
    let one =
        queued_len(&Message::Deliver { id: MessageId(1), from: name("alice"), body: text.clone() });
    let limits = ServerLimits { max_accounts: 2, max_queued_bytes: 2 * one };
    let mut server = Server::new(PrivateKey::generate(&mut rng)).with_limits(limits);
    let mut alice = Client::new(name("alice"), PrivateKey::generate(&mut rng), server.public_key());
    let bob_key = PrivateKey::generate(&mut rng);
    let mut bob = Client::new(name("bob"), bob_key.clone(), server.public_key());
    assert_eq!(register(&mut server, LinkId(1), &mut alice, &mut rng), [ClientEvent::Connected]);
    assert_eq!(register(&mut server, LinkId(2), &mut bob, &mut rng), [ClientEvent::Connected]);
    let mut third = Client::new(name("m"), PrivateKey::generate(&mut rng), server.public_key());
    assert_eq!(
        register(&mut server, LinkId(3), &mut third, &mut rng),
        [ClientEvent::Refused(RefusalReason::ServerFull)]
    );
    assert_eq!(server.account_count(), 2);
    // Bob is offline: two messages fill the server's store, the third is refused to its sender.
    server.close_link(LinkId(2));
    bob.disconnect();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (_, frame) = alice.send(&name("bob"), text.clone()).unwrap();
        let out = server.handle(LinkId(1), &frame, &mut rng).unwrap();
        answers.extend(alice.handle(&out.transmit[0].1, &mut rng).unwrap().events);
    }
    assert_eq!(
        answers,
        [
            ClientEvent::Acked { id: MessageId(1), status: AckStatus::Queued },
            ClientEvent::Acked { id: MessageId(2), status: AckStatus::Queued },
            ClientEvent::Rejected { id: MessageId(3), reason: RejectReason::ServerFull },
        ]
    );
    assert_eq!(server.queued_bytes(), 2 * one);
    // Bob's known name re-registers (bound names are not new accounts) and empties the store.
    let mut bob = Client::new(name("bob"), bob_key, server.public_key());
    let events = register(&mut server, LinkId(4), &mut bob, &mut rng);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(server.queued_bytes(), 0);
}

/// Item 2: 256 + 40 throw-away senders each send Bob one first message. Before the fix Bob then
/// refused every new correspondent (`TooManyPeers`). Now the least recently active peer is evicted —
/// never a pinned peer, nor one whose session Bob started and has not heard back on — and a real
/// new contact gets through.
#[test]
fn throw_away_senders_cannot_lock_a_client_out_of_new_contacts() {
    let mut w = World::new(23);
    // Alice is a verified contact; Carol is someone Bob wrote to and who has not answered yet.
    w.send(ALICE, "bob", "hello bob");
    let alice = w.alice.identity().unwrap();
    w.bob.verify_peer(name("alice"), alice).unwrap();
    let carol = Peers::generate(&mut w.rng).prepare_upload().unwrap();
    let mut rng = w.rng.clone();
    let fetch = w.bob.send_e2e(&name("carol"), body("hi carol"), &mut rng).unwrap();
    w.rng = rng;
    assert_eq!(fetch.transmit.len(), 1);
    let carol_bundle = FetchedBundle {
        identity: *carol.identity(),
        signed_prekey: *carol.signed_prekey(),
        one_time_prekey: None,
    };
    let events = w.inject(BOB, &Message::Bundle { name: name("carol"), bundle: carol_bundle });
    assert!(events.iter().any(|e| matches!(e, ClientEvent::Sent { .. })), "{events:?}");
    let bob_bundle =
        FetchedBundle { one_time_prekey: None, ..w.server.take_bundle(&name("bob")).unwrap() };
    let mut evicted = Vec::new();
    for i in 0..MAX_PEERS + 40 {
        let from = format!("throwaway{i}");
        let (_, envelope) = forged_first_message(&bob_bundle, &from, "x", &mut w.rng);
        let events =
            w.inject(BOB, &Message::E2eDeliver { id: MessageId(1), from: name(&from), envelope });
        assert!(
            events.iter().any(|e| matches!(e, ClientEvent::Received { .. })),
            "sender {i}: {events:?}"
        );
        evicted.extend(events.into_iter().filter_map(|e| match e {
            ClientEvent::PeerEvicted { peer } => Some(peer),
            _ => None,
        }));
    }
    // 256 peers fit: alice, carol and 254 throw-aways; each later one evicted the oldest.
    let expected: Vec<Name> = (0..42).map(|i| name(&format!("throwaway{i}"))).collect();
    assert_eq!(evicted, expected);
    // A real new contact gets through, and so do the verified and the awaited contact.
    let (_, envelope) = forged_first_message(&bob_bundle, "dave", "it's dave", &mut w.rng);
    let events =
        w.inject(BOB, &Message::E2eDeliver { id: MessageId(1), from: name("dave"), envelope });
    assert!(events.iter().any(|e| matches!(e, ClientEvent::Received { .. })), "{events:?}");
    assert!(w.bob.safety_number(&name("carol")).is_some(), "the awaited contact was kept");
    let events = w.send(ALICE, "bob", "still here");
    assert_eq!(received(&events, BOB), ["still here"]);
}

/// Item 3: the server delivers a first message "from alice" under an identity of its own, while
/// Bob has a working session with the real Alice (unverified). Before the fix nothing was said,
/// and Alice's next message silently made her old session current again. Now the identity change
/// is an event with both safety numbers, and the old identity's sessions are gone.
#[test]
fn an_identity_switch_is_an_event_and_never_silent() {
    let mut w = World::new(30);
    w.send(ALICE, "bob", "one");
    w.send(BOB, "alice", "two");
    let real = w.alice.identity().unwrap();
    let old = w.bob.safety_number(&name("alice")).unwrap();
    let bob_bundle = w.server.take_bundle(&name("bob")).unwrap();
    let (forger, envelope) = forged_first_message(&bob_bundle, "alice", "new phone", &mut w.rng);
    let events =
        w.inject(BOB, &Message::E2eDeliver { id: MessageId(9), from: name("alice"), envelope });
    let bob = w.bob.identity().unwrap();
    let new = SafetyNumber::new((&bob, &name("bob")), (&forger.identity(), &name("alice")));
    assert_eq!(events[0], ClientEvent::IdentityChanged { peer: name("alice"), old, new });
    assert!(matches!(events[1], ClientEvent::SessionStarted { .. }));
    assert!(matches!(
        &events[2],
        ClientEvent::Received { protection: Protection::E2e { identity }, .. } if *identity == forger.identity()
    ));
    assert_ne!(forger.identity(), real);
    // The real Alice's next message finds no session of her identity: refused, not switched to.
    let events = w.send(ALICE, "bob", "it's still me");
    assert_eq!(received(&events, BOB), Vec::<String>::new());
    let new_number = w.bob.safety_number(&name("alice")).unwrap();
    assert_eq!(
        new_number,
        SafetyNumber::new((&bob, &name("bob")), (&forger.identity(), &name("alice")))
    );
}

/// Item 3: pinning the identity behind the number the users compared, not one from a bundle.
#[test]
fn verify_safety_number_pins_the_identity_behind_the_compared_number() {
    let mut w = World::new(31);
    w.send(ALICE, "bob", "hi");
    let shown_to_alice = w.alice.safety_number(&name("bob")).unwrap();
    let bob_bundle = w.server.take_bundle(&name("bob")).unwrap();
    // A wrong number (say, of a session with the server's identity) pins nothing.
    let stranger = Peers::generate(&mut w.rng).identity();
    let bob = w.bob.identity().unwrap();
    let wrong = SafetyNumber::new((&bob, &name("bob")), (&stranger, &name("alice")));
    let before = w.bob.clone();
    assert_eq!(
        w.bob.verify_safety_number(&name("alice"), &wrong),
        Err(Error::E2e(E2eError::SafetyNumberMismatch { name: name("alice") }))
    );
    assert_eq!(w.bob, before);
    assert_eq!(
        w.bob.verify_safety_number(&name("carol"), &shown_to_alice),
        Err(Error::E2e(E2eError::NoSession { name: name("carol") }))
    );
    // The number Alice's screen shows pins Alice's real identity: a substituted identity is now
    // refused instead of starting a session.
    w.bob.verify_safety_number(&name("alice"), &shown_to_alice).unwrap();
    let (_, envelope) = forged_first_message(&bob_bundle, "alice", "new phone", &mut w.rng);
    let events =
        w.inject(BOB, &Message::E2eDeliver { id: MessageId(9), from: name("alice"), envelope });
    assert_eq!(
        events,
        [ClientEvent::Dropped {
            error: Error::E2e(E2eError::IdentityMismatch { name: name("alice") })
        }]
    );
    assert_eq!(received(&w.send(ALICE, "bob", "still me"), BOB), ["still me"]);
}

/// Item 4: one message with id 2^64 − 1 "from alice", hop or e2e. Before the fix it moved the one
/// window Bob kept for alice to the top, and every later message from Alice was `OutOfWindow`.
#[test]
fn a_forged_message_id_cannot_silence_a_peer() {
    let mut w = World::new(40);
    w.send(ALICE, "bob", "one");
    let garbage = Envelope::new([&[0x02][..], &[7; 40], &[9; 20]].concat()).unwrap();
    let top = MessageId(u64::MAX);
    for forged in [
        Message::E2eDeliver { id: top, from: name("alice"), envelope: garbage },
        Message::Deliver { id: top, from: name("alice"), body: body("x") },
    ] {
        let events = w.inject(BOB, &forged);
        assert!(matches!(events[..], [ClientEvent::Dropped { .. }]), "{events:?}");
    }
    assert_eq!(received(&w.send(ALICE, "bob", "two"), BOB), ["two"]);
}

/// Item 5: the server holds one of Alice's messages while it relays 100 later ones. Before the fix
/// the shared 64-id window refused it when it finally arrived; §16.2 promises it decrypts.
#[test]
fn a_delayed_e2e_message_within_max_skip_decrypts() {
    let mut w = World::new(50);
    w.send(ALICE, "bob", "first");
    let mut rng = w.rng.clone();
    let out = w.alice.send_e2e(&name("bob"), body("delayed"), &mut rng).unwrap();
    w.rng = rng;
    let (_, held) = w.server.open_transport(ALICE, &out.transmit[0]).unwrap();
    for i in 0..100 {
        assert_eq!(received(&w.send(ALICE, "bob", &format!("m{i}")), BOB), [format!("m{i}")]);
    }
    let out = w.server.process(ALICE, held);
    let events = w.through_clients(out.transmit, &mut VecDeque::new());
    assert_eq!(received(&events, BOB), ["delayed"]);
}

/// Item 6: what a later compromise of Bob's identity and prekeys reveals of a session, with and
/// without a one-time prekey (SPEC.md §11.3). The attacker's Bob is a copy of Bob's e2e state whose
/// sessions are deleted (pinning another identity deletes them, §14.2): identity, signed and
/// one-time prekeys, no ratchet.
#[test]
fn compromise_reveals_the_first_sending_chain_without_a_one_time_prekey_and_nothing_with_one() {
    for with_one_time_prekey in [true, false] {
        let mut rng = ChaCha20Rng::seed_from_u64(60);
        let (alice_name, bob_name) = (name("alice"), name("bob"));
        let mut alice = Peers::generate(&mut rng);
        let mut bob = Peers::generate(&mut rng);
        let upload = bob.prepare_upload().unwrap();
        let keys_only = bob.clone();
        let bundle = FetchedBundle {
            identity: *upload.identity(),
            signed_prekey: *upload.signed_prekey(),
            one_time_prekey: upload
                .one_time_prekeys()
                .first()
                .copied()
                .filter(|_| with_one_time_prekey),
        };
        let started = alice.start_session(&alice_name, &bob_name, &bundle, &mut rng).unwrap();
        assert_eq!(started.one_time_prekey, with_one_time_prekey);
        // Alice's first sending chain: three prekey messages; Bob answers; Alice's second chain.
        let mut first_chain = Vec::new();
        for text in ["a1", "a2", "a3"] {
            let envelope = alice.encrypt(&bob_name, &body(text), &mut rng).unwrap();
            let opened = bob.decrypt(&bob_name, &alice_name, &envelope).unwrap();
            assert_eq!(opened.started.is_some(), text == "a1");
            if let Some(started) = &opened.started {
                assert_eq!(started.one_time_prekey, with_one_time_prekey);
            }
            first_chain.push(envelope);
        }
        let reply = bob.encrypt(&alice_name, &body("b1"), &mut rng).unwrap();
        alice.decrypt(&alice_name, &bob_name, &reply).unwrap();
        let later: Vec<Envelope> = ["a4", "a5"]
            .iter()
            .map(|t| {
                let e = alice.encrypt(&bob_name, &body(t), &mut rng).unwrap();
                bob.decrypt(&bob_name, &alice_name, &e).unwrap();
                e
            })
            .collect();
        // Compromise of Bob, after all of it: his identity and prekeys as they are now — the
        // one-time prekey, if the session used one, deleted at its first use (here by a message
        // from someone else that names it) — without his sessions with alice and the base keys
        // they retired: a thief computes keys, it is not held to the replay checks of the state.
        let mut stolen = keys_only;
        let (_, other) = forged_first_message(&bundle, "mallory", "m1", &mut rng);
        stolen.decrypt(&bob_name, &name("mallory"), &other).unwrap();
        assert!(!stolen.has_session(&alice_name));
        let opens =
            |envelope: &Envelope| stolen.clone().decrypt(&bob_name, &alice_name, envelope).is_ok();
        let revealed: Vec<bool> = first_chain.iter().map(opens).collect();
        // Without a one-time prekey every message of Alice's first chain opens; with one, none.
        assert_eq!(revealed, [!with_one_time_prekey; 3], "with opk: {with_one_time_prekey}");
        // Messages after Bob's reply depend on a fresh DH the attacker never had.
        assert!(later.iter().all(|e| !opens(e)));
    }
}

/// Item 7: a forged header that makes a session skip 1000 keys in two chains. Before the fix every
/// one of a peer's sessions did that work for the same envelope; now the envelope's budget
/// (`MAX_ENVELOPE_CHAIN_STEPS`, SPEC.md §12.5) is spent by the first, and the next does nothing.
#[test]
fn a_forged_envelope_costs_at_most_the_stated_work() {
    let sk = |b: u8| Secret::new([b; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(70);
    // Two sessions of Bob's, each having received one message from its Alice.
    let mut sessions = Vec::new();
    for i in 0..2u8 {
        let bob_spk = PrivateKey::generate(&mut rng);
        let mut alice = Session::initiator(sk(i), vec![i], bob_spk.public_key());
        let mut bob = Session::responder(sk(i), vec![i], bob_spk);
        let (header, ct) = alice.encrypt(b"hi", &mut rng).unwrap();
        bob.decrypt(&header, &ct).unwrap();
        sessions.push(bob);
    }
    let forged = Header { dh: PrivateKey::generate(&mut rng).public_key(), pn: 1001, n: 1000 };
    let mut budget = WorkBudget::per_envelope();
    let before = sessions.clone();
    let mut ct = vec![0; 30];
    assert_eq!(
        sessions[0].decrypt_within(&forged, &mut ct, 0, &mut budget),
        Err(RatchetError::DecryptFailed)
    );
    assert_eq!(budget.steps_left(), 0, "the first session spent all 2000 steps");
    assert_eq!(
        sessions[1].decrypt_within(&forged, &mut ct, 0, &mut budget),
        Err(RatchetError::WorkExceeded)
    );
    assert_eq!(sessions, before, "nothing changed");
    assert_eq!(ct, vec![0; 30]);
}

/// Item 8: a client's skipped keys are bounded over all its sessions: peers that each make Bob
/// store 1000 keys cannot make him hold more than `MAX_SKIPPED_KEYS_PER_CLIENT`; the least recently
/// active peer's keys go first, and the newest peer's held messages still open.
#[test]
fn peers_cannot_make_a_client_store_skipped_keys_without_bound() {
    let mut rng = ChaCha20Rng::seed_from_u64(80);
    let bob_name = name("bob");
    let mut bob = Peers::generate(&mut rng);
    let bundle = bundle_without_one_time_prekey(&mut bob);
    let senders = MAX_SKIPPED_KEYS_PER_CLIENT / 1000 + 2;
    let mut held = Vec::new();
    for i in 0..senders {
        let from = name(&format!("p{i}"));
        let mut peer = Peers::generate(&mut rng);
        peer.start_session(&from, &bob_name, &bundle, &mut rng).unwrap();
        let envelopes: Vec<Envelope> = (0..=1000)
            .map(|k| peer.encrypt(&bob_name, &body(&format!("{k}")), &mut rng).unwrap())
            .collect();
        // The last arrives first: Bob stores the keys of the 1000 before it.
        bob.decrypt(&bob_name, &from, &envelopes[1000]).unwrap();
        assert!(bob.skipped_key_count() <= MAX_SKIPPED_KEYS_PER_CLIENT);
        held.push((from, envelopes));
    }
    assert_eq!(bob.skipped_key_count(), MAX_SKIPPED_KEYS_PER_CLIENT);
    let (first, first_held) = &held[0];
    assert!(bob.clone().decrypt(&bob_name, first, &first_held[500]).is_err(), "evicted first");
    let (last, last_held) = &held[senders - 1];
    assert_eq!(bob.decrypt(&bob_name, last, &last_held[500]).unwrap().body, body("500"));
}

/// Item 9: a prekey message claiming an identity whose signing half is small-order, or someone
/// else's. Before the fix Bob checked neither, and would show (and let a user pin) such an identity.
#[test]
fn a_prekey_message_must_carry_one_whole_valid_identity() {
    let mut rng = ChaCha20Rng::seed_from_u64(90);
    let bob_name = name("bob");
    let mut bob = Peers::generate(&mut rng);
    let bundle = bundle_without_one_time_prekey(&mut bob);
    let carol = Peers::generate(&mut rng).identity();
    let (_, genuine) = forged_first_message(&bundle, "mallory", "hi", &mut rng);
    let EnvelopeBody::Prekey { prekey, message } =
        EnvelopeBody::decode(genuine.as_bytes()).unwrap()
    else {
        panic!("a prekey message");
    };
    let mut small = [0u8; 32];
    small[0] = 1; // the Ed25519 identity point, of small order
    for (claimed, refusal) in [
        (
            IdentityPublic { sign: VerifyingKey::from_bytes(small), ..prekey.identity },
            BundleRefusal::BadSigningKey,
        ),
        (IdentityPublic { sign: carol.sign, ..prekey.identity }, BundleRefusal::BadSignature),
        (IdentityPublic { dh: carol.dh, ..prekey.identity }, BundleRefusal::BadSignature),
    ] {
        let mut prekey = prekey;
        prekey.identity = claimed;
        let envelope =
            Envelope::new(EnvelopeBody::Prekey { prekey, message: message.clone() }.encode())
                .unwrap();
        let before = bob.clone();
        assert_eq!(
            bob.decrypt(&bob_name, &name("mallory"), &envelope),
            Err(E2eError::Bundle(refusal))
        );
        assert_eq!(bob, before);
    }
    assert!(bob.decrypt(&bob_name, &name("mallory"), &genuine).is_ok());
}

/// Item 12: a pinned peer's prekey message, and a fetched bundle, claiming an identity that mixes
/// one half of the pinned identity with one of the attacker's. A pin check that compared one half
/// only would let either through.
#[test]
fn a_pinned_identity_refuses_every_mix_of_halves() {
    let mut rng = ChaCha20Rng::seed_from_u64(120);
    let bob_name = name("bob");
    let mut bob = Peers::generate(&mut rng);
    let bundle = bundle_without_one_time_prekey(&mut bob);
    let alice = IdentityKeyPair::generate(&mut rng);
    let attacker_sign = SigningKey::from_seed([6; 32]);
    let attacker =
        IdentityKeyPair::from_parts(PrivateKey::from_bytes([5; 32]), attacker_sign.clone());
    bob.pin(name("alice"), alice.public()).unwrap();
    let (_, genuine) = forged_first_message(&bundle, "alice", "hi", &mut rng);
    let EnvelopeBody::Prekey { prekey, message } =
        EnvelopeBody::decode(genuine.as_bytes()).unwrap()
    else {
        panic!("a prekey message");
    };
    let mixes = [
        IdentityPublic { dh: attacker.public().dh, sign: alice.public().sign },
        IdentityPublic { dh: alice.public().dh, sign: attacker.public().sign },
    ];
    for mixed in mixes {
        let mut prekey = prekey;
        prekey.identity = mixed;
        let envelope =
            Envelope::new(EnvelopeBody::Prekey { prekey, message: message.clone() }.encode())
                .unwrap();
        let before = bob.clone();
        assert_eq!(
            bob.decrypt(&bob_name, &name("alice"), &envelope),
            Err(E2eError::IdentityMismatch { name: name("alice") })
        );
        assert_eq!(bob, before);
    }
    // Fetched bundles for a pinned "alice", each mix with a signed prekey the attacker signs over
    // the mix's X25519 half. With Alice's signing half the signature cannot verify (§10.3 step 3
    // comes before the pin); with the attacker's it verifies, and the pin refuses the bundle.
    let pinned = alice.public();
    for (mixed, refusal) in [
        (mixes[0], E2eError::Bundle(BundleRefusal::BadSignature)),
        (mixes[1], E2eError::IdentityMismatch { name: name("alice") }),
    ] {
        let spk = PrivateKey::generate(&mut rng).public_key();
        let signature = attacker_sign.sign(&signed_prekey_message(&mixed.dh, 7, &spk));
        let bundle = FetchedBundle {
            identity: mixed,
            signed_prekey: SignedPrekeyPublic { id: 7, key: spk, signature },
            one_time_prekey: None,
        };
        assert_eq!(verify_fetched(&name("alice"), &bundle, Some(&pinned)), Err(refusal));
        assert!(verify_fetched(&name("alice"), &bundle, None).is_ok() == (mixed == mixes[1]));
    }
}

/// Item 11 (SPEC.md §16.2): key-compromise impersonation is inherent to X3DH, and pinning does not
/// stop it. Whoever steals Bob's identity and signed prekey can run Bob's half of the handshake for
/// a prekey message it writes itself, claiming Alice's real, pinned identity (her `id_sig` is a
/// public constant); Bob accepts it as Alice's. Rotating the signed prekey twice ends it.
#[test]
fn key_compromise_impersonation_through_a_stolen_signed_prekey_is_inherent() {
    use e2e_protocol::e2e::prekeys::PrekeyStore;
    use e2e_protocol::e2e::x3dh::{self, PrekeyHeader};

    let mut rng = ChaCha20Rng::seed_from_u64(110);
    let (alice_name, bob_name) = (name("alice"), name("bob"));
    let mut alice = Peers::generate(&mut rng);
    let bob_identity = IdentityKeyPair::generate(&mut rng);
    let bob_store = PrekeyStore::generate(&bob_identity, &mut rng);
    let mut bob = Peers::new(bob_identity.clone(), bob_store.clone());
    let bundle = bundle_without_one_time_prekey(&mut bob);
    bob.pin(alice_name.clone(), alice.identity()).unwrap();
    // Alice's real first message: Bob accepts it; its header shows her id_sig to everyone.
    alice.start_session(&alice_name, &bob_name, &bundle, &mut rng).unwrap();
    let first = alice.encrypt(&bob_name, &body("hi bob"), &mut rng).unwrap();
    bob.decrypt(&bob_name, &alice_name, &first).unwrap();
    let EnvelopeBody::Prekey { prekey: seen, .. } = EnvelopeBody::decode(first.as_bytes()).unwrap()
    else {
        panic!("a prekey message");
    };

    // The thief holds Bob's identity and prekeys (not Alice's ik) and writes "from alice".
    let forge = |store: &PrekeyStore, spk_id: u32, rng: &mut ChaCha20Rng| {
        let ephemeral = PrivateKey::generate(rng);
        let header = PrekeyHeader {
            identity: alice.identity(),
            identity_signature: seen.identity_signature,
            base_key: ephemeral.public_key(),
            signed_prekey_id: spk_id,
            one_time_prekey_id: None,
        };
        let responded = x3dh::respond(&bob_identity, &bob_name, &alice_name, store, &header)?;
        let spk = store.signed_prekey(spk_id).ok_or(E2eError::UnknownPrekey { id: spk_id })?;
        let mut session = Session::initiator(
            responded.shared_secret().clone(),
            responded.ad().to_vec(),
            spk.public_key(),
        );
        let (header_r, ct) = session.encrypt(b"send me the keys", rng).map_err(E2eError::from)?;
        let message =
            e2e_protocol::e2e::envelope::RatchetMessage { header: header_r, ciphertext: ct };
        Ok::<_, E2eError>(
            Envelope::new(EnvelopeBody::Prekey { prekey: header, message }.encode()).unwrap(),
        )
    };
    let forged = forge(&bob_store, 1, &mut rng).unwrap();
    let opened = bob.decrypt(&bob_name, &alice_name, &forged).unwrap();
    assert_eq!(opened.body, body("send me the keys"));
    assert_eq!(opened.identity, alice.identity(), "accepted as the pinned Alice");

    // After two rotations Bob no longer holds signed prekey 1: the stolen one opens nothing new.
    bob.rotate_signed_prekey(&mut rng).unwrap();
    bob.rotate_signed_prekey(&mut rng).unwrap();
    let forged = forge(&bob_store, 1, &mut rng).unwrap();
    assert_eq!(
        bob.decrypt(&bob_name, &alice_name, &forged),
        Err(E2eError::UnknownPrekey { id: 1 })
    );
}
