//! `wire_decode`: arbitrary bytes as a link frame, a message and an e2e envelope (SPEC.md §3.4, §13).
//!
//! Each decoder runs once per input, and each value it accepts is encoded once, into one buffer per
//! input. That the input, as the opaque envelope of a relay message, survives that message's
//! encoding and decoding is not checked here input after input: it took 41 % of a run's
//! instructions, on a path the codec runs the same for every envelope of a length (it copies the
//! bytes without reading them). `every_envelope_length_round_trips_in_a_relay_message`
//! (protocol/tests/wire.rs) checks every length there is (README "Fuzzing").

use crate::e2e::envelope::EnvelopeBody;
use crate::wire::{Codec, HEADER_LEN, LinkFrame, Message, WireError, frame_len};

/// Decodes `data` as each family; whatever is accepted must re-encode to exactly `data` (every
/// value has one encoding), and the stream helper `frame_len` must agree with `decode`.
pub fn wire_decode(data: &[u8]) {
    // Every re-encoding of this input that is accepted is `data` again: it fits.
    let mut buffer = Vec::with_capacity(data.len());

    family(data, &LinkFrame::decode(data), &mut buffer);
    let message = Message::decode(data);
    family(data, &message, &mut buffer);
    // The receive path's decoder, on a buffer given up: the same value or the same error.
    assert_eq!(Message::decode_owned(data.to_vec()), message, "decode_owned differs");

    if let Ok(envelope) = EnvelopeBody::decode(data) {
        assert_eq!(envelope.encode(), data, "an envelope re-encodes differently: {envelope:?}");
    }
}

/// The checks for one family `C`, given what `C::decode` made of `data`; `buffer` is scratch space.
fn family<C: Codec + PartialEq + core::fmt::Debug>(
    data: &[u8],
    decoded: &Result<C, WireError>,
    buffer: &mut Vec<u8>,
) {
    let header = frame_len::<C>(data);
    if let Ok(value) = decoded {
        buffer.clear();
        value.encode_into(buffer);
        assert_eq!(buffer.as_slice(), data, "{value:?} re-encodes differently");
        assert_eq!(header, Ok(Some(data.len())), "frame_len disagrees with decode");
    }
    // The header checks come first and in a fixed order (§3.4 steps 2–4): for an input no longer
    // than the family's maximum, a header that `frame_len` refuses is refused by `decode` with the
    // same error, and a header it accepts is not refused for a header reason.
    let max = HEADER_LEN + C::MAX_FRAME_BODY_LEN;
    if data.len() >= HEADER_LEN && data.len() <= max {
        match header {
            Ok(None) => super::fail("frame_len wants more than a whole header"),
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
        }
    }
}
