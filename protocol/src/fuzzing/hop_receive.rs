//! `e2e_receive`'s hop mode (an input whose first byte has bit 1 set): frames into a **hop-only**
//! client from a hostile server end (SPEC.md §5.1, §5.3, §7.2).
//!
//! The client (`bob`, no e2e identity) is a real [`Client`]; the server end of its channel is
//! driven by hand with the server's key, as a malicious server would, so any message can be sealed
//! into the channel and any handshake answer given to its `connect`. What `e2e_receive`'s Bob
//! cannot show, speaking e2e, this one does: the hop id window and the handshake's refusals.
//!
//! Invariants: a hop `Deliver` is accepted, once, exactly when a model of SPEC.md §5.3 — the set
//! of ids accepted per sender, not the client's bitmap — says so, and refused with `Replayed` or
//! `OutOfWindow` exactly when it says which; every refused content (`Dropped`) leaves the client
//! `==` to a clone that was handed a message no client expects, sealed under the same nonce (only
//! the channel moved); a hop-only client answers no server message; `Refused` takes it offline;
//! a frame outside the channel, or an earlier one again, is an error and changes nothing; the
//! answer to `connect` is a `Welcome` under its own name (online, `Ready` sent), a `Refused`
//! (offline, reported), or an error that changes nothing — a `Welcome` under another name is
//! `WrongName` — after which the genuine answer to the same handshake still brings it online; and
//! at the end a fresh id from every sender is still accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use rand_chacha::ChaCha20Rng;

use crate::channel::{MAX_NOISE_MESSAGE_LEN, PROLOGUE, Responder, TRANSPORT_OVERHEAD, Transport};
use crate::error::{Error, ProtocolError};
use crate::roles::{Client, ClientEvent, ClientOutputs, Protection, REPLAY_WINDOW};
use crate::suite::PrivateKey;
use crate::wire::{Body, Codec, LinkFrame, Message, MessageId, Name, RefusalReason};

use super::hop_server::body_of;
use super::input::{Bytes, Encode, NameChoice, SmallBytes, decode_all, variant};
use super::net::{assert_only_the_channel_moved, hand_serve, open, rng, seal};
use super::{fail, must};

/// Which id a `Deliver` carries, relative to the highest the model accepted from its sender.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub enum HopId {
    /// One above the highest: accepted.
    Next,
    /// `n` below the highest (0 when that is below 0): the window's edge is at 64.
    Back(u8),
    /// Exactly this id.
    Exact(u64),
}

impl Encode for HopId {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Next => variant(out, 0, 3),
            Self::Back(n) => {
                variant(out, 1, 3);
                n.encode(out);
            }
            Self::Exact(id) => {
                variant(out, 2, 3);
                id.encode(out);
            }
        }
    }
}

/// Why a server end refuses the registration.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reason {
    /// `NameTaken`.
    NameTaken,
    /// `NotARegistration`.
    NotARegistration,
    /// `KeyInUse`.
    KeyInUse,
    /// `ServerFull`.
    ServerFull,
}

impl Reason {
    const fn wire(self) -> RefusalReason {
        match self {
            Self::NameTaken => RefusalReason::NameTaken,
            Self::NotARegistration => RefusalReason::NotARegistration,
            Self::KeyInUse => RefusalReason::KeyInUse,
            Self::ServerFull => RefusalReason::ServerFull,
        }
    }
}

impl Encode for Reason {
    fn encode(&self, out: &mut Vec<u8>) {
        variant(out, *self as u32, 4);
    }
}

/// What the server end answers the client's handshake with (handshake message 2's payload).
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum Answer {
    /// `Welcome` under the client's name.
    Welcome,
    /// `Welcome` under this name (`WrongName` unless it is the client's).
    WelcomeAs(NameChoice),
    /// `Refused`.
    Refused(Reason),
    /// Arbitrary bytes.
    Payload(Bytes),
}

