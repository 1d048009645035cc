//! The end-to-end protocol (SPEC.md §10–§15): Alice and Bob agree keys through the server from
//! signed prekey bundles (an X3DH-style handshake), then every message has its own key (the Double
//! Ratchet). The server relays envelopes it cannot open; safety numbers let users catch a server that
//! substitutes keys.
//!
//! | module            | SPEC   | what                                                            |
//! |-------------------|--------|-----------------------------------------------------------------|
//! | [`identity`]      | §10.1  | long-term identity: X25519 + Ed25519                            |
//! | [`signed`]        | §10.1–2 | what each signature covers: identity binding, signed prekey    |
//! | [`prekeys`]       | §10.2  | the client's private prekey store: signed + one-time prekeys    |
//! | [`bundle`]        | §10.3  | bundle validation, for the server (upload) and client (fetch)   |
//! | [`x3dh`]          | §11    | the handshake: SK and AD from the bundle's keys                 |
//! | [`ratchet`]       | §12    | the Double Ratchet                                              |
//! | [`envelope`]      | §13    | the bytes the server relays                                     |
//! | [`safety_number`] | §14    | the 60-digit fingerprint of two identities                      |
//! | [`peers`]         | §11.3, §15.3 | a client's sessions, pinned identities and pending messages |

pub mod bundle;
pub mod envelope;
pub mod identity;
pub mod peers;
pub mod prekeys;
pub mod ratchet;
pub mod safety_number;
pub mod signed;
pub mod x3dh;

use crate::suite::CryptoError;
use crate::wire::{BundleRefusal, Name, WireError};
use ratchet::RatchetError;

/// Most one-time prekeys one upload may carry, and the most the server stores per client
/// (SPEC.md §10.3). A hundred covers a burst of first contacts between replenishments while bounding
/// the server's store at 3.6 KB of keys per client.
pub const MAX_ONE_TIME_PREKEYS: usize = 100;

/// One-time prekeys a client makes at creation and per replenishment (SPEC.md §10.2).
pub const ONE_TIME_PREKEYS_PER_UPLOAD: usize = 10;

/// Base keys of replaced sessions remembered per peer, to refuse replayed prekey messages
/// (SPEC.md §11.3). Sixteen replacements per peer is far more than honest use produces.
pub const RETIRED_BASE_KEYS: usize = 16;

/// Messages a client queues per peer while it waits for that peer's bundle (SPEC.md §15.3). At most
/// [`MAX_PEERS`] peers have messages waiting at one time.
pub const MAX_PENDING: usize = 16;

/// Replaced sessions a client keeps per peer and tries when the current one cannot open a message
/// (SPEC.md §11.3): two clients that start sessions with each other at the same time converge, and
/// messages in flight across a replacement still open. Each costs at most one failed decryption.
pub const MAX_ARCHIVED_SESSIONS: usize = 4;

/// Peers a client keeps sessions with (SPEC.md §11.3). The names come from the server, so without a
/// bound a server — or one client with many names — could make a client's state grow without limit.
/// A session with one more peer evicts the least recently active peer instead of being refused, so
/// throw-away senders cannot lock a client out of new contacts; pinned peers, peers with messages
/// waiting for their bundle and peers whose session this client started and has not yet heard back
/// on are never evicted ([`E2eError::TooManyPeers`] only if every peer is spared).
pub const MAX_PEERS: usize = 256;

/// The most skipped message keys one client stores over all its sessions (SPEC.md §12.5): four
/// sessions' worth of [`ratchet::MAX_SKIPPED_KEYS`], about 600 KB. Without it, peers could make a
/// client hold `MAX_SKIPPED_KEYS` keys in each of `(1 + MAX_ARCHIVED_SESSIONS) × MAX_PEERS`
/// sessions (2.5 million keys). Beyond it, the keys of the least recently active peers go first.
pub const MAX_SKIPPED_KEYS_PER_CLIENT: usize = 4 * ratchet::MAX_SKIPPED_KEYS;

/// Names whose identity a client has verified (pinned, SPEC.md §14.2). Pins outlive sessions — an
/// evicted peer stays pinned — so the bound is four times [`MAX_PEERS`]. It exists so that a
/// client's whole state has a size limit (its persisted form, SPEC.md §18); pinning one more name is
/// refused ([`E2eError::TooManyPinned`]), never made room for: a pin is not dropped silently.
pub const MAX_PINNED: usize = 4 * MAX_PEERS;

/// The server tells a client its one-time prekeys run low (`PrekeysLow`, SPEC.md §15.2) when a
/// fetch leaves it this many or fewer; the client then makes and uploads a new batch (§15.3).
pub const PREKEYS_LOW_WATER: usize = ONE_TIME_PREKEYS_PER_UPLOAD / 2;

/// The most one-time prekeys a client holds privately (SPEC.md §10.2): twice what the server
/// stores. Keys handed out but never used in a prekey message (drained by a requester that never
/// wrote) would otherwise pile up with every replenishment; beyond the bound the oldest go first.
pub const MAX_HELD_ONE_TIME_PREKEYS: usize = 2 * MAX_ONE_TIME_PREKEYS;

