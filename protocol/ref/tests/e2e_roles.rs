#![cfg(test)]
//! The e2e protocol (SPEC.md §10–§15) through the real [`Client`] and [`Server`] state machines:
//! the happy path and what the server sees, one-time prekeys handed out once, replayed and tampered
//! envelopes, bundle validation on both sides, verified identities against a substituting server,
//! offline delivery, API misuse, out-of-order delivery, simultaneous first contact, determinism.
//!
//! A malicious server is played with the server's own public halves — `open_transport`, `process`,
//! `seal_transport`, `take_bundle` — so it holds exactly the keys a real operator holds: it can open
//! and re-seal every channel, never an envelope. "Alice restored from a backup" (her `Peers` as
//! generated, same identity, no session) is how a test makes a second genuine session.
//!
//! Where an authentic frame carries content that must be refused (SPEC.md §7.2), the recipient is
//! compared with a *twin*: a clone that received a neutral frame (`Ack`) at the same channel
//! position. Equality shows the channel advanced and nothing else moved — no session, prekey,
//! replay window or pending queue.
//!
//! Safety numbers cost 2 × 5200 SHA-512 each (about 0.2 s in a debug build) and a client computes
//! one for every session it starts, so the tests start only the sessions they need.

use std::collections::{BTreeMap, VecDeque};

use e2e_protocol::channel::{Initiator, PROLOGUE, Transport};
use e2e_protocol::e2e::identity::IdentityKeyPair;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::ratchet::RatchetError;
use e2e_protocol::e2e::safety_number::SafetyNumber;
use e2e_protocol::e2e::{
    E2eError, MAX_ARCHIVED_SESSIONS, MAX_PENDING, ONE_TIME_PREKEYS_PER_UPLOAD,
};
use e2e_protocol::roles::{
    Client, ClientEvent, ClientOutputs, LinkId, MAILBOX_CAPACITY, Protection, Server, ServerEvent,
    ServerOutputs,
};
use e2e_protocol::suite::{PrivateKey, PublicKey, Signature, VerifyingKey};
use e2e_protocol::wire::{
    AckStatus, Body, BundleRefusal, Codec, Envelope, FetchedBundle, IdentityPublic, LinkFrame,
    LinkKind, Message, MessageId, Name, OneTimePrekeyPublic, RejectReason, SignedPrekeyPublic,
    UploadedBundle, WireError,
};
use e2e_protocol::{Error, MisuseError, ProtocolError};
use e2e_ref::mitm::{Intercepted, Mitm};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn body(s: &str) -> Body {
    Body::new(s.as_bytes().to_vec()).unwrap()
}

fn e2e(error: E2eError) -> Error {
    Error::E2e(error)
}

fn ratchet(error: RatchetError) -> Error {
    Error::E2e(E2eError::Ratchet(error))
}

thread_local! {
    /// The e2e identity of each member of this test's world, by name: what an e2e message from
    /// that member is authenticated as (each test runs on a thread of its own).
    static IDENTITIES: std::cell::RefCell<BTreeMap<String, IdentityPublic>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// An e2e message from world member `from`, authenticated as `from`'s real identity.
fn received(from: &str, id: u64, text: &str) -> ClientEvent {
    let identity = IDENTITIES.with(|ids| ids.borrow().get(from).copied());
    let identity = identity.unwrap_or_else(|| panic!("{from} is not an e2e member"));
    ClientEvent::Received {
        from: name(from),
        id: MessageId(id),
        body: body(text),
        protection: Protection::E2e { identity },
    }
}

/// A hop message from `from` (only a hop-only client accepts one).
fn received_hop(from: &str, id: u64, text: &str) -> ClientEvent {
    ClientEvent::Received {
        from: name(from),
        id: MessageId(id),
        body: body(text),
        protection: Protection::Hop,
    }
}

fn sent(to: &str, id: u64) -> ClientEvent {
    ClientEvent::Sent { to: name(to), id: MessageId(id) }
}

fn acked(id: u64, status: AckStatus) -> ClientEvent {
    ClientEvent::Acked { id: MessageId(id), status }
}

fn deliver(id: u64, from: &str, envelope: Envelope) -> Message {
    Message::E2eDeliver { id: MessageId(id), from: name(from), envelope }
}

/// Client events tagged with the client that reported them, in the order they happened.
type Events = Vec<(Name, ClientEvent)>;

/// The events `who` reported, in order.
fn of(events: &Events, who: &str) -> Vec<ClientEvent> {
    events.iter().filter(|(n, _)| n.as_str() == who).map(|(_, e)| e.clone()).collect()
}

/// Checks that `event` is `SessionStarted` with `peer`.
#[track_caller]
fn started(event: &ClientEvent, peer: &str) {
    match event {
        ClientEvent::SessionStarted { peer: p, .. } if p.as_str() == peer => {}
        other => panic!("expected SessionStarted with {peer}, got {other:?}"),
    }
}

/// Envelope length (SPEC.md §13) of a ratchet message with `p` bytes of content.
const fn ratchet_len(p: usize) -> usize {
    1 + 40 + p + 16
}

/// Envelope length (SPEC.md §13) of a prekey message with `p` bytes of content.
const fn prekey_len(p: usize, with_opk: bool) -> usize {
    1 + 64 + 64 + 32 + 4 + 1 + if with_opk { 4 } else { 0 } + 40 + p + 16
}

/// `envelope` with its bytes changed by `f`.
fn tampered(envelope: &Envelope, f: impl FnOnce(&mut Vec<u8>)) -> Envelope {
    let mut bytes = envelope.as_bytes().to_vec();
    f(&mut bytes);
    Envelope::new(bytes).unwrap()
}

/// A fetched bundle from an upload, with the one-time prekey at `opk_index` (or none).
fn bundle_from(upload: &UploadedBundle, opk_index: Option<usize>) -> FetchedBundle {
    FetchedBundle {
        identity: *upload.identity(),
        signed_prekey: *upload.signed_prekey(),
        one_time_prekey: opk_index.map(|i| upload.one_time_prekeys()[i]),
    }
}

/// `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One client of the world, with what the test keeps on the side.
struct Member {
    link: LinkId,
    client: Client,
    static_key: PrivateKey,
    /// The e2e identity key pair `Peers::generate` drew, for signing prekeys as this client would.
    identity: IdentityKeyPair,
    /// The e2e state as generated, before any upload or session: a backup of the client.
    backup: Option<Peers>,
}

/// A server and named clients from one seeded RNG, and a pump that runs frames to quiet.
struct World {
    rng: ChaCha20Rng,
    server: Server,
    members: BTreeMap<String, Member>,
    /// Every frame that crossed a link, either direction, in order: all a router sees.
    wire: Vec<Vec<u8>>,
    /// Every plaintext the server opened from a client's channel: all the server sees.
    server_view: Vec<Vec<u8>>,
    /// Every message a client sent, as the server opened it.
    client_messages: Vec<(Name, Message)>,
    /// Every event the server reported.
    server_events: Vec<ServerEvent>,
    /// A malicious server that opens each `E2eSend` and keeps it instead of relaying it.
    withhold_e2e: bool,
    withheld: Vec<Message>,
    /// A bundle-substituting man in the middle inside the server.
    mitm: Option<Mitm>,
}

impl World {
    /// A world whose clients all speak e2e, created in the order given.
    fn new(seed: u64, names: &[&str]) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let server = Server::new(PrivateKey::generate(&mut rng));
        let mut w = Self {
            rng,
            server,
            members: BTreeMap::new(),
            wire: Vec::new(),
            server_view: Vec::new(),
            client_messages: Vec::new(),
            server_events: Vec::new(),
            withhold_e2e: false,
            withheld: Vec::new(),
            mitm: None,
        };
        for who in names {
            w.add(who, true);
        }
        w
    }

    /// Adds a client: with an e2e identity from `Peers::generate`, or hop-only.
    fn add(&mut self, who: &str, e2e: bool) {
        let link = LinkId(self.members.len() as u64 + 1);
        let static_key = PrivateKey::generate(&mut self.rng);
        // `Peers::generate` draws the identity first (SPEC.md §10.1): replaying the RNG gives the
        // same key pair.
        let identity = IdentityKeyPair::generate(&mut self.rng.clone());
        let server_key = self.server.public_key();
        let (client, backup) = if e2e {
            let peers = Peers::generate(&mut self.rng);
            assert_eq!(peers.identity(), identity.public());
            let client = Client::with_e2e(name(who), static_key.clone(), server_key, peers.clone());
            (client, Some(peers))
        } else {
            (Client::new(name(who), static_key.clone(), server_key), None)
        };
        if e2e {
            IDENTITIES.with(|ids| ids.borrow_mut().insert(who.to_owned(), identity.public()));
        }
        let member = Member { link, client, static_key, identity, backup };
        self.members.insert(who.to_owned(), member);
    }

    fn client(&mut self, who: &str) -> &mut Client {
        &mut self.members.get_mut(who).unwrap().client
    }

    fn link(&self, who: &str) -> LinkId {
        self.members[who].link
    }

    fn identity(&self, who: &str) -> IdentityPublic {
        self.members[who].client.identity().unwrap()
    }

    fn backup(&self, who: &str) -> Peers {
        self.members[who].backup.clone().unwrap()
    }

    /// The bundle `who` uploads first: identity, signed prekey 1, one-time prekeys 2..=11.
    fn first_upload(&self, who: &str) -> UploadedBundle {
        self.backup(who).prepare_upload().unwrap()
    }

    /// Connects `who` and runs everything that follows (Ready, queued messages) to quiet.
    fn connect(&mut self, who: &str) -> Events {
        let link = self.link(who);
        let init = self.members.get_mut(who).unwrap().client.connect(&mut self.rng).unwrap();
        self.server_receives(link, &init)
    }

    /// `who`'s connection ends, on both sides.
    fn disconnect(&mut self, who: &str) {
        let link = self.link(who);
        self.client(who).disconnect();
        self.server.close_link(link);
    }

    /// `who` uploads its bundle; everything runs to quiet.
    fn upload(&mut self, who: &str) -> Events {
        let link = self.link(who);
        let frame = self.client(who).upload_bundle().unwrap();
        self.server_receives(link, &frame)
    }

    /// `who` rotates its signed prekey; nothing is sent.
    fn rotate(&mut self, who: &str) -> Result<Vec<u8>, Error> {
        let client = &mut self.members.get_mut(who).unwrap().client;
        client.rotate_signed_prekey(&mut self.rng)
    }

    /// Connects and uploads every client named.
    fn online_with_bundles(&mut self, names: &[&str]) {
        for who in names {
            assert_eq!(of(&self.connect(who), who), vec![ClientEvent::Connected]);
            let stored = ClientEvent::BundleStored {
                one_time_prekeys: u16::try_from(ONE_TIME_PREKEYS_PER_UPLOAD).unwrap(),
            };
            assert_eq!(of(&self.upload(who), who), vec![stored]);
        }
    }

    /// `from` calls `send_e2e`; nothing is delivered.
    fn send_e2e(&mut self, from: &str, to: &str, text: &str) -> ClientOutputs {
        let client = &mut self.members.get_mut(from).unwrap().client;
        client.send_e2e(&name(to), body(text), &mut self.rng).unwrap()
    }

    /// `from` sends `text` to `to` with `send_e2e`, and everything runs to quiet.
    fn send(&mut self, from: &str, to: &str, text: &str) -> Events {
        let out = self.send_e2e(from, to, text);
        let mut events: Events = out.events.into_iter().map(|e| (name(from), e)).collect();
        let link = self.link(from);
        for frame in out.transmit {
            events.extend(self.server_receives(link, &frame));
        }
        events
    }

    /// As [`World::send`], but the server keeps the `E2eSend`; returns its id and envelope.
    fn send_withheld(&mut self, from: &str, to: &str, text: &str) -> (MessageId, Envelope) {
        self.withhold_e2e = true;
        self.send(from, to, text);
        self.withhold_e2e = false;
        assert_eq!(self.withheld.len(), 1);
        match self.withheld.pop().unwrap() {
            Message::E2eSend { id, envelope, .. } => (id, envelope),
            other => panic!("withheld {other:?}"),
        }
    }

    /// `from` seals `text` for `to` with `seal_e2e`.
    fn seal(&mut self, from: &str, to: &str, text: &str) -> Envelope {
        let client = &mut self.members.get_mut(from).unwrap().client;
        client.seal_e2e(&name(to), &body(text), &mut self.rng).unwrap()
    }

    /// `from` submits a sealed envelope; everything runs to quiet.
    fn submit(&mut self, from: &str, to: &str, envelope: Envelope) -> (MessageId, Events) {
        let (id, frame) = self.client(from).submit_e2e(&name(to), envelope).unwrap();
        let link = self.link(from);
        (id, self.server_receives(link, &frame))
    }

    /// `who` handles one frame from the server (which must be accepted); nothing else runs.
    fn handle(&mut self, who: &str, frame: &[u8]) -> ClientOutputs {
        self.wire.push(frame.to_vec());
        let client = &mut self.members.get_mut(who).unwrap().client;
        client.handle(frame, &mut self.rng).unwrap()
    }

    /// The server receives `frame` on `link`; everything runs to quiet.
    fn server_receives(&mut self, link: LinkId, frame: &[u8]) -> Events {
        let out = self.server_takes(link, frame);
        self.deliver(out)
    }

    /// The server's half of one client frame: exactly `Server::handle` (for a transport frame,
    /// `open_transport` then `process`), with the malicious options in between.
    fn server_takes(&mut self, link: LinkId, frame: &[u8]) -> ServerOutputs {
        self.wire.push(frame.to_vec());
        let out = if LinkFrame::decode(frame).unwrap().kind() == LinkKind::Transport {
            let (from, plaintext) = self.server.open_transport(link, frame).unwrap();
            self.server_view.push(plaintext.clone());
            let message = Message::decode(&plaintext).unwrap();
            self.client_messages.push((from.clone(), message.clone()));
            if self.withhold_e2e && matches!(message, Message::E2eSend { .. }) {
                self.withheld.push(message);
                return ServerOutputs::default();
            }
            let plaintext = match &mut self.mitm {
                None => plaintext,
                Some(mitm) => {
                    match mitm
                        .intercept(&mut self.server, &from, &plaintext, &mut self.rng)
                        .unwrap()
                    {
                        Intercepted::PassThrough => plaintext,
                        Intercepted::Rewritten { plaintext, .. } => plaintext,
                        Intercepted::Reply { message, .. } => {
                            let reply = Mitm::reply(&mut self.server, link, &message).unwrap();
                            let transmit = vec![(link, reply)];
                            return ServerOutputs { transmit, ..Default::default() };
                        }
                    }
                }
            };
            self.server.process(link, plaintext)
        } else {
            self.server.handle(link, frame, &mut self.rng).unwrap()
        };
        self.server_events.extend(out.events.iter().cloned());
        out
    }

    /// Hands every server frame to its client and every client frame back to the server, until
    /// nothing is in flight; returns the clients' events in order.
    fn deliver(&mut self, out: ServerOutputs) -> Events {
        let mut events = Events::new();
        let mut in_flight: VecDeque<_> = out.transmit.into();
        // Bounded, so that a bug that makes frames beget frames fails instead of hanging.
        for pumped in 0.. {
            assert!(pumped < 10_000, "the network did not quiet down within 10000 frames");
            let Some((link, frame)) = in_flight.pop_front() else { break };
            self.wire.push(frame.clone());
            let member = self.members.values_mut().find(|m| m.link == link).unwrap();
            let out = member.client.handle(&frame, &mut self.rng).unwrap();
            let who = member.client.name().clone();
            events.extend(out.events.into_iter().map(|e| (who.clone(), e)));
            for reply in out.transmit {
                in_flight.extend(self.server_takes(link, &reply).transmit);
            }
        }
        events
    }

    /// The malicious server seals `message` on `who`'s channel; returns what `who` made of it.
    /// Frames the client answers with go to the server and run to quiet.
    fn inject(&mut self, who: &str, message: &Message) -> ClientOutputs {
        let link = self.link(who);
        let frame = self.server.seal_transport(link, message).unwrap();
        let out = self.handle(who, &frame);
        for reply in &out.transmit {
            self.server_receives(link, reply);
        }
        out
    }

    /// The malicious server seals `message` for `who`, which must report exactly
    /// `Dropped { expected }` and end up `==` to a twin that got a neutral frame instead.
    #[track_caller]
    fn assert_dropped(&mut self, who: &str, message: &Message, expected: Error) {
        let link = self.link(who);
        let neutral = Message::Ack { id: MessageId(u64::MAX), status: AckStatus::Relayed };
        let neutral = self.server.clone().seal_transport(link, &neutral).unwrap();
        let mut twin = self.members[who].client.clone();
        let out = self.inject(who, message);
        let dropped = ClientEvent::Dropped { error: expected };
        assert_eq!(out, ClientOutputs { transmit: vec![], events: vec![dropped] });
        let twin_out = twin.handle(&neutral, &mut ChaCha20Rng::seed_from_u64(0)).unwrap();
        assert!(matches!(twin_out.events[..], [ClientEvent::Acked { .. }]));
        assert!(self.members[who].client == twin, "refused content changed more than the channel");
    }

    /// The last `E2eSend` `from` sent, as the server opened it: its id and envelope.
    fn last_envelope(&self, from: &str) -> (MessageId, Envelope) {
        self.client_messages
            .iter()
            .rev()
            .find_map(|(n, m)| match m {
                Message::E2eSend { id, envelope, .. } if n.as_str() == from => {
                    Some((*id, envelope.clone()))
                }
                _ => None,
            })
            .unwrap()
    }

    /// The one-time prekey the server handed out with the last bundle `by` fetched.
    fn last_fetched_opk(&self, by: &str) -> Option<u32> {
        self.server_events
            .iter()
            .rev()
            .find_map(|e| match e {
                ServerEvent::BundleFetched { by: b, one_time_prekey, .. } if b.as_str() == by => {
                    Some(*one_time_prekey)
                }
                _ => None,
            })
            .unwrap()
    }
}

