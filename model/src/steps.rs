//! Memos of the roles' steps, which also hash-cons the roles (spec/MODEL.md §1, "Speed").
//!
//! Every step of the model calls a role of the protocol crate — a client, the server, the
//! attacker's impostors — on an input: a frame, a message to seal, an RNG stream. The role, the
//! input and the stream determine the result completely (the roles are sans-IO and draw
//! randomness only from the RNG passed in). The same role state meets the same input in many
//! states of a run: Alice's client does not change while Bob or the attacker act. A [`StepMemo`]
//! remembers, for one kind of step, the role before, the input, the role after and the result,
//! and hands them out again when the same role state (compared in full) meets the same input.
//!
//! Two things follow. A step that was computed once is not computed again: no clone of the role,
//! no cryptography, no hashing of the changed role. And every state that reaches the same role
//! state by memoised steps shares one copy of it, with its hash computed once, instead of owning
//! a copy of its own: a role a step computes is first looked up in an [`Interner`], which hands
//! out the copy already there when the contents are equal (two orders of independent steps on the
//! server give equal servers). Then a memo's check that the role is the one it stored is mostly a
//! pointer comparison.
//!
//! Exactness: a hit needs an equal key (the whole input) and an equal role (`Shared`'s equality:
//! the same allocation, or equal hash and equal contents), so it returns exactly what the call
//! returned on the same inputs, and puts the AEAD seals the call made back into the thread's
//! ghost seal log (`e2e_protocol::seal_log`), so the log is the same as if the call had run. A memo lives in one [`crate::E2eModel`], whose seed and active
//! seeded flaws do not change during a check. A full shard of a memo (or of an interner) is
//! emptied and fills again, as the primitive memos are: a long search keeps memoising the steps
//! of the states it visits now, not only those of its first states.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use e2e_protocol::Error;
use e2e_protocol::roles::{Client, ClientOutputs, LinkId, Server, ServerOutputs};
use e2e_protocol::seal_log::{self, Drained};
use e2e_protocol::wire::{Body, Envelope, Message, MessageId, Name};

use crate::world::{Impostor, Shared, Who, rng};

/// Shards of a memo (the checker's threads rarely wait for each other's lock).
const SHARDS: usize = 64;

/// [`SHARDS`] empty maps, each behind its lock.
fn shards<K, V>() -> Vec<Mutex<HashMap<K, V>>> {
    (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect()
}

/// The entries of all `shards`.
fn entries<K, V>(shards: &[Mutex<HashMap<K, V>>]) -> usize {
    shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
}

/// One copy of each role state the memos computed, by content hash.
pub struct Interner<T> {
    shards: Vec<Mutex<HashMap<u64, Shared<T>>>>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self { shards: shards() }
    }
}

impl<T> fmt::Debug for Interner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interner({} parts)", entries(&self.shards))
    }
}

impl<T: Hash + Clone + Eq> Interner<T> {
    /// The copy of `part` already kept (equal contents), else `part`, now kept. A different part
    /// with the same 64-bit hash is not kept: it stays a copy of its own (exact, a little slower).
    pub fn intern(&self, part: Shared<T>) -> Shared<T> {
        let hash = part.content_hash();
        let mut map = self.shards[(hash % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match map.get(&hash) {
            Some(kept) if *kept == part => kept.clone(),
            Some(_) => part,
            None => {
                if map.len() >= CAP / SHARDS {
                    map.clear();
                }
                map.insert(hash, part.clone());
                part
            }
        }
    }
}

/// Steps one memo keeps at most (and role states one interner keeps), [`SHARDS`] shards of an
/// equal share. A step holds two role states, most of them shared with the states of the run; a
/// full shard is emptied, so memory stays bounded.
const CAP: usize = 1 << 18;

/// One memoised step: the role before, the role after, the result, and the AEAD seals the step
/// made (the ghost seal log of spec/MODEL.md §4 records them for every step, memoised or not).
struct Step<T, R> {
    before: Shared<T>,
    after: Shared<T>,
    result: R,
    seals: Drained,
}

/// One shard of a memo: (the role's content hash, the input) → the step.
type Shard<T, K, R> = Mutex<HashMap<(u64, K), Step<T, R>>>;

/// Memo of one kind of step on parts of type `T`, with inputs `K` and results `R`.
pub struct StepMemo<T, K, R> {
    shards: Vec<Shard<T, K, R>>,
}

impl<T, K, R> Default for StepMemo<T, K, R> {
    fn default() -> Self {
        Self { shards: shards() }
    }
}

impl<T, K, R> fmt::Debug for StepMemo<T, K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StepMemo({} steps)", entries(&self.shards))
    }
}

