//! `roles_sequence`: Alice, the server and Bob — all real roles, honest — over a hostile network
//! that delivers, drops, duplicates, reorders, corrupts and replays frames, and cuts connections.
//!
//! Each person runs two clients: an e2e client (`alice`, `bob`: [`Client::with_e2e`]), which sends
//! only e2e messages, and a hop-only client (`alice.hop`, `bob.hop`: [`Client::new`]), which carries
//! the hop traffic — a client that speaks e2e refuses every hop `Deliver` (SPEC.md §15.3). A
//! person's two clients go offline and come back together, and their frames share one queue. The
//! input's first byte sets the run up ([`Setup`]): heal the network at the end; start low on
//! one-time prekeys, with the server's `PrekeysLow` notices in flight; send hop messages for alice
//! and bob to their e2e clients instead, which must refuse them.
//!
//! Invariants after every step: no panic; a call that fails leaves its role `==` to a clone from
//! before; nothing is accepted twice (`(recipient, from, id)` of `Received`: for hop, the client's
//! id window; for e2e, whose ids are only the server's labels, the channels and the ratchet);
//! everything accepted was sent, to that recipient, with that body, by its claimed sender; a
//! hop-only client accepts only `Protection::Hop`, an e2e client only `Protection::E2e` with the
//! sender's identity — never a hop message; every `Ack`/`Reject` answers a message its client sent,
//! once, and `Reject { UnknownRecipient }` comes exactly for names nobody registered (otherwise only
//! `MailboxFull`); an honest server never makes a client drop content, except that an e2e client
//! refuses (`Unexpected { state: "e2e", got: "Deliver" }`) hop messages sent to it, never more than
//! were sent; no registration and no upload is refused; sessions start only with the peer, with a
//! one-time prekey; no identity changes, no peer is evicted. `PrekeysLow`: the client answers with
//! one upload of a full batch (`PrekeysReplenished { made: 10 }`), and the server stores exactly the
//! one-time prekeys each upload carries. Optionally, at the end, the network heals: what is in
//! flight arrives, the clients it disturbed reconnect, and from then on no call fails; fresh hop
//! and e2e messages get through both ways; with [`Setup::hop_to_e2e`], a hop message to the peer's
//! e2e client is relayed and refused; neither e2e client is left low on one-time prekeys.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use rand_chacha::ChaCha20Rng;

use crate::e2e::peers::Peers;
use crate::e2e::{ONE_TIME_PREKEYS_PER_UPLOAD, PREKEYS_LOW_WATER};
use crate::error::{Error, ProtocolError};
use crate::roles::{Client, ClientEvent, LinkId, Protection, Server, ServerEvent};
use crate::suite::PrivateKey;
use crate::wire::{Body, FetchedBundle, Message, MessageId, Name, RejectReason};

use super::hop_server::body_of;
use super::input::{Encode, NameChoice, SmallBytes, decode_all, name, variant};
use super::net::{hand_register, open, rng, seal_message};
use super::{fail, must};

/// How a run starts and ends: the input's first byte, one flag per bit (the other bits are
/// ignored). A byte of 0 or 1 — the `bool` this byte used to be — means what it always meant.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Setup {
    /// Bit 0: at the end, the network heals and messages must get through.
    pub heal: bool,
    /// Bit 1: start from the world where other users took one-time prekeys from alice and bob,
    /// leaving the server low on them: its `PrekeysLow` notices are in flight in their queues.
    pub low_prekeys: bool,
    /// Bit 2: hop messages for alice and bob go to their e2e clients, which must refuse them (and
    /// the heal sends one each way, [`Run::check_heals`]).
    pub hop_to_e2e: bool,
}

impl<'a> Arbitrary<'a> for Setup {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let byte = u8::arbitrary(u)?;
        Ok(Self { heal: byte & 1 != 0, low_prekeys: byte & 2 != 0, hop_to_e2e: byte & 4 != 0 })
    }
}

impl Encode for Setup {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(
            u8::from(self.heal) | u8::from(self.low_prekeys) << 1 | u8::from(self.hop_to_e2e) << 2,
        );
    }
}

/// A person, with an e2e client and a hop-only client.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
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

