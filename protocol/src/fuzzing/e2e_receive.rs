//! `e2e_receive`: frames into Bob's e2e session (SPEC.md §11.2–§11.3, §12.4, §13, §15.3, §7.2).
//!
//! Bob is a real [`Client`]; the server end of his channel is driven by hand (it holds the server's
//! key, as a malicious server would), so any envelope or plaintext can be sealed into the channel.
//! Alice is a bare [`Peers`]: her envelopes are the genuine ones.
//!
//! Invariants: a call that fails leaves Bob `==` to a clone from before; content that is refused
//! (`Dropped`) leaves Bob `==` to a clone that was handed a message it never expects, sealed with
//! the same nonce (so only the channel moved); an envelope is accepted only if Alice sealed it,
//! only as hers (`Protection::E2e` with Alice's identity), and only once, whatever id it travels
//! under — e2e ids are the server's labels, checked by no window (§15.3): replay protection is the
//! ratchet's; Bob accepts no hop message: every hop `Deliver` is refused with
//! `Unexpected { state: "e2e", got: "Deliver" }`, and no `Received` is ever `Protection::Hop`;
//! `PrekeysLow { n }` is answered with one upload of `min(10, 100 − n)` new one-time prekeys under
//! Bob's identity and signed prekey (`PrekeysReplenished`), or nothing if there is no room; every
//! other message Bob handles sends nothing; and every genuine envelope still decrypts afterwards,
//! in any order, under any id, and across Alice's session restarts, followed by a new one — except
//! one that would start a session on a one-time prekey Bob no longer holds: a server that lies in
//! `PrekeysLow` makes him draw keys past `MAX_HELD_ONE_TIME_PREKEYS`, and the oldest go (SPEC.md
//! §10.2, §15.3), so such a prekey message fails `UnknownPrekey`, as a refusal (nothing changes).
//!
//! An input whose first byte has bit 1 set drives a hop-only client instead (`hop_receive`).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use rand_chacha::ChaCha20Rng;

use crate::channel::Transport;
use crate::e2e::envelope::{EnvelopeBody, ParsedEnvelope, RatchetMessage};
use crate::e2e::peers::Peers;
use crate::e2e::x3dh::PrekeyHeader;
use crate::e2e::{
    E2eError, MAX_HELD_ONE_TIME_PREKEYS, MAX_ONE_TIME_PREKEYS, ONE_TIME_PREKEYS_PER_UPLOAD,
};
use crate::error::{Error, ProtocolError};
use crate::roles::{Client, ClientEvent, ClientOutputs, Protection};
use crate::suite::{PrivateKey, PublicKey};
use crate::wire::{
    Body, Codec, Envelope, FetchedBundle, Message, MessageId, Name, OneTimePrekeyPublic,
    UploadedBundle,
};

use super::hop_receive::hop_receive;
use super::hop_server::{body_of, envelope_of};
use super::input::{Bytes, Encode, Mutation, NameChoice, SmallBytes, decode_all, variant};
use super::net::{assert_only_the_channel_moved, hand_serve, open, rng, seal};
use super::{fail, must};

/// Which id an envelope travels under.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Id {
    /// One above every id Bob accepted from alice: a plausible label (e2e ids are not checked,
    /// §15.3; any id must do).
    Fresh,
    /// Exactly this id.
    Exact(u64),
}

impl Encode for Id {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Fresh => variant(out, 0, 2),
            Self::Exact(id) => {
                variant(out, 1, 2);
                id.encode(out);
            }
        }
    }
}

