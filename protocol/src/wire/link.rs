//! Link frames: what a router between a client and the server sees.

use super::{Codec, HEADER_LEN, Reader, WireError};

/// Largest link-frame body: the Noise maximum message length (Noise §3).
pub const MAX_LINK_BODY_LEN: usize = 65_535;

/// Largest link frame, header included. A stream reader never buffers more than this per frame.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_LINK_BODY_LEN;

/// Shortest Noise IK message 1: ephemeral (32) + encrypted static (32 + 16) + payload tag (16).
pub const HANDSHAKE_INIT_MIN_LEN: usize = 32 + 48 + 16;
/// Shortest Noise IK message 2: ephemeral (32) + payload tag (16).
pub const HANDSHAKE_RESP_MIN_LEN: usize = 32 + 16;
/// Shortest transport message: the AEAD tag.
pub const TRANSPORT_MIN_LEN: usize = 16;

const TYPE_HANDSHAKE_INIT: u8 = 0x01;
const TYPE_HANDSHAKE_RESP: u8 = 0x02;
const TYPE_TRANSPORT: u8 = 0x03;

/// The kind of a link frame, with its type code (SPEC.md §3.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LinkKind {
    /// `0x01`: Noise IK message 1, client → server.
    HandshakeInit,
    /// `0x02`: Noise IK message 2, server → client.
    HandshakeResp,
    /// `0x03`: a channel transport message, either direction.
    Transport,
}

impl LinkKind {
    /// The type byte.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::HandshakeInit => TYPE_HANDSHAKE_INIT,
            Self::HandshakeResp => TYPE_HANDSHAKE_RESP,
            Self::Transport => TYPE_TRANSPORT,
        }
    }

    /// The kind with type byte `code`, if any.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            TYPE_HANDSHAKE_INIT => Some(Self::HandshakeInit),
            TYPE_HANDSHAKE_RESP => Some(Self::HandshakeResp),
            TYPE_TRANSPORT => Some(Self::Transport),
            _ => None,
        }
    }

    /// The shortest body this kind allows: the fixed part of its Noise message.
    #[must_use]
    pub const fn min_len(self) -> usize {
        match self {
            Self::HandshakeInit => HANDSHAKE_INIT_MIN_LEN,
            Self::HandshakeResp => HANDSHAKE_RESP_MIN_LEN,
            Self::Transport => TRANSPORT_MIN_LEN,
        }
    }

    /// The name SPEC.md uses (for errors and transcripts).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::HandshakeInit => "HandshakeInit",
            Self::HandshakeResp => "HandshakeResp",
            Self::Transport => "Transport",
        }
    }
}

/// A frame on the link between a client and the server (SPEC.md §3.2): a kind and the Noise message
/// it carries. The fields are private so that every value satisfies its kind's length bounds, and so
/// encodes to bytes that decode back to it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LinkFrame {
    kind: LinkKind,
    noise: Vec<u8>,
}

impl LinkFrame {
    /// A frame of `kind` carrying `noise`.
    ///
    /// # Errors
    /// [`WireError::BadLength`] below the kind's [`LinkKind::min_len`]; [`WireError::Oversized`]
    /// above [`MAX_LINK_BODY_LEN`] (with `len` and `max` counted as whole frames, header included).
    pub fn new(kind: LinkKind, noise: Vec<u8>) -> Result<Self, WireError> {
        check_body(kind, noise.len())?;
        Ok(Self { kind, noise })
    }

    /// Decodes a link frame without copying it: its kind and its Noise message, borrowed from
    /// `bytes`. Accepts exactly what [`Codec::decode`] accepts, with the same errors in the same
    /// order; this is what a role does with every frame it receives.
    ///
    /// # Errors
    /// As [`Codec::decode`].
    pub fn parse(bytes: &[u8]) -> Result<(LinkKind, &[u8]), WireError> {
        let (frame_type, noise) = super::split::<Self>(bytes)?;
        let kind = LinkKind::from_code(frame_type).ok_or(WireError::UnknownType(frame_type))?;
        check_body(kind, noise.len())?;
        Ok((kind, noise))
    }

    /// A `HandshakeInit` frame; see [`LinkFrame::new`].
    ///
    /// # Errors
    /// As [`LinkFrame::new`].
    pub fn handshake_init(noise: Vec<u8>) -> Result<Self, WireError> {
        Self::new(LinkKind::HandshakeInit, noise)
    }

    /// A `HandshakeResp` frame; see [`LinkFrame::new`].
    ///
    /// # Errors
    /// As [`LinkFrame::new`].
    pub fn handshake_resp(noise: Vec<u8>) -> Result<Self, WireError> {
        Self::new(LinkKind::HandshakeResp, noise)
    }

    /// A `Transport` frame; see [`LinkFrame::new`].
    ///
    /// # Errors
    /// As [`LinkFrame::new`].
    pub fn transport(ciphertext: Vec<u8>) -> Result<Self, WireError> {
        Self::new(LinkKind::Transport, ciphertext)
    }

    /// The frame's kind.
    #[must_use]
    pub const fn kind(&self) -> LinkKind {
        self.kind
    }

    /// The frame type's name, as SPEC.md writes it (for errors and transcripts).
    #[must_use]
    pub const fn type_name(&self) -> &'static str {
        self.kind.name()
    }

    /// The Noise message inside.
    #[must_use]
    pub fn noise(&self) -> &[u8] {
        &self.noise
    }
}

impl Codec for LinkFrame {
    const MAX_FRAME_BODY_LEN: usize = MAX_LINK_BODY_LEN;

    fn frame_type(&self) -> u8 {
        self.kind.code()
    }

    fn is_known_type(frame_type: u8) -> bool {
        LinkKind::from_code(frame_type).is_some()
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.noise());
    }

    fn body_len_hint(&self) -> usize {
        self.noise.len()
    }

    fn decode_body(frame_type: u8, body: &mut Reader<'_>) -> Result<Self, WireError> {
        let kind = LinkKind::from_code(frame_type).ok_or(WireError::UnknownType(frame_type))?;
        Self::new(kind, body.rest().to_vec())
    }
}

/// The length bounds of a link frame's body: at least the fixed part of its kind's Noise message
/// ([`LinkKind::min_len`]), at most [`MAX_LINK_BODY_LEN`].
fn check_body(kind: LinkKind, len: usize) -> Result<(), WireError> {
    if len < kind.min_len() {
        let field = match kind {
            LinkKind::HandshakeInit => "handshake_init",
            LinkKind::HandshakeResp => "handshake_resp",
            LinkKind::Transport => "transport",
        };
        return Err(WireError::BadLength { field, len });
    }
    if len > MAX_LINK_BODY_LEN {
        return Err(WireError::Oversized { len: HEADER_LEN + len, max: MAX_FRAME_LEN });
    }
    Ok(())
}

/// Completes a `Transport` frame built in place: `frame` is [`HEADER_LEN`] bytes reserved for the
/// header, then the channel ciphertext. Writes the header.
///
/// # Errors
/// As [`LinkFrame::new`] for the ciphertext's length; `frame` is then unchanged.
pub(crate) fn finish_transport_frame(frame: &mut [u8]) -> Result<(), WireError> {
    check_body(LinkKind::Transport, frame.len().saturating_sub(HEADER_LEN))?;
    if let Some(header) = frame.get_mut(..2) {
        header.copy_from_slice(&[super::VERSION, TYPE_TRANSPORT]);
    }
    super::codec::set_body_len(frame);
    Ok(())
}