// ---- 1. the happy path ---------------------------------------------------------------------

#[test]
fn happy_path_both_ways_and_the_server_sees_only_envelopes() {
    let mut w = World::new(1, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    assert_eq!(w.server.one_time_prekeys(&name("bob")), ONE_TIME_PREKEYS_PER_UPLOAD);

    // First contact: FetchBundle → Bundle → SessionStarted + E2eSend → Bob.
    let first = "hello bob, this is alice";
    let events = w.send("alice", "bob", first);
    let at_alice = of(&events, "alice");
    assert_eq!(at_alice.len(), 3, "{at_alice:?}");
    started(&at_alice[0], "bob");
    let alice_number: SafetyNumber = w.client("alice").safety_number(&name("bob")).unwrap();
    assert_eq!(at_alice[1..], [sent("bob", 1), acked(1, AckStatus::Relayed)]);
    let at_bob = of(&events, "bob");
    assert_eq!(at_bob.len(), 2, "{at_bob:?}");
    started(&at_bob[0], "alice");
    let bob_number = w.client("bob").safety_number(&name("alice")).unwrap();
    assert_eq!(at_bob[1], received("alice", 1, first));
    assert_eq!(w.last_fetched_opk("alice"), Some(2));
    assert_eq!(
        w.client_messages[w.client_messages.len() - 2].1,
        Message::FetchBundle { name: name("bob") }
    );

    // Bob has the session: he replies at once, without a fetch.
    let reply = "hi alice, bob here";
    let events = w.send("bob", "alice", reply);
    assert_eq!(of(&events, "bob"), vec![sent("alice", 1), acked(1, AckStatus::Relayed)]);
    assert_eq!(of(&events, "alice"), vec![received("bob", 1, reply)]);

    // Many more, in bursts both ways.
    let mut texts = vec![first.to_owned(), reply.to_owned()];
    let mut next_id = BTreeMap::from([("alice", 2u64), ("bob", 2u64)]);
    let bursts =
        [("alice", "bob", 3), ("bob", "alice", 2), ("alice", "bob", 1), ("bob", "alice", 4)];
    for (round, (from, to, count)) in bursts.into_iter().cycle().take(12).enumerate() {
        for k in 0..count {
            let text = format!("{from} to {to}, round {round}, message {k}: the quick brown fox");
            let id = next_id[from];
            let events = w.send(from, to, &text);
            assert_eq!(of(&events, from), vec![sent(to, id), acked(id, AckStatus::Relayed)]);
            assert_eq!(of(&events, to), vec![received(from, id, &text)]);
            *next_id.get_mut(from).unwrap() += 1;
            texts.push(text);
        }
    }

    // Both sides show the same safety number: the one of the two real identities.
    let expected = SafetyNumber::new(
        (&w.identity("alice"), &name("alice")),
        (&w.identity("bob"), &name("bob")),
    );
    assert_eq!(alice_number, expected);
    assert_eq!(bob_number, expected);
    assert_eq!(w.client("alice").safety_number(&name("bob")), Some(expected.clone()));
    assert_eq!(w.client("bob").safety_number(&name("alice")), Some(expected));

    // The server handled envelopes only: one Envelope event per message, never a Read. Alice's
    // first message is a prekey message with a one-time prekey; once she has heard from Bob, and
    // from Bob always, ratchet messages (SPEC.md §11.3, §13).
    assert!(!w.server_events.iter().any(|e| matches!(e, ServerEvent::Read { .. })));
    let lens: Vec<usize> = w
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Envelope { len, .. } => Some(*len),
            _ => None,
        })
        .collect();
    let expected_lens: Vec<usize> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| if i == 0 { prekey_len(t.len(), true) } else { ratchet_len(t.len()) })
        .collect();
    assert_eq!(lens, expected_lens);

    // No plaintext on any link, nor in anything the server opened.
    for text in &texts {
        for frame in &w.wire {
            assert!(!contains(frame, text.as_bytes()), "{text:?} on a link");
        }
        for plaintext in &w.server_view {
            assert!(!contains(plaintext, text.as_bytes()), "the server read {text:?}");
        }
    }
}