/// Why an e2e operation failed. On every error the state it was called on is unchanged.
///
/// The e2e layer has its own error type and does not name the crate's [`crate::Error`] (which
/// depends on this module, not the other way round). Two of its variants are the e2e layer's view of
/// classes that belong elsewhere, and `Error::from` files them there: [`E2eError::Envelope`] becomes
/// `Error::Wire` and [`E2eError::PendingFull`] becomes `Error::Misuse(PendingFull)` (SPEC.md §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum E2eError {
    /// A bundle failed validation (SPEC.md §10.3), with the same classification the server sends.
    Bundle(BundleRefusal),
    /// The peer's identity is verified (pinned) and this bundle or prekey message carries another.
    IdentityMismatch {
        /// The peer whose identity differs.
        name: Name,
    },
    /// A prekey message names a signed or one-time prekey this client does not hold.
    UnknownPrekey {
        /// The prekey id.
        id: u32,
    },
    /// A prekey message whose base key belongs to a replaced session: a replay (SPEC.md §11.3).
    ReplayedPrekeyMessage,
    /// A ratchet message for a peer with no session.
    NoSession {
        /// The peer.
        name: Name,
    },
    /// The server has no bundle for this peer.
    NoBundle {
        /// The peer.
        name: Name,
    },
    /// The Double Ratchet refused the message.
    Ratchet(RatchetError),
    /// A handshake Diffie-Hellman was not contributory (SPEC.md §2.1).
    Crypto(CryptoError),
    /// A session with one more peer would exceed [`MAX_PEERS`], and no peer may be evicted.
    TooManyPeers,
    /// The safety number the user compared is not the one of the current session with the peer
    /// (SPEC.md §14.2): nothing is pinned.
    SafetyNumberMismatch {
        /// The peer.
        name: Name,
    },
    /// The prekey id counter is at `2^32 − 1`: no more prekeys can be made (SPEC.md §10.2).
    PrekeyIdsExhausted,
    /// The envelope does not parse (SPEC.md §13), or its ciphertext is longer than a body can be.
    Envelope(WireError),
    /// [`MAX_PENDING`] messages already wait for this peer's bundle, or messages already wait for
    /// [`MAX_PEERS`] other peers' bundles (SPEC.md §15.3).
    PendingFull,
    /// [`MAX_PINNED`] names are already pinned; a pin for one more is refused (SPEC.md §14.2).
    TooManyPinned,
}

impl From<RatchetError> for E2eError {
    fn from(e: RatchetError) -> Self {
        Self::Ratchet(e)
    }
}

impl From<WireError> for E2eError {
    fn from(e: WireError) -> Self {
        Self::Envelope(e)
    }
}

impl From<CryptoError> for E2eError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

impl core::fmt::Display for E2eError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Bundle(r) => write!(f, "bundle refused: {r:?}"),
            Self::IdentityMismatch { name } => {
                write!(f, "the identity offered for {name} is not the one verified for {name}")
            }
            Self::UnknownPrekey { id } => write!(f, "unknown prekey id {id}"),
            Self::ReplayedPrekeyMessage => f.write_str("replayed prekey message"),
            Self::NoSession { name } => write!(f, "no session with {name}"),
            Self::NoBundle { name } => write!(f, "{name} has published no bundle"),
            Self::Ratchet(e) => write!(f, "{e}"),
            Self::Crypto(e) => write!(f, "{e}"),
            Self::TooManyPeers => write!(f, "sessions with more than {MAX_PEERS} peers"),
            Self::SafetyNumberMismatch { name } => {
                write!(f, "the safety number is not the one of the session with {name}")
            }
            Self::PrekeyIdsExhausted => f.write_str("prekey ids exhausted"),
            Self::Envelope(e) => write!(f, "malformed envelope: {e}"),
            Self::PendingFull => f.write_str("too many messages already wait for bundles"),
            Self::TooManyPinned => write!(f, "{MAX_PINNED} names are already pinned"),
        }
    }
}

impl std::error::Error for E2eError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each error prints what failed, with the name, id or bound involved, and a wrapped error
    /// prints as itself.
    #[test]
    fn errors_print_what_failed() {
        let bob = Name::new("bob").unwrap();
        for (error, shown) in [
            (E2eError::Bundle(BundleRefusal::BadSignature), "bundle refused: BadSignature"),
            (
                E2eError::IdentityMismatch { name: bob.clone() },
                "the identity offered for bob is not the one verified for bob",
            ),
            (E2eError::UnknownPrekey { id: 7 }, "unknown prekey id 7"),
            (E2eError::ReplayedPrekeyMessage, "replayed prekey message"),
            (E2eError::NoSession { name: bob.clone() }, "no session with bob"),
            (E2eError::NoBundle { name: bob.clone() }, "bob has published no bundle"),
            (E2eError::Ratchet(RatchetError::Replayed), "ratchet: message key already used"),
            (
                E2eError::Crypto(CryptoError::NonContributory),
                "X25519 result is all zero (low-order public key)",
            ),
            (E2eError::TooManyPeers, "sessions with more than 256 peers"),
            (
                E2eError::SafetyNumberMismatch { name: bob },
                "the safety number is not the one of the session with bob",
            ),
            (E2eError::PrekeyIdsExhausted, "prekey ids exhausted"),
            (
                E2eError::Envelope(WireError::TrailingBytes { extra: 1 }),
                &format!("malformed envelope: {}", WireError::TrailingBytes { extra: 1 }),
            ),
            (E2eError::PendingFull, "too many messages already wait for bundles"),
            (E2eError::TooManyPinned, "1024 names are already pinned"),
        ] {
            assert_eq!(error.to_string(), shown);
        }
    }
}
