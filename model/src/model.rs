//! The stateright [`Model`]: actions of the honest clients, the server and the attacker, each one
//! a call into the protocol crate's own state machines (spec/MODEL.md §3–§6).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use e2e_protocol::Error;
use e2e_protocol::channel::{PROLOGUE, Responder};
use e2e_protocol::e2e::envelope::EnvelopeBody;
use e2e_protocol::e2e::identity::IdentityKeyPair;
use e2e_protocol::e2e::prekeys::PrekeyStore;
use e2e_protocol::roles::{Client, ClientEvent, LinkId, Server, ServerEvent, ServerOutputs};
use e2e_protocol::seal_log;
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{
    AckStatus, Codec, Envelope, FetchedBundle, HEADER_LEN, LinkFrame, LinkKind, Message, MessageId,
};
use stateright::{Model, Property};

use crate::config::{Attacker, Bounds, Variant};
use crate::reduction::{self, CopyKind};
use crate::steps::{Draw, Steps};
use crate::world::{
    Accept, Dest, FORGED_BODY, Frame, Ghost, Impostor, Knowledge, Life, Net, Party, SealLog, Seen,
    Shared, Tag, Who, World, body, honest_body, rng, text,
};

pub mod mallory;
pub mod outage;
pub mod pcs;
pub mod prekeys;
pub mod recovery;
pub mod rotation;
pub mod setup;
pub mod substitution;

pub use setup::Reply;

/// What the compromise oracle opens for one victim: with its own long-term keys, and with its
/// identity paired with the attacker's own prekeys (`substitution.rs`).
#[derive(Debug, Clone, Default)]
struct Opened {
    own: Vec<String>,
    paired: Vec<String>,
}

/// Memo of compromise results: (victim, fingerprint of its inputs) → bodies opened.
type Memo = HashMap<(Who, u64), Opened>;

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// The client sends its next honest message to its peer.
    Send(Who),
    /// The head frame of the client's queue is delivered to it.
    Deliver(Who),
    /// The head frame on the client's link is handled by the server's honest code.
    Serve(Who),
    /// (S, e2e) the head frame on the client's link is opened and the man in the middle acts on
    /// it: a bundle request is answered with a forged bundle, an envelope it can open is
    /// re-encrypted in its own session with the real recipient.
    Mitm(Who),
    /// (S) the malicious server drops the head frame on a client's link after reading it. Other
    /// drops are [`Action::Skip`]s (spec/MODEL.md §7.1).
    Drop(Dest),
    /// The attacker drops the first `usize` frames of a queue, and the next one is delivered to
    /// its client, or handled by the honest server: a drop deferred to the next delivery on its
    /// queue (spec/MODEL.md §7.1, `reduction.rs`).
    Skip(Dest, usize),
    /// (N) the attacker re-sends observed frame `index`, towards the same kind of destination on
    /// `Who`'s link.
    Replay(usize, Who),
    /// (N) the attacker sends a copy of observed frame `index` with its last bit flipped.
    Tamper(usize),
    /// (N) the attacker makes copy `CopyKind` of observed frame `usize` for `Who`'s queue, drops
    /// the frames queued to `Who` if any, and the copy is delivered at once: how the copy that
    /// spends its last injection reaches a client (spec/MODEL.md §7.1, `reduction.rs`).
    InjectDeliver(CopyKind, usize, Who),
    /// (N, hop) the attacker registers as `Who` with a static key of its own and sends a forgery.
    Impersonate(Who),
    /// (S, hop) the server seals a `Deliver` of a forged body to `Who`, as from its peer.
    ForgeHop(Who),
    /// (S) the server re-delivers seen message `index` (hop: same id; e2e: same envelope, new id).
    Reinject(usize),
    /// (S, e2e) the server's impostor of `Who`'s peer encrypts a forged body to `Who`.
    ForgeE2e(Who),
    /// The attacker sends what it saw back where it came from: (N) observed frame `index` the other
    /// way on its link (to its sender, or from a client's queue to the server); (S) seen message
    /// `index` to its sender, as from its recipient.
    Reflect(usize),
    /// (S) seen message `index` delivered to its sender as from itself: a message to oneself.
    ToSelf(usize),
    /// (S, e2e) seen prekey message `index` re-encoded with one field changed ([`Edit`]) and
    /// delivered to its recipient, as from its sender.
    Rebuild(usize, Edit),
    /// (S) the server answers the head request on `Who`'s link itself, its answer re-encoded with
    /// one byte after the last field (the declared length covering it): a bundle request with the
    /// real bundle, a message with an `Ack` (the message is withheld, read as by `Drop`).
    Pad(Who),
    /// (C) the attacker learns Alice's and Bob's long-term keys.
    Compromise,
    /// (M) M's client sends a message of its own to `Who` (e2e: fetching `Who`'s bundle first if
    /// it has no session).
    MSend(Who),
    /// (M) M's client re-sends message `usize` it received in the set-up to `Who`, unchanged (hop:
    /// the body; e2e: the envelope).
    MRelay(usize, Who),
    /// (P) the attacker copies `Who`'s whole client; from then on the copy reads every frame
    /// delivered to `Who`.
    CopyState(Who),
    /// The client starts its handshake with the server (the set-up under attack, `setup.rs`).
    Connect(Who),
    /// (S, e2e) the server answers the bundle request at the head of `Who`'s link itself.
    Answer(Who, Reply),
    /// The client's link closes (`outage.rs`): the server and the client forget the channel.
    Close(Who),
    /// The server restarts from its durable state; every channel is gone (`outage.rs`).
    Restart,
    /// (e2e) The client rotates its signed prekey and uploads the new one (`rotation.rs`).
    Rotate(Who),
    /// (S, e2e, `--prekeys-low`) the server seals a `PrekeysLow` of its own to `Who`: no fetch
    /// left its store low (`prekeys.rs`).
    ForgeLow(Who),
}

/// How the malicious server changes a prekey message it re-encodes (spec/MODEL.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edit {
    /// The claimed identity's X25519 half is its impostor's, the Ed25519 half the sender's.
    ImpostorDh,
    /// The claimed identity's Ed25519 half is its impostor's, the X25519 half the sender's.
    ImpostorSign,
    /// The one-time prekey id is left out.
    NoOneTimePrekey,
}

impl Edit {
    /// Every edit.
    pub const ALL: [Self; 3] = [Self::ImpostorDh, Self::ImpostorSign, Self::NoOneTimePrekey];
}

/// The model of one (variant, attacker, bounds).
#[derive(Debug, Clone)]
pub struct E2eModel {
    /// The variant.
    pub variant: Variant,
    /// The attacker.
    pub attacker: Attacker,
    /// The bounds.
    pub bounds: Bounds,
    init: World,
    /// Alice's and Bob's channel static keys, learned by (C) in hop.
    static_keys: [PrivateKey; 2],
    /// The server's static key, which a restart keeps (`outage.rs`).
    server_key: PrivateKey,
    /// (e2e) Alice's and Bob's identities, which (C) learns and pairs with `own_prekeys`.
    identities: Vec<IdentityKeyPair>,
    /// (S, e2e) the prekey stores of the attacker's impostors, kept whole: its own keys.
    own_prekeys: Vec<PrekeyStore>,
    /// Memo of [`E2eModel::open_with_compromised`], a pure function of its key.
    cache: Arc<Mutex<Memo>>,
    /// Memo of `recovery`'s honest completions (`recovery.rs`).
    completions: Arc<recovery::Completions>,
    /// Memos of the roles' steps (`steps.rs`).
    steps: Arc<Steps>,
    /// `e2e-verified`: whether the users' comparison of safety numbers in the set-up pinned both
    /// identities (it does unless the numbers differ; spec/MODEL.md §2).
    pub verified: bool,
    /// (M) the messages M's client received in the set-up, which it may relay.
    pub inbox: Vec<mallory::Received>,
    /// Whether the set-up's handshakes and uploads are steps of the run ([`setup::attacked`]).
    pub set_up_attacked: bool,
}

/// What the honest set-up leaves besides the roles: the frames on the wire, the seals, and every
/// message Alice and Bob sent (each opened on a copy of the server, for the ghost's and M's use).
#[derive(Default)]
struct SetUpLog {
    observed: BTreeSet<(Dest, Frame)>,
    seals: SealLog,
    sent: Vec<(Who, Message)>,
}

/// The set-up's roles: the server, Alice and Bob, and against M, M's client on
/// [`mallory::MALLORY_LINK`].
struct SetUp<'a> {
    server: &'a mut Server,
    clients: &'a mut [Client; 2],
    mallory: Option<&'a mut Client>,
    log: &'a mut SetUpLog,
}

