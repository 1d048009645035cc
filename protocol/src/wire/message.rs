//! Messages: the plaintexts carried in the handshake payloads and inside the channel.

use super::codec::{decode_split, write_body_len};
use super::{
    Body, Codec, Envelope, FetchedBundle, HEADER_LEN, MAX_LINK_BODY_LEN, MAX_NAME_LEN, MessageId,
    Name, Reader, UploadedBundle, VERSION, WireError, split,
};

/// Largest message body: a whole message (header + body) must fit in one channel transport
/// message, whose plaintext is at most 65 535 − 16 (tag) bytes.
pub const MAX_MESSAGE_LEN: usize = MAX_LINK_BODY_LEN - 16 - HEADER_LEN;

const TYPE_REGISTER: u8 = 0x10;
const TYPE_WELCOME: u8 = 0x11;
const TYPE_REFUSED: u8 = 0x12;
const TYPE_READY: u8 = 0x13;
const TYPE_SEND: u8 = 0x20;
const TYPE_DELIVER: u8 = 0x21;
const TYPE_ACK: u8 = 0x22;
const TYPE_REJECT: u8 = 0x23;
const TYPE_UPLOAD_BUNDLE: u8 = 0x30;
const TYPE_BUNDLE_STORED: u8 = 0x31;
const TYPE_BUNDLE_REFUSED: u8 = 0x32;
const TYPE_FETCH_BUNDLE: u8 = 0x33;
const TYPE_BUNDLE: u8 = 0x34;
const TYPE_NO_BUNDLE: u8 = 0x35;
const TYPE_E2E_SEND: u8 = 0x36;
const TYPE_E2E_DELIVER: u8 = 0x37;
const TYPE_PREKEYS_LOW: u8 = 0x38;

/// Why the server refused a registration (the payload of handshake message 2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RefusalReason {
    /// `0x01`: the name is bound to a different client static key.
    NameTaken,
    /// `0x02`: handshake message 1 did not carry a [`Message::Register`].
    NotARegistration,
    /// `0x03`: the client's static key is already bound to another name: one key, one name
    /// (SPEC.md §5.1), so one client cannot hold many throw-away names.
    KeyInUse,
    /// `0x04`: the server holds `MAX_ACCOUNTS` names and binds no new one (SPEC.md §8).
    ServerFull,
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
    /// `0x04`: the server's mailboxes together hold `MAX_QUEUED_BYTES` (SPEC.md §5.4, §8).
    ServerFull,
}

/// Why the server refused an uploaded bundle (SPEC.md §10.3, §15.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BundleRefusal {
    /// `0x01`: `IK_sig` is not a valid Ed25519 point, or has small order.
    BadSigningKey,
    /// `0x02`: an X25519 key of the bundle has small order.
    LowOrderKey,
    /// `0x03`: the signed prekey's signature does not verify.
    BadSignature,
    /// `0x04`: more one-time prekeys than the protocol allows.
    TooManyPrekeys,
    /// `0x05`: a prekey id is used twice.
    DuplicatePrekeyId,
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

