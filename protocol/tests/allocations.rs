#![cfg(test)]
//! Heap allocations per message, counted (not timed): each step of a message's path allocates its
//! output buffers and, where the API hands back a list, that list; a received frame is decrypted
//! into one buffer, which becomes the body.
//!
//! The counting allocator is installed by the `allocation-counter` crate in this test binary only.

use allocation_counter::{AllocationInfo, measure};
use e2e_protocol::e2e::identity::IdentityKeyPair;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::e2e::prekeys::PrekeyStore;
use e2e_protocol::e2e::ratchet::Session;
use e2e_protocol::e2e::{bundle, x3dh};
use e2e_protocol::roles::{Client, LinkId, Server};
use e2e_protocol::suite::{PrivateKey, Secret};
use e2e_protocol::wire::{Body, FetchedBundle, Name};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const ALICE: LinkId = LinkId(1);
const BOB: LinkId = LinkId(2);

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

struct World {
    server: Server,
    alice: Client,
    bob: Client,
    rng: ChaCha20Rng,
}

impl World {
    fn new(e2e: bool) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let server = Server::new(PrivateKey::generate(&mut rng));
        let mut make = |who: &str| {
            let key = PrivateKey::generate(&mut rng);
            if e2e {
                Client::with_e2e(name(who), key, server.public_key(), Peers::generate(&mut rng))
            } else {
                Client::new(name(who), key, server.public_key())
            }
        };
        let (alice, bob) = (make("alice"), make("bob"));
        let mut world = Self { server, alice, bob, rng };
        for link in [ALICE, BOB] {
            let (client, rng) = world.client(link);
            let init = client.connect(rng).unwrap();
            world.deliver(link, &init);
        }
        if e2e {
            for link in [ALICE, BOB] {
                let upload = world.client(link).0.upload_bundle().unwrap();
                world.deliver(link, &upload);
            }
            // One message each way: the next one from Alice is a plain ratchet message.
            for (link, to) in [(ALICE, "bob"), (BOB, "alice")] {
                let body = Body::new(b"hi".to_vec()).unwrap();
                let (client, rng) = world.client(link);
                let out = client.send_e2e(&name(to), body, rng).unwrap();
                for frame in out.transmit {
                    world.deliver(link, &frame);
                }
            }
        }
        world
    }

    fn client(&mut self, link: LinkId) -> (&mut Client, &mut ChaCha20Rng) {
        (if link == ALICE { &mut self.alice } else { &mut self.bob }, &mut self.rng)
    }

    fn deliver(&mut self, link: LinkId, frame: &[u8]) {
        let out = self.server.handle(link, frame, &mut self.rng).unwrap();
        for (to, frame) in out.transmit {
            let (client, rng) = self.client(to);
            let reply = client.handle(&frame, rng).unwrap();
            for frame in reply.transmit {
                self.deliver(to, &frame);
            }
        }
    }
}

/// The allocations of each step of one message from Alice to Bob, and of the `Ack` back.
#[derive(Debug)]
struct Steps {
    send: AllocationInfo,
    server: AllocationInfo,
    receive: AllocationInfo,
    ack: AllocationInfo,
}

/// `rounds` messages of `size` bytes from Alice to Bob, each step counted.
fn relay(e2e: bool, size: usize, rounds: usize) -> Vec<Steps> {
    let mut world = World::new(e2e);
    let bob = name("bob");
    let mut all = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let body = Body::new(vec![7; size]).unwrap();
        let mut frame = Vec::new();
        let send = measure(|| {
            frame = if e2e {
                world.alice.send_e2e(&bob, body, &mut world.rng).unwrap().transmit.remove(0)
            } else {
                world.alice.send(&bob, body).unwrap().1
            };
        });
        let mut out = None;
        let server = measure(|| out = Some(world.server.handle(ALICE, &frame, &mut world.rng)));
        let out = out.unwrap().unwrap();
        let to = |link| &out.transmit.iter().find(|(l, _)| *l == link).unwrap().1;
        let receive = measure(|| drop(world.bob.handle(to(BOB), &mut world.rng).unwrap()));
        let ack = measure(|| drop(world.alice.handle(to(ALICE), &mut world.rng).unwrap()));
        all.push(Steps { send, server, receive, ack });
    }
    all
}

/// The counts of one message in the steady state: the third, once the first ones have filled the
/// tables the path touches (replay windows, maps), which is not per-message work.
fn steady(e2e: bool, size: usize) -> Steps {
    let steps = relay(e2e, size, 3).pop().unwrap();
    println!("{} {size} B: {steps:#?}", if e2e { "e2e" } else { "hop" });
    steps
}

