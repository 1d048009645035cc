//! The state of one model-checking run: the real protocol roles, the network, the attacker's
//! knowledge and the ghost log (spec/MODEL.md §4).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, LinkId, Server};
use e2e_protocol::seal_log::Drained;
use e2e_protocol::suite::{AEAD_NONCE_LEN, PublicKey};
use e2e_protocol::wire::{Body, Envelope, MessageId, Name, SignedPrekeyPublic, UploadedBundle};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A large part of the state (a client, the server, the attacker's bigger sets) shared between the
/// states that did not change it, with its content hash computed once (spec/MODEL.md §8, "Speed").
///
/// Cloning a state copies a pointer per part instead of every key, session and map; a step that
/// changes a part copies that part only ([`Shared::make_mut`]). The state's hash feeds the part's
/// 64-bit content hash (SipHash with fixed keys: the same content gives the same number in every
/// thread and run), computed on first use and again only after a change. Equality compares the
/// contents, so two states are equal exactly when their parts are.
#[derive(Clone)]
pub struct Shared<T> {
    value: Arc<T>,
    hash: OnceLock<u64>,
}

impl<T: Hash + Clone> Shared<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Self { value: Arc::new(value), hash: OnceLock::new() }
    }

    /// The part, to change: copied first if another state shares it; its hash is recomputed when
    /// next needed.
    pub fn make_mut(&mut self) -> &mut T {
        self.hash = OnceLock::new();
        Arc::make_mut(&mut self.value)
    }

    /// Whether `self` and `other` are one copy (not only equal contents).
    #[must_use]
    pub fn shares(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
    }

    /// The content hash, computed on first use (after a change, on the next use).
    pub fn content_hash(&self) -> u64 {
        *self.hash.get_or_init(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.value.hash(&mut h);
            h.finish()
        })
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Hash + Clone> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.content_hash());
    }
}

impl<T: Hash + Clone + PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
            || (self.content_hash() == other.content_hash() && *self.value == *other.value)
    }
}

impl<T: Hash + Clone + Eq> Eq for Shared<T> {}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: Hash + Clone + Default> Default for Shared<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

/// A client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Who {
    /// Alice.
    Alice,
    /// Bob.
    Bob,
}

impl Who {
    /// Both clients.
    pub const BOTH: [Self; 2] = [Self::Alice, Self::Bob];

    /// The registered name.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Alice => "alice",
            Self::Bob => "bob",
        }
    }

    /// The other client.
    #[must_use]
    pub const fn peer(self) -> Self {
        match self {
            Self::Alice => Self::Bob,
            Self::Bob => Self::Alice,
        }
    }

    /// Index into per-client arrays.
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            Self::Alice => 0,
            Self::Bob => 1,
        }
    }

    /// The server's link number for this client's connection.
    #[must_use]
    pub const fn link(self) -> LinkId {
        LinkId(self.index() as u64 + 1)
    }

    /// The client on `link`, if it is one of the two honest links.
    #[must_use]
    pub const fn of_link(link: LinkId) -> Option<Self> {
        match link.0 {
            1 => Some(Self::Alice),
            2 => Some(Self::Bob),
            _ => None,
        }
    }

    /// The registered name as a wire [`Name`].
    #[must_use]
    #[allow(clippy::expect_used)] // "alice" and "bob" are valid names (tests::names_are_valid).
    pub fn name(self) -> Name {
        Name::new(self.label()).expect("valid name")
    }

    /// Which client `name` is.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::BOTH.into_iter().find(|w| w.label() == name)
    }
}

/// Honest message `seq` (1-based) of `from`: the ghost tag an exact copy of its frame carries.
pub type Tag = (Who, u8);

/// The honest body of message `seq` from `from`: "a1", "a2", "b1", …
#[must_use]
pub fn honest_body(from: Who, seq: u8) -> String {
    let prefix = match from {
        Who::Alice => 'a',
        Who::Bob => 'b',
    };
    format!("{prefix}{seq}")
}

/// The body of every forgery the attacker composes.
pub const FORGED_BODY: &str = "forged";

/// Makes a [`Body`] from a short text (all the model's bodies are short, hence valid).
#[must_use]
pub fn body(text: &str) -> Option<Body> {
    Body::new(text.as_bytes().to_vec()).ok()
}