/// One step.
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum Op {
    /// Alice encrypts a message; it waits, undelivered.
    Seal(SmallBytes),
    /// A waiting genuine envelope (`index` modulo their number) is delivered from alice.
    Deliver {
        /// Which envelope.
        index: u8,
        /// Its id.
        id: Id,
    },
    /// A genuine envelope, waiting or delivered (`index` modulo their number), mutated, from alice.
    Mutate {
        /// Which envelope.
        index: u8,
        /// What is done to it.
        mutation: Mutation,
        /// Its id.
        id: Id,
    },
    /// An envelope already delivered, again.
    Replay {
        /// Which envelope.
        index: u8,
        /// Its id.
        id: Id,
    },
    /// Arbitrary envelope bytes, as `E2eDeliver` from anyone.
    Forge {
        /// The claimed sender.
        from: NameChoice,
        /// Its id.
        id: Id,
        /// The envelope.
        envelope: Bytes,
    },
    /// Arbitrary bytes sealed in Bob's channel.
    Plaintext(Bytes),
    /// A hop `Deliver`, sealed in Bob's channel.
    HopDeliver {
        /// The claimed sender.
        from: NameChoice,
        /// Its id.
        id: Id,
        /// The body.
        body: SmallBytes,
    },
    /// Arbitrary bytes as a frame, outside the channel.
    Raw(Bytes),
    /// A frame the server end sealed before (`index` modulo their number), again.
    ReplayFrame(u8),
    /// Bob sends Alice a message (Alice must decrypt it): the DH ratchet turns.
    Reply(SmallBytes),
    /// Bob's connection ends and he connects again.
    Reconnect,
    /// A waiting genuine envelope delivered as from someone else: names are bound into the
    /// session (SPEC.md §11.1 `AD`), so Bob must not accept it.
    Relabel {
        /// Which envelope.
        index: u8,
        /// The name it is delivered under.
        from: NameChoice,
        /// Its id.
        id: Id,
    },
    /// Alice fetches Bob's bundle again and starts a new session (new base key, the next one-time
    /// prekey); Bob keeps replaced sessions and still opens their messages. Ignored after
    /// [`MAX_RESTARTS`] restarts.
    Restart,
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 13;
        match self {
            Self::Seal(body) => {
                variant(out, 0, N);
                body.encode(out);
            }
            Self::Deliver { index, id } => {
                variant(out, 1, N);
                index.encode(out);
                id.encode(out);
            }
            Self::Mutate { index, mutation, id } => {
                variant(out, 2, N);
                index.encode(out);
                mutation.encode(out);
                id.encode(out);
            }
            Self::Replay { index, id } => {
                variant(out, 3, N);
                index.encode(out);
                id.encode(out);
            }
            Self::Forge { from, id, envelope } => {
                variant(out, 4, N);
                from.encode(out);
                id.encode(out);
                envelope.encode(out);
            }
            Self::Plaintext(bytes) => {
                variant(out, 5, N);
                bytes.encode(out);
            }
            Self::HopDeliver { from, id, body } => {
                variant(out, 6, N);
                from.encode(out);
                id.encode(out);
                body.encode(out);
            }
            Self::Raw(bytes) => {
                variant(out, 7, N);
                bytes.encode(out);
            }
            Self::ReplayFrame(index) => {
                variant(out, 8, N);
                index.encode(out);
            }
            Self::Reply(body) => {
                variant(out, 9, N);
                body.encode(out);
            }
            Self::Reconnect => variant(out, 10, N),
            Self::Relabel { index, from, id } => {
                variant(out, 11, N);
                index.encode(out);
                from.encode(out);
                id.encode(out);
            }
            Self::Restart => variant(out, 12, N),
        }
    }
}

/// The most [`Op::Restart`]s one input runs; later ones are skipped, as if the input did not hold
/// them. A restart is a session set-up on each side (X3DH: a dozen X25519 and a signature check,
/// ~0.7 ms; README "Benchmarks"), and an input of nothing but restarts would otherwise cost a second.
/// Two exercise a replaced session and one replaced twice; `MAX_ARCHIVED_SESSIONS` (4), beyond
/// which old sessions are retired by design, is out of reach either way.
pub const MAX_RESTARTS: usize = 2;

/// The most reconnections one input runs (a Noise handshake, ~0.5 ms), by [`Op::Reconnect`] or
/// after a `Refused`; later [`Op::Reconnect`]s are skipped, and a `Refused` past it ends the run.
/// One shows that Bob's e2e state survives a new channel.
pub const MAX_RECONNECTS: usize = 1;

/// The most [`Op::Reply`]s one input runs; later ones are skipped. Each turns the DH ratchet twice
/// (Alice reads the reply, Bob reads her next message: ~0.26 ms); two make Alice's and Bob's
/// sending chains each replaced at least once.
pub const MAX_REPLIES: usize = 2;

/// The most prekey messages one input hands Bob through [`Op::Mutate`], [`Op::Replay`],
/// [`Op::Forge`] and [`Op::Relabel`]; later ones are skipped. Bob answers a prekey message he has no
/// session for with X3DH before its MAC can be checked (four X25519 and a signature check, ~0.25
/// ms): that check is what these operations test, and a few of them per input test it as well as a
/// hundred. Ratchet messages, which cost microseconds, are not counted.
pub const MAX_ADVERSARIAL_PREKEY_MESSAGES: usize = 4;

