//! The persisted client state (SPEC.md §18): a versioned, canonical binary encoding of everything a
//! [`Client`](crate::roles::Client) must remember across a restart.
//!
//! ```text
//! +--------------------------+---------+----------------------+------+---------------------+
//! | "e2e-ref/client-state"   | version | body length (u32 BE) | body | SHA-256 of the rest |
//! | 20 bytes                 | 1 byte  | 4 bytes              |      | 32 bytes            |
//! +--------------------------+---------+----------------------+------+---------------------+
//! ```
//!
//! The body is the client's name, channel static key, the server's key, the last message id, the
//! hop replay windows, and — for an e2e client — its whole [`Peers`](crate::e2e::peers::Peers):
//! identity, prekeys, sessions with their ratchets and skipped keys, archived sessions, retired
//! base keys, pinned identities and the messages waiting for a bundle. Each type writes and reads
//! its own part next to its definition (`write_state` / `read_state`); this module holds the
//! framing, the limits, the error and the helpers they share.
//!
//! What is *not* in it: the channel (a restored client is offline and reconnects with a fresh
//! handshake), and anything derivable — public keys (from private keys), signatures over signed
//! prekeys and the identity binding (Ed25519 is deterministic), the prekey header an unanswered
//! initiator repeats except its prekey ids.
//!
//! # Integrity
//!
//! No key is available before the file is read, so the file cannot be authenticated: it is
//! protected by the operating system (mode `0600`, SPEC.md §2.3), like any private key file. The
//! trailing SHA-256 is a checksum, not a MAC: it turns accidental corruption — a flipped bit in a
//! chain key would otherwise restore a session that silently fails — into
//! [`StateError::ChecksumMismatch`]. Truncation is caught twice: by the declared body length, and
//! by the checksum. That nothing half-written is ever read back is the writer's job (write a
//! temporary file, `fsync`, rename over the old one, `fsync` the directory).
//!
//! # Parsing
//!
//! Strict, total and canonical, as the wire codec (SPEC.md §3.4): checks in a fixed order, each
//! length and count against a named maximum, every map in strictly ascending key order, flags only
//! `0x00` or `0x01`, no trailing bytes; then the consistency of what was read (ids below the id
//! counter, one identity per peer, the skipped-key bounds, …). Every state a `Client` reaches
//! through its own methods encodes within [`MAX_STATE_LEN`](crate::roles::MAX_STATE_LEN) and restores, and every encoding that
//! restores re-encodes to the same bytes. (A [`Peers`](crate::e2e::peers::Peers) driven on its own
//! under another name than the client's it is later given to holds sessions whose `AD` names
//! someone else: its state is refused as [`StateError::Inconsistent`], which it is.)
//!
//! # Write before you send
//!
//! A driver MUST persist the state after every call that changed it **before** it transmits the
//! frames or shows the events that call returned. Otherwise a crash after sending restores a
//! ratchet that already used a message key, and the next message reuses that key and nonce with
//! another plaintext (SPEC.md §18.5).
//!
//! The library does no file I/O. This is the write a driver does (SPEC.md §2.3, §18.5) — a
//! temporary file in the same directory, created `0600`, written in full and flushed to disk, then
//! renamed over the state file, then the directory flushed so that the rename is durable:
//!
//! ```
//! use std::fs::{self, File, OpenOptions};
//! use std::io::{self, Write};
//! use std::path::Path;
//!
//! /// Replaces the state file at `path` with `bytes`: a crash leaves the old state or the new one.
//! fn save(path: &Path, bytes: &[u8]) -> io::Result<()> {
//!     let dir = path.parent().unwrap_or(Path::new("."));
//!     let tmp = path.with_extension("tmp");
//!     // A leftover from a crash mid-write was never renamed, so it was never the state: remove
//!     // it, so that the file is created here, with the mode below, and by nobody else.
//!     match fs::remove_file(&tmp) {
//!         Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
//!         _ => {}
//!     }
//!     let mut options = OpenOptions::new();
//!     options.write(true).create_new(true);
//!     #[cfg(unix)]
//!     std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600); // never readable by others
//!     let mut file = options.open(&tmp)?;
//!     file.write_all(bytes)?;
//!     file.sync_all()?; // the bytes are on disk before the name points at them
//!     drop(file);
//!     fs::rename(&tmp, path)?; // atomic: readers see the old file or the new one
//!     #[cfg(unix)]
//!     File::open(dir)?.sync_all()?; // the rename itself is durable
//!     Ok(())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use e2e_protocol::{roles::Client, suite::PrivateKey, wire::Name};
//! # let server_key = PrivateKey::from_bytes([7; 32]).public_key();
//! # let client = Client::new(Name::new("alice")?, PrivateKey::from_bytes([1; 32]), server_key);
//! # let dir = std::env::temp_dir().join(format!("e2e-ref-state-doc-{}", std::process::id()));
//! # fs::create_dir_all(&dir)?;
//! let path = dir.join("alice.state");
//! save(&path, client.export_state().as_bytes())?;
//! let restored = Client::restore_state(&fs::read(&path)?)?;
//! assert_eq!(restored, client);
//! # fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Example
//!
//! A round trip: the restored client is the exported one, offline, and exports the same bytes.
//!
//! ```
//! use e2e_protocol::roles::Client;
//! use e2e_protocol::suite::PrivateKey;
//! use e2e_protocol::wire::Name;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server_key = PrivateKey::from_bytes([7; 32]).public_key();
//! let alice = Client::new(Name::new("alice")?, PrivateKey::from_bytes([1; 32]), server_key);
//! let bytes = alice.export_state();
//! // A driver now saves `bytes.as_bytes()` as above.
//! let restored = Client::restore_state(bytes.as_bytes())?;
//! assert_eq!(restored, alice);
//! assert_eq!(restored.export_state().as_bytes(), bytes.as_bytes());
//! # Ok(())
//! # }
//! ```