/// A body as text.
#[must_use]
pub fn text(body: &Body) -> String {
    String::from_utf8_lossy(body.as_bytes()).into_owned()
}

/// Where a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dest {
    /// To the server, on this client's link.
    Server(Who),
    /// To this client.
    Client(Who),
}

/// A frame on the wire, with ghost annotations the roles never see.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The honest message this frame is an exact copy of, if any.
    pub tag: Option<Tag>,
    /// Whether the attacker made or injected it.
    pub injected: bool,
    /// Whether the attacker made its plaintext something no encoder gives: a message with bytes
    /// after its last field (spec/MODEL.md §3, `Pad`).
    pub malformed: bool,
    /// Whether it is the network attacker's copy of a frame it observed — replayed, tampered with
    /// or reflected — which no role sealed for this delivery. Withdrawn, a copy leaves every
    /// channel as it was, so the honest completion of `recovery` leaves out the copies in flight
    /// to a client (spec/MODEL.md §4).
    pub copy: bool,
}

impl Frame {
    /// An honest role's frame, carrying honest message `tag` if any.
    #[must_use]
    pub const fn honest(bytes: Vec<u8>, tag: Option<Tag>) -> Self {
        Self { bytes, tag, injected: false, malformed: false, copy: false }
    }

    /// A frame the attacker made or injected.
    #[must_use]
    pub const fn injected(bytes: Vec<u8>, tag: Option<Tag>) -> Self {
        Self { bytes, tag, injected: true, malformed: false, copy: false }
    }

    /// The network attacker's copy of an observed frame: `bytes` (its own, or with one bit
    /// flipped), carrying ghost tag `tag` if they are an exact copy of honest message `tag`.
    #[must_use]
    pub const fn copied(bytes: Vec<u8>, tag: Option<Tag>) -> Self {
        Self { bytes, tag, injected: true, malformed: false, copy: true }
    }
}

/// The frames in flight: one FIFO queue per destination. Delivery takes the head; the attacker
/// reorders by dropping and re-injecting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Net {
    /// Indexed by [`Who::index`]: frames to the server on that client's link.
    pub to_server: [Vec<Frame>; 2],
    /// Indexed by [`Who::index`]: frames to that client.
    pub to_client: [Vec<Frame>; 2],
}

impl Net {
    /// The queue for `dest`.
    pub fn queue(&mut self, dest: Dest) -> &mut Vec<Frame> {
        match dest {
            Dest::Server(w) => &mut self.to_server[w.index()],
            Dest::Client(w) => &mut self.to_client[w.index()],
        }
    }

    /// The head of `dest`'s queue.
    #[must_use]
    pub fn head(&self, dest: Dest) -> Option<&Frame> {
        match dest {
            Dest::Server(w) => self.to_server[w.index()].first(),
            Dest::Client(w) => self.to_client[w.index()].first(),
        }
    }

    /// Whether nothing is in flight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.to_server.iter().chain(&self.to_client).all(Vec::is_empty)
    }
}

/// A forged e2e identity of the malicious server, offered to victims as `impersonates`'s.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Impostor {
    /// Whom it poses as.
    pub impersonates: Who,
    /// Its identity, prekeys and sessions: the protocol crate's own state.
    pub peers: Peers,
    /// The bundle it hands out.
    pub bundle: UploadedBundle,
    /// How many of the bundle's one-time prekeys it has handed out.
    pub handed_out: u8,
}

/// An application message the malicious server opened (hop `Send` or e2e `E2eSend`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Seen {
    /// Sender (the channel it arrived on).
    pub from: Who,
    /// Recipient.
    pub to: Who,
    /// The sender's message id.
    pub id: MessageId,
    /// Hop plaintext.
    pub body: Option<Body>,
    /// e2e envelope.
    pub envelope: Option<Envelope>,
    /// The honest message it is.
    pub tag: Option<Tag>,
}

