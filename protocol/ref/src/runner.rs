//! The in-process runner: Alice, the Server and Bob — and Carol, in a run that names her — in one
//! process, driven from a seed.
//!
//! Frames are delivered in the order they are produced (first in, first out); each delivery is one
//! transcript [`Event`]. What a party "reads" is what that party's own state machine reported, so the
//! transcript shows exactly what each role could and could not open. The runner itself acts on
//! plaintexts only where it plays a malicious server, as a real server's operator can: with `--mitm`,
//! and in the attack steps of [`Step`] (for which it keeps each message the server accepts to
//! deliver).
//!
//! An [`Observer`] watches a run from inside ([`run_observed`]): every draw from the RNG with what it
//! became, and every frame with its link and the receiving role's events. The test vectors of
//! `spec/vectors/` are recorded that way.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng, TryCryptoRng, TryRng};

use super::mitm::{Intercepted, Mitm};
use super::transcript::{Event, SafetyNumbers, Summary, Transcript};
use e2e_protocol::channel::{Initiator, InitiatorAwaitingResponse, PROLOGUE, Responder};
use e2e_protocol::e2e::E2eError;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::safety_number::SafetyNumber;
use e2e_protocol::error::{Error, MisuseError};
use e2e_protocol::hop::ContentPolicy;
use e2e_protocol::roles::{
    Client, ClientEvent, ClientOutputs, LinkId, Server, ServerEvent, ServerLimits, ServerOutputs,
};
use e2e_protocol::state::StateError;
use e2e_protocol::suite::{PrivateKey, PublicKey};
use e2e_protocol::wire::{
    AckStatus, Body, Codec, Envelope, LinkFrame, LinkKind, Message, MessageId, Name,
};

/// A participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// The first client.
    Alice,
    /// The second client.
    Bob,
    /// A third client, who talks to Bob. She takes part only in a run whose script names her
    /// ([`Step::parties`]); her keys are drawn after Alice's and Bob's (see [`run`]), so a run
    /// without her draws exactly what it drew before she existed.
    Carol,
    /// The relay.
    Server,
}

impl Party {
    /// Every client, in the order their keys are drawn.
    pub const CLIENTS: [Self; 3] = [Self::Alice, Self::Bob, Self::Carol];

    /// Lower-case name, as used in transcripts and as the client's registered name.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Alice => "alice",
            Self::Bob => "bob",
            Self::Carol => "carol",
            Self::Server => "server",
        }
    }

    /// The client this one writes to when a step names no recipient (`Send`, `Hold`, …): Alice and
    /// Bob write to each other, Carol to Bob.
    #[must_use]
    pub const fn peer(self) -> Self {
        match self {
            Self::Alice | Self::Carol => Self::Bob,
            Self::Bob | Self::Server => Self::Alice,
        }
    }

    /// The client registered as `name`, if any.
    fn client_named(name: &Name) -> Option<Self> {
        Self::CLIENTS.into_iter().find(|p| p.label() == name.as_str())
    }
}

/// Which protocol a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Hop-by-hop: the server opens, checks and re-seals every message (SPEC.md §5).
    Hop,
    /// End-to-end: X3DH-style handshake and Double Ratchet through the server (SPEC.md §10–§15).
    E2e,
}

impl Protocol {
    /// `"hop"` or `"e2e"`.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Hop => "hop",
            Self::E2e => "e2e",
        }
    }
}

/// One action of a script.
///
/// The attack steps are driver-level actions of a network attacker or a malicious server; one with
/// nothing to act on (no frame received yet, no such delivery, the recipient offline) fails the run
/// with [`MisuseError::NotConnected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The client opens its channel and registers.
    Connect(Party),
    /// The client's connection drops; the server forgets the link.
    Disconnect(Party),
    /// e2e: the client publishes its prekey bundle.
    Upload(Party),
    /// The client sends `text` to its peer ([`Party::peer`]).
    Send {
        /// The sending client.
        from: Party,
        /// The content.
        text: String,
    },
    /// Alice and Bob each send a message to the other before either frame is delivered: with no
    /// session yet, both ask for the other's bundle and both start a session (simultaneous
    /// initiation, SPEC.md §11.3).
    SendAtOnce {
        /// Alice's content.
        alice: String,
        /// Bob's content.
        bob: String,
    },
    /// The client writes `text` now but it reaches the server only after the client's next `Send`
    /// (think of a photo whose upload finishes late), so the recipient gets it out of order. In e2e
    /// it is encrypted now (it takes the next ratchet key) and submitted later; in hop it is sent
    /// later.
    SendLate {
        /// The sending client.
        from: Party,
        /// The content.
        text: String,
    },
    /// e2e: `from` encrypts `count` messages to its peer now, in its current session
    /// (their texts are `held N`, numbered from 1 over the run), and holds them: each goes out
    /// only when [`Step::SubmitHeld`] names it, if ever — think of messages written offline that
    /// the application sends one by one, or never. The held envelopes are the driver's, not the
    /// client's state (SPEC.md §18.5: the client keeps no outbox), so a restart keeps them. A
    /// call, not a frame: the recipient sees a gap of `count` in the sender's chain.
    Hold {
        /// The sending client.
        from: Party,
        /// How many messages.
        count: u32,
    },
    /// e2e: `from` submits its held message `held N` (see [`Step::Hold`]), with its next id.
    SubmitHeld {
        /// The sending client.
        from: Party,
        /// The number in its text.
        number: u32,
    },
    /// Attack: a network attacker delivers again, to `to`, the last frame `to` received.
    ReplayLastFrame {
        /// Who receives the replay.
        to: Party,
    },
    /// Attack: `from` sends `text` to its peer; a network attacker first delivers a copy of
    /// the frame with its last bit flipped, then the genuine frame.
    TamperNextFrame {
        /// The sender.
        from: Party,
        /// The content.
        text: String,
    },
    /// Attack: the server seals again the `Deliver` or `E2eDeliver` with id `id` it delivered to
    /// `to`, under `new_id` if set.
    ServerReplaysDelivery {
        /// The recipient.
        to: Party,
        /// The id of the delivery to replay.
        id: u64,
        /// A fresh message id, or `None` to keep the original.
        new_id: Option<u64>,
    },
    /// Attack, e2e: `from` sends `text`; the server opens the `E2eSend` and first delivers a copy
    /// whose envelope has its last byte flipped, then relays the genuine one.
    ServerTampersNextEnvelope {
        /// The sender.
        from: Party,
        /// The content.
        text: String,
    },
    /// The client sends `text` to `to`, a name of its choosing (in the default steps the recipient
    /// is always the peer): a name nobody registered is refused by the server (hop) or has
    /// no bundle (e2e).
    SendTo {
        /// The sending client.
        from: Party,
        /// The recipient's name.
        to: Name,
        /// The content.
        text: String,
    },
    /// e2e: `party`'s user compares the safety number of its session with `peer` out of band and
    /// enters it: the number `party` shows (`wrong: false`), which pins the peer's identity, or a
    /// different one (`wrong: true`: the number of `party`'s own identity under both names), which
    /// is refused and pins nothing (SPEC.md §14.2). A call, not a frame: reported to
    /// [`Observer::called`].
    VerifySafetyNumber {
        /// The user's client.
        party: Party,
        /// The peer.
        peer: Party,
        /// Whether the number entered is wrong.
        wrong: bool,
    },
    /// e2e: `party`'s user pins the identity `peer`'s client holds now, as users who compared it
    /// in person would (`verify_peer`, SPEC.md §14.2); sessions with another identity are deleted.
    /// A call, not a frame.
    VerifyPeer {
        /// The user's client.
        party: Party,
        /// The peer.
        peer: Party,
    },
    /// Attack: a network attacker delivers `of`'s last `HandshakeInit` again, on `of`'s current
    /// link, which already has a channel.
    ReplayHandshakeInit {
        /// Whose handshake.
        of: Party,
    },
    /// Attack: the server seals `message`, a message of its choosing, on `to`'s link.
    ServerForges {
        /// The recipient.
        to: Party,
        /// What the server sends.
        message: Message,
    },
    /// `party`, offline, opens a new link with a handshake whose message 1 carries `payload`
    /// instead of `Register { its name }` (a misbehaving client: another name, or not a
    /// registration at all). It reads the server's answer and stays offline.
    RegisterWith {
        /// The client, whose static key signs the handshake; it must be offline.
        party: Party,
        /// Message 1's payload.
        payload: Message,
    },
    /// Attack: a network attacker opens a new link and sends on it, as its first frame, a copy of
    /// the last frame `of` sent: a transport frame on a link without a channel (SPEC.md §5.2). `of`
    /// must be offline (the link stands in its place); the link is closed afterwards.
    ReplayOnNewLink {
        /// Whose frame.
        of: Party,
    },
    /// Attack: a network attacker opens a new link and replays on it `of`'s last `HandshakeInit`.
    /// The server answers it (the attacker cannot read the answer) and the link stays
    /// *unconfirmed* (SPEC.md §5.1) until `of` next connects, when it closes. `of` may be offline,
    /// or online: its confirmed link then stays its link (key confirmation: the replay displaces
    /// nothing).
    ReplayHandshakeOnNewLink {
        /// Whose handshake.
        of: Party,
    },
    /// `party`, offline, is restarted from its own state file (SPEC.md §18) with `last_id`, the
    /// last message id it used, replaced by `last_id` (at least the current one): how a run
    /// reaches the end of the id space without `2^64` messages. A call, not a frame.
    RestoreWithLastId {
        /// The client.
        party: Party,
        /// The last id it used, as the restored state says.
        last_id: u64,
    },
    /// e2e: `party`, offline, is restarted from its own state file (SPEC.md §18) with its next
    /// prekey id (§18.3 `next_id`) replaced by `next_id` (at least the current one). A call.
    RestoreWithNextPrekeyId {
        /// The client.
        party: Party,
        /// The next prekey id, at most `2^32`.
        next_id: u64,
    },
    /// e2e: `party`, offline, is restarted from its own state file (SPEC.md §18) with its `peers`
    /// (§18.3) emptied: every session with every peer, archived ones and retired base keys with
    /// them, is gone; its identity, prekeys, pins, waiting messages and ids stay. What a client
    /// that lost its conversations but kept its identity holds: its next message to a peer starts
    /// a new session under the same identity, which the peer takes as a replacement of its
    /// current session (§11.3 rule 3). A call, not a frame.
    RestoreWithoutSessions {
        /// The client.
        party: Party,
    },
    /// e2e: `party`, offline, starts again from its account — its name, channel static key and
    /// last message id, which the server knows it by — with a new e2e identity and new prekeys
    /// and no e2e state besides (a new installation). A call, not a frame.
    NewIdentity {
        /// The client.
        party: Party,
    },
    /// e2e: `party` makes `count` more one-time prekeys and uploads them (SPEC.md §10.2); a
    /// refusal is a call case.
    Replenish {
        /// The client.
        party: Party,
        /// How many.
        count: usize,
    },
    /// Attack: the server answers `to`'s next `HandshakeInit` itself with `Welcome { name }`,
    /// whatever name was registered (the client must refuse a name other than its own: WrongName).
    ServerWelcomesAs {
        /// The client.
        to: Party,
        /// The name in the forged `Welcome`.
        name: Name,
    },
    /// Attack, e2e: the server answers `from`'s next `FetchBundle` with `answer` instead of what
    /// its directory holds — or, with `None`, withholds the answer (the client keeps waiting).
    ServerAnswersNextFetch {
        /// Whose request.
        from: Party,
        /// The server's answer, or `None` for none.
        answer: Option<Message>,
    },
    /// e2e: `party`'s connection dies after the server has read its next `FetchBundle` and before
    /// the answer arrives: the answer is lost with the connection, and `party` is offline. Its
    /// messages keep waiting for the bundle and it asks again at its next connection (SPEC.md
    /// §15.3); the server may meanwhile have handed out a one-time prekey that never arrived.
    LoseNextFetchAnswer {
        /// Whose request.
        party: Party,
    },
    /// Attack: the server seals again the `Deliver` or `E2eDeliver` with id `id` it delivered to
    /// `to`, with `from` replaced by `as_from` (the server chooses `from`, SPEC.md §5.2).
    ServerRelabelsDelivery {
        /// The recipient.
        to: Party,
        /// The id of the delivery to relabel.
        id: u64,
        /// The sender's name the server claims.
        as_from: Name,
    },
}

