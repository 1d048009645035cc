//! `bundle_parse`: prekey bundles into the server's upload path (`UploadBundle` through
//! [`Server::handle`]) and the client's fetch path ([`verify_fetched`], and `Bundle` through
//! [`Client::handle`]) — SPEC.md §10.3, §15.
//!
//! Signatures are made with real identity keys where the input asks for a genuine one, so the
//! fuzzer reaches the rules behind the signature check (counts, duplicate ids, the directory's
//! accumulation), and the harness checks both roles against a model of §10.3 and §15.2 written from
//! the spec: the server's verdict and count; what a fetch hands out — each one-time prekey at most
//! once, oldest first, and to each requester at most one per upload of the owner (later fetches get
//! the bundle without one); that a fetch is answered once, to the requester, and that the owner
//! (online here) is sent `PrekeysLow` with the count left exactly when the fetch took a one-time
//! prekey and left at most `PREKEYS_LOW_WATER` (after the answer, on the same channel when owner
//! and requester are one); that an upload is answered once and sends no notice; that everything
//! the server stores passes the client's check; and that the client starts a session exactly when
//! [`verify_fetched`] accepts the bundle.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, OnceLock};

use arbitrary::Arbitrary;
use rand_chacha::ChaCha20Rng;

use crate::channel::Transport;
use crate::e2e::bundle::verify_fetched;
use crate::e2e::identity::IdentityKeyPair;
use crate::e2e::peers::Peers;
use crate::e2e::{E2eError, MAX_ONE_TIME_PREKEYS, PREKEYS_LOW_WATER};
use crate::roles::{Client, ClientEvent, LinkId, Server, ServerEvent};
use crate::suite::{PrivateKey, PublicKey, Signature, VerifyingKey};
use crate::wire::{
    BundleRefusal, Codec, FetchedBundle, HEADER_LEN, IdentityPublic, Message, Name,
    OneTimePrekeyPublic, SignedPrekeyPublic, UploadedBundle,
};

use super::hop_server::body_of;
use super::input::{Bytes, Encode, NameChoice, decode_all, name, variant};
use super::net::{HandClient, hand_register, hand_serve, open, rng, seal, seal_message};
use super::{fail, must};

/// An X25519 public key.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyChoice {
    /// One of three valid keys (`n` modulo 3).
    Pool(u8),
    /// One of three keys of small order (`n` modulo 3): 0, 1, and a point of order 8.
    LowOrder(u8),
    /// Any 32 bytes.
    Raw([u8; 32]),
}

impl Encode for KeyChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Pool(n) => {
                variant(out, 0, 3);
                n.encode(out);
            }
            Self::LowOrder(n) => {
                variant(out, 1, 3);
                n.encode(out);
            }
            Self::Raw(bytes) => {
                variant(out, 2, 3);
                bytes.encode(out);
            }
        }
    }
}

/// An identity `IK`.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub enum IdentityChoice {
    /// One of three real identities (`n` modulo 3), whose signatures the harness can make.
    Pool(u8),
    /// Any keys.
    Raw {
        /// `IK_dh`.
        dh: KeyChoice,
        /// `IK_sig`, any 32 bytes.
        sign: [u8; 32],
    },
}

impl Encode for IdentityChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Pool(n) => {
                variant(out, 0, 2);
                n.encode(out);
            }
            Self::Raw { dh, sign } => {
                variant(out, 1, 2);
                dh.encode(out);
                sign.encode(out);
            }
        }
    }
}

/// The signed prekey's signature.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub enum SignatureChoice {
    /// Made by the pool identity (the first one for a raw identity) over the bundle's fields.
    Genuine,
    /// The genuine one with byte `pos` (modulo 64) XORed with `xor` (0 taken as 1).
    Flipped {
        /// Which byte.
        pos: u8,
        /// The mask.
        xor: u8,
    },
    /// Any 64 bytes.
    Raw([u8; 64]),
}