use core::fmt;

use zeroize::Zeroize;

use crate::suite::{DH_LEN, HASH_LEN, PrivateKey, PublicKey, sha256};
use crate::wire::{IdentityPublic, Name, Reader, WireError};

/// The 20 ASCII bytes every state file starts with.
pub const STATE_MAGIC: &[u8; 20] = b"e2e-ref/client-state";

/// The only state format version this implementation writes and reads.
pub const STATE_VERSION: u8 = 0x01;

/// Bytes before the body: magic, version, body length.
pub const STATE_HEADER_LEN: usize = STATE_MAGIC.len() + 1 + 4;

/// Bytes after the body: the SHA-256 checksum.
pub const STATE_CHECKSUM_LEN: usize = HASH_LEN;

/// A state file could not be restored. Each variant is one class of bad input; nothing about a
/// file is ever half restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateError {
    /// The input ended before the header, the declared body or a field was complete.
    Truncated,
    /// The input, or the file its header declares, is longer than [`MAX_STATE_LEN`](crate::roles::MAX_STATE_LEN).
    Oversized {
        /// The length seen (the input's, or the one the header declares).
        len: usize,
        /// [`MAX_STATE_LEN`](crate::roles::MAX_STATE_LEN).
        max: usize,
    },
    /// The input does not start with [`STATE_MAGIC`]: not a state file.
    BadMagic,
    /// The version byte is not [`STATE_VERSION`].
    UnknownVersion(u8),
    /// The SHA-256 at the end is not the hash of what precedes it: the file was altered or damaged.
    ChecksumMismatch,
    /// A length or count is outside its field's bounds.
    BadLength {
        /// Which field.
        field: &'static str,
        /// The length found.
        len: usize,
    },
    /// A field holds a value outside its domain (a flag other than 0 or 1, a bad name, keys out of
    /// order or repeated).
    InvalidValue {
        /// Which field.
        field: &'static str,
    },
    /// A public key no honest state holds: of small order, or not a valid Ed25519 key.
    InvalidKey {
        /// Which field.
        field: &'static str,
    },
    /// The fields parse, but together describe no state the client could have reached (an id above
    /// the id counter, two identities for one peer, more skipped keys than the bounds allow, an
    /// `AD` that is not the one of the session's parties, …).
    Inconsistent {
        /// What does not fit.
        what: &'static str,
    },
    /// Bytes remain after the body's last field, or after the checksum.
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

