//! What the benches share: seeded RNGs, bodies, and a relay world (server, Alice, Bob) brought to
//! the steady state a message path is measured in.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{
    Client, ClientEvent, ClientOutputs, FramePool, LinkId, Server, ServerOutputs,
};
use e2e_protocol::suite::PrivateKey;
use e2e_protocol::wire::{Body, Name};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The three message sizes of the issue: 64 B, 1 KiB and 16 KiB (the largest body, MAX_BODY_LEN).
pub const SIZES: [usize; 3] = [64, 1024, 16 * 1024];

/// Bytes of associated data the ratchet authenticates with each message of the benches' sessions
/// (SPEC §11.1, §12.3): `IK_A || IK_B || Name(alice) || Name(bob) || header`.
pub const RATCHET_AD_LEN: usize =
    2 * 64 + (1 + "alice".len()) + (1 + "bob".len()) + e2e_protocol::e2e::ratchet::HEADER_LEN;

/// A seeded RNG: every bench run draws the same keys.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn name(text: &str) -> Name {
    must(Name::new(text))
}

pub fn body(len: usize) -> Body {
    must(Body::new((0..len).map(|i| (i % 251) as u8).collect()))
}

/// How many times [`measured`] has run in this process.
static MEASURED_RUNS: AtomicU64 = AtomicU64::new(0);

/// Runs one iteration of a bench's routine, the part criterion times. Every path and every
/// primitive of the floor goes through it, so that an instruction counter can count exactly these
/// iterations and nothing else: `scripts/count-instructions` runs the bench binary under
/// callgrind collecting only inside this function (`--toggle-collect`) and divides by
/// [`measured_runs`]. Never inlined, for that; the call costs both sides alike (a few
/// instructions). What the routine returns is dropped in here, so that freeing it (a key
/// object, a returned buffer) is counted as criterion times it.
#[inline(never)]
pub fn measured<R>(routine: impl FnOnce() -> R) {
    MEASURED_RUNS.fetch_add(1, Ordering::Relaxed);
    drop(black_box(routine()));
}

/// How many iterations [`measured`] has run.
pub fn measured_runs() -> u64 {
    MEASURED_RUNS.load(Ordering::Relaxed)
}

/// Setup code may stop the bench with a message: a failure here is a broken fixture, not a result.
pub fn must<T, E: std::fmt::Debug>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("bench fixture failed: {error:?}"),
    }
}

/// A server and two registered clients, Alice on link 1 and Bob on link 2, with a driver that
/// delivers every frame until nothing is left in flight.
pub struct World {
    pub server: Server,
    pub alice: Client,
    pub bob: Client,
    pub rng: ChaCha20Rng,
    /// The buffers a driver of the roles' in-place API keeps from message to message.
    pub io: Buffers,
}

/// A driver's reused buffers: the frame being written or read, the output lists of each role
/// (cleared between calls, never dropped) and the pool sent frames go back to.
#[derive(Default)]
pub struct Buffers {
    pub frame: Vec<u8>,
    pub server: ServerOutputs,
    pub client: ClientOutputs,
    pub pool: FramePool,
}

pub const ALICE_LINK: LinkId = LinkId(1);
pub const BOB_LINK: LinkId = LinkId(2);

impl World {
    /// Both clients connected (handshake and key confirmation done). With `e2e`, both have
    /// uploaded their bundles and exchanged one message each way, so the next message from Alice
    /// is an ordinary ratchet message in an answered session.
    pub fn new(e2e: bool) -> Self {
        let mut rng = rng(7);
        let server = Server::new(PrivateKey::generate(&mut rng));
        let make = |who: &str, rng: &mut ChaCha20Rng| {
            let key = PrivateKey::generate(rng);
            if e2e {
                Client::with_e2e(name(who), key, server.public_key(), Peers::generate(rng))
            } else {
                Client::new(name(who), key, server.public_key())
            }
        };
        let alice = make("alice", &mut rng);
        let bob = make("bob", &mut rng);
        let mut world = Self { server, alice, bob, rng, io: Buffers::default() };
        for link in [ALICE_LINK, BOB_LINK] {
            let (client, rng) = world.client(link);
            let init = must(client.connect(rng));
            world.deliver_to_server(link, &init);
        }
        if e2e {
            for link in [ALICE_LINK, BOB_LINK] {
                let upload = must(world.client(link).0.upload_bundle());
                world.deliver_to_server(link, &upload);
            }
            for (from, to) in [(ALICE_LINK, "bob"), (BOB_LINK, "alice")] {
                let (client, rng) = world.client(from);
                let out = must(client.send_e2e(&name(to), body(8), rng));
                for frame in out.transmit {
                    world.deliver_to_server(from, &frame);
                }
            }
        }
        world
    }

    /// The client on `link`, and the RNG (borrowed together).
    fn client(&mut self, link: LinkId) -> (&mut Client, &mut ChaCha20Rng) {
        let client = if link == ALICE_LINK { &mut self.alice } else { &mut self.bob };
        (client, &mut self.rng)
    }

    /// Hands `frame` from the client on `link` to the server and delivers everything that follows.
    fn deliver_to_server(&mut self, link: LinkId, frame: &[u8]) {
        let out = must(self.server.handle(link, frame, &mut self.rng));
        for (to, frame) in out.transmit {
            let (client, rng) = self.client(to);
            let reply = must(client.handle(&frame, rng));
            for event in &reply.events {
                assert!(
                    !matches!(event, ClientEvent::Dropped { .. } | ClientEvent::SendFailed { .. }),
                    "bench fixture: {event:?}"
                );
            }
            for frame in reply.transmit {
                self.deliver_to_server(to, &frame);
            }
        }
    }
}
