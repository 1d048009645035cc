//! `channel_snow`: the channel (SPEC.md §4) against snow, an independent implementation of
//! `Noise_IK_25519_ChaChaPoly_SHA256` (`channel::PROTOCOL_NAME`; protocol/tests/channel_snow_interop.rs
//! shows the two interoperate). Both get the same input — the four key pairs, both payloads, both
//! handshake messages damaged the same way, then the same transport frames — and must agree on every
//! accept, every refusal and every byte they write or read.
//!
//! One refusal is ours alone, by design: a Diffie-Hellman result of all zeros (a peer key of small
//! order) is `CryptoError::NonContributory` here (SPEC.md §2), where snow goes on with the zero
//! key. There snow's answer is not compared and the run ends.

use arbitrary::Arbitrary;

use crate::channel::{ChannelError, Initiator, MAX_NOISE_MESSAGE_LEN, PROLOGUE, PROTOCOL_NAME};
use crate::channel::{Responder, Transport};
use crate::suite::{CryptoError, PrivateKey};

use super::channel_handshake::TransportOp;
use super::input::{Encode, Mutation, SmallBytes, decode_all};
use super::{fail, must};

/// Keys, payloads and what happens to the two handshake messages on the way.
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub struct Handshake {
    /// The initiator's static private key.
    pub initiator_static: [u8; 32],
    /// The initiator's ephemeral private key.
    pub initiator_ephemeral: [u8; 32],
    /// The responder's static private key.
    pub responder_static: [u8; 32],
    /// The responder's ephemeral private key.
    pub responder_ephemeral: [u8; 32],
    /// Message 1's payload.
    pub payload_1: SmallBytes,
    /// Message 2's payload.
    pub payload_2: SmallBytes,
    /// What happens to message 1 before both responders read it.
    pub message_1: Mutation,
    /// What happens to message 2 before both initiators read it.
    pub message_2: Mutation,
}

impl Encode for Handshake {
    fn encode(&self, out: &mut Vec<u8>) {
        self.initiator_static.encode(out);
        self.initiator_ephemeral.encode(out);
        self.responder_static.encode(out);
        self.responder_ephemeral.encode(out);
        self.payload_1.encode(out);
        self.payload_2.encode(out);
        self.message_1.encode(out);
        self.message_2.encode(out);
    }
}

/// A snow error as a value to compare: only whether there was one matters, not which.
fn snow<T>(result: Result<T, snow::Error>) -> Option<T> {
    result.ok()
}

/// Whether our refusal is the one snow does not make: an all-zero Diffie-Hellman result.
fn ours_alone(error: &ChannelError) -> bool {
    *error == ChannelError::Crypto(CryptoError::NonContributory)
}

/// Runs the handshake decoded from `data` through both implementations, then the transport
/// operations that follow it.
pub fn channel_snow(data: &[u8]) {
    let Some((hs, ops)) = decode_all::<Handshake, TransportOp>(data) else { return };
    let Some((mut ours, mut theirs)) = handshake(&hs) else { return };
    transport(&mut ours, &mut theirs, &ops);
}

type Ends = (Transport, Transport);
type SnowEnds = (snow::TransportState, snow::TransportState);

