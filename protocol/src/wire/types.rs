//! Field types shared by several frames, each with its named bounds.

use core::fmt;

use super::{Reader, WireError};

/// Longest user name, in bytes. Names are identifiers, not display names: 32 bytes is room for any
/// handle while keeping the per-recipient tables and every frame small.
pub const MAX_NAME_LEN: usize = 32;

/// Longest message content, in bytes (16 KiB). It keeps every frame — including an e2e envelope with
/// its ratchet header and the first message's handshake fields — far below the Noise message limit of
/// 65 535 bytes, so one message is always one channel frame.
pub const MAX_BODY_LEN: usize = 16 * 1024;

/// A user name: 1 to [`MAX_NAME_LEN`] bytes, each one of `a-z`, `0-9`, `-`, `_`, `.`.
///
/// The alphabet has no upper case and no Unicode, so two names are equal exactly when their bytes
/// are equal: no normalisation question can arise at the server. Encoded as `len: u8 || bytes`.
///
/// Held inline (the bytes and their length, no heap), so that naming a peer — in every message,
/// event and table key — never allocates. Compares, orders and hashes as its text.
#[derive(Clone)]
pub struct Name {
    len: u8,
    bytes: [u8; MAX_NAME_LEN],
}

impl Name {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`WireError::BadLength`] if empty or longer than [`MAX_NAME_LEN`];
    /// [`WireError::InvalidValue`] if a byte is outside the alphabet.
    pub fn new(name: &str) -> Result<Self, WireError> {
        check_name_len(name.len())?;
        Self::from_alphabet(name.as_bytes())
    }

    /// The name `name`, whose length the caller has checked with [`check_name_len`]; a byte
    /// outside the alphabet is [`WireError::InvalidValue`]. The alphabet is ASCII, so bytes that
    /// pass are UTF-8: decoding needs no check of its own that they are text.
    fn from_alphabet(name: &[u8]) -> Result<Self, WireError> {
        if !name.iter().all(|&b| NAME_ALPHABET[usize::from(b)]) {
            return Err(WireError::InvalidValue { field: "name" });
        }
        let mut bytes = [0u8; MAX_NAME_LEN];
        let (Some(field), Ok(len)) = (bytes.get_mut(..name.len()), u8::try_from(name.len())) else {
            return Err(WireError::BadLength { field: "name", len: name.len() });
        };
        field.copy_from_slice(name);
        Ok(Self { len, bytes })
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // `new` admits only ASCII, so the bytes are always UTF-8.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.len);
        out.extend_from_slice(self.as_bytes());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let len = usize::from(r.u8()?);
        check_name_len(len)?;
        Self::from_alphabet(r.take(len)?)
    }
}

/// A name is 1 to [`MAX_NAME_LEN`] bytes; otherwise [`WireError::BadLength`]. Decoding checks the
/// length prefix before it takes the bytes (SPEC.md §3.4 step 6).
const fn check_name_len(len: usize) -> Result<(), WireError> {
    if len == 0 || len > MAX_NAME_LEN {
        return Err(WireError::BadLength { field: "name", len });
    }
    Ok(())
}

/// The bytes a [`Name`] may hold: `a-z`, `0-9`, `-`, `_`, `.`. A table, so that checking a name is
/// one load per byte rather than five range comparisons (every message names someone).
const NAME_ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut c: u8 = 0;
    loop {
        table[c as usize] =
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.');
        if c == u8::MAX {
            break table;
        }
        c += 1;
    }
};

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    /// The order of their text: `str` orders by its bytes, so comparing the bytes gives that order
    /// without checking them as UTF-8 on every comparison (names key every table of the roles).
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl core::hash::Hash for Name {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Message content: 0 to [`MAX_BODY_LEN`] opaque bytes, encoded as `len: u16 BE || bytes`.
///
/// The content may start at an offset in the buffer that holds it: a role decodes a received
/// message in the buffer it decrypted the message into, and the body, the message's last field,
/// stays where it is rather than being moved to the buffer's front (a copy of the whole message,
/// on the relay path's every hop). The bytes before it are the rest of that message, never read
/// through a `Body`: `==`, [`Hash`], [`fmt::Debug`] and a clone see the content only.
#[derive(Default)]
pub struct Body {
    /// The buffer the content is the tail of.
    buffer: Vec<u8>,
    /// Where the content starts in `buffer` (at most its length).
    start: usize,
}

impl Body {
    /// Bounds `bytes`.
    ///
    /// # Errors
    /// [`WireError::BadLength`] (field `body`) if longer than [`MAX_BODY_LEN`] — the same error a
    /// decoder reports for such a length prefix.
    pub fn new(bytes: Vec<u8>) -> Result<Self, WireError> {
        Self::at(bytes, 0)
    }

    /// The content `buffer[start..]` (all of `buffer` past its end: none), in the buffer that
    /// holds it, bounded as [`Body::new`] bounds it.
    ///
    /// # Errors
    /// As [`Body::new`].
    pub(crate) fn at(buffer: Vec<u8>, start: usize) -> Result<Self, WireError> {
        let start = start.min(buffer.len());
        let len = buffer.len() - start;
        if len > MAX_BODY_LEN {
            return Err(WireError::BadLength { field: "body", len });
        }
        Ok(Self { buffer, start })
    }

    /// The content.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.get(self.start..).unwrap_or_default()
    }

    /// The content in a buffer of its own: the buffer that held it, the content moved to its
    /// front if it did not start there.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        let Self { mut buffer, start } = self;
        buffer.drain(..start);
        buffer
    }

    /// The whole buffer that held the content, what came before the content included: a driver
    /// hands a body it is done with back to the roles' in-place API
    /// ([`crate::roles::FramePool::recycle`]), which decrypts or seals the next frame into it
    /// instead of allocating (and, unlike [`Body::into_bytes`], moves nothing).
    #[must_use]
    pub fn into_buffer(self) -> Vec<u8> {
        self.buffer
    }

    /// Reads the field and borrows its bytes, bounds checked as [`Body::new`] checks them.
    pub(crate) fn read_ref<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], WireError> {
        read_u16_prefixed(r, "body", 0, MAX_BODY_LEN)
    }
}

