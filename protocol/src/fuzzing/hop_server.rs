//! `hop_server`: sequences of client input into [`Server::handle`] (SPEC.md §5, §6.2, §7.2, §8).
//!
//! The clients are driven by hand — an `Initiator` with the server's public key and a client static
//! key — so the harness can seal *any* plaintext, including arbitrary bytes, into a valid channel.
//! The server runs with small bounds ([`LIMITS`]: three names, 8 KiB of mailboxes) so that the
//! fuzzer reaches them.
//!
//! Invariants: an error changes nothing; refused content changes nothing but the channel; every
//! relay request is answered, once, to its sender, and what is relayed carries the sender's bound
//! name. The harness keeps a model of §5.1 and §5.4 written from the spec — which name is bound to
//! which static key, which links are unconfirmed or confirmed — and checks the server against it:
//! message 1 is refused exactly as §5.1 step 2 says (`NotARegistration`, `NameTaken`, `KeyInUse`,
//! `ServerFull`; a refusal changes nothing), and a `Welcome` binds nothing yet and closes the older
//! unconfirmed link of the name; `Ready` on an unconfirmed link checks the binding again, and then
//! either binds the name to the link's key, closes the older confirmed link and delivers the
//! mailbox, or sends `Refused` in the channel and closes the link; anything else on an unconfirmed
//! link is refused; a relay request is answered as §5.2 and §5.4 say (`UnknownRecipient` for a name
//! not bound, relayed to a confirmed link, else `ServerFull` beyond the total of queued bytes —
//! `49 + len(content)` each —, `MailboxFull` beyond `MAILBOX_CAPACITY`, else queued); and the
//! server never holds more than its bound of queued bytes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use rand_chacha::ChaCha20Rng;

use crate::roles::{LinkId, MAILBOX_CAPACITY, Server, ServerEvent, ServerLimits, ServerOutputs};
use crate::suite::{PrivateKey, PublicKey};
use crate::wire::{
    AckStatus, Body, Codec, Envelope, LinkFrame, LinkKind, MAX_BODY_LEN, MAX_ENVELOPE_LEN, Message,
    MessageId, Name, RefusalReason, RejectReason,
};

use super::input::{Bytes, Encode, NameChoice, decode_all, variant};
use super::net::{HandClient, hand_handshake, hand_register, open, rng, seal};
use super::{fail, must};

/// A message a client end seals (the server's own messages are in the list too: it must refuse
/// them).
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum Request {
    /// Key confirmation (§5.1).
    Ready,
    /// A registration inside the channel (only valid in handshake message 1).
    Register(NameChoice),
    /// Hop relay (§5.2).
    Send {
        /// Id.
        id: u64,
        /// Recipient.
        to: NameChoice,
        /// Content, cut to `MAX_BODY_LEN`.
        body: Bytes,
    },
    /// e2e relay (§15.2).
    E2eSend {
        /// Id.
        id: u64,
        /// Recipient.
        to: NameChoice,
        /// Envelope, cut to `1..=MAX_ENVELOPE_LEN` bytes.
        envelope: Bytes,
    },
    /// Ask for a bundle (§15.2).
    FetchBundle(NameChoice),
    /// A server-to-client message, which the server must refuse.
    Deliver {
        /// Id.
        id: u64,
        /// Claimed sender.
        from: NameChoice,
    },
}

impl Request {
    fn message(&self) -> Message {
        match self {
            Self::Ready => Message::Ready,
            Self::Register(n) => Message::Register { name: n.name() },
            Self::Send { id, to, body } => {
                Message::Send { id: MessageId(*id), to: to.name(), body: body_of(&body.0) }
            }
            Self::E2eSend { id, to, envelope } => Message::E2eSend {
                id: MessageId(*id),
                to: to.name(),
                envelope: envelope_of(&envelope.0),
            },
            Self::FetchBundle(n) => Message::FetchBundle { name: n.name() },
            Self::Deliver { id, from } => {
                Message::Deliver { id: MessageId(*id), from: from.name(), body: Body::default() }
            }
        }
    }
}

/// `bytes` cut to a valid body.
pub fn body_of(bytes: &[u8]) -> Body {
    must(Body::new(bytes.get(..MAX_BODY_LEN).unwrap_or(bytes).to_vec()), "body")
}

