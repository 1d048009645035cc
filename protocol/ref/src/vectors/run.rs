//! The transcript driver behind `hop_transcript.json` and `e2e_transcript.json`.
//!
//! It plays a script exactly as [`crate::run`] does (the same role calls, in the same
//! order, on the same ChaCha20 stream, delivering frames first in, first out), so the frames of the
//! script are byte for byte those of `e2e-ref run` — the generator checks this against the runner.
//! On top it records what the runner cannot show: every RNG draw, every channel key and nonce, every
//! plaintext message, and for e2e every X3DH and ratchet key. Those come from *models* written from
//! SPEC.md with the suite's building blocks: a Noise handshake trace per link and the Double
//! Ratchet's chain of root keys. Each model result is checked against the roles' real frames (a model
//! key that does not open the real ciphertext stops the generator), so the vectors can only describe
//! what the code really did.
//!
//! After the script, *attacks* show the expected rejections: a network attacker replaying or
//! tampering with a frame, and (e2e) a malicious server replaying or tampering with an envelope.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::noise_trace::{HandshakeInputs, HandshakeTrace, channel_nonce, trace, transport_open};
use super::util::{RecordingRng, compare_json, error_class, hex, key_json, object, str_field};
use super::wire::{envelope_json, message_json};
use super::{CaseResult, VectorError};
use crate::runner::{Party, Protocol, RunConfig, Step};
use e2e_protocol::channel::PROLOGUE;
use e2e_protocol::e2e::envelope::EnvelopeBody;
use e2e_protocol::e2e::identity::IdentityKeyPair;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::prekeys::PrekeyStore;
use e2e_protocol::e2e::ratchet::{ChainKey, RootKey};
use e2e_protocol::e2e::x3dh;
use e2e_protocol::error::Error;
use e2e_protocol::hop::AllowAll;
use e2e_protocol::roles::{
    Client, ClientEvent, ClientOutputs, LinkId, Server, ServerEvent, ServerOutputs,
};
use e2e_protocol::suite::{PrivateKey, PublicKey, Secret, SigningKey};
use e2e_protocol::wire::{Body, Codec, Envelope, LinkFrame, LinkKind, Message, MessageId, Name};

/// An action of a vector run: a runner [`Step`], or an attack.
#[derive(Debug, Clone)]
pub enum Act {
    /// A script step, exactly as the runner plays it.
    Step(Step),
    /// A network attacker delivers again, to `to`, the last frame `to` received.
    ReplayLastFrame {
        /// Who receives the replay.
        to: Party,
    },
    /// A network attacker delivers a copy of the next frame `from` sends with one bit flipped,
    /// then the genuine frame: `from` sends `text` to the other client.
    TamperNextFrame {
        /// The sender.
        from: Party,
        /// The content.
        text: String,
    },
    /// The server seals again the `Deliver` or `E2eDeliver` with id `id` it delivered to `to`, with
    /// `new_id` in place of its id if set.
    ServerReplaysDelivery {
        /// The recipient.
        to: Party,
        /// The id of the delivery to replay.
        id: u64,
        /// A fresh message id, or `None` to keep the original.
        new_id: Option<u64>,
    },
    /// e2e: `from` sends `text`; the server first delivers the envelope with its last byte flipped,
    /// then the genuine one.
    ServerTampersNextEnvelope {
        /// The sender.
        from: Party,
        /// The content.
        text: String,
    },
}

/// A channel's model: the handshake trace and the counter of each direction.
struct LinkModel {
    id: u64,
    client: Party,
    client_ephemeral: PrivateKey,
    server_ephemeral: Option<PrivateKey>,
    trace: Option<HandshakeTrace>,
    /// Next counter: client → server, server → client.
    counters: [u64; 2],
}

/// A ratchet chain, in order of creation (they alternate between the two parties).
struct Chain {
    owner: Party,
    ratchet_key: PrivateKey,
    peer_key: PublicKey,
    dh_out: [u8; 32],
    rk_before: [u8; 32],
    rk_after: [u8; 32],
    ck: [u8; 32],
}

/// The e2e model of one session (Alice initiates).
struct SessionModel {
    sk: [u8; 32],
    ad: Vec<u8>,
    spk_b: PublicKey,
    x3dh: Value,
    chains: Vec<Chain>,
}

struct Driver {
    protocol: Protocol,
    rng: RecordingRng,
    draw_purposes: Vec<String>,
    server: Server,
    alice: Client,
    bob: Client,
    links: BTreeMap<Party, LinkId>,
    next_link: u64,
    in_flight: VecDeque<(Party, Party, Vec<u8>)>,
    /// Late messages: hop keeps the text, e2e the envelope sealed when it was written.
    late: Vec<(Party, Result<Envelope, String>)>,
    note: Option<String>,
    // Models and records.
    keys: BTreeMap<String, PrivateKey>,
    identities: BTreeMap<Party, (IdentityKeyPair, [u8; 32], [u8; 32])>,
    prekeys: BTreeMap<Party, Vec<(u32, PrivateKey)>>,
    link_models: Vec<LinkModel>,
    session: Option<SessionModel>,
    last_frame_to: BTreeMap<Party, (Party, Vec<u8>)>,
    deliveries: BTreeMap<Party, Vec<Message>>,
    cases: Vec<Value>,
    delivered: Vec<String>,
    run_id: String,
}

