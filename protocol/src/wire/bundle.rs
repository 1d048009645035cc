//! Field types of the e2e messages (SPEC.md §15.1): identities, prekeys, bundles and envelopes.
//!
//! These are *encodings* only. Whether a bundle is acceptable (signature, key orders, counts) is
//! decided by `crate::e2e::bundle`, by the server on upload and by the client on fetch.

use crate::suite::{PublicKey, SIGNATURE_LEN, Signature, VerifyingKey};

use super::types::read_u16_prefixed;
use super::{MAX_BODY_LEN, Reader, WireError};

/// Most one-time prekeys one `UploadBundle` can *encode*. A codec bound only: it keeps the frame far
/// below the message limit (166 + 1000 × 36 bytes). The protocol's own, smaller limit is
/// `crate::e2e::MAX_ONE_TIME_PREKEYS` (SPEC.md §10.3).
pub const MAX_ENCODED_PREKEYS: usize = 1000;

/// Longest e2e envelope: [`MAX_BODY_LEN`] of content plus 256 bytes, room for the largest prekey
/// message overhead (226 bytes, SPEC.md §13).
pub const MAX_ENVELOPE_LEN: usize = MAX_BODY_LEN + 256;

/// A client's public e2e identity `IK = IK_dh || IK_sig` (64 bytes, SPEC.md §10.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct IdentityPublic {
    /// The X25519 half, used in the handshake's Diffie-Hellmans.
    pub dh: PublicKey,
    /// The Ed25519 half, which signs prekeys.
    pub sign: VerifyingKey,
}

impl IdentityPublic {
    /// Encoded length.
    pub const LEN: usize = 64;

    /// `IK_dh || IK_sig`.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..32].copy_from_slice(self.dh.as_bytes());
        out[32..].copy_from_slice(self.sign.as_bytes());
        out
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            dh: PublicKey::from_bytes(r.array()?),
            sign: VerifyingKey::from_bytes(r.array()?),
        })
    }
}

/// A signed prekey as published: id, key, and the identity's signature over them (SPEC.md §10.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SignedPrekeyPublic {
    /// The prekey id.
    pub id: u32,
    /// The X25519 public key.
    pub key: PublicKey,
    /// `Ed25519-Sign(isk, "e2e-ref/signed-prekey/v1" || IK_dh || BE32(id) || key)`.
    pub signature: Signature,
}

impl SignedPrekeyPublic {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(self.signature.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            id: r.u32()?,
            key: PublicKey::from_bytes(r.array()?),
            signature: Signature::from_bytes(r.array::<SIGNATURE_LEN>()?),
        })
    }
}

/// A one-time prekey as published: id and key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct OneTimePrekeyPublic {
    /// The prekey id.
    pub id: u32,
    /// The X25519 public key.
    pub key: PublicKey,
}

impl OneTimePrekeyPublic {
    /// Encoded length: id (4) and key (32).
    const LEN: usize = 4 + 32;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self { id: r.u32()?, key: PublicKey::from_bytes(r.array()?) })
    }
}

/// What a client uploads: its identity, its current signed prekey and a batch of one-time prekeys.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct UploadedBundle {
    identity: IdentityPublic,
    signed_prekey: SignedPrekeyPublic,
    one_time_prekeys: Vec<OneTimePrekeyPublic>,
}

impl UploadedBundle {
    /// Bounds the batch by [`MAX_ENCODED_PREKEYS`].
    ///
    /// # Errors
    /// [`WireError::BadLength`] (field `one_time_prekeys`) for a larger batch.
    pub fn new(
        identity: IdentityPublic,
        signed_prekey: SignedPrekeyPublic,
        one_time_prekeys: Vec<OneTimePrekeyPublic>,
    ) -> Result<Self, WireError> {
        if one_time_prekeys.len() > MAX_ENCODED_PREKEYS {
            return Err(WireError::BadLength {
                field: "one_time_prekeys",
                len: one_time_prekeys.len(),
            });
        }
        Ok(Self { identity, signed_prekey, one_time_prekeys })
    }

    /// The uploader's identity.
    #[must_use]
    pub const fn identity(&self) -> &IdentityPublic {
        &self.identity
    }

    /// The signed prekey.
    #[must_use]
    pub const fn signed_prekey(&self) -> &SignedPrekeyPublic {
        &self.signed_prekey
    }