/// Bob online with the server end in hand, Alice with a session to him.
#[derive(Clone)]
struct World {
    bob: Client,
    server_end: Transport,
    server_key: PrivateKey,
    alice: Peers,
    /// Bob's bundle as he uploaded it, and the index of the next one-time prekey to hand out.
    bundle: UploadedBundle,
    next_one_time: usize,
    /// The ids of the one-time private keys Bob holds, as SPEC.md §10.2 says they go: all he made,
    /// less those a session started with, less the oldest beyond `MAX_HELD_ONE_TIME_PREKEYS`.
    held_one_time: BTreeSet<u32>,
    /// The base keys of the sessions Bob started (from Alice's prekey messages he accepted).
    started: Vec<PublicKey>,
    /// The highest id Bob accepted from alice.
    last_id: u64,
    rng: ChaCha20Rng,
}

/// Two starting points: Bob has accepted Alice's first prekey message but Alice has not heard back
/// (her envelopes are still prekey messages), or both have sent and received (ratchet messages, the
/// DH ratchet turned). Bob's first session is made here, once: starting a session costs a dozen
/// X25519s, most of an input's budget ([`Op::Restart`] makes more).
fn worlds() -> &'static (World, World) {
    static WORLDS: OnceLock<(World, World)> = OnceLock::new();
    WORLDS.get_or_init(|| {
        let mut rng = rng(0x453245);
        let server_key = PrivateKey::generate(&mut rng);
        let peers = Peers::generate(&mut rng);
        let key = PrivateKey::generate(&mut rng);
        let mut bob_client = Client::with_e2e(bob(), key, server_key.public_key(), peers);
        let mut server_end = hand_serve(&mut bob_client, &server_key, &mut rng);
        let upload = must(bob_client.upload_bundle(), "upload");
        let Message::UploadBundle { bundle } = open(&mut server_end, &upload) else {
            fail("set-up: Bob uploaded no UploadBundle");
        };
        let held_one_time = bundle.one_time_prekeys().iter().map(|p| p.id).collect();
        let world = World {
            bob: bob_client,
            server_end,
            server_key,
            alice: Peers::generate(&mut rng),
            bundle,
            next_one_time: 0,
            held_one_time,
            started: Vec::new(),
            last_id: 0,
            rng,
        };
        let mut run = Run::new(&world);
        run.step(&Op::Restart);
        run.step(&Op::Seal(SmallBytes(b"hello".to_vec())));
        run.step(&Op::Deliver { index: 0, id: Id::Fresh });
        run.restarts = 0;
        run.replies = 0;
        let unanswered = run.world();
        for text in [&b"hi"[..], b"again"] {
            run.step(&Op::Reply(SmallBytes(text.to_vec())));
            run.step(&Op::Seal(SmallBytes(text.to_vec())));
            run.step(&Op::Deliver { index: 0, id: Id::Fresh });
        }
        (unanswered, run.world())
    })
}

fn alice() -> Name {
    NameChoice::Alice.name()
}

fn bob() -> Name {
    NameChoice::Bob.name()
}

/// The state of one run.
struct Run {
    bob: Client,
    server_end: Transport,
    server_key: PrivateKey,
    alice: Peers,
    bundle: UploadedBundle,
    next_one_time: usize,
    held_one_time: BTreeSet<u32>,
    started: Vec<PublicKey>,
    last_id: u64,
    rng: ChaCha20Rng,
    /// How many times Alice restarted her session in this run.
    restarts: usize,
    /// How many [`Op::Reconnect`]s and [`Op::Reply`]s this run made.
    reconnects: usize,
    replies: usize,
    /// How many prekey messages the adversarial operations delivered.
    adversarial_prekey_messages: usize,
    /// Genuine envelopes not yet accepted, with their plaintexts.
    waiting: Vec<(Envelope, Body)>,
    /// Genuine envelopes Bob accepted.
    delivered: Vec<Envelope>,
    /// Every frame the server end sealed.
    frames: Vec<Vec<u8>>,
    /// The one-time prekeys Bob published in this run, answering `PrekeysLow`.
    replenished: Vec<OneTimePrekeyPublic>,
    /// The input asked for more than this run may do (a server `Refused` Bob, who went offline, with
    /// no reconnection left, [`MAX_RECONNECTS`]): the rest of it is skipped, as the operations over
    /// a bound are, and so is [`Run::finish`], which needs Bob online.
    ended: bool,
    /// Bob accepted a frame or an envelope nobody sealed: libFuzzer, which traces the comparison of
    /// expected and received AEAD tags, can learn a valid tag (no real attacker can). Such a frame
    /// may consume keys the genuine messages need, so from then on their delivery is not checked.
    forged: bool,
}

