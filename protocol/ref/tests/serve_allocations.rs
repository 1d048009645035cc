//! The relay's actor relays a message without a heap allocation once its buffers are warm: the
//! claim of `serve::actor`'s "In place" paragraph, counted.
//!
//! The actor runs on a thread of its own, as `e2e-ref serve` runs it, and `allocation_counter`
//! counts that thread's allocations over its whole run. This test plays the connections on another thread: it hands the actor frames in
//! buffers taken from the actor's spares (as a connection's reader does) and copies each frame the
//! actor queues to a wire buffer before giving its buffer back (as a writer does). Two runs that
//! differ only in how many messages Alice sends Bob, one at a time, give the allocations of the
//! messages in between: start-up, handshakes and warming up count in both and cancel out.
//!
//! Before the in-place actor the same path allocated, per message, the copy of the frame the
//! server decrypted, the delivery, the `Ack` and the lists they came in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, ClientEvent, DurableChange, LinkId, Snapshot};
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{AckStatus, Body, LinkFrame, Name, frame_len};
use e2e_ref::serve::actor::{self, ActorHandle, Command, Outbound};
use e2e_ref::serve::{Store, StoreError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::sync::{Notify, mpsc};

/// Messages relayed in the shorter run (buffers, lists and channel blocks grow to their working
/// size), and how many more the longer run relays.
const WARM_UP: usize = 200;
const COUNTED: usize = 1000;

/// How long the test waits for any one frame from the actor.
const WAIT: Duration = Duration::from_secs(20);

/// A store that keeps nothing. A message relayed to a recipient online changes nothing durable, so
/// the store is not on the path counted here; redb's own allocations, which depend on how the
/// set-up's frames happen to fall into the actor's batches (one commit or two), would only blur
/// the count.
struct Forgetful;

impl Store for Forgetful {
    type Error = StoreError;

    fn static_key(&self, fresh: impl FnOnce() -> PrivateKey) -> Result<PrivateKey, StoreError> {
        Ok(fresh())
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot::default())
    }

    fn commit(&self, _changes: &[DurableChange]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One client and the connection the test plays for it.
struct Peer {
    client: Client,
    link: LinkId,
    outbound: mpsc::Receiver<Outbound>,
    /// Keeps the connection's kill switch alive (the actor notifies it for a slow reader).
    _kill: Arc<Notify>,
}

/// The relay's actor and the two clients on it, connected (e2e: with a session Alice → Bob).
struct Setup {
    actor: ActorHandle,
    rng: ChaCha20Rng,
    /// Alice, then Bob (see [`Side`]).
    peers: [Peer; 2],
}

impl Setup {
    /// The actor, loaded from a fresh store and running on a thread that counts its allocations
    /// (returned when every handle is gone), and two clients connected to it.
    async fn new(e2e: bool) -> (Self, std::thread::JoinHandle<u64>) {
        let (loaded, actor, key) = actor::load(Forgetful, Some(5), false, None).unwrap();
        let counted = std::thread::spawn(move || {
            allocation_counter::measure(|| drop(loaded.run())).count_total
        });
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let peer = |who: &str, link: u64, rng: &mut ChaCha20Rng| {
            let name = Name::new(who).unwrap();
            let static_key = PrivateKey::generate(rng);
            let client = if e2e {
                Client::with_e2e(name, static_key, key, Peers::generate(rng))
            } else {
                Client::new(name, static_key, key)
            };
            let (out, outbound) = mpsc::channel(256);
            (Peer { client, link: LinkId(link), outbound, _kill: Arc::new(Notify::new()) }, out)
        };
        let (alice, alice_out) = peer("alice", 1, &mut rng);
        let (bob, bob_out) = peer("bob", 2, &mut rng);
        let mut setup = Self { actor, rng, peers: [alice, bob] };
        for (peer, out) in setup.peers.iter().zip([alice_out, bob_out]) {
            let (link, kill) = (peer.link, Arc::clone(&peer._kill));
            setup.actor.send(Command::Open { link, out, kill }).await.unwrap();
        }
        for side in [Side::Alice, Side::Bob] {
            let init = setup.peers[side as usize].client.connect(&mut setup.rng).unwrap();
            setup.hand_to_actor(side, &init).await;
            // HandshakeResp, then (e2e) the answer to the upload sent on `Connected`.
            setup.answer(side, 1 + usize::from(e2e)).await;
        }
        if e2e {
            // The first message starts the session: `FetchBundle`, `Bundle`, then the message.
            let bob = setup.peers[Side::Bob as usize].client.name().clone();
            let body = Body::new(b"hello".to_vec()).unwrap();
            let alice = &mut setup.peers[Side::Alice as usize].client;
            let out = alice.send_e2e(&bob, body, &mut setup.rng).unwrap();
            for frame in out.transmit {
                setup.hand_to_actor(Side::Alice, &frame).await;
            }
            setup.answer(Side::Alice, 1).await; // the bundle; the message goes out
            setup.answer(Side::Bob, 1).await; // the message
            setup.answer(Side::Alice, 1).await; // its Ack
        }
        (setup, counted)
    }

    /// Hands `frame` to the actor as `side`'s reader would: copied into a spare buffer.
    async fn hand_to_actor(&mut self, side: Side, frame: &[u8]) {
        let mut buffer = self.actor.buffers().take();
        buffer.extend_from_slice(frame);
        let link = self.peers[side as usize].link;
        self.actor.send(Command::Frame { link, frame: buffer }).await.unwrap();
    }

    /// The next frame the actor queued for `side`, appended to `wire`, its buffer given back.
    async fn take_from_actor(&mut self, side: Side, wire: &mut Vec<u8>) {
        let outbound = &mut self.peers[side as usize].outbound;
        let item = tokio::time::timeout(WAIT, outbound.recv()).await.unwrap().unwrap();
        let Outbound::Frame(frame) = item else { panic!("a frame, not a marker") };
        wire.extend_from_slice(&frame);
        self.actor.buffers().give(frame);
    }

    /// Handles `count` frames for `side` and sends its answers, if any.
    async fn answer(&mut self, side: Side, count: usize) {
        for _ in 0..count {
            let mut wire = Vec::new();
            self.take_from_actor(side, &mut wire).await;
            let peer = &mut self.peers[side as usize];
            let mut out = peer.client.handle(&wire, &mut self.rng).unwrap();
            if out.events.contains(&ClientEvent::Connected) && peer.client.identity().is_some() {
                out.transmit.push(peer.client.upload_bundle().unwrap());
            }
            for frame in out.transmit {
                self.hand_to_actor(side, &frame).await;
            }
        }
    }

    /// Alice's next message, `size` bytes, as a frame.
    fn message(&mut self, seq: usize, size: usize) -> Vec<u8> {
        let bob = self.peers[Side::Bob as usize].client.name().clone();
        let mut body = vec![0u8; size];
        body[..8].copy_from_slice(&(seq as u64).to_le_bytes());
        let body = Body::new(body).unwrap();
        let mut frame = Vec::new();
        let alice = &mut self.peers[Side::Alice as usize].client;
        if alice.identity().is_some() {
            alice.send_e2e_into(&bob, &body, &mut self.rng, &mut frame).unwrap();
        } else {
            alice.send_into(&bob, &body, &mut frame).unwrap();
        }
        frame
    }

    /// Relays `count` messages of Alice's to Bob, one at a time, as the load generator sends
    /// them, and checks that each arrived once, in order, acknowledged as relayed.
    async fn relay(&mut self, count: usize, size: usize) {
        let frames: Vec<Vec<u8>> = (0..count).map(|i| self.message(i, size)).collect();
        let mut to_bob = Vec::new();
        let mut to_alice = Vec::new();
        for frame in &frames {
            self.hand_to_actor(Side::Alice, frame).await;
            self.take_from_actor(Side::Bob, &mut to_bob).await;
            self.take_from_actor(Side::Alice, &mut to_alice).await;
        }
        for (i, frame) in frames_of(&to_bob).enumerate() {
            let out = self.peers[Side::Bob as usize].client.handle(frame, &mut self.rng).unwrap();
            let [ClientEvent::Received { body, .. }] = out.events.as_slice() else {
                panic!("Bob receives one message per frame: {:?}", out.events)
            };
            let seq = u64::from_le_bytes(body.as_bytes()[..8].try_into().unwrap());
            assert_eq!((seq, body.as_bytes().len()), (i as u64, size));
        }
        let mut acks = 0;
        for frame in frames_of(&to_alice) {
            let out = self.peers[Side::Alice as usize].client.handle(frame, &mut self.rng).unwrap();
            let [ClientEvent::Acked { status: AckStatus::Relayed, .. }] = out.events.as_slice()
            else {
                panic!("Alice hears a Relayed ack per message: {:?}", out.events)
            };
            acks += 1;
        }
        assert_eq!(acks, count);
    }
}

/// Which client: its index in [`Setup::peers`].
#[derive(Debug, Clone, Copy)]
enum Side {
    Alice = 0,
    Bob = 1,
}

/// The frames one after the other on `wire`.
fn frames_of(mut wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = frame_len::<LinkFrame>(wire).ok()??;
        let (frame, rest) = wire.split_at(len);
        wire = rest;
        Some(frame)
    })
}