impl SetUp<'_> {
    /// Hands `frame`, sent to the server on `link`, and every frame it causes between the roles,
    /// until none is left.
    fn pump(
        &mut self,
        link: LinkId,
        frame: Vec<u8>,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> Result<(), Error> {
        // (link, whether to the server, bytes)
        let mut queue = VecDeque::from([(link, true, frame)]);
        while let Some((link, to_server, bytes)) = queue.pop_front() {
            let who = Who::of_link(link);
            if let Some(w) = who {
                let dest = if to_server { Dest::Server(w) } else { Dest::Client(w) };
                self.log.observed.insert((dest, Frame::honest(bytes.clone(), None)));
            }
            if to_server {
                if let Some(w) = who
                    && let Ok((_, plaintext)) = self.server.clone().open_transport(link, &bytes)
                    && let Ok(message) = Message::decode(&plaintext)
                {
                    self.log.sent.push((w, message));
                }
                let out = self.server.handle(link, &bytes, rng)?;
                self.log.seals.record(Party::Server, seal_log::drain());
                queue.extend(out.transmit.into_iter().map(|(l, f)| (l, false, f)));
                continue;
            }
            let (client, party) = match (who, self.mallory.as_deref_mut()) {
                (Some(w), _) => (&mut self.clients[w.index()], Party::Client(w)),
                (None, Some(m)) if link == mallory::MALLORY_LINK => (m, Party::Attacker),
                _ => continue,
            };
            let out = client.handle(&bytes, rng)?;
            self.log.seals.record(party, seal_log::drain());
            queue.extend(out.transmit.into_iter().map(|f| (link, true, f)));
        }
        Ok(())
    }
}

impl E2eModel {
    /// Sets up the run honestly — keys from the seed, both clients connected and, in e2e, their
    /// bundles published (and, in `e2e-verified`, a session started and the safety numbers
    /// compared, spec/MODEL.md §2; against M, M registered and greeted by Alice and Bob) — and
    /// returns the model whose initial state is the result.
    ///
    /// # Errors
    /// A protocol error during the honest setup, which would be a bug of the protocol crate.
    pub fn new(variant: Variant, attacker: Attacker, bounds: Bounds) -> Result<Self, Error> {
        let mut r = rng(bounds.seed, 3, 0);
        let server_key = PrivateKey::generate(&mut r);
        let mut server = Server::new(server_key.clone());
        let static_keys = [PrivateKey::generate(&mut r), PrivateKey::generate(&mut r)];
        let mut identities = Vec::new();
        let mut make = |w: Who, r: &mut rand_chacha::ChaCha20Rng| {
            let key = static_keys[w.index()].clone();
            if variant.is_e2e() {
                let (peers, identity, _) = substitution::generate(r);
                identities.push(identity);
                Client::with_e2e(w.name(), key, server.public_key(), peers)
            } else {
                Client::new(w.name(), key, server.public_key())
            }
        };
        let alice = make(Who::Alice, &mut r);
        let bob = make(Who::Bob, &mut r);
        let mut clients = [alice, bob];
        let mut verified = false;
        let mut log = SetUpLog::default();
        let _stale = seal_log::drain();
        let set_up_attacked = setup::attacked(variant, attacker, bounds);
        let explored = |w: Who| set_up_attacked && setup::explored(w, bounds);
        let mut set_up =
            SetUp { server: &mut server, clients: &mut clients, mallory: None, log: &mut log };
        for w in Who::BOTH {
            if explored(w) && bounds.first_registration {
                // No earlier connection: the client's first handshake, in the run, registers
                // its name, and the network attacker may race it (`setup.rs`).
                continue;
            }
            let init = set_up.clients[w.index()].connect(&mut r)?;
            set_up.log.seals.record(Party::Client(w), seal_log::drain());
            set_up.pump(w.link(), init, &mut r)?;
            if explored(w) {
                // The name was bound on an earlier connection, which is gone: the run starts
                // with the client offline, and connecting is a step of the run (`setup.rs`).
                set_up.server.close_link(w.link());
                set_up.clients[w.index()].disconnect();
                continue;
            }
            if variant.is_e2e() {
                let upload = set_up.clients[w.index()].upload_bundle()?;
                set_up.log.seals.record(Party::Client(w), seal_log::drain());
                set_up.pump(w.link(), upload, &mut r)?;
            }
        }
        if variant == Variant::E2eVerified {
            // A safety number needs a session: Alice greets Bob, which starts hers from his bundle
            // and his from her prekey message; then the users compare (spec/MODEL.md §2).
            let hello = e2e_protocol::wire::Body::new(GREETING.as_bytes().to_vec())?;
            let alice = &mut set_up.clients[Who::Alice.index()];
            let out = alice.send_e2e(&Who::Bob.name(), hello, &mut r)?;
            set_up.log.seals.record(Party::Client(Who::Alice), seal_log::drain());
            for frame in out.transmit {
                set_up.pump(Who::Alice.link(), frame, &mut r)?;
            }
            verified = compare_safety_numbers(set_up.clients);
        }
        if variant.is_e2e() && bounds.prekeys_low {
            // Other users took one-time prekeys: the first fetch of the run that takes one leaves
            // the server low (`prekeys.rs`).
            prekeys::drain(set_up.server, &mut r)?;
        }
        let mut know = Knowledge { budget: bounds.budget, next_id: 100, ..Knowledge::default() };
        let mut inbox = Vec::new();
        let mut own_prekeys = Vec::new();
        if attacker == Attacker::Malicious {
            let (client, received) = mallory::set_up(variant, &mut set_up, &mut r)?;
            know.mallory = Some(Shared::new(client));
            inbox = received;
        }
        if attacker.is_server(variant) {
            if variant.is_e2e() {
                for w in Who::BOTH {
                    let (mut peers, _, prekeys) = substitution::generate(&mut r);
                    own_prekeys.push(prekeys);
                    let bundle = peers.prepare_upload()?;
                    know.impostors.make_mut().push(Impostor {
                        impersonates: w,
                        peers,
                        bundle,
                        handed_out: 0,
                    });
                }
            }
        } else if attacker.holds_the_wire() {
            know.observed = Shared::new(std::mem::take(&mut log.observed));
        }
        let mut ghost =
            Ghost { seals: Shared::new(std::mem::take(&mut log.seals)), ..Ghost::default() };
        if attacker == Attacker::PostCompromise {
            // The ratchet keys the set-up's envelopes carry: a copy taken later holds them.
            for (w, message) in &log.sent {
                if let Some(key) = pcs::ratchet_key(message) {
                    ghost.ratchet_keys[w.index()].insert(key);
                }
            }
        }
        let init = World {
            clients: clients.map(Shared::new),
            server: Shared::new(server),
            net: Net::default(),
            draws: [0; 3],
            know,
            ghost,
            life: Life {
                connecting: Who::BOTH.map(|w| !explored(w)),
                uploaded: Who::BOTH.map(|w| !explored(w)),
                ..Life::default()
            },
        };
        Ok(Self {
            variant,
            attacker,
            bounds,
            init,
            static_keys,
            server_key,
            identities,
            own_prekeys,
            cache: Arc::default(),
            completions: Arc::default(),
            verified,
            inbox,
            steps: Arc::default(),
            set_up_attacked,
        })
    }

    fn messages(&self, w: Who) -> u8 {
        match w {
            Who::Alice => self.bounds.alice_messages,
            Who::Bob => self.bounds.bob_messages,
        }
    }

    fn server_attacker(&self) -> bool {
        self.attacker.is_server(self.variant)
    }

    fn rng(&self, s: &mut World, party: usize) -> rand_chacha::ChaCha20Rng {
        let r = rng(self.bounds.seed, party as u64, s.draws[party]);
        s.draws[party] = s.draws[party].wrapping_add(1);
        r
    }

    /// `party`'s next RNG stream, without advancing its counter.
    fn next_draw(&self, s: &World, party: usize) -> Draw {
        Draw { seed: self.bounds.seed, party: party as u64, counter: s.draws[party] }
    }

    /// `party`'s next RNG stream, advancing its counter (as [`Self::rng`]).
    fn draw(&self, s: &mut World, party: usize) -> Draw {
        let draw = self.next_draw(s, party);
        s.draws[party] = s.draws[party].wrapping_add(1);
        draw
    }

    /// Moves the seals made since the last drain into the ghost log, as `by`'s (spec/MODEL.md §4).
    fn sealed(s: &mut World, by: Party) {
        let drained = seal_log::drain();
        if !drained.seals.is_empty() || drained.overflowed {
            s.ghost.seals.make_mut().record(by, drained);
        }
    }