impl Step {
    /// The parties this step names (not names of other clients a step writes to, such as
    /// [`Step::SendTo`]'s `to`): a run has Carol exactly when one of its steps names her.
    #[must_use]
    pub fn parties(&self) -> Vec<Party> {
        match self {
            Self::Connect(p) | Self::Disconnect(p) | Self::Upload(p) => vec![*p],
            Self::SendAtOnce { .. } => vec![Party::Alice, Party::Bob],
            Self::Send { from, .. }
            | Self::SendLate { from, .. }
            | Self::Hold { from, .. }
            | Self::SubmitHeld { from, .. }
            | Self::TamperNextFrame { from, .. }
            | Self::ServerTampersNextEnvelope { from, .. }
            | Self::SendTo { from, .. }
            | Self::ServerAnswersNextFetch { from, .. } => vec![*from],
            Self::ReplayLastFrame { to }
            | Self::ServerReplaysDelivery { to, .. }
            | Self::ServerForges { to, .. }
            | Self::ServerWelcomesAs { to, .. }
            | Self::ServerRelabelsDelivery { to, .. } => vec![*to],
            Self::VerifySafetyNumber { party, peer, .. } | Self::VerifyPeer { party, peer } => {
                vec![*party, *peer]
            }
            Self::ReplayHandshakeInit { of }
            | Self::ReplayOnNewLink { of }
            | Self::ReplayHandshakeOnNewLink { of } => vec![*of],
            Self::RegisterWith { party, .. }
            | Self::RestoreWithLastId { party, .. }
            | Self::RestoreWithNextPrekeyId { party, .. }
            | Self::RestoreWithoutSessions { party }
            | Self::NewIdentity { party }
            | Self::Replenish { party, .. }
            | Self::LoseNextFetchAnswer { party } => vec![*party],
        }
    }
}

/// Why a run stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// A role refused a call the script made or a frame the run produced (a bug), or an attack
    /// step had nothing to act on ([`MisuseError::NotConnected`], see [`Step`]).
    Role(Error),
    /// A restart step asks for a state its client cannot be restarted into: a counter moved back,
    /// prekey ids of a client without e2e state, or a client that is not offline.
    BadRestart(&'static str),
    /// A client's own state file, edited as a restart step says, did not restore (SPEC.md §18.4):
    /// the edit, or the state, is wrong — a bug.
    State(StateError),
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        Self::Role(e)
    }
}

impl From<MisuseError> for RunError {
    fn from(e: MisuseError) -> Self {
        Self::Role(e.into())
    }
}

impl core::fmt::Display for RunError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Role(e) => e.fmt(f),
            Self::BadRestart(why) => write!(f, "a restart the script cannot make: {why}"),
            Self::State(e) => write!(f, "an edited state file did not restore: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The offset of `last_id` in a state file (SPEC.md §18.1: magic (20), version (1), body_len (4);
/// §18.2: name (len u8, bytes), static_key (32), server_key (32), then last_id).
fn last_id_at(bytes: &[u8]) -> Option<usize> {
    Some(25 + 1 + usize::from(*bytes.get(25)?) + 32 + 32)
}

/// The big-endian `u64` field of `bytes` at `at`.
fn u64_field(bytes: &mut [u8], at: usize) -> Result<&mut [u8], RunError> {
    bytes.get_mut(at..at + 8).ok_or(RunError::BadRestart("the state file ends before the field"))
}

/// Sets the `u64` at `at` of a state file to `value`, refusing to move it back.
fn raise_u64(bytes: &mut [u8], at: usize, value: u64, what: &'static str) -> Result<(), RunError> {
    let field = u64_field(bytes, at)?;
    let mut current = [0; 8];
    current.copy_from_slice(field);
    if u64::from_be_bytes(current) > value {
        return Err(RunError::BadRestart(what));
    }
    field.copy_from_slice(&value.to_be_bytes());
    Ok(())
}

/// `client` as its state file (SPEC.md §18) restores it with `last_id` in place of its own.
fn restore_with_last_id(client: &Client, last_id: u64) -> Result<Client, RunError> {
    let mut bytes = client.export_state().as_bytes().to_vec();
    let at =
        last_id_at(&bytes).ok_or(RunError::BadRestart("the state file ends before last_id"))?;
    raise_u64(&mut bytes, at, last_id, "last_id below the client's own")?;
    restore_rechecked(bytes)
}

/// A reader of a client's state file (SPEC.md §18) that only finds where a field starts: it
/// steps over the fields before it, counts and flags included. `None` when the file ends first.
struct StateCursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> StateCursor<'a> {
    /// At the first field of the body (§18.1: magic 20, version 1, body_len 4).
    const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 25 }
    }

    fn skip(&mut self, len: usize) -> Option<()> {
        self.at = self.at.checked_add(len).filter(|end| *end <= self.bytes.len())?;
        Some(())
    }

    /// A big-endian unsigned integer of `len` bytes.
    fn int(&mut self, len: usize) -> Option<usize> {
        let field = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(field.iter().fold(0, |value, byte| value << 8 | usize::from(*byte)))
    }

    fn name(&mut self) -> Option<()> {
        let len = self.int(1)?;
        self.skip(len)
    }

    /// A flag, then `len` bytes if it is set; whether it was.
    fn optional(&mut self, len: usize) -> Option<bool> {
        let present = self.int(1)? == 1;
        if present {
            self.skip(len)?;
        }
        Some(present)
    }

    /// From the body's start to its e2e flag (§18.2): name, static_key, server_key, last_id, then
    /// the windows — clock, count, and per sender Name, highest, seen, at.
    fn past_windows(&mut self) -> Option<()> {
        self.name()?;
        self.skip(32 + 32 + 8 + 8)?;
        for _ in 0..self.int(2)? {
            self.name()?;
            self.skip(24)?;
        }
        Some(())
    }

    /// From the e2e flag to the `peers` count of §18.3: the flag, ik, isk, Prekeys (next_id,
    /// uploaded_through, the signed prekey, the previous one, the one-time prekeys, whether the
    /// signed prekey is stored), clock.
    fn past_prekeys(&mut self) -> Option<()> {
        self.skip(1 + 32 + 32 + 8 + 4 + 4 + 32)?;
        self.optional(4 + 32)?;
        let one_time = self.int(2)?;
        self.skip(one_time.checked_mul(4 + 32)?)?;
        self.skip(1 + 8)
    }

    /// Over one PeerSession of §18.3: IK, base_key, the prekey ids, then the Ratchet.
    fn session(&mut self) -> Option<()> {
        self.skip(64 + 32)?;
        if self.optional(4)? {
            self.optional(4)?;
        }
        self.skip(32)?;
        for _ in 0..4 {
            self.optional(32)?; // DHs, DHr, CKs, CKr
        }
        self.skip(12)?;
        let ad = self.int(1)?;
        self.skip(ad)?;
        let skipped = self.int(2)?;
        self.skip(skipped.checked_mul(32 + 4 + 32)?)
    }

    /// Over the `peers` map of §18.3, count included: per peer its Name, then PeerSessions —
    /// last_active, the current session, the archived ones, the retired base keys.
    fn peers(&mut self) -> Option<()> {
        for _ in 0..self.int(2)? {
            self.name()?;
            self.skip(8)?;
            if self.int(1)? == 1 {
                self.session()?;
            }
            for _ in 0..self.int(1)? {
                self.session()?;
            }
            let retired = self.int(1)?;
            self.skip(retired.checked_mul(32)?)?;
        }
        Some(())
    }
}

/// `client` as its state file (SPEC.md §18) restores it with its next prekey id set to `next_id`.
fn restore_with_next_prekey_id(client: &Client, next_id: u64) -> Result<Client, RunError> {
    let mut bytes = client.export_state().as_bytes().to_vec();
    let mut cursor = StateCursor::new(&bytes);
    let at = cursor
        .past_windows()
        .map(|()| cursor.at)
        .ok_or(RunError::BadRestart("the state file ends in the windows"))?;
    // The e2e flag, then §18.3: ik, isk, and Prekeys.next_id.
    if bytes.get(at) != Some(&1) {
        return Err(RunError::BadRestart("prekey ids of a client without e2e state"));
    }
    raise_u64(&mut bytes, at + 1 + 32 + 32, next_id, "next prekey id below the client's own")?;
    restore_rechecked(bytes)
}

