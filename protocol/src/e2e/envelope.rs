//! The envelope: what the server relays between two clients and cannot open (SPEC.md §13).
//!
//! ```text
//! RatchetMessage:  0x02 || header (40) || ct (≥ 16)
//! PrekeyMessage:   0x01 || IK_A (64) || EK_A (32) || BE32(spk_id) || has_opk (0x00 | 0x01)
//!                       || [BE32(opk_id)] || header (40) || ct (≥ 16)
//! ```
//!
//! `ct` runs to the end of the envelope. Parsing is strict in the wire layer's sense: a fixed order,
//! a typed [`WireError`] at each step, canonical (every accepted envelope re-encodes to itself).

use super::ratchet::{HEADER_LEN, Header};
use super::x3dh::PrekeyHeader;
use crate::suite::{AEAD_TAG_LEN, PublicKey};
use crate::wire::{IdentityPublic, Reader, WireError};

const KIND_PREKEY: u8 = 0x01;
const KIND_RATCHET: u8 = 0x02;

/// One Double Ratchet message: its header and its AEAD ciphertext (tag included).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RatchetMessage {
    /// The ratchet header, authenticated as associated data.
    pub header: Header,
    /// `AEAD-Seal(…)`, at least 16 bytes.
    pub ciphertext: Vec<u8>,
}

/// A parsed envelope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EnvelopeBody {
    /// `0x01`: the initiator's messages until it has heard back: the handshake fields, then a
    /// ratchet message.
    Prekey {
        /// What the responder needs to run its half of the handshake.
        prekey: PrekeyHeader,
        /// The ratchet message.
        message: RatchetMessage,
    },
    /// `0x02`: every other message.
    Ratchet(RatchetMessage),
}

impl EnvelopeBody {
    /// The envelope's bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let message = match self {
            Self::Prekey { prekey, message } => {
                out.push(KIND_PREKEY);
                out.extend_from_slice(&prekey.identity.to_bytes());
                out.extend_from_slice(prekey.base_key.as_bytes());
                out.extend_from_slice(&prekey.signed_prekey_id.to_be_bytes());
                match prekey.one_time_prekey_id {
                    None => out.push(0x00),
                    Some(id) => {
                        out.push(0x01);
                        out.extend_from_slice(&id.to_be_bytes());
                    }
                }
                message
            }
            Self::Ratchet(message) => {
                out.push(KIND_RATCHET);
                message
            }
        };
        out.extend_from_slice(&message.header.encode());
        out.extend_from_slice(&message.ciphertext);
        out
    }

    /// Parses an envelope.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if a field is cut; [`WireError::InvalidValue`] for an unknown kind or
    /// a `has_opk` byte other than 0 or 1; [`WireError::BadLength`] for a ciphertext shorter than its
    /// 16-byte tag.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        match r.u8()? {
            KIND_PREKEY => {
                let identity = IdentityPublic::read(&mut r)?;
                let base_key = PublicKey::from_bytes(r.array()?);
                let signed_prekey_id = r.u32()?;
                let one_time_prekey_id = match r.u8()? {
                    0x00 => None,
                    0x01 => Some(r.u32()?),
                    _ => return Err(WireError::InvalidValue { field: "has_opk" }),
                };
                let prekey =
                    PrekeyHeader { identity, base_key, signed_prekey_id, one_time_prekey_id };
                Ok(Self::Prekey { prekey, message: read_message(&mut r)? })
            }
            KIND_RATCHET => Ok(Self::Ratchet(read_message(&mut r)?)),
            _ => Err(WireError::InvalidValue { field: "envelope_kind" }),
        }
    }
}

fn read_message(r: &mut Reader<'_>) -> Result<RatchetMessage, WireError> {
    let header = Header::decode(&r.array::<HEADER_LEN>()?);
    let ciphertext = r.rest().to_vec();
    if ciphertext.len() < AEAD_TAG_LEN {
        return Err(WireError::BadLength { field: "ciphertext", len: ciphertext.len() });
    }
    Ok(RatchetMessage { header, ciphertext })
}
