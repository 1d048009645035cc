//! The end-to-end protocol (SPEC.md §10–§15): Alice and Bob agree keys through the server from
//! signed prekey bundles (an X3DH-style handshake), then every message has its own key (the Double
//! Ratchet). The server relays envelopes it cannot open; safety numbers let users catch a server that
//! substitutes keys.
//!
//! | module            | SPEC   | what                                                            |
//! |-------------------|--------|-----------------------------------------------------------------|
//! | [`identity`]      | §10.1  | long-term identity: X25519 + Ed25519                            |
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
pub mod x3dh;

use crate::suite::CryptoError;
use crate::wire::{BundleRefusal, Name};
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

/// Messages a client queues per peer while it waits for that peer's bundle (SPEC.md §15.3).
pub const MAX_PENDING: usize = 16;

/// Replaced sessions a client keeps per peer and tries when the current one cannot open a message
/// (SPEC.md §11.3): two clients that start sessions with each other at the same time converge, and
/// messages in flight across a replacement still open. Each costs at most one failed decryption.
pub const MAX_ARCHIVED_SESSIONS: usize = 4;

/// Peers a client keeps sessions with. The names come from the server, so without a bound a server
/// could make a client's state (and each receive) grow without limit; beyond it, a prekey message or
/// bundle from a new peer is refused with [`E2eError::TooManyPeers`].
pub const MAX_PEERS: usize = 256;

/// Why an e2e operation failed. On every error the state it was called on is unchanged.
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
    /// A session with one more peer would exceed [`MAX_PEERS`].
    TooManyPeers,
    /// The prekey id counter is at `2^32 − 1`: no more prekeys can be made (SPEC.md §10.2).
    PrekeyIdsExhausted,
}

impl From<RatchetError> for E2eError {
    fn from(e: RatchetError) -> Self {
        Self::Ratchet(e)
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
            Self::PrekeyIdsExhausted => f.write_str("prekey ids exhausted"),
        }
    }
}

impl std::error::Error for E2eError {}