/// `client` as its state file (SPEC.md §18) restores it with no peer in §18.3's `peers` — no
/// session, archived session or retired base key — and everything else as it was.
fn restore_without_sessions(client: &Client) -> Result<Client, RunError> {
    let bytes = client.export_state().as_bytes().to_vec();
    let mut cursor = StateCursor::new(&bytes);
    cursor.past_windows().ok_or(RunError::BadRestart("the state file ends in the windows"))?;
    if bytes.get(cursor.at) != Some(&1) {
        return Err(RunError::BadRestart("sessions of a client without e2e state"));
    }
    let (start, end) = cursor
        .past_prekeys()
        .map(|()| cursor.at)
        .and_then(|start| cursor.peers().map(|()| (start, cursor.at)))
        .ok_or(RunError::BadRestart("the state file ends in the e2e state"))?;
    // The map is replaced by its count, 0: body_len (§18.1) shrinks by what it held.
    let body_len = end
        .checked_sub(start + 2)
        .and_then(|removed| bytes.len().checked_sub(25 + 32 + removed))
        .and_then(|len| u32::try_from(len).ok())
        .ok_or(RunError::BadRestart("the state file's peers do not fit its body"))?;
    let mut edited = Vec::with_capacity(bytes.len());
    edited.extend_from_slice(bytes.get(..21).unwrap_or_default());
    edited.extend_from_slice(&body_len.to_be_bytes());
    edited.extend_from_slice(bytes.get(25..start).unwrap_or_default());
    edited.extend_from_slice(&[0, 0]);
    edited.extend_from_slice(bytes.get(end..).unwrap_or_default());
    restore_rechecked(edited)
}

/// Restores a state file whose body was edited, after writing its checksum again (SPEC.md §18.1:
/// SHA-256 of everything before it).
fn restore_rechecked(mut bytes: Vec<u8>) -> Result<Client, RunError> {
    use sha2::{Digest as _, Sha256};
    let end = bytes.len().saturating_sub(32);
    let checksum = Sha256::digest(bytes.get(..end).unwrap_or_default());
    if let Some(field) = bytes.get_mut(end..).filter(|f| f.len() == checksum.len()) {
        field.copy_from_slice(&checksum);
    }
    Client::restore_state(&bytes).map_err(RunError::State)
}

/// A message written by [`Step::SendLate`], waiting to go out.
#[derive(Debug, Clone)]
enum Late {
    /// Hop: the plaintext, sent when it goes out.
    Hop(Body),
    /// e2e: the envelope, encrypted when it was written.
    E2e(Envelope),
}

fn send(from: Party, text: &str) -> Step {
    Step::Send { from, text: text.to_owned() }
}

/// The default conversation, the same in both protocols (so that `run` compares like with like):
/// both connect, talk both ways, one message goes out late and arrives after the next, then Bob goes
/// offline and a message waits in his mailbox until he reconnects. e2e adds the bundle uploads; its
/// replies turn the DH ratchet several times.
#[must_use]
pub fn default_script(protocol: Protocol) -> Vec<Step> {
    let (a, b) = (Party::Alice, Party::Bob);
    let mut script = vec![Step::Connect(a), Step::Connect(b)];
    if protocol == Protocol::E2e {
        script.extend([Step::Upload(a), Step::Upload(b)]);
    }
    script.extend([
        send(a, "hi bob, lunch today?"),
        send(b, "sure, where?"),
        Step::SendLate { from: a, text: "meet at noon by the fountain".to_owned() },
        send(a, "bring an umbrella"),
        send(b, "see you there"),
        Step::Disconnect(b),
        send(a, "running five minutes late"),
        Step::Connect(b),
    ]);
    script
}

/// A script from `--message` arguments: both clients connect (and, in e2e, publish their bundles),
/// then each text is sent in order, by Alice to Bob — or by Bob to Alice when it starts with `bob:`
/// (`alice:` is accepted too; the prefix and one following space are removed).
#[must_use]
pub fn script_from_messages(protocol: Protocol, messages: &[String]) -> Vec<Step> {
    let mut script = vec![Step::Connect(Party::Alice), Step::Connect(Party::Bob)];
    if protocol == Protocol::E2e {
        script.extend([Step::Upload(Party::Alice), Step::Upload(Party::Bob)]);
    }
    for m in messages {
        let (from, text) = if let Some(rest) = m.strip_prefix("bob:") {
            (Party::Bob, rest)
        } else if let Some(rest) = m.strip_prefix("alice:") {
            (Party::Alice, rest)
        } else {
            (Party::Alice, m.as_str())
        };
        let text = text.strip_prefix(' ').unwrap_or(text);
        script.push(Step::Send { from, text: text.to_owned() });
    }
    script
}

/// Everything a run depends on.
#[derive(Debug, Clone)]
pub struct RunConfig<P: ContentPolicy> {
    /// Which protocol.
    pub protocol: Protocol,
    /// The RNG seed.
    pub seed: u64,
    /// What happens, in order.
    pub script: Vec<Step>,
    /// The server's hop content policy.
    pub policy: P,
    /// e2e: the server substitutes bundles and relays between two sessions of its own.
    pub mitm: bool,
    /// e2e: Alice and Bob compared safety numbers out of band before the run and marked each other's
    /// real identity as verified.
    pub verified: bool,
    /// The server's bounds on names and queued bytes: SPEC.md §8's by default; a run may set smaller
    /// ones to reach `Refused { ServerFull }` and `Reject { ServerFull }` in a few frames (§5.1, §5.4).
    pub limits: ServerLimits,
}

/// What a draw from the run's RNG became (SPEC.md §9: statics, identities and prekeys, then
/// ephemerals and ratchet keys as the run needs them). Displayed as the test vectors list it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A channel static key (the server's, then Alice's, then Bob's).
    ChannelStatic(Party),
    /// A channel ephemeral key, drawn by the client connecting on `link` or by the server answering.
    ChannelEphemeral {
        /// Who drew it.
        party: Party,
        /// The link.
        link: LinkId,
    },
    /// The X25519 half `ik` of a client's e2e identity (SPEC.md §10.1).
    IdentityKey(Party),
    /// The Ed25519 seed `isk` of a client's e2e identity.
    IdentitySeed(Party),
    /// A client's first signed prekey (SPEC.md §10.2).
    SignedPrekey {
        /// Whose.
        party: Party,
        /// Its id.
        id: u32,
    },
    /// One of a client's first one-time prekeys.
    OneTimePrekey {
        /// Whose.
        party: Party,
        /// Its id.
        id: u32,
    },
    /// The base key `EK_A` of a session `party` starts with `peer` (SPEC.md §11).
    BaseKey {
        /// The initiator.
        party: Party,
        /// The responder's name: a client of the run, or any name the script writes to (a name
        /// nobody registered gets a bundle the malicious server made up).
        peer: Name,
    },
    /// A ratchet key of a client (SPEC.md §12).
    RatchetKey(Party),
    /// A one-time prekey a client made when the server said they run low (SPEC.md §15.2).
    Replenished(Party),
    /// A key of the malicious server of `--mitm`: its forged identities and prekeys, and its own
    /// sessions with the victims.
    ManInTheMiddle,
}

impl Purpose {
    /// The draw at `index` of a client's `Peers::generate`: `ik`, `isk`, then its prekeys in id
    /// order from 1, the signed one first (SPEC.md §10.2).
    fn identity(party: Party, index: usize) -> Self {
        match index {
            0 => Self::IdentityKey(party),
            1 => Self::IdentitySeed(party),
            _ => {
                let id = u32::try_from(index - 1).unwrap_or(u32::MAX);
                if id == 1 {
                    Self::SignedPrekey { party, id }
                } else {
                    Self::OneTimePrekey { party, id }
                }
            }
        }
    }
}

impl core::fmt::Display for Purpose {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ChannelStatic(p) => write!(f, "{} channel static key", p.label()),
            Self::ChannelEphemeral { party, link } => {
                write!(f, "{} channel ephemeral key (link {})", party.label(), link.0)
            }
            Self::IdentityKey(p) => write!(f, "{} identity: X25519 key ik", p.label()),
            Self::IdentitySeed(p) => write!(f, "{} identity: Ed25519 seed isk", p.label()),
            Self::SignedPrekey { party, id } => write!(f, "{} signed prekey {id}", party.label()),
            Self::OneTimePrekey { party, id } => {
                write!(f, "{} one-time prekey {id}", party.label())
            }
            Self::BaseKey { party, peer } => {
                write!(f, "{} base key EK_A (session with {peer})", party.label())
            }
            Self::RatchetKey(p) => write!(f, "{} ratchet key", p.label()),
            Self::Replenished(p) => write!(f, "{} replenished one-time prekey", p.label()),
            Self::ManInTheMiddle => f.write_str("server (man in the middle) forged or session key"),
        }
    }
}

/// One draw from the run's RNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw<'a> {
    /// Its position in the run, from 0.
    pub index: usize,
    /// What it became.
    pub purpose: Purpose,
    /// The bytes drawn (32 for every key).
    pub bytes: &'a [u8],
}

/// What a receiver made of a frame it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The server's events.
    Server {
        /// What its role reported.
        events: Vec<ServerEvent>,
        /// As in [`Step::ServerTampersNextEnvelope`], the server opened this `E2eSend` and sealed a
        /// copy with a flipped envelope for the recipient, delivered before the genuine one.
        tampered_copy: bool,
    },
    /// The client's events.
    Client(Vec<ClientEvent>),
}

impl Handled {
    /// Why the receiver refused the frame's content after authenticating it (the `Dropped` event
    /// of its role), if it did.
    #[must_use]
    pub fn dropped(&self) -> Option<&Error> {
        match self {
            Self::Server { events, .. } => events.iter().find_map(|e| match e {
                ServerEvent::Dropped { error, .. } => Some(error),
                _ => None,
            }),
            Self::Client(events) => events.iter().find_map(|e| match e {
                ClientEvent::Dropped { error } => Some(error),
                _ => None,
            }),
        }
    }
}

/// One frame delivered, as its receiver handled it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The transcript event it became: step, frame type and hex, what was read or why it was
    /// refused, and the note it carries.
    pub event: &'a Event,
    /// The sender.
    pub from: Party,
    /// The receiver.
    pub to: Party,
    /// The client's link when the frame was delivered, if it had one.
    pub link: Option<LinkId>,
    /// The frame exactly as it crossed the link.
    pub frame: &'a [u8],
    /// The receiver's events, or why it refused the frame.
    pub outcome: Result<&'a Handled, &'a Error>,
}