    /// Forgets the seals made since the last drain: those of a call that failed (a role that
    /// returns an error is unchanged and sent nothing), or of the attacker's work on copies (§5).
    fn unsealed() {
        let _forgotten = seal_log::drain();
    }

    /// Records that an attacker-held key opened honest `body` (through compromised keys, or not).
    fn learn(s: &mut World, body: &str, via_compromise: bool) {
        if !s.ghost.sent_bodies().contains(body) {
            return;
        }
        if !via_compromise {
            s.know.learned.insert(body.to_owned());
            return;
        }
        if !s.know.learned.contains(body)
            && s.ghost.compromised.as_ref().is_some_and(|before| before.contains(body))
        {
            s.ghost.fs_leak.insert(body.to_owned());
        }
        s.know.learned_at_compromise.insert(body.to_owned());
    }

    fn observe(&self, s: &mut World, dest: Dest, frame: &Frame) {
        if self.attacker.holds_the_wire() && !self.server_attacker() {
            let frame = reduction::observed(frame);
            if !s.know.observed.contains(&(dest, frame.clone())) {
                s.know.observed.make_mut().insert((dest, frame));
            }
        }
    }

    fn push(&self, s: &mut World, dest: Dest, frame: Frame) {
        self.observe(s, dest, &frame);
        s.net.queue(dest).push(frame);
    }

    /// Frames a client transmitted: the last `sealed` of them carry its waiting honest messages.
    fn emit_client(&self, s: &mut World, w: Who, transmit: Vec<Vec<u8>>, sealed: usize) {
        let first_sealed = transmit.len().saturating_sub(sealed);
        for (i, bytes) in transmit.into_iter().enumerate() {
            let tag = if i >= first_sealed && !s.ghost.waiting[w.index()].is_empty() {
                Some((w, s.ghost.waiting[w.index()].remove(0)))
            } else {
                None
            };
            self.push(s, Dest::Server(w), Frame::honest(bytes, tag));
        }
    }

    /// Routes the server's output frames; a frame relayed to the other client inherits the tag.
    fn route(&self, s: &mut World, from: Option<Who>, incoming: &Frame, out: ServerOutputs) {
        // A restored server is durable: its mailbox leaves the store once written (SPEC.md §5.4),
        // and pushing a frame onto a queue is writing it.
        for delivery in &out.delivered {
            let _removed = s.server.make_mut().settle(delivery);
        }
        for event in &out.events {
            if matches!(event, ServerEvent::Dropped { .. } | ServerEvent::Refused { .. })
                && incoming.injected
            {
                s.ghost.forgery_rejected = true;
            }
        }
        for (link, bytes) in out.transmit {
            let Some(to) = Who::of_link(link) else { continue };
            let relayed = from != Some(to);
            let frame = Frame {
                bytes,
                tag: if relayed { incoming.tag } else { None },
                injected: relayed && incoming.injected,
                malformed: false,
                copy: false,
            };
            self.push(s, Dest::Client(to), frame);
        }
        // The links the server itself closed (SPEC.md §5.1: a name's newest connection wins, and
        // it keeps one unconfirmed link per name), which its driver closes at once, as the relay
        // does (`ServerOutputs::close`): the client on one is offline now, not when its next frame
        // is refused. A close of the frame's own link comes with the refusal the server sends on
        // it, which tells its client. The malicious server's driver is the attacker's, which keeps
        // links as it likes (spec/MODEL.md §4).
        if !self.server_attacker() {
            for w in out.close.iter().filter_map(|link| Who::of_link(*link)) {
                if from != Some(w) {
                    Self::close_displaced(s, w);
                }
            }
        }
    }

    fn send(&self, s: &mut World, w: Who) -> Option<()> {
        let seq = s.ghost.sent[w.index()] + 1;
        let content = body(&honest_body(w, seq))?;
        let to = w.peer().name();
        if self.variant.is_e2e() {
            let draw = self.draw(s, w.index());
            let out = self.steps.send_e2e(&mut s.clients[w.index()], &to, content, draw)?;
            s.ghost.sent[w.index()] = seq;
            s.ghost.waiting[w.index()].push(seq);
            let sealed = count_sent(&out.events);
            self.emit_client(s, w, out.transmit, sealed);
        } else {
            let bytes = self.steps.send_hop(&mut s.clients[w.index()], &to, content)?;
            s.ghost.sent[w.index()] = seq;
            self.push(s, Dest::Server(w), Frame::honest(bytes, Some((w, seq))));
        }
        Some(())
    }

    fn deliver(&self, s: &mut World, w: Who) -> Option<()> {
        let queue = &mut s.net.to_client[w.index()];
        if queue.is_empty() {
            return None;
        }
        let frame = queue.remove(0);
        let draw = self.next_draw(s, w.index());
        let mut received = Vec::new();
        match self.steps.handle(&mut s.clients[w.index()], &frame.bytes, draw) {
            None => {
                Self::unsealed();
                s.ghost.forgery_rejected |= frame.injected;
            }
            Some((out, drew)) => {
                s.draws[w.index()] = s.draws[w.index()].wrapping_add(u32::from(drew));
                let dropped = out.events.iter().any(|e| matches!(e, ClientEvent::Dropped { .. }));
                s.ghost.malformed_accepted |= frame.malformed && !dropped;
                for event in &out.events {
                    match event {
                        ClientEvent::Received { from, body, .. } => {
                            received.push((from.as_str().to_owned(), text(body)));
                            if *from == w.peer().name()
                                && s.ghost.sent_bodies().contains(&text(body))
                            {
                                s.ghost.after_outage[0] |= s.life.closed;
                                s.ghost.after_outage[1] |= s.life.restarted;
                            }
                            let accept = Accept {
                                by: w,
                                from: from.as_str().to_owned(),
                                body: text(body),
                                tag: frame.tag,
                            };
                            let at = s.ghost.accepted.partition_point(|a| *a <= accept);
                            s.ghost.accepted.insert(at, accept);
                        }
                        ClientEvent::Dropped { .. } => s.ghost.forgery_rejected |= frame.injected,
                        ClientEvent::SendFailed { discarded, .. } => {
                            let waiting = &mut s.ghost.waiting[w.index()];
                            let n = (*discarded).min(waiting.len());
                            waiting.drain(..n);
                            Self::retry(s, w, n);
                        }
                        ClientEvent::SessionStarted { one_time_prekey: false, .. } => {
                            s.ghost.without_one_time = true;
                        }
                        _ => {}
                    }
                }
                Self::note_prekey_delivery(s, w, &frame, &out.events);
                Self::note_substitution_refused(s, &out.events);
                Self::note_top_up(s, w, frame.injected, &out.events);
                let sealed = count_sent(&out.events);
                self.emit_client(s, w, out.transmit, sealed);
                if out.events.contains(&ClientEvent::Connected) {
                    self.on_connected(s, w);
                }
            }
        }
        if self.attacker == Attacker::PostCompromise {
            // The client's own seals first; the copy's are forgotten (it transmits nothing).
            Self::sealed(s, Party::Client(w));
            self.copy_delivery(s, w, &frame, &received);
        }
        Some(())
    }