impl Encode for SignatureChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Genuine => variant(out, 0, 3),
            Self::Flipped { pos, xor } => {
                variant(out, 1, 3);
                pos.encode(out);
                xor.encode(out);
            }
            Self::Raw(bytes) => {
                variant(out, 2, 3);
                bytes.encode(out);
            }
        }
    }
}

/// The core of a bundle: identity and signed prekey.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Core {
    /// `IK`.
    pub identity: IdentityChoice,
    /// `spk_id`.
    pub spk_id: u32,
    /// `SPK`.
    pub spk: KeyChoice,
    /// `spk_sig`.
    pub signature: SignatureChoice,
}

impl Encode for Core {
    fn encode(&self, out: &mut Vec<u8>) {
        self.identity.encode(out);
        self.spk_id.encode(out);
        self.spk.encode(out);
        self.signature.encode(out);
    }
}

/// A batch of one-time prekeys: `count` keys with ids `first_id + i · step` (wrapping; a step of
/// 0 repeats one id), valid keys except a small-order one at position `low_order_at`.
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Batch {
    /// How many.
    pub count: u8,
    /// The first id.
    pub first_id: u32,
    /// The id step.
    pub step: u8,
    /// Where a small-order key goes, if anywhere.
    pub low_order_at: Option<u8>,
}

impl Encode for Batch {
    fn encode(&self, out: &mut Vec<u8>) {
        self.count.encode(out);
        self.first_id.encode(out);
        self.step.encode(out);
        self.low_order_at.encode(out);
    }
}

/// One step.
#[derive(Arbitrary, Clone, PartialEq, Eq, Debug)]
pub enum Op {
    /// alice (`false`) or bob (`true`) uploads a bundle to the server.
    Upload {
        /// Which uploader.
        bob: bool,
        /// Identity and signed prekey.
        core: Core,
        /// One-time prekeys.
        batch: Batch,
    },
    /// alice or bob fetches a bundle; with `to_client`, the server's answer is then handed to the
    /// client as it is.
    Fetch {
        /// Which fetcher.
        bob: bool,
        /// Whose bundle.
        name: NameChoice,
        /// Whether the client gets the answer.
        to_client: bool,
    },
    /// A `Bundle` for `name` handed to the client; with `queue`, a message waits for it.
    ClientBundle {
        /// Whose bundle it claims to be.
        name: NameChoice,
        /// Identity and signed prekey.
        core: Core,
        /// The one-time prekey, if any.
        one_time: Option<(u32, KeyChoice)>,
        /// Whether a message waits for the bundle.
        queue: bool,
    },
    /// The client's user verifies an identity for `name` (§14.2).
    Pin {
        /// For whom.
        name: NameChoice,
        /// The identity.
        identity: IdentityChoice,
    },
    /// Arbitrary bytes as the body of an `UploadBundle` message, from alice.
    RawUpload(Bytes),
    /// Arbitrary bytes as the body of a `Bundle` message, to the client.
    RawBundle(Bytes),
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Upload { bob, core, batch } => {
                variant(out, 0, 6);
                bob.encode(out);
                core.encode(out);
                batch.encode(out);
            }
            Self::Fetch { bob, name, to_client } => {
                variant(out, 1, 6);
                bob.encode(out);
                name.encode(out);
                to_client.encode(out);
            }
            Self::ClientBundle { name, core, one_time, queue } => {
                variant(out, 2, 6);
                name.encode(out);
                core.encode(out);
                match one_time {
                    None => false.encode(out),
                    Some((id, key)) => {
                        true.encode(out);
                        id.encode(out);
                        key.encode(out);
                    }
                }
                queue.encode(out);
            }
            Self::Pin { name, identity } => {
                variant(out, 3, 6);
                name.encode(out);
                identity.encode(out);
            }
            Self::RawUpload(bytes) => {
                variant(out, 4, 6);
                bytes.encode(out);
            }
            Self::RawBundle(bytes) => {
                variant(out, 5, 6);
                bytes.encode(out);
            }
        }
    }
}