/// A client call that crosses no link, with its outcome: a refusal here is the client's, before
/// anything is sent (for example `Misuse.SendToSelf`, `E2e.SafetyNumberMismatch`).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The client called.
    pub party: Party,
    /// The operation: `send_e2e` or `verify_safety_number`.
    pub op: &'static str,
    /// Its arguments, by name (`to`; `peer`, `number`).
    pub args: &'a [(&'static str, String)],
    /// What the client answered.
    pub outcome: Result<(), &'a Error>,
}

/// Watches a run from inside. Every method does nothing by default; `()` observes nothing.
pub trait Observer {
    /// The RNG was drawn from; draws are reported in order, each once, after the role call that
    /// made them (a client call that fails keeps no draw: the next call draws the same bytes again).
    fn drew(&mut self, _draw: &Draw<'_>) {}

    /// A frame was delivered; reported after its receiver handled it (and after the draws that made).
    fn delivered(&mut self, _delivery: &Delivery<'_>) {}

    /// A client call that crosses no link was made, and refused or accepted.
    fn called(&mut self, _call: &Call<'_>) {}

    /// Whether [`Event::read`], the account of a run for people, shows each session's safety
    /// number as the session starts. Each costs `2 × FINGERPRINT_ITERATIONS` SHA-512 (SPEC.md
    /// §14.1), which dominates a run of hundreds of sessions; an observer that reads the frames and
    /// not the account says `false`, and the account then says only that the session started. The
    /// summary's safety numbers ([`Summary::safety_numbers`]) are computed either way.
    fn narrates_safety_numbers(&self) -> bool {
        true
    }
}

impl Observer for () {}

/// Runs `config`.
///
/// Keys are drawn from `ChaCha20Rng::seed_from_u64(seed)` in this order: server static key; Alice's
/// static key; Bob's static key; in e2e, Alice's then Bob's identity and prekeys (SPEC.md §10.2); if
/// the script names Carol, her static key and (e2e) her identity and prekeys; with `mitm`, the
/// server's two forged identities; then ephemerals and ratchet keys as the run needs them.
///
/// # Errors
/// [`RunError::Role`]: a script step that is impossible (for example sending while offline, or
/// replaying a delivery the server never made), or a role error on a frame the run itself produced
/// — which would be a bug; [`RunError::BadRestart`] and [`RunError::State`]: a restart step the
/// client cannot take. A *refused* frame is not an error of the run; it is recorded in the
/// transcript.
pub fn run<P: ContentPolicy>(config: &RunConfig<P>) -> Result<Transcript, RunError> {
    run_observed(config, &mut ())
}

/// Runs `config` as [`run`] does, reporting every draw and every delivery to `observer`.
///
/// # Errors
/// As [`run`].
pub fn run_observed<P: ContentPolicy>(
    config: &RunConfig<P>,
    observer: &mut dyn Observer,
) -> Result<Transcript, RunError> {
    let mut world = World::new(config, observer)?;
    for step in &config.script {
        world.step(step)?;
    }
    world.flush_late()?;
    let safety_numbers = (config.protocol == Protocol::E2e).then(|| world.safety_numbers());
    world.summary.safety_numbers = safety_numbers;
    Ok(Transcript {
        protocol: config.protocol.label().to_owned(),
        seed: config.seed,
        events: world.events,
        summary: world.summary,
    })
}

/// The run's RNG, ChaCha20 (SPEC.md §9). It keeps each draw until the runner reports what it became.
#[derive(Debug, Clone)]
struct Rng {
    inner: ChaCha20Rng,
    /// Drawn, not yet reported.
    fresh: Vec<Vec<u8>>,
    /// How many draws were reported.
    reported: usize,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Self { inner: ChaCha20Rng::seed_from_u64(seed), fresh: Vec::new(), reported: 0 }
    }

    /// Reports the fresh draws; `purpose` names each by its position among them.
    fn report(&mut self, observer: &mut dyn Observer, purpose: impl Fn(usize) -> Purpose) {
        for (i, bytes) in self.fresh.drain(..).enumerate() {
            observer.drew(&Draw { index: self.reported, purpose: purpose(i), bytes: &bytes });
            self.reported += 1;
        }
    }
}

impl TryRng for Rng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let v = self.inner.next_u32();
        self.fresh.push(v.to_le_bytes().to_vec());
        Ok(v)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let v = self.inner.next_u64();
        self.fresh.push(v.to_le_bytes().to_vec());
        Ok(v)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.inner.fill_bytes(dst);
        self.fresh.push(dst.to_vec());
        Ok(())
    }
}

impl TryCryptoRng for Rng {}

struct World<'o, P: ContentPolicy> {
    protocol: Protocol,
    rng: Rng,
    observer: &'o mut dyn Observer,
    server: Server<P>,
    /// Alice's and Bob's clients, and Carol's in a run that has her.
    clients: BTreeMap<Party, Client>,
    mitm: Option<Mitm>,
    links: BTreeMap<Party, LinkId>,
    next_link: u64,
    in_flight: VecDeque<(Party, Party, Vec<u8>)>,
    /// Texts by sender and id, for the summary of rejections.
    texts: BTreeMap<(Party, MessageId), String>,
    /// e2e texts waiting for a bundle, per sender, in order (their ids come later).
    waiting: BTreeMap<Party, VecDeque<String>>,
    /// e2e envelopes sealed now and submitted after the sender's next `Send`.
    late: Vec<(Party, Late, String)>,
    /// Every message of [`Step::Hold`], per sender, `held N` at index `N − 1`; `None` once sent.
    held: BTreeMap<Party, Vec<Option<Envelope>>>,
    /// The last frame each party received, and its sender: what [`Step::ReplayLastFrame`] replays.
    last_frame_to: BTreeMap<Party, (Party, Vec<u8>)>,
    /// After a [`Step::ReplayHandshakeOnNewLink`]: the party whose handshake the attacker's open
    /// link carries, and the link; frames for it there go to the attacker.
    attacker_link: Option<(Party, LinkId)>,
    /// The last frame each client sent: what [`Step::ReplayOnNewLink`] replays.
    last_sent_by: BTreeMap<Party, Vec<u8>>,
    /// Each client's last `HandshakeInit`: what [`Step::ReplayHandshakeInit`] replays.
    last_handshake_of: BTreeMap<Party, Vec<u8>>,
    /// Each `Deliver` or `E2eDeliver` the server accepted to make, with its recipient: what
    /// [`Step::ServerReplaysDelivery`] seals again.
    deliveries: Vec<(Name, Message)>,
    /// During a [`Step::ServerTampersNextEnvelope`]: the sender whose next `E2eSend` is tampered.
    tamper_envelope_from: Option<Party>,
    /// After a [`Step::ServerAnswersNextFetch`]: whose next `FetchBundle` gets which answer.
    fetch_answer: Option<(Party, Option<Message>)>,
    /// After a [`Step::LoseNextFetchAnswer`]: whose connection dies with its next fetch's answer.
    lose_fetch_answer: Option<Party>,
    /// After a [`Step::ServerWelcomesAs`]: whose next `HandshakeInit` gets which `Welcome`.
    welcome_as: Option<(Party, Name)>,
    /// During a [`Step::RegisterWith`]: the party and its handshake, waiting for message 2.
    raw_handshake: Option<(Party, InitiatorAwaitingResponse)>,
    /// Every party's channel static key (the server's too), for the steps that run a handshake
    /// outside the roles.
    static_keys: BTreeMap<Party, PrivateKey>,
    note: Option<String>,
    events: Vec<Event>,
    summary: Summary,
}

fn name(p: Party) -> Result<Name, Error> {
    Ok(Name::new(p.label())?)
}

/// The id of a delivery.
const fn delivery_id(message: &Message) -> Option<MessageId> {
    match message {
        Message::Deliver { id, .. } | Message::E2eDeliver { id, .. } => Some(*id),
        _ => None,
    }
}

/// `party`'s client, with the channel static key `key`, knowing the server's `server_key`; in e2e
/// with its identity and prekeys, drawn now (SPEC.md §10.2) and reported to `observer`.
fn new_client(
    protocol: Protocol,
    party: Party,
    key: PrivateKey,
    server_key: PublicKey,
    rng: &mut Rng,
    observer: &mut dyn Observer,
) -> Result<Client, Error> {
    Ok(match protocol {
        Protocol::Hop => Client::new(name(party)?, key, server_key),
        Protocol::E2e => {
            let peers = Peers::generate(rng);
            rng.report(observer, |i| Purpose::identity(party, i));
            Client::with_e2e(name(party)?, key, server_key, peers)
        }
    })
}

/// `bytes` with the last bit flipped.
fn flip_last(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(b) = bytes.last_mut() {
        *b ^= 0x01;
    }
    bytes
}