impl<T: Hash + Clone + Eq, K: Hash + Eq, R: Clone> StepMemo<T, K, R> {
    /// Runs `step` on `part` with input `key`, or replays the stored step when `part` met `key`
    /// before: `part` becomes the role after the step (the interned copy) and the step's result is
    /// returned.
    pub fn apply(
        &self,
        interner: &Interner<T>,
        part: &mut Shared<T>,
        key: K,
        step: impl FnOnce(&mut T) -> R,
    ) -> R {
        let slot = (part.content_hash(), key);
        // By the role's hash alone, computed already: the key is hashed once, by the map.
        let shard = &self.shards[(slot.0 % SHARDS as u64) as usize];
        if let Some(hit) = shard.lock().unwrap_or_else(PoisonError::into_inner).get(&slot)
            && hit.before == *part
        {
            *part = hit.after.clone();
            seal_log::replay(&hit.seals);
            return hit.result.clone();
        }
        let before = part.clone();
        // The seals this step makes, apart from those of the calls before it in the same step
        // of the model, which go back into the log first, in their order.
        let earlier = seal_log::drain();
        let result = step(part.make_mut());
        let seals = seal_log::drain();
        seal_log::replay(&earlier);
        seal_log::replay(&seals);
        // Hashed once here, the copy kept in the memo and every state given it share the hash.
        *part = interner.intern(part.clone());
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= CAP / SHARDS {
            map.clear();
        }
        map.insert(slot, Step { before, after: part.clone(), result: result.clone(), seals });
        result
    }
}

/// One RNG stream of the model: `party`'s draw `counter` under the run's seed
/// ([`crate::world::rng`]). Part of a step's input: the same stream gives the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Draw {
    /// The run's seed.
    pub seed: u64,
    /// 0 Alice, 1 Bob, 2 the attacker.
    pub party: u64,
    /// The party's draw counter.
    pub counter: u32,
}

impl Draw {
    fn rng(self) -> rand_chacha::ChaCha20Rng {
        rng(self.seed, self.party, self.counter)
    }

    /// The stream, noting whether the call it is handed to draws from it.
    fn noted(self) -> Noted {
        Noted { stream: self.rng(), drew: false }
    }
}

/// What a call that is handed an RNG stream returned, and whether it drew from the stream; `None`
/// for an error.
pub type Drawn<T> = Option<(T, bool)>;

/// An RNG stream that notes whether anything was drawn from it. A call that drew nothing
/// computed nothing from its stream, so its party's next call may be handed the same stream and
/// still draws what no call drew before (spec/MODEL.md §1, "Randomness").
struct Noted {
    stream: rand_chacha::ChaCha20Rng,
    drew: bool,
}

impl rand_core::TryRng for Noted {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.drew = true;
        self.stream.try_next_u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.drew = true;
        self.stream.try_next_u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.drew = true;
        self.stream.try_fill_bytes(dst)
    }
}

impl rand_core::TryCryptoRng for Noted {}

/// What a client is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientInput {
    /// `Client::send_e2e`.
    SendE2e(Name, Body, Draw),
    /// `Client::send` (hop).
    SendHop(Name, Body),
    /// `Client::submit_e2e` of an envelope the client did not seal (M's relays).
    SubmitE2e(Name, Envelope),
    /// `Client::connect`.
    Connect(Draw),
    /// `Client::upload_bundle`.
    Upload,
    /// `Client::rotate_signed_prekey`.
    Rotate(Draw),
}

/// What the server is given (`Server::handle`, or the malicious server's `process`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerInput {
    Handle(LinkId, Vec<u8>, Draw),
    Process(LinkId, Vec<u8>),
}

/// What the malicious server does with a channel: open a frame, seal a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ChannelInput {
    Open(LinkId, Vec<u8>),
    Seal(LinkId, Box<Message>),
}