fn name(p: Party) -> Result<Name, VectorError> {
    Ok(Name::new(p.label())?)
}

fn other(p: Party) -> Party {
    p.peer()
}

impl Driver {
    fn new(protocol: Protocol, seed: u64, run_id: &str) -> Result<Self, VectorError> {
        let mut rng = RecordingRng::new(seed);
        let server_key = PrivateKey::generate(&mut rng);
        let alice_key = PrivateKey::generate(&mut rng);
        let bob_key = PrivateKey::generate(&mut rng);
        let server = Server::new(server_key.clone());
        let mut purposes = vec![
            "server channel static key".to_owned(),
            "alice channel static key".to_owned(),
            "bob channel static key".to_owned(),
        ];
        let mut keys = BTreeMap::new();
        keys.insert("server".to_owned(), server_key);
        keys.insert("alice".to_owned(), alice_key.clone());
        keys.insert("bob".to_owned(), bob_key.clone());
        let mut identities = BTreeMap::new();
        let mut prekeys = BTreeMap::new();
        let (alice, bob) = match protocol {
            Protocol::Hop => (
                Client::new(name(Party::Alice)?, alice_key, server.public_key()),
                Client::new(name(Party::Bob)?, bob_key, server.public_key()),
            ),
            Protocol::E2e => {
                let mut make = |party: Party, rng: &mut RecordingRng| {
                    let start = rng.draws().len();
                    let peers = Peers::generate(rng);
                    let draws = &rng.draws()[start..];
                    let bytes = |i: usize| -> [u8; 32] {
                        draws.get(i).and_then(|d| d.as_slice().try_into().ok()).unwrap_or([0; 32])
                    };
                    let (ik, isk) = (bytes(0), bytes(1));
                    let pair = IdentityKeyPair::from_parts(
                        PrivateKey::from_bytes(ik),
                        SigningKey::from_seed(isk),
                    );
                    identities.insert(party, (pair, ik, isk));
                    let mut list = Vec::new();
                    purposes.push(format!("{} identity: X25519 key ik", party.label()));
                    purposes.push(format!("{} identity: Ed25519 seed isk", party.label()));
                    for (i, id) in (1..=11u32).enumerate() {
                        list.push((id, PrivateKey::from_bytes(bytes(i + 2))));
                        purposes.push(if id == 1 {
                            format!("{} signed prekey 1", party.label())
                        } else {
                            format!("{} one-time prekey {id}", party.label())
                        });
                    }
                    prekeys.insert(party, list);
                    peers
                };
                let alice_peers = make(Party::Alice, &mut rng);
                let bob_peers = make(Party::Bob, &mut rng);
                (
                    Client::with_e2e(
                        name(Party::Alice)?,
                        alice_key,
                        server.public_key(),
                        alice_peers,
                    ),
                    Client::with_e2e(name(Party::Bob)?, bob_key, server.public_key(), bob_peers),
                )
            }
        };
        Ok(Self {
            protocol,
            rng,
            draw_purposes: purposes,
            server,
            alice,
            bob,
            links: BTreeMap::new(),
            next_link: 1,
            in_flight: VecDeque::new(),
            late: Vec::new(),
            note: None,
            keys,
            identities,
            prekeys,
            link_models: Vec::new(),
            session: None,
            last_frame_to: BTreeMap::new(),
            deliveries: BTreeMap::new(),
            cases: Vec::new(),
            delivered: Vec::new(),
            run_id: run_id.to_owned(),
        })
    }

    fn client(&mut self, party: Party) -> &mut Client {
        if party == Party::Bob { &mut self.bob } else { &mut self.alice }
    }

    fn add_note(&mut self, line: String) {
        self.note = Some(match self.note.take() {
            Some(earlier) => format!("{earlier}; {line}"),
            None => line,
        });
    }

    /// Labels the draws made since `start`.
    fn label_draws(&mut self, start: usize, labels: &[String]) {
        let end = self.rng.draws().len();
        for i in start..end {
            let label =
                labels.get(i - start).or_else(|| labels.last()).cloned().unwrap_or_default();
            self.draw_purposes.push(label);
        }
    }

