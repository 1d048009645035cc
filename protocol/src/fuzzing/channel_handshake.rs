//! `channel_handshake`: bytes into the responder's `read_message_1`, the initiator's
//! `read_message_2` and an established [`Transport`] (SPEC.md §4), with fixed keys.

use std::sync::OnceLock;

use arbitrary::Arbitrary;

use crate::channel::{
    ChannelError, Initiator, InitiatorAwaitingResponse, MAX_NOISE_MESSAGE_LEN, MESSAGE_1_OVERHEAD,
    MESSAGE_2_OVERHEAD, PROLOGUE, Responder, Transport,
};
use crate::suite::{PrivateKey, PublicKey};
use crate::wire::{Codec, Message};

use super::input::{Bytes, Encode, Mutation, SmallBytes, decode_all, name, variant};
use super::must;
use super::net::rng;

/// What one input exercises.
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum Mode {
    /// The genuine message 1, mutated, into the responder.
    Message1(Mutation),
    /// The genuine message 2, mutated, into the waiting initiator.
    Message2(Mutation),
    /// The operations that follow ([`TransportOp`]) on an established channel.
    Transport,
    /// A whole handshake with keys and payloads from the input: it must complete and agree.
    Handshake {
        /// The initiator's static private key.
        initiator_static: [u8; 32],
        /// The initiator's ephemeral private key.
        initiator_ephemeral: [u8; 32],
        /// The responder's ephemeral private key.
        responder_ephemeral: [u8; 32],
        /// Message 1's payload.
        payload_1: Bytes,
        /// Message 2's payload.
        payload_2: Bytes,
    },
}

impl Encode for Mode {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Message1(m) => {
                variant(out, 0, 4);
                m.encode(out);
            }
            Self::Message2(m) => {
                variant(out, 1, 4);
                m.encode(out);
            }
            Self::Transport => variant(out, 2, 4),
            Self::Handshake {
                initiator_static,
                initiator_ephemeral,
                responder_ephemeral,
                payload_1,
                payload_2,
            } => {
                variant(out, 3, 4);
                initiator_static.encode(out);
                initiator_ephemeral.encode(out);
                responder_ephemeral.encode(out);
                payload_1.encode(out);
                payload_2.encode(out);
            }
        }
    }
}

/// One step on an established channel. `to_responder` picks the direction.
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum TransportOp {
    /// The sender seals a plaintext; the frame goes in flight.
    Write {
        /// Initiator → responder, or back.
        to_responder: bool,
        /// The plaintext.
        plaintext: SmallBytes,
    },
    /// The receiver reads an in-flight frame (`index` modulo their number), mutated.
    Deliver {
        /// Which direction's frames.
        to_responder: bool,
        /// Which frame.
        index: u8,
        /// What is done to it on the way.
        mutation: Mutation,
    },
    /// The receiver reads arbitrary bytes.
    Raw {
        /// Which receiver.
        to_responder: bool,
        /// The bytes.
        bytes: Bytes,
    },
}

impl Encode for TransportOp {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Write { to_responder, plaintext } => {
                variant(out, 0, 3);
                to_responder.encode(out);
                plaintext.encode(out);
            }
            Self::Deliver { to_responder, index, mutation } => {
                variant(out, 1, 3);
                to_responder.encode(out);
                index.encode(out);
                mutation.encode(out);
            }
            Self::Raw { to_responder, bytes } => {
                variant(out, 2, 3);
                to_responder.encode(out);
                bytes.encode(out);
            }
        }
    }
}

/// Keys and genuine messages, made once.
struct Fixed {
    responder_public: PublicKey,
    responder: Responder,
    awaiting: InitiatorAwaitingResponse,
    message_1: Vec<u8>,
    payload_1: Vec<u8>,
    message_2: Vec<u8>,
    payload_2: Vec<u8>,
    /// The initiator's and the responder's ends of the established channel.
    channel: (Transport, Transport),
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut rng = rng(0x4348);
        let initiator_static = PrivateKey::generate(&mut rng);
        let responder_static = PrivateKey::generate(&mut rng);
        let responder_public = responder_static.public_key();
        let responder = Responder::new(PROLOGUE, responder_static);
        let payload_1 = Message::Register { name: name("alice") }.encode();
        let payload_2 = Message::Welcome { name: name("alice") }.encode();
        let (awaiting, message_1) = must(
            Initiator::new(PROLOGUE, initiator_static, responder_public)
                .write_message_1_with_rng(&mut rng, &payload_1),
            "message 1",
        );
        let received = must(responder.read_message_1(&message_1), "read message 1");
        let (responder_end, message_2) =
            must(received.write_message_2_with_rng(&mut rng, &payload_2), "message 2");
        let (initiator_end, _) = must(awaiting.read_message_2(&message_2), "read message 2");
        Fixed {
            responder_public,
            responder,
            awaiting,
            message_1,
            payload_1,
            message_2,
            payload_2,
            channel: (initiator_end, responder_end),
        }
    })
}