/// Runs the operations decoded from `data` against Bob, then checks that genuine messages still
/// decrypt. The first byte picks the client: bit 0 Bob's starting point (established, or his first
/// prekey message unanswered), bit 1 a hop-only client instead, which `hop_receive` drives with
/// the rest of the input.
pub fn e2e_receive(data: &[u8]) {
    if let Some((mode, rest)) = data.split_first()
        && mode & 2 != 0
    {
        return hop_receive(rest);
    }
    let Some((established, ops)) = decode_all::<bool, Op>(data) else { return };
    let (unanswered, ready) = worlds();
    let mut run = Run::new(if established { ready } else { unanswered });
    for op in &ops {
        run.step(op);
    }
    run.finish();
}

impl Run {
    fn new(world: &World) -> Self {
        let world = world.clone();
        Self {
            bob: world.bob,
            server_end: world.server_end,
            server_key: world.server_key,
            alice: world.alice,
            bundle: world.bundle,
            next_one_time: world.next_one_time,
            held_one_time: world.held_one_time,
            started: world.started,
            last_id: world.last_id,
            rng: world.rng,
            restarts: 0,
            reconnects: 0,
            replies: 0,
            adversarial_prekey_messages: 0,
            waiting: Vec::new(),
            delivered: Vec::new(),
            frames: Vec::new(),
            replenished: Vec::new(),
            ended: false,
            forged: false,
        }
    }

    /// The roles as a starting point for other runs.
    fn world(&self) -> World {
        World {
            bob: self.bob.clone(),
            server_end: self.server_end.clone(),
            server_key: self.server_key.clone(),
            alice: self.alice.clone(),
            bundle: self.bundle.clone(),
            next_one_time: self.next_one_time,
            held_one_time: self.held_one_time.clone(),
            started: self.started.clone(),
            last_id: self.last_id,
            rng: self.rng.clone(),
        }
    }

    fn id(&self, id: Id) -> Option<MessageId> {
        match id {
            Id::Fresh => self.last_id.checked_add(1).map(MessageId),
            Id::Exact(id) => Some(MessageId(id)),
        }
    }