/// `bytes` cut (or padded to one byte) to a valid envelope.
pub fn envelope_of(bytes: &[u8]) -> Envelope {
    let bytes = bytes.get(..MAX_ENVELOPE_LEN).unwrap_or(bytes);
    must(Envelope::new(if bytes.is_empty() { vec![0] } else { bytes.to_vec() }), "envelope")
}

impl Encode for Request {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Ready => variant(out, 0, 6),
            Self::Register(n) => {
                variant(out, 1, 6);
                n.encode(out);
            }
            Self::Send { id, to, body } => {
                variant(out, 2, 6);
                id.encode(out);
                to.encode(out);
                body.encode(out);
            }
            Self::E2eSend { id, to, envelope } => {
                variant(out, 3, 6);
                id.encode(out);
                to.encode(out);
                envelope.encode(out);
            }
            Self::FetchBundle(n) => {
                variant(out, 4, 6);
                n.encode(out);
            }
            Self::Deliver { id, from } => {
                variant(out, 5, 6);
                id.encode(out);
                from.encode(out);
            }
        }
    }
}

/// One step.
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum Op {
    /// Arbitrary bytes sealed on a held channel (`channel` modulo their number).
    Seal {
        /// Which channel.
        channel: u8,
        /// The plaintext.
        plaintext: Bytes,
    },
    /// A well-formed message sealed on a held channel.
    Send {
        /// Which channel.
        channel: u8,
        /// The message.
        request: Request,
    },
    /// Arbitrary bytes as a frame on a link: `link` picks one of 0, 1, 2 and the links of earlier
    /// handshakes.
    Raw {
        /// Which link.
        link: u8,
        /// The frame.
        frame: Bytes,
    },
    /// A frame sent before (`index` modulo their number), again on its link.
    Replay {
        /// Which frame.
        index: u8,
    },
    /// A handshake on a new link, with one of four client keys (`key` modulo 4: alice's, bob's,
    /// and two unregistered ones), registering a name or carrying arbitrary bytes as payload.
    /// Ignored after [`MAX_CONNECTS`].
    Connect {
        /// Which static key.
        key: u8,
        /// The name to register; `None` sends `payload` instead.
        register: Option<NameChoice>,
        /// Message 1's payload when not registering.
        payload: Bytes,
    },
    /// The connection on a link (picked as for [`Op::Raw`]) ends.
    Close {
        /// Which link.
        link: u8,
    },
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Seal { channel, plaintext } => {
                variant(out, 0, 6);
                channel.encode(out);
                plaintext.encode(out);
            }
            Self::Send { channel, request } => {
                variant(out, 1, 6);
                channel.encode(out);
                request.encode(out);
            }
            Self::Raw { link, frame } => {
                variant(out, 2, 6);
                link.encode(out);
                frame.encode(out);
            }
            Self::Replay { index } => {
                variant(out, 3, 6);
                index.encode(out);
            }
            Self::Connect { key, register, payload } => {
                variant(out, 4, 6);
                key.encode(out);
                register.encode(out);
                payload.encode(out);
            }
            Self::Close { link } => {
                variant(out, 5, 6);
                link.encode(out);
            }
        }
    }
}

/// The server's bounds: alice and bob, and one more name; 8 KiB of queued messages (64 messages
/// of up to 79 bytes, so both `MailboxFull` and `ServerFull` can be reached).
pub const LIMITS: ServerLimits = ServerLimits { max_accounts: 3, max_queued_bytes: 8 * 1024 };

/// The bytes the message a relay request asks for counts against the server's total once queued
/// (SPEC.md §5.4): `49 + len(content)`, the header and fields as §3.3 bounds them plus the body or
/// envelope.
fn queued_bytes(request: &Message) -> Option<usize> {
    match request {
        Message::Send { body, .. } => Some(49 + body.as_bytes().len()),
        Message::E2eSend { envelope, .. } => Some(49 + envelope.as_bytes().len()),
        _ => None,
    }
}

/// The server with alice (link 1) and bob (link 2) registered and confirmed, made once.
#[derive(Clone)]
struct World {
    server: Server,
    channels: Vec<HandClient>,
    keys: [PrivateKey; 4],
    rng: ChaCha20Rng,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut rng = rng(0x484f50);
        let mut server = Server::new(PrivateKey::generate(&mut rng)).with_limits(LIMITS);
        let keys: [PrivateKey; 4] = core::array::from_fn(|_| PrivateKey::generate(&mut rng));
        let channels = vec![
            hand_register(
                &mut server,
                LinkId(1),
                keys[0].clone(),
                &NameChoice::Alice.name(),
                &mut rng,
            ),
            hand_register(
                &mut server,
                LinkId(2),
                keys[1].clone(),
                &NameChoice::Bob.name(),
                &mut rng,
            ),
        ];
        World { server, channels, keys, rng }
    })
}