/// The attacker's knowledge (spec/MODEL.md §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Knowledge {
    /// (N) every frame seen on the wire, with where it was going and its ghost tag.
    pub observed: Shared<BTreeSet<(Dest, Frame)>>,
    /// (S) every application message the server opened, in order.
    pub seen: Shared<Vec<Seen>>,
    /// (S, e2e) forged identities: posing as Alice, as Bob.
    pub impostors: Shared<Vec<Impostor>>,
    /// (C, hop) whether Alice's and Bob's static keys are known.
    pub static_keys: bool,
    /// Honest bodies the attacker has learned (without compromise).
    pub learned: BTreeSet<String>,
    /// Honest bodies opened with compromised long-term keys.
    pub learned_at_compromise: BTreeSet<String>,
    /// (S, e2e) per client, the signed prekey its last rotation replaced, kept from the upload
    /// that published it: what S may hand out as an old bundle (spec/MODEL.md §3, `Answer`).
    pub old_signed_prekeys: [Option<SignedPrekeyPublic>; 2],
    /// (M) the third registered client, `mallory`: the protocol crate's own client.
    pub mallory: Option<Shared<Client>>,
    /// (P) the copy of the victim's whole client, taken at [`Pcs`]'s compromise.
    pub copy: Option<Shared<Client>>,
    /// Injections left.
    pub budget: u8,
    /// Next message id the attacker uses in forgeries.
    pub next_id: u64,
}

/// One message a client accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Accept {
    /// Who accepted it.
    pub by: Who,
    /// The sender it was accepted as from.
    pub from: String,
    /// The content.
    pub body: String,
    /// The honest message whose exact frame or envelope it was, if any.
    pub tag: Option<Tag>,
}

/// Whose call into the protocol crate made a seal (spec/MODEL.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// Alice or Bob.
    Client(Who),
    /// The server role: the honest server, or the malicious server's own channels.
    Server,
    /// The attacker's own protocol code: its impostor identities, its registered client.
    Attacker,
}

impl Party {
    /// The name in traces.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Client(w) => w.label(),
            Self::Server => "the server",
            Self::Attacker => "the attacker",
        }
    }
}

/// The ghost seal log (spec/MODEL.md §4): every AEAD seal of the run, as the protocol crate's
/// `seal_log` records it (a fingerprint of the key, the nonce), with the party whose call made
/// it.
///
/// What was sealed is not kept: a (key, nonce) pair may seal once, whatever the input, so the
/// pairs used are all `nonce-unique` needs — and two runs that sealed different frames under the
/// same pairs (two forgeries of the malicious server, both refused) meet in one state
/// (spec/MODEL.md §7.1).
///
/// Its hash is kept as it grows: a state's fingerprint reads the seal log's hash, and a step
/// that seals changes the log, so hashing every entry again cost a tenth of a search
/// (spec/MODEL.md §8). The log's set and map only ever gain entries, so `digest`, the wrapping
/// sum of a fixed 64-bit hash of each entry, is a function of their contents (equal logs have
/// equal digests; equality still compares them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealLog {
    /// The (key, nonce) pairs that sealed.
    used: BTreeSet<(u64, [u8; AEAD_NONCE_LEN])>,
    /// Key → the party that first sealed with it.
    sealers: BTreeMap<u64, Party>,
    /// The first party found sealing a second time under one (key, nonce) pair.
    pub nonce_reused: Option<Party>,
    /// The first two parties found sealing with one key.
    pub key_shared: Option<(Party, Party)>,
    /// Whether the protocol crate's log overflowed, so that the checks above saw only part of it.
    pub incomplete: bool,
    /// The wrapping sum of [`entry_hash`] over the entries of `used` and `sealers`.
    digest: u64,
}

/// A fixed 64-bit hash of one entry of a [`SealLog`] (SipHash with fixed keys, as
/// [`Shared::content_hash`]): the same in every thread and run.
fn entry_hash(entry: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    entry.hash(&mut h);
    h.finish()
}

impl SealLog {
    /// Adds the seals `by` made.
    pub fn record(&mut self, by: Party, drained: Drained) {
        self.incomplete |= drained.overflowed;
        for seal in drained.seals {
            if self.used.insert((seal.key, seal.nonce)) {
                self.digest = self.digest.wrapping_add(entry_hash((0_u8, seal.key, seal.nonce)));
            } else if self.nonce_reused.is_none() {
                self.nonce_reused = Some(by);
            }
            let owner = *self.sealers.entry(seal.key).or_insert_with(|| {
                self.digest = self.digest.wrapping_add(entry_hash((1_u8, seal.key, by)));
                by
            });
            if owner != by && self.key_shared.is_none() {
                self.key_shared = Some((owner, by));
            }
        }
    }
}