    fn step(&mut self, op: &Op) {
        if self.ended {
            return;
        }
        match op {
            Op::Seal(body) => {
                let body = body_of(&body.0);
                let envelope = must(self.alice.encrypt(&bob(), &body, &mut self.rng), "encrypt");
                self.waiting.push((envelope, body));
            }
            Op::Deliver { index, id } => {
                let Some(i) = usize::from(*index).checked_rem(self.waiting.len()) else { return };
                let Some(id) = self.id(*id) else { return };
                let (envelope, body) = self.waiting[i].clone();
                let dropped = self.dropped_one_time_prekey(&envelope);
                let out = self.deliver(&Message::E2eDeliver { id, from: alice(), envelope });
                if self.forged {
                    return;
                }
                if let Some(id) = dropped {
                    // §10.2: the session cannot start; `deliver` checked that nothing changed.
                    let error = Error::E2e(E2eError::UnknownPrekey { id });
                    assert_eq!(out.events, [ClientEvent::Dropped { error }], "dropped key {id}");
                    self.waiting.remove(i);
                } else {
                    // §12.4: a genuine message decrypts whatever came before it, in any order, and
                    // whatever id the server gives it (§15.3: e2e ids are labels, not checked).
                    let accepted = out.events.iter().any(|e| {
                        matches!(e, ClientEvent::Received { from, id: got, body: b, .. }
                            if *from == alice() && *got == id && *b == body)
                    });
                    assert!(accepted, "genuine envelope refused: {out:?}");
                }
            }
            Op::Mutate { index, mutation, id } => {
                let all: Vec<&Envelope> =
                    self.waiting.iter().map(|(e, _)| e).chain(&self.delivered).collect();
                let Some(i) = usize::from(*index).checked_rem(all.len()) else { return };
                let Some(id) = self.id(*id) else { return };
                let envelope = envelope_of(&mutation.apply(all[i].as_bytes()));
                if self.within_bound(&envelope) {
                    self.deliver(&Message::E2eDeliver { id, from: alice(), envelope });
                }
            }
            Op::Replay { index, id } => {
                let Some(i) = usize::from(*index).checked_rem(self.delivered.len()) else { return };
                let Some(id) = self.id(*id) else { return };
                let envelope = self.delivered[i].clone();
                if self.within_bound(&envelope) {
                    self.deliver(&Message::E2eDeliver { id, from: alice(), envelope });
                }
            }
            Op::Forge { from, id, envelope } => {
                let Some(id) = self.id(*id) else { return };
                let envelope = envelope_of(&envelope.0);
                if self.within_bound(&envelope) {
                    self.deliver(&Message::E2eDeliver { id, from: from.name(), envelope });
                }
            }
            Op::Plaintext(bytes) => {
                self.deliver_bytes(&bytes.0);
            }
            Op::HopDeliver { from, id, body } => {
                let Some(id) = self.id(*id) else { return };
                let body = body_of(&body.0);
                let out = self.deliver(&Message::Deliver { id, from: from.name(), body });
                // §15.3: a client that speaks e2e refuses every hop message, whoever it claims.
                let refused = ProtocolError::Unexpected { state: "e2e", got: "Deliver" };
                let want = ClientEvent::Dropped { error: Error::Protocol(refused) };
                assert_eq!(out.events, [want], "Bob took a hop Deliver");
            }
            Op::Raw(bytes) => self.outside(&bytes.0),
            Op::ReplayFrame(index) => {
                let Some(i) = usize::from(*index).checked_rem(self.frames.len()) else { return };
                self.outside(&self.frames[i].clone());
            }
            Op::Reply(body) => {
                if self.replies >= MAX_REPLIES {
                    return;
                }
                self.replies += 1;
                let body = body_of(&body.0);
                let before = self.bob.clone();
                match self.bob.send_e2e(&alice(), body.clone(), &mut self.rng) {
                    Ok(out) => {
                        for frame in &out.transmit {
                            if let Message::E2eSend { envelope, .. } =
                                open(&mut self.server_end, frame)
                            {
                                let got = must(
                                    self.alice.decrypt(&alice(), &bob(), &envelope),
                                    "Alice decrypts",
                                );
                                assert_eq!(got.body, body, "Alice read another message");
                            }
                        }
                    }
                    Err(error) => assert!(self.bob == before, "send_e2e changed Bob: {error:?}"),
                }
            }
            Op::Reconnect => {
                if self.reconnects < MAX_RECONNECTS {
                    self.bob.disconnect();
                    self.reconnect();
                }
            }
            Op::Relabel { index, from, id } => {
                let Some(i) = usize::from(*index).checked_rem(self.waiting.len()) else { return };
                let Some(id) = self.id(*id) else { return };
                let envelope = self.waiting[i].0.clone();
                if self.within_bound(&envelope) {
                    self.deliver(&Message::E2eDeliver { id, from: from.name(), envelope });
                }
            }
            Op::Restart => {
                if self.restarts >= MAX_RESTARTS {
                    return;
                }
                self.restarts += 1;
                let fetched = FetchedBundle {
                    identity: *self.bundle.identity(),
                    signed_prekey: *self.bundle.signed_prekey(),
                    one_time_prekey: self
                        .bundle
                        .one_time_prekeys()
                        .get(self.next_one_time)
                        .copied(),
                };
                self.next_one_time += 1;
                let started = self.alice.start_session(&alice(), &bob(), &fetched, &mut self.rng);
                must(started, "Alice starts a session");
            }
        }
    }

    /// Bob (offline) connects again, within [`MAX_RECONNECTS`]; past it, the run ends.
    fn reconnect(&mut self) {
        if self.reconnects >= MAX_RECONNECTS {
            if !self.bob.is_connected() {
                self.ended = true;
            }
            return;
        }
        self.reconnects += 1;
        self.server_end = hand_serve(&mut self.bob, &self.server_key, &mut self.rng);
    }