/// The most [`Op::Connect`]s one input runs; later ones are skipped, as if the input did not hold
/// them. Each is a Noise handshake, both ends (~0.5 ms, README "Benchmarks"): without a bound, an
/// input of a hundred connects costs 50 ms, and most of the fuzzer's time goes to X25519. Three are
/// enough for every §5.1 outcome against alice and bob: a name taken, a key in use, the third
/// account, then `ServerFull`; and for an unconfirmed link replaced by a newer one.
pub const MAX_CONNECTS: u64 = 3;

/// The first link a [`Op::Connect`] uses.
const FIRST_NEW_LINK: u64 = 16;

/// The state of one run.
struct Run {
    server: Server,
    channels: Vec<HandClient>,
    keys: [PrivateKey; 4],
    rng: ChaCha20Rng,
    /// Every frame the harness sent, with its link, for replays.
    history: Vec<(LinkId, Vec<u8>)>,
    next_link: u64,
    /// The model (§5.1): each bound name's static key.
    bound: BTreeMap<Name, PublicKey>,
    /// The client static key of each link a handshake was tried on.
    link_keys: BTreeMap<LinkId, PublicKey>,
    /// Links welcomed but not confirmed, with their names.
    unconfirmed: BTreeMap<LinkId, Name>,
    /// Confirmed links, with their names.
    confirmed: BTreeMap<LinkId, Name>,
}

/// Runs the operations decoded from `data` against the server.
pub fn hop_server(data: &[u8]) {
    let world = world();
    let mut run = Run {
        server: world.server.clone(),
        channels: world.channels.clone(),
        keys: world.keys.clone(),
        rng: world.rng.clone(),
        history: Vec::new(),
        next_link: FIRST_NEW_LINK,
        bound: BTreeMap::new(),
        link_keys: BTreeMap::new(),
        unconfirmed: BTreeMap::new(),
        confirmed: BTreeMap::new(),
    };
    for (channel, key) in world.channels.iter().zip(&world.keys) {
        run.bound.insert(channel.name.clone(), key.public_key());
        run.link_keys.insert(channel.link, key.public_key());
        run.confirmed.insert(channel.link, channel.name.clone());
    }
    let Some(((), ops)) = decode_all::<(), Op>(data) else { return };
    for op in ops {
        run.step(&op);
        let queued = run.server.queued_bytes();
        assert!(queued <= LIMITS.max_queued_bytes, "the server queues {queued} bytes");
    }
}

impl Run {
    fn step(&mut self, op: &Op) {
        match op {
            Op::Seal { channel, plaintext } => self.sealed(*channel, &plaintext.0),
            Op::Send { channel, request } => self.sealed(*channel, &request.message().encode()),
            Op::Raw { link, frame } => self.unsealed(self.link(*link), &frame.0),
            Op::Replay { index } => {
                let Some(i) = usize::from(*index).checked_rem(self.history.len()) else { return };
                let (link, frame) = self.history[i].clone();
                self.unsealed(link, &frame);
            }
            Op::Connect { key, register, payload } => {
                if self.next_link - FIRST_NEW_LINK >= MAX_CONNECTS {
                    return;
                }
                let link = LinkId(self.next_link);
                self.next_link += 1;
                let key = self.keys[usize::from(*key % 4)].clone();
                let payload = register.map_or_else(
                    || payload.0.clone(),
                    |n| Message::Register { name: n.name() }.encode(),
                );
                let before = self.server.clone();
                self.link_keys.insert(link, key.public_key());
                let (result, client, init) =
                    hand_handshake(&mut self.server, link, key.clone(), &payload, &mut self.rng);
                let tried = !init.is_empty(); // an over-long payload never reaches the server
                self.history.push((link, init));
                match result {
                    Ok(out) => {
                        // hand_handshake read the reply; only a registration may follow.
                        if tried {
                            let welcomed = client.is_some();
                            self.check_accept(
                                link,
                                &key.public_key(),
                                &payload,
                                &before,
                                &out,
                                welcomed,
                            );
                        }
                        self.update(&out);
                        self.close(&out.close);
                        self.channels.extend(client);
                    }
                    Err(error) => unchanged(&self.server, &before, &error),
                }
            }
            Op::Close { link } => {
                let link = self.link(*link);
                self.server.close_link(link);
                self.close(&[link]);
            }
        }
    }