/// Keys and roles, made once: the server with alice and bob connected by hand, and a real client
/// (`carol`) whose server end is driven by hand.
#[derive(Clone)]
struct World {
    server: Server,
    uploaders: [HandClient; 2],
    client: Client,
    client_end: Transport,
    identities: [IdentityKeyPair; 3],
    pool: [PublicKey; 3],
    rng: ChaCha20Rng,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut rng = rng(0x42554e);
        let server_key = PrivateKey::generate(&mut rng);
        let mut server = Server::new(server_key.clone());
        let alice = hand_register(
            &mut server,
            LinkId(1),
            PrivateKey::generate(&mut rng),
            &name("alice"),
            &mut rng,
        );
        let bob = hand_register(
            &mut server,
            LinkId(2),
            PrivateKey::generate(&mut rng),
            &name("bob"),
            &mut rng,
        );
        let key = PrivateKey::generate(&mut rng);
        let peers = Peers::generate(&mut rng);
        let mut client = Client::with_e2e(name("carol"), key, server_key.public_key(), peers);
        let client_end = hand_serve(&mut client, &server_key, &mut rng);
        let identities = core::array::from_fn(|_| IdentityKeyPair::generate(&mut rng));
        let pool = core::array::from_fn(|_| PrivateKey::generate(&mut rng).public_key());
        World { server, uploaders: [alice, bob], client, client_end, identities, pool, rng }
    })
}

/// Small-order X25519 points: u = 0, u = 1, and a point of order 8.
fn low_order(n: u8) -> PublicKey {
    let mut key = [0u8; 32];
    match n % 3 {
        0 => {}
        1 => key[0] = 1,
        _ => {
            let order_8 = *b"\xe0\xebz|;A\xb8\xae\x16V\xe3\xfa\xf1\x9f\xc4j\xda\x09\x8d\xeb\x9c2\xb1\xfd\x86b\x05\x16_I\xb8\x00";
            key = order_8;
        }
    }
    PublicKey::from_bytes(key)
}

/// What the model keeps per name (§15.2).
#[derive(Clone, Debug)]
struct Stored {
    identity: IdentityPublic,
    signed_prekey: SignedPrekeyPublic,
    one_time: VecDeque<OneTimePrekeyPublic>,
    /// Who took a one-time prekey since the owner's last upload: each requester gets one per
    /// upload.
    takers: BTreeSet<Name>,
}

/// The state of one run.
struct Run {
    world: World,
    /// The model of the server's directory.
    directory: BTreeMap<Name, Stored>,
    /// The identities the client's user verified.
    pins: BTreeMap<Name, IdentityPublic>,
    /// Messages waiting at the client, per peer.
    queued: BTreeMap<Name, usize>,
}

/// Runs the operations decoded from `data`.
pub fn bundle_parse(data: &[u8]) {
    let mut run = Run {
        world: world().clone(),
        directory: BTreeMap::new(),
        pins: BTreeMap::new(),
        queued: BTreeMap::new(),
    };
    let Some(((), ops)) = decode_all::<(), Op>(data) else { return };
    for op in ops {
        run.step(&op);
    }
}

impl Run {
    fn key(&self, choice: KeyChoice) -> PublicKey {
        match choice {
            KeyChoice::Pool(n) => self.world.pool[usize::from(n % 3)],
            KeyChoice::LowOrder(n) => low_order(n),
            KeyChoice::Raw(bytes) => PublicKey::from_bytes(bytes),
        }
    }

    /// The identity, and the index of the key pair that signs "genuine" signatures for it.
    fn identity(&self, choice: IdentityChoice) -> (IdentityPublic, usize) {
        match choice {
            IdentityChoice::Pool(n) => {
                let signer = usize::from(n % 3);
                (self.world.identities[signer].public(), signer)
            }
            IdentityChoice::Raw { dh, sign } => {
                (IdentityPublic { dh: self.key(dh), sign: VerifyingKey::from_bytes(sign) }, 0)
            }
        }
    }