    /// The one-time prekeys, in upload order.
    #[must_use]
    pub fn one_time_prekeys(&self) -> &[OneTimePrekeyPublic] {
        &self.one_time_prekeys
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.identity.encode(out);
        self.signed_prekey.encode(out);
        // `new` bounds the count by MAX_ENCODED_PREKEYS (1000), so it fits in a u16.
        let count = u16::try_from(self.one_time_prekeys.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for opk in &self.one_time_prekeys {
            opk.encode(out);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let identity = IdentityPublic::read(r)?;
        let signed_prekey = SignedPrekeyPublic::read(r)?;
        let count = usize::from(r.u16()?);
        if count > MAX_ENCODED_PREKEYS {
            return Err(WireError::BadLength { field: "one_time_prekeys", len: count });
        }
        // All of them at once: a short batch is `Truncated`, as reading one by one would find, and
        // the vector is allocated once, at its length.
        let mut batch = Reader::new(r.take(count * OneTimePrekeyPublic::LEN)?);
        let mut one_time_prekeys = Vec::with_capacity(count);
        for _ in 0..count {
            one_time_prekeys.push(OneTimePrekeyPublic::read(&mut batch)?);
        }
        Ok(Self { identity, signed_prekey, one_time_prekeys })
    }
}

/// What the server hands out: identity, signed prekey, and at most one one-time prekey.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FetchedBundle {
    /// The owner's identity.
    pub identity: IdentityPublic,
    /// The owner's current signed prekey.
    pub signed_prekey: SignedPrekeyPublic,
    /// One one-time prekey, if the server had any left.
    pub one_time_prekey: Option<OneTimePrekeyPublic>,
}

impl FetchedBundle {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.identity.encode(out);
        self.signed_prekey.encode(out);
        match &self.one_time_prekey {
            None => out.push(0x00),
            Some(opk) => {
                out.push(0x01);
                opk.encode(out);
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let identity = IdentityPublic::read(r)?;
        let signed_prekey = SignedPrekeyPublic::read(r)?;
        let one_time_prekey = match r.u8()? {
            0x00 => None,
            0x01 => Some(OneTimePrekeyPublic::read(r)?),
            _ => return Err(WireError::InvalidValue { field: "has_opk" }),
        };
        Ok(Self { identity, signed_prekey, one_time_prekey })
    }
}

/// An e2e envelope: 1 to [`MAX_ENVELOPE_LEN`] bytes the server relays and cannot open. Encoded as
/// `len: u16 BE || bytes`. Its inner format (SPEC.md §13) is parsed by the recipient only.
///
/// As a [`super::Body`], it may start at an offset in the buffer that holds it (the recipient
/// decodes an `E2eDeliver` in the buffer it decrypted the frame into, and then decrypts the
/// envelope there): `==`, [`Hash`], `Debug` and a clone see the envelope only.
#[derive(Default)]
pub struct Envelope {
    /// The buffer the envelope is the tail of.
    buffer: Vec<u8>,
    /// Where the envelope starts in `buffer` (at most its length).
    start: usize,
}

impl Envelope {
    /// Bounds `bytes`.
    ///
    /// # Errors
    /// [`WireError::BadLength`] (field `envelope`) if empty or longer than [`MAX_ENVELOPE_LEN`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, WireError> {
        Self::at(bytes, 0)
    }

    /// The envelope `buffer[start..]` (none past its end), in the buffer that holds it, bounded
    /// as [`Envelope::new`] bounds it.
    ///
    /// # Errors
    /// As [`Envelope::new`].
    pub(crate) fn at(buffer: Vec<u8>, start: usize) -> Result<Self, WireError> {
        let start = start.min(buffer.len());
        let len = buffer.len() - start;
        if len == 0 || len > MAX_ENVELOPE_LEN {
            return Err(WireError::BadLength { field: "envelope", len });
        }
        Ok(Self { buffer, start })
    }

    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.get(self.start..).unwrap_or_default()
    }

    /// The bytes in a buffer of their own: the buffer that held them, the envelope moved to its
    /// front if it did not start there.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        let (mut buffer, start) = self.into_parts();
        buffer.drain(..start);
        buffer
    }

    /// The buffer that holds the envelope and where the envelope starts in it, given up: the
    /// recipient decrypts the envelope in this buffer.
    pub(crate) fn into_parts(self) -> (Vec<u8>, usize) {
        (self.buffer, self.start)
    }

    /// Reads the field and borrows its bytes, bounds checked as [`Envelope::new`] checks them.
    pub(crate) fn read_ref<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], WireError> {
        read_u16_prefixed(r, "envelope", 1, MAX_ENVELOPE_LEN)
    }
}

impl Clone for Envelope {
    /// The envelope only, in a buffer of its own.
    fn clone(&self) -> Self {
        Self { buffer: self.as_bytes().to_vec(), start: 0 }
    }
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Envelope {}

impl core::hash::Hash for Envelope {
    /// The bytes, as a `Vec<u8>` of them hashes (length, then bytes).
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl core::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Envelope({} bytes)", self.as_bytes().len())
    }
}