impl Encode for Answer {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Welcome => variant(out, 0, 4),
            Self::WelcomeAs(name) => {
                variant(out, 1, 4);
                name.encode(out);
            }
            Self::Refused(reason) => {
                variant(out, 2, 4);
                reason.encode(out);
            }
            Self::Payload(bytes) => {
                variant(out, 3, 4);
                bytes.encode(out);
            }
        }
    }
}

/// One step.
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum Op {
    /// A hop `Deliver`, sealed in the channel.
    Deliver {
        /// The claimed sender.
        from: NameChoice,
        /// Its id.
        id: HopId,
        /// The body.
        body: SmallBytes,
    },
    /// Arbitrary bytes sealed in the channel.
    Plaintext(Bytes),
    /// Arbitrary bytes as a frame, outside the channel.
    Raw(Bytes),
    /// A frame the server end sealed before (`index` modulo their number), again.
    ReplayFrame(u8),
    /// The connection ends; the client connects again and the server end answers so. Skipped
    /// past [`MAX_CONNECTS`].
    Reconnect(Answer),
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 5;
        match self {
            Self::Deliver { from, id, body } => {
                variant(out, 0, N);
                from.encode(out);
                id.encode(out);
                body.encode(out);
            }
            Self::Plaintext(bytes) => {
                variant(out, 1, N);
                bytes.encode(out);
            }
            Self::Raw(bytes) => {
                variant(out, 2, N);
                bytes.encode(out);
            }
            Self::ReplayFrame(index) => {
                variant(out, 3, N);
                index.encode(out);
            }
            Self::Reconnect(answer) => {
                variant(out, 4, N);
                answer.encode(out);
            }
        }
    }
}

/// The most handshakes one input runs (~0.5 ms each, where a refused `Deliver` costs
/// microseconds), by [`Op::Reconnect`] or after a `Refused`; later [`Op::Reconnect`]s are skipped,
/// and a `Refused` past it ends the run. Two: a hostile answer and the reconnection a `Refused`
/// needs.
pub const MAX_CONNECTS: usize = 2;

/// The hop-only client online, with the server end in hand.
#[derive(Clone)]
struct World {
    bob: Client,
    server_end: Transport,
    server_key: PrivateKey,
    rng: ChaCha20Rng,
}

/// The starting point, made once: the client's first handshake.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut rng = rng(0x484f50);
        let server_key = PrivateKey::generate(&mut rng);
        let key = PrivateKey::generate(&mut rng);
        let mut bob = Client::new(NameChoice::Bob.name(), key, server_key.public_key());
        let server_end = hand_serve(&mut bob, &server_key, &mut rng);
        World { bob, server_end, server_key, rng }
    })
}

/// The state of one run.
struct Run {
    bob: Client,
    server_end: Transport,
    server_key: PrivateKey,
    rng: ChaCha20Rng,
    /// The model of SPEC.md §5.3: every id accepted from each sender.
    accepted: BTreeMap<Name, BTreeSet<u64>>,
    /// Every frame the server end sealed.
    frames: Vec<Vec<u8>>,
    /// How many handshakes this run made.
    connects: usize,
    /// The input asked for more than this run may do (a `Refused` with no handshake left) or the
    /// client accepted a frame nobody sealed (libFuzzer, tracing the tag comparison, can learn a
    /// valid tag; no real attacker can): the rest of it is skipped, as are the final checks.
    ended: bool,
}

/// Runs the operations decoded from `data` (the input after its first byte) against the hop-only
/// client, then checks that it still accepts a fresh message from every sender.
pub fn hop_receive(data: &[u8]) {
    let Some(((), ops)) = decode_all::<(), Op>(data) else { return };
    let world = world().clone();
    let mut run = Run {
        bob: world.bob,
        server_end: world.server_end,
        server_key: world.server_key,
        rng: world.rng,
        accepted: BTreeMap::new(),
        frames: Vec::new(),
        connects: 0,
        ended: false,
    };
    for op in &ops {
        if run.ended {
            return;
        }
        run.step(op);
    }
    run.finish();
}