    /// The server handles the head frame on `w`'s link, honestly or as the man in the middle.
    ///
    /// `None` for a man in the middle that would do nothing but serve the frame honestly (a
    /// handshake, a frame its channel does not open, a message it has no forgery for): that step
    /// is `Serve` with `interfered` set, which a reduction leaves out (spec/MODEL.md §7.1).
    fn serve(&self, s: &mut World, w: Who, mitm: bool) -> Option<()> {
        let queue = &mut s.net.to_server[w.index()];
        if queue.is_empty() {
            return None;
        }
        let frame = queue.remove(0);
        if self.attacker == Attacker::PostCompromise {
            self.note_sealed(s, w, &frame);
        }
        if !self.server_attacker() || is_handshake(&frame) {
            if mitm {
                return None;
            }
            // A handshake message reaches even the malicious server's own code: it holds no
            // channel to open it with yet, and answering it is how it gets one.
            // As a client's delivery: the counter advances only when the server's call succeeds
            // and drew from its stream (spec/MODEL.md §1), so a refused frame leaves the server's
            // state as it was, and a relay does not move the point its next handshake draws at.
            self.note_prekey_frame(s, w, &frame);
            let draw = self.next_draw(s, 2);
            match self.steps.serve(&mut s.server, w.link(), &frame.bytes, draw) {
                None => {
                    Self::unsealed();
                    s.ghost.forgery_rejected |= frame.injected;
                    if !self.server_attacker() {
                        Self::close_unconfirmed(s, w);
                    }
                }
                Some((out, drew)) => {
                    s.draws[2] = s.draws[2].wrapping_add(u32::from(drew));
                    self.route(s, Some(w), &frame, out);
                }
            }
            return Some(());
        }
        // The malicious server: open, learn, then act.
        let Some(plaintext) = self.steps.open(&mut s.server, w.link(), &frame.bytes) else {
            if mitm {
                return None;
            }
            s.ghost.forgery_rejected |= frame.injected;
            return Some(());
        };
        let message = Message::decode(&plaintext).ok();
        let opened = self.server_learns(s, w, message.as_ref(), frame.tag);
        if mitm {
            match (&message, opened) {
                (Some(Message::FetchBundle { name }), _) if *name != w.name() => {
                    let target = Who::from_name(name.as_str())?;
                    let imp = s
                        .know
                        .impostors
                        .make_mut()
                        .iter_mut()
                        .find(|i| i.impersonates == target)?;
                    let bundle = fetched_bundle(imp);
                    let reply = Message::Bundle { name: name.clone(), bundle };
                    let bytes = self.steps.seal(&mut s.server, w.link(), &reply)?;
                    self.push(s, Dest::Client(w), Frame::injected(bytes, None));
                    return Some(());
                }
                (Some(Message::E2eSend { id, to, .. }), Some(content)) => {
                    let target = Who::from_name(to.as_str())?;
                    let envelope = self.impostor_encrypt(s, w, target, &content)?;
                    let rewritten = Message::E2eSend { id: *id, to: to.clone(), envelope };
                    let out = self.steps.process(&mut s.server, w.link(), rewritten.encode());
                    let forged = Frame::injected(vec![], None);
                    self.route(s, Some(w), &forged, out);
                    return Some(());
                }
                _ => return None,
            }
        }
        let out = self.steps.process(&mut s.server, w.link(), plaintext);
        self.route(s, Some(w), &frame, out);
        Some(())
    }

    /// (S) the malicious server drops the head frame on `w`'s link after reading it, as §3 says:
    /// what it withholds is in its log, so it may `Reinject` it later, out of order.
    fn withhold(&self, s: &mut World, w: Who) -> Option<()> {
        let queue = &mut s.net.to_server[w.index()];
        if queue.is_empty() {
            return None;
        }
        let frame = queue.remove(0);
        let Some(plaintext) = self.steps.open(&mut s.server, w.link(), &frame.bytes) else {
            s.ghost.forgery_rejected |= frame.injected;
            return Some(());
        };
        let message = Message::decode(&plaintext).ok();
        self.server_learns(s, w, message.as_ref(), frame.tag);
        Some(())
    }

    /// (S) answers the head request on `w`'s link itself, the answer one byte longer than its
    /// encoding: what no encoder gives, so a client must refuse it (SPEC.md §3.4). The request is
    /// opened and read first, as by [`Self::withhold`]; `None` for a request it has no answer for.
    fn pad(&self, s: &mut World, w: Who) -> Option<()> {
        let frame = s.net.to_server[w.index()].first()?.clone();
        let (_, plaintext) = s.server.make_mut().open_transport(w.link(), &frame.bytes).ok()?;
        let request = Message::decode(&plaintext).ok()?;
        let answer = match &request {
            Message::FetchBundle { name } => match s.server.make_mut().take_bundle(name) {
                Some(bundle) => Message::Bundle { name: name.clone(), bundle },
                None => Message::NoBundle { name: name.clone() },
            },
            Message::Send { id, .. } | Message::E2eSend { id, .. } => {
                Message::Ack { id: *id, status: AckStatus::Relayed }
            }
            _ => return None,
        };
        Self::spend(s)?;
        s.net.to_server[w.index()].remove(0);
        self.server_learns(s, w, Some(&request), frame.tag);
        let bytes =
            s.server.make_mut().seal_plaintext(w.link(), &with_trailing_byte(&answer)?).ok()?;
        let padded = Frame { malformed: true, ..Frame::injected(bytes, None) };
        s.net.to_client[w.index()].push(padded);
        Some(())
    }

    /// The malicious server reads an application message from `from`: records it and tries every
    /// key it holds. Returns the content if one of its impostor sessions opened an envelope.
    fn server_learns(
        &self,
        s: &mut World,
        from: Who,
        message: Option<&Message>,
        tag: Option<Tag>,
    ) -> Option<e2e_protocol::wire::Body> {
        let message = message?;
        match message {
            Message::UploadBundle { bundle } => {
                self.keep_old_signed_prekey(s, from, bundle);
                None
            }
            Message::Send { id, to, body } => {
                let to = Who::from_name(to.as_str())?;
                s.know.seen.make_mut().push(Seen {
                    from,
                    to,
                    id: *id,
                    body: Some(body.clone()),
                    envelope: None,
                    tag,
                });
                Self::learn(s, &text(body), false);
                None
            }
            Message::E2eSend { id, to, envelope } => {
                self.note_prekey(s, message, tag);
                let to = Who::from_name(to.as_str())?;
                s.know.seen.make_mut().push(Seen {
                    from,
                    to,
                    id: *id,
                    body: None,
                    envelope: Some(envelope.clone()),
                    tag,
                });
                let opened = self.steps.impostor_decrypt(&mut s.know.impostors, from, to, envelope);
                if let Some(content) = &opened {
                    Self::learn(s, &text(content), false);
                }
                opened
            }
            _ => None,
        }
    }

    /// The impostor of `from` (facing the real `to`) encrypts `content` for `to`, starting its
    /// session from `to`'s real bundle if it has none.
    fn impostor_encrypt(
        &self,
        s: &mut World,
        from: Who,
        to: Who,
        content: &e2e_protocol::wire::Body,
    ) -> Option<Envelope> {
        let mut r = self.rng(s, 2);
        let index = s.know.impostors.iter().position(|i| i.impersonates == from)?;
        let mut peers = s.know.impostors[index].peers.clone();
        Self::sealed(s, Party::Server);
        if !peers.has_session(&to.name()) {
            let bundle = s.server.make_mut().take_bundle(&to.name())?;
            peers.start_session(&from.name(), &to.name(), &bundle, &mut r).ok()?;
        }
        let envelope = peers.encrypt(&to.name(), content, &mut r).ok()?;
        Self::sealed(s, Party::Attacker);
        s.know.impostors.make_mut()[index].peers = peers;
        Some(envelope)
    }

    fn compromise(&self, s: &mut World) -> Option<()> {
        // Forward secrecy covers what the intended recipient had accepted before compromise; a
        // message still undelivered is readable with the recipient's keys by design.
        let delivered: BTreeSet<String> = s
            .ghost
            .accepted
            .iter()
            .filter(|a| Who::from_name(&a.from).is_some_and(|f| f == a.by.peer()))
            .map(|a| a.body.clone())
            .filter(|b| s.ghost.sent_bodies().contains(b))
            .collect();
        s.ghost.compromised = Some(delivered);
        if !self.variant.is_e2e() {
            // Hop: Alice's and Bob's static keys. The only code of the crate that takes a static
            // private key and an observed frame is the responder's handshake: try it on every
            // observed handshake message 1 (it needs the server's key, so it fails).
            s.know.static_keys = true;
            let mut learned = Vec::new();
            for (_, frame) in s.know.observed.iter() {
                let Ok(link) = LinkFrame::decode(&frame.bytes) else { continue };
                if link.kind() != LinkKind::HandshakeInit {
                    continue;
                }
                for key in &self.static_keys {
                    let responder = Responder::new(PROLOGUE, key.clone());
                    if let Ok(received) = responder.read_message_1(link.noise())
                        && let Ok(Message::Send { body, .. }) = Message::decode(received.payload())
                    {
                        learned.push(text(&body));
                    }
                }
            }
            for b in learned {
                Self::learn(s, &b, true);
            }
            return Some(());
        }
        for victim in Who::BOTH {
            for tried in self.compromise_inputs(s, victim) {
                let opened = self.open_with_compromised(s, victim, &tried);
                for body in opened.own {
                    Self::learn(s, &body, true);
                }
                for body in opened.paired {
                    Self::learn_through_own_prekeys(s, body);
                }
            }
        }
        // The oracle sealed on copies, and not at all when its memo answered.
        Self::unsealed();
        Some(())
    }