    fn core(&self, core: &Core) -> (IdentityPublic, SignedPrekeyPublic) {
        let (identity, signer) = self.identity(core.identity);
        let key = self.key(core.spk);
        // Ed25519 signatures are deterministic: the one made for these fields in an earlier input
        // is the one signing them now would make.
        let genuine = || {
            let pair = &self.world.identities[signer];
            memo(&GENUINE, (signer, core.spk_id, key), || {
                pair.sign_prekey(core.spk_id, key).signature
            })
        };
        let signature = match core.signature {
            SignatureChoice::Genuine => genuine(),
            SignatureChoice::Flipped { pos, xor } => {
                let mut bytes = *genuine().as_bytes();
                bytes[usize::from(pos % 64)] ^= xor.max(1);
                Signature::from_bytes(bytes)
            }
            SignatureChoice::Raw(bytes) => Signature::from_bytes(bytes),
        };
        (identity, SignedPrekeyPublic { id: core.spk_id, key, signature })
    }

    fn batch(&self, batch: &Batch) -> Vec<OneTimePrekeyPublic> {
        (0..batch.count)
            .map(|i| OneTimePrekeyPublic {
                id: batch.first_id.wrapping_add(u32::from(i) * u32::from(batch.step)),
                key: if batch.low_order_at == Some(i) {
                    low_order(i)
                } else {
                    self.world.pool[usize::from(i % 3)]
                },
            })
            .collect()
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Upload { bob, core, batch } => {
                let (identity, signed_prekey) = self.core(core);
                let upload =
                    must(UploadedBundle::new(identity, signed_prekey, self.batch(batch)), "upload");
                self.upload(usize::from(*bob), &Message::UploadBundle { bundle: upload }.encode());
            }
            Op::RawUpload(bytes) => self.upload(0, &framed(0x30, &bytes.0)),
            Op::Fetch { bob, name, to_client } => {
                self.fetch(usize::from(*bob), name.name(), *to_client)
            }
            Op::ClientBundle { name, core, one_time, queue } => {
                let (identity, signed_prekey) = self.core(core);
                let one_time_prekey =
                    one_time.map(|(id, key)| OneTimePrekeyPublic { id, key: self.key(key) });
                let bundle = FetchedBundle { identity, signed_prekey, one_time_prekey };
                if *queue {
                    self.queue(&name.name());
                }
                self.deliver_to_client(&Message::Bundle { name: name.name(), bundle }.encode());
            }
            Op::RawBundle(bytes) => self.deliver_to_client(&framed(0x34, &bytes.0)),
            Op::Pin { name, identity } => {
                let (identity, _) = self.identity(*identity);
                must(self.world.client.verify_peer(name.name(), identity), "verify_peer");
                self.pins.insert(name.name(), identity);
            }
        }
    }

    /// Seals `plaintext` on uploader `who`'s channel; checks the server's verdict against the model.
    fn upload(&mut self, who: usize, plaintext: &[u8]) {
        let uploader = self.world.uploaders[who].clone();
        let frame = seal(&mut self.world.uploaders[who].transport, plaintext);
        let out =
            must(self.world.server.handle(uploader.link, &frame, &mut self.world.rng), "upload");
        let Ok(Message::UploadBundle { bundle }) = Message::decode(plaintext) else {
            assert!(matches!(out.events[..], [ServerEvent::Dropped { .. }]), "{out:?}");
            return;
        };
        let replies: Vec<Message> = out
            .transmit
            .iter()
            .map(|(link, frame)| {
                assert_eq!(*link, uploader.link, "an upload answered elsewhere");
                open(&mut self.world.uploaders[who].transport, frame)
            })
            .collect();
        let expected = self.expected_upload(&uploader.name, &bundle);
        match (&replies[..], &expected) {
            ([Message::BundleStored { one_time_prekeys }], Ok(count)) => {
                assert_eq!(usize::from(*one_time_prekeys), *count, "stored count");
                let same =
                    self.directory.get(&uploader.name).filter(|s| s.identity == *bundle.identity());
                let mut one_time = same.map(|s| s.one_time.clone()).unwrap_or_default();
                one_time.extend(bundle.one_time_prekeys().iter().copied());
                // Every stored upload starts a new round: each requester may take one again.
                let stored = Stored {
                    identity: *bundle.identity(),
                    signed_prekey: *bundle.signed_prekey(),
                    one_time,
                    takers: BTreeSet::new(),
                };
                self.directory.insert(uploader.name.clone(), stored);
            }
            ([Message::BundleRefused { reason }], Err(want)) => {
                assert_eq!(reason, want, "refusal reason");
            }
            _ => fail(format_args!("upload answered {replies:?}, the model expects {expected:?}")),
        }
    }

    /// §10.3 and §15.2 from the spec: the verdict the server owes an upload from `name`.
    fn expected_upload(
        &self,
        name: &Name,
        upload: &UploadedBundle,
    ) -> Result<usize, BundleRefusal> {
        // Steps 1–3 for identity and signed prekey through the client's check; the one-time
        // prekeys' orders (step 2) come before the signature (step 3).
        let core = FetchedBundle {
            identity: *upload.identity(),
            signed_prekey: *upload.signed_prekey(),
            one_time_prekey: None,
        };
        // The pool's keys are known to be fine; only other keys need the (costly) check.
        let low_order = upload
            .one_time_prekeys()
            .iter()
            .any(|k| !self.world.pool.contains(&k.key) && k.key.is_low_order());
        match model_verify(name, &core, None) {
            Err(E2eError::Bundle(BundleRefusal::BadSignature)) if low_order => {
                return Err(BundleRefusal::LowOrderKey);
            }
            Err(E2eError::Bundle(reason)) => return Err(reason),
            Err(other) => fail(format_args!("verify_fetched without a pin: {other:?}")),
            Ok(_) if low_order => return Err(BundleRefusal::LowOrderKey),
            Ok(_) => {}
        }
        let same = self.directory.get(name).filter(|s| s.identity == *upload.identity());
        let stored_count = same.map_or(0, |s| s.one_time.len());
        let one_time = upload.one_time_prekeys();
        if one_time.len() + stored_count > MAX_ONE_TIME_PREKEYS {
            return Err(BundleRefusal::TooManyPrekeys);
        }
        let mut stored_ids: Vec<u32> = same
            .map(|s| {
                core::iter::once(s.signed_prekey.id)
                    .chain(s.one_time.iter().map(|k| k.id))
                    .collect()
            })
            .unwrap_or_default();
        for key in one_time {
            if key.id == upload.signed_prekey().id || stored_ids.contains(&key.id) {
                return Err(BundleRefusal::DuplicatePrekeyId);
            }
            stored_ids.push(key.id);
        }
        Ok(stored_count + one_time.len())
    }

    /// `who` fetches `name`'s bundle; checks the answer against the model, that it passes the
    /// client's check, and the `PrekeysLow` notice the owner is owed. With `to_client`, the answer
    /// goes on to the client.
    fn fetch(&mut self, who: usize, name: Name, to_client: bool) {
        let requester = self.world.uploaders[who].clone();
        let request = Message::FetchBundle { name: name.clone() };
        let frame = seal_message(&mut self.world.uploaders[who].transport, &request);
        let out =
            must(self.world.server.handle(requester.link, &frame, &mut self.world.rng), "fetch");
        // §15.2 from the model: the oldest one-time prekey, unless this requester took one since
        // the owner's last upload; and a notice to the owner, who is online here (alice and bob
        // stay connected), if that took one and left PREKEYS_LOW_WATER or fewer.
        let (expected, notice) = match self.directory.get_mut(&name) {
            None => (None, None),
            Some(stored) => {
                let one_time = if stored.takers.contains(&requester.name) {
                    None
                } else {
                    stored.one_time.pop_front()
                };
                if one_time.is_some() {
                    stored.takers.insert(requester.name.clone());
                }
                let left = stored.one_time.len();
                let notice = (one_time.is_some() && left <= PREKEYS_LOW_WATER).then_some(left);
                (Some((stored.clone(), one_time)), notice)
            }
        };
        let owner = self.world.uploaders.iter().position(|u| u.name == name);
        let notice = notice.map(|left| {
            let Some(owner) = owner else { fail(format_args!("{name} has a bundle but no link")) };
            (owner, left)
        });
        // The answer to the requester, first; then the notice to the owner, if it is owed.
        let want_frames = 1 + usize::from(notice.is_some());
        assert_eq!(out.transmit.len(), want_frames, "a fetch of {name} sent {out:?}");
        let (link, frame) = &out.transmit[0];
        assert_eq!(*link, requester.link, "a fetch answered elsewhere");
        let reply = open(&mut self.world.uploaders[who].transport, frame);
        if let Some((owner, left)) = notice {
            let (link, frame) = &out.transmit[1];
            assert_eq!(*link, self.world.uploaders[owner].link, "PrekeysLow sent elsewhere");
            let got = open(&mut self.world.uploaders[owner].transport, frame);
            let want = u16::try_from(left).unwrap_or(u16::MAX);
            assert_eq!(got, Message::PrekeysLow { one_time_prekeys: want }, "the notice");
        }
        let event = match (&expected, &reply) {
            (None, Message::NoBundle { name: n }) => {
                assert_eq!(*n, name);
                ServerEvent::NoBundle { by: requester.name.clone(), name: name.clone() }
            }
            (Some((stored, one_time)), Message::Bundle { name: n, bundle }) => {
                assert_eq!(*n, name);
                assert_eq!(bundle.identity, stored.identity);
                assert_eq!(bundle.signed_prekey, stored.signed_prekey);
                assert_eq!(
                    bundle.one_time_prekey, *one_time,
                    "not the oldest, or a second one for {}",
                    requester.name
                );
                must(
                    model_verify(&name, bundle, None),
                    "the server handed out a bundle the client refuses",
                );
                let one_time_prekey = one_time.map(|k| k.id);
                ServerEvent::BundleFetched { by: requester.name.clone(), name, one_time_prekey }
            }
            (stored, reply) => {
                fail(format_args!("fetch of {name}: stored {stored:?}, answered {reply:?}"))
            }
        };
        assert_eq!(out.events, [event], "the server's account of a fetch");
        assert!(out.close.is_empty(), "a fetch closed {:?}", out.close);
        if to_client {
            self.deliver_to_client(&reply.encode());
        }
    }

    /// The client has a message for `name` wait (or sends it, if a session exists).
    fn queue(&mut self, name: &Name) {
        let before = self.world.client.clone();
        match self.world.client.send_e2e(name, body_of(b"waiting"), &mut self.world.rng) {
            Ok(out) => {
                let mut direct = false;
                for frame in &out.transmit {
                    direct |=
                        matches!(open(&mut self.world.client_end, frame), Message::E2eSend { .. });
                }
                if !direct {
                    *self.queued.entry(name.clone()).or_default() += 1;
                }
            }
            Err(error) => {
                assert!(self.world.client == before, "send_e2e changed the client: {error:?}")
            }
        }
    }

    /// Seals `plaintext` into the client's channel. A `Bundle` or `NoBundle` nobody waits for is
    /// refused (`Dropped`); one that is awaited must start a session exactly when
    /// [`verify_fetched`] accepts the bundle (with the client's pin), and send what waited for it.
    fn deliver_to_client(&mut self, plaintext: &[u8]) {
        let frame = seal(&mut self.world.client_end, plaintext);
        let out = must(self.world.client.handle(&frame, &mut self.world.rng), "an authentic frame");
        for frame in &out.transmit {
            open(&mut self.world.client_end, frame);
        }
        let (name, expected) = match Message::decode(plaintext) {
            Ok(Message::Bundle { name, bundle }) => {
                let expected = model_verify(&name, &bundle, self.pins.get(&name));
                (name, expected)
            }
            Ok(Message::NoBundle { name }) => (name.clone(), Err(E2eError::NoBundle { name })),
            _ => (name("-"), Err(E2eError::NoSession { name: name("-") })),
        };
        let Some(waiting) = self.queued.remove(&name) else {
            // Malformed, or not asked for: refused, and nothing but the channel moves.
            assert!(matches!(out.events[..], [ClientEvent::Dropped { .. }]), "{out:?}");
            return;
        };
        match expected {
            Ok(()) => {
                let started = out.events.iter().any(
                    |e| matches!(e, ClientEvent::SessionStarted { peer, .. } if *peer == name),
                );
                assert!(started, "a valid bundle started no session: {out:?}");
                let sent =
                    out.events.iter().filter(|e| matches!(e, ClientEvent::Sent { .. })).count();
                assert_eq!((sent, out.transmit.len()), (waiting, waiting), "{out:?}");
            }
            Err(error) => {
                let want = ClientEvent::SendFailed { peer: name, error, discarded: waiting };
                assert_eq!(out.events, [want], "the client's verdict differs from verify_fetched");
                assert!(out.transmit.is_empty());
            }
        }
    }
}