    fn last_draw(&self) -> Option<PrivateKey> {
        self.rng
            .draws()
            .last()
            .and_then(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
            .map(PrivateKey::from_bytes)
    }

    fn act(&mut self, act: &Act) -> Result<(), VectorError> {
        match act {
            Act::Step(step) => self.step(step),
            Act::ReplayLastFrame { to } => {
                let (from, frame) = self
                    .last_frame_to
                    .get(to)
                    .cloned()
                    .ok_or_else(|| VectorError::malformed("no frame to replay"))?;
                self.add_note(format!(
                    "a network attacker delivers the last frame {} received again",
                    to.label()
                ));
                self.in_flight.push_back((from, *to, frame));
                self.pump()
            }
            Act::TamperNextFrame { from, text } => {
                self.add_note(format!(
                    "{} sends {text:?}; a network attacker flips a bit of the frame first",
                    from.label()
                ));
                self.send(*from, text)?;
                if let Some((f, t, frame)) = self.in_flight.front().cloned() {
                    let mut bad = frame;
                    if let Some(b) = bad.last_mut() {
                        *b ^= 0x01;
                    }
                    self.in_flight.push_front((f, t, bad));
                }
                self.pump()?;
                self.flush_late()
            }
            Act::ServerReplaysDelivery { to, id, new_id } => {
                let list = self.deliveries.get(to).cloned().unwrap_or_default();
                let message = list
                    .iter()
                    .rev()
                    .find(|m| matches!(m, Message::Deliver { id: i, .. } | Message::E2eDeliver { id: i, .. } if i.0 == *id))
                    .cloned()
                    .ok_or_else(|| VectorError::malformed("no delivery with that id"))?;
                let message = match (message, new_id) {
                    (Message::Deliver { from, body, .. }, Some(id)) => {
                        Message::Deliver { id: MessageId(*id), from, body }
                    }
                    (Message::E2eDeliver { from, envelope, .. }, Some(id)) => {
                        Message::E2eDeliver { id: MessageId(*id), from, envelope }
                    }
                    (m, _) => m,
                };
                let link = *self
                    .links
                    .get(to)
                    .ok_or_else(|| VectorError::malformed("recipient offline"))?;
                let what = match new_id {
                    Some(id) => format!("under the new id #{id}"),
                    None => "under its original id".to_owned(),
                };
                self.add_note(format!(
                    "the server seals its {} #{id} to {} again, {what}",
                    message.type_name(),
                    to.label()
                ));
                let frame = self.server.seal_transport(link, &message)?;
                self.in_flight.push_back((Party::Server, *to, frame));
                self.pump()
            }
            Act::ServerTampersNextEnvelope { from, text } => {
                self.add_note(format!(
                    "{} sends {text:?}; the server first delivers a copy whose envelope has its last byte flipped",
                    from.label()
                ));
                self.send(*from, text)?;
                // The E2eSend frame is first in flight: open it as the server, inject, then process.
                let (f, _, frame) = self
                    .in_flight
                    .pop_front()
                    .ok_or_else(|| VectorError::malformed("nothing sent"))?;
                let link =
                    *self.links.get(&f).ok_or_else(|| VectorError::malformed("sender offline"))?;
                let record = self.model_frame(f, Party::Server, &frame)?;
                let (sender, plaintext) = self.server.open_transport(link, &frame)?;
                let Message::E2eSend { id, to, envelope } = Message::decode(&plaintext)? else {
                    return Err(VectorError::malformed("not an E2eSend"));
                };
                let mut bad = envelope.as_bytes().to_vec();
                if let Some(b) = bad.last_mut() {
                    *b ^= 0x01;
                }
                let to_party = if to.as_str() == "bob" { Party::Bob } else { Party::Alice };
                let to_link = *self
                    .links
                    .get(&to_party)
                    .ok_or_else(|| VectorError::malformed("recipient offline"))?;
                let injected = self.server.seal_transport(
                    to_link,
                    &Message::E2eDeliver { id, from: sender, envelope: Envelope::new(bad)? },
                )?;
                let out = self.server.process(link, plaintext);
                self.push_case(f, Party::Server, &frame, record, &Ok(()), "E2eSend: the server opens it, injects a tampered copy, then relays it honestly");
                self.in_flight.push_back((Party::Server, to_party, injected));
                self.server_outputs(out);
                self.pump()?;
                self.flush_late()
            }
        }
    }

    fn send(&mut self, from: Party, text: &str) -> Result<(), VectorError> {
        let to = name(other(from))?;
        let body = Body::new(text.as_bytes().to_vec())?;
        match self.protocol {
            Protocol::Hop => {
                let (_, frame) = self.client(from).send(&to, body)?;
                self.in_flight.push_back((from, Party::Server, frame));
            }
            Protocol::E2e => {
                let start = self.rng.draws().len();
                let mut rng = self.rng.clone();
                let out = self.client(from).send_e2e(&to, body, &mut rng)?;
                self.rng = rng;
                self.label_draws(start, &[format!("{} ratchet key", from.label())]);
                self.client_outputs(from, out);
            }
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), VectorError> {
        match step {
            Step::Connect(party) => {
                let start = self.rng.draws().len();
                let mut rng = self.rng.clone();
                let frame = self.client(*party).connect(&mut rng)?;
                self.rng = rng;
                let link = self.next_link;
                self.label_draws(
                    start,
                    &[format!("{} channel ephemeral key (link {link})", party.label())],
                );
                let client_ephemeral =
                    self.last_draw().ok_or_else(|| VectorError::malformed("no ephemeral"))?;
                self.link_models.push(LinkModel {
                    id: link,
                    client: *party,
                    client_ephemeral,
                    server_ephemeral: None,
                    trace: None,
                    counters: [0, 0],
                });
                self.links.insert(*party, LinkId(link));
                self.next_link += 1;
                self.add_note(format!("{} connects", party.label()));
                self.in_flight.push_back((*party, Party::Server, frame));
            }
            Step::Disconnect(party) => {
                self.client(*party).disconnect();
                if let Some(link) = self.links.remove(party) {
                    self.server.close_link(link);
                }
                self.add_note(format!("{} goes offline", party.label()));
                return Ok(());
            }
            Step::Upload(party) => {
                let frame = self.client(*party).upload_bundle()?;
                self.add_note(format!("{} publishes its prekey bundle", party.label()));
                self.in_flight.push_back((*party, Party::Server, frame));
            }
            Step::Send { from, text } => {
                self.add_note(format!(
                    "{} sends {text:?} to {}",
                    from.label(),
                    other(*from).label()
                ));
                self.send(*from, text)?;
                self.pump()?;
                return self.flush_late();
            }
            Step::SendLate { from, text } if self.protocol == Protocol::Hop => {
                self.late.push((*from, Err(text.clone())));
                return Ok(());
            }
            Step::SendLate { from, text } => {
                let to = name(other(*from))?;
                let body = Body::new(text.as_bytes().to_vec())?;
                let start = self.rng.draws().len();
                let mut rng = self.rng.clone();
                let envelope = self.client(*from).seal_e2e(&to, &body, &mut rng)?;
                self.rng = rng;
                self.label_draws(start, &[format!("{} ratchet key", from.label())]);
                self.add_note(format!(
                    "{} encrypts {text:?} for {to} now, but it reaches the server only after the next message",
                    from.label()
                ));
                self.late.push((*from, Ok(envelope)));
                return Ok(());
            }
        }
        self.pump()
    }

    fn flush_late(&mut self) -> Result<(), VectorError> {
        for (from, late) in std::mem::take(&mut self.late) {
            self.add_note(format!("the late message from {} finally goes out", from.label()));
            match late {
                Err(text) => self.send(from, &text)?,
                Ok(envelope) => {
                    let to = name(other(from))?;
                    let (_, frame) = self.client(from).submit_e2e(&to, envelope)?;
                    self.in_flight.push_back((from, Party::Server, frame));
                }
            }
        }
        self.pump()
    }

    fn client_outputs(&mut self, party: Party, out: ClientOutputs) -> Vec<ClientEvent> {
        for frame in out.transmit {
            self.in_flight.push_back((party, Party::Server, frame));
        }
        out.events
    }

    fn server_outputs(&mut self, out: ServerOutputs) {
        for (link, frame) in out.transmit {
            if let Some((&party, _)) = self.links.iter().find(|(_, l)| **l == link) {
                self.in_flight.push_back((Party::Server, party, frame));
            }
        }
        for link in out.close {
            self.links.retain(|_, l| *l != link);
        }
    }

    fn pump(&mut self) -> Result<(), VectorError> {
        while let Some((from, to, frame)) = self.in_flight.pop_front() {
            let record = self.model_frame(from, to, &frame)?;
            self.last_frame_to.insert(to, (from, frame.clone()));
            let result = if to == Party::Server {
                self.deliver_to_server(from, &frame)
            } else {
                self.deliver_to_client(to, &frame)
            };
            let (outcome, description) = match result {
                Ok(Ok(description)) => (Ok(()), description),
                Ok(Err(dropped)) => {
                    (Err(dropped), "the frame authenticated, its content is refused".to_owned())
                }
                Err(e) => (Err(e), "refused before it authenticated; nothing changed".to_owned()),
            };
            self.push_case(from, to, &frame, record, &outcome, &description);
        }
        Ok(())
    }

    /// Delivers to the server: `Ok(Ok(read))`, `Ok(Err(dropped))` or `Err(refused)`.
    fn deliver_to_server(
        &mut self,
        from: Party,
        frame: &[u8],
    ) -> Result<Result<String, Error>, Error> {
        let link = *self.links.get(&from).ok_or(e2e_protocol::error::MisuseError::UnknownLink)?;
        let start = self.rng.draws().len();
        let mut rng = self.rng.clone();
        let out = self.server.handle(link, frame, &mut rng);
        self.rng = rng;
        let out = out?;
        if self.rng.draws().len() > start {
            self.label_draws(start, &[format!("server channel ephemeral key (link {})", link.0)]);
            let key = self.last_draw();
            if let Some(model) = self.link_models.iter_mut().find(|m| m.id == link.0) {
                model.server_ephemeral = key;
            }
        }
        let dropped = out.events.iter().find_map(|e| match e {
            ServerEvent::Dropped { error, .. } => Some(error.clone()),
            _ => None,
        });
        self.server_outputs(out);
        Ok(dropped.map_or_else(|| Ok("accepted".to_owned()), Err))
    }

    fn deliver_to_client(
        &mut self,
        to: Party,
        frame: &[u8],
    ) -> Result<Result<String, Error>, Error> {
        let start = self.rng.draws().len();
        let mut rng = self.rng.clone();
        let out = self.client(to).handle(frame, &mut rng);
        self.rng = rng;
        let out = out?;
        let mut labels = Vec::new();
        if out.events.iter().any(|e| matches!(e, ClientEvent::SessionStarted { .. }))
            && out.transmit.iter().any(|_| true)
        {
            labels.push(format!(
                "{} base key EK_A (session with {})",
                to.label(),
                other(to).label()
            ));
        }
        labels.push(format!("{} ratchet key", to.label()));
        self.label_draws(start, &labels);
        let events = self.client_outputs(to, out);
        let mut dropped = None;
        for event in events {
            match event {
                ClientEvent::Dropped { error } => dropped = Some(error),
                ClientEvent::Received { body, .. } => {
                    self.delivered.push(String::from_utf8_lossy(body.as_bytes()).into_owned());
                }
                _ => {}
            }
        }
        Ok(dropped.map_or_else(|| Ok("accepted".to_owned()), Err))
    }

    /// Opens `frame` with the channel model; for handshake frames, runs the model when both
    /// ephemerals are known. Returns the JSON details of the frame.
    fn model_frame(&mut self, from: Party, to: Party, frame: &[u8]) -> Result<Value, VectorError> {
        let client = if from == Party::Server { to } else { from };
        let link = match (from, self.links.get(&client)) {
            (_, Some(l)) => l.0,
            _ => return Ok(json!({})),
        };
        let Ok(decoded) = LinkFrame::decode(frame) else {
            return Ok(json!({"link": link}));
        };
        let server_key =
            self.keys.get("server").cloned().ok_or_else(|| VectorError::malformed("server key"))?;
        let client_key = self
            .keys
            .get(client.label())
            .cloned()
            .ok_or_else(|| VectorError::malformed("client key"))?;
        let Some(model) = self.link_models.iter_mut().rev().find(|m| m.id == link) else {
            return Ok(json!({"link": link}));
        };
        let mut details = vec![("link", Value::from(link))];
        match decoded.kind() {
            LinkKind::HandshakeInit => {
                let payload = Message::Register { name: name(model.client)? }.encode();
                details.push(("handshake_message", 1.into()));
                details.push(("payload", hex(&payload).into()));
                details.push(("payload_message", message_json(&Message::decode(&payload)?)));
            }
            LinkKind::HandshakeResp => {
                // The server's ephemeral was drawn while it handled message 1.
                let server_ephemeral = model
                    .server_ephemeral
                    .clone()
                    .ok_or_else(|| VectorError::malformed("server ephemeral"))?;
                let payload = Message::Welcome { name: name(model.client)? }.encode();
                let t = trace(&HandshakeInputs {
                    prologue: PROLOGUE,
                    is: &client_key,
                    ie: &model.client_ephemeral,
                    rs: &server_key,
                    re: &server_ephemeral,
                    payload1: &Message::Register { name: name(model.client)? }.encode(),
                    payload2: &payload,
                })?;
                if t.message2 != decoded.noise() {
                    return Err(VectorError::mismatch(
                        "handshake message 2",
                        &hex(decoded.noise()),
                        &hex(&t.message2),
                    ));
                }
                model.trace = Some(t);
                details.push(("handshake_message", 2.into()));
                details.push(("payload", hex(&payload).into()));
                details.push(("payload_message", message_json(&Message::decode(&payload)?)));
            }
            LinkKind::Transport => {
                let Some(t) = &model.trace else {
                    return Ok(object(details));
                };
                let dir = usize::from(from == Party::Server);
                let n = model.counters[dir];
                let key = *t.key(from != Party::Server);
                details.push((
                    "direction",
                    if dir == 0 { "client_to_server" } else { "server_to_client" }.into(),
                ));
                details.push(("key", hex(key).into()));
                details.push(("n", n.into()));
                details.push(("nonce", hex(channel_nonce(n)).into()));
                if let Ok(plaintext) = transport_open(&key, n, decoded.noise()) {
                    model.counters[dir] += 1;
                    details.push(("plaintext", hex(&plaintext).into()));
                    if let Ok(message) = Message::decode(&plaintext) {
                        details.push(("message", message_json(&message)));
                        if from == Party::Server {
                            self.deliveries.entry(to).or_default().push(message.clone());
                        }
                        if let Some(e2e) = self.model_envelope(from, &message)? {
                            details.push(("e2e", e2e));
                        }
                    }
                }
            }
        }
        Ok(object(details))
    }

    /// The e2e keys of an envelope, from the session model.
    fn model_envelope(
        &mut self,
        from: Party,
        message: &Message,
    ) -> Result<Option<Value>, VectorError> {
        let (sender, envelope) = match message {
            Message::E2eSend { envelope, .. } => (from, envelope),
            Message::E2eDeliver { envelope, from: sender, .. } => {
                (if sender.as_str() == "bob" { Party::Bob } else { Party::Alice }, envelope)
            }
            _ => return Ok(None),
        };
        let Ok(body) = EnvelopeBody::decode(envelope.as_bytes()) else {
            return Ok(Some(json!({"envelope": "malformed"})));
        };
        let (prekey, ratchet) = match &body {
            EnvelopeBody::Prekey { prekey, message } => (Some(prekey), message),
            EnvelopeBody::Ratchet(message) => (None, message),
        };
        if self.session.is_none() {
            let Some(prekey) = prekey else { return Ok(None) };
            self.session = Some(self.start_model(sender, prekey)?);
        }
        let draws: Vec<PrivateKey> = self
            .rng
            .draws()
            .iter()
            .filter_map(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
            .map(PrivateKey::from_bytes)
            .collect();
        let Some(session) = self.session.as_mut() else { return Ok(None) };
        let header = ratchet.header;
        let index = match session
            .chains
            .iter()
            .position(|c| c.ratchet_key.public_key() == header.dh)
        {
            Some(i) => i,
            None => {
                let Some(ratchet_key) =
                    draws.iter().rev().find(|k| k.public_key() == header.dh).cloned()
                else {
                    return Ok(Some(
                        json!({"envelope": envelope_json(&body), "note": "unknown ratchet key"}),
                    ));
                };
                let peer_key =
                    session.chains.last().map_or(session.spk_b, |c| c.ratchet_key.public_key());
                let rk_before = session.chains.last().map_or(session.sk, |c| c.rk_after);
                let dh_out = ratchet_key.diffie_hellman(&peer_key)?;
                let (rk, ck) = RootKey::new(Secret::new(rk_before)).kdf_rk(&dh_out);
                session.chains.push(Chain {
                    owner: sender,
                    ratchet_key,
                    peer_key,
                    dh_out: *dh_out.expose(),
                    rk_before,
                    rk_after: *rk.expose(),
                    ck: *ck.expose(),
                });
                session.chains.len() - 1
            }
        };
        let chain = &session.chains[index];
        let mut ck = ChainKey::new(Secret::new(chain.ck));
        for _ in 0..header.n {
            ck = ck.step().1;
        }
        let (mk, _) = ck.step();
        let (key, nonce) = mk.aead_key_and_nonce();
        let mut ad = session.ad.clone();
        ad.extend_from_slice(&header.encode());
        let opened = key.open(nonce.expose(), &ad, &ratchet.ciphertext);
        let mut fields = vec![
            ("envelope", envelope_json(&body)),
            ("chain", index.into()),
            ("CK", hex(ck.expose()).into()),
            ("MK", hex(mk.expose()).into()),
            ("aead_key", hex(key.expose()).into()),
            ("aead_nonce", hex(nonce.expose()).into()),
            ("aead_ad", hex(&ad).into()),
        ];
        match opened {
            Ok(plaintext) => {
                fields.push(("plaintext", hex(&plaintext).into()));
                fields.push(("text", String::from_utf8_lossy(&plaintext).into_owned().into()));
            }
            Err(_) => fields.push(("opens", false.into())),
        }
        Ok(Some(object(fields)))
    }

    /// X3DH from Bob's side of the model, for the first prekey message from `initiator`.
    fn start_model(
        &self,
        initiator: Party,
        prekey: &x3dh::PrekeyHeader,
    ) -> Result<SessionModel, VectorError> {
        let responder = other(initiator);
        let (pair, _, _) =
            self.identities.get(&responder).ok_or_else(|| VectorError::malformed("identity"))?;
        let list = self.prekeys.get(&responder).ok_or_else(|| VectorError::malformed("prekeys"))?;
        let store = PrekeyStore::generate(
            pair,
            &mut super::util::ReplayRng::new(list.iter().map(|(_, k)| k.expose().to_vec())),
        );
        let responded = x3dh::respond(pair, &name(responder)?, &name(initiator)?, &store, prekey)?;
        let spk = store
            .signed_prekey(prekey.signed_prekey_id)
            .cloned()
            .ok_or_else(|| VectorError::malformed("spk"))?;
        let ek = self
            .rng
            .draws()
            .iter()
            .filter_map(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
            .map(PrivateKey::from_bytes)
            .find(|k| k.public_key() == prekey.base_key)
            .ok_or_else(|| VectorError::malformed("EK_A"))?;
        let (initiator_pair, _, _) =
            self.identities.get(&initiator).ok_or_else(|| VectorError::malformed("identity"))?;
        let mut dhs = vec![
            (
                "DH1 = DH(ik_A, SPK_B)",
                hex(initiator_pair.dh().diffie_hellman(&spk.public_key())?.expose()).into(),
            ),
            ("DH2 = DH(ek_A, IK_B_dh)", hex(ek.diffie_hellman(&pair.public().dh)?.expose()).into()),
            ("DH3 = DH(ek_A, SPK_B)", hex(ek.diffie_hellman(&spk.public_key())?.expose()).into()),
        ];
        if let Some(id) = prekey.one_time_prekey_id {
            let opk = store.one_time_prekey(id).ok_or_else(|| VectorError::malformed("opk"))?;
            dhs.push((
                "DH4 = DH(ek_A, OPK_B)",
                hex(ek.diffie_hellman(&opk.public_key())?.expose()).into(),
            ));
        }
        let x3dh = object(vec![
            ("initiator", initiator.label().into()),
            ("responder", responder.label().into()),
            ("EK_A", key_json(&ek)),
            ("spk_id", prekey.signed_prekey_id.into()),
            ("opk_id", prekey.one_time_prekey_id.map_or(Value::Null, Value::from)),
            ("dh", object(dhs)),
            ("SK", hex(responded.shared_secret().expose()).into()),
            ("AD", hex(responded.ad()).into()),
        ]);
        Ok(SessionModel {
            sk: *responded.shared_secret().expose(),
            ad: responded.ad().to_vec(),
            spk_b: spk.public_key(),
            x3dh,
            chains: Vec::new(),
        })
    }

    fn push_case(
        &mut self,
        from: Party,
        to: Party,
        frame: &[u8],
        record: Value,
        outcome: &Result<(), Error>,
        description: &str,
    ) {
        let step = self.cases.len() + 1;
        let frame_type = LinkFrame::decode(frame).map_or("malformed", |f| f.type_name());
        let note = self.note.take();
        let carried = record
            .get("message")
            .or_else(|| record.get("payload_message"))
            .and_then(|m| m["type"].as_str())
            .map_or_else(String::new, |t| format!(" carrying {t}"));
        let what =
            format!("{} -> {}: {frame_type}{carried}; {description}", from.label(), to.label());
        let comment = match &note {
            Some(n) => format!("{n}. {what}"),
            None => what,
        };
        let mut case = serde_json::Map::new();
        case.insert("id".to_owned(), format!("{}/step-{step:02}", self.run_id).into());
        case.insert("comment".to_owned(), comment.into());
        match outcome {
            Ok(()) => {
                case.insert("result".to_owned(), "valid".into());
            }
            Err(e) => {
                case.insert("result".to_owned(), "invalid".into());
                case.insert("error".to_owned(), error_class(e).into());
            }
        }
        case.insert("step".to_owned(), step.into());
        case.insert("from".to_owned(), from.label().into());
        case.insert("to".to_owned(), to.label().into());
        case.insert("frame_type".to_owned(), frame_type.into());
        case.insert("frame".to_owned(), hex(frame).into());
        if let Value::Object(map) = record {
            case.extend(map);
        }
        self.cases.push(Value::Object(case));
    }

    fn into_json(
        self,
        id: &str,
        comment: &str,
        seed: u64,
        script: &[Act],
    ) -> Result<Value, VectorError> {
        let draws: Vec<Value> = self
            .rng
            .draws()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                object(vec![
                    ("index", i.into()),
                    ("purpose", self.draw_purposes.get(i).cloned().unwrap_or_default().into()),
                    ("bytes", hex(d).into()),
                ])
            })
            .collect();
        let mut parties = Vec::new();
        for party in [Party::Server, Party::Alice, Party::Bob] {
            let key = self.keys.get(party.label()).ok_or_else(|| VectorError::malformed("key"))?;
            let mut fields = vec![("channel_static", key_json(key))];
            if let Some((pair, ik, isk)) = self.identities.get(&party) {
                fields.push((
                    "identity",
                    object(vec![
                        ("ik", hex(ik).into()),
                        ("isk", hex(isk).into()),
                        ("IK", hex(pair.public().to_bytes()).into()),
                    ]),
                ));
                if let Some(list) = self.prekeys.get(&party) {
                    let prekeys: Vec<Value> = list
                        .iter()
                        .map(|(id, k)| {
                            let mut o = vec![
                                ("id", Value::from(*id)),
                                ("kind", if *id == 1 { "signed" } else { "one-time" }.into()),
                                ("private", hex(k.expose()).into()),
                                ("public", hex(k.public_key().as_bytes()).into()),
                            ];
                            if *id == 1 {
                                o.push((
                                    "signature",
                                    hex(pair.sign_prekey(1, k.public_key()).signature.as_bytes())
                                        .into(),
                                ));
                            }
                            object(o)
                        })
                        .collect();
                    fields.push(("prekeys", Value::Array(prekeys)));
                }
            }
            parties.push((party.label(), object(fields)));
        }
        let links: Vec<Value> = self
            .link_models
            .iter()
            .map(|m| {
                let mut fields = vec![
                    ("link", Value::from(m.id)),
                    ("client", m.client.label().into()),
                    ("client_ephemeral", key_json(&m.client_ephemeral)),
                    ("server_ephemeral", m.server_ephemeral.as_ref().map_or(Value::Null, key_json)),
                ];
                if let Some(t) = &m.trace {
                    fields.extend([
                        ("handshake_hash", hex(t.handshake_hash).into()),
                        ("k1_client_to_server", hex(t.k1).into()),
                        ("k2_server_to_client", hex(t.k2).into()),
                    ]);
                }
                object(fields)
            })
            .collect();
        let mut run = vec![
            ("id", id.into()),
            ("comment", comment.into()),
            ("protocol", self.protocol.label().into()),
            ("seed", seed.into()),
            ("rng", "ChaCha20Rng::seed_from_u64(seed) (rand_chacha 0.10): each draw is the next 32 bytes of its stream".into()),
            ("script", script.iter().map(describe).collect()),
            ("rng_draws", Value::Array(draws)),
            ("parties", object(parties)),
            ("links", Value::Array(links)),
        ];
        if let Some(session) = &self.session {
            run.push(("x3dh", session.x3dh.clone()));
            let chains: Vec<Value> = session
                .chains
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    object(vec![
                        ("chain", i.into()),
                        ("owner", c.owner.label().into()),
                        ("ratchet_key", key_json(&c.ratchet_key)),
                        ("peer_ratchet_key", hex(c.peer_key.as_bytes()).into()),
                        ("dh_out", hex(c.dh_out).into()),
                        ("RK_before", hex(c.rk_before).into()),
                        ("RK_after", hex(c.rk_after).into()),
                        ("CK_0", hex(c.ck).into()),
                    ])
                })
                .collect();
            run.push(("ratchet_chains", Value::Array(chains)));
        }
        let mut summary =
            vec![("delivered", self.delivered.iter().map(|s| Value::from(s.as_str())).collect())];
        if self.protocol == Protocol::E2e {
            let (alice, bob) = (name(Party::Alice)?, name(Party::Bob)?);
            summary.push((
                "safety_numbers",
                object(vec![
                    (
                        "alice",
                        self.alice
                            .safety_number(&bob)
                            .map_or(Value::Null, |s| s.to_string().into()),
                    ),
                    (
                        "bob",
                        self.bob
                            .safety_number(&alice)
                            .map_or(Value::Null, |s| s.to_string().into()),
                    ),
                ]),
            ));
        }
        run.push(("cases", Value::Array(self.cases)));
        run.push(("summary", object(summary)));
        Ok(object(run))
    }
}

