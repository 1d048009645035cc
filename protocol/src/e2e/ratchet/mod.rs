//! The Double Ratchet of SPEC §12, on the suite of §2.
//!
//! A [`Session`] is one end of a two-party conversation, created from the shared secret `SK` and
//! the associated data `AD` of the handshake (§11) and the peer's (initiator) or our own
//! (responder) first ratchet key. It encrypts with [`Session::encrypt`] and decrypts with
//! [`Session::decrypt`]; every message carries a [`Header`] in clear, authenticated as associated
//! data.
//!
//! One file per object of the spec:
//!
//! | file             | spec               | item                                                 |
//! |------------------|--------------------|------------------------------------------------------|
//! | `kdf.rs`         | §12.1, §2          | HKDF-SHA-256, two output blocks (crate-private)      |
//! | `root_key.rs`    | §12.1 `KDF_RK`     | [`RootKey`]                                          |
//! | `chain_key.rs`   | §12.1 `KDF_CK`     | [`ChainKey`]                                         |
//! | `message_key.rs` | §12.1 message keys | [`MessageKey`]: AEAD key and nonce, seal, open       |
//! | `header.rs`      | §12.3, §13         | [`Header`], [`HEADER_LEN`]                           |
//! | `skipped.rs`     | §12.4, §12.5       | the bounded skipped-key store (crate-private)        |
//! | `session.rs`     | §12.2–§12.4        | [`Session`]: initialisation, sending, receiving      |
//! | this file        | §12.4, §12.5       | [`MAX_SKIP`], [`MAX_SKIPPED_KEYS`], [`RatchetError`] |
//!
//! # Where this differs from Signal's description
//!
//! Only in *when* a new sending ratchet key is drawn: on the next send after a new peer key
//! arrives, not on receipt (§12.3). The key schedule, and so every key and ciphertext, is the one
//! Signal's algorithm would produce from the same key pairs. In exchange, receiving takes no RNG
//! and can be undone completely: [`Session::decrypt`] derives everything on locals and commits to
//! the session only if the AEAD opens, so a forged, replayed, truncated or too-far-ahead message
//! leaves the session exactly as it was.
//!
//! # Not here
//!
//! The session's *base key* (§12.2, §11.3) identifies a session among the e2e layer's sessions and
//! is kept there, next to the [`Session`]; the ratchet never reads it.

mod chain_key;
mod header;
mod kdf;
mod message_key;
mod root_key;
mod session;
mod skipped;

pub use chain_key::ChainKey;
pub use header::{HEADER_LEN, Header};
pub use message_key::{MessageKey, MessageNonce};
pub use root_key::RootKey;
pub use session::Session;

use crate::suite::CryptoError;

/// `MAX_SKIP` (§12.5): the largest gap accepted in one receiving chain, that is the most message
/// keys one `SKIP(until)` may derive and store.
///
/// It bounds the work a single incoming message can cause — at most 1000 `KDF_CK` steps (two HMACs
/// each) per chain it touches, so 2000 steps and one DH for a message that turns the ratchet (the
/// rest of the old chain via `pn`, then the new chain up to `n`) — and the keys it can add to the
/// store. No honest conversation loses a thousand consecutive messages of one chain. A larger gap
/// fails with [`RatchetError::TooFarAhead`].
pub const MAX_SKIP: u32 = 1000;

/// `MAX_SKIPPED_KEYS` (§12.5): the most skipped message keys a session stores.
///
/// It bounds a session's memory (each entry is a 32-byte key, a 32-byte ratchet key and a `u32`)
/// whatever a peer, or an attacker injecting headers that happen to authenticate, does over time.
/// Twice [`MAX_SKIP`], so that one maximal skip in each of two chains fits. When storing one more
/// key would exceed it, the **oldest stored** key is evicted first (insertion order), and its
/// message can no longer be decrypted.
pub const MAX_SKIPPED_KEYS: usize = 2000;

/// The most `KDF_CK` steps one envelope may cause across every session it is tried in (SPEC.md
/// §12.5): `2 × MAX_SKIP`, one maximal skip in each of the two chains a message that turns the
/// ratchet touches. `MAX_SKIP` bounds one chain of one session; without a bound shared across
/// sessions, one forged ~90-byte envelope could cost a client 2000 steps in each of the
/// `1 + MAX_ARCHIVED_SESSIONS` sessions of a peer (each attempt also costs at most one DH and one
/// AEAD open, which the number of sessions bounds).
pub const MAX_ENVELOPE_CHAIN_STEPS: u32 = 2 * MAX_SKIP;

/// What one envelope may still cost in `KDF_CK` steps (SPEC.md §12.5), shared by every session the
/// envelope is tried in. A session charges an attempt *before* doing its work, so an attempt the
/// budget cannot pay for does no work at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkBudget {
    steps: u32,
}