// ---- 2. one-time prekeys -------------------------------------------------------------------

/// A client that speaks the channel by hand, to send what the real `Client` never would.
struct RawClient {
    link: LinkId,
    transport: Transport,
}

impl RawClient {
    fn connect(w: &mut World, link: LinkId, who: &str) -> Self {
        let initiator =
            Initiator::new(PROLOGUE, PrivateKey::generate(&mut w.rng), w.server.public_key());
        let register = Message::Register { name: name(who) }.encode();
        let (awaiting, m1) =
            initiator.write_message_1(PrivateKey::generate(&mut w.rng), &register).unwrap();
        let init = LinkFrame::handshake_init(m1).unwrap().encode();
        let out = w.server.handle(link, &init, &mut w.rng).unwrap();
        let resp = LinkFrame::decode(&out.transmit[0].1).unwrap();
        let (transport, payload) = awaiting.read_message_2(resp.noise()).unwrap();
        assert_eq!(Message::decode(&payload).unwrap(), Message::Welcome { name: name(who) });
        let mut raw = Self { link, transport };
        let out = raw.send(w, &Message::Ready);
        assert!(matches!(out.events[..], [ServerEvent::Online { .. }]));
        raw
    }

    fn send(&mut self, w: &mut World, message: &Message) -> ServerOutputs {
        let noise = self.transport.write(&message.encode()).unwrap();
        let frame = LinkFrame::transport(noise).unwrap().encode();
        let out = w.server.handle(self.link, &frame, &mut w.rng).unwrap();
        w.server_events.extend(out.events.iter().cloned());
        out
    }

    /// Sends `message` and returns the server's one answer, which must be to this client only.
    fn ask(&mut self, w: &mut World, message: &Message) -> Message {
        let out = self.send(w, message);
        assert_eq!(out.transmit.len(), 1);
        assert_eq!(out.transmit[0].0, self.link);
        let frame = LinkFrame::decode(&out.transmit[0].1).unwrap();
        Message::decode(&self.transport.read(frame.noise()).unwrap()).unwrap()
    }
}

#[test]
fn each_one_time_prekey_is_handed_out_once_oldest_first_then_none() {
    let mut w = World::new(2, &["bob", "alice", "carol", "dave"]);
    w.online_with_bundles(&["bob"]);
    let bob = name("bob");
    // A second upload re-sends the stored signed prekey (same id: allowed) and no one-time prekey.
    assert_eq!(
        of(&w.upload("bob"), "bob"),
        vec![ClientEvent::BundleStored { one_time_prekeys: 10 }]
    );

    // Alice, then (after Bob accepted Alice's prekey message) Carol: each gets her own prekey.
    for (who, opk) in [("alice", 2), ("carol", 3)] {
        w.connect(who);
        let before = w.server.one_time_prekeys(&bob);
        let events = w.send(who, "bob", "first contact");
        assert_eq!(w.last_fetched_opk(who), Some(opk));
        assert_eq!(w.server.one_time_prekeys(&bob), before - 1);
        let at_bob = of(&events, "bob");
        started(&at_bob[0], who);
        assert_eq!(at_bob[1..], [received(who, 1, "first contact")]);
    }
    // One requester gets one one-time prekey per upload of Bob's (id 4, the oldest left); asking
    // again gets the bundle without one, so one client cannot drain them (SPEC.md §15.2).
    let mut raw = RawClient::connect(&mut w, LinkId(9), "drain");
    let upload = w.first_upload("bob");
    let answer = raw.ask(&mut w, &Message::FetchBundle { name: bob.clone() });
    assert_eq!(
        answer,
        Message::Bundle { name: bob.clone(), bundle: bundle_from(&upload, Some(2)) }
    );
    assert_eq!(w.last_fetched_opk("drain"), Some(4));
    for _ in 0..3 {
        let answer = raw.ask(&mut w, &Message::FetchBundle { name: bob.clone() });
        assert_eq!(
            answer,
            Message::Bundle { name: bob.clone(), bundle: bundle_from(&upload, None) }
        );
        assert_eq!(w.last_fetched_opk("drain"), None);
        assert_eq!(w.server.one_time_prekeys(&bob), 7);
    }
    // The server itself hands out the rest (ids 5..=11, oldest first): no per-requester limit
    // binds a malicious server.
    for expected in &upload.one_time_prekeys()[3..] {
        let taken = w.server.take_bundle(&bob).unwrap();
        assert_eq!(taken.one_time_prekey, Some(*expected));
    }
    assert_eq!(w.server.one_time_prekeys(&bob), 0);

    // Out of one-time prekeys: Dave's bundle has none, and the session works both ways.
    w.connect("dave");
    let events = w.send("dave", "bob", "no prekey left");
    assert_eq!(w.last_fetched_opk("dave"), None);
    assert_eq!(w.last_envelope("dave").1.as_bytes().len(), prekey_len(14, false));
    assert_eq!(of(&events, "bob")[1], received("dave", 1, "no prekey left"));
    let events = w.send("bob", "dave", "still fine");
    assert_eq!(of(&events, "dave"), vec![received("bob", 1, "still fine")]);
    let events = w.send("dave", "bob", "and back");
    assert_eq!(of(&events, "bob"), vec![received("dave", 2, "and back")]);
    assert_eq!(w.last_envelope("dave").1.as_bytes().len(), ratchet_len(8));

    // Every one-time prekey the server answered a fetch with was handed out exactly once (the
    // rest left through `take_bundle`, which reports no event).
    let handed_out: Vec<u32> = w
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::BundleFetched { one_time_prekey, .. } => *one_time_prekey,
            _ => None,
        })
        .collect();
    assert_eq!(handed_out, [2, 3, 4]);
}

// ---- 3. replayed prekey messages ----------------------------------------------------------

/// Alice and Bob online with bundles, Alice's first message delivered; returns it. With `drain`,
/// the server first hands all of Bob's one-time prekeys to nobody, so the session has none.
fn first_contact(seed: u64, drain: bool) -> (World, Envelope) {
    let mut w = World::new(seed, &["alice", "bob", "carol"]);
    w.online_with_bundles(&["alice", "bob"]);
    if drain {
        for _ in 0..ONE_TIME_PREKEYS_PER_UPLOAD {
            w.server.take_bundle(&name("bob")).unwrap();
        }
        assert_eq!(w.server.one_time_prekeys(&name("bob")), 0);
    }
    let events = w.send("alice", "bob", "the first message");
    assert_eq!(of(&events, "bob")[1], received("alice", 1, "the first message"));
    let (_, first) = w.last_envelope("alice");
    assert_eq!(first.as_bytes().len(), prekey_len(17, !drain));
    (w, first)
}

/// Alice restored from a backup starts a session with Bob from a fresh bundle, and Bob accepts
/// its first message (delivered under hop id `id`): Bob's session with Alice is replaced.
fn replace_session(w: &mut World, restored: &mut Peers, id: u64) {
    let (alice, bob) = (name("alice"), name("bob"));
    let bundle = w.server.take_bundle(&bob).unwrap();
    restored.start_session(&alice, &bob, &bundle, &mut w.rng).unwrap();
    let envelope = restored.encrypt(&bob, &body("a new session"), &mut w.rng).unwrap();
    let out = w.inject("bob", &deliver(id, "alice", envelope));
    started(&out.events[0], "alice");
    assert_eq!(out.events[1..], [received("alice", id, "a new session")]);
}

/// The server delivers Alice's first message again under a fresh hop id, so only the e2e layer
/// can tell; `replacements` times, Alice restored from a backup starts a new session with Bob in
/// between. SPEC.md §11.3: the replay is refused by its own session's ratchet while Bob keeps the
/// session (current or archived), then by the retired base keys; and Bob's current session works.
fn replayed_first_message(seed: u64, drain: bool, replacements: usize) {
    assert!(replacements > 0);
    let (mut w, first) = first_contact(seed, drain);
    let replay = |id| deliver(id, "alice", first.clone());
    w.assert_dropped("bob", &replay(1000), ratchet(RatchetError::Replayed));
    // The next genuine message decrypts — under id 2, which also shows that 1000 was not recorded
    // (it would have pushed 2 out of the replay window).
    let events = w.send("alice", "bob", "the second message");
    assert_eq!(of(&events, "bob"), vec![received("alice", 2, "the second message")]);

    let mut restored = w.backup("alice");
    for k in 0..replacements {
        replace_session(&mut w, &mut restored, 1001 + k as u64);
        let expected = if k < MAX_ARCHIVED_SESSIONS {
            // Replaced but archived: still its own ratchet that refuses the replay.
            ratchet(RatchetError::Replayed)
        } else {
            // Out of the archive: its retired base key refuses it (rule 2).
            e2e(E2eError::ReplayedPrekeyMessage)
        };
        if k == 0 || k + 1 == replacements {
            w.assert_dropped("bob", &replay(1100 + k as u64), expected);
        }
    }
    // Bob's current session still works.
    let envelope = restored.encrypt(&name("bob"), &body("still here"), &mut w.rng).unwrap();
    let out = w.inject("bob", &deliver(1200, "alice", envelope));
    assert_eq!(out.events, vec![received("alice", 1200, "still here")]);
}

#[test]
fn replayed_prekey_message_with_one_time_prekey_is_dropped_and_bob_keeps_working() {
    replayed_first_message(30, false, 1);
}

