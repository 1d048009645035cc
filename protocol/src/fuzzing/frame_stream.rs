//! `frame_stream`: a byte stream of frames, received in pieces cut at arbitrary points — as a TCP
//! reader sees it — and framed with the stream helper [`frame_len`] (SPEC.md §3.1, §3.4), against a
//! reader written from the spec's text alone.
//!
//! Input: byte 0 picks the family (bit 0: link frames or messages); byte 1 is `n`, the number of
//! piece lengths that follow (each 1..=256, a byte of 0 taken as 256, used in turn, again and
//! again); the rest is the stream.
//!
//! Invariants: the frames the piecewise reader cuts, and where and why it stops, are those of the
//! spec reader on the whole stream, however the stream is cut; the reader decides a frame's length
//! from its first [`HEADER_LEN`] bytes and never buffers more than one whole frame
//! (`HEADER_LEN + MAX_FRAME_BODY_LEN`) before it can cut one; a header `frame_len` refuses is
//! refused with the error the spec's step 2–4 names; a frame it cuts never fails `decode` for a
//! header reason, passes [`split`] (the header checks alone) with the body it counted, and whatever
//! decodes re-encodes to the frame.

use crate::wire::{Codec, HEADER_LEN, LinkFrame, Message, VERSION, WireError, frame_len, split};

/// Runs the stream in `data` through the piecewise reader and the spec reader.
pub fn frame_stream(data: &[u8]) {
    let [flags, n, rest @ ..] = data else { return };
    let (pieces, stream) = rest.split_at(usize::from(*n).min(rest.len()));
    if flags & 1 == 0 {
        compare::<LinkFrame>(pieces, stream);
    } else {
        compare::<Message>(pieces, stream);
    }
}

/// Where a reader stopped.
#[derive(Clone, PartialEq, Eq, Debug)]
enum End {
    /// The stream ended on a frame boundary.
    Clean,
    /// The stream ended inside a frame, with this many of its bytes received.
    Partial(usize),
    /// A header was refused: the connection is closed.
    Refused(WireError),
}

/// The spec's reader (§3.1, §3.4 steps 2–4), on the whole stream: 6 header bytes, version `0x01`,
/// a type of the family, a big-endian `body_len` with `6 + body_len` at most the family's largest
/// frame; the frame is then exactly `6 + body_len` bytes.
fn spec_reader<C: Codec>(stream: &[u8]) -> (Vec<&[u8]>, End) {
    let max = HEADER_LEN + C::MAX_FRAME_BODY_LEN;
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        let Some(header) = rest.get(..HEADER_LEN) else {
            let end = if rest.is_empty() { End::Clean } else { End::Partial(rest.len()) };
            return (frames, end);
        };
        if header[0] != VERSION {
            return (frames, End::Refused(WireError::UnknownVersion(header[0])));
        }
        if !C::is_known_type(header[1]) {
            return (frames, End::Refused(WireError::UnknownType(header[1])));
        }
        let body_len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        let len = usize::try_from(body_len).map_or(usize::MAX, |b| b.saturating_add(HEADER_LEN));
        if len > max {
            return (frames, End::Refused(WireError::Oversized { len, max }));
        }
        let Some((frame, after)) = rest.split_at_checked(len) else {
            return (frames, End::Partial(rest.len()));
        };
        frames.push(frame);
        rest = after;
    }
}

/// A TCP-style reader: appends each piece to its buffer and cuts every frame `frame_len` says is
/// complete. Returns the frames, where it stopped, and the most bytes it ever held.
fn piecewise_reader<C: Codec>(pieces: &[u8], stream: &[u8]) -> (Vec<Vec<u8>>, End, usize) {
    let max = HEADER_LEN + C::MAX_FRAME_BODY_LEN;
    let mut lengths = pieces.iter().map(|&p| if p == 0 { 256 } else { usize::from(p) }).cycle();
    let mut buffer: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    let mut held = 0;
    let mut rest = stream;
    while !rest.is_empty() {
        // With no piece lengths, the stream arrives whole.
        let take = lengths.next().unwrap_or(rest.len()).min(rest.len());
        let (piece, after) = rest.split_at(take);
        buffer.extend_from_slice(piece);
        rest = after;
        held = held.max(buffer.len());
        loop {
            match frame_len::<C>(&buffer) {
                Err(error) => return (frames, End::Refused(error), held),
                Ok(None) => {
                    assert!(buffer.len() < HEADER_LEN, "frame_len wants more than a header");
                    break;
                }
                Ok(Some(len)) => {
                    assert!((HEADER_LEN..=max).contains(&len), "frame_len gave {len}");
                    if buffer.len() < len {
                        break;
                    }
                    let tail = buffer.split_off(len);
                    frames.push(core::mem::replace(&mut buffer, tail));
                }
            }
        }
        // A reader holds at most one frame's bytes plus the piece that completed it: it cuts a
        // frame as soon as it is whole.
        assert!(buffer.len() < max, "{} bytes buffered and no frame cut", buffer.len());
    }
    let end = if buffer.is_empty() { End::Clean } else { End::Partial(buffer.len()) };
    (frames, end, held)
}

fn compare<C: Codec + core::fmt::Debug>(pieces: &[u8], stream: &[u8]) {
    let (expected, spec_end) = spec_reader::<C>(stream);
    let (frames, end, held) = piecewise_reader::<C>(pieces, stream);
    assert_eq!(frames.len(), expected.len(), "frames cut: {end:?}, the spec reader: {spec_end:?}");
    for (frame, want) in frames.iter().zip(&expected) {
        assert_eq!(frame, want, "the reader cut another frame");
    }
    assert_eq!(end, spec_end, "the reader stopped elsewhere, or for another reason");
    let largest_piece = pieces.iter().map(|&p| if p == 0 { 256 } else { usize::from(p) }).max();
    let bound = HEADER_LEN + C::MAX_FRAME_BODY_LEN + largest_piece.unwrap_or(stream.len());
    assert!(held <= bound, "the reader held {held} bytes");
    for frame in &frames {
        // The header checks alone accept it, and borrow the body `frame_len` counted.
        let (frame_type, body) = crate::fuzzing::must(split::<C>(frame), "split a cut frame");
        assert_eq!((frame_type, body), (frame[1], &frame[HEADER_LEN..]), "split disagrees");
        match C::decode(frame) {
            Ok(value) => assert_eq!(value.encode(), *frame, "{value:?} re-encodes differently"),
            Err(error) => assert!(
                !matches!(
                    error,
                    WireError::UnknownVersion(_)
                        | WireError::UnknownType(_)
                        | WireError::Oversized { .. }
                ),
                "a frame cut by frame_len fails decode's header checks: {error:?}"
            ),
        }
    }
}