impl Clone for Body {
    /// The content only, in a buffer of its own.
    fn clone(&self) -> Self {
        Self { buffer: self.as_bytes().to_vec(), start: 0 }
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Body {}

impl core::hash::Hash for Body {
    /// The content, as a `Vec<u8>` of it hashes (length, then bytes).
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let content = self.as_bytes();
        match core::str::from_utf8(content) {
            Ok(text) => write!(f, "{text:?}"),
            Err(_) => write!(f, "0x{}", crate::suite::Hex(content)),
        }
    }
}

/// Reads `len: u16 BE || bytes`, checking `min ≤ len ≤ max` as soon as the prefix is read, before the
/// bytes it announces (SPEC.md §3.4 step 6); borrows the bytes.
pub(crate) fn read_u16_prefixed<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
    min: usize,
    max: usize,
) -> Result<&'a [u8], WireError> {
    let len = usize::from(r.u16()?);
    if len < min || len > max {
        return Err(WireError::BadLength { field, len });
    }
    r.take(len)
}

/// A message id chosen by the sender: a counter starting at 1, unique per sender. Encoded as u64 BE.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, RandomState};

    use super::*;
    use crate::wire::{Envelope, MAX_ENVELOPE_LEN};

    #[test]
    fn a_body_at_an_offset_is_its_content_alone() {
        let hasher = RandomState::new();
        let body = Body::at(b"headercontent".to_vec(), 6).unwrap();
        let alone = Body::new(b"content".to_vec()).unwrap();
        assert_eq!((body.as_bytes(), &body), (&b"content"[..], &alone));
        assert_eq!(hasher.hash_one(&body), hasher.hash_one(&alone));
        assert_eq!(hasher.hash_one(&body), hasher.hash_one(b"content".to_vec()));
        assert_ne!(body, Body::new(b"other".to_vec()).unwrap());
        assert_eq!(format!("{body:?}"), "\"content\"");
        assert_eq!(body.clone().into_buffer(), b"content");
        assert_eq!(body.clone().into_bytes(), b"content");
        assert_eq!(body.into_buffer(), b"headercontent");
        assert_eq!(Body::at(b"head".to_vec(), 9).unwrap().as_bytes(), b"");
        assert_eq!(
            Body::at(vec![0; MAX_BODY_LEN + 6], 6).map(|b| b.as_bytes().len()),
            Ok(MAX_BODY_LEN)
        );
        let over = WireError::BadLength { field: "body", len: MAX_BODY_LEN + 1 };
        assert_eq!(Body::at(vec![0; MAX_BODY_LEN + 6], 5), Err(over));
    }

    #[test]
    fn an_envelope_at_an_offset_is_its_bytes_alone() {
        let hasher = RandomState::new();
        let envelope = Envelope::at(b"headsealed!".to_vec(), 4).unwrap();
        let alone = Envelope::new(b"sealed!".to_vec()).unwrap();
        assert_eq!((envelope.as_bytes(), &envelope), (&b"sealed!"[..], &alone));
        assert_eq!(hasher.hash_one(&envelope), hasher.hash_one(&alone));
        assert_eq!(hasher.hash_one(&envelope), hasher.hash_one(b"sealed!".to_vec()));
        assert_ne!(envelope, Envelope::new(b"other".to_vec()).unwrap());
        assert_eq!(format!("{envelope:?}"), "Envelope(7 bytes)");
        assert_eq!(envelope.clone().into_parts(), (b"sealed!".to_vec(), 0));
        assert_eq!(envelope.clone().into_bytes(), b"sealed!");
        assert_eq!(envelope.into_parts(), (b"headsealed!".to_vec(), 4));
        let empty = WireError::BadLength { field: "envelope", len: 0 };
        assert_eq!(Envelope::at(b"head".to_vec(), 4), Err(empty));
        assert_eq!(Envelope::at(b"head".to_vec(), 9), Err(empty));
        let longest = Envelope::at(vec![0; MAX_ENVELOPE_LEN + 2], 2);
        assert_eq!(longest.map(|e| e.as_bytes().len()), Ok(MAX_ENVELOPE_LEN));
        let over = WireError::BadLength { field: "envelope", len: MAX_ENVELOPE_LEN + 1 };
        assert_eq!(Envelope::at(vec![0; MAX_ENVELOPE_LEN + 2], 1), Err(over));
    }
}