/// The handshake on both sides; the two pairs of transport ends if it completed.
fn handshake(hs: &Handshake) -> Option<(Ends, SnowEnds)> {
    let mut buf = vec![0u8; MAX_NOISE_MESSAGE_LEN];
    let responder_static = PrivateKey::from_bytes(hs.responder_static);
    let builder = || snow::Builder::new(must(PROTOCOL_NAME.parse(), "the protocol name"));
    let responder_public = responder_static.public_key();

    // Message 1: the same bytes from the same keys and payload.
    let initiator =
        Initiator::new(PROLOGUE, PrivateKey::from_bytes(hs.initiator_static), responder_public);
    let ours =
        initiator.write_message_1(PrivateKey::from_bytes(hs.initiator_ephemeral), &hs.payload_1.0);
    let mut snow_initiator = must(
        builder()
            .local_private_key(&hs.initiator_static)
            .and_then(|b| b.remote_public_key(responder_public.as_bytes()))
            .and_then(|b| b.prologue(PROLOGUE))
            .map(|b| b.fixed_ephemeral_key_for_testing_only(&hs.initiator_ephemeral))
            .and_then(snow::Builder::build_initiator),
        "snow initiator",
    );
    let theirs = snow(snow_initiator.write_message(&hs.payload_1.0, &mut buf));
    let (awaiting, message_1) = match (ours, theirs) {
        (Ok((awaiting, message)), Some(n)) => {
            assert_eq!(message, buf[..n], "message 1 differs from snow's");
            (awaiting, message)
        }
        (Err(error), _) if ours_alone(&error) => return None,
        (Err(_), None) => return None,
        (ours, theirs) => fail(format_args!("message 1: ours {ours:?}, snow's {theirs:?}")),
    };

    // Both responders read it, damaged the same way.
    let message_1 = hs.message_1.apply(&message_1);
    let responder = Responder::new(PROLOGUE, responder_static);
    let mut snow_responder = must(
        builder()
            .local_private_key(&hs.responder_static)
            .and_then(|b| b.prologue(PROLOGUE))
            .map(|b| b.fixed_ephemeral_key_for_testing_only(&hs.responder_ephemeral))
            .and_then(snow::Builder::build_responder),
        "snow responder",
    );
    let ours = responder.read_message_1(&message_1);
    let theirs = snow(snow_responder.read_message(&message_1, &mut buf));
    let received = match (ours, theirs) {
        (Ok(received), Some(n)) => {
            assert_eq!(received.payload(), &buf[..n], "message 1's payload differs from snow's");
            let remote = snow_responder.get_remote_static().map(<[u8]>::to_vec);
            assert_eq!(remote.as_deref(), Some(&received.remote_static().as_bytes()[..]));
            received
        }
        (Err(error), _) if ours_alone(&error) => return None,
        (Err(_), None) => return None,
        (ours, theirs) => fail(format_args!("read message 1: ours {ours:?}, snow's {theirs:?}")),
    };

    // Message 2: the same bytes.
    let ours =
        received.write_message_2(PrivateKey::from_bytes(hs.responder_ephemeral), &hs.payload_2.0);
    let theirs = snow(snow_responder.write_message(&hs.payload_2.0, &mut buf));
    let (responder_end, message_2) = match (ours, theirs) {
        (Ok((end, message)), Some(n)) => {
            assert_eq!(message, buf[..n], "message 2 differs from snow's");
            (end, message)
        }
        (Err(error), _) if ours_alone(&error) => return None,
        (Err(_), None) => return None,
        (ours, theirs) => fail(format_args!("message 2: ours {ours:?}, snow's {theirs:?}")),
    };

    // Both initiators read it, damaged the same way.
    let message_2 = hs.message_2.apply(&message_2);
    let ours = awaiting.read_message_2(&message_2);
    let theirs = snow(snow_initiator.read_message(&message_2, &mut buf));
    let initiator_end = match (ours, theirs) {
        (Ok((end, payload)), Some(n)) => {
            assert_eq!(payload, buf[..n], "message 2's payload differs from snow's");
            end
        }
        (Err(error), _) if ours_alone(&error) => return None,
        (Err(_), None) => return None,
        (ours, theirs) => fail(format_args!("read message 2: ours {ours:?}, snow's {theirs:?}")),
    };
    let hash = initiator_end.handshake_hash();
    assert_eq!(&hash[..], snow_initiator.get_handshake_hash(), "initiator's handshake hash");
    assert_eq!(&hash[..], snow_responder.get_handshake_hash(), "responder's handshake hash");
    assert_eq!(hash, responder_end.handshake_hash(), "our two handshake hashes");
    let snow_ends = (
        must(snow_initiator.into_transport_mode(), "snow initiator's transport"),
        must(snow_responder.into_transport_mode(), "snow responder's transport"),
    );
    Some(((initiator_end, responder_end), snow_ends))
}

/// The same transport operations on both pairs of ends: every frame written is the same, every
/// frame read is accepted by both or refused by both, with the same plaintext.
fn transport(ours: &mut Ends, theirs: &mut SnowEnds, ops: &[TransportOp]) {
    let mut buf = vec![0u8; MAX_NOISE_MESSAGE_LEN];
    // Frames written, per direction (index 1: to the responder).
    let mut written: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    for op in ops {
        let (to_responder, frame) = match op {
            TransportOp::Write { to_responder, plaintext } => {
                let (ours, theirs) = if *to_responder {
                    (&mut ours.0, &mut theirs.0)
                } else {
                    (&mut ours.1, &mut theirs.1)
                };
                let frame = must(ours.write(&plaintext.0), "write");
                let n = must(theirs.write_message(&plaintext.0, &mut buf), "snow write");
                assert_eq!(frame, buf[..n], "a transport frame differs from snow's");
                written[usize::from(*to_responder)].push(frame);
                continue;
            }
            TransportOp::Deliver { to_responder, index, mutation } => {
                let frames = &written[usize::from(*to_responder)];
                let Some(i) = usize::from(*index).checked_rem(frames.len()) else { continue };
                (*to_responder, mutation.apply(&frames[i]))
            }
            TransportOp::Raw { to_responder, bytes } => (*to_responder, bytes.0.clone()),
        };
        let (ours, theirs) =
            if to_responder { (&mut ours.1, &mut theirs.1) } else { (&mut ours.0, &mut theirs.0) };
        let mine = ours.read(&frame);
        let snows = snow(theirs.read_message(&frame, &mut buf)).map(|n| buf[..n].to_vec());
        assert_eq!(mine.as_ref().ok(), snows.as_ref(), "a transport frame read: ours {mine:?}");
    }
}