byte_enum!(RefusalReason, "refusal_reason", {
    NameTaken = 0x01, NotARegistration = 0x02, KeyInUse = 0x03, ServerFull = 0x04,
});
byte_enum!(AckStatus, "ack_status", { Relayed = 0x01, Queued = 0x02 });
byte_enum!(RejectReason, "reject_reason", {
    Policy = 0x01, MailboxFull = 0x02, UnknownRecipient = 0x03, ServerFull = 0x04,
});
byte_enum!(BundleRefusal, "bundle_refusal", {
    BadSigningKey = 0x01, LowOrderKey = 0x02, BadSignature = 0x03, TooManyPrekeys = 0x04,
    DuplicatePrekeyId = 0x05,
});

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
    /// `0x13`, client → server, the client's first transport message: proves the client holds the
    /// handshake's ephemeral key (a replayed handshake message 1 cannot produce it), so the server
    /// may now make this the name's active link (SPEC.md §5.1). No fields.
    Ready,
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
    /// `0x30`, client → server: publish (or replenish, or rotate) the client's prekey bundle.
    UploadBundle {
        /// The bundle.
        bundle: UploadedBundle,
    },
    /// `0x31`, server → client: the upload was stored.
    BundleStored {
        /// How many one-time prekeys the server now holds for the client.
        one_time_prekeys: u16,
    },
    /// `0x32`, server → client: the upload was refused; nothing changed.
    BundleRefused {
        /// Why.
        reason: BundleRefusal,
    },
    /// `0x33`, client → server: ask for `name`'s bundle.
    FetchBundle {
        /// Whose bundle.
        name: Name,
    },
    /// `0x34`, server → client: `name`'s bundle, with at most one one-time prekey.
    Bundle {
        /// Whose bundle.
        name: Name,
        /// The bundle.
        bundle: FetchedBundle,
    },
    /// `0x35`, server → client: `name` has published no bundle.
    NoBundle {
        /// Whose bundle was asked for.
        name: Name,
    },
    /// `0x36`, client → server: relay an e2e envelope to `to`.
    E2eSend {
        /// The sender's id for this message.
        id: MessageId,
        /// The recipient.
        to: Name,
        /// What the server relays and cannot open.
        envelope: Envelope,
    },
    /// `0x37`, server → client: an e2e envelope from `from`.
    E2eDeliver {
        /// The sender's id for this message.
        id: MessageId,
        /// The sender, as authenticated by the server.
        from: Name,
        /// The envelope.
        envelope: Envelope,
    },
    /// `0x38`, server → client: a fetch has left the server holding few of this client's one-time
    /// prekeys (SPEC.md §15.2); the client replenishes them (§15.3).
    PrekeysLow {
        /// How many one-time prekeys the server still holds for the client.
        one_time_prekeys: u16,
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
            Self::Ready => "Ready",
            Self::Send { .. } => "Send",
            Self::Deliver { .. } => "Deliver",
            Self::Ack { .. } => "Ack",
            Self::Reject { .. } => "Reject",
            Self::UploadBundle { .. } => "UploadBundle",
            Self::BundleStored { .. } => "BundleStored",
            Self::BundleRefused { .. } => "BundleRefused",
            Self::FetchBundle { .. } => "FetchBundle",
            Self::Bundle { .. } => "Bundle",
            Self::NoBundle { .. } => "NoBundle",
            Self::E2eSend { .. } => "E2eSend",
            Self::E2eDeliver { .. } => "E2eDeliver",
            Self::PrekeysLow { .. } => "PrekeysLow",
        }
    }

    /// [`Codec::decode`] of a buffer the caller gives up: the same checks in the same order, the
    /// same errors, the same value. What differs is where the content lives: the body of a `Send`
    /// or `Deliver`, the envelope of an `E2eSend` or `E2eDeliver` — the last field of each — stays
    /// where it is in `bytes`, the buffer's tail ([`Body`] and [`Envelope`] can start at an
    /// offset), instead of going to a new allocation or being moved. A receiver decrypts a channel
    /// frame into a buffer of its own; this is how that buffer becomes the message's body.
    ///
    /// # Errors
    /// As [`Codec::decode`].
    pub fn decode_owned(bytes: Vec<u8>) -> Result<Self, WireError> {
        let (frame_type, body) = split::<Self>(&bytes)?;
        if !carries_content(frame_type) {
            return decode_split(frame_type, body);
        }
        let mut r = Reader::new(body);
        let (id, name, content) = read_relay(frame_type, &mut r)?;
        r.finish()?;
        // The content is the frame's last field and nothing follows it: it is the buffer's tail.
        let content_start = bytes.len().saturating_sub(content.len());
        relay_message(frame_type, id, name, bytes, content_start)
    }

    /// Whether `bytes` is (at most) the start of a relay message (`Send`, `Deliver`, `E2eSend`,
    /// `E2eDeliver`): one whose content [`Message::decode_owned`] keeps in the buffer, where
    /// every other type is decoded from a borrowed buffer without keeping it.
    pub(crate) fn carries_content(bytes: &[u8]) -> bool {
        bytes.get(1).copied().is_some_and(carries_content)
    }

    /// A `Send` or `E2eSend` decoded with its content borrowed from `bytes`: the server's relay
    /// path, which seals the content into the recipient's frame and keeps nothing of it. `None`
    /// for any other valid message, which the caller decodes as a [`Message`].
    ///
    /// # Errors
    /// As [`Codec::decode`]: the same checks in the same order.
    pub(crate) fn decode_relay_request(
        bytes: &[u8],
    ) -> Result<Option<RelayRequest<'_>>, WireError> {
        let (frame_type, body) = split::<Self>(bytes)?;
        let e2e = match frame_type {
            TYPE_SEND => false,
            TYPE_E2E_SEND => true,
            _ => return Ok(None),
        };
        let mut r = Reader::new(body);
        let (id, to, content) = read_relay(frame_type, &mut r)?;
        r.finish()?;
        Ok(Some(RelayRequest { e2e, id, to, content }))
    }

    /// Appends the frame the server relays `content` in — `E2eDeliver` if `e2e`, else
    /// `Deliver` — from `from`, without a [`Body`] or [`Envelope`] to own the content: the
    /// bytes [`Codec::encode_into`] appends for that message.
    pub(crate) fn encode_delivery(
        out: &mut Vec<u8>,
        e2e: bool,
        id: MessageId,
        from: &Name,
        content: &[u8],
    ) {
        let frame_type = if e2e { TYPE_E2E_DELIVER } else { TYPE_DELIVER };
        encode_relay(out, frame_type, id, from, content);
    }

    /// Appends `Send { id, to, body }` for a body the caller keeps: the bytes
    /// [`Codec::encode_into`] appends for that message.
    pub(crate) fn encode_send(out: &mut Vec<u8>, id: MessageId, to: &Name, body: &Body) {
        encode_relay(out, TYPE_SEND, id, to, body.as_bytes());
    }

    /// Writes everything of an `E2eSend { id, to, envelope }` frame but the envelope, whose length
    /// is `envelope_len`: header, `id`, `to`, the envelope's length prefix. The sender then seals
    /// the envelope into the same buffer (SPEC.md §12.3), which the channel then encrypts.
    pub(crate) fn encode_e2e_send_head(
        out: &mut Vec<u8>,
        id: MessageId,
        to: &Name,
        envelope_len: usize,
    ) {
        let start = out.len();
        out.extend_from_slice(&[VERSION, TYPE_E2E_SEND, 0, 0, 0, 0]);
        write_relay_head(out, id, to, envelope_len);
        // The header's length counts the envelope still to come.
        let body_len = (out.len() - start - HEADER_LEN).saturating_add(envelope_len);
        write_body_len(&mut out[start..], body_len);
    }
}