impl From<WireError> for StateError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated => Self::Truncated,
            WireError::Oversized { len, max } => Self::Oversized { len, max },
            WireError::BadLength { field, len } => Self::BadLength { field, len },
            WireError::TrailingBytes { extra } => Self::TrailingBytes { extra },
            WireError::InvalidValue { field } => Self::InvalidValue { field },
            // The state codec reads no frame header, so these two cannot arise; the mapping is
            // total all the same.
            WireError::UnknownVersion(v) => Self::UnknownVersion(v),
            WireError::UnknownType(_) => Self::InvalidValue { field: "frame type" },
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated state"),
            Self::Oversized { len, max } => write!(f, "state of {len} bytes, maximum {max}"),
            Self::BadMagic => f.write_str("not an e2e-ref client state"),
            Self::UnknownVersion(v) => write!(f, "unknown state version {v:#04x}"),
            Self::ChecksumMismatch => f.write_str("state checksum mismatch: altered or damaged"),
            Self::BadLength { field, len } => write!(f, "bad length {len} for {field}"),
            Self::InvalidValue { field } => write!(f, "invalid value for {field}"),
            Self::InvalidKey { field } => write!(f, "invalid key for {field}"),
            Self::Inconsistent { what } => write!(f, "inconsistent state: {what}"),
            Self::TrailingBytes { extra } => write!(f, "{extra} trailing bytes"),
        }
    }
}

impl std::error::Error for StateError {}

/// An encoded client state. It holds private keys: the buffer is erased when dropped, `Debug`
/// prints only its length, and it is not `Clone` (every copy is one more place to erase).
pub struct StateBytes(Vec<u8>);

impl StateBytes {
    /// The bytes to write to the state file (and nowhere else).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a state has at least a header and a checksum.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for StateBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for StateBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateBytes([redacted], {} bytes)", self.0.len())
    }
}

/// Appends a state's fields to a buffer that never leaves a copy of a secret behind: when it must
/// grow, it moves to a larger buffer and erases the old one (a plain `Vec` frees it as it was).
pub(crate) struct StateWriter {
    buf: Vec<u8>,
}

impl StateWriter {
    fn new() -> Self {
        Self { buf: Vec::with_capacity(4096) }
    }

    fn reserve(&mut self, more: usize) {
        let needed = self.buf.len().saturating_add(more);
        if needed <= self.buf.capacity() {
            return;
        }
        let mut grown = Vec::with_capacity(needed.max(self.buf.capacity().saturating_mul(2)));
        grown.extend_from_slice(&self.buf);
        // Erases the whole allocation, spare capacity included, before it is freed.
        self.buf.zeroize();
        self.buf = grown;
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }

    /// A count, which the caller's bounds keep far below `2^16`.
    pub(crate) fn count(&mut self, n: usize) {
        self.u16(u16::try_from(n).unwrap_or(u16::MAX));
    }

    /// A count of at most 255 (archived sessions, retired base keys, pending messages, `AD`).
    pub(crate) fn small_count(&mut self, n: usize) {
        self.u8(u8::try_from(n).unwrap_or(u8::MAX));
    }

    pub(crate) fn flag(&mut self, set: bool) {
        self.u8(u8::from(set));
    }

    pub(crate) fn name(&mut self, name: &Name) {
        let mut encoded = Vec::with_capacity(1 + crate::wire::MAX_NAME_LEN);
        name.encode(&mut encoded);
        self.bytes(&encoded);
    }

    pub(crate) fn identity(&mut self, identity: &IdentityPublic) {
        self.bytes(&identity.to_bytes());
    }

    pub(crate) fn public_key(&mut self, key: &PublicKey) {
        self.bytes(key.as_bytes());
    }

    pub(crate) fn private_key(&mut self, key: &PrivateKey) {
        self.bytes(key.expose());
    }