    /// The envelope lists the compromise oracle tries for `victim` (spec/MODEL.md §5), each as
    /// (sender, envelope) in order: every e2e envelope sent to it before compromise — those the
    /// server opened, then those still in flight to it, which the server (the attacker) opens
    /// now on a copy — and, for each [`Edit`] that changes one of them, the same list with every
    /// prekey message rebuilt by that edit as S's `Rebuild` builds it. Each list is tried on
    /// fresh copies of the keys: a rebuilt message keeps its original's base key, and whichever
    /// opened first would retire that key for the other.
    #[must_use]
    pub fn compromise_inputs(&self, s: &World, victim: Who) -> Vec<Vec<(Who, Envelope)>> {
        let mut sent: Vec<(Who, Envelope)> = s
            .know
            .seen
            .iter()
            .filter(|m| m.to == victim)
            .filter_map(|m| m.envelope.clone().map(|e| (m.from, e)))
            .collect();
        let mut opener = Server::clone(&s.server);
        for w in Who::BOTH {
            // Every frame is opened, in order: the channel's nonces move with each.
            for frame in &s.net.to_server[w.index()] {
                if let Ok((_, plaintext)) = opener.open_transport(w.link(), &frame.bytes)
                    && let Ok(Message::E2eSend { to, envelope, .. }) = Message::decode(&plaintext)
                    && Who::from_name(to.as_str()) == Some(victim)
                {
                    sent.push((w, envelope));
                }
            }
        }
        let mut lists = vec![sent];
        for edit in Edit::ALL {
            let edited: Vec<(Who, Envelope)> = lists[0]
                .iter()
                .map(|(from, e)| (*from, rebuilt(s, *from, e, edit).unwrap_or_else(|| e.clone())))
                .collect();
            if edited != lists[0] {
                lists.push(edited);
            }
        }
        lists
    }

    /// What `victim`'s long-term keys open among `envelopes` (sender, envelope), tried in order on
    /// one client holding only those keys ([`strip`]), and what its identity opens paired with
    /// the attacker's own prekeys ([`Self::open_with_own_prekeys`]). A pure function of its
    /// inputs, memoised.
    fn open_with_compromised(
        &self,
        s: &World,
        victim: Who,
        envelopes: &[(Who, Envelope)],
    ) -> Opened {
        let key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.clients[victim.index()].hash(&mut h);
            envelopes.hash(&mut h);
            h.finish()
        };
        if let Ok(cache) = self.cache.lock()
            && let Some(hit) = cache.get(&(victim, key))
        {
            return hit.clone();
        }
        let mut server = Server::clone(&s.server);
        let mut r = rng(self.bounds.seed, 4, 1 + victim.index() as u32);
        let mut bodies = Vec::new();
        let paired = self.open_with_own_prekeys(victim, envelopes);
        if let Some(mut copy) = strip(&s.clients[victim.index()], &mut server, victim, &mut r) {
            for (i, (from, envelope)) in envelopes.iter().enumerate() {
                let id = MessageId(1000 + i as u64);
                let message =
                    Message::E2eDeliver { id, from: from.name(), envelope: envelope.clone() };
                let Ok(frame) = server.seal_transport(oracle_link(victim), &message) else {
                    continue;
                };
                if let Ok(out) = copy.handle(&frame, &mut r) {
                    for event in out.events {
                        if let ClientEvent::Received { body, .. } = event {
                            bodies.push(text(&body));
                        }
                    }
                }
            }
        }
        let opened = Opened { own: bodies, paired };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert((victim, key), opened.clone());
        }
        opened
    }

    fn spend(s: &mut World) -> Option<u64> {
        s.know.budget = s.know.budget.checked_sub(1)?;
        let id = s.know.next_id;
        s.know.next_id += 1;
        Some(id)
    }

    /// (N) spends an injection on copy `kind` of observed frame `index` (a replay on `link`'s
    /// link), which joins its queue; returns the queue.
    fn inject_copy(&self, s: &mut World, kind: CopyKind, index: usize, link: Who) -> Option<Dest> {
        let (seen, frame) = s.know.observed.iter().nth(index)?;
        let (dest, copy) = (kind.dest(*seen, link), kind.of(frame)?);
        Self::spend(s)?;
        s.net.queue(dest).push(copy);
        Some(dest)
    }

    /// (N) [`Action::InjectDeliver`]: drops the frames queued to `to`, puts copy `kind` of
    /// observed frame `index` there, and delivers it. Returns whether frames were dropped.
    fn inject_deliver(&self, s: &mut World, kind: CopyKind, index: usize, to: Who) -> Option<bool> {
        let queue = &mut s.net.to_client[to.index()];
        let flushed = !queue.is_empty();
        queue.clear();
        if self.inject_copy(s, kind, index, to)? != Dest::Client(to) {
            return None;
        }
        self.deliver(s, to)?;
        Some(flushed)
    }

    fn inject(&self, s: &mut World, action: &Action) -> Option<()> {
        match action {
            Action::Replay(index, who) => {
                self.inject_copy(s, CopyKind::Replay, *index, *who)?;
            }
            Action::Tamper(index) => {
                self.inject_copy(s, CopyKind::Tamper, *index, Who::Alice)?;
            }
            Action::Impersonate(w) => {
                Self::spend(s)?;
                self.impersonate(s, *w)?;
            }
            Action::ForgeHop(to) => {
                let id = Self::spend(s)?;
                let message = Message::Deliver {
                    id: MessageId(id),
                    from: to.peer().name(),
                    body: body(FORGED_BODY)?,
                };
                let bytes = self.steps.seal(&mut s.server, to.link(), &message)?;
                s.net.to_client[to.index()].push(Frame::injected(bytes, None));
            }
            Action::Reinject(index) => {
                let seen = s.know.seen.get(*index)?;
                let (to, from, tag) = (seen.to, seen.from, seen.tag);
                self.redeliver(s, *index, to, from, tag)?;
            }
            Action::Reflect(index) if self.server_attacker() => {
                let seen = s.know.seen.get(*index)?;
                let (sender, recipient) = (seen.from, seen.to);
                self.redeliver(s, *index, sender, recipient, None)?;
            }
            Action::Reflect(index) => {
                self.inject_copy(s, CopyKind::Reflect, *index, Who::Alice)?;
            }
            Action::Rebuild(index, edit) => self.rebuild(s, *index, *edit)?,
            Action::ToSelf(index) => {
                let sender = s.know.seen.get(*index)?.from;
                self.redeliver(s, *index, sender, sender, None)?;
            }
            Action::Pad(w) => self.pad(s, *w)?,
            Action::ForgeLow(w) => self.forge_low(s, *w)?,
            Action::MSend(to) => self.mallory_send(s, *to)?,
            Action::MRelay(index, to) => self.mallory_relay(s, *index, *to)?,
            Action::ForgeE2e(to) => {
                let id = Self::spend(s)?;
                let envelope = self.impostor_encrypt(s, to.peer(), *to, &body(FORGED_BODY)?)?;
                let message =
                    Message::E2eDeliver { id: MessageId(id), from: to.peer().name(), envelope };
                let bytes = self.steps.seal(&mut s.server, to.link(), &message)?;
                s.net.to_client[to.index()].push(Frame::injected(bytes, None));
            }
            _ => return None,
        }
        Some(())
    }

    /// (S) re-encodes seen prekey message `index` with `edit` (its envelope decoded and encoded by
    /// the crate's `EnvelopeBody`) and delivers it to its recipient, as from its sender. `None`
    /// when the message is no prekey message, or has no one-time prekey id to leave out.
    fn rebuild(&self, s: &mut World, index: usize, edit: Edit) -> Option<()> {
        let seen = s.know.seen.get(index)?.clone();
        let envelope = rebuilt(s, seen.from, seen.envelope.as_ref()?, edit)?;
        let id = Self::spend(s)?;
        let message = Message::E2eDeliver { id: MessageId(id), from: seen.from.name(), envelope };
        let bytes = s.server.make_mut().seal_transport(seen.to.link(), &message).ok()?;
        s.net.to_client[seen.to.index()].push(Frame::injected(bytes, None));
        Some(())
    }

    /// (S) delivers seen message `index` to `to` as from `from` (hop: the same id; e2e: the same
    /// envelope under a new id), the frame carrying ghost tag `tag`.
    fn redeliver(
        &self,
        s: &mut World,
        index: usize,
        to: Who,
        from: Who,
        tag: Option<Tag>,
    ) -> Option<()> {
        let seen = s.know.seen.get(index)?.clone();
        let id = Self::spend(s)?;
        let message = match (seen.body, seen.envelope) {
            (Some(body), _) => Message::Deliver { id: seen.id, from: from.name(), body },
            (None, Some(envelope)) => {
                Message::E2eDeliver { id: MessageId(id), from: from.name(), envelope }
            }
            (None, None) => return None,
        };
        let bytes = s.server.make_mut().seal_transport(to.link(), &message).ok()?;
        s.net.to_client[to.index()].push(Frame::injected(bytes, tag));
        Some(())
    }

    /// (N) registers as `w` with a key of its own on a fresh link and, if the server lets it,
    /// sends a forgery to `w`'s peer. The attacker's own client is the crate's `Client`.
    fn impersonate(&self, s: &mut World, w: Who) -> Option<()> {
        let mut r = self.rng(s, 2);
        let link = LinkId(3);
        let mut fake = Client::new(w.name(), PrivateKey::generate(&mut r), s.server.public_key());
        let mut to_server = vec![fake.connect(&mut r).ok()?];
        Self::sealed(s, Party::Attacker);
        let forged = Frame::injected(vec![], None);
        let mut sent_forgery = false;
        while !to_server.is_empty() {
            let bytes = to_server.remove(0);
            let Ok(out) = s.server.make_mut().handle(link, &bytes, &mut r) else {
                Self::unsealed();
                s.ghost.forgery_rejected = true;
                break;
            };
            Self::sealed(s, Party::Server);
            let mut back = Vec::new();
            for (l, f) in &out.transmit {
                if *l == link {
                    back.push(f.clone());
                }
            }
            self.route(s, None, &forged, out);
            for f in back {
                let Ok(reply) = fake.handle(&f, &mut r) else {
                    Self::unsealed();
                    continue;
                };
                Self::sealed(s, Party::Attacker);
                if reply.events.iter().any(|e| matches!(e, ClientEvent::Refused(_))) {
                    s.ghost.forgery_rejected = true;
                }
                to_server.extend(reply.transmit);
            }
            if to_server.is_empty() && fake.is_connected() && !sent_forgery {
                sent_forgery = true;
                let (_, frame) = fake.send(&w.peer().name(), body(FORGED_BODY)?).ok()?;
                Self::sealed(s, Party::Attacker);
                to_server.push(frame);
            }
        }
        s.server.make_mut().close_link(link);
        Some(())
    }
}