#[test]
fn replayed_prekey_message_without_one_time_prekey_is_dropped_and_bob_keeps_working() {
    // Without a one-time prekey nothing but Bob's memory of the session refuses the replay: follow
    // it out of the archive to the retired base keys.
    replayed_first_message(31, true, MAX_ARCHIVED_SESSIONS + 1);
}

#[test]
fn bob_deletes_a_used_one_time_prekey() {
    let (mut w, _) = first_contact(32, false);
    let (bob, carol) = (name("bob"), name("carol"));
    let upload = w.first_upload("bob");
    assert_eq!(upload.one_time_prekeys()[0].id, 2, "Alice's session used prekey 2");
    // Carol builds a session on the same one-time prekey (a server that hands it out twice).
    let mut peers = w.backup("carol");
    peers.start_session(&carol, &bob, &bundle_from(&upload, Some(0)), &mut w.rng).unwrap();
    let envelope = peers.encrypt(&bob, &body("on a used prekey"), &mut w.rng).unwrap();
    w.assert_dropped("bob", &deliver(1, "carol", envelope), e2e(E2eError::UnknownPrekey { id: 2 }));
    // On a prekey Bob still holds (5: the server has handed out only 2), the same works.
    peers.start_session(&carol, &bob, &bundle_from(&upload, Some(3)), &mut w.rng).unwrap();
    let envelope = peers.encrypt(&bob, &body("on prekey 5"), &mut w.rng).unwrap();
    let out = w.inject("bob", &deliver(1, "carol", envelope));
    started(&out.events[0], "carol");
    assert_eq!(out.events[1..], [received("carol", 1, "on prekey 5")]);
}

// ---- 4. tampering --------------------------------------------------------------------------