fn describe(act: &Act) -> Value {
    match act {
        Act::Step(Step::Connect(p)) => format!("{} connects", p.label()),
        Act::Step(Step::Disconnect(p)) => format!("{} disconnects", p.label()),
        Act::Step(Step::Upload(p)) => format!("{} uploads its bundle", p.label()),
        Act::Step(Step::Send { from, text }) => format!("{} sends {text:?}", from.label()),
        Act::Step(Step::SendLate { from, text }) => {
            format!("{} writes {text:?} now and it goes out after its next send", from.label())
        }
        Act::ReplayLastFrame { to } => {
            format!("network attacker: replays the last frame {} received", to.label())
        }
        Act::TamperNextFrame { from, text } => {
            format!("{} sends {text:?}; network attacker flips a bit of it first", from.label())
        }
        Act::ServerReplaysDelivery { to, id, new_id } => format!(
            "server: seals its delivery #{id} to {} again{}",
            to.label(),
            new_id.map_or_else(String::new, |id| format!(" under id {id}"))
        ),
        Act::ServerTampersNextEnvelope { from, text } => {
            format!("{} sends {text:?}; server delivers a tampered copy first", from.label())
        }
    }
    .into()
}

/// One run of a transcript file: its id and comment, the seed, the runner script, and the attacks
/// played after it.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run's id, prefix of its case ids.
    pub id: &'static str,
    /// What the run shows.
    pub comment: &'static str,
    /// The RNG seed.
    pub seed: u64,
    /// The script, exactly as [`crate::run`] plays it.
    pub script: Vec<Step>,
    /// What happens after the script.
    pub attacks: Vec<Act>,
}