impl Hash for SealLog {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
        state.write_usize(self.used.len());
        state.write_usize(self.sealers.len());
        self.nonce_reused.hash(state);
        self.key_shared.hash(state);
        self.incomplete.hash(state);
    }
}

/// (P) the post-compromise ghost (spec/MODEL.md §4): whose state was copied, which of its later
/// messages carry a ratchet key drawn after the copy, when its peer heard such a message, and what
/// the copy read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pcs {
    /// The client whose state was copied.
    pub victim: Who,
    /// The victim's honest messages already sealed when the copy was taken.
    pub sealed_before: BTreeSet<u8>,
    /// The victim's messages sealed after the copy under a ratchet key the victim drew after it
    /// (hop: every message sealed after it; a hop message carries no key).
    pub fresh: BTreeSet<u8>,
    /// How many messages the peer had sent when it first accepted one of `fresh`: a round trip
    /// with fresh DH is complete for every message it sends after that.
    pub healed_after: Option<u8>,
    /// The peer's messages the copy read.
    pub read: BTreeSet<u8>,
    /// Whether the victim accepted a message its peer sent after the round trip.
    pub protected_delivered: bool,
}

impl Pcs {
    /// The copy of `victim`, taken when `sealed_before` of its messages were sealed.
    #[must_use]
    pub const fn new(victim: Who, sealed_before: BTreeSet<u8>) -> Self {
        Self {
            victim,
            sealed_before,
            fresh: BTreeSet::new(),
            healed_after: None,
            read: BTreeSet::new(),
            protected_delivered: false,
        }
    }

    /// Whether the peer's message `seq` was sent after a round trip with fresh DH.
    #[must_use]
    pub fn protects(&self, seq: u8) -> bool {
        self.healed_after.is_some_and(|h| seq > h)
    }
}

/// The ghost log: what Alice and Bob really did (spec/MODEL.md §4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Honest messages sent so far, per client.
    pub sent: [u8; 2],
    /// e2e: honest messages handed to the client but not yet sealed (waiting for a bundle).
    pub waiting: [Vec<u8>; 2],
    /// Every acceptance, sorted.
    pub accepted: Vec<Accept>,
    /// Whether an injected or tampered frame was refused by a role, at this step or before it.
    pub forgery_rejected: bool,
    /// Set at compromise: the honest bodies their recipient had accepted before it.
    pub compromised: Option<BTreeSet<String>>,
    /// Bodies accepted before compromise that the attacker learned only through compromised keys.
    pub fs_leak: BTreeSet<String>,
    /// Every AEAD seal so far.
    pub seals: Shared<SealLog>,
    /// Whether a client acted on a frame whose plaintext was not a canonical encoding.
    pub malformed_accepted: bool,
    /// Whether the attacker did more than inject frames that were refused: dropped or withheld
    /// one, answered a request itself, played man in the middle, or had an injected frame
    /// accepted. Set by a step from what the step itself did, never by `recovery`'s completion:
    /// the same steps in another order set it alike (spec/MODEL.md §4, §7.1).
    pub interfered: bool,
    /// (P) per client, the ratchet keys in the headers of its envelopes sealed before the copy:
    /// the keys a copy of its state holds (spec/MODEL.md §4, `post-compromise-security`).
    pub ratchet_keys: [BTreeSet<PublicKey>; 2],
    /// (P) set once the copy is taken.
    pub pcs: Option<Pcs>,
    /// Per client: whether its user sent again a message its client gave up for want of a
    /// bundle (`ClientEvent::SendFailed`; once per client, spec/MODEL.md §3).
    pub retried: [bool; 2],
    /// Whether a session started from a bundle without a one-time prekey.
    pub without_one_time: bool,
    /// Whether a role refused an injected frame while a client was still connecting or had not
    /// yet published its bundle: the set-up was attacked.
    pub refused_in_set_up: bool,
    /// Whether a client accepted an honest message from its peer after a link closed, and after
    /// the server restarted.
    pub after_outage: [bool; 2],
    /// The rotation ghost (`rotation.rs`).
    pub rotation: Rotation,
    /// (C, e2e) honest bodies opened only by pairing a compromised identity with prekeys of the
    /// attacker's own (`substitution.rs`).
    pub own_prekey_leak: BTreeSet<String>,
    /// Whether a client refused a bundle whose signed prekey its identity did not sign.
    pub substitution_refused: bool,
    /// Per client: whether it answered `PrekeysLow` with new one-time prekeys (`prekeys.rs`).
    pub replenished: [bool; 2],
    /// Whether a client heard `BundleStored` after such a top-up.
    pub topped_up: bool,
    /// How many `PrekeysLow` notices the malicious server forged that a client acted on (made
    /// and uploaded new one-time prekeys): each is a trigger of `recovery`, not interference
    /// (spec/MODEL.md §4).
    pub forged_notices: u8,
    /// Per client: whether a top-up of its was lost with the link that carried it — the only
    /// frames in flight to the server when the network attacker closed it — and nothing else was
    /// lost: a trigger of `recovery`, not interference (spec/MODEL.md §4).
    pub top_up_lost: [bool; 2],
    /// Whether a client whose top-up was lost topped up again, on a later notice, and heard
    /// `BundleStored` for it.
    pub topped_up_again: bool,
}