/// Feeds `data` to the handshake readers or an established channel.
pub fn channel_handshake(data: &[u8]) {
    let Some((mode, ops)) = decode_all::<Mode, TransportOp>(data) else { return };
    let fixed = fixed();
    match mode {
        Mode::Message1(mutation) => {
            let message = mutation.apply(&fixed.message_1);
            let before = fixed.responder.clone();
            let result = fixed.responder.read_message_1(&message);
            assert_eq!(fixed.responder, before, "read_message_1 changed the responder");
            // The genuine message opens. (Only it, for a real attacker; the fuzzer, which sees the
            // expected AEAD tags through its comparison tracing, can make others open: see
            // [`transport`].)
            if message == fixed.message_1 {
                let received = must(result, "the genuine message 1");
                assert_eq!(received.payload(), fixed.payload_1);
            }
        }
        Mode::Message2(mutation) => {
            let message = mutation.apply(&fixed.message_2);
            let before = fixed.awaiting.clone();
            let result = fixed.awaiting.read_message_2(&message);
            assert_eq!(fixed.awaiting, before, "read_message_2 changed the initiator");
            if message == fixed.message_2 {
                let (_, payload) = must(result, "the genuine message 2");
                assert_eq!(payload, fixed.payload_2);
            }
        }
        Mode::Transport => transport(fixed.channel.clone(), &ops),
        Mode::Handshake {
            initiator_static,
            initiator_ephemeral,
            responder_ephemeral,
            payload_1,
            payload_2,
        } => handshake(
            fixed,
            [initiator_static, initiator_ephemeral, responder_ephemeral],
            &payload_1.0,
            &payload_2.0,
        ),
    }
}

/// One direction of the channel as the harness sees it.
#[derive(Default)]
struct Direction {
    /// Every frame written, in order, with its plaintext and the sender as it was before writing it.
    written: Vec<(Vec<u8>, Vec<u8>, Transport)>,
    /// How many frames the receiver has accepted.
    read: usize,
}

/// The sender `sender` (which has written `direction.written`) as it would be before writing frame
/// number `n`.
fn sender_at(direction: &Direction, sender: &Transport, n: usize) -> Transport {
    if let Some((_, _, before)) = direction.written.get(n) {
        return before.clone();
    }
    let mut ahead = sender.clone();
    for _ in direction.written.len()..n {
        must(ahead.write(&[]), "advance");
    }
    ahead
}

/// Frames into an established channel. The receiver must accept the next genuine frame, refuse
/// without changing anything what it does not accept, and accept only a frame that *is* the
/// sender's encryption of its plaintext under the next nonce. (libFuzzer traces the comparison of
/// the expected and received AEAD tags, so it can learn valid tags for frames the sender never
/// wrote — no real attacker can — hence "a genuine encryption" rather than "a frame written".)
fn transport((mut initiator, mut responder): (Transport, Transport), ops: &[TransportOp]) {
    let mut directions = [Direction::default(), Direction::default()];
    for op in ops {
        let (to_responder, candidate) = match op {
            TransportOp::Write { to_responder, plaintext } => {
                let writer = if *to_responder { &mut initiator } else { &mut responder };
                let before = writer.clone();
                let frame = must(writer.write(&plaintext.0), "write");
                let direction = &mut directions[usize::from(*to_responder)];
                direction.written.push((frame, plaintext.0.clone(), before));
                continue;
            }
            TransportOp::Deliver { to_responder, index, mutation } => {
                let written = &directions[usize::from(*to_responder)].written;
                let Some(i) = usize::from(*index).checked_rem(written.len()) else { continue };
                (*to_responder, mutation.apply(&written[i].0))
            }
            TransportOp::Raw { to_responder, bytes } => (*to_responder, bytes.0.clone()),
        };
        let (reader, sender) =
            if to_responder { (&mut responder, &initiator) } else { (&mut initiator, &responder) };
        let direction = &mut directions[usize::from(to_responder)];
        let before = reader.clone();
        let result = reader.read(&candidate);
        let genuine_next =
            direction.written.get(direction.read).is_some_and(|(frame, ..)| *frame == candidate);
        match result {
            Ok(plaintext) => {
                let mut at = sender_at(direction, sender, direction.read);
                let expected = must(at.write(&plaintext), "re-encrypt");
                assert_eq!(expected, candidate, "accepted a frame the sender would not send");
                direction.read += 1;
            }
            Err(error) => {
                assert!(!genuine_next, "the next genuine frame was refused: {error:?}");
                assert_eq!(*reader, before, "a refused frame changed the channel");
            }
        }
    }
}

fn handshake(fixed: &Fixed, keys: [[u8; 32]; 3], payload_1: &[u8], payload_2: &[u8]) {
    let [initiator_static, initiator_ephemeral, responder_ephemeral] =
        keys.map(PrivateKey::from_bytes);
    let static_public = initiator_static.public_key();
    let initiator = Initiator::new(PROLOGUE, initiator_static, fixed.responder_public);
    let written = initiator.write_message_1(initiator_ephemeral, payload_1);
    if MESSAGE_1_OVERHEAD + payload_1.len() > MAX_NOISE_MESSAGE_LEN {
        assert_eq!(written.err(), Some(ChannelError::MessageTooLong));
        return;
    }
    let (awaiting, message_1) = must(written, "message 1");
    assert_eq!(message_1.len(), MESSAGE_1_OVERHEAD + payload_1.len());
    let received = must(fixed.responder.read_message_1(&message_1), "read message 1");
    assert_eq!(received.payload(), payload_1);
    assert_eq!(received.remote_static(), static_public);

    let written = received.write_message_2(responder_ephemeral, payload_2);
    if MESSAGE_2_OVERHEAD + payload_2.len() > MAX_NOISE_MESSAGE_LEN {
        assert_eq!(written.err(), Some(ChannelError::MessageTooLong));
        return;
    }
    let (mut responder_end, message_2) = must(written, "message 2");
    let (mut initiator_end, payload) = must(awaiting.read_message_2(&message_2), "read message 2");
    assert_eq!(payload, payload_2);
    assert_eq!(initiator_end.handshake_hash(), responder_end.handshake_hash());
    let there = must(initiator_end.write(payload_2), "write");
    assert_eq!(must(responder_end.read(&there), "read"), payload_2);
    let back = must(responder_end.write(payload_1), "write");
    assert_eq!(must(initiator_end.read(&back), "read"), payload_1);
}
