//! The envelope: what the server relays between two clients and cannot open (SPEC.md §13).
//!
//! ```text
//! RatchetMessage:  0x02 || header (40) || ct (≥ 16)
//! PrekeyMessage:   0x01 || IK_A (64) || id_sig (64) || EK_A (32) || BE32(spk_id) || has_opk (0x00 | 0x01)
//!                       || [BE32(opk_id)] || header (40) || ct (≥ 16)
//! ```
//!
//! `ct` runs to the end of the envelope. Parsing is strict in the wire layer's sense: a fixed order,
//! a typed [`WireError`] at each step, canonical (every accepted envelope re-encodes to itself).

use super::ratchet::{HEADER_LEN, Header};
use super::x3dh::PrekeyHeader;
use crate::suite::{AEAD_TAG_LEN, DH_LEN, PublicKey, SIGNATURE_LEN, Signature};
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
        match self {
            Self::Prekey { prekey, message } => {
                encode_parts(Some(prekey), &message.header, &message.ciphertext)
            }
            Self::Ratchet(message) => encode_parts(None, &message.header, &message.ciphertext),
        }
    }

    /// Parses an envelope.
    ///
    /// # Errors
    /// [`WireError::BadLength`] (field `envelope`) for more than [`crate::wire::MAX_ENVELOPE_LEN`]
    /// bytes, checked first; [`WireError::Truncated`] if a field is cut; [`WireError::InvalidValue`]
    /// for an unknown kind or a `has_opk` byte other than 0 or 1; [`WireError::BadLength`] for a
    /// ciphertext shorter than its 16-byte tag.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let parsed = ParsedEnvelope::decode(bytes)?;
        let message =
            RatchetMessage { header: parsed.header, ciphertext: parsed.ciphertext.to_vec() };
        Ok(match parsed.prekey {
            Some(prekey) => Self::Prekey { prekey, message },
            None => Self::Ratchet(message),
        })
    }
}

/// An envelope parsed without copying its ciphertext: [`EnvelopeBody`] borrowing the bytes, for
/// the receive path, which only reads the ciphertext once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParsedEnvelope<'a> {
    /// The handshake fields of a prekey message (`0x01`); none for a ratchet message (`0x02`).
    pub(crate) prekey: Option<PrekeyHeader>,
    /// The ratchet header.
    pub(crate) header: Header,
    /// The AEAD ciphertext, at least 16 bytes.
    pub(crate) ciphertext: &'a [u8],
}

impl<'a> ParsedEnvelope<'a> {
    /// Parses an envelope, exactly as [`EnvelopeBody::decode`] (which calls this).
    ///
    /// # Errors
    /// As [`EnvelopeBody::decode`].
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, WireError> {
        // The length prefix that carries an envelope (E2eSend, E2eDeliver) refuses this already;
        // an envelope parsed on its own gets the same class (SPEC.md §13).
        if bytes.len() > crate::wire::MAX_ENVELOPE_LEN {
            return Err(WireError::BadLength { field: "envelope", len: bytes.len() });
        }
        let mut r = Reader::new(bytes);
        let prekey = match r.u8()? {
            KIND_PREKEY => {
                let identity = IdentityPublic::read(&mut r)?;
                let identity_signature = Signature::from_bytes(r.array()?);
                let base_key = PublicKey::from_bytes(r.array()?);
                let signed_prekey_id = r.u32()?;
                let one_time_prekey_id = match r.u8()? {
                    0x00 => None,
                    0x01 => Some(r.u32()?),
                    _ => return Err(WireError::InvalidValue { field: "has_opk" }),
                };
                Some(PrekeyHeader {
                    identity,
                    identity_signature,
                    base_key,
                    signed_prekey_id,
                    one_time_prekey_id,
                })
            }
            KIND_RATCHET => None,
            _ => return Err(WireError::InvalidValue { field: "envelope_kind" }),
        };
        let header = Header::decode(&r.array::<HEADER_LEN>()?);
        let ciphertext = r.rest();
        if ciphertext.len() < AEAD_TAG_LEN {
            return Err(WireError::BadLength { field: "ciphertext", len: ciphertext.len() });
        }
        Ok(Self { prekey, header, ciphertext })
    }
}

