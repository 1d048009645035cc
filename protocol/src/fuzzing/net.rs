//! Hand-driven channel ends: a client end facing the real [`Server`], and a server end facing a real
//! [`Client`]. They hold exactly the keys that end would hold, so whatever they seal is as authentic
//! as the real role's frames, and a target can put any plaintext into a valid channel.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::channel::{
    Initiator, MAX_NOISE_MESSAGE_LEN, PROLOGUE, Responder, TRANSPORT_OVERHEAD, Transport,
};
use crate::error::Error;
use crate::hop::ContentPolicy;
use crate::roles::{Client, ClientEvent, ClientOutputs, LinkId, Server, ServerOutputs};
use crate::suite::PrivateKey;
use crate::wire::{Codec, LinkFrame, LinkKind, Message, Name};

use super::must;

/// The seeded RNG every target draws its keys from.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Seals `plaintext` (cut to the largest transport plaintext) and frames it as `Transport`.
pub fn seal(transport: &mut Transport, plaintext: &[u8]) -> Vec<u8> {
    let plaintext =
        plaintext.get(..MAX_NOISE_MESSAGE_LEN - TRANSPORT_OVERHEAD).unwrap_or(plaintext);
    let ciphertext = must(transport.write(plaintext), "seal");
    must(LinkFrame::transport(ciphertext), "frame").encode()
}

/// Seals an encoded message.
pub fn seal_message(transport: &mut Transport, message: &Message) -> Vec<u8> {
    seal(transport, &message.encode())
}

/// Opens a frame the other (real) end sent on this channel. The real role must only send frames
/// that open, in order, and hold a message.
pub fn open(transport: &mut Transport, frame: &[u8]) -> Message {
    let frame = must(LinkFrame::decode(frame), "a role sent a malformed link frame");
    assert_eq!(frame.kind(), LinkKind::Transport, "a role sent a non-transport frame on a channel");
    let plaintext = must(transport.read(frame.noise()), "a role sent a frame that does not open");
    must(Message::decode(&plaintext), "a role sealed a malformed message")
}

/// A client end, driven by hand, of a channel to the real server.
#[derive(Clone, Debug)]
pub struct HandClient {
    /// The link the server knows this channel by.
    pub link: LinkId,
    /// The name the server welcomed.
    pub name: Name,
    /// The client's side of the channel.
    pub transport: Transport,
}

/// Runs a handshake on `link` with `static_key` and `payload` as message 1's payload. Returns the
/// server's result, the client end if the server answered with a `Welcome`, and the
/// `HandshakeInit` frame. The link is then *unconfirmed*: the caller confirms it by sealing `Ready`.
pub fn hand_handshake<P: ContentPolicy>(
    server: &mut Server<P>,
    link: LinkId,
    static_key: PrivateKey,
    payload: &[u8],
    rng: &mut ChaCha20Rng,
) -> (Result<ServerOutputs, Error>, Option<HandClient>, Vec<u8>) {
    let initiator = Initiator::new(PROLOGUE, static_key, server.public_key());
    let Ok((awaiting, noise)) = initiator.write_message_1(PrivateKey::generate(rng), payload)
    else {
        // Only an over-long payload fails; the server never sees it.
        return (Ok(ServerOutputs::default()), None, Vec::new());
    };
    let init = must(LinkFrame::handshake_init(noise), "frame").encode();
    let result = server.handle(link, &init, rng);
    let mut client = None;
    if let Ok(out) = &result {
        for (to, frame) in &out.transmit {
            assert_eq!(*to, link, "the server answered a handshake on another link");
            let frame = must(LinkFrame::decode(frame), "the server sent a malformed frame");
            assert_eq!(
                frame.kind(),
                LinkKind::HandshakeResp,
                "the server answered with a non-response"
            );
            let (transport, reply) = must(
                awaiting.read_message_2(frame.noise()),
                "the server's message 2 does not open",
            );
            let reply = must(Message::decode(&reply), "the server's message 2 holds no message");
            assert!(
                matches!(reply, Message::Welcome { .. } | Message::Refused { .. }),
                "message 2 carried {reply:?}"
            );
            if let Message::Welcome { name } = reply {
                client = Some(HandClient { link, name, transport });
            } else {
                assert!(out.close.contains(&link), "a refused link stays open");
            }
        }
    }
    (result, client, init)
}

/// Registers `name` on `link` and confirms the link (`Ready`): a client end the server relays to.
pub fn hand_register<P: ContentPolicy>(
    server: &mut Server<P>,
    link: LinkId,
    static_key: PrivateKey,
    name: &Name,
    rng: &mut ChaCha20Rng,
) -> HandClient {
    let payload = Message::Register { name: name.clone() }.encode();
    let (result, client, _) = hand_handshake(server, link, static_key, &payload, rng);
    must(result, "registration");
    let mut client = must(client.ok_or("refused"), "registration");
    let ready = seal_message(&mut client.transport, &Message::Ready);
    must(server.handle(link, &ready, rng), "Ready");
    client
}

/// A server end, driven by hand, of a real client's channel: answers `client.connect` with a
/// `Welcome` and reads its `Ready`. Returns the server's side of the channel.
pub fn hand_serve(
    client: &mut Client,
    server_key: &PrivateKey,
    rng: &mut ChaCha20Rng,
) -> Transport {
    let init = must(client.connect(rng), "connect");
    let init = must(LinkFrame::decode(&init), "the client sent a malformed HandshakeInit");
    let received = must(
        Responder::new(PROLOGUE, server_key.clone()).read_message_1(init.noise()),
        "the client's message 1 does not open",
    );
    let welcome = Message::Welcome { name: client.name().clone() }.encode();
    let (mut transport, noise) =
        must(received.write_message_2(PrivateKey::generate(rng), &welcome), "message 2");
    let resp = must(LinkFrame::handshake_resp(noise), "frame").encode();
    let out = must(client.handle(&resp, rng), "the client refused a genuine Welcome");
    for frame in &out.transmit {
        assert_eq!(open(&mut transport, frame), Message::Ready, "the client did not confirm");
    }
    transport
}

/// Checks that a client's refusal of authenticated content (`Dropped`, SPEC.md §7.2) moved only
/// its channel: `after`, the client that refused with `out`, must be `==` to `before` (the client
/// and the server end as they were before the frame was sealed) handed a message no client
/// expects from the server (`Ready`), sealed under the same nonce. And a refusal answers nothing.
pub fn assert_only_the_channel_moved(
    before: (Client, Transport),
    after: &Client,
    out: &ClientOutputs,
    rng: &mut ChaCha20Rng,
) {
    let (mut reference, mut server_end) = before;
    let ready = seal_message(&mut server_end, &Message::Ready);
    let ref_out = must(reference.handle(&ready, rng), "reference");
    assert!(matches!(ref_out.events[..], [ClientEvent::Dropped { .. }]), "{ref_out:?}");
    assert!(*after == reference, "refused content changed more than the channel: {out:?}");
    assert!(out.transmit.is_empty() && out.events.len() == 1, "{out:?}");
}