impl Run {
    fn step(&mut self, op: &Op) {
        match op {
            Op::Deliver { from, id, body } => {
                let (from, body) = (from.name(), body_of(&body.0));
                let id = self.id(&from, *id);
                self.deliver(&Message::Deliver { id, from, body }.encode());
            }
            Op::Plaintext(bytes) => self.deliver(&bytes.0),
            Op::Raw(bytes) => self.outside(&bytes.0),
            Op::ReplayFrame(index) => {
                let Some(i) = usize::from(*index).checked_rem(self.frames.len()) else { return };
                self.outside(&self.frames[i].clone());
            }
            Op::Reconnect(answer) => {
                if self.connects < MAX_CONNECTS {
                    self.bob.disconnect();
                    self.connect(answer);
                }
            }
        }
    }

    /// The highest id the model accepted from `from` (0: none).
    fn highest(&self, from: &Name) -> u64 {
        self.accepted.get(from).and_then(|ids| ids.last()).copied().unwrap_or(0)
    }

    fn id(&self, from: &Name, id: HopId) -> MessageId {
        let highest = self.highest(from);
        MessageId(match id {
            HopId::Next => highest.saturating_add(1),
            HopId::Back(n) => highest.saturating_sub(u64::from(n)),
            HopId::Exact(id) => id,
        })
    }

    /// SPEC.md §5.3's verdict on `id` from `from`: `None` to accept, else the refusal. With four
    /// senders at most, no window is ever evicted (`MAX_PEERS` is 256).
    fn verdict(&self, from: &Name, id: u64) -> Option<ProtocolError> {
        let highest = self.highest(from);
        let (from, id) = (from.clone(), MessageId(id));
        if id.0 == 0 || (id.0 <= highest && highest - id.0 >= REPLAY_WINDOW) {
            Some(ProtocolError::OutOfWindow { from, id })
        } else if self.accepted.get(&from).is_some_and(|ids| ids.contains(&id.0)) {
            Some(ProtocolError::Replayed { from, id })
        } else {
            None
        }
    }

    /// Seals `plaintext` into the client's channel and checks what it makes of it.
    fn deliver(&mut self, plaintext: &[u8]) {
        let plaintext =
            plaintext.get(..MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD).unwrap_or(plaintext);
        let before = (self.bob.clone(), self.server_end.clone());
        let frame = seal(&mut self.server_end, plaintext);
        self.frames.push(frame.clone());
        // The frame authenticates, so it is never an error: refused content is `Dropped` (§7.2).
        let out = must(self.bob.handle(&frame, &mut self.rng), "an authentic frame");
        assert!(out.transmit.is_empty(), "a hop-only client answered the server: {out:?}");
        if out.events.iter().any(|e| matches!(e, ClientEvent::Dropped { .. })) {
            assert_only_the_channel_moved(before, &self.bob, &out, &mut self.rng);
        }
        match Message::decode(plaintext) {
            Ok(Message::Deliver { id, from, body }) => self.check_deliver(&out, id, from, body),
            Ok(Message::Refused { reason }) => {
                // §5.1: `Refused` on an open channel (the answer to `Ready` when the name was bound
                // meanwhile) takes the client offline; it must connect again to go on.
                assert_eq!(out.events, [ClientEvent::Refused(reason)], "{out:?}");
                assert!(!self.bob.is_connected(), "online after Refused");
                self.connect(&Answer::Welcome);
            }
            _ => assert!(
                !out.events.iter().any(|e| matches!(e, ClientEvent::Received { .. })),
                "received what was no Deliver: {out:?}"
            ),
        }
    }

    /// Checks the client's verdict on a `Deliver` against the model's, and records an acceptance.
    fn check_deliver(&mut self, out: &ClientOutputs, id: MessageId, from: Name, body: Body) {
        match self.verdict(&from, id.0) {
            Some(refusal) => {
                let want = ClientEvent::Dropped { error: Error::Protocol(refusal) };
                assert_eq!(out.events, [want], "§5.3 refuses {from} {id:?}");
            }
            None => {
                let ids = self.accepted.entry(from.clone()).or_default();
                ids.insert(id.0);
                let want = ClientEvent::Received { from, id, body, protection: Protection::Hop };
                assert_eq!(out.events, [want], "§5.3 accepts");
            }
        }
    }