impl WorkBudget {
    /// The budget of one envelope: [`MAX_ENVELOPE_CHAIN_STEPS`].
    #[must_use]
    pub const fn per_envelope() -> Self {
        Self { steps: MAX_ENVELOPE_CHAIN_STEPS }
    }

    /// What is left.
    #[must_use]
    pub const fn steps_left(&self) -> u32 {
        self.steps
    }

    /// Takes `steps`, or nothing and [`RatchetError::WorkExceeded`].
    const fn charge(&mut self, steps: u32) -> Result<(), RatchetError> {
        match self.steps.checked_sub(steps) {
            Some(left) => {
                self.steps = left;
                Ok(())
            }
            None => Err(RatchetError::WorkExceeded),
        }
    }
}

/// Why a ratchet operation failed. On every error the [`Session`] is exactly as it was before the
/// call (an [`Session::encrypt`] that failed may have drawn from the RNG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RatchetError {
    /// [`Session::encrypt`] on a responder that has not yet decrypted a message: it has no peer
    /// ratchet key (`DHr` is none) to send to (§12.3). A responder cannot speak before it has
    /// heard.
    NoSession,
    /// A header asks to skip more than [`MAX_SKIP`] message keys in one receiving chain (§12.4
    /// `SKIP`): `gap` is `until − Nr`, for `until` the header's `pn` (rest of the old chain) or
    /// `n`.
    TooFarAhead {
        /// How many keys the header would have had us derive.
        gap: u64,
    },
    /// The header names a message of the current receiving chain whose key was already used (and
    /// deleted) or evicted: `dh = DHr` and `n < Nr` (§12.4). A second delivery of a message.
    Replayed,
    /// The AEAD did not open (§12.4): a modified header or body, a truncated ciphertext, the wrong
    /// `AD`, or a message from an old chain whose key is no longer stored (§12.4, last paragraph).
    /// Also a message that no session state could have produced: one that names a ratchet key while
    /// we have no sending key to agree with it (an initiator that has not yet sent), or that names
    /// the initial peer key `DHr` before any receiving chain exists.
    DecryptFailed,
    /// The sending chain has used every index (`Ns = 2^32 − 1`, §12.3); or a received header has
    /// `n = 2^32 − 1`, an index no sender can use, so the receiving counter cannot move past it.
    ChainExhausted,
    /// The envelope has already used what one envelope may cost ([`WorkBudget`], SPEC.md §12.5)
    /// in the sessions it was tried in before this one; this session did no work for it.
    WorkExceeded,
    /// A Diffie-Hellman with the peer's ratchet key was all zero ([`CryptoError::NonContributory`],
    /// §2.1): the key has small order.
    Crypto(CryptoError),
}

impl core::fmt::Display for RatchetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSession => {
                f.write_str("ratchet: no session to send on before a message is received")
            }
            Self::TooFarAhead { gap } => {
                write!(f, "ratchet: message {gap} ahead, more than MAX_SKIP = {MAX_SKIP}")
            }
            Self::Replayed => f.write_str("ratchet: message key already used"),
            Self::DecryptFailed => f.write_str("ratchet: message does not decrypt"),
            Self::ChainExhausted => f.write_str("ratchet: chain index exhausted"),
            Self::WorkExceeded => f.write_str("ratchet: the envelope's work budget is spent"),
            Self::Crypto(e) => write!(f, "ratchet: {e}"),
        }
    }
}

impl std::error::Error for RatchetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Crypto(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CryptoError> for RatchetError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_the_specified_values() {
        assert_eq!(MAX_SKIP, 1000);
        assert_eq!(MAX_SKIPPED_KEYS, 2000);
        assert_eq!(MAX_SKIPPED_KEYS, 2 * MAX_SKIP as usize);
        assert_eq!(MAX_ENVELOPE_CHAIN_STEPS, 2000);
        assert_eq!(WorkBudget::per_envelope().steps_left(), MAX_ENVELOPE_CHAIN_STEPS);
    }

    #[test]
    fn error_source_and_display() {
        use std::error::Error as _;
        let e = RatchetError::from(CryptoError::NonContributory);
        assert_eq!(e, RatchetError::Crypto(CryptoError::NonContributory));
        assert!(e.source().is_some());
        assert!(e.to_string().contains("all zero"));
        assert!(RatchetError::Replayed.source().is_none());
        assert!(RatchetError::TooFarAhead { gap: 1001 }.to_string().contains("1001"));
        for e in [
            RatchetError::NoSession,
            RatchetError::Replayed,
            RatchetError::DecryptFailed,
            RatchetError::ChainExhausted,
        ] {
            assert!(e.to_string().starts_with("ratchet: "));
        }
    }
}