    /// Whether an adversarial operation may deliver `envelope`: always a ratchet message or bytes
    /// that are not an envelope, a prekey message only within [`MAX_ADVERSARIAL_PREKEY_MESSAGES`].
    fn within_bound(&mut self, envelope: &Envelope) -> bool {
        if prekey_header(envelope).is_none() {
            return true;
        }
        self.adversarial_prekey_messages += 1;
        self.adversarial_prekey_messages <= MAX_ADVERSARIAL_PREKEY_MESSAGES
    }

    /// The one-time prekey `envelope` would start Bob's session on, if he no longer holds it
    /// (SPEC.md §10.2): a genuine prekey message whose session Bob has not started (none of its
    /// messages was accepted) naming a key that [`Run::held_one_time`] has lost.
    fn dropped_one_time_prekey(&self, envelope: &Envelope) -> Option<u32> {
        let prekey = prekey_header(envelope)?;
        let id = prekey.one_time_prekey_id?;
        let started = self.started.contains(&prekey.base_key);
        (!started && !self.held_one_time.contains(&id)).then_some(id)
    }

    /// Seals `message` into Bob's channel and checks what he makes of it.
    fn deliver(&mut self, message: &Message) -> ClientOutputs {
        self.deliver_bytes(&message.encode())
    }

    fn deliver_bytes(&mut self, plaintext: &[u8]) -> ClientOutputs {
        let before = (self.bob.clone(), self.server_end.clone());
        let frame = seal(&mut self.server_end, plaintext);
        self.frames.push(frame.clone());
        // The frame authenticates, so it is never an error: refused content is `Dropped` (§7.2).
        let out = must(self.bob.handle(&frame, &mut self.rng), "an authentic frame");
        if out.events.iter().any(|e| matches!(e, ClientEvent::Dropped { .. })) {
            assert_only_the_channel_moved(before, &self.bob, &out, &mut self.rng);
        }
        let message = Message::decode(plaintext).ok();
        self.check_answer(&out, message.as_ref());
        self.check_received(&out, message.as_ref());
        if let Some(Message::Refused { reason }) = message {
            // §5.1: `Refused` answers `Ready` when the name was bound meanwhile; the client goes
            // offline, whenever it comes, and reports it. It must connect again to go on.
            assert_eq!(out.events, [ClientEvent::Refused(reason)], "{out:?}");
            assert!(!self.bob.is_connected(), "Bob stayed online after Refused");
            self.reconnect();
        }
        out
    }

    /// Reads what Bob sent in answer to `message` (so the server end stays in step with him):
    /// only `PrekeysLow` is answered, with one upload of new one-time prekeys (§15.3).
    fn check_answer(&mut self, out: &ClientOutputs, message: Option<&Message>) {
        let sent: Vec<Message> =
            out.transmit.iter().map(|frame| open(&mut self.server_end, frame)).collect();
        let Some(Message::PrekeysLow { one_time_prekeys }) = message else {
            assert!(sent.is_empty(), "Bob answered {message:?} with {sent:?}");
            return;
        };
        let room = MAX_ONE_TIME_PREKEYS.saturating_sub(usize::from(*one_time_prekeys));
        let made = ONE_TIME_PREKEYS_PER_UPLOAD.min(room);
        if made == 0 {
            assert!(sent.is_empty() && out.events.is_empty(), "no room, yet {out:?}");
            return;
        }
        assert_eq!(out.events, [ClientEvent::PrekeysReplenished { made }], "{sent:?}");
        let [Message::UploadBundle { bundle }] = &sent[..] else {
            fail(format_args!("PrekeysLow answered with {sent:?}"));
        };
        assert_eq!(bundle.identity(), self.bundle.identity(), "uploaded under another identity");
        assert_eq!(bundle.signed_prekey(), self.bundle.signed_prekey(), "another signed prekey");
        let new = bundle.one_time_prekeys();
        assert_eq!(new.len(), made, "the upload carries {} one-time prekeys", new.len());
        let mut published = self.bundle.one_time_prekeys().iter().chain(&self.replenished);
        assert!(
            !published.any(|p| new.iter().any(|k| p.id == k.id || p.key == k.key)),
            "a replenished one-time prekey was published before"
        );
        self.replenished.extend_from_slice(new);
        // §10.2: a replenishment beyond MAX_HELD_ONE_TIME_PREKEYS drops the oldest (lowest ids).
        self.held_one_time.extend(new.iter().map(|p| p.id));
        while self.held_one_time.len() > MAX_HELD_ONE_TIME_PREKEYS {
            self.held_one_time.pop_first();
        }
    }