/// Runs `spec` and returns the run's JSON; checks that the frames of its script equal those of
/// [`crate::run`] for the same script and seed.
///
/// # Errors
/// A role error on a frame the run produced, or a disagreement with a model or with the runner.
pub fn run(protocol: Protocol, spec: &RunSpec) -> Result<Value, VectorError> {
    let RunSpec { id, comment, seed, script: runner_script, attacks } = spec;
    let seed = *seed;
    let mut driver = Driver::new(protocol, seed, id)?;
    let mut script: Vec<Act> = runner_script.iter().cloned().map(Act::Step).collect();
    for act in &script {
        driver.act(act)?;
    }
    driver.flush_late()?;
    let reference = crate::run(&RunConfig {
        protocol,
        seed,
        script: runner_script.to_vec(),
        policy: AllowAll,
        mitm: false,
        verified: false,
    })?;
    let ours: Vec<&str> = driver.cases.iter().filter_map(|c| c["frame"].as_str()).collect();
    let theirs: Vec<&str> = reference.events.iter().map(|e| e.frame_hex.as_str()).collect();
    if ours != theirs {
        return Err(VectorError::mismatch(
            "frames against drivers::run",
            &theirs.len(),
            &ours.len(),
        ));
    }
    for act in attacks {
        driver.act(act)?;
    }
    script.extend(attacks.iter().cloned());
    driver.into_json(id, comment, seed, &script)
}