/// The relay messages (`Send`, `Deliver`, `E2eSend`, `E2eDeliver`) share one layout:
/// `id (u64 BE) || name || len (u16 BE) || content`, the content (a body or an envelope) last.
/// Writes all of it but the content's `content_len` bytes.
fn write_relay_head(out: &mut Vec<u8>, id: MessageId, name: &Name, content_len: usize) {
    out.extend_from_slice(&id.0.to_be_bytes());
    name.encode(out);
    // Every content type is bounded far below u16::MAX by its constructor.
    out.extend_from_slice(&u16::try_from(content_len).unwrap_or(u16::MAX).to_be_bytes());
}

/// Appends a whole relay message of `frame_type` (see [`write_relay_head`]).
fn encode_relay(out: &mut Vec<u8>, frame_type: u8, id: MessageId, name: &Name, content: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[VERSION, frame_type, 0, 0, 0, 0]);
    write_relay_head(out, id, name, content.len());
    out.extend_from_slice(content);
    super::codec::set_body_len(&mut out[start..]);
}

/// Reads a relay message's fields (see [`write_relay_head`]), borrowing the content, whose length
/// prefix is checked against the bounds of the type's content (body or envelope).
fn read_relay<'a>(
    frame_type: u8,
    r: &mut Reader<'a>,
) -> Result<(MessageId, Name, &'a [u8]), WireError> {
    let id = MessageId(r.u64()?);
    let name = Name::read(r)?;
    let content = match frame_type {
        TYPE_SEND | TYPE_DELIVER => Body::read_ref(r)?,
        _ => Envelope::read_ref(r)?,
    };
    Ok((id, name, content))
}