    /// Checks the `Received` events of one delivery; `message` is what was sealed, if known.
    fn check_received(&mut self, out: &ClientOutputs, message: Option<&Message>) {
        for event in &out.events {
            let ClientEvent::Received { from, id, body, protection } = event else { continue };
            // An e2e client accepts nothing but e2e messages (SPEC.md §15.3). Ids are the server's
            // labels, so "accepted once" is checked per envelope (`accept_genuine`), not per id.
            assert!(
                matches!(protection, Protection::E2e { .. }),
                "accepted a hop message: {event:?}"
            );
            if *from == alice() {
                self.last_id = self.last_id.max(id.0);
            }
            match message {
                Some(Message::E2eDeliver { envelope, .. }) => {
                    self.accept_genuine(from, envelope, body);
                    let alice_identity = Protection::E2e { identity: self.alice.identity() };
                    assert_eq!(*protection, alice_identity, "accepted under another identity");
                }
                Some(_) => {}
                None => self.forged = true,
            }
        }
    }

    /// Bob decrypted `envelope` from `from` to `body`: it must be a genuine envelope not yet accepted
    /// (the ratchet message is what authenticates; a prekey message's handshake fields may differ
    /// once the session exists).
    fn accept_genuine(&mut self, from: &Name, envelope: &Envelope, body: &Body) {
        let message = ratchet_message(envelope);
        let position =
            self.waiting.iter().position(|(genuine, _)| ratchet_message(genuine) == message);
        let Some(i) = position else {
            let replayed = self.delivered.iter().any(|genuine| ratchet_message(genuine) == message);
            assert!(!replayed, "accepted an envelope again: {body:?}");
            // A valid envelope nobody sealed: the fuzzer learned its tag (see `forged`).
            self.forged = true;
            return;
        };
        let (genuine, plaintext) = self.waiting.remove(i);
        assert_eq!(*body, plaintext, "decrypted to another plaintext");
        if let Some(prekey) = prekey_header(&genuine) {
            // §11.2: the session started (or had started) on this one-time prekey, now deleted.
            if let Some(id) = prekey.one_time_prekey_id {
                self.held_one_time.remove(&id);
            }
            if !self.started.contains(&prekey.base_key) {
                self.started.push(prekey.base_key);
            }
        }
        assert_eq!(*from, alice(), "accepted Alice's envelope as {from}'s: relabelled");
        self.delivered.push(genuine);
    }

    /// Bytes outside the channel: Bob must refuse them and stay as he was — unless the fuzzer
    /// learned a valid tag (see `forged`): then the server end skips the nonce Bob consumed.
    fn outside(&mut self, frame: &[u8]) {
        let before = self.bob.clone();
        match self.bob.handle(frame, &mut self.rng) {
            Err(_) => assert!(self.bob == before, "a refused frame changed Bob"),
            Ok(out) => {
                self.forged = true;
                must(self.server_end.write(&[]), "skip a nonce");
                // Whatever Bob sent in answer, the server end reads, to stay in step with him.
                for frame in &out.transmit {
                    open(&mut self.server_end, frame);
                }
                self.check_received(&out, None);
            }
        }
    }

    /// Every genuine envelope still decrypts, and so does a new one.
    fn finish(&mut self) {
        if self.forged || self.ended {
            return;
        }
        self.step(&Op::Seal(SmallBytes(b"after".to_vec())));
        while !self.waiting.is_empty() {
            let before = self.waiting.len();
            self.step(&Op::Deliver { index: 0, id: Id::Fresh });
            if self.last_id == u64::MAX {
                return; // ids exhausted: nothing more can be delivered as fresh
            }
            assert_eq!(self.waiting.len(), before - 1, "a genuine envelope does not decrypt");
        }
    }
}

/// The handshake fields of `envelope` if it parses as a prekey message (without copying its
/// ciphertext, as the receive path parses).
fn prekey_header(envelope: &Envelope) -> Option<PrekeyHeader> {
    ParsedEnvelope::decode(envelope.as_bytes()).ok()?.prekey
}

/// The ratchet message inside an envelope, if it parses.
fn ratchet_message(envelope: &Envelope) -> Option<RatchetMessage> {
    match EnvelopeBody::decode(envelope.as_bytes()).ok()? {
        EnvelopeBody::Prekey { message, .. } | EnvelopeBody::Ratchet(message) => Some(message),
    }
}