/// The allocations of each step, and what each one is:
///
/// | step | hop | e2e |
/// |---|---|---|
/// | Alice sends | the frame | the frame (the ratchet seals the envelope into it), the `transmit` and `events` lists |
/// | the server | the channel plaintext (which becomes the body), Bob's frame, Alice's `Ack`, two lists | the same (the plaintext holds the envelope) |
/// | Bob receives | the channel plaintext (which becomes the body), the event list | the same: the envelope is decrypted in the channel plaintext |
/// | Alice reads the `Ack` | the channel plaintext, the event list | the same |
///
/// Every allocation is an output, except the `Ack`'s plaintext and the e2e server's (the envelope
/// is re-sealed into Bob's frame). The same at every size: nothing grows with the message.
#[test]
fn allocations_per_message_are_the_outputs() {
    for size in [64, 1024, 16 * 1024] {
        let counts = |s: &Steps| {
            [s.send.count_total, s.server.count_total, s.receive.count_total, s.ack.count_total]
        };
        assert_eq!(counts(&steady(false, size)), [1, 5, 2, 2], "hop, {size} bytes");
        assert_eq!(counts(&steady(true, size)), [3, 5, 2, 2], "e2e, {size} bytes");
    }
}

/// A receiver keeps nothing of a message once it has handed the message to its user: over 200
/// messages after the first few, neither Bob (receiving) nor Alice (reading `Ack`s) holds one more
/// byte of heap than before. (Counted in bytes: a table growing by reallocation frees as many
/// blocks as it allocates, but not as many bytes.)
#[test]
fn receivers_keep_nothing_per_message() {
    for e2e in [false, true] {
        let steps = relay(e2e, 1024, 203);
        let held: i64 =
            steps[3..].iter().map(|s| s.receive.bytes_current + s.ack.bytes_current).sum();
        assert_eq!(held, 0, "e2e: {e2e}");
    }
}

/// `Session::encrypt` allocates its ciphertext once, with room for the tag, at every plaintext
/// length — also those shorter than the tag, where a buffer sized from the plaintext alone would
/// grow when the tag is appended.
#[test]
fn a_ratchet_message_is_sealed_in_one_allocation() {
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let spk = PrivateKey::generate(&mut rng);
    let mut alice = Session::initiator(Secret::new([1; 32]), b"AD".to_vec(), spk.public_key());
    alice.encrypt(b"first", &mut rng).unwrap(); // turns the ratchet
    for len in [0, 1, 15, 16, 17, 1000] {
        let plaintext = vec![7; len];
        let mut sealed = None;
        let info = measure(|| sealed = Some(alice.encrypt(&plaintext, &mut rng).unwrap()));
        assert_eq!(info.count_total, 1, "{len} bytes");
        assert_eq!(sealed.unwrap().1.len(), len + 16);
    }
}

/// X3DH's key material — the prefix and up to four DH outputs — goes into one buffer of its final
/// size, erased when dropped: never reallocated, which would free a copy of it unerased. So each
/// side, with a one-time prekey (the longest input), allocates two buffers: that one and the `AD`.
/// Counted with the default backend: AWS-LC allocates inside each X25519 (its own key objects), so
/// under `backend-aws-lc` the count says nothing about this buffer, which is the same code above
/// `suite/` on both backends.
#[test]
#[cfg_attr(
    feature = "backend-aws-lc",
    ignore = "AWS-LC's X25519 allocates its own key objects; counted with the default backend"
)]
fn x3dh_holds_its_key_material_in_one_allocation() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (alice, bob) = (IdentityKeyPair::generate(&mut rng), IdentityKeyPair::generate(&mut rng));
    let mut store = PrekeyStore::generate(&bob, &mut rng);
    let upload = store.prepare_upload(&bob).unwrap();
    let fetched = FetchedBundle {
        identity: *upload.identity(),
        signed_prekey: *upload.signed_prekey(),
        one_time_prekey: upload.one_time_prekeys().first().copied(),
    };
    let (alice_name, bob_name) = (name("alice"), name("bob"));
    let verified = bundle::verify_fetched(&bob_name, &fetched, None).unwrap();
    let ephemeral = PrivateKey::generate(&mut rng);
    let mut initiated = None;
    let info = measure(|| {
        initiated = Some(x3dh::initiate(&alice, &alice_name, &verified, ephemeral).unwrap());
    });
    assert_eq!(info.count_total, 2, "initiate");
    let initiated = initiated.unwrap();
    let header = initiated.header();
    assert!(header.one_time_prekey_id.is_some());
    let mut responded = None;
    let info = measure(|| {
        responded = Some(x3dh::respond(&bob, &bob_name, &alice_name, &store, &header).unwrap());
    });
    assert_eq!(info.count_total, 2, "respond");
    assert_eq!(responded.unwrap().shared_secret(), initiated.shared_secret());
}