/// Length of a prekey message's handshake fields after the kind byte, with `opk_id`:
/// `IK_A (64) || id_sig (64) || EK_A (32) || BE32(spk_id) || has_opk || BE32(opk_id)`.
const MAX_PREKEY_FIELDS_LEN: usize = IdentityPublic::LEN + SIGNATURE_LEN + DH_LEN + 4 + 1 + 4;

/// The most a prekey message adds to its ciphertext: kind, handshake fields, ratchet header (210
/// bytes; with the 16-byte tag, the 226 bytes SPEC.md §13 adds to a body).
/// [`crate::wire::MAX_ENVELOPE_LEN`] leaves room for it after the longest body.
pub const MAX_PREKEY_OVERHEAD: usize = 1 + MAX_PREKEY_FIELDS_LEN + HEADER_LEN;

const _: () = assert!(
    crate::wire::MAX_BODY_LEN + AEAD_TAG_LEN + MAX_PREKEY_OVERHEAD <= crate::wire::MAX_ENVELOPE_LEN
);

/// The length of the envelope with these handshake fields and a ciphertext of `ciphertext_len`.
pub(crate) fn encoded_len(prekey: Option<&PrekeyHeader>, ciphertext_len: usize) -> usize {
    let prekey_len = prekey
        .map_or(0, |p| MAX_PREKEY_FIELDS_LEN - if p.one_time_prekey_id.is_some() { 0 } else { 4 });
    (1 + prekey_len + HEADER_LEN).saturating_add(ciphertext_len)
}

/// The envelope's bytes from its parts, allocated once at their exact length.
pub(crate) fn encode_parts(
    prekey: Option<&PrekeyHeader>,
    header: &Header,
    ciphertext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(prekey, ciphertext.len()));
    write_prefix(&mut out, prekey, header);
    out.extend_from_slice(ciphertext);
    out
}