/// The party whose calls a step makes: its seals, unless the step attributed them as it went.
const fn actor(action: &Action) -> Party {
    match action {
        Action::Send(w)
        | Action::Deliver(w)
        | Action::Skip(Dest::Client(w), _)
        | Action::Connect(w)
        | Action::Rotate(w)
        | Action::InjectDeliver(_, _, w) => Party::Client(*w),
        Action::Replay(..)
        | Action::Tamper(_)
        | Action::Impersonate(_)
        | Action::Compromise
        | Action::MSend(_)
        | Action::MRelay(..)
        | Action::CopyState(_) => Party::Attacker,
        _ => Party::Server,
    }
}

/// Whether `frame` is a handshake message (its link frame says so): the server's code answers it
/// before any channel exists.
fn is_handshake(frame: &Frame) -> bool {
    LinkFrame::decode(&frame.bytes).is_ok_and(|f| f.kind() == LinkKind::HandshakeInit)
}

/// `message` encoded with one byte after its last field, the header's declared length covering
/// it (SPEC.md §3.1: version, type, then the body's length as a big-endian u32).
fn with_trailing_byte(message: &Message) -> Option<Vec<u8>> {
    let mut bytes = message.encode();
    bytes.push(0);
    let body_len = u32::try_from(bytes.len().checked_sub(HEADER_LEN)?).ok()?;
    bytes.get_mut(2..HEADER_LEN)?.copy_from_slice(&body_len.to_be_bytes());
    Some(bytes)
}

/// What Alice says to Bob in `e2e-verified`'s set-up, to start the sessions whose safety numbers
/// the users compare: not an honest message of the run (the properties do not count it).
pub const GREETING: &str = "hello";

/// The users compare the safety numbers their clients display for their sessions with each other
/// (`Client::safety_number`), as they would side by side or by scanning each other's code: each
/// client is given the number the *other* screen shows (`Client::verify_safety_number`), which
/// pins the identity of its session if the number is its own. Returns whether both pinned. Where
/// the numbers differ nothing is pinned, and the users carry on unverified: that is all a failed
/// comparison leaves them (spec/MODEL.md §2).
fn compare_safety_numbers(clients: &mut [Client; 2]) -> bool {
    let shown = Who::BOTH.map(|w| clients[w.index()].safety_number(&w.peer().name()));
    let mut pinned = true;
    for w in Who::BOTH {
        pinned &= shown[w.peer().index()].as_ref().is_some_and(|theirs| {
            clients[w.index()].verify_safety_number(&w.peer().name(), theirs).is_ok()
        });
    }
    pinned
}

/// `envelope`, a prekey message `from` sent, decoded and re-encoded by the crate's
/// `EnvelopeBody` with `edit`, the identity halves it swaps taken from S's impostor of `from`
/// (spec/MODEL.md §3, `Rebuild`). `None` when it is no prekey message, or has no one-time prekey
/// id to leave out.
fn rebuilt(s: &World, from: Who, envelope: &Envelope, edit: Edit) -> Option<Envelope> {
    let decoded = EnvelopeBody::decode(envelope.as_bytes()).ok()?;
    let EnvelopeBody::Prekey { mut prekey, message } = decoded else { return None };
    let impostor = s.know.impostors.iter().find(|i| i.impersonates == from)?;
    let theirs = impostor.peers.identity();
    match edit {
        Edit::ImpostorDh => prekey.identity.dh = theirs.dh,
        Edit::ImpostorSign => prekey.identity.sign = theirs.sign,
        Edit::NoOneTimePrekey => {
            prekey.one_time_prekey_id.take()?;
        }
    }
    Envelope::new(EnvelopeBody::Prekey { prekey, message }.encode()).ok()
}

/// The link the compromise oracle uses to reach its copy of `w`.
const fn oracle_link(w: Who) -> LinkId {
    LinkId(11 + w.index() as u64)
}

/// A client holding `victim`'s long-term keys as they are now and nothing of its state
/// ([`Client::long_term_copy`]: no session, pin or retired base key), connected to `server` (a
/// copy) on the oracle's link: what compromise of its long-term keys gives.
fn strip(
    victim: &Client,
    server: &mut Server,
    w: Who,
    r: &mut rand_chacha::ChaCha20Rng,
) -> Option<Client> {
    let mut c = victim.long_term_copy();
    let mut to_server = vec![c.connect(r).ok()?];
    while !to_server.is_empty() {
        let bytes = to_server.remove(0);
        let out = server.handle(oracle_link(w), &bytes, r).ok()?;
        for (link, frame) in out.transmit {
            if link == oracle_link(w) {
                // Only the handshake answer; the copy's re-sent bundle requests are not needed.
                if let Ok(reply) = c.handle(&frame, r)
                    && reply.events.contains(&ClientEvent::Connected)
                {
                    to_server.extend(reply.transmit.into_iter().take(1));
                }
            }
        }
    }
    c.is_connected().then_some(c)
}

fn count_sent(events: &[ClientEvent]) -> usize {
    events.iter().filter(|e| matches!(e, ClientEvent::Sent { .. })).count()
}

/// The forged bundle an impostor hands out, with its next one-time prekey.
fn fetched_bundle(imp: &mut Impostor) -> FetchedBundle {
    let one_time_prekey = imp.bundle.one_time_prekeys().get(usize::from(imp.handed_out)).copied();
    if one_time_prekey.is_some() {
        imp.handed_out += 1;
    }
    FetchedBundle {
        identity: *imp.bundle.identity(),
        signed_prekey: *imp.bundle.signed_prekey(),
        one_time_prekey,
    }
}