#[test]
fn tampered_prekey_message_is_dropped_and_creates_nothing() {
    // Offsets in a prekey message with a one-time prekey (SPEC.md §13).
    const IK_DH: usize = 1;
    const IK_SIG: usize = 33;
    const ID_SIG: usize = 65;
    const EK: usize = 129;
    const SPK_ID: usize = 161;
    const HAS_OPK: usize = 165;
    const OPK_ID: usize = 166;
    const HEADER: usize = 170; // DHs (32) || PN (4) || N (4)
    const CT: usize = 210;

    let mut w = World::new(40, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    let (id, genuine) = w.send_withheld("alice", "bob", "the genuine first message");
    let len = genuine.as_bytes().len();
    assert_eq!(len, prekey_len(25, true));
    let failed = ratchet(RatchetError::DecryptFailed);
    let cases: Vec<(&str, Envelope, Error)> = vec![
        (
            "unknown kind",
            tampered(&genuine, |b| b[0] = 0x03),
            Error::Wire(WireError::InvalidValue { field: "envelope_kind" }),
        ),
        (
            "kind says ratchet message",
            tampered(&genuine, |b| b[0] = 0x02),
            e2e(E2eError::NoSession { name: name("alice") }),
        ),
        // The identity binding signature covers IK_A (SPEC.md §10.1, §11.2): a changed half of
        // IK_A, or a changed signature, is refused before any DH.
        (
            "IK_A, X25519 half",
            tampered(&genuine, |b| b[IK_DH + 5] ^= 0x01),
            e2e(E2eError::Bundle(BundleRefusal::BadSignature)),
        ),
        (
            "IK_A, Ed25519 half",
            tampered(&genuine, |b| b[IK_SIG + 5] ^= 0x01),
            e2e(E2eError::Bundle(BundleRefusal::BadSigningKey)),
        ),
        (
            "id_sig",
            tampered(&genuine, |b| b[ID_SIG + 5] ^= 0x01),
            e2e(E2eError::Bundle(BundleRefusal::BadSignature)),
        ),
        ("EK_A", tampered(&genuine, |b| b[EK + 7] ^= 0x40), failed.clone()),
        (
            "spk_id",
            tampered(&genuine, |b| b[SPK_ID] = 0x01),
            e2e(E2eError::UnknownPrekey { id: 0x0100_0001 }),
        ),
        (
            "has_opk 2",
            tampered(&genuine, |b| b[HAS_OPK] = 0x02),
            Error::Wire(WireError::InvalidValue { field: "has_opk" }),
        ),
        ("has_opk 0", tampered(&genuine, |b| b[HAS_OPK] = 0x00), failed.clone()),
        (
            "opk_id",
            tampered(&genuine, |b| b[OPK_ID + 3] ^= 0x10),
            e2e(E2eError::UnknownPrekey { id: 2 ^ 0x10 }),
        ),
        ("header DHs", tampered(&genuine, |b| b[HEADER + 3] ^= 0x01), failed.clone()),
        ("header PN", tampered(&genuine, |b| b[HEADER + 35] ^= 0x01), failed.clone()),
        ("header N = 5", tampered(&genuine, |b| b[HEADER + 39] = 5), failed.clone()),
        (
            "header N far ahead",
            tampered(&genuine, |b| b[HEADER + 37] = 0x10),
            ratchet(RatchetError::TooFarAhead { gap: 0x10_0000 }),
        ),
        ("ciphertext", tampered(&genuine, |b| b[CT + 2] ^= 0x80), failed.clone()),
        ("tag", tampered(&genuine, |b| b[len - 1] ^= 0x01), failed.clone()),
        ("one byte cut", tampered(&genuine, |b| b.truncate(len - 1)), failed.clone()),
        ("one byte added", tampered(&genuine, |b| b.push(0)), failed.clone()),
        (
            "ciphertext shorter than a tag",
            tampered(&genuine, |b| b.truncate(CT + 15)),
            Error::Wire(WireError::BadLength { field: "ciphertext", len: 15 }),
        ),
        (
            "cut in the header",
            tampered(&genuine, |b| b.truncate(HEADER + 10)),
            Error::Wire(WireError::Truncated),
        ),
        ("kind only", tampered(&genuine, |b| b.truncate(1)), Error::Wire(WireError::Truncated)),
    ];
    for (what, envelope, expected) in cases {
        eprintln!("case: {what}");
        // Tampered in place: under the genuine message's hop id.
        w.assert_dropped("bob", &deliver(id.0, "alice", envelope), expected);
    }
    // The genuine message relabelled as Carol's: the names are in AD (SPEC.md §11.1).
    w.assert_dropped("bob", &deliver(id.0, "carol", genuine.clone()), failed);
    assert_eq!(w.client("bob").safety_number(&name("alice")), None, "no session was made");
    // The genuine message, under the same hop id (no refusal recorded it), still opens: no
    // forgery burned the one-time prekey it uses.
    let out = w.inject("bob", &deliver(id.0, "alice", genuine));
    started(&out.events[0], "alice");
    assert_eq!(out.events[1..], [received("alice", id.0, "the genuine first message")]);
}

/// Alice and Bob with a confirmed session (Alice has heard back), Carol online; Alice's next
/// message, `text`, is kept by the server.
fn withheld_ratchet_message(seed: u64, text: &str) -> (World, MessageId, Envelope) {
    let mut w = World::new(seed, &["alice", "bob", "carol"]);
    w.online_with_bundles(&["alice", "bob", "carol"]);
    w.send("alice", "bob", "hello");
    w.send("bob", "alice", "hello yourself");
    let (id, envelope) = w.send_withheld("alice", "bob", text);
    assert_eq!(envelope.as_bytes().len(), ratchet_len(text.len()));
    (w, id, envelope)
}

#[test]
fn tampered_ratchet_message_is_dropped_and_the_session_is_unchanged() {
    let text = "a ratchet message of some length";
    let (mut w, id, genuine) = withheld_ratchet_message(41, text);
    let len = genuine.as_bytes().len();
    let failed = ratchet(RatchetError::DecryptFailed);
    let cases: Vec<(&str, Envelope, Error)> = vec![
        (
            "kind 0",
            tampered(&genuine, |b| b[0] = 0x00),
            Error::Wire(WireError::InvalidValue { field: "envelope_kind" }),
        ),
        (
            "kind says prekey message",
            tampered(&genuine, |b| b[0] = 0x01),
            Error::Wire(WireError::Truncated),
        ),
        ("header DHs", tampered(&genuine, |b| b[1] ^= 0x02), failed.clone()),
        ("header PN", tampered(&genuine, |b| b[33 + 3] ^= 0x01), failed.clone()),
        ("header N + 1", tampered(&genuine, |b| b[37 + 3] ^= 0x01), failed.clone()),
        (
            "header N far ahead",
            tampered(&genuine, |b| b[37 + 1] = 0x01),
            ratchet(RatchetError::TooFarAhead { gap: 0x1_0000 }),
        ),
        ("ciphertext", tampered(&genuine, |b| b[41] ^= 0x01), failed.clone()),
        ("tag", tampered(&genuine, |b| b[len - 16] ^= 0x01), failed.clone()),
        ("cut", tampered(&genuine, |b| b.truncate(len - 3)), failed.clone()),
        (
            "ciphertext shorter than a tag",
            tampered(&genuine, |b| b.truncate(41 + 15)),
            Error::Wire(WireError::BadLength { field: "ciphertext", len: 15 }),
        ),
        (
            "cut in the header",
            tampered(&genuine, |b| b.truncate(20)),
            Error::Wire(WireError::Truncated),
        ),
        ("trailing bytes", tampered(&genuine, |b| b.extend([1, 2, 3])), failed.clone()),
    ];
    for (what, envelope, expected) in cases {
        eprintln!("case: {what}");
        w.assert_dropped("bob", &deliver(id.0, "alice", envelope), expected);
    }
    // The genuine envelope under an id Bob already accepted from Alice: e2e ids are the server's
    // labels, not checked (SPEC.md §15.3), so it decrypts; the ratchet then refuses it again.
    let out = w.inject("bob", &deliver(1, "alice", genuine.clone()));
    assert_eq!(out.events, vec![received("alice", 1, text)]);
    w.assert_dropped("bob", &deliver(id.0 + 10, "alice", genuine), ratchet(RatchetError::Replayed));
    let events = w.send("bob", "alice", "all good");
    assert_eq!(of(&events, "alice"), vec![received("bob", 2, "all good")]);
}

#[test]
fn ratchet_message_from_a_peer_without_a_session_or_under_another_name() {
    let (mut w, id, genuine) = withheld_ratchet_message(42, "for bob, from alice");
    w.assert_dropped(
        "bob",
        &deliver(id.0, "carol", genuine.clone()),
        e2e(E2eError::NoSession { name: name("carol") }),
    );
    // Once Bob has a session with Carol, Alice's envelope labelled as Carol's does not open in it.
    let events = w.send("carol", "bob", "carol's own");
    assert_eq!(of(&events, "bob")[1], received("carol", 1, "carol's own"));
    w.assert_dropped(
        "bob",
        &deliver(id.0, "carol", genuine.clone()),
        ratchet(RatchetError::DecryptFailed),
    );
    let out = w.inject("bob", &deliver(id.0, "alice", genuine));
    assert_eq!(out.events, vec![received("alice", id.0, "for bob, from alice")]);
}

// ---- 5. uploads the server refuses ---------------------------------------------------------

/// `n` one-time prekeys with ids `first..first + n` and fresh keys.
fn one_time_keys(rng: &mut ChaCha20Rng, first: u32, n: u32) -> Vec<OneTimePrekeyPublic> {
    (first..first + n)
        .map(|id| OneTimePrekeyPublic { id, key: PrivateKey::generate(rng).public_key() })
        .collect()
}

fn upload(
    identity: IdentityPublic,
    spk: SignedPrekeyPublic,
    one_time: Vec<OneTimePrekeyPublic>,
) -> UploadedBundle {
    UploadedBundle::new(identity, spk, one_time).unwrap()
}

#[test]
fn server_refuses_bad_uploads_with_typed_reasons_and_keeps_the_directory() {
    use BundleRefusal::{
        BadSignature, BadSigningKey, DuplicatePrekeyId, LowOrderKey, TooManyPrekeys,
    };
    let mut w = World::new(50, &[]);
    let dave = name("dave");
    let mut raw = RawClient::connect(&mut w, LinkId(1), "dave");
    let identity = IdentityKeyPair::generate(&mut w.rng);
    let ik = identity.public();
    let spk = identity.sign_prekey(1, PrivateKey::generate(&mut w.rng).public_key());
    let opks = one_time_keys(&mut w.rng, 2, 10);
    let first = Message::UploadBundle { bundle: upload(ik, spk, opks.clone()) };
    assert_eq!(raw.ask(&mut w, &first), Message::BundleStored { one_time_prekeys: 10 });
    assert_eq!(
        w.server_events.last(),
        Some(&ServerEvent::BundleStored { name: dave.clone(), one_time_prekeys: 10 })
    );
    let stored = FetchedBundle { identity: ik, signed_prekey: spk, one_time_prekey: Some(opks[0]) };

    let low_order = PublicKey::from_bytes([0; 32]);
    let mut flipped = *spk.signature.as_bytes();
    flipped[0] ^= 0x01;
    let other = IdentityKeyPair::generate(&mut w.rng);
    let other_spk = other.sign_prekey(1, PrivateKey::generate(&mut w.rng).public_key());
    // The Ed25519 neutral point (0, 1): a valid encoding of a point of small order.
    let mut small_order = [0u8; 32];
    small_order[0] = 1;
    // y = 2 is the y-coordinate of no curve point.
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2;
    let rotated = identity.sign_prekey(12, PrivateKey::generate(&mut w.rng).public_key());
    let fresh = one_time_keys(&mut w.rng, 12, 3);
    let mut with_low_order = fresh.clone();
    with_low_order[2].key = low_order;
    let mut twice = fresh.clone();
    twice[2].id = 12;
    let with = |sign: [u8; 32]| IdentityPublic { sign: VerifyingKey::from_bytes(sign), ..ik };
    let cases: Vec<(&str, UploadedBundle, BundleRefusal)> = vec![
        (
            "signature bit flipped",
            upload(
                ik,
                SignedPrekeyPublic { signature: Signature::from_bytes(flipped), ..spk },
                fresh.clone(),
            ),
            BadSignature,
        ),
        (
            "signed by another identity",
            upload(ik, other.sign_prekey(1, spk.key), fresh),
            BadSignature,
        ),
        (
            "signature over another IK_dh",
            upload(IdentityPublic { dh: other.public().dh, ..ik }, spk, vec![]),
            BadSignature,
        ),
        ("low-order one-time prekey", upload(ik, spk, with_low_order), LowOrderKey),
        (
            "low-order signed prekey, validly signed",
            upload(ik, identity.sign_prekey(12, low_order), vec![]),
            LowOrderKey,
        ),
        (
            "low-order IK_dh",
            upload(IdentityPublic { dh: low_order, ..ik }, spk, vec![]),
            LowOrderKey,
        ),
        ("small-order IK_sig", upload(with(small_order), spk, vec![]), BadSigningKey),
        ("IK_sig not a curve point", upload(with(off_curve), spk, vec![]), BadSigningKey),
        (
            "101 one-time prekeys (new identity: nothing stored counts)",
            upload(other.public(), other_spk, one_time_keys(&mut w.rng, 2, 101)),
            TooManyPrekeys,
        ),
        (
            "91 more on top of 10 stored",
            upload(ik, spk, one_time_keys(&mut w.rng, 12, 91)),
            TooManyPrekeys,
        ),
        ("an id twice in the upload", upload(ik, spk, twice), DuplicatePrekeyId),
        (
            "a one-time id equal to the uploaded spk_id",
            upload(ik, rotated, one_time_keys(&mut w.rng, 12, 1)),
            DuplicatePrekeyId,
        ),
        (
            "a one-time id the server still stores",
            upload(ik, spk, one_time_keys(&mut w.rng, 5, 1)),
            DuplicatePrekeyId,
        ),
        (
            "the stored spk_id as a one-time id",
            upload(ik, rotated, one_time_keys(&mut w.rng, 1, 1)),
            DuplicatePrekeyId,
        ),
    ];
    for (what, bundle, reason) in cases {
        eprintln!("case: {what}");
        let answer = raw.ask(&mut w, &Message::UploadBundle { bundle });
        assert_eq!(answer, Message::BundleRefused { reason });
        assert_eq!(
            w.server_events.last(),
            Some(&ServerEvent::BundleRefused { name: dave.clone(), reason })
        );
        assert_eq!(w.server.one_time_prekeys(&dave), 10);
        assert_eq!(w.server.clone().take_bundle(&dave), Some(stored));
    }

    // The boundaries that pass. Same identity: the stored spk_id is re-sent, and 10 stored + 90
    // new is exactly the limit; the oldest one-time prekey is still handed out first.
    let more = Message::UploadBundle { bundle: upload(ik, spk, one_time_keys(&mut w.rng, 12, 90)) };
    assert_eq!(raw.ask(&mut w, &more), Message::BundleStored { one_time_prekeys: 100 });
    assert_eq!(w.server.clone().take_bundle(&dave), Some(stored));
    // A new identity replaces the record and drops the old one-time prekeys, so their ids may
    // come again.
    let replacement = one_time_keys(&mut w.rng, 2, 100);
    let new =
        Message::UploadBundle { bundle: upload(other.public(), other_spk, replacement.clone()) };
    assert_eq!(raw.ask(&mut w, &new), Message::BundleStored { one_time_prekeys: 100 });
    let expected = FetchedBundle {
        identity: other.public(),
        signed_prekey: other_spk,
        one_time_prekey: Some(replacement[0]),
    };
    assert_eq!(w.server.take_bundle(&dave), Some(expected));
}

#[test]
fn a_client_restored_from_a_backup_has_its_reupload_refused() {
    // Bob restores his e2e state from before his first upload and uploads it again: the same
    // one-time prekey ids, which the server still stores (SPEC.md §10.3 step 5).
    let mut w = World::new(51, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    w.disconnect("bob");
    let member = w.members.get_mut("bob").unwrap();
    member.client = Client::with_e2e(
        name("bob"),
        member.static_key.clone(),
        w.server.public_key(),
        member.backup.clone().unwrap(),
    );
    assert_eq!(of(&w.connect("bob"), "bob"), vec![ClientEvent::Connected]);
    assert_eq!(
        of(&w.upload("bob"), "bob"),
        vec![ClientEvent::BundleRefused(BundleRefusal::DuplicatePrekeyId)]
    );
    assert_eq!(w.server.one_time_prekeys(&name("bob")), 10);
    // The refused keys count as uploaded (SPEC.md §15.3): the next upload carries none.
    assert_eq!(
        of(&w.upload("bob"), "bob"),
        vec![ClientEvent::BundleStored { one_time_prekeys: 10 }]
    );
    // The restored Bob holds the same private prekeys, so the stored bundle still works.
    let events = w.send("alice", "bob", "to the restored bob");
    assert_eq!(of(&events, "bob")[1], received("alice", 1, "to the restored bob"));
}

// ---- 6. bundles the client refuses ---------------------------------------------------------

#[test]
fn alice_refuses_a_bad_bundle_sends_nothing_and_starts_no_session() {
    let mut w = World::new(60, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    let bob = name("bob");
    let bob_keys = w.members["bob"].identity.clone();
    let low_order = PublicKey::from_bytes([0; 32]);
    let mut small_order = [0u8; 32];
    small_order[0] = 1;
    type Mutation = Box<dyn Fn(&mut FetchedBundle)>;
    let cases: Vec<(&str, Mutation, BundleRefusal)> = vec![
        (
            "signature bit flipped",
            Box::new(|b| {
                let mut sig = *b.signed_prekey.signature.as_bytes();
                sig[63] ^= 0x01;
                b.signed_prekey.signature = Signature::from_bytes(sig);
            }),
            BundleRefusal::BadSignature,
        ),
        (
            "SPK swapped, signature kept",
            Box::new(|b| b.signed_prekey.key = b.one_time_prekey.unwrap().key),
            BundleRefusal::BadSignature,
        ),
        (
            "low-order SPK, validly signed by Bob",
            Box::new(move |b| {
                b.signed_prekey = bob_keys.sign_prekey(b.signed_prekey.id, low_order)
            }),
            BundleRefusal::LowOrderKey,
        ),
        (
            "low-order one-time prekey",
            Box::new(move |b| b.one_time_prekey.as_mut().unwrap().key = low_order),
            BundleRefusal::LowOrderKey,
        ),
        (
            "low-order IK_dh",
            Box::new(move |b| b.identity.dh = low_order),
            BundleRefusal::LowOrderKey,
        ),
        (
            "small-order IK_sig",
            Box::new(move |b| b.identity.sign = VerifyingKey::from_bytes(small_order)),
            BundleRefusal::BadSigningKey,
        ),
    ];
    let alice_link = w.link("alice");
    for (i, (what, mutate, reason)) in cases.into_iter().enumerate() {
        eprintln!("case: {what}");
        // 1 to 3 messages wait for the bundle; only the first asks for it.
        let waiting = i % 3 + 1;
        let mut fetch = Vec::new();
        for k in 0..waiting {
            let out = w.send_e2e("alice", "bob", &format!("waiting {k}"));
            assert!(out.events.is_empty());
            if k == 0 {
                assert_eq!(out.transmit.len(), 1);
                fetch = out.transmit[0].clone();
            } else {
                assert!(out.transmit.is_empty(), "FetchBundle is sent once");
            }
        }
        let (_, plaintext) = w.server.open_transport(alice_link, &fetch).unwrap();
        assert_eq!(
            Message::decode(&plaintext).unwrap(),
            Message::FetchBundle { name: bob.clone() }
        );
        let mut bundle = w.server.take_bundle(&bob).unwrap();
        mutate(&mut bundle);
        let out = w.inject("alice", &Message::Bundle { name: bob.clone(), bundle });
        let failed = ClientEvent::SendFailed {
            peer: bob.clone(),
            error: E2eError::Bundle(reason),
            discarded: waiting,
        };
        assert_eq!(out, ClientOutputs { transmit: vec![], events: vec![failed] });
        assert_eq!(w.client("alice").safety_number(&bob), None);
    }
    // Nothing was encrypted: with an honest bundle the first message out is Alice's id 1. (The
    // server took a one-time prekey per case: Bob, told they run low, replenishes meanwhile.)
    let events = w.send("alice", "bob", "with a good bundle");
    let at_bob = of(&events, "bob");
    assert!(at_bob.contains(&ClientEvent::PrekeysReplenished { made: 10 }), "{at_bob:?}");
    assert!(at_bob.contains(&received("alice", 1, "with a good bundle")), "{at_bob:?}");
}

// ---- 7. verified identities ----------------------------------------------------------------

fn mitm_world(seed: u64) -> World {
    let mut w = World::new(seed, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    w.mitm = Some(Mitm::new(&name("alice"), &name("bob"), &mut w.rng).unwrap());
    w
}

fn identity_mismatch(peer: &str, discarded: usize) -> ClientEvent {
    ClientEvent::SendFailed {
        peer: name(peer),
        error: E2eError::IdentityMismatch { name: name(peer) },
        discarded,
    }
}

#[test]
fn a_pinned_identity_stops_a_substituted_bundle_before_anything_is_encrypted() {
    let mut w = mitm_world(70);
    let bob_identity = w.identity("bob");
    w.client("alice").verify_peer(name("bob"), bob_identity).unwrap();
    let sent_before = w.client_messages.len();
    let events = w.send("alice", "bob", "for bob's eyes only");
    assert_eq!(events, vec![(name("alice"), identity_mismatch("bob", 1))]);
    // All Alice sent was the FetchBundle: no E2eSend, no envelope for the server to open.
    assert_eq!(
        w.client_messages[sent_before..],
        [(name("alice"), Message::FetchBundle { name: name("bob") })]
    );
    assert!(!w.server_events.iter().any(|e| matches!(e, ServerEvent::Envelope { .. })));
    assert_eq!(w.client("alice").safety_number(&name("bob")), None);
    // With the honest server, the same pin lets the real bundle through.
    w.mitm = None;
    let events = w.send("alice", "bob", "for bob's eyes only");
    assert_eq!(of(&events, "bob")[1], received("alice", 1, "for bob's eyes only"));
}

#[test]
fn an_unverified_substitution_shows_in_the_safety_numbers_and_verifying_ends_it() {
    let mut w = mitm_world(71);
    let mut shown = Vec::new();
    for (from, to, id) in [("alice", "bob", 1), ("bob", "alice", 1), ("alice", "bob", 2)] {
        let text = format!("{from} to {to}, {id}");
        let events = w.send(from, to, &text);
        // Received, and authenticated as the identity the server substituted, not the real one:
        // the event says which identity the session holds.
        let forged = w.mitm.as_ref().unwrap().forged_identity(&name(from)).unwrap();
        let expected = ClientEvent::Received {
            from: name(from),
            id: MessageId(id),
            body: body(&text),
            protection: Protection::E2e { identity: forged },
        };
        assert!(of(&events, to).contains(&expected), "{events:?}");
        let started: Vec<_> = events
            .into_iter()
            .filter_map(|(who, e)| match e {
                ClientEvent::SessionStarted { peer, .. } => Some((who, peer)),
                _ => None,
            })
            .collect();
        // What each side would show when its user opens the session's safety number.
        for (who, peer) in started {
            let number = w.client(who.as_str()).safety_number(&peer).unwrap();
            shown.push((who, number));
        }
    }
    let mitm = w.mitm.as_ref().unwrap();
    let forged_bob = mitm.forged_identity(&name("bob")).unwrap();
    let forged_alice = mitm.forged_identity(&name("alice")).unwrap();
    let [(a, alice_sees), (b, bob_sees)] = <[_; 2]>::try_from(shown).unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("alice", "bob"));
    assert_ne!(alice_sees, bob_sees, "comparing safety numbers exposes the man in the middle");
    let (alice, bob) = (w.identity("alice"), w.identity("bob"));
    assert_eq!(
        alice_sees,
        SafetyNumber::new((&alice, &name("alice")), (&forged_bob, &name("bob")))
    );
    assert_eq!(bob_sees, SafetyNumber::new((&forged_alice, &name("alice")), (&bob, &name("bob"))));

    // They compare, and Alice verifies Bob's real identity: her session with the forged one is
    // deleted (SPEC.md §14.2), and the next substituted bundle is refused.
    w.client("alice").verify_peer(name("bob"), bob).unwrap();
    assert_eq!(w.client("alice").safety_number(&name("bob")), None);
    let before = w.client_messages.len();
    let events = w.send("alice", "bob", "are you there?");
    assert_eq!(events, vec![(name("alice"), identity_mismatch("bob", 1))]);
    assert_eq!(
        w.client_messages[before..],
        [(name("alice"), Message::FetchBundle { name: name("bob") })]
    );
}

#[test]
fn a_pinned_identity_refuses_a_prekey_message_from_another_identity() {
    let mut w = mitm_world(72);
    let alice_identity = w.identity("alice");
    w.client("bob").verify_peer(name("alice"), alice_identity).unwrap();
    // Alice, not verifying, is fooled; the server re-encrypts her message under its forged
    // "alice" identity, and Bob refuses it.
    let events = w.send("alice", "bob", "through the middle");
    let mismatch = e2e(E2eError::IdentityMismatch { name: name("alice") });
    assert_eq!(of(&events, "bob"), vec![ClientEvent::Dropped { error: mismatch.clone() }]);
    assert_eq!(w.client("bob").safety_number(&name("alice")), None);
    // The same, forged by hand from another identity on Bob's one-time prekey 2 (the one the
    // server's forged session used): Bob changes nothing but his channel.
    let (alice, bob) = (name("alice"), name("bob"));
    let bob_upload = w.first_upload("bob");
    let mut impostor = Peers::generate(&mut w.rng);
    impostor.start_session(&alice, &bob, &bundle_from(&bob_upload, Some(0)), &mut w.rng).unwrap();
    let envelope = impostor.encrypt(&bob, &body("it's me"), &mut w.rng).unwrap();
    w.assert_dropped("bob", &deliver(500, "alice", envelope), mismatch);
    // No key was touched: the real Alice's session on that same one-time prekey is accepted.
    let mut real = w.backup("alice");
    real.start_session(&alice, &bob, &bundle_from(&bob_upload, Some(0)), &mut w.rng).unwrap();
    let envelope = real.encrypt(&bob, &body("really me"), &mut w.rng).unwrap();
    let out = w.inject("bob", &deliver(501, "alice", envelope));
    started(&out.events[0], "alice");
    assert_eq!(out.events[1..], [received("alice", 501, "really me")]);
}

// ---- 8. offline delivery -------------------------------------------------------------------

#[test]
fn e2e_messages_for_an_offline_recipient_queue_and_decrypt_in_order() {
    let mut w = World::new(80, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    w.disconnect("bob");
    // Three messages wait for the bundle (one FetchBundle), two more follow.
    let first = w.send_e2e("alice", "bob", "one");
    for text in ["two", "three"] {
        assert_eq!(w.send_e2e("alice", "bob", text), ClientOutputs::default());
    }
    let alice_link = w.link("alice");
    let events = of(&w.server_receives(alice_link, &first.transmit[0]), "alice");
    started(&events[0], "bob");
    assert_eq!(
        events[1..],
        [
            sent("bob", 1),
            sent("bob", 2),
            sent("bob", 3),
            acked(1, AckStatus::Queued),
            acked(2, AckStatus::Queued),
            acked(3, AckStatus::Queued),
        ]
    );
    for (id, text) in [(4, "four"), (5, "five")] {
        let events = w.send("alice", "bob", text);
        assert_eq!(of(&events, "alice"), vec![sent("bob", id), acked(id, AckStatus::Queued)]);
    }
    let bob = name("bob");
    assert_eq!(w.server.queued(&bob), 5);
    let events = of(&w.connect("bob"), "bob");
    assert_eq!(events[0], ClientEvent::Connected);
    started(&events[1], "alice");
    assert_eq!(
        events[2..],
        [
            received("alice", 1, "one"),
            received("alice", 2, "two"),
            received("alice", 3, "three"),
            received("alice", 4, "four"),
            received("alice", 5, "five"),
        ]
    );
    assert_eq!(w.server.queued(&bob), 0);

    // Later, with the session confirmed, ratchet messages queue the same way.
    w.send("bob", "alice", "back online");
    w.disconnect("bob");
    for text in ["six", "seven", "eight"] {
        w.send("alice", "bob", text);
        assert_eq!(w.last_envelope("alice").1.as_bytes().len(), ratchet_len(text.len()));
    }
    assert_eq!(
        of(&w.connect("bob"), "bob"),
        vec![
            ClientEvent::Connected,
            received("alice", 6, "six"),
            received("alice", 7, "seven"),
            received("alice", 8, "eight"),
        ]
    );
}

// ---- 9. no bundle, the pending bound, misuse -----------------------------------------------

#[test]
fn sending_to_a_name_without_a_bundle_fails_every_waiting_message() {
    let mut w = World::new(90, &["alice", "dave"]);
    w.online_with_bundles(&["alice"]);
    w.connect("dave"); // registered, never uploads
    let alice_link = w.link("alice");
    for (who, waiting) in [("dave", 2), ("nobody", 1)] {
        let first = w.send_e2e("alice", who, "hello?");
        for _ in 1..waiting {
            assert_eq!(w.send_e2e("alice", who, "anyone?"), ClientOutputs::default());
        }
        let events = w.server_receives(alice_link, &first.transmit[0]);
        let failed = ClientEvent::SendFailed {
            peer: name(who),
            error: E2eError::NoBundle { name: name(who) },
            discarded: waiting,
        };
        assert_eq!(events, vec![(name("alice"), failed)]);
        assert_eq!(
            w.server_events.last(),
            Some(&ServerEvent::NoBundle { by: name("alice"), name: name(who) })
        );
    }
    assert!(!w.client_messages.iter().any(|(_, m)| matches!(m, Message::E2eSend { .. })));
    // Once Dave publishes, a new send starts over with a fetch, and works.
    w.upload("dave");
    let events = w.send("alice", "dave", "there you are");
    assert_eq!(of(&events, "dave")[1], received("alice", 1, "there you are"));
}

#[test]
fn at_most_max_pending_messages_wait_for_a_bundle() {
    let mut w = World::new(91, &["alice", "bob", "carol"]);
    w.online_with_bundles(&["alice", "carol"]);
    let fetch = w.send_e2e("alice", "carol", "queued 0").transmit.remove(0);
    for k in 1..MAX_PENDING {
        assert_eq!(w.send_e2e("alice", "carol", &format!("queued {k}")), ClientOutputs::default());
    }
    let before = w.client("alice").clone();
    let mut rng = w.rng.clone();
    assert_eq!(
        w.client("alice").send_e2e(&name("carol"), body("one too many"), &mut rng),
        Err(Error::Misuse(MisuseError::PendingFull))
    );
    assert!(*w.client("alice") == before, "a refused send changed the client");
    // The bound is per peer: a message for Bob may still wait (tried on a copy).
    let for_bob = before.clone().send_e2e(&name("bob"), body("for bob"), &mut rng).unwrap();
    assert_eq!(for_bob.transmit.len(), 1);
    // Carol's bundle arrives: all sixteen go out in order and decrypt in order.
    let alice_link = w.link("alice");
    let events = w.server_receives(alice_link, &fetch);
    let at_carol = of(&events, "carol");
    started(&at_carol[0], "alice");
    let expected: Vec<ClientEvent> =
        (0..MAX_PENDING).map(|k| received("alice", k as u64 + 1, &format!("queued {k}"))).collect();
    assert_eq!(at_carol[1..], expected[..]);
}

#[test]
fn a_hop_only_client_refuses_the_e2e_api_and_e2e_content() {
    let mut w = World::new(92, &["alice"]);
    w.add("hop", false);
    w.online_with_bundles(&["alice"]);
    w.connect("hop");
    let alice = name("alice");
    let alice_identity = w.identity("alice");
    let mut rng = w.rng.clone();
    let hop = w.client("hop");
    let before = hop.clone();
    let misuse = Error::Misuse(MisuseError::NoE2eIdentity);
    assert_eq!(hop.upload_bundle(), Err(misuse.clone()));
    assert_eq!(hop.send_e2e(&alice, body("x"), &mut rng), Err(misuse.clone()));
    assert_eq!(hop.seal_e2e(&alice, &body("x"), &mut rng), Err(misuse.clone()));
    assert_eq!(hop.verify_peer(alice.clone(), alice_identity), Err(misuse.clone()));
    assert_eq!(hop.identity(), None);
    assert_eq!(hop.safety_number(&alice), None);
    assert!(*hop == before);
    // An envelope for it is dropped with the same error, and its hop id is not recorded.
    let envelope = Envelope::new(vec![0x02; 60]).unwrap();
    w.assert_dropped("hop", &deliver(7, "alice", envelope), misuse);
    let plain = Message::Deliver { id: MessageId(7), from: alice, body: body("plain") };
    assert_eq!(w.inject("hop", &plain).events, vec![received_hop("alice", 7, "plain")]);
}

#[test]
fn e2e_calls_while_offline_fail_and_change_nothing() {
    let mut w = World::new(93, &["alice", "bob", "carol"]);
    w.online_with_bundles(&["alice", "bob"]);
    w.send("alice", "bob", "before");
    w.send("bob", "alice", "reply");
    w.disconnect("alice");
    let mut rng = w.rng.clone();
    let alice = w.client("alice");
    let before = alice.clone();
    let offline = Err(Error::Misuse(MisuseError::NotConnected));
    // With a session (the ratchet must not advance) and without one (nothing may be queued).
    assert_eq!(alice.send_e2e(&name("bob"), body("x"), &mut rng).map(|_| ()), offline);
    assert_eq!(alice.send_e2e(&name("carol"), body("x"), &mut rng).map(|_| ()), offline);
    assert_eq!(alice.upload_bundle().map(|_| ()), offline);
    assert!(*alice == before);
    // Sealing needs no channel; submitting does, and fails without taking an id.
    let envelope = alice.seal_e2e(&name("bob"), &body("sealed offline"), &mut rng).unwrap();
    let sealed = alice.clone();
    assert_eq!(alice.submit_e2e(&name("bob"), envelope.clone()).map(|_| ()), offline);
    assert!(*alice == sealed);
    w.connect("alice");
    let (id, events) = w.submit("alice", "bob", envelope);
    assert_eq!(id, MessageId(2));
    assert_eq!(of(&events, "bob"), vec![received("alice", 2, "sealed offline")]);
}

// ---- 10. out of order at the roles level ---------------------------------------------------

#[test]
fn envelopes_sealed_in_order_and_submitted_in_reverse_all_decrypt() {
    let mut w = World::new(100, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    w.send("alice", "bob", "zero");
    // Before Bob has answered: prekey messages of one session, the later one first.
    let sealed: Vec<_> =
        ["first", "second"].map(|text| (text, w.seal("alice", "bob", text))).into();
    let mut ids = Vec::new();
    for (text, envelope) in sealed.into_iter().rev() {
        assert_eq!(envelope.as_bytes().len(), prekey_len(text.len(), true));
        let (id, events) = w.submit("alice", "bob", envelope);
        assert_eq!(of(&events, "bob"), vec![received("alice", id.0, text)]);
        ids.push(id);
    }
    assert_eq!(ids, [MessageId(2), MessageId(3)]);
    // After Bob's reply: ratchet messages of a new chain, submitted 3rd, 1st, 2nd.
    w.send("bob", "alice", "got them");
    let sealed = ["third", "fourth", "fifth"].map(|text| (text, w.seal("alice", "bob", text)));
    for i in [2, 0, 1] {
        let (text, envelope) = sealed[i].clone();
        assert_eq!(envelope.as_bytes().len(), ratchet_len(text.len()));
        let (id, events) = w.submit("alice", "bob", envelope);
        assert_eq!(of(&events, "bob"), vec![received("alice", id.0, text)]);
    }
}

// ---- simultaneous first contact ------------------------------------------------------------

#[test]
fn alice_and_bob_starting_sessions_at_the_same_time_converge() {
    let mut w = World::new(105, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    let (alice_link, bob_link) = (w.link("alice"), w.link("bob"));
    // Both ask for the other's bundle and start a session before either prekey message arrives.
    let fetch_a = w.send_e2e("alice", "bob", "hi bob").transmit.remove(0);
    let fetch_b = w.send_e2e("bob", "alice", "hi alice").transmit.remove(0);
    let bundle_a = w.server_takes(alice_link, &fetch_a).transmit.remove(0).1;
    let bundle_b = w.server_takes(bob_link, &fetch_b).transmit.remove(0).1;
    let prekey_a = w.handle("alice", &bundle_a).transmit.remove(0);
    let prekey_b = w.handle("bob", &bundle_b).transmit.remove(0);
    let mut crossing = w.server_takes(alice_link, &prekey_a);
    crossing.transmit.extend(w.server_takes(bob_link, &prekey_b).transmit);
    let events = w.deliver(crossing);
    assert_eq!(of(&events, "alice")[2], received("bob", 1, "hi alice"));
    assert_eq!(of(&events, "bob")[1], received("alice", 1, "hi bob"));
    // From here on every message opens, both ways: the two sides converge (SPEC.md §11.3).
    for (k, (from, to)) in
        [("alice", "bob"), ("bob", "alice")].into_iter().cycle().take(6).enumerate()
    {
        let text = format!("message {k}");
        let events = w.send(from, to, &text);
        assert_eq!(of(&events, to), vec![received(from, k as u64 / 2 + 2, &text)], "{k}");
    }
}

#[test]
fn a_bundle_arriving_after_the_peers_prekey_message_starts_no_second_session() {
    // SPEC.md §15.3: on `Bundle`, a session the peer started meanwhile is used.
    let mut w = World::new(106, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    let fetch = w.send_e2e("alice", "bob", "waited for the bundle").transmit.remove(0);
    let events = w.send("bob", "alice", "bob was first");
    let at_alice = of(&events, "alice");
    started(&at_alice[0], "bob");
    assert_eq!(at_alice[1..], [received("bob", 1, "bob was first")]);
    let alice_link = w.link("alice");
    let events = w.server_receives(alice_link, &fetch);
    assert_eq!(of(&events, "alice"), vec![sent("bob", 1), acked(1, AckStatus::Relayed)]);
    assert_eq!(of(&events, "bob"), vec![received("alice", 1, "waited for the bundle")]);
    let text = "waited for the bundle";
    assert_eq!(w.last_envelope("alice").1.as_bytes().len(), ratchet_len(text.len()));
}

#[test]
fn a_fetch_lost_with_its_connection_is_asked_again_after_reconnecting() {
    let mut w = World::new(107, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    // Alice's FetchBundle is lost with her connection.
    let lost = w.send_e2e("alice", "bob", "waiting through a reconnection");
    assert_eq!(lost.transmit.len(), 1);
    w.disconnect("alice");
    let events = w.connect("alice");
    let delivered = received("alice", 1, "waiting through a reconnection");
    assert!(of(&events, "bob").contains(&delivered), "after reconnecting: {events:?}");
}

// ---- prekey rotation, replenishment, a full mailbox -----------------------------------------

#[test]
fn rotation_keeps_the_previous_signed_prekey_and_replenishment_appends() {
    let mut w = World::new(120, &["alice", "bob", "carol"]);
    w.online_with_bundles(&["alice", "bob"]);
    let (bob, carol) = (name("bob"), name("carol"));
    let first = w.first_upload("bob");
    let bob_link = w.link("bob");
    // Five more one-time prekeys (ids 12..=16) go to the end of the queue.
    let bob_client = &mut w.members.get_mut("bob").unwrap().client;
    let frame = bob_client.replenish_prekeys(&mut w.rng, 5).unwrap();
    let events = w.server_receives(bob_link, &frame);
    assert_eq!(of(&events, "bob"), vec![ClientEvent::BundleStored { one_time_prekeys: 15 }]);
    // A new signed prekey (id 17) replaces 1 at the server; no one-time prekey is re-sent.
    let bob_client = &mut w.members.get_mut("bob").unwrap().client;
    let frame = bob_client.rotate_signed_prekey(&mut w.rng).unwrap();
    let events = w.server_receives(bob_link, &frame);
    assert_eq!(of(&events, "bob"), vec![ClientEvent::BundleStored { one_time_prekeys: 15 }]);
    let fetched = w.server.clone().take_bundle(&bob).unwrap();
    assert_eq!(fetched.signed_prekey.id, 17);
    assert_eq!(fetched.one_time_prekey.map(|k| k.id), Some(2));
    assert_eq!(fetched.identity, *first.identity());
    // A session on the new signed prekey.
    let events = w.send("alice", "bob", "on the new signed prekey");
    assert_eq!(of(&events, "bob")[1], received("alice", 1, "on the new signed prekey"));
    let (_, envelope) = w.last_envelope("alice");
    assert_eq!(envelope.as_bytes()[161..165], 17u32.to_be_bytes(), "spk_id");
    // A prekey message built on the previous one (in flight across the rotation) still opens.
    let mut peers = w.backup("carol");
    peers.start_session(&carol, &bob, &bundle_from(&first, Some(1)), &mut w.rng).unwrap();
    let envelope = peers.encrypt(&bob, &body("on the previous one"), &mut w.rng).unwrap();
    let out = w.inject("bob", &deliver(1, "carol", envelope));
    assert_eq!(out.events[1..], [received("carol", 1, "on the previous one")]);
    // After a second rotation, signed prekey 1 is gone (exactly one previous is kept).
    let bob_client = &mut w.members.get_mut("bob").unwrap().client;
    let frame = bob_client.rotate_signed_prekey(&mut w.rng).unwrap();
    w.server_receives(bob_link, &frame);
    peers.start_session(&carol, &bob, &bundle_from(&first, Some(2)), &mut w.rng).unwrap();
    let envelope = peers.encrypt(&bob, &body("too old"), &mut w.rng).unwrap();
    w.assert_dropped("bob", &deliver(2, "carol", envelope), e2e(E2eError::UnknownPrekey { id: 1 }));
}

/// SPEC.md §10.2: a rotation deletes the signed prekey before the current one, so a client rotates
/// only once the server has stored the current one (an upload carrying it answered `BundleStored`)
/// and has answered every upload of the connection. Two rotations before the server stored the
/// first would leave it handing out a signed prekey the client no longer holds: every session
/// started from it would fail `UnknownPrekey` on an honest network (found by the model with
/// rotation as a step of the run).
#[test]
fn a_rotation_waits_until_the_server_stored_the_current_signed_prekey() {
    let mut w = World::new(122, &["bob"]);
    let not_stored = Err(Error::Misuse(MisuseError::SignedPrekeyNotStored));
    let handed_out =
        |w: &World| w.server.clone().take_bundle(&name("bob")).map(|b| b.signed_prekey.id);
    let (bob, bob_link) = ("bob", w.link("bob"));
    let refused_unchanged = |w: &mut World, why: &str| {
        let before = w.client(bob).clone();
        assert_eq!(w.rotate(bob), not_stored, "{why}");
        assert!(*w.client(bob) == before, "a refused rotation changed the client: {why}");
    };
    w.connect(bob);
    refused_unchanged(&mut w, "nothing uploaded yet");
    let upload = w.client(bob).upload_bundle().unwrap();
    refused_unchanged(&mut w, "the first upload not answered yet");
    w.server_receives(bob_link, &upload);
    assert_eq!(handed_out(&w), Some(1));
    // Stored, but another upload is unanswered: it could be an older one's answer that comes next.
    let mut rng = w.rng.clone();
    let replenish = w.client(bob).replenish_prekeys(&mut rng, 1).unwrap();
    refused_unchanged(&mut w, "an upload unanswered");
    w.server_receives(bob_link, &replenish);

    // Stored: Bob rotates (signed prekey 13); until the server answers, not again.
    let rotation = w.rotate(bob).unwrap();
    refused_unchanged(&mut w, "a second rotation before the first is stored");
    // The connection ends before the server got the rotation's upload: it still hands out 1,
    // which Bob still holds (the previous one). Whether an upload in flight was stored is unknown
    // to the client, so on the new connection it waits for an answer again.
    drop(rotation);
    w.disconnect(bob);
    w.connect(bob);
    assert_eq!(handed_out(&w), Some(1));
    refused_unchanged(&mut w, "after a reconnection, nothing answered yet");
    // An answer nothing asked for says nothing.
    w.inject(bob, &Message::BundleStored { one_time_prekeys: 10 });
    refused_unchanged(&mut w, "an unsolicited BundleStored");
    // A refused upload stores nothing (the answer is the test's; the upload never reaches the
    // server, so the connection starts again to keep the channel's nonces in step).
    w.client(bob).upload_bundle().unwrap();
    let refusal = BundleRefusal::TooManyPrekeys;
    w.inject(bob, &Message::BundleRefused { reason: refusal });
    refused_unchanged(&mut w, "the upload was refused");
    w.disconnect(bob);
    w.connect(bob);
    w.upload(bob);
    assert_eq!(handed_out(&w), Some(13));
    // A refusal answers its upload too: with the current signed prekey stored, nothing awaited.
    w.client(bob).upload_bundle().unwrap();
    w.inject(bob, &Message::BundleRefused { reason: refusal });
    w.rotate(bob).unwrap();
    w.disconnect(bob);
    w.connect(bob);
    // That rotation (14) was lost with its connection: an upload on the new one, stored, and Bob
    // may rotate again (15).
    w.upload(bob);
    assert_eq!(handed_out(&w), Some(14));
    let rotation = w.rotate(bob).unwrap();
    w.server_receives(bob_link, &rotation);
    assert_eq!(handed_out(&w), Some(15));
    // The state file keeps what the server stored: restored with the rotation's upload
    // unanswered, Bob waits; restored after the answer, he may rotate at once.
    let unanswered = w.rotate(bob).unwrap();
    let restart = |w: &mut World| {
        let restored = Client::restore_state(w.client(bob).export_state().as_bytes()).unwrap();
        w.disconnect(bob);
        *w.client(bob) = restored;
        w.connect(bob);
    };
    restart(&mut w);
    refused_unchanged(&mut w, "restored with the rotation's upload unanswered");
    drop(unanswered);
    w.upload(bob);
    restart(&mut w);
    let rotation = w.rotate(bob).unwrap();
    w.server_receives(bob_link, &rotation);
    assert_eq!(handed_out(&w), Some(17));
}

#[test]
fn a_full_mailbox_rejects_an_e2e_message_and_the_ratchet_skips_the_gap() {
    let mut w = World::new(121, &["alice", "bob"]);
    w.online_with_bundles(&["alice", "bob"]);
    w.send("alice", "bob", "hello");
    w.send("bob", "alice", "hello yourself");
    w.disconnect("bob");
    for k in 0..MAILBOX_CAPACITY {
        let events = w.send("alice", "bob", &format!("queued {k}"));
        assert_eq!(of(&events, "alice")[1], acked(k as u64 + 2, AckStatus::Queued));
    }
    // The sender learns it; the message is lost, not silently.
    let id = MAILBOX_CAPACITY as u64 + 2;
    let events = w.send("alice", "bob", "one too many");
    let rejected = ClientEvent::Rejected { id: MessageId(id), reason: RejectReason::MailboxFull };
    assert_eq!(of(&events, "alice"), vec![sent("bob", id), rejected]);
    let at_bob = of(&w.connect("bob"), "bob");
    assert_eq!(at_bob.len(), 1 + MAILBOX_CAPACITY);
    assert_eq!(at_bob[MAILBOX_CAPACITY], received("alice", id - 1, "queued 63"));
    // The next message comes after a skipped key, which Bob derives and keeps: it decrypts.
    let events = w.send("alice", "bob", "after the gap");
    assert_eq!(of(&events, "bob"), vec![received("alice", id + 1, "after the gap")]);
}

// ---- 11. determinism -----------------------------------------------------------------------

/// A whole scripted exchange from `seed`: every frame that crossed a link, and every event. With
/// `prefix_only`, just the connections and uploads.
fn scripted_run(seed: u64, prefix_only: bool) -> (Vec<Vec<u8>>, Events) {
    let mut w = World::new(seed, &["alice", "bob"]);
    let mut events = Events::new();
    for who in ["alice", "bob"] {
        events.extend(w.connect(who));
        events.extend(w.upload(who));
    }
    if prefix_only {
        return (w.wire, events);
    }
    for (from, to, text) in [
        ("alice", "bob", "one"),
        ("alice", "bob", "two"),
        ("bob", "alice", "three"),
        ("alice", "bob", "four"),
    ] {
        events.extend(w.send(from, to, text));
    }
    w.disconnect("bob");
    events.extend(w.send("alice", "bob", "five, queued"));
    events.extend(w.connect("bob"));
    events.extend(w.send("bob", "alice", "six"));
    (w.wire, events)
}

#[test]
fn the_same_seed_gives_byte_identical_frames() {
    let (frames, events) = scripted_run(110, false);
    assert!(frames.len() > 30, "{} frames", frames.len());
    assert_eq!(scripted_run(110, false), (frames.clone(), events.clone()));
    // Another seed (the start of the same script): the same lengths, every frame different.
    let (other, _) = scripted_run(111, true);
    assert!(other.len() >= 8);
    for (a, b) in frames.iter().zip(&other) {
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
    }
}

/// SPEC.md §15.3: a client with an e2e identity refuses a hop `Deliver` — from a peer it has a
/// verified session with, or from anyone — and only its channel moves (§7.2).
#[test]
fn an_e2e_client_refuses_hop_deliver_and_only_the_channel_moves() {
    let (mut w, _, _) = withheld_ratchet_message(43, "withheld");
    let alice = w.identity("alice");
    w.client("bob").verify_peer(name("alice"), alice).unwrap();
    for from in ["alice", "carol", "bob"] {
        let forged =
            Message::Deliver { id: MessageId(1), from: name(from), body: body("wire 1000 EUR") };
        let refused = Error::Protocol(ProtocolError::Unexpected { state: "e2e", got: "Deliver" });
        w.assert_dropped("bob", &forged, refused);
    }
}