/// Compares a file's run with a fresh one, case by case: one verdict per case, plus one for the
/// run's other fields.
pub fn verify_run(file_run: &Value, fresh: &Value) -> Vec<CaseResult> {
    let id = file_run["id"].as_str().unwrap_or("(run)");
    let mut results = Vec::new();
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("cases");
        }
        v
    };
    results.push(CaseResult::from_check(
        &format!("{id}/setup"),
        compare_json(id, &strip(file_run), &strip(fresh)),
    ));
    let empty = Vec::new();
    let file_cases = file_run["cases"].as_array().unwrap_or(&empty);
    let fresh_cases = fresh["cases"].as_array().unwrap_or(&empty);
    for (i, case) in file_cases.iter().enumerate() {
        let case_id =
            str_field(case, "id").map_or_else(|_| format!("{id}/case-{i}"), str::to_owned);
        let check = fresh_cases.get(i).map_or_else(
            || Err(VectorError::mismatch(&case_id, &"a case", &"none")),
            |fresh_case| compare_json(&case_id, case, fresh_case),
        );
        results.push(CaseResult::from_check(&case_id, check));
    }
    if fresh_cases.len() > file_cases.len() {
        results.push(CaseResult::from_check(
            &format!("{id}/missing"),
            Err(VectorError::mismatch("cases", &file_cases.len(), &fresh_cases.len())),
        ));
    }
    results
}