/// Property names (the table's rows).
pub mod names {
    /// No honest message's content is learned by the attacker.
    pub const SECRECY: &str = "secrecy";
    /// A client accepts from its peer only what the peer sent it.
    pub const AUTHENTICITY: &str = "authenticity";
    /// No honest message (its exact frame or envelope) is accepted twice.
    pub const REPLAY: &str = "no-replay";
    /// No message sent before compromise is learned through the compromised keys.
    pub const FORWARD_SECRECY: &str = "forward-secrecy";
    /// No (key, nonce) pair ever seals twice (the ghost seal log).
    pub const NONCE_UNIQUE: &str = "nonce-unique";
    /// No key seals for two parties: each key serves one direction.
    pub const ONE_DIRECTION: &str = "one-direction-per-key";
    /// No client acts on a frame whose plaintext is not the canonical encoding of a message.
    pub const STRICT_PARSING: &str = "strict-parsing";
    /// No injected input keeps the honest conversation from getting through for good.
    pub const RECOVERY: &str = "recovery";
    /// Sometimes: a refusal is checked for `recovery` and the conversation gets through.
    pub const RECOVERED: &str = "sometimes: recovered after refusal";
    /// Sometimes: Bob accepts a message from Alice.
    pub const DELIVERED: &str = "sometimes: delivered";
    /// Sometimes: messages are accepted both ways (e2e: a reply arrives, the DH ratchet turns).
    pub const BOTH_WAYS: &str = "sometimes: reply delivered";
    /// Sometimes: an injected or tampered frame is refused.
    pub const FORGERY_REJECTED: &str = "sometimes: forgery rejected";
    /// Sometimes: compromise happens after a message was delivered.
    pub const COMPROMISE_AFTER_DELIVERY: &str = "sometimes: compromise after delivery";
    /// (M) Once nothing is in flight and every honest message is sent, each was accepted.
    pub const DELIVERY: &str = "delivery";
    /// Sometimes (M): a message of M's own is accepted, as from M.
    pub const M_ACCEPTED: &str = "sometimes: M's message accepted";
    /// (P) The copy of a client's state reads no message its peer sent after a round trip with
    /// fresh DH.
    pub const POST_COMPROMISE: &str = "post-compromise-security";
    /// Sometimes (P): the copy reads a message (the attacker is not vacuous).
    pub const COPY_READS: &str = "sometimes: copy reads before healing";
    /// Sometimes (P): the victim accepts a message its peer sent after the round trip.
    pub const HEALED: &str = "sometimes: message after healing delivered";
    /// Sometimes (set-up under attack): a role refused an injected frame before both clients
    /// were set up, and messages still went both ways.
    pub const SET_UP_REFUSAL: &str = "sometimes: set-up refusal, then both ways";
    /// Sometimes (set-up under attack, e2e): a message given up for want of a bundle was sent
    /// again and its peer accepted a message from its sender.
    pub const RETRIED: &str = "sometimes: delivered after a retry";
    /// Sometimes (set-up under attack, e2e, S): a session started without a one-time prekey, and
    /// messages went both ways.
    pub const WITHOUT_ONE_TIME: &str = "sometimes: both ways without one-time prekey";
    /// (rotations) No session starts from a signed prekey its responder rotated away twice.
    pub const RETENTION: &str = "signed-prekey-retention";
    /// Sometimes (rotations): a session started from the responder's previous signed prekey (the
    /// bundle fetched before a rotation) delivered its first message.
    pub const FROM_PREVIOUS: &str = "sometimes: delivered from a rotated-away signed prekey";
    /// Sometimes (two rotations): a prekey message naming a signed prekey rotated away twice was
    /// refused.
    pub const PAST_RETENTION: &str = "sometimes: refused past retention";
    /// Sometimes (outages): a client accepts an honest message after a link closed.
    pub const AFTER_RECONNECT: &str = "sometimes: delivered after a link closed";
    /// Sometimes (outages): a client accepts an honest message after the server restarted.
    pub const AFTER_RESTART: &str = "sometimes: delivered after a server restart";
    /// (C, e2e) No honest message opens under a compromised identity paired with the attacker's
    /// own prekeys: a session starts only on a signed prekey its peer's identity signed.
    pub const SPK_BINDING: &str = "signed-prekey-binding";
    /// Sometimes (S, C, set-up attacked, e2e): a client refused a bundle with the real identity
    /// and a signed prekey of the server's own.
    pub const SPK_REFUSED: &str = "sometimes: substituted signed prekey refused";
    /// Sometimes (e2e): a client answered `PrekeysLow` with new one-time prekeys, which the
    /// server stored.
    pub const TOPPED_UP: &str = "sometimes: one-time prekeys topped up";
    /// Sometimes (S, e2e, `--prekeys-low`): `recovery` judged a state after a client topped up
    /// on a forged `PrekeysLow`, and the conversation got through.
    pub const RECOVERED_FORGED_LOW: &str = "sometimes: recovered after a forged PrekeysLow";
    /// Sometimes (N, e2e-unverified, `--prekeys-low`, outages): `recovery` judged a state after
    /// a top-up was lost with its link, and the conversation got through.
    pub const RECOVERED_LOST_TOP_UP: &str = "sometimes: recovered after a lost top-up";
    /// Sometimes (as above): a client whose top-up was lost topped up again, and the server
    /// stored it.
    pub const TOPPED_UP_AGAIN: &str = "sometimes: topped up again after a lost top-up";
}

fn secrecy(_: &E2eModel, s: &World) -> bool {
    s.know.learned.is_empty()
}

/// Every acceptance as from Alice or Bob is of a body that client sent to the acceptor. M's own
/// messages are accepted as from `mallory`, which is what they are; any other sender is a
/// violation.
fn authenticity(_: &E2eModel, s: &World) -> bool {
    s.ghost.accepted.iter().all(|a| match Who::from_name(&a.from) {
        Some(from) => {
            from == a.by.peer()
                && (1..=s.ghost.sent[from.index()]).any(|k| honest_body(from, k) == a.body)
        }
        None => a.from == mallory::MALLORY,
    })
}

fn no_replay(_: &E2eModel, s: &World) -> bool {
    let tags: Vec<Tag> = s.ghost.accepted.iter().filter_map(|a| a.tag).collect();
    let unique: BTreeSet<&Tag> = tags.iter().collect();
    unique.len() == tags.len()
}

fn nonce_unique(_: &E2eModel, s: &World) -> bool {
    s.ghost.seals.nonce_reused.is_none() && !s.ghost.seals.incomplete
}

fn one_direction(_: &E2eModel, s: &World) -> bool {
    s.ghost.seals.key_shared.is_none() && !s.ghost.seals.incomplete
}

fn strict_parsing(_: &E2eModel, s: &World) -> bool {
    !s.ghost.malformed_accepted
}

fn forward_secrecy(_: &E2eModel, s: &World) -> bool {
    s.ghost.fs_leak.is_empty()
}

fn delivered(_: &E2eModel, s: &World) -> bool {
    s.ghost.delivered(Who::Bob)
}

fn both_ways(_: &E2eModel, s: &World) -> bool {
    s.ghost.delivered(Who::Bob) && s.ghost.delivered(Who::Alice)
}

fn forgery_rejected(_: &E2eModel, s: &World) -> bool {
    s.ghost.forgery_rejected
}

fn compromise_after_delivery(_: &E2eModel, s: &World) -> bool {
    s.ghost.compromised.as_ref().is_some_and(|before| {
        s.ghost.accepted.iter().any(|a| before.contains(&a.body) && a.by == Who::Bob)
    })
}

