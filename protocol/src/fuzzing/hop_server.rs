//! `hop_server`: sequences of client input into [`Server::handle`] (SPEC.md §5, §6.2, §7.2).
//!
//! The clients are driven by hand — an `Initiator` with the server's public key and a client static
//! key — so the harness can seal *any* plaintext, including arbitrary bytes, into a valid channel.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use rand_chacha::ChaCha20Rng;

use crate::roles::{LinkId, Server, ServerEvent, ServerOutputs};
use crate::suite::PrivateKey;
use crate::wire::{
    AckStatus, Body, Codec, Envelope, LinkFrame, LinkKind, MAX_BODY_LEN, MAX_ENVELOPE_LEN, Message,
    MessageId, RejectReason,
};

use super::input::{Bytes, Encode, NameChoice, decode_all, variant};
use super::must;
use super::net::{HandClient, hand_handshake, hand_register, open, rng, seal};

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
        let mut server = Server::new(PrivateKey::generate(&mut rng));
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
    };
    let Some(((), ops)) = decode_all::<(), Op>(data) else { return };
    for op in ops {
        run.step(&op);
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
                let link = LinkId(self.next_link);
                self.next_link += 1;
                let key = self.keys[usize::from(*key % 4)].clone();
                let payload = register.map_or_else(
                    || payload.0.clone(),
                    |n| Message::Register { name: n.name() }.encode(),
                );
                let before = self.server.clone();
                let (result, client, init) =
                    hand_handshake(&mut self.server, link, key, &payload, &mut self.rng);
                self.history.push((link, init));
                match result {
                    Ok(out) => {
                        // hand_handshake read the reply; only a registration may follow.
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
        let frame = seal(&mut self.channels[i].transport, plaintext);
        self.history.push((sender.link, frame.clone()));
        // Every held channel is open at the server, so the frame authenticates: never an error.
        let out = must(self.server.handle(sender.link, &frame, &mut self.rng), "sealed frame");
        if out.events.iter().any(|e| matches!(e, ServerEvent::Dropped { .. })) {
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
        if let Ok(Message::Send { id, to, .. } | Message::E2eSend { id, to, .. }) =
            Message::decode(plaintext)
        {
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
            match replies[0] {
                Message::Ack { status: AckStatus::Relayed, .. } => assert_eq!(relayed.len(), 1),
                Message::Ack { status: AckStatus::Queued, .. } => {
                    assert!(relayed.is_empty());
                    assert_eq!(self.server.queued(&to), before.queued(&to) + 1, "not queued");
                }
                Message::Reject { reason, .. } => {
                    assert!(relayed.is_empty());
                    assert_eq!(self.server.queued(&to), before.queued(&to));
                    if *reason == RejectReason::UnknownRecipient {
                        assert_eq!(before.account(&to), None);
                    }
                }
                _ => {}
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
        self.close(&out.close);
        opened
    }

    fn close(&mut self, links: &[LinkId]) {
        self.channels.retain(|c| !links.contains(&c.link));
    }
}

/// A call that failed must leave the server exactly as it was.
fn unchanged(server: &Server, before: &Server, error: &crate::Error) {
    assert!(server == before, "the server changed on error {error:?}");
}