/// `Codec::encode` sizes its buffer from the frame's `body_len_hint`, so that a frame is encoded
/// in one allocation: a link frame of every kind, and the messages of a conversation — also at the
/// longest name with the shortest content, where a hint a byte short would reallocate.
#[test]
fn a_frame_is_encoded_in_one_allocation() {
    use e2e_protocol::wire::{
        Codec, Envelope, LinkFrame, LinkKind, MAX_NAME_LEN, Message, MessageId,
    };
    let longest = name(&"n".repeat(MAX_NAME_LEN));
    let mut messages = vec![
        Message::FetchBundle { name: longest.clone() },
        Message::Ack { id: MessageId(1), status: e2e_protocol::wire::AckStatus::Queued },
    ];
    for len in [0, 1, 100, 16 * 1024] {
        let body = Body::new(vec![7; len]).unwrap();
        messages.push(Message::Send { id: MessageId(2), to: longest.clone(), body: body.clone() });
        messages.push(Message::Deliver { id: MessageId(3), from: longest.clone(), body });
        if len > 0 {
            let envelope = Envelope::new(vec![9; len]).unwrap();
            let to = longest.clone();
            messages.push(Message::E2eSend { id: MessageId(4), to, envelope: envelope.clone() });
            messages.push(Message::E2eDeliver {
                id: MessageId(5),
                from: longest.clone(),
                envelope,
            });
        }
    }
    for message in &messages {
        let mut bytes = Vec::new();
        let info = measure(|| bytes = message.encode());
        assert_eq!(info.count_total, 1, "{}", message.type_name());
        assert_eq!(Message::decode(&bytes).as_ref(), Ok(message));
    }
    for (kind, len) in [
        (LinkKind::HandshakeInit, 96),
        (LinkKind::HandshakeResp, 48),
        (LinkKind::Transport, 17),
        (LinkKind::Transport, 5000),
    ] {
        let frame = LinkFrame::new(kind, vec![3; len]).unwrap();
        let mut bytes = Vec::new();
        let info = measure(|| bytes = frame.encode());
        assert_eq!(info.count_total, 1, "{} of {len} bytes", frame.type_name());
        assert_eq!(bytes.len(), e2e_protocol::wire::HEADER_LEN + len);
    }
}

/// A client seals a message into one buffer sized from the message's bounds (SPEC.md §3.3), not
/// merely large enough: for a hop `Send` and an e2e `E2eSend` the frame's capacity exceeds its
/// length by exactly what the recipient's name is shorter than `MAX_NAME_LEN`, the one field the
/// buffer is sized for at its longest — at every body length. (A buffer a byte short would
/// reallocate and double; one sized by a wrong formula would hold kilobytes unused per frame.)
#[test]
fn a_client_reserves_its_frame_for_the_longest_name_and_nothing_more() {
    use e2e_protocol::wire::MAX_NAME_LEN;
    let slack = MAX_NAME_LEN - "bob".len();
    for e2e in [false, true] {
        let mut world = World::new(e2e);
        for len in [0, 1, 100, 16 * 1024] {
            let body = Body::new(vec![7; len]).unwrap();
            let frame = if e2e {
                world.alice.send_e2e(&name("bob"), body, &mut world.rng).unwrap().transmit.remove(0)
            } else {
                world.alice.send(&name("bob"), body).unwrap().1
            };
            assert_eq!(frame.capacity(), frame.len() + slack, "e2e: {e2e}, {len} bytes");
        }
    }
}

/// A driver of the in-place API's buffers, kept from message to message: the frame being
/// written or read, each role's output lists (cleared, never dropped) and the pool sent frames
/// and read bodies go back to.
#[derive(Default)]
struct Buffers {
    frame: Vec<u8>,
    server: e2e_protocol::roles::ServerOutputs,
    client: e2e_protocol::roles::ClientOutputs,
    pool: e2e_protocol::roles::FramePool,
}

