//! `roles_sequence`: Alice, the server and Bob — all real roles, honest — over a hostile network
//! that delivers, drops, duplicates, reorders, corrupts and replays frames, and cuts connections.
//!
//! Invariants after every step: no panic; a call that fails leaves its role `==` to a clone from
//! before; nothing is accepted twice (`(recipient, from, id)` of `Received`); everything accepted was
//! sent, to that recipient, with that body, by its claimed sender; every `Ack`/`Reject` answers a
//! message its client sent, once; an honest server never makes a client drop content. Optionally, at
//! the end, the network heals: both reconnect and fresh hop and e2e messages get through both ways.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use rand_chacha::ChaCha20Rng;

use crate::e2e::peers::Peers;
use crate::roles::{Client, ClientEvent, LinkId, Server};
use crate::suite::PrivateKey;
use crate::wire::{Body, MessageId, Name};

use super::fail;
use super::hop_server::body_of;
use super::input::{Encode, NameChoice, SmallBytes, decode_all, variant};
use super::net::rng;

/// A client.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Who {
    /// Alice.
    Alice,
    /// Bob.
    Bob,
}

impl Who {
    const fn index(self) -> usize {
        match self {
            Self::Alice => 0,
            Self::Bob => 1,
        }
    }

    const fn peer(self) -> Self {
        match self {
            Self::Alice => Self::Bob,
            Self::Bob => Self::Alice,
        }
    }
}

impl Encode for Who {
    fn encode(&self, out: &mut Vec<u8>) {
        variant(out, if *self == Self::Alice { 0 } else { 1 }, 2);
    }
}

/// Frames in flight towards one party.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Queue {
    /// Towards the server.
    Server,
    /// Towards Alice.
    Alice,
    /// Towards Bob.
    Bob,
}

impl Queue {
    const fn index(self) -> usize {
        match self {
            Self::Server => 0,
            Self::Alice => 1,
            Self::Bob => 2,
        }
    }
}

impl Encode for Queue {
    fn encode(&self, out: &mut Vec<u8>) {
        let index = match self {
            Self::Server => 0,
            Self::Alice => 1,
            Self::Bob => 2,
        };
        variant(out, index, 3);
    }
}

/// One step.
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum Op {
    /// A hop message.
    SendHop {
        /// Sender.
        from: Who,
        /// Recipient (alice, bob, or an unregistered name).
        to: NameChoice,
        /// Content.
        body: SmallBytes,
    },
    /// An e2e message to the peer (or, with `to_peer` false, to carol, who has no bundle).
    SendE2e {
        /// Sender.
        from: Who,
        /// To the peer, or to carol.
        to_peer: bool,
        /// Content.
        body: SmallBytes,
    },
    /// The frame at the front of a queue arrives.
    Deliver(Queue),
    /// Everything in flight arrives, first in first out, until nothing is left (bounded).
    DeliverAll,
    /// A frame (`index` modulo the queue's length) is lost.
    Drop {
        /// Which queue.
        queue: Queue,
        /// Which frame.
        index: u8,
    },
    /// A frame is sent twice.
    Duplicate {
        /// Which queue.
        queue: Queue,
        /// Which frame.
        index: u8,
    },
    /// A frame overtakes the others: it moves to the front of its queue.
    Reorder {
        /// Which queue.
        queue: Queue,
        /// Which frame.
        index: u8,
    },
    /// One byte of a frame changes.
    Corrupt {
        /// Which queue.
        queue: Queue,
        /// Which frame.
        index: u8,
        /// Which byte (modulo the frame's length).
        pos: u16,
        /// XOR mask (0 taken as 1).
        xor: u8,
    },
    /// A frame seen earlier on any link (`index` modulo their number) is injected into a queue.
    Inject {
        /// Which recorded frame.
        index: u8,
        /// Into which queue.
        queue: Queue,
    },
    /// A client's connection ends (both sides learn it; its frames in flight are lost).
    Disconnect(Who),
    /// A client connects (refused with `AlreadyConnected` unless offline).
    Reconnect(Who),
    /// A client uploads its bundle again.
    Upload(Who),
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        const N: u32 = 12;
        match self {
            Self::SendHop { from, to, body } => {
                variant(out, 0, N);
                from.encode(out);
                to.encode(out);
                body.encode(out);
            }
            Self::SendE2e { from, to_peer, body } => {
                variant(out, 1, N);
                from.encode(out);
                to_peer.encode(out);
                body.encode(out);
            }
            Self::Deliver(queue) => {
                variant(out, 2, N);
                queue.encode(out);
            }
            Self::DeliverAll => variant(out, 3, N),
            Self::Drop { queue, index } => {
                variant(out, 4, N);
                queue.encode(out);
                index.encode(out);
            }
            Self::Duplicate { queue, index } => {
                variant(out, 5, N);
                queue.encode(out);
                index.encode(out);
            }
            Self::Reorder { queue, index } => {
                variant(out, 6, N);
                queue.encode(out);
                index.encode(out);
            }
            Self::Corrupt { queue, index, pos, xor } => {
                variant(out, 7, N);
                queue.encode(out);
                index.encode(out);
                pos.encode(out);
                xor.encode(out);
            }
            Self::Inject { index, queue } => {
                variant(out, 8, N);
                index.encode(out);
                queue.encode(out);
            }
            Self::Disconnect(who) => {
                variant(out, 9, N);
                who.encode(out);
            }
            Self::Reconnect(who) => {
                variant(out, 10, N);
                who.encode(out);
            }
            Self::Upload(who) => {
                variant(out, 11, N);
                who.encode(out);
            }
        }
    }
}