/// A relay message from its fields, its content `buffer[start..]`, which has passed
/// [`read_relay`]'s bounds, so the constructors' identical checks pass too. The content stays
/// where it is in `buffer` ([`Body`] and [`Envelope`] can start at an offset).
fn relay_message(
    frame_type: u8,
    id: MessageId,
    name: Name,
    buffer: Vec<u8>,
    start: usize,
) -> Result<Message, WireError> {
    Ok(match frame_type {
        TYPE_SEND => Message::Send { id, to: name, body: Body::at(buffer, start)? },
        TYPE_DELIVER => Message::Deliver { id, from: name, body: Body::at(buffer, start)? },
        TYPE_E2E_SEND => Message::E2eSend { id, to: name, envelope: Envelope::at(buffer, start)? },
        TYPE_E2E_DELIVER => {
            Message::E2eDeliver { id, from: name, envelope: Envelope::at(buffer, start)? }
        }
        other => return Err(WireError::UnknownType(other)),
    })
}

/// A relay request (`Send` or `E2eSend`) borrowing its content from the decoded bytes
/// ([`Message::decode_relay_request`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RelayRequest<'a> {
    /// `E2eSend` (an envelope) rather than `Send` (a hop body).
    pub(crate) e2e: bool,
    /// The sender's id.
    pub(crate) id: MessageId,
    /// The recipient.
    pub(crate) to: Name,
    /// The body or envelope, within its type's bounds.
    pub(crate) content: &'a [u8],
}

/// Whether a message of `frame_type` is a relay message, its content its last field.
const fn carries_content(frame_type: u8) -> bool {
    matches!(frame_type, TYPE_SEND | TYPE_DELIVER | TYPE_E2E_SEND | TYPE_E2E_DELIVER)
}

impl Codec for Message {
    const MAX_FRAME_BODY_LEN: usize = MAX_MESSAGE_LEN;

    fn frame_type(&self) -> u8 {
        match self {
            Self::Register { .. } => TYPE_REGISTER,
            Self::Welcome { .. } => TYPE_WELCOME,
            Self::Refused { .. } => TYPE_REFUSED,
            Self::Ready => TYPE_READY,
            Self::Send { .. } => TYPE_SEND,
            Self::Deliver { .. } => TYPE_DELIVER,
            Self::Ack { .. } => TYPE_ACK,
            Self::Reject { .. } => TYPE_REJECT,
            Self::UploadBundle { .. } => TYPE_UPLOAD_BUNDLE,
            Self::BundleStored { .. } => TYPE_BUNDLE_STORED,
            Self::BundleRefused { .. } => TYPE_BUNDLE_REFUSED,
            Self::FetchBundle { .. } => TYPE_FETCH_BUNDLE,
            Self::Bundle { .. } => TYPE_BUNDLE,
            Self::NoBundle { .. } => TYPE_NO_BUNDLE,
            Self::E2eSend { .. } => TYPE_E2E_SEND,
            Self::E2eDeliver { .. } => TYPE_E2E_DELIVER,
            Self::PrekeysLow { .. } => TYPE_PREKEYS_LOW,
        }
    }

    fn is_known_type(frame_type: u8) -> bool {
        matches!(
            frame_type,
            TYPE_REGISTER
                | TYPE_WELCOME
                | TYPE_REFUSED
                | TYPE_READY
                | TYPE_SEND
                | TYPE_DELIVER
                | TYPE_ACK
                | TYPE_REJECT
                | TYPE_UPLOAD_BUNDLE
                | TYPE_BUNDLE_STORED
                | TYPE_BUNDLE_REFUSED
                | TYPE_FETCH_BUNDLE
                | TYPE_BUNDLE
                | TYPE_NO_BUNDLE
                | TYPE_E2E_SEND
                | TYPE_E2E_DELIVER
                | TYPE_PREKEYS_LOW
        )
    }