/// Appends everything of the envelope before its ciphertext (kind, handshake fields, ratchet
/// header) to `out`: the ratchet then seals the ciphertext after it, in the same buffer.
pub(crate) fn write_prefix(out: &mut Vec<u8>, prekey: Option<&PrekeyHeader>, header: &Header) {
    match prekey {
        Some(prekey) => {
            out.push(KIND_PREKEY);
            out.extend_from_slice(&prekey.identity.to_bytes());
            out.extend_from_slice(prekey.identity_signature.as_bytes());
            out.extend_from_slice(prekey.base_key.as_bytes());
            out.extend_from_slice(&prekey.signed_prekey_id.to_be_bytes());
            match prekey.one_time_prekey_id {
                None => out.push(0x00),
                Some(id) => {
                    out.push(0x01);
                    out.extend_from_slice(&id.to_be_bytes());
                }
            }
        }
        None => out.push(KIND_RATCHET),
    }
    out.extend_from_slice(&header.encode());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prekey(one_time_prekey_id: Option<u32>) -> PrekeyHeader {
        PrekeyHeader {
            identity: IdentityPublic {
                dh: PublicKey::from_bytes([3; 32]),
                sign: crate::suite::VerifyingKey::from_bytes([7; 32]),
            },
            identity_signature: crate::suite::Signature::from_bytes([9; 64]),
            base_key: PublicKey::from_bytes([4; 32]),
            signed_prekey_id: 5,
            one_time_prekey_id,
        }
    }

    #[test]
    fn encode_allocates_the_exact_length_and_decode_inverts_it() {
        let header = Header { dh: PublicKey::from_bytes([1; 32]), pn: 2, n: 3 };
        let message = RatchetMessage { header, ciphertext: vec![9; 20] };
        for body in [
            EnvelopeBody::Ratchet(message.clone()),
            EnvelopeBody::Prekey { prekey: prekey(None), message: message.clone() },
            EnvelopeBody::Prekey { prekey: prekey(Some(6)), message: message.clone() },
        ] {
            let bytes = body.encode();
            let prekey = match &body {
                EnvelopeBody::Prekey { prekey, .. } => Some(prekey),
                EnvelopeBody::Ratchet(_) => None,
            };
            assert_eq!(bytes.len(), encoded_len(prekey, 20));
            assert_eq!(EnvelopeBody::decode(&bytes), Ok(body.clone()));
            let parsed = ParsedEnvelope::decode(&bytes).unwrap();
            assert_eq!((parsed.prekey.as_ref(), parsed.header), (prekey, header));
            assert_eq!(parsed.ciphertext, &bytes[bytes.len() - 20..]);
        }
    }

    #[test]
    fn an_envelope_over_the_maximum_is_bad_length_and_one_at_it_parses() {
        let header = Header { dh: PublicKey::from_bytes([1; 32]), pn: 0, n: 0 };
        let at_max = EnvelopeBody::Ratchet(RatchetMessage {
            header,
            ciphertext: vec![9; crate::wire::MAX_ENVELOPE_LEN - 41],
        })
        .encode();
        assert_eq!(at_max.len(), crate::wire::MAX_ENVELOPE_LEN);
        assert!(EnvelopeBody::decode(&at_max).is_ok());
        let mut over = at_max;
        over.push(9);
        assert_eq!(
            EnvelopeBody::decode(&over),
            Err(WireError::BadLength { field: "envelope", len: crate::wire::MAX_ENVELOPE_LEN + 1 })
        );
        // Checked before the kind: an unknown kind of that length is BadLength too.
        over[0] = 0x07;
        assert!(matches!(EnvelopeBody::decode(&over), Err(WireError::BadLength { .. })));
    }

    /// SPEC.md §13: a prekey message with a one-time prekey id, the longest, adds 226 bytes to its
    /// body: 210 before the ciphertext, and the 16-byte tag.
    #[test]
    fn the_largest_prekey_overhead_is_226_bytes_over_a_body() {
        assert_eq!(MAX_PREKEY_OVERHEAD + AEAD_TAG_LEN, 226);
        let header = Header { dh: PublicKey::from_bytes([1; 32]), pn: 0, n: 0 };
        let with_opk = encode_parts(Some(&prekey(Some(6))), &header, &[9; AEAD_TAG_LEN]);
        assert_eq!(with_opk.len() - AEAD_TAG_LEN, MAX_PREKEY_OVERHEAD);
    }

    /// SPEC.md §13: `ct ≥ 16`. A bare tag (the empty plaintext's ciphertext) parses; each shorter
    /// ciphertext, down to none, is `BadLength` for `ciphertext`, in both kinds of envelope.
    #[test]
    fn a_ciphertext_shorter_than_its_tag_is_bad_length_and_a_bare_tag_parses() {
        let header = Header { dh: PublicKey::from_bytes([1; 32]), pn: 0, n: 0 };
        for prekey in [None, Some(prekey(Some(6)))] {
            let bare_tag = encode_parts(prekey.as_ref(), &header, &[9; AEAD_TAG_LEN]);
            let parsed = ParsedEnvelope::decode(&bare_tag).unwrap();
            assert_eq!(parsed.ciphertext, &[9; AEAD_TAG_LEN][..]);
            for len in 0..AEAD_TAG_LEN {
                let short = encode_parts(prekey.as_ref(), &header, &vec![9; len]);
                assert_eq!(
                    EnvelopeBody::decode(&short),
                    Err(WireError::BadLength { field: "ciphertext", len })
                );
            }
        }
    }
}