/// What the ghost records of signed-prekey rotations (spec/MODEL.md §3–§4): which signed prekeys
/// each client rotated away, which signed prekey each honest prekey message names, and which of
/// the paths through SPEC.md §10.2's retention were taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Rotation {
    /// Per client: the ids of the signed prekeys it rotated away, oldest first. The last one is
    /// the previous signed prekey, which the client keeps; the others it has deleted.
    pub retired: [Vec<u32>; 2],
    /// The signed prekey id each honest prekey message names, read as it reaches the server.
    pub names: BTreeMap<Tag, u32>,
    /// Whether a session started from the responder's previous (rotated-away, kept) signed
    /// prekey, and its first message was accepted.
    pub from_previous: bool,
    /// Whether a session started from a signed prekey its responder had deleted: a message
    /// accepted past SPEC.md §10.2's retention.
    pub past_retention_accepted: bool,
    /// Whether a prekey message naming a deleted signed prekey was refused for it
    /// (`UnknownPrekey`).
    pub past_retention_refused: bool,
}

impl Ghost {
    /// Every honest body sent so far.
    #[must_use]
    pub fn sent_bodies(&self) -> BTreeSet<String> {
        Who::BOTH
            .into_iter()
            .flat_map(|w| (1..=self.sent[w.index()]).map(move |k| honest_body(w, k)))
            .collect()
    }

    /// Whether `who` accepted an honest message of its peer.
    #[must_use]
    pub fn delivered(&self, who: Who) -> bool {
        let peer = who.peer();
        self.accepted.iter().any(|a| {
            a.by == who
                && a.from == peer.label()
                && (1..=self.sent[peer.index()]).any(|k| honest_body(peer, k) == a.body)
        })
    }
}

/// The whole state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct World {
    /// Alice and Bob: the protocol crate's own clients.
    pub clients: [Shared<Client>; 2],
    /// The server: the protocol crate's own server.
    pub server: Shared<Server>,
    /// Frames in flight.
    pub net: Net,
    /// RNG draw counters: Alice, Bob, the attacker (spec/MODEL.md §4.2).
    pub draws: [u32; 3],
    /// The attacker.
    pub know: Knowledge,
    /// The ghost log.
    pub ghost: Ghost,
    /// Where each client's connection and its driver are (spec/MODEL.md §2–§3).
    pub life: Life,
}