/// The memos of one model: each call of the protocol crate that changes a role in a step.
#[derive(Debug, Default)]
pub struct Steps {
    clients: Interner<Client>,
    servers: Interner<Server>,
    impostor_sets: Interner<Vec<Impostor>>,
    client: StepMemo<Client, ClientInput, Option<ClientOutputs>>,
    /// `Client::handle` of a frame, and whether it drew from its stream.
    handled: StepMemo<Client, (Vec<u8>, Draw), Drawn<ClientOutputs>>,
    /// `Server::handle` (whether it drew from its stream) or `Server::process` (no stream).
    server: StepMemo<Server, ServerInput, Drawn<ServerOutputs>>,
    channel: StepMemo<Server, ChannelInput, Option<Vec<u8>>>,
    impostors: StepMemo<Vec<Impostor>, (Who, Who, Envelope), Option<Body>>,
}

impl Steps {
    /// `client.handle(frame, draw's stream)`, and whether it drew from the stream; `None` for an
    /// error.
    pub fn handle(
        &self,
        client: &mut Shared<Client>,
        frame: &[u8],
        draw: Draw,
    ) -> Drawn<ClientOutputs> {
        self.handled.apply(&self.clients, client, (frame.to_vec(), draw), |c| {
            let mut stream = draw.noted();
            let out = c.handle(frame, &mut stream).ok()?;
            Some((out, stream.drew))
        })
    }

    /// `client.send_e2e(to, body, draw's stream)`; `None` for an error.
    pub fn send_e2e(
        &self,
        client: &mut Shared<Client>,
        to: &Name,
        body: Body,
        draw: Draw,
    ) -> Option<ClientOutputs> {
        let key = ClientInput::SendE2e(to.clone(), body.clone(), draw);
        self.client
            .apply(&self.clients, client, key, |c| c.send_e2e(to, body, &mut draw.rng()).ok())
    }

    /// `client.send(to, body)` (hop): its frame; `None` for an error.
    pub fn send_hop(&self, client: &mut Shared<Client>, to: &Name, body: Body) -> Option<Vec<u8>> {
        let key = ClientInput::SendHop(to.clone(), body.clone());
        self.one_frame(client, key, |c| c.send(to, body))
    }

    /// `client.submit_e2e(to, envelope)`: its frame; `None` for an error.
    pub fn submit_e2e(
        &self,
        client: &mut Shared<Client>,
        to: &Name,
        envelope: Envelope,
    ) -> Option<Vec<u8>> {
        let key = ClientInput::SubmitE2e(to.clone(), envelope.clone());
        self.one_frame(client, key, |c| c.submit_e2e(to, envelope))
    }

    /// `client.connect(draw's stream)`: its `HandshakeInit` frame; `None` for an error.
    pub fn connect(&self, client: &mut Shared<Client>, draw: Draw) -> Option<Vec<u8>> {
        self.frame(client, ClientInput::Connect(draw), |c| c.connect(&mut draw.rng()))
    }

    /// `client.upload_bundle()`: its frame; `None` for an error.
    pub fn upload(&self, client: &mut Shared<Client>) -> Option<Vec<u8>> {
        self.frame(client, ClientInput::Upload, Client::upload_bundle)
    }

    /// `client.rotate_signed_prekey(draw's stream)`: the upload that publishes the new signed
    /// prekey; `None` for an error.
    pub fn rotate(&self, client: &mut Shared<Client>, draw: Draw) -> Option<Vec<u8>> {
        self.frame(client, ClientInput::Rotate(draw), |c| c.rotate_signed_prekey(&mut draw.rng()))
    }

    /// A client call that returns one frame with its id (`send`, `submit_e2e`), memoised under
    /// `key`: the frame; `None` for an error.
    fn one_frame(
        &self,
        client: &mut Shared<Client>,
        key: ClientInput,
        call: impl FnOnce(&mut Client) -> Result<(MessageId, Vec<u8>), Error>,
    ) -> Option<Vec<u8>> {
        self.frame(client, key, |c| call(c).map(|(_, frame)| frame))
    }