/// The roles and the harness's bookkeeping.
#[derive(Clone)]
struct Run {
    server: Server,
    clients: [Client; 2],
    rng: ChaCha20Rng,
    /// Each client's current link.
    current: [Option<LinkId>; 2],
    /// Who each link ever belonged to.
    owners: BTreeMap<LinkId, Who>,
    next_link: u64,
    /// Frames in flight, indexed by [`Queue::index`], each with the link it travels on.
    queues: [VecDeque<(LinkId, Vec<u8>)>; 3],
    /// Recent frames put in flight (for [`Op::Inject`]), at most [`HISTORY`].
    history: VecDeque<(LinkId, Vec<u8>)>,
    /// Every message sent: `(sender, id) → (recipient, body)`.
    sent: BTreeMap<(Name, MessageId), (Name, Body)>,
    /// e2e bodies handed to `send_e2e` whose ids are not known yet, per `(sender, recipient)`.
    pending: BTreeMap<(Name, Name), VecDeque<Body>>,
    /// Every `(recipient, from, id)` accepted.
    accepted: BTreeSet<(Name, Name, MessageId)>,
    /// Every `(sender, id)` acknowledged or rejected by the server.
    answered: BTreeSet<(Name, MessageId)>,
}

/// How many recent frames [`Op::Inject`] chooses from.
const HISTORY: usize = 64;

/// Both clients connected, bundles uploaded, an e2e session each way; made once.
fn world() -> &'static Run {
    static WORLD: OnceLock<Run> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut rng = rng(0x524f4c);
        let server = Server::new(PrivateKey::generate(&mut rng));
        let clients = [NameChoice::Alice, NameChoice::Bob].map(|n| {
            let key = PrivateKey::generate(&mut rng);
            let peers = Peers::generate(&mut rng);
            Client::with_e2e(n.name(), key, server.public_key(), peers)
        });
        let mut run = Run {
            server,
            clients,
            rng,
            current: [None; 2],
            owners: BTreeMap::new(),
            next_link: 1,
            queues: Default::default(),
            history: VecDeque::new(),
            sent: BTreeMap::new(),
            pending: BTreeMap::new(),
            accepted: BTreeSet::new(),
            answered: BTreeSet::new(),
        };
        let hello = |from| Op::SendE2e { from, to_peer: true, body: SmallBytes(b"hello".to_vec()) };
        for op in [
            Op::Reconnect(Who::Alice),
            Op::Reconnect(Who::Bob),
            Op::DeliverAll,
            Op::Upload(Who::Alice),
            Op::Upload(Who::Bob),
            Op::DeliverAll,
            hello(Who::Alice),
            Op::DeliverAll,
            hello(Who::Bob),
            Op::DeliverAll,
        ] {
            run.step(&op);
        }
        run.check_heals();
        run
    })
}

/// Runs the operations decoded from `data`; if the first decoded value is `true`, heals the
/// network at the end and checks that messages get through.
pub fn roles_sequence(data: &[u8]) {
    let Some((heal, ops)) = decode_all::<bool, Op>(data) else { return };
    let mut run = world().clone();
    for op in &ops {
        run.step(op);
    }
    if heal {
        run.heal();
        run.check_heals();
    }
}