    /// Bytes outside the channel: the client must refuse them and stay as it was.
    fn outside(&mut self, frame: &[u8]) {
        let before = self.bob.clone();
        match self.bob.handle(frame, &mut self.rng) {
            Err(_) => assert!(self.bob == before, "a refused frame changed the client"),
            Ok(_) => self.ended = true, // a learned tag (see `ended`)
        }
    }

    /// The client (offline) connects, and the server end answers with `answer` — then, if that
    /// left the client waiting for an answer, with the genuine `Welcome` to the same handshake.
    /// Within [`MAX_CONNECTS`]; past it, an offline client ends the run.
    fn connect(&mut self, answer: &Answer) {
        if self.connects >= MAX_CONNECTS {
            self.ended = !self.bob.is_connected();
            return;
        }
        self.connects += 1;
        let init = must(self.bob.connect(&mut self.rng), "connect");
        let init = must(LinkFrame::decode(&init), "a malformed HandshakeInit");
        let responder = Responder::new(PROLOGUE, self.server_key.clone());
        let received = must(responder.read_message_1(init.noise()), "message 1 does not open");
        let own = self.bob.name().clone();
        let payload = match answer {
            Answer::Welcome => Message::Welcome { name: own.clone() }.encode(),
            Answer::WelcomeAs(name) => Message::Welcome { name: name.name() }.encode(),
            Answer::Refused(reason) => Message::Refused { reason: reason.wire() }.encode(),
            Answer::Payload(bytes) => bytes.0.clone(),
        };
        let genuine = Message::Welcome { name: own.clone() }.encode();
        for payload in [payload, genuine] {
            // An over-long payload does not fit message 2; the server end cannot send it.
            let Ok((transport, noise)) =
                received.clone().write_message_2(PrivateKey::generate(&mut self.rng), &payload)
            else {
                continue;
            };
            let resp = must(LinkFrame::handshake_resp(noise), "frame").encode();
            let before = self.bob.clone();
            match (self.bob.handle(&resp, &mut self.rng), Message::decode(&payload)) {
                (Ok(out), Ok(Message::Welcome { name })) if name == own => {
                    assert_eq!(out.events, [ClientEvent::Connected], "{out:?}");
                    self.server_end = transport;
                    for frame in &out.transmit {
                        assert_eq!(open(&mut self.server_end, frame), Message::Ready, "no Ready");
                    }
                    assert_eq!(out.transmit.len(), 1, "a hop-only client sends only Ready");
                    return;
                }
                (Ok(out), Ok(Message::Refused { reason })) => {
                    let want = ClientOutputs {
                        transmit: vec![],
                        events: vec![ClientEvent::Refused(reason)],
                    };
                    assert_eq!(out, want, "Refused in answer to the handshake");
                    assert!(!self.bob.is_connected(), "online after Refused");
                    return self.connect(&Answer::Welcome);
                }
                (Ok(out), message) => fail(format_args!("{message:?} answered with {out:?}")),
                (Err(error), message) => {
                    assert!(self.bob == before, "a refused handshake answer changed the client");
                    if let Ok(Message::Welcome { name }) = message {
                        assert_ne!(name, own, "the genuine Welcome refused: {error:?}");
                        assert_eq!(error, Error::Protocol(ProtocolError::WrongName), "{name}");
                    }
                }
            }
        }
        fail("the genuine Welcome did not bring the client online");
    }

    /// A fresh id from every sender is still accepted.
    fn finish(&mut self) {
        if self.ended {
            return;
        }
        for from in [NameChoice::Alice, NameChoice::Bob, NameChoice::Carol, NameChoice::Longest] {
            let from = from.name();
            let id = self.id(&from, HopId::Next);
            if self.verdict(&from, id.0).is_none() {
                self.deliver(&Message::Deliver { id, from, body: body_of(b"after") }.encode());
            }
        }
    }
}