/// Each client's connection as its driver sees it: whether it has started one, and whether it
/// published its bundle (e2e) — on its first `Connected`, as a driver does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Life {
    /// Per client: whether it called `Client::connect` (and its link was not closed since).
    pub connecting: [bool; 2],
    /// Per client: whether it sent its bundle upload.
    pub uploaded: [bool; 2],
    /// Per client: whether it sent that upload on its current connection, behind `Ready`: if the
    /// server refuses a frame before confirming that connection and it closes, the upload is
    /// lost with it, and the driver sends it again on its next `Connected`.
    pub uploaded_here: [bool; 2],
    /// Links closed and server restarts so far (at most `--outages`).
    pub outages: u8,
    /// Whether a link of the run closed.
    pub closed: bool,
    /// Whether the server restarted.
    pub restarted: bool,
    /// Signed-prekey rotations so far (at most `--rotations`).
    pub rotations: u8,
    /// Per client: how often its driver closed its link because the server forgot it — a frame
    /// refused before confirmation (SPEC.md §7.2), or a newer connection of its name (§5.1); it
    /// connects again after such closes at most `--budget` times.
    pub refused_closes: [u8; 2],
}

/// The RNG stream of `party` (0 Alice, 1 Bob, 2 attacker, 3 setup) at draw `counter`. A copy of a
/// client's state (P) draws from the attacker's stream: a compromise copies a state, not the
/// victim's future randomness.
#[must_use]
pub fn rng(seed: u64, party: u64, counter: u32) -> ChaCha20Rng {
    let mixed = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(party << 40)
        .wrapping_add(u64::from(counter));
    ChaCha20Rng::seed_from_u64(mixed)
}

#[cfg(test)]
mod tests {
    use super::{Party, SealLog, Shared, Who};
    use e2e_protocol::seal_log::{Drained, Seal};
    use e2e_protocol::wire::Name;

    fn seals(list: &[(u64, u8)]) -> Drained {
        let seals = list.iter().map(|&(key, n)| Seal { key, nonce: [n; 12] }).collect();
        Drained { seals, overflowed: false }
    }

    #[test]
    fn seal_logs_with_the_same_seals_hash_alike_however_they_were_recorded() {
        let alice = Party::Client(Who::Alice);
        let mut one = SealLog::default();
        one.record(alice, seals(&[(1, 0), (2, 0)]));
        one.record(alice, seals(&[(1, 1)]));
        let mut other = SealLog::default();
        other.record(alice, seals(&[(1, 1), (2, 0), (1, 0)]));
        assert_eq!(one, other);
        assert_eq!(Shared::new(one.clone()).content_hash(), Shared::new(other).content_hash());
        // The same sizes, another nonce: another hash.
        let mut two = one.clone();
        two.record(alice, seals(&[(1, 2)]));
        let mut three = one;
        three.record(alice, seals(&[(1, 3)]));
        assert_ne!(Shared::new(two).content_hash(), Shared::new(three).content_hash());
    }

    /// A pair may seal once, whatever it sealed: the log holds pairs, so a second seal under one
    /// is a reuse, in one drain or in a later one.
    #[test]
    fn seal_log_finds_a_nonce_reused() {
        let mut log = SealLog::default();
        log.record(Party::Client(Who::Alice), seals(&[(1, 0), (1, 1), (2, 0)]));
        assert_eq!(log.nonce_reused, None);
        log.record(Party::Client(Who::Alice), seals(&[(1, 1)]));
        assert_eq!(log.nonce_reused, Some(Party::Client(Who::Alice)));
        assert_eq!(log.key_shared, None);
        let mut once = SealLog::default();
        once.record(Party::Server, seals(&[(1, 0), (1, 0)]));
        assert_eq!(once.nonce_reused, Some(Party::Server));
    }

    #[test]
    fn seal_log_finds_a_key_two_parties_seal_with() {
        let mut log = SealLog::default();
        log.record(Party::Server, seals(&[(5, 0)]));
        log.record(Party::Client(Who::Bob), seals(&[(6, 0)]));
        assert_eq!(log.key_shared, None);
        log.record(Party::Client(Who::Bob), seals(&[(5, 1)]));
        assert_eq!(log.key_shared, Some((Party::Server, Party::Client(Who::Bob))));
        assert_eq!(log.nonce_reused, None);
        log.record(Party::Server, Drained { seals: vec![], overflowed: true });
        assert!(log.incomplete);
    }

    #[test]
    fn names_are_valid() {
        for w in Who::BOTH {
            assert!(Name::new(w.label()).is_ok());
        }
    }
}