impl<'o, P: ContentPolicy> World<'o, P> {
    fn new(config: &RunConfig<P>, observer: &'o mut dyn Observer) -> Result<Self, Error> {
        if config.mitm && config.protocol == Protocol::Hop {
            return Err(MisuseError::NoE2eIdentity.into());
        }
        let mut rng = Rng::new(config.seed);
        let mut static_key = |party| {
            let key = PrivateKey::generate(&mut rng);
            rng.report(observer, |_| Purpose::ChannelStatic(party));
            key
        };
        let server_key = static_key(Party::Server);
        let alice_key = static_key(Party::Alice);
        let bob_key = static_key(Party::Bob);
        let server = Server::with_policy(server_key.clone(), config.policy.clone())
            .with_limits(config.limits);
        let mut static_keys = BTreeMap::from([
            (Party::Server, server_key),
            (Party::Alice, alice_key.clone()),
            (Party::Bob, bob_key.clone()),
        ]);
        let server_public = server.public_key();
        let client = |party, key, rng: &mut Rng, observer: &mut dyn Observer| {
            new_client(config.protocol, party, key, server_public, rng, observer)
        };
        let mut alice = client(Party::Alice, alice_key, &mut rng, observer)?;
        let mut bob = client(Party::Bob, bob_key, &mut rng, observer)?;
        let mut clients = BTreeMap::new();
        // Carol, if the script names her, draws after everything Alice and Bob drew: a run without
        // her draws what it always did.
        if config.script.iter().any(|step| step.parties().contains(&Party::Carol)) {
            let carol_key = PrivateKey::generate(&mut rng);
            rng.report(observer, |_| Purpose::ChannelStatic(Party::Carol));
            static_keys.insert(Party::Carol, carol_key.clone());
            clients.insert(Party::Carol, client(Party::Carol, carol_key, &mut rng, observer)?);
        }
        let mitm = if config.mitm {
            let mitm = Mitm::new(&name(Party::Alice)?, &name(Party::Bob)?, &mut rng)?;
            rng.report(observer, |_| Purpose::ManInTheMiddle);
            Some(mitm)
        } else {
            None
        };
        let mut notes = Vec::new();
        if config.verified {
            let (Some(alice_id), Some(bob_id)) = (alice.identity(), bob.identity()) else {
                return Err(MisuseError::NoE2eIdentity.into());
            };
            alice.verify_peer(name(Party::Bob)?, bob_id)?;
            bob.verify_peer(name(Party::Alice)?, alice_id)?;
            notes.push(
                "alice and bob compared safety numbers in person and marked each other verified",
            );
        }
        if config.mitm {
            notes.push("the server is malicious: it will substitute bundles and relay between two sessions");
        }
        clients.insert(Party::Alice, alice);
        clients.insert(Party::Bob, bob);
        Ok(Self {
            protocol: config.protocol,
            rng,
            observer,
            server,
            clients,
            mitm,
            links: BTreeMap::new(),
            next_link: 1,
            in_flight: VecDeque::new(),
            texts: BTreeMap::new(),
            waiting: BTreeMap::new(),
            late: Vec::new(),
            held: BTreeMap::new(),
            last_frame_to: BTreeMap::new(),
            last_handshake_of: BTreeMap::new(),
            last_sent_by: BTreeMap::new(),
            attacker_link: None,
            deliveries: Vec::new(),
            tamper_envelope_from: None,
            fetch_answer: None,
            lose_fetch_answer: None,
            welcome_as: None,
            raw_handshake: None,
            static_keys,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            events: Vec::new(),
            summary: Summary::default(),
        })
    }

    fn client(&mut self, party: Party) -> Result<&mut Client, Error> {
        // The server, or Carol in a run without her, is no client to call.
        self.clients.get_mut(&party).ok_or_else(|| MisuseError::NotConnected.into())
    }

    /// Notes accumulate until the next frame, which carries them.
    fn add_note(&mut self, line: String) {
        self.note = Some(match self.note.take() {
            Some(earlier) => format!("{earlier}; {line}"),
            None => line,
        });
    }

    fn step(&mut self, step: &Step) -> Result<(), RunError> {
        match step {
            Step::RestoreWithLastId { party, last_id } => {
                self.restart_with(*party, ("last_id", last_id.to_string()), |client| {
                    restore_with_last_id(client, *last_id)
                })
            }
            Step::RestoreWithNextPrekeyId { party, next_id } => {
                self.restart_with(*party, ("next_prekey_id", next_id.to_string()), |client| {
                    restore_with_next_prekey_id(client, *next_id)
                })
            }
            Step::RestoreWithoutSessions { party } => {
                self.restart_with(*party, ("peers", "none".to_owned()), restore_without_sessions)
            }
            Step::NewIdentity { party } => self.new_identity(*party),
            other => Ok(self.act(other)?),
        }
    }

