//! Messages: the plaintexts carried in the handshake payloads and inside the channel.

use super::{Body, Codec, HEADER_LEN, MAX_LINK_BODY_LEN, MessageId, Name, Reader, WireError};

/// Largest message body: a whole message (header + body) must fit in one channel transport
/// message, whose plaintext is at most 65 535 − 16 (tag) bytes.
pub const MAX_MESSAGE_LEN: usize = MAX_LINK_BODY_LEN - 16 - HEADER_LEN;

const TYPE_REGISTER: u8 = 0x10;
const TYPE_WELCOME: u8 = 0x11;
const TYPE_REFUSED: u8 = 0x12;
const TYPE_SEND: u8 = 0x20;
const TYPE_DELIVER: u8 = 0x21;
const TYPE_ACK: u8 = 0x22;
const TYPE_REJECT: u8 = 0x23;

/// Why the server refused a registration (the payload of handshake message 2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RefusalReason {
    /// `0x01`: the name is bound to a different client static key.
    NameTaken,
    /// `0x02`: handshake message 1 did not carry a [`Message::Register`].
    NotARegistration,
}

/// What the server did with a message it accepted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AckStatus {
    /// `0x01`: handed to the recipient's open channel.
    Relayed,
    /// `0x02`: the recipient is offline; queued in its mailbox, delivered when it connects.
    Queued,
}

/// Why the server did not take a message. The sender learns this much and no more.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RejectReason {
    /// `0x01`: the server's content policy refused the plaintext (hop only).
    Policy,
    /// `0x02`: the recipient's mailbox holds its maximum of queued messages.
    MailboxFull,
    /// `0x03`: no client has ever registered the recipient's name.
    UnknownRecipient,
}

macro_rules! byte_enum {
    ($ty:ident, $field:literal, { $($variant:ident = $code:literal),+ $(,)? }) => {
        impl $ty {
            /// The wire code.
            #[must_use]
            pub const fn code(self) -> u8 {
                match self { $(Self::$variant => $code),+ }
            }

            fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
                match r.u8()? {
                    $($code => Ok(Self::$variant),)+
                    _ => Err(WireError::InvalidValue { field: $field }),
                }
            }
        }
    };
}

byte_enum!(RefusalReason, "refusal_reason", { NameTaken = 0x01, NotARegistration = 0x02 });
byte_enum!(AckStatus, "ack_status", { Relayed = 0x01, Queued = 0x02 });
byte_enum!(RejectReason, "reject_reason", { Policy = 0x01, MailboxFull = 0x02, UnknownRecipient = 0x03 });

/// A plaintext message (SPEC.md §3.3).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Message {
    /// `0x10`, client → server, payload of handshake message 1: bind this channel (and the client's
    /// Noise static key) to `name`.
    Register {
        /// The name to register.
        name: Name,
    },
    /// `0x11`, server → client, payload of handshake message 2: registration accepted.
    Welcome {
        /// The name now bound to the channel.
        name: Name,
    },
    /// `0x12`, server → client, payload of handshake message 2: registration refused; the server
    /// closes the link after sending it.
    Refused {
        /// Why.
        reason: RefusalReason,
    },
    /// `0x20`, client → server: relay `body` to `to`.
    Send {
        /// The sender's id for this message.
        id: MessageId,
        /// The recipient.
        to: Name,
        /// The content (hop: the plaintext).
        body: Body,
    },
    /// `0x21`, server → client: a message from `from`.
    Deliver {
        /// The sender's id for this message.
        id: MessageId,
        /// The sender, as authenticated by the server.
        from: Name,
        /// The content.
        body: Body,
    },
    /// `0x22`, server → sender: message `id` was accepted.
    Ack {
        /// The sender's id.
        id: MessageId,
        /// What the server did with it.
        status: AckStatus,
    },
    /// `0x23`, server → sender: message `id` was not accepted.
    Reject {
        /// The sender's id.
        id: MessageId,
        /// Why.
        reason: RejectReason,
    },
}

impl Message {
    /// The frame type's name, as SPEC.md writes it (for errors and transcripts).
    #[must_use]
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::Register { .. } => "Register",
            Self::Welcome { .. } => "Welcome",
            Self::Refused { .. } => "Refused",
            Self::Send { .. } => "Send",
            Self::Deliver { .. } => "Deliver",
            Self::Ack { .. } => "Ack",
            Self::Reject { .. } => "Reject",
        }
    }
}

impl Codec for Message {
    const MAX_FRAME_BODY_LEN: usize = MAX_MESSAGE_LEN;

    fn frame_type(&self) -> u8 {
        match self {
            Self::Register { .. } => TYPE_REGISTER,
            Self::Welcome { .. } => TYPE_WELCOME,
            Self::Refused { .. } => TYPE_REFUSED,
            Self::Send { .. } => TYPE_SEND,
            Self::Deliver { .. } => TYPE_DELIVER,
            Self::Ack { .. } => TYPE_ACK,
            Self::Reject { .. } => TYPE_REJECT,
        }
    }

    fn is_known_type(frame_type: u8) -> bool {
        matches!(
            frame_type,
            TYPE_REGISTER
                | TYPE_WELCOME
                | TYPE_REFUSED
                | TYPE_SEND
                | TYPE_DELIVER
                | TYPE_ACK
                | TYPE_REJECT
        )
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Self::Register { name } | Self::Welcome { name } => name.encode(out),
            Self::Refused { reason } => out.push(reason.code()),
            Self::Send { id, to: name, body } | Self::Deliver { id, from: name, body } => {
                out.extend_from_slice(&id.0.to_be_bytes());
                name.encode(out);
                body.encode(out);
            }
            Self::Ack { id, status } => {
                out.extend_from_slice(&id.0.to_be_bytes());
                out.push(status.code());
            }
            Self::Reject { id, reason } => {
                out.extend_from_slice(&id.0.to_be_bytes());
                out.push(reason.code());
            }
        }
    }

    fn decode_body(frame_type: u8, r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match frame_type {
            TYPE_REGISTER => Self::Register { name: Name::read(r)? },
            TYPE_WELCOME => Self::Welcome { name: Name::read(r)? },
            TYPE_REFUSED => Self::Refused { reason: RefusalReason::read(r)? },
            TYPE_SEND => {
                Self::Send { id: MessageId(r.u64()?), to: Name::read(r)?, body: Body::read(r)? }
            }
            TYPE_DELIVER => Self::Deliver {
                id: MessageId(r.u64()?),
                from: Name::read(r)?,
                body: Body::read(r)?,
            },
            TYPE_ACK => Self::Ack { id: MessageId(r.u64()?), status: AckStatus::read(r)? },
            TYPE_REJECT => Self::Reject { id: MessageId(r.u64()?), reason: RejectReason::read(r)? },
            other => return Err(WireError::UnknownType(other)),
        })
    }
}