    fn body_len_hint(&self) -> usize {
        // id, name, and the u16-prefixed body or envelope; everything else is short.
        const FIXED: usize = 8 + 1 + MAX_NAME_LEN + 2;
        match self {
            Self::Send { body, .. } | Self::Deliver { body, .. } => FIXED + body.as_bytes().len(),
            Self::E2eSend { envelope, .. } | Self::E2eDeliver { envelope, .. } => {
                FIXED + envelope.as_bytes().len()
            }
            _ => 64,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Self::Register { name } | Self::Welcome { name } => name.encode(out),
            Self::Refused { reason } => out.push(reason.code()),
            Self::Ready => {}
            Self::Send { id, to: name, body } | Self::Deliver { id, from: name, body } => {
                write_relay_head(out, *id, name, body.as_bytes().len());
                out.extend_from_slice(body.as_bytes());
            }
            Self::Ack { id, status } => {
                out.extend_from_slice(&id.0.to_be_bytes());
                out.push(status.code());
            }
            Self::Reject { id, reason } => {
                out.extend_from_slice(&id.0.to_be_bytes());
                out.push(reason.code());
            }
            Self::UploadBundle { bundle } => bundle.encode(out),
            Self::BundleStored { one_time_prekeys } | Self::PrekeysLow { one_time_prekeys } => {
                out.extend_from_slice(&one_time_prekeys.to_be_bytes());
            }
            Self::BundleRefused { reason } => out.push(reason.code()),
            Self::FetchBundle { name } | Self::NoBundle { name } => name.encode(out),
            Self::Bundle { name, bundle } => {
                name.encode(out);
                bundle.encode(out);
            }
            Self::E2eSend { id, to: name, envelope }
            | Self::E2eDeliver { id, from: name, envelope } => {
                write_relay_head(out, *id, name, envelope.as_bytes().len());
                out.extend_from_slice(envelope.as_bytes());
            }
        }
    }