    /// Every step but the restarts of [`Self::step`].
    fn act(&mut self, step: &Step) -> Result<(), Error> {
        match step {
            // Restarts, in `Self::step`.
            Step::RestoreWithLastId { .. }
            | Step::RestoreWithNextPrekeyId { .. }
            | Step::RestoreWithoutSessions { .. }
            | Step::NewIdentity { .. } => return Ok(()),
            Step::Connect(party) => {
                if let Some((p, link)) = self.attacker_link
                    && p == *party
                {
                    self.attacker_link = None;
                    self.links.remove(party);
                    self.server.close_link(link);
                    self.add_note(format!("the attacker's link for {} closes", party.label()));
                }
                let mut rng = self.rng.clone();
                let frame = self.client(*party)?.connect(&mut rng)?;
                self.rng = rng;
                self.open_link(*party);
                self.add_note(format!("{} connects", party.label()));
                self.in_flight.push_back((*party, Party::Server, frame));
            }
            Step::Disconnect(party) => {
                self.client(*party)?.disconnect();
                if let Some(link) = self.links.remove(party) {
                    self.server.close_link(link);
                }
                self.add_note(format!("{} goes offline", party.label()));
                return Ok(());
            }
            Step::Upload(party) => {
                let frame = self.client(*party)?.upload_bundle()?;
                self.add_note(format!("{} publishes its prekey bundle", party.label()));
                self.in_flight.push_back((*party, Party::Server, frame));
            }
            Step::Send { from, text } => {
                self.add_note(format!(
                    "{} sends {text:?} to {}",
                    from.label(),
                    from.peer().label()
                ));
                self.send(*from, text)?;
                self.pump()?;
                return self.flush_late();
            }
            Step::SendAtOnce { alice, bob } => {
                self.add_note(format!(
                    "alice sends {alice:?} to bob and bob {bob:?} to alice, at once"
                ));
                self.send(Party::Alice, alice)?;
                self.send(Party::Bob, bob)?;
                self.pump()?;
                return self.flush_late();
            }
            Step::SendLate { from, text } => {
                let to = name(from.peer())?;
                let body = Body::new(text.as_bytes().to_vec())?;
                let late = match self.protocol {
                    Protocol::Hop => {
                        self.add_note(format!(
                            "{} writes {text:?} for {to} now, but it reaches the server only after the next message",
                            from.label()
                        ));
                        Late::Hop(body)
                    }
                    Protocol::E2e => {
                        let mut rng = self.rng.clone();
                        let envelope = self.client(*from)?.seal_e2e(&to, &body, &mut rng)?;
                        self.rng = rng;
                        self.rng.report(self.observer, |_| Purpose::RatchetKey(*from));
                        self.add_note(format!(
                            "{} encrypts {text:?} for {to} now, but it reaches the server only after the next message",
                            from.label()
                        ));
                        Late::E2e(envelope)
                    }
                };
                self.late.push((*from, late, text.clone()));
                return Ok(());
            }
            Step::Hold { from, count } => {
                if self.protocol != Protocol::E2e {
                    return Err(MisuseError::NoE2eIdentity.into());
                }
                let to = name(from.peer())?;
                let held = self.held.entry(*from).or_default();
                let first = held.len() + 1;
                let mut envelopes = Vec::new();
                let mut rng = self.rng.clone();
                for number in first..first + *count as usize {
                    let body = Body::new(format!("held {number}").into_bytes())?;
                    envelopes.push(Some(self.client(*from)?.seal_e2e(&to, &body, &mut rng)?));
                }
                self.rng = rng;
                self.rng.report(self.observer, |_| Purpose::RatchetKey(*from));
                self.held.entry(*from).or_default().extend(envelopes);
                let args = [("to", to.as_str().to_owned()), ("count", count.to_string())];
                self.observer.called(&Call {
                    party: *from,
                    op: "seal_e2e",
                    args: &args,
                    outcome: Ok(()),
                });
                self.note = None;
                return Ok(());
            }
            Step::SubmitHeld { from, number } => {
                let envelope = usize::try_from(*number)
                    .ok()
                    .and_then(|n| self.held.get_mut(from)?.get_mut(n.checked_sub(1)?)?.take())
                    .ok_or(MisuseError::NotConnected)?;
                let to = name(from.peer())?;
                let (id, frame) = self.client(*from)?.submit_e2e(&to, envelope)?;
                let text = format!("held {number}");
                self.add_note(format!("{} sends its held message {text:?}", from.label()));
                self.record_sent(*from, id, text);
                self.in_flight.push_back((*from, Party::Server, frame));
            }
            Step::ReplayLastFrame { to } => {
                let (from, frame) =
                    self.last_frame_to.get(to).cloned().ok_or(MisuseError::NotConnected)?;
                self.add_note(format!(
                    "a network attacker delivers the last frame {} received again",
                    to.label()
                ));
                self.in_flight.push_back((from, *to, frame));
            }
            Step::TamperNextFrame { from, text } => {
                self.add_note(format!(
                    "{} sends {text:?}; a network attacker flips a bit of the frame first",
                    from.label()
                ));
                self.send(*from, text)?;
                if let Some((f, t, frame)) = self.in_flight.front().cloned() {
                    self.in_flight.push_front((f, t, flip_last(frame)));
                }
                self.pump()?;
                return self.flush_late();
            }
            Step::ServerReplaysDelivery { to, id, new_id } => {
                let message = self.delivery(*to, *id)?;
                let message = match (message, new_id) {
                    (Message::Deliver { from, body, .. }, Some(id)) => {
                        Message::Deliver { id: MessageId(*id), from, body }
                    }
                    (Message::E2eDeliver { from, envelope, .. }, Some(id)) => {
                        Message::E2eDeliver { id: MessageId(*id), from, envelope }
                    }
                    (m, _) => m,
                };
                let link = *self.links.get(to).ok_or(MisuseError::NotConnected)?;
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
            }
            Step::SendTo { from, to, text } => {
                self.add_note(format!("{} sends {text:?} to {to}", from.label()));
                if let Err(e) = self.send_to(*from, to.clone(), text) {
                    // A refusal before anything is sent is the case itself (SendToSelf, …).
                    let args = [("to", to.as_str().to_owned())];
                    let op = if self.protocol == Protocol::E2e { "send_e2e" } else { "send" };
                    self.observer.called(&Call { party: *from, op, args: &args, outcome: Err(&e) });
                    self.note = None;
                    return Ok(());
                }
                self.pump()?;
                return self.flush_late();
            }
            Step::VerifySafetyNumber { party, peer, wrong } => {
                let peer_name = name(*peer)?;
                let own = name(*party)?;
                let client = self.client(*party)?;
                let identity = client.identity().ok_or(MisuseError::NoE2eIdentity)?;
                let number = if *wrong {
                    SafetyNumber::new((&identity, &own), (&identity, &peer_name))
                } else {
                    // The user reads the number off the session; without one there is none to
                    // enter, as `Client::verify_safety_number` would say.
                    client.safety_number(&peer_name).ok_or_else(|| {
                        Error::from(E2eError::NoSession { name: peer_name.clone() })
                    })?
                };
                let outcome = client.verify_safety_number(&peer_name, &number);
                let args =
                    [("peer", peer_name.as_str().to_owned()), ("number", number.to_string())];
                self.observer.called(&Call {
                    party: *party,
                    op: "verify_safety_number",
                    args: &args,
                    outcome: outcome.as_ref().map(|_| ()),
                });
                return Ok(());
            }
            Step::VerifyPeer { party, peer } => {
                let identity = self.client(*peer)?.identity().ok_or(MisuseError::NoE2eIdentity)?;
                let peer_name = name(*peer)?;
                let outcome = self.client(*party)?.verify_peer(peer_name.clone(), identity);
                let args = [
                    ("peer", peer_name.as_str().to_owned()),
                    ("identity", hex::encode(identity.to_bytes())),
                ];
                self.observer.called(&Call {
                    party: *party,
                    op: "verify_peer",
                    args: &args,
                    outcome: outcome.as_ref().map(|_| ()),
                });
                return Ok(());
            }
            Step::ReplayHandshakeInit { of } => {
                let frame =
                    self.last_handshake_of.get(of).cloned().ok_or(MisuseError::NotConnected)?;
                self.add_note(format!(
                    "a network attacker delivers {}'s last HandshakeInit again, on its open link",
                    of.label()
                ));
                self.in_flight.push_back((*of, Party::Server, frame));
            }
            Step::ServerForges { to, message } => {
                let link = *self.links.get(to).ok_or(MisuseError::NotConnected)?;
                self.add_note(format!(
                    "the server forges a {} for {}",
                    message.type_name(),
                    to.label()
                ));
                let frame = self.server.seal_transport(link, message)?;
                self.in_flight.push_back((Party::Server, *to, frame));
            }
            Step::RegisterWith { party, payload } => {
                if self.links.contains_key(party) {
                    return Err(MisuseError::AlreadyConnected.into());
                }
                let key = self.static_keys.get(party).cloned().ok_or(MisuseError::NotConnected)?;
                let initiator = Initiator::new(PROLOGUE, key, self.server.public_key());
                let mut rng = self.rng.clone();
                let (awaiting, noise) =
                    initiator.write_message_1_with_rng(&mut rng, &payload.encode())?;
                self.rng = rng;
                self.open_link(*party);
                self.raw_handshake = Some((*party, awaiting));
                self.add_note(format!(
                    "{} connects with {} as its handshake payload",
                    party.label(),
                    payload.type_name()
                ));
                let frame = LinkFrame::handshake_init(noise)?.encode();
                self.in_flight.push_back((*party, Party::Server, frame));
            }
            Step::ReplayOnNewLink { of } => {
                if self.links.contains_key(of) {
                    return Err(MisuseError::AlreadyConnected.into());
                }
                let frame = self.last_sent_by.get(of).cloned().ok_or(MisuseError::NotConnected)?;
                let link = LinkId(self.next_link);
                self.next_link += 1;
                self.links.insert(*of, link);
                self.add_note(format!(
                    "a network attacker opens a new link and sends on it a copy of the last frame {} sent",
                    of.label()
                ));
                self.in_flight.push_back((*of, Party::Server, frame));
                let pumped = self.pump();
                self.links.remove(of);
                self.server.close_link(link);
                return pumped;
            }
            Step::Replenish { party, count } => {
                let mut rng = self.rng.clone();
                match self.client(*party)?.replenish_prekeys(&mut rng, *count) {
                    Ok(frame) => {
                        self.rng = rng;
                        self.rng.report(self.observer, |_| Purpose::Replenished(*party));
                        self.add_note(format!(
                            "{} replenishes its one-time prekeys",
                            party.label()
                        ));
                        self.in_flight.push_back((*party, Party::Server, frame));
                    }
                    Err(e) => {
                        let args = [("count", count.to_string())];
                        self.observer.called(&Call {
                            party: *party,
                            op: "replenish_prekeys",
                            args: &args,
                            outcome: Err(&e),
                        });
                        return Ok(());
                    }
                }
            }
            Step::ReplayHandshakeOnNewLink { of } => {
                let frame =
                    self.last_handshake_of.get(of).cloned().ok_or(MisuseError::NotConnected)?;
                let link = LinkId(self.next_link);
                self.next_link += 1;
                // While the replay and its answer cross, the attacker's link stands in for `of`'s;
                // a confirmed link `of` has takes its place again afterwards: the replay displaces
                // nothing (SPEC.md §5.1).
                let confirmed = self.links.insert(*of, link);
                self.attacker_link = Some((*of, link));
                let online = if confirmed.is_some() {
                    format!(" while {} is online", of.label())
                } else {
                    String::new()
                };
                self.add_note(format!(
                    "a network attacker opens a new link and replays {}'s last HandshakeInit on it{online}",
                    of.label()
                ));
                self.in_flight.push_back((*of, Party::Server, frame));
                let pumped = self.pump();
                if let Some(confirmed) = confirmed {
                    self.links.insert(*of, confirmed);
                }
                return pumped;
            }
            Step::ServerWelcomesAs { to, name } => {
                self.welcome_as = Some((*to, name.clone()));
                return Ok(());
            }
            Step::ServerAnswersNextFetch { from, answer } => {
                if self.protocol != Protocol::E2e {
                    return Err(MisuseError::NoE2eIdentity.into());
                }
                self.fetch_answer = Some((*from, answer.clone()));
                return Ok(());
            }
            Step::LoseNextFetchAnswer { party } => {
                if self.protocol != Protocol::E2e {
                    return Err(MisuseError::NoE2eIdentity.into());
                }
                self.lose_fetch_answer = Some(*party);
                return Ok(());
            }
            Step::ServerRelabelsDelivery { to, id, as_from } => {
                let message = self.delivery(*to, *id)?;
                let message = match message {
                    Message::Deliver { id, body, .. } => {
                        Message::Deliver { id, from: as_from.clone(), body }
                    }
                    Message::E2eDeliver { id, envelope, .. } => {
                        Message::E2eDeliver { id, from: as_from.clone(), envelope }
                    }
                    m => m,
                };
                let link = *self.links.get(to).ok_or(MisuseError::NotConnected)?;
                self.add_note(format!(
                    "the server seals its {} #{id} to {} again, as from {as_from}",
                    message.type_name(),
                    to.label()
                ));
                let frame = self.server.seal_transport(link, &message)?;
                self.in_flight.push_back((Party::Server, *to, frame));
            }
            Step::ServerTampersNextEnvelope { from, text } => {
                if self.protocol != Protocol::E2e {
                    return Err(MisuseError::NoE2eIdentity.into());
                }
                self.add_note(format!(
                    "{} sends {text:?}; the server first delivers a copy whose envelope has its last byte flipped",
                    from.label()
                ));
                self.send(*from, text)?;
                self.tamper_envelope_from = Some(*from);
                let pumped = self.pump().and_then(|()| self.flush_late());
                self.tamper_envelope_from = None;
                return pumped;
            }
        }
        self.pump()
    }

    /// The most recent `Deliver` or `E2eDeliver` with id `id` the server made for `to`: what the
    /// server's replay and relabelling attacks seal again.
    fn delivery(&self, to: Party, id: u64) -> Result<Message, Error> {
        let recipient = name(to)?;
        self.deliveries
            .iter()
            .rev()
            .find(|(r, m)| *r == recipient && delivery_id(m) == Some(MessageId(id)))
            .map(|(_, m)| m.clone())
            .ok_or_else(|| MisuseError::NotConnected.into())
    }

    /// Notes that `party` handed `text` to the server as message `id`.
    fn record_sent(&mut self, party: Party, id: MessageId, text: String) {
        self.summary.sent.push(text.clone());
        self.texts.insert((party, id), text);
    }