    /// The finished file: header, body, checksum.
    fn seal(body: Self) -> StateBytes {
        let mut out = Self { buf: Vec::with_capacity(STATE_HEADER_LEN + body.buf.len() + 32) };
        out.bytes(STATE_MAGIC);
        out.u8(STATE_VERSION);
        // Every part is bounded so that the body stays within roles::MAX_STATE_BODY_LEN < 2^32.
        out.u32(u32::try_from(body.buf.len()).unwrap_or(u32::MAX));
        out.bytes(&body.buf);
        let checksum = sha256(&[&out.buf]);
        out.bytes(&checksum);
        StateBytes(core::mem::take(&mut out.buf))
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// Encodes a state whose body `write` appends.
pub(crate) fn export(write: impl FnOnce(&mut StateWriter)) -> StateBytes {
    let mut body = StateWriter::new();
    write(&mut body);
    StateWriter::seal(body)
}

/// Checks the framing of `bytes` in order — length (a body of at most `max_body_len` bytes, the
/// caller's bound: [`crate::roles::MAX_STATE_BODY_LEN`] for a client), magic, version, declared
/// length, exact length, checksum — and hands the body to `read`, which must consume all of it.
///
/// # Errors
/// The first check that fails, or `read`'s error, or [`StateError::TrailingBytes`].
pub(crate) fn restore<T>(
    bytes: &[u8],
    max_body_len: usize,
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, StateError>,
) -> Result<T, StateError> {
    let max_len = STATE_HEADER_LEN + max_body_len + STATE_CHECKSUM_LEN;
    if bytes.len() > max_len {
        return Err(StateError::Oversized { len: bytes.len(), max: max_len });
    }
    let mut r = Reader::new(bytes);
    let magic = r.take(STATE_MAGIC.len().min(bytes.len()))?;
    if magic != STATE_MAGIC.get(..magic.len()).unwrap_or_default() {
        return Err(StateError::BadMagic);
    }
    if magic.len() < STATE_MAGIC.len() {
        return Err(StateError::Truncated);
    }
    let version = r.u8()?;
    if version != STATE_VERSION {
        return Err(StateError::UnknownVersion(version));
    }
    let declared = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    if declared > max_body_len {
        let len = STATE_HEADER_LEN.saturating_add(declared).saturating_add(STATE_CHECKSUM_LEN);
        return Err(StateError::Oversized { len, max: max_len });
    }
    let body = r.take(declared)?;
    let checksum: [u8; STATE_CHECKSUM_LEN] = r.array()?;
    r.finish()?;
    let covered = bytes.get(..STATE_HEADER_LEN + declared).unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&sha256(&[covered])[..], &checksum[..])) {
        return Err(StateError::ChecksumMismatch);
    }
    let mut body = Reader::new(body);
    let value = read(&mut body)?;
    body.finish()?;
    Ok(value)
}

/// Reads a flag: `0x00` absent, `0x01` present.
pub(crate) fn read_flag(r: &mut Reader<'_>, field: &'static str) -> Result<bool, StateError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(StateError::InvalidValue { field }),
    }
}

/// Reads a `u16` count and checks it against `max` before anything it counts is read.
pub(crate) fn read_count(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
) -> Result<usize, StateError> {
    let n = usize::from(r.u16()?);
    if n > max {
        return Err(StateError::BadLength { field, len: n });
    }
    Ok(n)
}

/// Reads a `u8` count and checks it against `max`.
pub(crate) fn read_small_count(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
) -> Result<usize, StateError> {
    let n = usize::from(r.u8()?);
    if n > max {
        return Err(StateError::BadLength { field, len: n });
    }
    Ok(n)
}

/// Reads a name.
pub(crate) fn read_name(r: &mut Reader<'_>) -> Result<Name, StateError> {
    Ok(Name::read(r)?)
}

/// Reads a name that must sort after `previous` (maps are written in ascending key order, so each
/// has one encoding).
pub(crate) fn read_next_name(
    r: &mut Reader<'_>,
    previous: Option<&Name>,
    field: &'static str,
) -> Result<Name, StateError> {
    let name = read_name(r)?;
    if previous.is_some_and(|p| *p >= name) {
        return Err(StateError::InvalidValue { field });
    }
    Ok(name)
}

/// Reads 32 private bytes into a key, erasing the stack copy.
pub(crate) fn read_private_key(r: &mut Reader<'_>) -> Result<PrivateKey, StateError> {
    let mut bytes: [u8; DH_LEN] = r.array()?;
    let key = PrivateKey::from_bytes(bytes);
    bytes.zeroize();
    Ok(key)
}

/// Reads 32 secret bytes (a root, chain or message key), for `wrap`, erasing the stack copy.
pub(crate) fn read_secret<T>(
    r: &mut Reader<'_>,
    wrap: impl FnOnce(crate::suite::Secret<HASH_LEN>) -> T,
) -> Result<T, StateError> {
    let mut bytes: [u8; HASH_LEN] = r.array()?;
    let value = wrap(crate::suite::Secret::new(bytes));
    bytes.zeroize();
    Ok(value)
}