    fn decode_body(frame_type: u8, r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match frame_type {
            TYPE_REGISTER => Self::Register { name: Name::read(r)? },
            TYPE_WELCOME => Self::Welcome { name: Name::read(r)? },
            TYPE_REFUSED => Self::Refused { reason: RefusalReason::read(r)? },
            TYPE_READY => Self::Ready,
            TYPE_SEND | TYPE_DELIVER => {
                let (id, name, body) = read_relay(frame_type, r)?;
                relay_message(frame_type, id, name, body.to_vec(), 0)?
            }
            TYPE_ACK => Self::Ack { id: MessageId(r.u64()?), status: AckStatus::read(r)? },
            TYPE_REJECT => Self::Reject { id: MessageId(r.u64()?), reason: RejectReason::read(r)? },
            TYPE_UPLOAD_BUNDLE => Self::UploadBundle { bundle: UploadedBundle::read(r)? },
            TYPE_BUNDLE_STORED => Self::BundleStored { one_time_prekeys: r.u16()? },
            TYPE_BUNDLE_REFUSED => Self::BundleRefused { reason: BundleRefusal::read(r)? },
            TYPE_FETCH_BUNDLE => Self::FetchBundle { name: Name::read(r)? },
            TYPE_BUNDLE => Self::Bundle { name: Name::read(r)?, bundle: FetchedBundle::read(r)? },
            TYPE_NO_BUNDLE => Self::NoBundle { name: Name::read(r)? },
            TYPE_PREKEYS_LOW => Self::PrekeysLow { one_time_prekeys: r.u16()? },
            TYPE_E2E_SEND | TYPE_E2E_DELIVER => {
                let (id, name, envelope) = read_relay(frame_type, r)?;
                relay_message(frame_type, id, name, envelope.to_vec(), 0)?
            }
            other => return Err(WireError::UnknownType(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head the e2e sender writes before sealing the envelope into the frame, followed by the
    /// envelope, is the frame `encode` makes — at the smallest, a middle and the largest envelope.
    #[test]
    fn e2e_send_head_then_envelope_is_the_encoding() {
        let to = Name::new("bob").unwrap();
        for len in [1, 300, crate::wire::MAX_ENVELOPE_LEN] {
            let envelope = Envelope::new((0..len).map(|i| i as u8).collect()).unwrap();
            let mut frame = vec![0xee; 3];
            Message::encode_e2e_send_head(&mut frame, MessageId(9), &to, len);
            frame.extend_from_slice(envelope.as_bytes());
            let message = Message::E2eSend { id: MessageId(9), to: to.clone(), envelope };
            assert_eq!(frame[..3], [0xee; 3]);
            assert_eq!(frame[3..], message.encode()[..], "envelope of {len} bytes");
        }
    }

    /// The relay path's own encoders and decoder (the server's in-place relay, the client's
    /// `send_into`) are the codec's: the same bytes out, and on any input — valid, or an encoding
    /// with one byte changed, cut short or grown — the same verdict as [`Message::decode`] for a
    /// `Send` or `E2eSend`, and `None` (the full decoder's to judge) for anything else.
    fn relay_encodings_agree_with_the_codec(
        e2e: bool,
        id: u64,
        name: &str,
        content: &[u8],
        edit: (usize, u8, usize),
    ) {
        let name = Name::new(name).unwrap();
        let (request, delivery) = if e2e {
            let envelope = Envelope::new(content.to_vec()).unwrap();
            (
                Message::E2eSend {
                    id: MessageId(id),
                    to: name.clone(),
                    envelope: envelope.clone(),
                },
                Message::E2eDeliver { id: MessageId(id), from: name.clone(), envelope },
            )
        } else {
            let body = Body::new(content.to_vec()).unwrap();
            let mut sent = vec![0xee];
            Message::encode_send(&mut sent, MessageId(id), &name, &body);
            let send = Message::Send { id: MessageId(id), to: name.clone(), body: body.clone() };
            assert_eq!(sent[1..], send.encode()[..], "encode_send");
            (send, Message::Deliver { id: MessageId(id), from: name.clone(), body })
        };
        let mut delivered = vec![0xee];
        Message::encode_delivery(&mut delivered, e2e, MessageId(id), &name, content);
        assert_eq!(delivered[1..], delivery.encode()[..], "encode_delivery");

        let encoded = request.encode();
        let (at, byte, cut) = edit;
        let mut changed = encoded.clone();
        let at = at % changed.len();
        changed[at] ^= byte.max(1);
        let mut grown = encoded.clone();
        grown.push(byte);
        let short = &encoded[..cut % encoded.len()];
        for input in [&encoded[..], &changed[..], &grown[..], short, &delivered[1..]] {
            let expected = Message::decode(input);
            match (Message::decode_relay_request(input), expected) {
                (Ok(Some(got)), Ok(Message::Send { id, to, body })) => {
                    assert_eq!(
                        (got.e2e, got.id, got.to, got.content),
                        (false, id, to, body.as_bytes())
                    );
                }
                (Ok(Some(got)), Ok(Message::E2eSend { id, to, envelope })) => {
                    assert_eq!(
                        (got.e2e, got.id, got.to, got.content),
                        (true, id, to, envelope.as_bytes())
                    );
                }
                // Any other type is the full decoder's to judge (the server decodes it as a
                // `Message` next), valid or not.
                (Ok(None), Ok(other)) => {
                    assert!(!matches!(other, Message::Send { .. } | Message::E2eSend { .. }));
                }
                (Ok(None), Err(_)) => {
                    assert!(!matches!(input.get(1), Some(&(TYPE_SEND | TYPE_E2E_SEND))));
                }
                (Err(got), Err(expected)) => assert_eq!(got, expected),
                (got, expected) => panic!("{input:02x?}: relay {got:?}, codec {expected:?}"),
            }
        }
    }

    proptest::proptest! {
        // Failures are reported, not persisted into the source tree.
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn relay_encoders_and_decoder_are_the_codec(
            e2e in proptest::prelude::any::<bool>(),
            id in proptest::prelude::any::<u64>(),
            name in "[a-z0-9]{1,16}",
            content in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300),
            edit in proptest::prelude::any::<(usize, u8, usize)>(),
        ) {
            relay_encodings_agree_with_the_codec(e2e, id, &name, &content, edit);
        }
    }

    /// The bounds of each content type, which the random lengths above do not reach.
    #[test]
    fn relay_encodings_agree_with_the_codec_at_the_content_bounds() {
        for len in [crate::wire::MAX_BODY_LEN, crate::wire::MAX_ENVELOPE_LEN] {
            let content: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let e2e = len == crate::wire::MAX_ENVELOPE_LEN;
            relay_encodings_agree_with_the_codec(e2e, u64::MAX, "bob", &content, (7, 1, 9));
        }
    }
}