impl Model for E2eModel {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        vec![self.init.clone()]
    }

    fn actions(&self, s: &World, actions: &mut Vec<Action>) {
        if s.ghost.compromised.is_some() {
            return;
        }
        self.outage_actions(s, actions);
        self.rotation_actions(s, actions);
        for w in Who::BOTH {
            // A client sends once it is connected (until then its call fails).
            if s.ghost.sent[w.index()] < self.messages(w) && s.clients[w.index()].is_connected() {
                actions.push(Action::Send(w));
            }
        }
        for w in Who::BOTH {
            if !s.net.to_client[w.index()].is_empty() {
                actions.push(Action::Deliver(w));
            }
            if !s.net.to_server[w.index()].is_empty() {
                actions.push(Action::Serve(w));
                if self.server_attacker() {
                    actions.push(Action::Drop(Dest::Server(w)));
                }
                if self.server_attacker() && self.variant.is_e2e() {
                    actions.push(Action::Mitm(w));
                }
            }
        }
        reduction::deferred_drops(self, s, actions);
        if self.attacker == Attacker::PostCompromise && s.ghost.pcs.is_none() {
            actions.extend(Who::BOTH.map(Action::CopyState));
        }
        if s.know.budget > 0 && self.attacker.holds_the_wire() {
            if self.server_attacker() {
                for i in 0..s.know.seen.len() {
                    actions.push(Action::Reinject(i));
                    actions.push(Action::Reflect(i));
                    actions.push(Action::ToSelf(i));
                    if self.variant.is_e2e() {
                        actions.extend(Edit::ALL.map(|edit| Action::Rebuild(i, edit)));
                    }
                }
                self.forge_low_actions(s, actions);
                for w in Who::BOTH {
                    // A hop `Deliver` is in the malicious server's hands in every variant: an e2e
                    // client must refuse it (SPEC.md §15.3), not show it as from its peer.
                    actions.push(Action::ForgeHop(w));
                    if self.variant.is_e2e() {
                        actions.push(Action::ForgeE2e(w));
                    }
                    if !s.net.to_server[w.index()].is_empty() {
                        actions.push(Action::Pad(w));
                        if self.variant.is_e2e() && self.set_up_attacked {
                            actions.extend(Reply::ALL.map(|reply| Action::Answer(w, reply)));
                        }
                    }
                }
            } else {
                reduction::copies(self, s, actions);
                if !self.variant.is_e2e() || self.registration_raced() {
                    actions.extend(Who::BOTH.map(Action::Impersonate));
                }
            }
        }
        if s.know.budget > 0 && self.attacker == Attacker::Malicious {
            self.mallory_actions(actions);
        }
        if self.attacker == Attacker::Compromise
            && s.ghost.compromised.is_none()
            && s.ghost.sent.iter().any(|n| *n > 0)
        {
            actions.push(Action::Compromise);
        }
    }

    fn next_state(&self, last: &World, action: Action) -> Option<World> {
        let mut s = last.clone();
        Self::unsealed();
        // Whether this step refuses an injected frame: the flag is collected for the step alone.
        s.ghost.forgery_rejected = false;
        let mut flushed = false;
        match &action {
            Action::Send(w) => self.send(&mut s, *w)?,
            Action::Deliver(w) => self.deliver(&mut s, *w)?,
            Action::Serve(w) => self.serve(&mut s, *w, false)?,
            Action::Mitm(w) => self.serve(&mut s, *w, true)?,
            Action::Drop(Dest::Server(w)) if self.server_attacker() => self.withhold(&mut s, *w)?,
            Action::Drop(dest) => {
                let queue = s.net.queue(*dest);
                if queue.is_empty() {
                    return None;
                }
                queue.remove(0);
            }
            Action::Skip(dest, dropped) => {
                reduction::skip(&mut s, *dest, *dropped)?;
                match dest {
                    Dest::Client(w) => self.deliver(&mut s, *w)?,
                    Dest::Server(w) => self.serve(&mut s, *w, false)?,
                }
            }
            Action::Compromise => self.compromise(&mut s)?,
            Action::CopyState(w) => self.copy_state(&mut s, *w)?,
            Action::Connect(w) => self.connect(&mut s, *w)?,
            Action::Answer(w, reply) => self.answer(&mut s, *w, *reply)?,
            Action::Close(w) => self.close(&mut s, *w)?,
            Action::Restart => self.restart(&mut s)?,
            Action::Rotate(w) => self.rotate(&mut s, *w)?,
            Action::InjectDeliver(kind, index, to) => {
                flushed = self.inject_deliver(&mut s, *kind, *index, *to)?;
            }
            other => self.inject(&mut s, other)?,
        }
        Self::sealed(&mut s, actor(&action));
        let refused_now = s.ghost.forgery_rejected;
        s.ghost.forgery_rejected |= last.ghost.forgery_rejected;
        // A client that topped up on a forged `PrekeysLow` acted on an injected frame, which is
        // what `recovery` judges after, not interference (spec/MODEL.md §4).
        let acted_on_forged_notice = s.ghost.forged_notices > last.ghost.forged_notices;
        let handled = match action {
            Action::Deliver(w) => last.net.head(Dest::Client(w)),
            Action::Serve(w) => last.net.head(Dest::Server(w)),
            _ => None,
        };
        // Recovery is judged where the attacker only injected (§4): a drop, a withheld or
        // answered request, a man in the middle or a forgery that worked stop the conversation
        // by other means, which the other properties judge.
        let injected =
            handled.is_some_and(|f| f.injected) || matches!(action, Action::InjectDeliver(..));
        s.ghost.interfered |= flushed
            || matches!(
                action,
                Action::Drop(_)
                    | Action::Skip(..)
                    | Action::Pad(_)
                    | Action::Mitm(_)
                    | Action::Answer(..)
            )
            || (injected && !refused_now && !acted_on_forged_notice);
        s.ghost.refused_in_set_up |=
            refused_now && !Who::BOTH.into_iter().all(|w| self.set_up_done(&s, w));
        reduction::canonical(self, &mut s);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut p = vec![
            Property::always(names::SECRECY, secrecy),
            Property::always(names::AUTHENTICITY, authenticity),
            Property::always(names::REPLAY, no_replay),
            Property::always(names::NONCE_UNIQUE, nonce_unique),
            Property::always(names::ONE_DIRECTION, one_direction),
            Property::always(names::STRICT_PARSING, strict_parsing),
            Property::always(names::RECOVERY, recovery::holds),
        ];
        match self.attacker {
            Attacker::Compromise => {
                p.push(Property::always(names::FORWARD_SECRECY, forward_secrecy));
                if self.variant.is_e2e() {
                    p.push(Property::always(names::SPK_BINDING, substitution::binding));
                }
                p.push(Property::sometimes(
                    names::COMPROMISE_AFTER_DELIVERY,
                    compromise_after_delivery,
                ));
            }
            Attacker::Malicious => {
                p.push(Property::always(names::DELIVERY, mallory::delivery));
                p.push(Property::sometimes(names::M_ACCEPTED, mallory::accepted));
            }
            Attacker::PostCompromise => {
                p.push(Property::always(names::POST_COMPROMISE, pcs::post_compromise));
                p.push(Property::sometimes(names::COPY_READS, pcs::copy_reads));
                p.push(Property::sometimes(names::HEALED, pcs::healed));
            }
            Attacker::Network | Attacker::Server => {}
        }
        p.push(Property::sometimes(names::DELIVERED, delivered));
        p.push(Property::sometimes(names::BOTH_WAYS, both_ways));
        // Hop's malicious server has nothing a client refuses before both are connected: a
        // connected hop client accepts every `Deliver` it forges.
        if self.set_up_attacked && (self.variant.is_e2e() || !self.server_attacker()) {
            p.push(Property::sometimes(
                names::SET_UP_REFUSAL,
                setup::both_ways_after_set_up_refusal,
            ));
        }
        if self.set_up_attacked {
            if self.variant.is_e2e() {
                p.push(Property::sometimes(names::RETRIED, setup::delivered_after_retry));
            }
            if self.variant.is_e2e() && self.server_attacker() {
                p.push(Property::sometimes(
                    names::WITHOUT_ONE_TIME,
                    setup::both_ways_without_one_time,
                ));
                p.push(Property::sometimes(names::SPK_REFUSED, substitution::refused));
            }
        }
        if self.rotations_explored() {
            p.push(Property::always(names::RETENTION, rotation::retention));
            p.push(Property::sometimes(names::FROM_PREVIOUS, rotation::delivered_from_previous));
            if self.bounds.rotations >= 2 {
                p.push(Property::sometimes(
                    names::PAST_RETENTION,
                    rotation::refused_past_retention,
                ));
            }
        }
        // In e2e-verified no bundle is fetched during the run but M's (spec/MODEL.md §2).
        let fetches =
            self.variant == Variant::E2eUnverified || self.attacker == Attacker::Malicious;
        if self.bounds.prekeys_low && fetches {
            p.push(Property::sometimes(names::TOPPED_UP, prekeys::topped_up));
        }
        if self.bounds.prekeys_low && self.variant.is_e2e() && self.server_attacker() {
            p.push(Property::sometimes(
                names::RECOVERED_FORGED_LOW,
                prekeys::recovered_after_forged_notice,
            ));
        }
        // A top-up needs a fetch in the run, and losing it an outage of the network attacker's.
        if self.bounds.prekeys_low
            && self.variant == Variant::E2eUnverified
            && self.attacker == Attacker::Network
            && self.bounds.outages > 0
        {
            p.push(Property::sometimes(
                names::RECOVERED_LOST_TOP_UP,
                prekeys::recovered_after_lost_top_up,
            ));
            p.push(Property::sometimes(names::TOPPED_UP_AGAIN, prekeys::topped_up_again));
        }
        if self.bounds.outages > 0 && !self.server_attacker() {
            p.push(Property::sometimes(names::AFTER_RECONNECT, outage::delivered_after_reconnect));
            p.push(Property::sometimes(names::AFTER_RESTART, outage::delivered_after_restart));
        }
        // P injects nothing: no refusal to see, nor to recover from.
        if self.attacker != Attacker::PostCompromise {
            p.push(Property::sometimes(names::FORGERY_REJECTED, forgery_rejected));
            p.push(Property::sometimes(names::RECOVERED, recovery::recovered));
        }
        p
    }
}
