//! `wire_decode`: arbitrary bytes as a link frame, a message and an e2e envelope (SPEC.md §3.4, §13).

use crate::e2e::envelope::EnvelopeBody;
use crate::wire::{
    Codec, Envelope, HEADER_LEN, LinkFrame, Message, MessageId, WireError, frame_len,
};

use super::input::name;

/// Decodes `data` as each family; whatever is accepted must re-encode to exactly `data` (every
/// value has one encoding), and the stream helper `frame_len` must agree with `decode`.
pub fn wire_decode(data: &[u8]) {
    family::<LinkFrame>(data);
    family::<Message>(data);
    // Decoding a buffer given up gives the same value or the same error.
    assert_eq!(Message::decode_owned(data.to_vec()), Message::decode(data), "decode_owned differs");

    if let Ok(envelope) = EnvelopeBody::decode(data) {
        assert_eq!(envelope.encode(), data, "an envelope re-encodes differently: {envelope:?}");
    }

    // As the opaque envelope field of a message, it survives a round trip unchanged.
    if let Ok(envelope) = Envelope::new(data.to_vec()) {
        let message = Message::E2eDeliver { id: MessageId(7), from: name("alice"), envelope };
        let bytes = message.encode();
        assert_eq!(Message::decode(&bytes).as_ref(), Ok(&message), "E2eDeliver round trip");
    }
}

/// The checks for one family `C`.
fn family<C: Codec + PartialEq + core::fmt::Debug>(data: &[u8]) {
    let decoded = C::decode(data);
    if let Ok(value) = &decoded {
        assert_eq!(value.encode(), data, "{value:?} re-encodes differently");
        assert_eq!(frame_len::<C>(data), Ok(Some(data.len())), "frame_len disagrees with decode");
    }
    // The header checks come first and in a fixed order (§3.4 steps 2–4): for an input no longer
    // than the family's maximum, a header that `frame_len` refuses is refused by `decode` with the
    // same error, and a header it accepts is not refused for a header reason.
    let max = HEADER_LEN + C::MAX_FRAME_BODY_LEN;
    if data.len() >= HEADER_LEN && data.len() <= max {
        let header = frame_len::<C>(data);
        assert_ne!(header, Ok(None), "frame_len wants more than a whole header");
        match header {
            Err(e) => assert_eq!(decoded.as_ref().err(), Some(&e), "decode and frame_len differ"),
            Ok(Some(len)) => {
                let header_error = matches!(
                    decoded,
                    Err(WireError::UnknownVersion(_)
                        | WireError::UnknownType(_)
                        | WireError::Oversized { .. })
                );
                assert!(!header_error, "frame_len accepted a header decode refused: {decoded:?}");
                if len < data.len() {
                    assert!(
                        matches!(decoded, Err(WireError::TrailingBytes { .. })),
                        "bytes after the frame were not refused as trailing: {decoded:?}"
                    );
                } else if len > data.len() {
                    assert_eq!(decoded.as_ref().err(), Some(&WireError::Truncated), "short input");
                }
            }
            Ok(None) => {}
        }
    }
}
