//! The binary codec for every frame either protocol sends.
//!
//! Two families of frames share one header (SPEC.md §3):
//!
//! * [`LinkFrame`]s travel on the link between a client and the server, in the clear: the two
//!   Noise handshake messages and channel transport ciphertexts.
//! * [`Message`]s are the plaintexts: the handshake payloads and what travels inside the channel.
//!
//! ```text
//! +---------+--------+----------------------+-------------------+
//! | version | type   | body length (u32 BE) | body              |
//! | 1 byte  | 1 byte | 4 bytes              | body-length bytes |
//! +---------+--------+----------------------+-------------------+
//! ```
//!
//! Decoding is strict and total: the header is checked in a fixed order (length of input, version,
//! type, declared length against the family's limit, declared length against the input), then the
//! body's fields in order, each length prefix against its named maximum, and finally that nothing
//! is left over. Each failure is a distinct [`WireError`]. Every encoding is canonical — each value
//! has exactly one encoding — so `encode(decode(b)) == b` for every `b` that decodes.

mod bundle;
mod codec;
mod link;
mod message;
mod reader;
mod types;

pub use bundle::{
    Envelope, FetchedBundle, IdentityPublic, MAX_ENCODED_PREKEYS, MAX_ENVELOPE_LEN,
    OneTimePrekeyPublic, SignedPrekeyPublic, UploadedBundle,
};
pub use codec::{Codec, HEADER_LEN, VERSION, frame_len, split};
pub(crate) use link::finish_transport_frame;
pub use link::{
    HANDSHAKE_INIT_MIN_LEN, HANDSHAKE_RESP_MIN_LEN, LinkFrame, LinkKind, MAX_FRAME_LEN,
    MAX_LINK_BODY_LEN, TRANSPORT_MIN_LEN,
};
pub(crate) use message::RelayRequest;
pub use message::{
    AckStatus, BundleRefusal, MAX_MESSAGE_LEN, Message, RefusalReason, RejectReason,
};
pub use reader::Reader;
pub use types::{Body, MAX_BODY_LEN, MAX_NAME_LEN, MessageId, Name};

/// A frame could not be decoded. Each variant is one class of malformed input (SPEC.md §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended before the header, the declared body, or a field inside the body was complete.
    Truncated,
    /// The frame is longer than its family allows: either the input itself, or the frame its header
    /// declares (header + declared body length). Both numbers count whole frames, header included.
    Oversized {
        /// The frame length seen (the input's, or the one the header declares).
        len: usize,
        /// The family's maximum frame length.
        max: usize,
    },
    /// The version byte is not [`VERSION`].
    UnknownVersion(u8),
    /// The type byte names no frame of this family.
    UnknownType(u8),
    /// A length prefix, or a body whose length is fixed by its type, is outside the field's bounds.
    BadLength {
        /// Which field.
        field: &'static str,
        /// The length found.
        len: usize,
    },
    /// Bytes remain after the last field of the body, or after the frame.
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// A field holds a value outside its domain (an unknown enum code, a forbidden name character).
    InvalidValue {
        /// Which field.
        field: &'static str,
    },
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated frame"),
            Self::Oversized { len, max } => {
                write!(f, "oversized frame: {len} bytes, maximum {max}")
            }
            Self::UnknownVersion(v) => write!(f, "unknown version {v:#04x}"),
            Self::UnknownType(t) => write!(f, "unknown frame type {t:#04x}"),
            Self::BadLength { field, len } => write!(f, "bad length {len} for {field}"),
            Self::TrailingBytes { extra } => write!(f, "{extra} trailing bytes"),
            Self::InvalidValue { field } => write!(f, "invalid value for {field}"),
        }
    }
}

impl std::error::Error for WireError {}