/// Reads an X25519 public key that an honest state only holds if a Diffie-Hellman with it was
/// contributory, or that a bundle's validation admitted: not of small order (SPEC.md §2.1).
pub(crate) fn read_public_key(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<PublicKey, StateError> {
    let key = PublicKey::from_bytes(r.array()?);
    if key.is_low_order() {
        return Err(StateError::InvalidKey { field });
    }
    Ok(key)
}

/// Reads a peer identity that a bundle's or a prekey message's validation admitted (SPEC.md
/// §10.3 steps 1–2): a valid Ed25519 key and an X25519 key not of small order.
pub(crate) fn read_valid_identity(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<IdentityPublic, StateError> {
    let identity = IdentityPublic::read(r)?;
    if identity.dh.is_low_order() || identity.sign.check().is_err() {
        return Err(StateError::InvalidKey { field });
    }
    Ok(identity)
}

/// Reads an identity as given (a pinned one: the user's statement, whatever it is).
pub(crate) fn read_identity(r: &mut Reader<'_>) -> Result<IdentityPublic, StateError> {
    Ok(IdentityPublic::read(r)?)
}

/// Fails with [`StateError::Inconsistent`] unless `holds`.
pub(crate) const fn ensure(holds: bool, what: &'static str) -> Result<(), StateError> {
    if holds { Ok(()) } else { Err(StateError::Inconsistent { what }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_what_the_spec_says() {
        assert_eq!(STATE_HEADER_LEN, 25);
        assert_eq!(STATE_CHECKSUM_LEN, 32);
    }

    #[test]
    fn framing_checks_run_in_order() {
        let sealed = export(|w| w.u8(7));
        let ok = |b: &[u8]| restore(b, 1000, |r| Ok(r.u8()?));
        assert_eq!(ok(sealed.as_bytes()), Ok(7));
        assert_eq!(ok(b""), Err(StateError::Truncated));
        assert_eq!(ok(b"e2e-ref/"), Err(StateError::Truncated));
        assert_eq!(ok(b"e2e-ref/x"), Err(StateError::BadMagic));
        let mut bytes = sealed.as_bytes().to_vec();
        bytes[20] = 2;
        assert_eq!(ok(&bytes), Err(StateError::UnknownVersion(2)));
        bytes[20] = 1;
        bytes[21] = 0xff;
        assert!(matches!(ok(&bytes), Err(StateError::Oversized { .. })));
        bytes[21] = 0;
        bytes.push(0);
        assert_eq!(ok(&bytes), Err(StateError::TrailingBytes { extra: 1 }));
        bytes.pop();
        bytes[25] = 8;
        assert_eq!(ok(&bytes), Err(StateError::ChecksumMismatch));
        // A body the reader leaves unread is trailing bytes.
        assert_eq!(
            restore(sealed.as_bytes(), 1000, |_| Ok(())),
            Err(StateError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn the_callers_bound_is_checked_before_anything_is_read() {
        let sealed = export(|w| w.bytes(&[7; 10]));
        let len = sealed.as_bytes().len();
        assert_eq!(restore(sealed.as_bytes(), 10, |r| Ok(r.take(10)?.len())), Ok(10));
        let max = STATE_HEADER_LEN + 9 + STATE_CHECKSUM_LEN;
        assert_eq!(
            restore(sealed.as_bytes(), 9, |_| Ok(())),
            Err(StateError::Oversized { len, max })
        );
    }

    #[test]
    fn debug_shows_only_the_length() {
        let sealed = export(|w| w.bytes(&[0x41; 40]));
        assert_eq!(
            format!("{sealed:?}"),
            format!("StateBytes([redacted], {} bytes)", sealed.len())
        );
    }

    #[test]
    fn the_writer_grows_without_losing_bytes() {
        let mut w = StateWriter::new();
        let chunk: Vec<u8> = (0..=255).collect();
        for _ in 0..100 {
            w.bytes(&chunk);
        }
        assert_eq!(w.buf.len(), 25_600);
        assert!(w.buf.chunks(256).all(|c| c == chunk.as_slice()));
    }
}
