//! The frame header shared by both families, and the [`Codec`] trait.

use super::{Reader, WireError};

/// The only protocol version this implementation speaks.
pub const VERSION: u8 = 0x01;

/// Header length: version (1) + type (1) + body length (4, big-endian).
pub const HEADER_LEN: usize = 6;

/// A family of frames: a set of type codes, each with a body format, and a maximum body length.
///
/// Implementors write only [`Codec::encode_body`] and [`Codec::decode_body`]; framing, the order of
/// checks and the trailing-bytes rule live here, once, for every family.
pub trait Codec: Sized {
    /// Largest frame body this family accepts; a larger declared length is
    /// [`WireError::Oversized`]. (Not to be confused with [`super::MAX_BODY_LEN`], the bound of the
    /// `Body` *field* inside a message.)
    const MAX_FRAME_BODY_LEN: usize;

    /// The type byte of this value.
    fn frame_type(&self) -> u8;

    /// Whether `frame_type` names a frame of this family.
    fn is_known_type(frame_type: u8) -> bool;

    /// Appends the body (without header) to `out`.
    fn encode_body(&self, out: &mut Vec<u8>);

    /// Reads a body of type `frame_type` from `body`. `body` holds exactly the declared body; the
    /// caller checks that it was read to the end.
    ///
    /// # Errors
    /// Any [`WireError`] about the body's fields.
    fn decode_body(frame_type: u8, body: &mut Reader<'_>) -> Result<Self, WireError>;

    /// The body's length or more for every link frame and every message a conversation sends, so
    /// that [`Codec::encode`] allocates their buffer once (tests/allocations.rs counts it); for the
    /// rarer ones (bundles, uploads) a guess. Only a hint: a wrong one costs a reallocation, never a
    /// wrong encoding.
    fn body_len_hint(&self) -> usize;

    /// The complete frame: header, then body.
    #[must_use]
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.body_len_hint());
        self.encode_into(&mut out);
        out
    }

    /// Appends the complete frame (header, then body) to `out`: one buffer can then hold a frame
    /// inside another (a message inside a channel frame, SPEC.md §3).
    fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[VERSION, self.frame_type(), 0, 0, 0, 0]);
        self.encode_body(out);
        // Every constructor bounds its fields so that a body never exceeds MAX_FRAME_BODY_LEN, far
        // below u32::MAX; the length always fits.
        set_body_len(&mut out[start..]);
    }

    /// Decodes exactly one frame that fills all of `bytes`.
    ///
    /// Checks, in order: input size, version, type, declared length against the maximum, declared
    /// length against the input, the body's fields, and that nothing is left over.
    ///
    /// # Errors
    /// The first check that fails, as a [`WireError`].
    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let (frame_type, body) = split::<Self>(bytes)?;
        decode_split(frame_type, body)
    }
}

/// The rest of [`Codec::decode`] once [`split`] has checked the header: the body's fields, then
/// that nothing is left over.
pub(crate) fn decode_split<C: Codec>(frame_type: u8, body: &[u8]) -> Result<C, WireError> {
    let mut body = Reader::new(body);
    let value = C::decode_body(frame_type, &mut body)?;
    if !crate::flaws::on(crate::flaws::Flaw::AcceptTrailingBytes) {
        body.finish()?;
    } // seeded flaw hook
    Ok(value)
}

/// The header checks of [`Codec::decode`], in its order, without decoding the body: the frame's
/// type and its body, borrowed from `bytes`.
///
/// # Errors
/// The first check that fails: input size, version, type, declared length against the maximum,
/// declared length against the input, nothing left over.
pub fn split<C: Codec>(bytes: &[u8]) -> Result<(u8, &[u8]), WireError> {
    let max = HEADER_LEN + C::MAX_FRAME_BODY_LEN;
    if bytes.len() > max {
        return Err(WireError::Oversized { len: bytes.len(), max });
    }
    let mut r = Reader::new(bytes);
    let (frame_type, body_len) = header::<C>(&mut r)?;
    let body = r.take(body_len)?;
    r.finish()?;
    Ok((frame_type, body))
}

/// Writes the length of `frame[HEADER_LEN..]` into the header at the start of `frame`.
pub(crate) fn set_body_len(frame: &mut [u8]) {
    write_body_len(frame, frame.len().saturating_sub(HEADER_LEN));
}

/// Writes `body_len` into the header at the start of `frame`: for a frame whose body is not all
/// written yet.
pub(crate) fn write_body_len(frame: &mut [u8], body_len: usize) {
    let len = u32::try_from(body_len).unwrap_or(u32::MAX).to_be_bytes();
    if let Some(field) = frame.get_mut(2..HEADER_LEN) {
        field.copy_from_slice(&len);
    }
}

/// Reads and checks the header of a frame of family `C` from `r`, and returns its type and
/// declared body length; `r` is then at the body.
fn header<C: Codec>(r: &mut Reader<'_>) -> Result<(u8, usize), WireError> {
    let version = r.u8()?;
    if version != VERSION {
        return Err(WireError::UnknownVersion(version));
    }
    let frame_type = r.u8()?;
    if !C::is_known_type(frame_type) {
        return Err(WireError::UnknownType(frame_type));
    }
    let declared = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    if declared > C::MAX_FRAME_BODY_LEN {
        let (len, max) = (HEADER_LEN.saturating_add(declared), HEADER_LEN + C::MAX_FRAME_BODY_LEN);
        return Err(WireError::Oversized { len, max });
    }
    Ok((frame_type, declared))
}

/// For stream transports: given the bytes received so far, the total length of the first frame of
/// family `C` once its header is complete (`Ok(None)` while fewer than [`HEADER_LEN`] bytes are in).
/// A reader can thus reject a bad version, type or oversized length before buffering the body.
///
/// # Errors
/// [`WireError::UnknownVersion`], [`WireError::UnknownType`] or [`WireError::Oversized`].
pub fn frame_len<C: Codec>(received: &[u8]) -> Result<Option<usize>, WireError> {
    if received.len() < HEADER_LEN {
        return Ok(None);
    }
    header::<C>(&mut Reader::new(received)).map(|(_, body_len)| Some(HEADER_LEN + body_len))
}
