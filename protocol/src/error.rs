//! The crate's error type: one enum, layered by where the problem was found.
//!
//! * [`Error::Wire`] — malformed input: the bytes do not parse.
//! * [`Error::Channel`] — the channel's cryptography refused the bytes (forged, replayed, truncated,
//!   low-order key, nonce exhausted).
//! * [`Error::Protocol`] — the bytes were authentic but the peer broke the protocol.
//! * [`Error::E2e`] — the e2e layer refused a bundle or an envelope.
//! * [`Error::Misuse`] — the caller asked for something the role's state does not allow.
//!
//! Every role method that returns an error leaves the role exactly as it was before the call.

use crate::channel::ChannelError;
use crate::e2e::E2eError;
use crate::suite::CryptoError;
use crate::wire::{MessageId, Name, WireError};

/// Any failure of a role method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The input does not parse.
    Wire(WireError),
    /// The channel's cryptography refused the input.
    Channel(ChannelError),
    /// An authenticated peer broke the protocol.
    Protocol(ProtocolError),
    /// The e2e layer refused a bundle or an envelope (or its handshake or ratchet failed).
    E2e(E2eError),
    /// The caller used the API in a way the current state does not allow.
    Misuse(MisuseError),
}

/// An authenticated peer broke the protocol (or a message was replayed through it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame or message that is valid in general but not in the receiver's current state.
    Unexpected {
        /// The receiver's state.
        state: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// The server welcomed the client under a name other than the one it registered.
    WrongName,
    /// A message id from this sender was already accepted.
    Replayed {
        /// The sender.
        from: Name,
        /// The repeated id.
        id: MessageId,
    },
    /// A message id from this sender is older than the replay window, so it cannot be checked.
    OutOfWindow {
        /// The sender.
        from: Name,
        /// The stale id.
        id: MessageId,
    },
}

/// The caller asked for something the role's current state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MisuseError {
    /// The client has no open channel (connect first, and wait for the welcome).
    NotConnected,
    /// The client is already connected or connecting.
    AlreadyConnected,
    /// The server has no link with this id.
    UnknownLink,
    /// The sender has used every message id (2^64 − 1 messages).
    IdsExhausted,
    /// The client has no e2e identity (it was created for hop only).
    NoE2eIdentity,
    /// Too many messages already wait for this peer's bundle (`e2e::MAX_PENDING`).
    PendingFull,
    /// e2e to oneself: with one device per name there is no second party to agree keys with.
    SendToSelf,
    /// A signed-prekey rotation before the server stored the current signed prekey, or while an
    /// upload is unanswered (SPEC.md §10.2): upload, and wait for `BundleStored`.
    SignedPrekeyNotStored,
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

impl From<ChannelError> for Error {
    fn from(e: ChannelError) -> Self {
        Self::Channel(e)
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        Self::Channel(ChannelError::from(e))
    }
}

impl From<E2eError> for Error {
    /// Files the e2e layer's errors under their SPEC.md §7.1 class: a malformed envelope is a
    /// `Wire` error and a full pending queue is API misuse; everything else is `E2e`.
    fn from(e: E2eError) -> Self {
        match e {
            E2eError::Envelope(w) => Self::Wire(w),
            E2eError::PendingFull => Self::Misuse(MisuseError::PendingFull),
            other => Self::E2e(other),
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<MisuseError> for Error {
    fn from(e: MisuseError) -> Self {
        Self::Misuse(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "malformed input: {e}"),
            Self::Channel(e) => write!(f, "channel: {e}"),
            Self::Protocol(e) => write!(f, "protocol violation: {e:?}"),
            Self::E2e(e) => write!(f, "e2e: {e}"),
            Self::Misuse(e) => write!(f, "API misuse: {e:?}"),
        }
    }
}

impl std::error::Error for Error {}