    /// A client call that returns one frame, memoised under `key`: the frame; `None` for an
    /// error.
    fn frame(
        &self,
        client: &mut Shared<Client>,
        key: ClientInput,
        call: impl FnOnce(&mut Client) -> Result<Vec<u8>, Error>,
    ) -> Option<Vec<u8>> {
        let out = self.client.apply(&self.clients, client, key, |c| {
            let frame = call(c).ok()?;
            Some(ClientOutputs { transmit: vec![frame], events: Vec::new() })
        });
        out?.transmit.pop()
    }

    /// `server.handle(link, frame, draw's stream)`, and whether it drew from the stream; `None`
    /// for an error.
    pub fn serve(
        &self,
        server: &mut Shared<Server>,
        link: LinkId,
        frame: &[u8],
        draw: Draw,
    ) -> Drawn<ServerOutputs> {
        self.server.apply(
            &self.servers,
            server,
            ServerInput::Handle(link, frame.to_vec(), draw),
            |s| {
                let mut stream = draw.noted();
                let out = s.handle(link, frame, &mut stream).ok()?;
                Some((out, stream.drew))
            },
        )
    }

    /// `server.process(link, plaintext)`.
    pub fn process(
        &self,
        server: &mut Shared<Server>,
        link: LinkId,
        plaintext: Vec<u8>,
    ) -> ServerOutputs {
        let key = ServerInput::Process(link, plaintext.clone());
        self.server
            .apply(&self.servers, server, key, |s| Some((s.process(link, plaintext), false)))
            .map(|(out, _)| out)
            .unwrap_or_default()
    }

    /// `server.open_transport(link, frame)`: the plaintext; `None` for an error.
    pub fn open(&self, server: &mut Shared<Server>, link: LinkId, frame: &[u8]) -> Option<Vec<u8>> {
        self.channel.apply(&self.servers, server, ChannelInput::Open(link, frame.to_vec()), |s| {
            s.open_transport(link, frame).ok().map(|(_, plaintext)| plaintext)
        })
    }

    /// `server.seal_transport(link, message)`: the frame; `None` for an error.
    pub fn seal(
        &self,
        server: &mut Shared<Server>,
        link: LinkId,
        message: &Message,
    ) -> Option<Vec<u8>> {
        self.channel.apply(
            &self.servers,
            server,
            ChannelInput::Seal(link, Box::new(message.clone())),
            |s| s.seal_transport(link, message).ok(),
        )
    }

    /// The impostor posing as `to` tries `Peers::decrypt` on `envelope` from `from`, keeping its
    /// advanced state only when it opens: the body.
    pub fn impostor_decrypt(
        &self,
        impostors: &mut Shared<Vec<Impostor>>,
        from: Who,
        to: Who,
        envelope: &Envelope,
    ) -> Option<Body> {
        self.impostors.apply(&self.impostor_sets, impostors, (from, to, envelope.clone()), |all| {
            let imp = all.iter_mut().find(|i| i.impersonates == to)?;
            let mut peers = imp.peers.clone();
            let opened = peers.decrypt(&to.name(), &from.name(), envelope).ok()?;
            imp.peers = peers;
            Some(opened.body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Interner, StepMemo};
    use crate::world::Shared;
    use std::cell::Cell;

    #[test]
    fn a_stored_step_returns_the_same_part_and_result_without_running() {
        let memo: StepMemo<Vec<u8>, u8, usize> = StepMemo::default();
        let interner = Interner::default();
        let runs = Cell::new(0);
        let step = |v: &mut Vec<u8>, x: u8| {
            runs.set(runs.get() + 1);
            v.push(x);
            v.len()
        };
        let mut first = Shared::new(vec![1]);
        let mut second = Shared::new(vec![1]);
        assert_eq!(memo.apply(&interner, &mut first, 7, |v| step(v, 7)), 2);
        assert_eq!(memo.apply(&interner, &mut second, 7, |v| step(v, 7)), 2);
        assert_eq!(runs.get(), 1, "the equal part met the same input: replayed");
        assert_eq!(*second, vec![1, 7]);
        assert!(first.shares(&second), "interned: one copy");
        // Another input, or another part, runs the step.
        assert_eq!(memo.apply(&interner, &mut second, 8, |v| step(v, 8)), 3);
        let mut third = Shared::new(vec![2]);
        assert_eq!(memo.apply(&interner, &mut third, 7, |v| step(v, 7)), 2);
        assert_eq!(runs.get(), 3);
        assert_eq!(*third, vec![2, 7]);
    }
}
