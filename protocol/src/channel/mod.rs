//! The client↔server channel: `Noise_IK_25519_ChaChaPoly_SHA256`, written by hand on [`crate::suite`].
//!
//! The client (initiator) knows the server's (responder's) static key in advance; the handshake is
//! the Noise `IK` pattern (Noise spec rev 34, §7.5):
//!
//! ```text
//! IK:
//!   <- s
//!   ...
//!   -> e, es, s, ss
//!   <- e, ee, se
//! ```
//!
//! One file per object of the spec:
//!
//! | file                 | spec         | types                                                 |
//! |----------------------|--------------|-------------------------------------------------------|
//! | `cipher_state.rs`    | §5.1         | `CipherState` (crate-private)                         |
//! | `symmetric_state.rs` | §4.3, §5.2   | `SymmetricState` (crate-private), Noise's `HKDF`      |
//! | `handshake.rs`       | §5.3, §7.5   | [`Initiator`], [`InitiatorAwaitingResponse`], [`Responder`], [`ResponderReceived`] |
//! | `transport.rs`       | §5 (after `Split()`) | [`Transport`]                                 |
//!
//! # Flow
//!
//! ```text
//! Initiator::new(prologue, s, rs) --write_message_1(e, payload)--> (InitiatorAwaitingResponse, msg1)
//! Responder::new(prologue, s)     --read_message_1(msg1)---------> ResponderReceived
//! ResponderReceived               --write_message_2(e, payload)--> (Transport, msg2)
//! InitiatorAwaitingResponse       --read_message_2(msg2)---------> (Transport, payload)
//! ```
//!
//! Ephemeral keys are passed in (drawn by the caller from its injected RNG, or fixed by a test
//! vector); the `*_with_rng` variants draw them from an RNG themselves.
//!
//! # Errors leave state unchanged
//!
//! Every *receiving* function borrows its state (`&self`, or `&mut self` that is written only after
//! every check has passed), so a truncated, forged or replayed message is a typed [`ChannelError`] and
//! the state can still accept the genuine message. *Sending* functions that consume `self` fail only
//! on caller error (over-long payload) or on a peer key that can never work (non-contributory DH).
//!
//! # Security of the handshake payloads (§7.7)
//!
//! Message 1's payload has source authentication level 1 and destination confidentiality level 2:
//! it can be replayed to the responder, and anyone holding the responder's static key can forge it
//! under any initiator identity (key-compromise impersonation) and read it. Message 2's payload and
//! all transport messages have the strong properties (source 2; destination 4, then 5). Put nothing
//! in message 1 whose replay or disclosure on server-key compromise matters.
//!
//! # Not implemented
//!
//! Other patterns, PSKs, `Rekey()` and the fallback/hybrid modifiers: this channel needs none of them.

mod cipher_state;
mod handshake;
mod symmetric_state;
mod transport;

#[cfg(test)]
pub(crate) mod testing;

pub use handshake::{Initiator, InitiatorAwaitingResponse, Responder, ResponderReceived};
pub use transport::Transport;

use crate::suite::{AEAD_TAG_LEN, CryptoError, DH_LEN};

/// The Noise protocol name (§8). Exactly 32 bytes, so `InitializeSymmetric` uses it as `h` directly,
/// padded with no zeros (§5.2).
pub const PROTOCOL_NAME: &str = "Noise_IK_25519_ChaChaPoly_SHA256";

/// The largest Noise message, handshake or transport, in bytes.
///
/// §3: "all Noise messages are less than or equal to 65535 bytes in length". Longer messages are
/// refused on write and on read with [`ChannelError::MessageTooLong`]; this also bounds the work an
/// unauthenticated peer can cause.
pub const MAX_NOISE_MESSAGE_LEN: usize = 65535;

/// The prologue our product binds into every handshake (§6).
///
/// Both sides must use the same bytes, or the first AEAD of message 1 fails. It names this channel and its version, so a transcript of
/// another protocol, or of a later version, can never complete a handshake with this one.
pub const PROLOGUE: &[u8] = b"e2e-ref/channel/v1";

/// Bytes message 1 adds to its payload: `e` (32) ‖ encrypted `s` (32 + 16) ‖ payload tag (16).
pub const MESSAGE_1_OVERHEAD: usize = DH_LEN + DH_LEN + AEAD_TAG_LEN + AEAD_TAG_LEN;

/// Bytes message 2 adds to its payload: `e` (32) ‖ payload tag (16).
pub const MESSAGE_2_OVERHEAD: usize = DH_LEN + AEAD_TAG_LEN;

/// Bytes a transport message adds to its payload: the AEAD tag (16).
pub const TRANSPORT_OVERHEAD: usize = AEAD_TAG_LEN;

/// Why a channel operation failed. On every error the state it was called on is unchanged (or, for
/// the consuming write functions, was the caller's to clone beforehand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelError {
    /// A primitive failed: an AEAD tag did not verify ([`CryptoError::AeadOpen`]) — wrong key,
    /// prologue, or a modified message — or a Diffie-Hellman result was all zero
    /// ([`CryptoError::NonContributory`]) because a peer key has small order.
    Crypto(CryptoError),
    /// A message shorter than its fixed part: message 1 < [`MESSAGE_1_OVERHEAD`], message 2 <
    /// [`MESSAGE_2_OVERHEAD`], a transport message < [`TRANSPORT_OVERHEAD`].
    MessageTooShort,
    /// A message longer than [`MAX_NOISE_MESSAGE_LEN`], received or about to be written.
    MessageTooLong,
    /// The nonce counter reached `2^64 − 1`, which Noise reserves (§5.1); this direction of the
    /// channel can carry no more messages.
    NonceExhausted,
}

impl core::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Crypto(e) => write!(f, "channel: {e}"),
            Self::MessageTooShort => f.write_str("channel: message too short"),
            Self::MessageTooLong => f.write_str("channel: message longer than 65535 bytes"),
            Self::NonceExhausted => f.write_str("channel: nonce counter exhausted"),
        }
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Crypto(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CryptoError> for ChannelError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_name_is_exactly_hashlen() {
        assert_eq!(PROTOCOL_NAME.len(), crate::suite::HASH_LEN);
    }

    #[test]
    fn overheads() {
        assert_eq!(MESSAGE_1_OVERHEAD, 96);
        assert_eq!(MESSAGE_2_OVERHEAD, 48);
        assert_eq!(TRANSPORT_OVERHEAD, 16);
    }

    #[test]
    fn error_source_and_display() {
        use std::error::Error as _;
        let e = ChannelError::from(CryptoError::AeadOpen);
        assert_eq!(e, ChannelError::Crypto(CryptoError::AeadOpen));
        assert!(e.source().is_some());
        assert!(ChannelError::NonceExhausted.source().is_none());
        assert!(e.to_string().contains("AEAD"));
    }
}