    /// Restarts offline `party` from its own state file with one field replaced by `patch`
    /// (`arg` = `value`: a counter moved forward, or the peers emptied), and reports the
    /// `restore_state` call.
    fn restart_with(
        &mut self,
        party: Party,
        (arg, value): (&'static str, String),
        patch: impl FnOnce(&Client) -> Result<Client, RunError>,
    ) -> Result<(), RunError> {
        if self.links.contains_key(&party) {
            return Err(RunError::BadRestart("the client is not offline"));
        }
        let restored = patch(self.client(party)?)?;
        *self.client(party)? = restored;
        let args = [(arg, value)];
        self.observer.called(&Call { party, op: "restore_state", args: &args, outcome: Ok(()) });
        Ok(())
    }

    /// As in [`Step::NewIdentity`]: offline `party` starts again from its account — name, channel
    /// static key and last message id — with a new e2e identity and prekeys (drawn now, as at the
    /// start of a run), and no sessions, pins or waiting messages.
    fn new_identity(&mut self, party: Party) -> Result<(), RunError> {
        if self.links.contains_key(&party) {
            return Err(RunError::BadRestart("the client is not offline"));
        }
        if self.protocol != Protocol::E2e {
            return Err(MisuseError::NoE2eIdentity.into());
        }
        let old = self.client(party)?.export_state();
        let last_id = last_id_at(old.as_bytes())
            .and_then(|at| old.as_bytes().get(at..at + 8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or(RunError::BadRestart("the state file ends before last_id"))?;
        let key = self.static_keys.get(&party).cloned().ok_or(MisuseError::NotConnected)?;
        let peers = Peers::generate(&mut self.rng);
        self.rng.report(self.observer, |i| Purpose::identity(party, i));
        let fresh = Client::with_e2e(name(party)?, key, self.server.public_key(), peers);
        *self.client(party)? = restore_with_last_id(&fresh, last_id)?;
        self.waiting.remove(&party);
        self.observer.called(&Call { party, op: "new_identity", args: &[], outcome: Ok(()) });
        Ok(())
    }

    /// Gives `party` the next link id, reporting the ephemeral its handshake just drew.
    fn open_link(&mut self, party: Party) {
        let link = LinkId(self.next_link);
        self.rng.report(self.observer, |_| Purpose::ChannelEphemeral { party, link });
        self.links.insert(party, link);
        self.next_link += 1;
    }

    fn send(&mut self, from: Party, text: &str) -> Result<(), Error> {
        self.send_to(from, name(from.peer())?, text)
    }

    /// Hands `text` from `from` to its client, for `to`; its frames wait in flight.
    fn send_to(&mut self, from: Party, to: Name, text: &str) -> Result<(), Error> {
        let body = Body::new(text.as_bytes().to_vec())?;
        match self.protocol {
            Protocol::Hop => {
                let (id, frame) = self.client(from)?.send(&to, body)?;
                self.record_sent(from, id, text.to_owned());
                self.in_flight.push_back((from, Party::Server, frame));
            }
            Protocol::E2e => {
                let mut rng = self.rng.clone();
                let out = self.client(from)?.send_e2e(&to, body, &mut rng)?;
                self.rng = rng;
                self.rng.report(self.observer, |_| Purpose::RatchetKey(from));
                self.waiting.entry(from).or_default().push_back(text.to_owned());
                if out.transmit.is_empty() {
                    // Queued behind a request already made: a call that crosses no link.
                    let args = [("to", to.as_str().to_owned())];
                    self.observer.called(&Call {
                        party: from,
                        op: "send_e2e",
                        args: &args,
                        outcome: Ok(()),
                    });
                    self.note = None;
                }
                self.client_outputs(from, out);
            }
        }
        Ok(())
    }

    /// Sends every late message (after the `Send` that overtook it).
    fn flush_late(&mut self) -> Result<(), Error> {
        for (from, late, text) in std::mem::take(&mut self.late) {
            let to = name(from.peer())?;
            let (id, frame) = match late {
                Late::Hop(body) => self.client(from)?.send(&to, body)?,
                Late::E2e(envelope) => self.client(from)?.submit_e2e(&to, envelope)?,
            };
            self.record_sent(from, id, text);
            self.add_note(format!("the late message from {} finally goes out", from.label()));
            self.in_flight.push_back((from, Party::Server, frame));
        }
        self.pump()
    }

    /// Queues a client's frames and notes the ids of e2e messages it sent.
    fn client_outputs(&mut self, party: Party, out: ClientOutputs) -> Vec<ClientEvent> {
        for frame in out.transmit {
            self.in_flight.push_back((party, Party::Server, frame));
        }
        for event in &out.events {
            if let ClientEvent::Sent { id, .. } = event
                && let Some(text) = self.waiting.entry(party).or_default().pop_front()
            {
                self.record_sent(party, *id, text);
            }
        }
        out.events
    }

    /// Delivers every frame in flight, and every frame that produces, in order.
    fn pump(&mut self) -> Result<(), Error> {
        while let Some((from, to, frame)) = self.in_flight.pop_front() {
            let client = if to == Party::Server { from } else { to };
            let link = self.links.get(&client).copied();
            self.last_frame_to.insert(to, (from, frame.clone()));
            if to == Party::Server {
                self.last_sent_by.insert(from, frame.clone());
            }
            if to == Party::Server
                && LinkFrame::decode(&frame).is_ok_and(|f| f.kind() == LinkKind::HandshakeInit)
            {
                self.last_handshake_of.insert(from, frame.clone());
            }
            let frame_type = LinkFrame::decode(&frame).map_or("malformed", |f| f.type_name());
            let mut event = Event {
                step: self.events.len() + 1,
                from: from.label().to_owned(),
                to: to.label().to_owned(),
                frame_type: frame_type.to_owned(),
                frame_hex: hex::encode(&frame),
                read: None,
                error: None,
                note: self.note.take(),
            };
            let outcome = if to == Party::Server {
                self.deliver_to_server(from, &frame)
            } else {
                self.deliver_to_client(to, &frame)
            };
            let outcome = match outcome {
                Ok((read, handled)) => {
                    event.read = Some(read);
                    Ok(handled)
                }
                Err(e) => {
                    event.error = Some(e.to_string());
                    Err(e)
                }
            };
            self.observer.delivered(&Delivery {
                event: &event,
                from,
                to,
                link,
                frame: &frame,
                outcome: outcome.as_ref(),
            });
            self.events.push(event);
        }
        Ok(())
    }

    fn deliver_to_server(&mut self, from: Party, frame: &[u8]) -> Result<(String, Handled), Error> {
        let link = *self.links.get(&from).ok_or(MisuseError::UnknownLink)?;
        let mut reads = Vec::new();
        let transport = LinkFrame::decode(frame).is_ok_and(|f| f.kind() == LinkKind::Transport);
        let (out, tampered) = if transport {
            // `Server::handle` is exactly `open_transport` then `process`; in two halves, the runner
            // can play a malicious server in between.
            let (sender, plaintext) = self.server.open_transport(link, frame)?;
            let intercepted = match &mut self.mitm {
                Some(mitm) => {
                    let intercepted =
                        mitm.intercept(&mut self.server, &sender, &plaintext, &mut self.rng);
                    self.rng.report(self.observer, |_| Purpose::ManInTheMiddle);
                    intercepted?
                }
                None => Intercepted::PassThrough,
            };
            match intercepted {
                Intercepted::PassThrough => {
                    match self.forged_fetch_answer(from, link, &plaintext)? {
                        Some((out, read)) => {
                            reads.push(read);
                            (out, None)
                        }
                        None => {
                            let lose = self.lose_fetch_answer == Some(from)
                                && matches!(
                                    Message::decode(&plaintext),
                                    Ok(Message::FetchBundle { .. })
                                );
                            let (mut out, tampered) =
                                self.process(from, link, sender, plaintext)?;
                            if lose {
                                self.lose_fetch_answer = None;
                                self.connection_dies(from, link, &mut out)?;
                            }
                            (out, tampered)
                        }
                    }
                }
                Intercepted::Rewritten { plaintext, read, content } => {
                    reads.push(read);
                    self.summary.server_read.push(String::from_utf8_lossy(&content).into_owned());
                    self.process(from, link, sender, plaintext)?
                }
                Intercepted::Reply { message, note } => {
                    reads.push(format!("{} -> {note}", message.type_name()));
                    let frame = Mitm::reply(&mut self.server, link, &message)?;
                    (ServerOutputs { transmit: vec![(link, frame)], ..Default::default() }, None)
                }
            }
        } else if let Some((forged, reply)) = self.forged_welcome(from, link, frame)? {
            reads.push(format!("HandshakeInit: the server answers Welcome {forged} itself"));
            (ServerOutputs { transmit: vec![(link, reply)], ..Default::default() }, None)
        } else {
            let out = self.server.handle(link, frame, &mut self.rng);
            self.rng.report(self.observer, |_| Purpose::ChannelEphemeral {
                party: Party::Server,
                link,
            });
            (out?, None)
        };
        let tampered_copy = tampered.is_some();
        reads.extend(tampered);
        let events = self.server_outputs(out, &mut reads);
        Ok((reads.join(" "), Handled::Server { events, tampered_copy }))
    }

    /// The server acts on a plaintext it opened from `from` on `link`, honestly — after sealing a
    /// tampered copy for the recipient first if a [`Step::ServerTampersNextEnvelope`] asks for one
    /// (then it also says so). Remembers what it delivers, for [`Step::ServerReplaysDelivery`].
    /// As in [`Step::ServerWelcomesAs`]: the server's own `HandshakeResp` with `Welcome { name }`
    /// to `from`'s `HandshakeInit` in `frame`, if one is set, instead of handling it.
    fn forged_welcome(
        &mut self,
        from: Party,
        link: LinkId,
        frame: &[u8],
    ) -> Result<Option<(Name, Vec<u8>)>, Error> {
        if self.welcome_as.as_ref().is_none_or(|(party, _)| *party != from) {
            return Ok(None);
        }
        let Ok(decoded) = LinkFrame::decode(frame) else { return Ok(None) };
        if decoded.kind() != LinkKind::HandshakeInit {
            return Ok(None);
        }
        let Some((_, name)) = self.welcome_as.take() else { return Ok(None) };
        let key = self.static_keys.get(&Party::Server).cloned().ok_or(MisuseError::NotConnected)?;
        let received = Responder::new(PROLOGUE, key).read_message_1(decoded.noise())?;
        let payload = Message::Welcome { name: name.clone() }.encode();
        let mut rng = self.rng.clone();
        let (_, noise) = received.write_message_2_with_rng(&mut rng, &payload)?;
        self.rng = rng;
        self.rng
            .report(self.observer, |_| Purpose::ChannelEphemeral { party: Party::Server, link });
        Ok(Some((name, LinkFrame::handshake_resp(noise)?.encode())))
    }

    /// As in [`Step::ServerAnswersNextFetch`]: the server's own answer to `from`'s `FetchBundle`
    /// in `plaintext`, if one is set, instead of processing it.
    fn forged_fetch_answer(
        &mut self,
        from: Party,
        link: LinkId,
        plaintext: &[u8],
    ) -> Result<Option<(ServerOutputs, String)>, Error> {
        let Some((party, _)) = &self.fetch_answer else { return Ok(None) };
        let Ok(Message::FetchBundle { name }) = Message::decode(plaintext) else { return Ok(None) };
        if *party != from {
            return Ok(None);
        }
        let answer = self.fetch_answer.take().and_then(|(_, answer)| answer);
        Ok(Some(match answer {
            Some(message) => {
                let frame = self.server.seal_transport(link, &message)?;
                let read = format!(
                    "FetchBundle {name}: the server answers {} of its own",
                    message.type_name()
                );
                (ServerOutputs { transmit: vec![(link, frame)], ..Default::default() }, read)
            }
            None => (
                ServerOutputs::default(),
                format!("FetchBundle {name}: the server withholds the answer"),
            ),
        }))
    }

    /// As in [`Step::LoseNextFetchAnswer`]: `party`'s connection on `link` dies before `out`'s
    /// frames for it arrive; they are lost with it, and the server forgets the link.
    fn connection_dies(
        &mut self,
        party: Party,
        link: LinkId,
        out: &mut ServerOutputs,
    ) -> Result<(), Error> {
        out.transmit.retain(|(l, _)| *l != link);
        self.client(party)?.disconnect();
        self.links.remove(&party);
        self.server.close_link(link);
        self.add_note(format!(
            "{}'s connection died before the server's answer to that FetchBundle arrived: the answer was lost with it",
            party.label()
        ));
        Ok(())
    }

    fn process(
        &mut self,
        from: Party,
        link: LinkId,
        sender: Name,
        plaintext: Vec<u8>,
    ) -> Result<(ServerOutputs, Option<String>), Error> {
        let delivery = match Message::decode(&plaintext) {
            Ok(Message::Send { id, to, body }) => {
                Some((to, Message::Deliver { id, from: sender, body }))
            }
            Ok(Message::E2eSend { id, to, envelope }) => {
                Some((to, Message::E2eDeliver { id, from: sender, envelope }))
            }
            _ => None,
        };
        let mut tampered = None;
        if self.tamper_envelope_from == Some(from)
            && let Some((to, Message::E2eDeliver { id, from: sender, envelope })) = &delivery
        {
            let recipient = Party::client_named(to).ok_or(MisuseError::NotConnected)?;
            let to_link = *self.links.get(&recipient).ok_or(MisuseError::NotConnected)?;
            let bad = Envelope::new(flip_last(envelope.as_bytes().to_vec()))?;
            let copy = Message::E2eDeliver { id: *id, from: sender.clone(), envelope: bad };
            let frame = self.server.seal_transport(to_link, &copy)?;
            self.in_flight.push_back((Party::Server, recipient, frame));
            self.tamper_envelope_from = None;
            tampered = Some(format!(
                "E2eSend {id} from {sender} to {to}: first seals {to} a copy with its envelope's last byte flipped;"
            ));
        }
        let out = self.server.process(link, plaintext);
        if let Some(delivery) = delivery
            && out.events.iter().any(|e| matches!(e, ServerEvent::Accepted { .. }))
        {
            self.deliveries.push(delivery);
        }
        Ok((out, tampered))
    }

    fn server_outputs(&mut self, out: ServerOutputs, reads: &mut Vec<String>) -> Vec<ServerEvent> {
        let answered: Vec<LinkId> = out.transmit.iter().map(|(link, _)| *link).collect();
        for (link, frame) in out.transmit {
            if let Some((&party, _)) = self.links.iter().find(|(_, l)| **l == link) {
                self.in_flight.push_back((Party::Server, party, frame));
            }
        }
        // The party of a Step::RegisterWith reads the answer on its link before it is gone.
        let raw = self.raw_handshake.as_ref().map(|(party, _)| *party);
        for link in out.close {
            // A refusal is sealed on the link it closes: its client reads it there, and is then
            // offline (`deliver_to_client`).
            let answered = answered.contains(&link);
            self.links.retain(|p, l| *l != link || raw == Some(*p) || answered);
        }
        for event in &out.events {
            reads.push(match event {
                ServerEvent::Registered { name, .. } => {
                    format!("Register {name}: welcomed; the name binds to the static key at Ready")
                }
                ServerEvent::Online { name, delivered, .. } => match delivered {
                    0 => format!("Ready: {name}'s channel confirmed"),
                    n => format!("Ready: {name}'s channel confirmed; delivers {n} queued message(s)"),
                },
                ServerEvent::Refused { reason, .. } => format!("a registration it refuses ({reason:?})"),
                ServerEvent::Read { from, to, id, body } => {
                    self.summary.server_read.push(String::from_utf8_lossy(body.as_bytes()).into_owned());
                    format!("Send {id} from {from} to {to}: {body:?}")
                }
                ServerEvent::Envelope { from, to, id, len } => {
                    format!("E2eSend {id} from {from} to {to}: a {len}-byte envelope it cannot open")
                }
                ServerEvent::Accepted { to, status: AckStatus::Relayed, .. } => match self.protocol {
                    Protocol::Hop => format!("-> re-seals it for {to}"),
                    Protocol::E2e => format!("-> relays it to {to}"),
                },
                ServerEvent::Accepted { to, status: AckStatus::Queued, .. } => {
                    format!("-> {to} is offline: queued in {to}'s mailbox")
                }
                ServerEvent::Rejected { from, id, reason } => {
                    let party = Party::client_named(from).unwrap_or(Party::Bob);
                    let text = self.texts.get(&(party, *id)).cloned().unwrap_or_default();
                    self.summary.rejected.push(format!("{text}: {reason:?}"));
                    format!("-> refuses it ({reason:?})")
                }
                ServerEvent::BundleStored { name, one_time_prekeys } => format!(
                    "UploadBundle: stores {name}'s identity, signed prekey and one-time prekeys ({one_time_prekeys} held)"
                ),
                ServerEvent::BundleRefused { name, reason } => {
                    format!("UploadBundle from {name}: refused ({reason:?})")
                }
                ServerEvent::BundleFetched { by, name, one_time_prekey } => match one_time_prekey {
                    Some(id) => format!(
                        "FetchBundle {name} from {by}: hands out {name}'s bundle with one-time prekey {id} (now deleted)"
                    ),
                    None => format!("FetchBundle {name} from {by}: hands out {name}'s bundle, no one-time prekey left"),
                },
                ServerEvent::NoBundle { by, name } => format!("FetchBundle {name} from {by}: none published"),
                ServerEvent::Dropped { error, .. } => format!("drops the content: {error}"),
                // `ServerEvent` is non-exhaustive: a newer event still shows, in its Debug form.
                other => format!("{other:?}"),
            });
        }
        out.events
    }

    fn deliver_to_client(&mut self, to: Party, frame: &[u8]) -> Result<(String, Handled), Error> {
        if self.attacker_link.is_some_and(|(p, l)| p == to && self.links.get(&to) == Some(&l)) {
            // Step::ReplayHandshakeOnNewLink: it reaches the attacker, who has no key to read it.
            return Ok((
                "reaches the network attacker, who cannot read it".to_owned(),
                Handled::Client(Vec::new()),
            ));
        }
        if let Some((party, awaiting)) = self.raw_handshake.take() {
            if party == to {
                // Step::RegisterWith: the answer to a handshake made outside the client role.
                let noise = LinkFrame::decode(frame)?;
                let (_, payload) = awaiting.read_message_2(noise.noise())?;
                let answer = Message::decode(&payload)?;
                self.links.remove(&to);
                return Ok((
                    format!("{}: stays offline", answer.type_name()),
                    Handled::Client(Vec::new()),
                ));
            }
            self.raw_handshake = Some((party, awaiting));
        }
        let mut rng = self.rng.clone();
        let out = self.client(to)?.handle(frame, &mut rng)?;
        self.rng = rng;
        // A session this client starts draws its base key, then its first ratchet key (SPEC.md §11).
        let started = out.events.iter().find_map(|e| match e {
            ClientEvent::SessionStarted { peer, .. } if !out.transmit.is_empty() => Some(peer),
            _ => None,
        });
        let replenished =
            out.events.iter().any(|e| matches!(e, ClientEvent::PrekeysReplenished { .. }));
        self.rng.report(self.observer, |i| match (i, started) {
            (0, Some(peer)) => Purpose::BaseKey { party: to, peer: peer.clone() },
            _ if replenished => Purpose::Replenished(to),
            _ => Purpose::RatchetKey(to),
        });
        if out.events.iter().any(|e| matches!(e, ClientEvent::Refused(_))) {
            self.links.remove(&to);
        }
        let events = self.client_outputs(to, out);
        let mut reads = Vec::new();
        for event in &events {
            reads.push(match event {
                ClientEvent::Connected => "Welcome: channel open; answers Ready".to_owned(),
                ClientEvent::Refused(reason) => format!("Refused ({reason:?})"),
                ClientEvent::Received { from, id, body, .. } => {
                    self.summary.delivered.push(String::from_utf8_lossy(body.as_bytes()).into_owned());
                    match self.protocol {
                        Protocol::Hop => format!("Deliver {id} from {from}: {body:?}"),
                        Protocol::E2e => format!("E2eDeliver {id} from {from}, decrypts to {body:?}"),
                    }
                }
                ClientEvent::Sent { to, id } => format!("-> encrypts the waiting message as {id} for {to}"),
                ClientEvent::Acked { id, status } => format!("Ack {id} ({status:?})"),
                ClientEvent::Rejected { id, reason } => format!("Reject {id} ({reason:?})"),
                ClientEvent::BundleStored { one_time_prekeys } => {
                    format!("BundleStored ({one_time_prekeys} one-time prekeys on the server)")
                }
                ClientEvent::BundleRefused(reason) => format!("BundleRefused ({reason:?})"),
                ClientEvent::SessionStarted { peer, one_time_prekey } => {
                    let opk = if *one_time_prekey { "with" } else { "WITHOUT" };
                    let started = format!("session with {peer} started ({opk} a one-time prekey)");
                    if self.observer.narrates_safety_numbers() {
                        let number = self.client(to)?.safety_number(peer);
                        let number = number.map_or_else(|| "none".to_owned(), |n| n.to_string());
                        format!("{started}; safety number {number}")
                    } else {
                        started
                    }
                }
                ClientEvent::IdentityChanged { peer, old, new } => {
                    format!("{peer}'S IDENTITY CHANGED: safety number {old} is now {new}")
                }
                ClientEvent::PeerEvicted { peer } => format!("evicts its sessions with {peer}"),
                ClientEvent::PrekeysReplenished { made } => {
                    format!("PrekeysLow: makes and uploads {made} one-time prekeys")
                }
                ClientEvent::SendFailed { peer, error, discarded } => {
                    let texts: Vec<String> = self.waiting.entry(to).or_default().drain(..).collect();
                    for text in &texts {
                        self.summary.rejected.push(format!("{text}: refused by {}: {error}", to.label()));
                    }
                    format!("REFUSES to start a session with {peer}: {error}; {discarded} message(s) not sent")
                }
                ClientEvent::Dropped { error } => format!("drops the content: {error}"),
                // `ClientEvent` is non-exhaustive: a newer event still shows, in its Debug form.
                other => format!("{other:?}"),
            });
        }
        Ok((reads.join(" "), Handled::Client(events)))
    }

    fn safety_numbers(&self) -> SafetyNumbers {
        let (Ok(alice), Ok(bob)) = (name(Party::Alice), name(Party::Bob)) else {
            return SafetyNumbers::default();
        };
        let shown = |party, peer| {
            let client: Option<&Client> = self.clients.get(&party);
            client.and_then(|c| c.safety_number(peer)).map(|s| s.to_string())
        };
        let (alice_view, bob_view) = (shown(Party::Alice, &bob), shown(Party::Bob, &alice));
        let equal = alice_view.is_some() && alice_view == bob_view;
        SafetyNumbers { alice: alice_view, bob: bob_view, equal }
    }
}