/// One of the four clients: a person's e2e client or hop-only client.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Device {
    who: Who,
    e2e: bool,
}

impl Device {
    const ALL: [Self; 4] =
        [Self::e2e(Who::Alice), Self::e2e(Who::Bob), Self::hop(Who::Alice), Self::hop(Who::Bob)];

    const fn e2e(who: Who) -> Self {
        Self { who, e2e: true }
    }

    const fn hop(who: Who) -> Self {
        Self { who, e2e: false }
    }

    /// The index into [`Run::clients`], in the order of [`Device::ALL`].
    const fn index(self) -> usize {
        self.who.index() + if self.e2e { 0 } else { 2 }
    }

    /// The queue of frames towards this client.
    const fn queue(self) -> Queue {
        match self.who {
            Who::Alice => Queue::Alice,
            Who::Bob => Queue::Bob,
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
    /// A hop message, from the person's hop-only client.
    SendHop {
        /// Sender.
        from: Who,
        /// Recipient: alice's or bob's hop-only client (their e2e client with
        /// [`Setup::hop_to_e2e`]), or an unregistered name.
        to: NameChoice,
        /// Content.
        body: SmallBytes,
    },
    /// An e2e message from the person's e2e client to the peer's (or, with `to_peer` false, to
    /// carol, who has no bundle).
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
    /// A person's connections end (both sides learn it; their frames in flight are lost).
    Disconnect(Who),
    /// A person's clients connect (each refused with `AlreadyConnected` unless offline). Ignored
    /// after [`MAX_RECONNECTS`].
    Reconnect(Who),
    /// A person's e2e client uploads its bundle again.
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
    /// The four clients, in the order of [`Device::ALL`].
    clients: [Client; 4],
    rng: ChaCha20Rng,
    /// Each client's current link.
    current: [Option<LinkId>; 4],
    /// Whose client each link ever belonged to.
    owners: BTreeMap<LinkId, Device>,
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
    /// Per e2e client: how many hop messages were sent to it, and how many it refused.
    hop_refusals: BTreeMap<Name, (usize, usize)>,
    /// Per e2e client ([`Who::index`]): one-time prekeys it made that no upload carried yet.
    unuploaded: [usize; 2],
    /// Per link: how many new one-time prekeys each upload sent on it carries, for the uploads the
    /// server has not read yet (a channel delivers in order, each frame at most once).
    uploads: BTreeMap<LinkId, VecDeque<usize>>,
    /// [`Setup::hop_to_e2e`].
    hop_to_e2e: bool,
    /// How many [`Op::Reconnect`]s of the input ran.
    reconnects: usize,
    /// Per client ([`Device::index`]): whether its link may no longer deliver: a frame of it lost,
    /// corrupted (so refused: lost too) or moved ahead of another of its frames, the link closed or
    /// replaced. Copies (duplicated, injected frames) do not count: they are refused, and a refusal
    /// changes nothing. [`Run::heal`] reconnects these clients only.
    disturbed: [bool; 4],
    /// Set by [`Run::heal`] once nothing hostile is left in flight (and by [`Run::check_heals`]):
    /// from then on every call must succeed (see [`transact`]).
    healed: bool,
    /// The messages [`Run::check_heals`] sent, `(sender, id)`, in order.
    probes: Vec<(Name, MessageId)>,
}

/// Calls `call` on `role` and judges an error. On the hostile network an error is expected (a
/// copy, a corruption, a step the input misplaced) and must leave the role `==` to what it was,
/// so the role is cloned first. Where `must_succeed` — on the healed network ([`Run::healed`]), or
/// an offline client connecting — an error is itself the bug, whatever it left behind, and no clone
/// is needed to say so (the heal's reconnections and probes cloned a role before every delivery).
fn transact<R: Clone + PartialEq, T>(
    role: &mut R,
    must_succeed: bool,
    what: &str,
    call: impl FnOnce(&mut R) -> Result<T, Error>,
) -> Option<T> {
    if must_succeed {
        return Some(must(call(role), what));
    }
    let before = role.clone();
    match call(role) {
        Ok(value) => Some(value),
        Err(error) => {
            assert!(*role == before, "{what} changed its role on error {error:?}");
            None
        }
    }
}

/// The most [`Op::Reconnect`]s one input runs; later ones are skipped, as if the input did not hold
/// them. Each is two Noise handshakes (~1 ms, README "Benchmarks"), where most other operations
/// cost microseconds: without a bound the fuzzer spent its time in X25519. Two let both people come
/// back once, or one person twice (a reconnection racing frames of the older link).
pub const MAX_RECONNECTS: usize = 2;

/// How many recent frames [`Op::Inject`] chooses from.
const HISTORY: usize = 64;

/// How many other users take one-time prekeys from alice and bob in the low world: enough to
/// leave the server at or below [`PREKEYS_LOW_WATER`] for both.
const FANS: usize = ONE_TIME_PREKEYS_PER_UPLOAD - PREKEYS_LOW_WATER;

/// Two starting points, made once. Both: all four clients connected, bundles uploaded, an e2e
/// session each way. The second: then [`FANS`] other users fetched alice's and bob's bundles, so
/// that the server holds at most [`PREKEYS_LOW_WATER`] one-time prekeys for either, and the
/// `PrekeysLow` notices it sealed to them are in flight.
fn worlds() -> &'static (Run, Run) {
    static WORLDS: OnceLock<(Run, Run)> = OnceLock::new();
    WORLDS.get_or_init(|| {
        let mut rng = rng(0x524f4c);
        let server = Server::new(PrivateKey::generate(&mut rng));
        let clients = Device::ALL.map(|device| {
            let key = PrivateKey::generate(&mut rng);
            match (device.e2e, device.who) {
                (true, Who::Alice) => {
                    let peers = Peers::generate(&mut rng);
                    Client::with_e2e(NameChoice::Alice.name(), key, server.public_key(), peers)
                }
                (true, Who::Bob) => {
                    let peers = Peers::generate(&mut rng);
                    Client::with_e2e(NameChoice::Bob.name(), key, server.public_key(), peers)
                }
                (false, Who::Alice) => Client::new(name("alice.hop"), key, server.public_key()),
                (false, Who::Bob) => Client::new(name("bob.hop"), key, server.public_key()),
            }
        });
        let mut run = Run {
            server,
            clients,
            rng,
            current: [None; 4],
            owners: BTreeMap::new(),
            next_link: 1,
            queues: Default::default(),
            history: VecDeque::new(),
            sent: BTreeMap::new(),
            pending: BTreeMap::new(),
            accepted: BTreeSet::new(),
            answered: BTreeSet::new(),
            hop_refusals: BTreeMap::new(),
            // What `Peers::generate` makes (SPEC.md §10.2); the first upload carries them.
            unuploaded: [ONE_TIME_PREKEYS_PER_UPLOAD; 2],
            uploads: BTreeMap::new(),
            hop_to_e2e: false,
            reconnects: 0,
            disturbed: [false; 4],
            healed: false,
            probes: Vec::new(),
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
        run.disturbed = [false; 4];
        run.healed = false;
        let mut low = run.clone();
        low.take_prekeys();
        low.disturbed = [false; 4];
        (run, low)
    })
}

/// Runs the operations decoded from `data` from the world `Setup` picks; heals the network at
/// the end if it says so, and checks that messages get through.
pub fn roles_sequence(data: &[u8]) {
    let Some((setup, ops)) = decode_all::<Setup, Op>(data) else { return };
    let (plain, low) = worlds();
    let mut run = if setup.low_prekeys { low.clone() } else { plain.clone() };
    run.hop_to_e2e = setup.hop_to_e2e;
    for op in &ops {
        if let Op::Reconnect(_) = op {
            if run.reconnects >= MAX_RECONNECTS {
                continue;
            }
            run.reconnects += 1;
        }
        run.step(op);
    }
    if setup.heal {
        run.heal();
        run.check_heals();
    }
}

impl Run {
    fn name(&self, device: Device) -> Name {
        self.clients[device.index()].name().clone()
    }

    /// The client registered as `name`, if one is.
    fn device_named(&self, name: &Name) -> Option<Device> {
        Device::ALL.into_iter().find(|d| self.clients[d.index()].name() == name)
    }

    /// Where [`Op::SendHop`] sends to.
    fn hop_recipient(&self, to: NameChoice) -> Name {
        let who = match to {
            NameChoice::Alice => Who::Alice,
            NameChoice::Bob => Who::Bob,
            NameChoice::Carol | NameChoice::Longest => return to.name(),
        };
        self.name(Device { who, e2e: self.hop_to_e2e })
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::SendHop { from, to, body } => {
                let to = self.hop_recipient(*to);
                self.send_hop(*from, to, body_of(&body.0));
            }
            Op::SendE2e { from, to_peer, body } => {
                let device = Device::e2e(*from);
                let to = if *to_peer {
                    self.name(Device::e2e(from.peer()))
                } else {
                    NameChoice::Carol.name()
                };
                let body = body_of(&body.0);
                let rng = &mut self.rng;
                let sent =
                    transact(&mut self.clients[device.index()], self.healed, "send_e2e", |c| {
                        c.send_e2e(&to, body.clone(), rng)
                    });
                if let Some(out) = sent {
                    let key = (self.name(device), to);
                    self.pending.entry(key).or_default().push_back(body);
                    self.events(device, &out.events);
                    self.transmit(device, out.transmit);
                }
            }
            Op::Deliver(queue) => self.deliver(*queue),
            Op::DeliverAll => self.deliver_all(256),
            Op::Drop { queue, index } => {
                let queue = &mut self.queues[queue.index()];
                if let Some(i) = usize::from(*index).checked_rem(queue.len())
                    && let Some((link, _)) = queue.remove(i)
                {
                    self.disturb(link);
                }
            }
            Op::Duplicate { queue, index } => {
                let queue = &mut self.queues[queue.index()];
                if let Some(i) = usize::from(*index).checked_rem(queue.len()) {
                    // The copy is refused (a replayed nonce), which changes nothing: the link
                    // still delivers in order.
                    let copy = queue[i].clone();
                    queue.insert(i, copy);
                }
            }
            Op::Reorder { queue, index } => {
                let queue = &mut self.queues[queue.index()];
                if let Some(i) = usize::from(*index).checked_rem(queue.len())
                    && let Some(frame) = queue.remove(i)
                {
                    // Out of order on its link only if it overtook a frame of the same link.
                    let link = frame.0;
                    let overtook = queue.iter().take(i).any(|(l, _)| *l == link);
                    queue.push_front(frame);
                    if overtook {
                        self.disturb(link);
                    }
                }
            }
            Op::Corrupt { queue, index, pos, xor } => {
                let queue = &mut self.queues[queue.index()];
                if let Some(i) = usize::from(*index).checked_rem(queue.len()) {
                    let link = queue[i].0;
                    let frame = &mut queue[i].1;
                    if let Some(p) = usize::from(*pos).checked_rem(frame.len()) {
                        frame[p] ^= (*xor).max(1);
                    }
                    self.disturb(link);
                }
            }
            Op::Inject { index, queue } => {
                if let Some(i) = usize::from(*index).checked_rem(self.history.len()) {
                    // A copy of a frame seen before: refused wherever it arrives (a replayed nonce,
                    // another channel's key, a handshake on an open link), and a refusal changes
                    // nothing; should a party close the link instead, that marks it disturbed.
                    let frame = self.history[i].clone();
                    self.queues[queue.index()].push_back(frame);
                }
            }
            Op::Disconnect(who) => {
                for device in [Device::e2e(*who), Device::hop(*who)] {
                    self.disconnect(device);
                }
            }
            Op::Reconnect(who) => {
                for device in [Device::e2e(*who), Device::hop(*who)] {
                    self.connect(device, false);
                }
            }
            Op::Upload(who) => {
                let device = Device::e2e(*who);
                let client = &mut self.clients[device.index()];
                if let Some(frame) = transact(client, self.healed, "upload", Client::upload_bundle)
                {
                    self.expect_upload(*who, 0);
                    self.transmit(device, vec![frame]);
                }
            }
        }
    }

    /// The client's connection ends (both sides learn it; its frames in flight are lost).
    fn disconnect(&mut self, device: Device) {
        self.disturbed[device.index()] = true;
        self.clients[device.index()].disconnect();
        if let Some(link) = self.current[device.index()].take() {
            self.server.close_link(link);
            for queue in &mut self.queues {
                queue.retain(|(l, _)| *l != link);
            }
        }
    }

    /// The client connects (refused with `AlreadyConnected` unless offline, which `offline` says
    /// it is: then the call must succeed). A refusal changes nothing, so it disturbs nothing; a
    /// new link has lost nothing yet, so it is not disturbed either. The old one was marked when
    /// the client went offline (a disconnection, or the server closing it), and its frames still
    /// in flight are refused wherever they arrive: the server closed that link, and the client's
    /// new channel has other keys.
    fn connect(&mut self, device: Device, offline: bool) {
        let rng = &mut self.rng;
        let client = &mut self.clients[device.index()];
        if let Some(frame) = transact(client, offline, "connect", |c| c.connect(rng)) {
            let link = LinkId(self.next_link);
            self.next_link += 1;
            self.owners.insert(link, device);
            self.current[device.index()] = Some(link);
            self.disturbed[device.index()] = false;
            self.transmit(device, vec![frame]);
        }
    }

    /// The network did something to a frame of `link` other than deliver it in order.
    fn disturb(&mut self, link: LinkId) {
        if let Some(device) = self.owners.get(&link) {
            self.disturbed[device.index()] = true;
        }
    }

    /// `from`'s hop-only client sends `body` to `to`.
    fn send_hop(&mut self, from: Who, to: Name, body: Body) {
        let device = Device::hop(from);
        let client = &mut self.clients[device.index()];
        if let Some((id, frame)) =
            transact(client, self.healed, "send", |c| c.send(&to, body.clone()))
        {
            if self.device_named(&to).is_some_and(|d| d.e2e) {
                self.hop_refusals.entry(to.clone()).or_default().0 += 1;
            }
            if self.healed {
                self.probes.push((self.name(device), id));
            }
            self.sent.insert((self.name(device), id), (to, body));
            self.transmit(device, vec![frame]);
        }
    }

    /// `who`'s e2e client just put an upload on its current link, carrying every one-time prekey
    /// it made since its last upload (`made` of them just now).
    fn expect_upload(&mut self, who: Who, made: usize) {
        let carried = core::mem::take(&mut self.unuploaded[who.index()]) + made;
        let Some(link) = self.current[Device::e2e(who).index()] else {
            fail("a client without a link uploaded");
        };
        self.uploads.entry(link).or_default().push_back(carried);
    }

    /// Puts a client's frames in flight to the server, on its current link.
    fn transmit(&mut self, device: Device, frames: Vec<Vec<u8>>) {
        if frames.is_empty() {
            return; // e.g. an e2e message queued for a bundle while offline
        }
        let Some(link) = self.current[device.index()] else {
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
        let who = match queue {
            Queue::Server => return self.deliver_to_server(link, &frame),
            Queue::Alice => Who::Alice,
            Queue::Bob => Who::Bob,
        };
        // The person's client of the same kind as the one the frame's link belongs to: a frame
        // injected into another person's queue meets that person's client of its kind.
        let e2e = self.owners.get(&link).is_none_or(|d| d.e2e);
        let device = Device { who, e2e };
        let rng = &mut self.rng;
        let client = &mut self.clients[device.index()];
        if let Some(out) =
            transact(client, self.healed, "a client's receive", |c| c.handle(&frame, rng))
        {
            let replenished =
                out.events.iter().any(|e| matches!(e, ClientEvent::PrekeysReplenished { .. }));
            if replenished {
                // §15.3: `PrekeysLow` is answered with one upload and nothing else.
                assert!(
                    out.events.len() == 1 && out.transmit.len() == 1,
                    "PrekeysLow answered with {out:?}"
                );
            }
            self.events(device, &out.events);
            self.transmit(device, out.transmit);
        }
    }

    fn deliver_to_server(&mut self, link: LinkId, frame: &[u8]) {
        // Only an e2e client uploads, and only its own bundle: what the server holds for it now.
        let owner = self.owners.get(&link).copied().filter(|d| d.e2e);
        let held = owner.map(|d| self.server.one_time_prekeys(self.clients[d.index()].name()));
        let rng = &mut self.rng;
        let server = &mut self.server;
        let Some(out) =
            transact(server, self.healed, "the server's receive", |s| s.handle(link, frame, rng))
        else {
            return;
        };
        for event in &out.events {
            match event {
                ServerEvent::BundleStored { name, one_time_prekeys } => {
                    let carried = self.uploads.get_mut(&link).and_then(VecDeque::pop_front);
                    let (Some(carried), Some(held), Some(owner)) = (carried, held, owner) else {
                        fail(format_args!("the server stored an upload nobody sent: {event:?}"));
                    };
                    assert_eq!(*name, self.name(owner), "an upload on {link:?} stored for {name}");
                    assert_eq!(
                        *one_time_prekeys,
                        held + carried,
                        "{name}'s upload carried {carried} new one-time prekeys to the {held} held"
                    );
                }
                ServerEvent::BundleRefused { .. } | ServerEvent::Refused { .. } => {
                    fail(format_args!("the server refused an honest client: {event:?}"));
                }
                _ => {}
            }
        }
        for (to, frame) in out.transmit {
            let Some(owner) = self.owners.get(&to).copied() else {
                fail(format_args!("the server sent on {to:?}, which nobody opened"));
            };
            self.in_flight(owner.queue(), to, frame);
        }
        for link in out.close {
            let owner = self.owners.get(&link).copied();
            if let Some(device) = owner {
                self.disturbed[device.index()] = true;
            }
            if let Some(device) = owner.filter(|d| self.current[d.index()] == Some(link)) {
                self.clients[device.index()].disconnect();
                self.current[device.index()] = None;
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

    /// Checks what a client reported.
    fn events(&mut self, device: Device, events: &[ClientEvent]) {
        let me = self.name(device);
        for event in events {
            match event {
                ClientEvent::Received { from, id, body, protection } => {
                    let fresh = self.accepted.insert((me.clone(), from.clone(), *id));
                    assert!(fresh, "{me} accepted {from} #{} twice", id.0);
                    let sent = self.sent.get(&(from.clone(), *id));
                    assert_eq!(sent, Some(&(me.clone(), body.clone())), "{me} accepted {event:?}");
                    // §15.3: an e2e client never shows a hop message; an e2e message is from the
                    // identity of the client that sent it.
                    match (device.e2e, protection) {
                        (false, Protection::Hop) => {}
                        (true, Protection::E2e { identity }) => {
                            let sender = self.device_named(from).filter(|d| d.e2e);
                            let real = sender.and_then(|d| self.clients[d.index()].identity());
                            assert_eq!(Some(*identity), real, "{me} accepted {event:?}");
                        }
                        _ => fail(format_args!("{me} accepted {event:?}")),
                    }
                }
                ClientEvent::Sent { to, id } => {
                    let queue = self.pending.entry((me.clone(), to.clone())).or_default();
                    let Some(body) = queue.pop_front() else {
                        fail(format_args!("{me} reported {event:?} for nothing it sent"));
                    };
                    if self.healed {
                        self.probes.push((me.clone(), *id));
                    }
                    self.sent.insert((me.clone(), *id), (to.clone(), body));
                }
                ClientEvent::SendFailed { peer, discarded, .. } => {
                    let queue = self.pending.entry((me.clone(), peer.clone())).or_default();
                    assert!(queue.len() >= *discarded, "{me} discarded more than it sent");
                    queue.drain(..*discarded);
                }
                ClientEvent::Acked { id, .. } | ClientEvent::Rejected { id, .. } => {
                    let Some((to, _)) = self.sent.get(&(me.clone(), *id)) else {
                        fail(format_args!("{me}: {event:?} unsent"));
                    };
                    // The server rejects a message to a name nobody registered, and otherwise only
                    // one that finds the recipient's mailbox full.
                    let registered = self.device_named(to).is_some();
                    match event {
                        ClientEvent::Rejected {
                            reason: RejectReason::UnknownRecipient, ..
                        } => {
                            assert!(!registered, "{me}: {event:?}, but {to} is registered");
                        }
                        ClientEvent::Rejected { reason: RejectReason::MailboxFull, .. }
                        | ClientEvent::Acked { .. } => {
                            assert!(registered, "{me}: {event:?}, but nobody registered {to}");
                        }
                        _ => fail(format_args!("{me}: {event:?} from an honest server")),
                    }
                    let fresh = self.answered.insert((me.clone(), *id));
                    assert!(fresh, "{me}: {event:?} answered twice");
                }
                ClientEvent::Dropped { error } => {
                    // The one refusal an honest server causes: a hop message sent to an e2e client.
                    let hop =
                        Error::Protocol(ProtocolError::Unexpected { state: "e2e", got: "Deliver" });
                    if !device.e2e || *error != hop {
                        fail(format_args!("an honest server made {me} drop content: {error:?}"));
                    }
                    let (sent, refused) = self.hop_refusals.entry(me.clone()).or_default();
                    *refused += 1;
                    assert!(*refused <= *sent, "{me} refused more hop messages than it was sent");
                }
                ClientEvent::SessionStarted { peer, one_time_prekey } => {
                    let expected = self.name(Device::e2e(device.who.peer()));
                    assert!(device.e2e && *peer == expected && *one_time_prekey, "{me}: {event:?}");
                }
                ClientEvent::PrekeysReplenished { made } => {
                    // An honest server says "low" at PREKEYS_LOW_WATER or fewer: room for a batch.
                    assert!(device.e2e && *made == ONE_TIME_PREKEYS_PER_UPLOAD, "{me}: {event:?}");
                    self.expect_upload(device.who, *made);
                }
                ClientEvent::Refused(_)
                | ClientEvent::BundleRefused(_)
                | ClientEvent::IdentityChanged { .. }
                | ClientEvent::PeerEvicted { .. } => {
                    fail(format_args!("{me}: {event:?} with an honest server"));
                }
                ClientEvent::Connected | ClientEvent::BundleStored { .. } => {}
            }
        }
    }

    /// [`FANS`] other users, driven by hand, each fetch alice's and bob's bundles and take a
    /// one-time prekey of each (one per requester, SPEC.md §15.2); when that leaves the server at
    /// or below [`PREKEYS_LOW_WATER`], it seals `PrekeysLow` to the owner, online, and the notice
    /// is left in flight. The fans then leave.
    fn take_prekeys(&mut self) {
        for fan in 0..FANS {
            let link = LinkId(self.next_link);
            self.next_link += 1;
            let key = PrivateKey::generate(&mut self.rng);
            let fan_name = name(&format!("fan{fan}"));
            let mut fan = hand_register(&mut self.server, link, key, &fan_name, &mut self.rng);
            for who in [Who::Alice, Who::Bob] {
                let owner = Device::e2e(who);
                let request = Message::FetchBundle { name: self.name(owner) };
                let frame = seal_message(&mut fan.transport, &request);
                let out = must(self.server.handle(link, &frame, &mut self.rng), "a fan's fetch");
                let low = self.server.one_time_prekeys(&self.name(owner)) <= PREKEYS_LOW_WATER;
                let mut notices = 0;
                for (to, frame) in out.transmit {
                    if to == link {
                        let answer = open(&mut fan.transport, &frame);
                        assert!(
                            matches!(
                                answer,
                                Message::Bundle {
                                    bundle: FetchedBundle { one_time_prekey: Some(_), .. },
                                    ..
                                }
                            ),
                            "a fan's first fetch got {answer:?}"
                        );
                    } else {
                        assert_eq!(Some(to), self.current[owner.index()], "notice on {to:?}");
                        self.in_flight(owner.queue(), to, frame);
                        notices += 1;
                    }
                }
                assert_eq!(notices, usize::from(low), "PrekeysLow notices to {}", self.name(owner));
            }
            self.server.close_link(link);
        }
        for who in [Who::Alice, Who::Bob] {
            let held = self.server.one_time_prekeys(&self.name(Device::e2e(who)));
            assert!(held <= PREKEYS_LOW_WATER, "set-up: the fans left {held} one-time prekeys");
        }
    }

    /// The network heals. First its last hostile word: every link it disturbed is cut, losing its
    /// frames in flight, and everything else in flight arrives — the frames of the other links, in
    /// order, and whatever copies are left (refused, each checked to change nothing). Then it is
    /// quiet: every client it cut off (or that is offline) connects again, and from here on every
    /// call must succeed ([`Run::healed`]), so the reconnections' deliveries clone no role. A
    /// reconnection is two Noise handshakes' worth of X25519 (~0.5 ms), where the rest of an input
    /// costs microseconds: reconnecting all four clients took most of the target's time, and
    /// re-handshaking a link that nothing disturbed tests nothing the disturbed ones do not.
    fn heal(&mut self) {
        for device in Device::ALL {
            if self.disturbed[device.index()] {
                self.disconnect(device);
            }
        }
        self.deliver_all(4096);
        self.healed = true;
        for device in Device::ALL {
            let offline = !self.clients[device.index()].is_connected();
            if self.disturbed[device.index()] || offline {
                self.disconnect(device);
                self.connect(device, true);
            }
        }
        self.deliver_all(4096);
    }

    /// On a healed network, with nothing in flight, every call succeeds, and a hop message
    /// (between hop-only clients) and an e2e message get through both ways; the server holds more
    /// than [`PREKEYS_LOW_WATER`] one-time prekeys for both e2e clients (any `PrekeysLow` on their
    /// reconnection was answered). With [`Setup::hop_to_e2e`], a hop message to the peer's e2e
    /// client is acknowledged, and refused, once.
    ///
    /// Without that flag the last probe is left out: it is implied by the others and by
    /// `e2e_receive`. Its way to the server and the server's relay are the hop probe's (the
    /// server relays whatever the recipient speaks), its delivery the e2e probe's link, and the
    /// refusal is what `e2e_receive` checks, from every state of Bob it reaches, on every hop
    /// `Deliver`: exactly one `Dropped`. Where the input sent hop messages to e2e clients, the probe
    /// stays, after whatever those did.
    fn check_heals(&mut self) {
        for device in Device::ALL {
            assert!(
                self.clients[device.index()].is_connected(),
                "{} is offline",
                self.name(device)
            );
        }
        let in_flight: usize = self.queues.iter().map(VecDeque::len).sum();
        assert_eq!(in_flight, 0, "the healed network still holds frames");
        self.healed = true;
        let refused_before = [Who::Alice, Who::Bob].map(|who| self.hop_refused(who));
        for who in [Who::Alice, Who::Bob] {
            let peer = who.peer();
            self.send_hop(who, self.name(Device::hop(peer)), body_of(b"probe"));
            self.step(&Op::SendE2e {
                from: who,
                to_peer: true,
                body: SmallBytes(b"probe".to_vec()),
            });
            if self.hop_to_e2e {
                self.send_hop(who, self.name(Device::e2e(peer)), body_of(b"hop probe to e2e"));
            }
            self.deliver_all(4096);
        }
        let probes = core::mem::take(&mut self.probes);
        let expected = if self.hop_to_e2e { 6 } else { 4 };
        assert_eq!(probes.len(), expected, "probes were not sent: {probes:?}");
        for (from, id) in &probes {
            let Some((to, _)) = self.sent.get(&(from.clone(), *id)) else {
                fail(format_args!("a probe from {from} (#{}) is not recorded as sent", id.0));
            };
            let hop_to_e2e = self.device_named(from).is_some_and(|d| !d.e2e)
                && self.device_named(to).is_some_and(|d| d.e2e);
            if hop_to_e2e {
                let answered = self.answered.contains(&(from.clone(), *id));
                assert!(answered, "a hop probe from {from} (#{}) to {to} was not answered", id.0);
            } else {
                let got = self.accepted.contains(&(to.clone(), from.clone(), *id));
                assert!(got, "a probe from {from} (#{}) did not get through to {to}", id.0);
            }
        }
        for (who, before) in [Who::Alice, Who::Bob].into_iter().zip(refused_before) {
            let new = self.hop_refused(who) - before;
            let me = self.name(Device::e2e(who));
            assert_eq!(new, usize::from(self.hop_to_e2e), "{me} refused {new} hop probes");
            let held = self.server.one_time_prekeys(&me);
            assert!(held > PREKEYS_LOW_WATER, "{me} is left with {held} one-time prekeys");
        }
    }

    /// How many hop messages `who`'s e2e client refused so far.
    fn hop_refused(&self, who: Who) -> usize {
        let me = self.clients[Device::e2e(who).index()].name();
        self.hop_refusals.get(me).map_or(0, |(_, refused)| *refused)
    }
}