    /// Link `n` of those in play: 0 (never used), 1 and 2, and every link a handshake was tried on.
    fn link(&self, n: u8) -> LinkId {
        let count = 3 + (self.next_link - FIRST_NEW_LINK);
        match u64::from(n) % count {
            small @ 0..=2 => LinkId(small),
            k => LinkId(FIRST_NEW_LINK + k - 3),
        }
    }

    /// Seals `plaintext` on a held channel and hands the frame to the server.
    fn sealed(&mut self, channel: u8, plaintext: &[u8]) {
        let Some(i) = usize::from(channel).checked_rem(self.channels.len()) else { return };
        let (before, before_transport) = (self.server.clone(), self.channels[i].transport.clone());
        let sender = self.channels[i].clone();
        let message = Message::decode(plaintext).ok();
        let unconfirmed = self.unconfirmed.get(&sender.link).cloned();
        let is_ready = matches!(message, Some(Message::Ready));
        // What the model expects, from the state before the call.
        let expected_reply = message.as_ref().and_then(|m| self.expected_reply(&before, m));
        let confirming = unconfirmed.clone().filter(|_| is_ready).map(|name| {
            let key = self.link_keys.get(&sender.link).copied();
            let Some(key) = key else { fail(format_args!("no key for {:?}", sender.link)) };
            let older: Vec<LinkId> =
                self.confirmed.iter().filter(|(_, n)| **n == name).map(|(l, _)| *l).collect();
            (name.clone(), key, self.binding_refusal(&name, &key), older)
        });
        let frame = seal(&mut self.channels[i].transport, plaintext);
        self.history.push((sender.link, frame.clone()));
        // Every held channel is open at the server, so the frame authenticates: never an error.
        let out = must(self.server.handle(sender.link, &frame, &mut self.rng), "sealed frame");
        let dropped = out.events.iter().any(|e| matches!(e, ServerEvent::Dropped { .. }));
        // §5.1 step 5: an unconfirmed link takes `Ready` and nothing else; a confirmed one never
        // takes `Ready` again.
        if unconfirmed.is_some() {
            assert_eq!(dropped, !is_ready, "unconfirmed {:?} took {message:?}", sender.link);
        } else if is_ready {
            assert!(dropped, "a confirmed link took Ready again: {out:?}");
        }
        if dropped {
            // Refused content changes nothing but the channel (§7.2): the same as a message the
            // server never expects, sealed with the same nonce.
            let mut reference = before.clone();
            let mut transport = before_transport;
            let ack = Message::Ack { id: MessageId(0), status: AckStatus::Relayed };
            let frame = seal(&mut transport, &ack.encode());
            let ref_out = must(reference.handle(sender.link, &frame, &mut self.rng), "reference");
            assert!(matches!(ref_out.events[..], [ServerEvent::Dropped { .. }]), "{ref_out:?}");
            assert!(self.server == reference, "refused content changed more than the channel");
            assert!(out.transmit.is_empty(), "the server answered refused content");
            return;
        }
        let opened = self.deliver(&out);
        if let Some((name, key, refusal, older)) = confirming {
            self.check_confirm(&before, &sender, &out, &opened, &name, &key, refusal, &older);
        }
        if let Some(Message::Send { id, to, .. } | Message::E2eSend { id, to, .. }) = &message {
            let (id, to) = (*id, to.clone());
            // §5.2: every relay request is answered, once, to its sender; what is relayed carries
            // the sender's bound name, never one the sender chose.
            let replies: Vec<&Message> = opened
                .iter()
                .filter(|(link, m)| {
                    *link == sender.link
                        && matches!(m, Message::Ack { id: i, .. } | Message::Reject { id: i, .. } if *i == id)
                })
                .map(|(_, m)| m)
                .collect();
            assert_eq!(replies.len(), 1, "request {id} answered {replies:?}");
            assert_eq!(Some(replies[0]), expected_reply.as_ref(), "request {id} to {to}");
            let relayed: Vec<&Message> = opened
                .iter()
                .map(|(_, m)| m)
                .filter(|m| matches!(m, Message::Deliver { .. } | Message::E2eDeliver { .. }))
                .collect();
            for m in &relayed {
                assert!(
                    matches!(m, Message::Deliver { id: i, from, .. } | Message::E2eDeliver { id: i, from, .. }
                        if *i == id && *from == sender.name),
                    "relayed {m:?} for {id} from {}",
                    sender.name
                );
            }
            let queued = (before.queued(&to), before.queued_bytes());
            match replies[0] {
                Message::Ack { status: AckStatus::Relayed, .. } => assert_eq!(relayed.len(), 1),
                Message::Ack { status: AckStatus::Queued, .. } => {
                    assert!(relayed.is_empty());
                    let len = message.as_ref().and_then(queued_bytes).unwrap_or_default();
                    let now = (self.server.queued(&to), self.server.queued_bytes());
                    assert_eq!(now, (queued.0 + 1, queued.1 + len), "not queued, or miscounted");
                }
                Message::Reject { .. } => {
                    assert!(relayed.is_empty());
                    let now = (self.server.queued(&to), self.server.queued_bytes());
                    assert_eq!(now, queued, "a rejected message was queued");
                }
                _ => {}
            }
        }
    }