/// The actor's allocations over a whole run in which Alice sends Bob `messages` messages of
/// `size` bytes.
fn actor_allocations(e2e: bool, messages: usize, size: usize) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let counted = runtime.block_on(async {
        let (mut setup, counted) = Setup::new(e2e).await;
        setup.relay(messages, size).await;
        counted
    });
    // The setup, and with it the last handle, is gone: the actor has stopped.
    counted.join().unwrap()
}

/// The allocations of `COUNTED` relayed messages: the longer run's less the shorter's.
fn relayed_allocations(e2e: bool, size: usize) -> u64 {
    let shorter = actor_allocations(e2e, WARM_UP, size);
    let longer = actor_allocations(e2e, WARM_UP + COUNTED, size);
    eprintln!(
        "{}: the actor allocated {shorter} times in a run of {WARM_UP} messages, {longer} in one \
         of {}",
        if e2e { "e2e" } else { "hop" },
        WARM_UP + COUNTED
    );
    longer.saturating_sub(shorter)
}

/// Fewer allocations than one per hundred messages, where the allocating path made several per
/// message: what may remain is a list or a map growing now and then, not a buffer per message.
const BOUND: u64 = (COUNTED / 100) as u64;

#[test]
fn the_actor_relays_a_hop_message_without_allocating() {
    let counted = relayed_allocations(false, 1024);
    assert!(counted <= BOUND, "{counted} allocations for {COUNTED} more hop messages");
}

#[test]
fn the_actor_relays_an_e2e_message_without_allocating() {
    let counted = relayed_allocations(true, 1024);
    assert!(counted <= BOUND, "{counted} allocations for {COUNTED} more e2e messages");
}