/// `rounds` messages of `size` bytes from Alice to Bob through the in-place API, each step
/// counted as in [`relay`]; every buffer is given back once used, as a driver that reuses them
/// does, and what each step hands out is checked.
fn relay_in_place(e2e: bool, size: usize, rounds: usize) -> Vec<Steps> {
    use e2e_protocol::roles::{ClientEvent, ServerEvent};
    let mut world = World::new(e2e);
    let mut io = Buffers::default();
    let bob = name("bob");
    let body = Body::new(vec![7; size]).unwrap();
    let mut all = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let send = measure(|| {
            if e2e {
                world.alice.send_e2e_into(&bob, &body, &mut world.rng, &mut io.frame).unwrap();
            } else {
                world.alice.send_into(&bob, &body, &mut io.frame).unwrap();
            }
        });
        let server = measure(|| {
            let (frame, out, pool) = (&mut io.frame, &mut io.server, &mut io.pool);
            world.server.handle_in_place(ALICE, frame, &mut world.rng, out, pool).unwrap();
        });
        assert!(io.frame.is_empty());
        let mut frames = std::mem::take(&mut io.server.transmit);
        assert_eq!(frames.iter().map(|(link, _)| *link).collect::<Vec<_>>(), [BOB, ALICE]);
        let [receive, ack] = [BOB, ALICE].map(|link| {
            let (_, mut frame) = frames.remove(0);
            let client = if link == BOB { &mut world.bob } else { &mut world.alice };
            measure(|| {
                let (out, pool) = (&mut io.client, &mut io.pool);
                client.handle_in_place(&mut frame, &mut world.rng, out, pool).unwrap();
                for event in out.events.drain(..) {
                    match event {
                        ClientEvent::Received { body: got, .. } => {
                            assert_eq!(got, body);
                            pool.recycle(got.into_buffer());
                        }
                        ClientEvent::Acked { .. } => {}
                        other => panic!("{other:?}"),
                    }
                }
                pool.recycle(frame);
            })
        });
        io.server.transmit = frames;
        for event in io.server.events.drain(..) {
            if let ServerEvent::Read { body: read, .. } = event {
                assert_eq!(read, body);
                io.pool.recycle(read.into_buffer());
            }
        }
        all.push(Steps { send, server, receive, ack });
    }
    all
}

/// Through the in-place API, with a driver that gives every frame and body back and clears its
/// lists, a message allocates nothing on its way, hop or e2e, at any size: every buffer it
/// travels in was there before it (the frame Alice writes, the pool's, the lists' room). The
/// counts are of the fifth message, once the first ones have filled the pool and the lists and
/// grown the buffers, which change hands from message to message, to the message's size.
#[test]
fn in_place_a_message_allocates_nothing() {
    for size in [64, 1024, 16 * 1024] {
        for e2e in [false, true] {
            let steps = relay_in_place(e2e, size, 5).pop().unwrap();
            println!("in place, e2e: {e2e}, {size} B: {steps:#?}");
            let counts =
                [steps.send, steps.server, steps.receive, steps.ack].map(|info| info.count_total);
            assert_eq!(counts, [0, 0, 0, 0], "e2e: {e2e}, {size} bytes");
        }
    }
}

/// The server seals a delivery into one buffer sized from the message's bounds, as a client
/// sizes its frames: the capacity exceeds the length by exactly what the sender's name is
/// shorter than `MAX_NAME_LEN`, at every content length, hop and e2e; and the `Ack` into one
/// sized as every short message's frame is (a 64-byte message at most: two headers, the
/// message, the tag).
#[test]
fn the_server_reserves_a_delivery_for_the_longest_name_and_nothing_more() {
    use e2e_protocol::wire::{HEADER_LEN, MAX_NAME_LEN};
    let slack = MAX_NAME_LEN - "alice".len();
    for e2e in [false, true] {
        let mut world = World::new(e2e);
        for len in [1, 100, 16 * 1024] {
            let body = Body::new(vec![7; len]).unwrap();
            let frame = if e2e {
                world.alice.send_e2e(&name("bob"), body, &mut world.rng).unwrap().transmit.remove(0)
            } else {
                world.alice.send(&name("bob"), body).unwrap().1
            };
            let out = world.server.handle(ALICE, &frame, &mut world.rng).unwrap();
            let [(to_bob, delivery), (to_alice, ack)] = &out.transmit[..] else { panic!() };
            assert_eq!((*to_bob, *to_alice), (BOB, ALICE));
            assert_eq!(delivery.capacity(), delivery.len() + slack, "e2e: {e2e}, {len} bytes");
            assert_eq!(ack.capacity(), 2 * HEADER_LEN + 64 + 16, "e2e: {e2e}, {len} bytes");
            for (link, frame) in &out.transmit {
                let (client, rng) = world.client(*link);
                client.handle(frame, rng).unwrap();
            }
        }
    }
}