impl Run {
    fn name(&self, who: Who) -> Name {
        self.clients[who.index()].name().clone()
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::SendHop { from, to, body } => {
                let (to, body) = (to.name(), body_of(&body.0));
                let client = &mut self.clients[from.index()];
                let before = client.clone();
                match client.send(&to, body.clone()) {
                    Ok((id, frame)) => {
                        self.sent.insert((self.name(*from), id), (to, body));
                        self.transmit(*from, vec![frame]);
                    }
                    Err(error) => assert!(*client == before, "send changed the client: {error:?}"),
                }
            }
            Op::SendE2e { from, to_peer, body } => {
                let to = if *to_peer { self.name(from.peer()) } else { NameChoice::Carol.name() };
                let body = body_of(&body.0);
                let client = &mut self.clients[from.index()];
                let before = client.clone();
                match client.send_e2e(&to, body.clone(), &mut self.rng) {
                    Ok(out) => {
                        let key = (self.name(*from), to);
                        self.pending.entry(key).or_default().push_back(body);
                        self.events(*from, &out.events);
                        self.transmit(*from, out.transmit);
                    }
                    Err(error) => {
                        assert!(*client == before, "send_e2e changed the client: {error:?}")
                    }
                }
            }
            Op::Deliver(queue) => self.deliver(*queue),
            Op::DeliverAll => self.deliver_all(256),
            Op::Drop { queue, index } => {
                let queue = &mut self.queues[queue.index()];
                if let Some(i) = usize::from(*index).checked_rem(queue.len()) {
                    queue.remove(i);
                }
            }
            Op::Duplicate { queue, index } => {
                let queue = &mut self.queues[queue.index()];
                if let Some(i) = usize::from(*index).checked_rem(queue.len()) {
                    let copy = queue[i].clone();
                    queue.insert(i, copy);
                }
            }
            Op::Reorder { queue, index } => {
                let queue = &mut self.queues[queue.index()];
                if let Some(i) = usize::from(*index).checked_rem(queue.len())
                    && let Some(frame) = queue.remove(i)
                {
                    queue.push_front(frame);
                }
            }
            Op::Corrupt { queue, index, pos, xor } => {
                let queue = &mut self.queues[queue.index()];
                if let Some(i) = usize::from(*index).checked_rem(queue.len()) {
                    let frame = &mut queue[i].1;
                    if let Some(p) = usize::from(*pos).checked_rem(frame.len()) {
                        frame[p] ^= (*xor).max(1);
                    }
                }
            }
            Op::Inject { index, queue } => {
                if let Some(i) = usize::from(*index).checked_rem(self.history.len()) {
                    let frame = self.history[i].clone();
                    self.queues[queue.index()].push_back(frame);
                }
            }
            Op::Disconnect(who) => {
                self.clients[who.index()].disconnect();
                if let Some(link) = self.current[who.index()].take() {
                    self.server.close_link(link);
                    for queue in &mut self.queues {
                        queue.retain(|(l, _)| *l != link);
                    }
                }
            }
            Op::Reconnect(who) => {
                let client = &mut self.clients[who.index()];
                let before = client.clone();
                match client.connect(&mut self.rng) {
                    Ok(frame) => {
                        let link = LinkId(self.next_link);
                        self.next_link += 1;
                        self.owners.insert(link, *who);
                        self.current[who.index()] = Some(link);
                        self.transmit(*who, vec![frame]);
                    }
                    Err(error) => {
                        assert!(*client == before, "connect changed the client: {error:?}")
                    }
                }
            }
            Op::Upload(who) => {
                let client = &mut self.clients[who.index()];
                let before = client.clone();
                match client.upload_bundle() {
                    Ok(frame) => self.transmit(*who, vec![frame]),
                    Err(error) => {
                        assert!(*client == before, "upload changed the client: {error:?}")
                    }
                }
            }
        }
    }

    /// Puts a client's frames in flight to the server, on its current link.
    fn transmit(&mut self, who: Who, frames: Vec<Vec<u8>>) {
        if frames.is_empty() {
            return; // e.g. an e2e message queued for a bundle while offline
        }
        let Some(link) = self.current[who.index()] else {
            // A client that produced a frame is connected or connecting, so it has a link.
            fail("a client without a link transmitted");
        };
        for frame in frames {
            self.in_flight(Queue::Server, link, frame);
        }
    }

    fn in_flight(&mut self, queue: Queue, link: LinkId, frame: Vec<u8>) {
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((link, frame.clone()));
        self.queues[queue.index()].push_back((link, frame));
    }

    /// The front frame of `queue` arrives.
    fn deliver(&mut self, queue: Queue) {
        let Some((link, frame)) = self.queues[queue.index()].pop_front() else { return };
        match queue {
            Queue::Server => {
                let before = self.server.clone();
                match self.server.handle(link, &frame, &mut self.rng) {
                    Ok(out) => {
                        for (to, frame) in out.transmit {
                            let Some(owner) = self.owners.get(&to).copied() else {
                                fail(format_args!(
                                    "the server sent on {to:?}, which nobody opened"
                                ));
                            };
                            let queue = if owner == Who::Alice { Queue::Alice } else { Queue::Bob };
                            self.in_flight(queue, to, frame);
                        }
                        for link in out.close {
                            let owner = self.owners.get(&link).copied();
                            if let Some(who) =
                                owner.filter(|w| self.current[w.index()] == Some(link))
                            {
                                self.clients[who.index()].disconnect();
                                self.current[who.index()] = None;
                            }
                        }
                    }
                    Err(error) => {
                        assert!(self.server == before, "the server changed on error {error:?}");
                    }
                }
            }
            Queue::Alice | Queue::Bob => {
                let who = if queue == Queue::Alice { Who::Alice } else { Who::Bob };
                let client = &mut self.clients[who.index()];
                let before = client.clone();
                match client.handle(&frame, &mut self.rng) {
                    Ok(out) => {
                        self.events(who, &out.events);
                        self.transmit(who, out.transmit);
                    }
                    Err(error) => {
                        assert!(*client == before, "the client changed on error {error:?}")
                    }
                }
            }
        }
    }

    fn deliver_all(&mut self, limit: usize) {
        for _ in 0..limit {
            let Some(queue) = [Queue::Server, Queue::Alice, Queue::Bob]
                .into_iter()
                .find(|q| !self.queues[q.index()].is_empty())
            else {
                return;
            };
            self.deliver(queue);
        }
    }

    /// Checks what client `who` reported.
    fn events(&mut self, who: Who, events: &[ClientEvent]) {
        let me = self.name(who);
        for event in events {
            match event {
                ClientEvent::Received { from, id, body } => {
                    let fresh = self.accepted.insert((me.clone(), from.clone(), *id));
                    assert!(fresh, "{me} accepted {from} #{} twice", id.0);
                    let sent = self.sent.get(&(from.clone(), *id));
                    assert_eq!(sent, Some(&(me.clone(), body.clone())), "{me} accepted {event:?}");
                }
                ClientEvent::Sent { to, id } => {
                    let queue = self.pending.entry((me.clone(), to.clone())).or_default();
                    let Some(body) = queue.pop_front() else {
                        fail(format_args!("{me} reported {event:?} for nothing it sent"));
                    };
                    self.sent.insert((me.clone(), *id), (to.clone(), body));
                }
                ClientEvent::SendFailed { peer, discarded, .. } => {
                    let queue = self.pending.entry((me.clone(), peer.clone())).or_default();
                    assert!(queue.len() >= *discarded, "{me} discarded more than it sent");
                    queue.drain(..*discarded);
                }
                ClientEvent::Acked { id, .. } | ClientEvent::Rejected { id, .. } => {
                    assert!(self.sent.contains_key(&(me.clone(), *id)), "{me}: {event:?} unsent");
                    let fresh = self.answered.insert((me.clone(), *id));
                    assert!(fresh, "{me}: {event:?} answered twice");
                }
                ClientEvent::Dropped { error } => {
                    fail(format_args!("an honest server made {me} drop content: {error:?}"));
                }
                _ => {}
            }
        }
    }

    /// The network heals: frames in flight are lost, both clients reconnect.
    fn heal(&mut self) {
        for queue in &mut self.queues {
            queue.clear();
        }
        for who in [Who::Alice, Who::Bob] {
            self.step(&Op::Disconnect(who));
            self.step(&Op::Reconnect(who));
        }
        self.deliver_all(4096);
    }

    /// On a healed network, a hop and an e2e message get through both ways.
    fn check_heals(&mut self) {
        for who in [Who::Alice, Who::Bob] {
            assert!(
                self.clients[who.index()].is_connected(),
                "{} did not reconnect",
                self.name(who)
            );
        }
        let sent_before: BTreeSet<(Name, MessageId)> = self.sent.keys().cloned().collect();
        for who in [Who::Alice, Who::Bob] {
            let peer = if who == Who::Alice { NameChoice::Bob } else { NameChoice::Alice };
            let body = SmallBytes(b"probe".to_vec());
            self.step(&Op::SendHop { from: who, to: peer, body: body.clone() });
            self.step(&Op::SendE2e { from: who, to_peer: true, body });
            self.deliver_all(4096);
        }
        let probes: Vec<_> = self.sent.iter().filter(|(k, _)| !sent_before.contains(k)).collect();
        assert_eq!(probes.len(), 4, "probes were not sent: {probes:?}");
        for ((from, id), (to, _)) in probes {
            let got = self.accepted.contains(&(to.clone(), from.clone(), *id));
            assert!(got, "a probe from {from} (#{}) did not get through to {to}", id.0);
        }
    }
}