    /// The answer §5.2 and §5.4 give a relay request in `message` from a confirmed link, if it is
    /// one: from the model's bindings and links, and the server's mailboxes before the call.
    fn expected_reply(&self, before: &Server, message: &Message) -> Option<Message> {
        let (Message::Send { id, to, .. } | Message::E2eSend { id, to, .. }) = message else {
            return None;
        };
        let len = queued_bytes(message)?;
        let reject = |reason| Some(Message::Reject { id: *id, reason });
        let ack = |status| Some(Message::Ack { id: *id, status });
        if !self.bound.contains_key(to) {
            reject(RejectReason::UnknownRecipient)
        } else if self.confirmed.values().any(|n| n == to) {
            ack(AckStatus::Relayed)
        } else if before.queued_bytes() + len > LIMITS.max_queued_bytes {
            reject(RejectReason::ServerFull)
        } else if before.queued(to) >= MAILBOX_CAPACITY {
            reject(RejectReason::MailboxFull)
        } else {
            ack(AckStatus::Queued)
        }
    }

    /// §5.1 step 2: why `name` may not be bound to `key` now, if it may not.
    fn binding_refusal(&self, name: &Name, key: &PublicKey) -> Option<RefusalReason> {
        match self.bound.get(name) {
            Some(bound) if bound != key => Some(RefusalReason::NameTaken),
            Some(_) => None,
            None if self.bound.values().any(|bound| bound == key) => Some(RefusalReason::KeyInUse),
            None if self.bound.len() >= LIMITS.max_accounts => Some(RefusalReason::ServerFull),
            None => None,
        }
    }

    /// Checks the server's answer to message 1 on `link` with `key` and `payload` (§5.1 step 2).
    fn check_accept(
        &self,
        link: LinkId,
        key: &PublicKey,
        payload: &[u8],
        before: &Server,
        out: &ServerOutputs,
        welcomed: bool,
    ) {
        let expected = match Message::decode(payload) {
            Ok(Message::Register { name }) => self.binding_refusal(&name, key).ok_or(name),
            Ok(_) => Ok(RefusalReason::NotARegistration),
            Err(error) => fail(format_args!("message 1 with a malformed payload taken: {error:?}")),
        };
        match expected {
            Err(name) => {
                // Welcomed: unconfirmed, bound to nothing yet; the older unconfirmed link closed.
                assert!(welcomed, "{name} refused: {out:?}");
                let registered = ServerEvent::Registered { link, name: name.clone() };
                assert_eq!(out.events, [registered], "message 1 for {name}");
                assert_eq!(self.server.account(&name), before.account(&name), "bound before Ready");
                let older: Vec<LinkId> =
                    self.unconfirmed.iter().filter(|(_, n)| **n == name).map(|(l, _)| *l).collect();
                assert_eq!(out.close, older, "the older unconfirmed links of {name}");
            }
            Ok(reason) => {
                assert!(!welcomed, "welcomed, not refused with {reason:?}: {out:?}");
                assert_eq!(out.events, [ServerEvent::Refused { link, reason }]);
                assert_eq!(out.close, [link], "a refused link stays open");
                assert!(self.server == *before, "a refused handshake changed the server");
            }
        }
    }