/// A memo of a deterministic function the harness computes for its own model, shared by every input
/// of the process. Emptied when it reaches [`MEMO_LEN`], so it stays small.
type Memo<K, V> = OnceLock<Mutex<HashMap<K, V>>>;

/// Entries a [`Memo`] holds before it is emptied.
const MEMO_LEN: usize = 1 << 14;

/// Genuine signatures, per signer (an index into [`World::identities`]), prekey id and key.
static GENUINE: Memo<(usize, u32, PublicKey), Signature> = OnceLock::new();

/// The model's verdicts ([`verify_fetched`]) per name, bundle and pin.
static VERDICTS: Memo<(Name, FetchedBundle, Option<IdentityPublic>), Result<(), E2eError>> =
    OnceLock::new();

/// `compute()`, or the value it returned for `key` before: the same value, without the work.
fn memo<K: Hash + Eq, V: Clone>(memo: &Memo<K, V>, key: K, compute: impl FnOnce() -> V) -> V {
    let map = memo.get_or_init(|| Mutex::new(HashMap::new()));
    // A poisoned lock means a panic in another input's `compute`: the fuzzer has stopped already.
    let cached = map.lock().ok().and_then(|map| map.get(&key).cloned());
    if let Some(value) = cached {
        return value;
    }
    let value = compute();
    if let Ok(mut map) = map.lock() {
        if map.len() >= MEMO_LEN {
            map.clear();
        }
        map.insert(key, value.clone());
    }
    value
}

/// [`verify_fetched`], for the model: the harness checks each bundle the roles see against the
/// spec's verdict, and the fuzzer shows the same bundles again and again; the roles' own checks
/// (the system under test) are never memoized.
fn model_verify(
    name: &Name,
    bundle: &FetchedBundle,
    pin: Option<&IdentityPublic>,
) -> Result<(), E2eError> {
    memo(&VERDICTS, (name.clone(), *bundle, pin.copied()), || {
        verify_fetched(name, bundle, pin).map(|_| ())
    })
}

/// A message frame of type `frame_type` around an arbitrary body.
fn framed(frame_type: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&[crate::wire::VERSION, frame_type]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}