    /// Checks the server's answer to `Ready` on `sender`'s unconfirmed link for `name` with `key`
    /// (§5.1 step 5): the binding checked again; bound and confirmed, or refused in the channel.
    #[expect(clippy::too_many_arguments, reason = "what the model predicted, passed as it is")]
    fn check_confirm(
        &self,
        before: &Server,
        sender: &HandClient,
        out: &ServerOutputs,
        opened: &[(LinkId, Message)],
        name: &Name,
        key: &PublicKey,
        refusal: Option<RefusalReason>,
        older: &[LinkId],
    ) {
        let link = sender.link;
        match refusal {
            None => {
                let delivered = before.queued(name);
                let online = ServerEvent::Online { link, name: name.clone(), delivered };
                assert_eq!(out.events, [online], "Ready for {name}");
                assert_eq!(out.close, older, "the older confirmed link of {name}");
                assert_eq!(self.server.account(name), Some(*key), "{name} not bound at Ready");
                assert_eq!(self.server.queued(name), 0, "{name}'s mailbox not emptied");
                let mailbox = opened.iter().filter(|(l, m)| {
                    *l == link && matches!(m, Message::Deliver { .. } | Message::E2eDeliver { .. })
                });
                assert_eq!(mailbox.count(), delivered, "{name}'s mailbox, delivered");
            }
            Some(reason) => {
                assert_eq!(out.events, [ServerEvent::Refused { link, reason }], "Ready for {name}");
                assert_eq!(out.close, [link], "a link refused at Ready stays open");
                assert_eq!(opened, [(link, Message::Refused { reason })], "the refusal");
                assert_eq!(self.server.account(name), before.account(name), "bound though refused");
            }
        }
    }

    /// Hands `frame` to the server on `link` outside any held channel.
    fn unsealed(&mut self, link: LinkId, frame: &[u8]) {
        let before = self.server.clone();
        match self.server.handle(link, frame, &mut self.rng) {
            Ok(out) => {
                // A transport frame the server opened on a held channel, yet not sealed by us: the
                // fuzzer learned a valid tag (libFuzzer traces the tag comparison; no real attacker
                // can). The server's receive counter moved past our next nonce, so ours moves too.
                let transport =
                    LinkFrame::decode(frame).is_ok_and(|f| f.kind() == LinkKind::Transport);
                if let Some(channel) = self.channels.iter_mut().find(|c| c.link == link)
                    && transport
                {
                    must(channel.transport.write(&[]), "skip a nonce");
                }
                self.deliver(&out);
            }
            Err(error) => unchanged(&self.server, &before, &error),
        }
    }

    /// Opens every frame the server sent on a held channel; returns the messages with their links.
    fn deliver(&mut self, out: &ServerOutputs) -> Vec<(LinkId, Message)> {
        let mut opened = Vec::new();
        for (link, frame) in &out.transmit {
            match self.channels.iter_mut().find(|c| c.link == *link) {
                Some(channel) => opened.push((*link, open(&mut channel.transport, frame))),
                None => {
                    // Only a handshake we did not drive (a replayed message 1) has no held end.
                    let frame = must(LinkFrame::decode(frame), "the server sent a malformed frame");
                    assert_eq!(
                        frame.kind(),
                        LinkKind::HandshakeResp,
                        "transport frame on {link:?}"
                    );
                }
            }
        }
        self.update(out);
        self.close(&out.close);
        opened
    }

    /// Follows what the server reported in the model: links welcomed, names bound.
    fn update(&mut self, out: &ServerOutputs) {
        for event in &out.events {
            match event {
                ServerEvent::Registered { link, name } => {
                    self.unconfirmed.insert(*link, name.clone());
                }
                ServerEvent::Online { link, name, .. } => {
                    self.unconfirmed.remove(link);
                    self.confirmed.insert(*link, name.clone());
                    // A link the harness never opened (a learned tag) has a key it cannot know.
                    let key = self.link_keys.get(link).copied();
                    if let Some(key) = key.or_else(|| self.server.account(name)) {
                        self.bound.insert(name.clone(), key);
                    }
                }
                _ => {}
            }
        }
    }

    fn close(&mut self, links: &[LinkId]) {
        self.channels.retain(|c| !links.contains(&c.link));
        for link in links {
            self.unconfirmed.remove(link);
            self.confirmed.remove(link);
        }
    }
}

/// A call that failed must leave the server exactly as it was.
fn unchanged(server: &Server, before: &Server, error: &crate::Error) {
    assert!(server == before, "the server changed on error {error:?}");
}
