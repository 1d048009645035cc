//! The transcript runs behind `hop_transcript.json` and `e2e_transcript.json`.
//!
//! A run is [`crate::runner::run_observed`] itself — the script, then attack steps — watched by a
//! [`Recorder`]. The runner reports every RNG draw with what it became and every frame with its link
//! and its receiver's verdict; the recorder adds what the roles keep private: every channel key and
//! nonce, every plaintext message, and for e2e every X3DH and ratchet key. Those come from *models*
//! written from SPEC.md with the suite's building blocks: a Noise handshake trace per link and the
//! Double Ratchet's chain of root keys, fed with the keys the runner drew. Each model result is
//! checked against the roles' real frames (a model key that does not open the real ciphertext stops
//! the generator), so the vectors can only describe what the code really did.
//!
//! The attacks after the script show the expected rejections: a network attacker replaying or
//! tampering with a frame, and (e2e) a malicious server replaying or tampering with an envelope.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::noise_trace::{HandshakeInputs, HandshakeTrace, channel_nonce, trace, transport_open};
use super::util::{compare_json, error_class, hex, key_json, object, str_field};
use super::wire::{envelope_json, message_json};
use super::{CaseResult, VectorError};
use crate::runner::{
    Call, Delivery, Draw, Handled, Observer, Party, Protocol, Purpose, RunConfig, Step,
};
use crate::transcript::Transcript;
use e2e_protocol::channel::{Initiator, PROLOGUE, Responder};
use e2e_protocol::e2e::bundle::verify_fetched;
use e2e_protocol::e2e::envelope::EnvelopeBody;
use e2e_protocol::e2e::identity::IdentityKeyPair;
use e2e_protocol::e2e::prekeys::PrekeyStore;
use e2e_protocol::e2e::ratchet::{ChainKey, RootKey};
use e2e_protocol::e2e::x3dh;
use e2e_protocol::error::Error;
use e2e_protocol::hop::{AllowAll, ContentPolicy, DenyWord};
use e2e_protocol::roles::{ClientEvent, LinkId, ServerLimits};
use e2e_protocol::suite::{PrivateKey, PublicKey, Secret, SigningKey};
use e2e_protocol::wire::{Codec, FetchedBundle, LinkFrame, LinkKind, Message, Name};

/// A channel's model: the handshake trace and the counter of each direction.
struct LinkModel {
    id: u64,
    client: Party,
    client_ephemeral: PrivateKey,
    server_ephemeral: Option<PrivateKey>,
    trace: Option<HandshakeTrace>,
    /// Message 1's payload, as the server read it.
    payload1: Option<Vec<u8>>,
    /// Next counter: client → server, server → client.
    counters: [u64; 2],
}

/// A ratchet chain, in order of creation (they alternate between the two parties).
struct Chain {
    owner: Party,
    ratchet_key: PrivateKey,
    /// `ratchet_key`'s public key, computed once.
    ratchet_public: PublicKey,
    peer_key: PublicKey,
    dh_out: [u8; 32],
    rk_before: [u8; 32],
    rk_after: [u8; 32],
    ck: [u8; 32],
}

/// The e2e model of one session: from its responder's side, or from its initiator's for a
/// session with a name that is no party of the run.
struct SessionModel {
    /// Who started it, and with which name.
    initiator: Party,
    responder: String,
    /// `EK_A`, which names the session (SPEC.md §11.3).
    base_key: PublicKey,
    sk: [u8; 32],
    ad: Vec<u8>,
    spk_b: PublicKey,
    x3dh: Value,
}

/// A client's e2e identity and first prekeys, as drawn (a client has more than one after a
/// [`Step::NewIdentity`]).
#[derive(Default)]
struct Identity {
    ik: [u8; 32],
    isk: [u8; 32],
    prekeys: Vec<(u32, PrivateKey)>,
}

impl Identity {
    fn pair(&self) -> IdentityKeyPair {
        IdentityKeyPair::from_parts(
            PrivateKey::from_bytes(self.ik),
            SigningKey::from_seed(self.isk),
        )
    }
}

/// Watches a run and records the cases of its transcript file.
struct Recorder {
    protocol: Protocol,
    run_id: String,
    /// Every draw: what it became, and its bytes.
    draws: Vec<(String, Vec<u8>)>,
    /// Every 32-byte draw as a key pair, public key first (computed once per draw: runs with
    /// hundreds of sessions look keys up for every envelope).
    drawn: Vec<(PublicKey, PrivateKey)>,
    /// Who drew each ratchet key: the author of an envelope whose header carries it.
    ratchet_keys_of: Vec<(PublicKey, Party)>,
    statics: BTreeMap<Party, PrivateKey>,
    /// Each client's identities, in the order they were drawn.
    identities: BTreeMap<Party, Vec<Identity>>,
    link_models: Vec<LinkModel>,
    /// Server ephemerals drawn for links that have no model yet (a replayed `HandshakeInit`).
    orphan_server_ephemerals: BTreeMap<u64, PrivateKey>,
    /// Every session, in order of creation.
    sessions: Vec<SessionModel>,
    /// The last bundle each client received for each name (a session with a name that is no
    /// party of the run is modelled from it, SPEC.md §11.1).
    fetched: BTreeMap<(Party, Name), FetchedBundle>,
    /// Every DH ratchet step in order of creation, with the index of its session.
    chains: Vec<(usize, Chain)>,
    cases: Vec<Value>,
    /// Client calls recorded so far (their cases are numbered `call-NN`).
    calls: usize,
    /// The first disagreement of a model with the run; recording stops there.
    failure: Option<VectorError>,
}

/// The X3DH DH outputs (SPEC.md §11.1), as the initiator computes them, labelled.
fn x3dh_dhs(
    initiator: &IdentityKeyPair,
    ek: &PrivateKey,
    ik_b: &PublicKey,
    spk: &PublicKey,
    opk: Option<&PublicKey>,
) -> Result<Vec<(&'static str, Value)>, VectorError> {
    let mut dhs = vec![
        ("DH1 = DH(ik_A, SPK_B)", hex(initiator.dh().diffie_hellman(spk)?.expose()).into()),
        ("DH2 = DH(ek_A, IK_B_dh)", hex(ek.diffie_hellman(ik_b)?.expose()).into()),
        ("DH3 = DH(ek_A, SPK_B)", hex(ek.diffie_hellman(spk)?.expose()).into()),
    ];
    if let Some(opk) = opk {
        dhs.push(("DH4 = DH(ek_A, OPK_B)", hex(ek.diffie_hellman(opk)?.expose()).into()));
    }
    Ok(dhs)
}

/// A session's model and its `x3dh` object, from the handshake's `SK` and `AD`.
fn session_model(
    initiator: Party,
    responder: &str,
    prekey: &x3dh::PrekeyHeader,
    ek_a: Value,
    dhs: Vec<(&'static str, Value)>,
    (sk, ad): ([u8; 32], Vec<u8>),
    spk_b: PublicKey,
) -> SessionModel {
    let x3dh = object(vec![
        ("initiator", initiator.label().into()),
        ("responder", responder.into()),
        ("EK_A", ek_a),
        ("spk_id", prekey.signed_prekey_id.into()),
        ("opk_id", prekey.one_time_prekey_id.map_or(Value::Null, Value::from)),
        ("dh", object(dhs)),
        ("SK", hex(sk).into()),
        ("AD", hex(&ad).into()),
    ]);
    let responder = responder.to_owned();
    SessionModel { initiator, responder, base_key: prekey.base_key, sk, ad, spk_b, x3dh }
}

fn name(p: Party) -> Result<Name, VectorError> {
    Ok(Name::new(p.label())?)
}

impl Observer for Recorder {
    /// The vectors record frames, draws and keys; a session's safety number shows only in the
    /// summary, which the runner computes anyway.
    fn narrates_safety_numbers(&self) -> bool {
        false
    }

    fn drew(&mut self, draw: &Draw<'_>) {
        self.draws.push((draw.purpose.to_string(), draw.bytes.to_vec()));
        let Ok(bytes) = <[u8; 32]>::try_from(draw.bytes) else { return };
        let key = PrivateKey::from_bytes(bytes);
        self.drawn.push((key.public_key(), key.clone()));
        match draw.purpose {
            Purpose::RatchetKey(party) => self.ratchet_keys_of.push((key.public_key(), party)),
            Purpose::ChannelStatic(party) => {
                self.statics.insert(party, key);
            }
            Purpose::ChannelEphemeral { party: Party::Server, link } => {
                if let Some(model) = self.link_models.iter_mut().find(|m| m.id == link.0) {
                    model.server_ephemeral = Some(key);
                } else {
                    // A link opened by a replayed HandshakeInit: its model comes with the frame.
                    self.orphan_server_ephemerals.insert(link.0, key);
                }
            }
            Purpose::ChannelEphemeral { party, link } => self.link_models.push(LinkModel {
                id: link.0,
                client: party,
                client_ephemeral: key,
                server_ephemeral: None,
                trace: None,
                payload1: None,
                counters: [0, 0],
            }),
            // A client's identity is drawn as ik, isk, then its prekeys (SPEC.md §10.2).
            Purpose::IdentityKey(party) => {
                self.identities
                    .entry(party)
                    .or_default()
                    .push(Identity { ik: bytes, ..Identity::default() });
            }
            Purpose::IdentitySeed(party) => {
                if let Some(identity) = self.identities.entry(party).or_default().last_mut() {
                    identity.isk = bytes;
                }
            }
            Purpose::SignedPrekey { party, id } | Purpose::OneTimePrekey { party, id } => {
                if let Some(identity) = self.identities.entry(party).or_default().last_mut() {
                    identity.prekeys.push((id, key));
                }
            }
            _ => {}
        }
    }

    fn delivered(&mut self, delivery: &Delivery<'_>) {
        if self.failure.is_none()
            && let Err(e) = self.record(delivery)
        {
            self.failure = Some(e);
        }
    }

    fn called(&mut self, call: &Call<'_>) {
        self.calls += 1;
        let mut case = vec![
            ("id", format!("{}/call-{:02}", self.run_id, self.calls).into()),
            (
                "comment",
                format!(
                    "{} calls {}({}): {}",
                    call.party.label(),
                    call.op,
                    call.args
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if call.outcome.is_ok() {
                        "accepted"
                    } else {
                        "refused; nothing is sent, nothing changes"
                    }
                )
                .into(),
            ),
        ];
        match call.outcome {
            Ok(()) => case.push(("result", "valid".into())),
            Err(e) => {
                case.push(("result", "invalid".into()));
                case.push(("error", error_class(e).into()));
            }
        }
        let frames = self.cases.iter().filter(|c| c.get("step").is_some()).count();
        case.push(("after_step", frames.into()));
        case.push(("party", call.party.label().into()));
        case.push(("call", call.op.into()));
        case.push((
            "args",
            object(call.args.iter().map(|(k, v)| (*k, Value::from(v.as_str()))).collect()),
        ));
        self.cases.push(object(case));
    }
}

impl Recorder {
    fn new(protocol: Protocol, run_id: &str) -> Self {
        Self {
            protocol,
            run_id: run_id.to_owned(),
            draws: Vec::new(),
            drawn: Vec::new(),
            ratchet_keys_of: Vec::new(),
            statics: BTreeMap::new(),
            identities: BTreeMap::new(),
            link_models: Vec::new(),
            orphan_server_ephemerals: BTreeMap::new(),
            sessions: Vec::new(),
            fetched: BTreeMap::new(),
            chains: Vec::new(),
            cases: Vec::new(),
            calls: 0,
            failure: None,
        }
    }

    /// The client of the run that drew `public` as a ratchet key, if one did.
    fn author_of(&self, public: &PublicKey) -> Option<Party> {
        self.ratchet_keys_of.iter().rev().find(|(p, _)| p == public).map(|(_, party)| *party)
    }

    /// `name`'s client, if it is a party of this run.
    fn party_named(&self, name: &Name) -> Option<Party> {
        Party::CLIENTS
            .into_iter()
            .find(|p| p.label() == name.as_str() && self.statics.contains_key(p))
    }

    /// The newest session between `party` and the name `peer`, whichever started it.
    fn newest_session_between(&self, party: Party, peer: &Name) -> Option<usize> {
        self.sessions.iter().rposition(|s| {
            (s.initiator == party && s.responder == peer.as_str())
                || (s.initiator.label() == peer.as_str() && s.responder == party.label())
        })
    }

    /// The drawn private key of `public`, if a party of the run drew it.
    fn drawn_key(&self, public: &PublicKey) -> Option<PrivateKey> {
        self.drawn.iter().rev().find(|(p, _)| p == public).map(|(_, k)| k.clone())
    }

    /// One case per frame: the frame, the model's account of it, and its receiver's verdict.
    fn record(&mut self, d: &Delivery<'_>) -> Result<(), VectorError> {
        let record = self.model_frame(d.from, d.to, d.link, d.frame)?;
        let (error, description) = match d.outcome {
            Ok(Handled::Server { tampered_copy: true, .. }) => (
                None,
                "E2eSend: the server opens it, injects a tampered copy, then relays it honestly",
            ),
            Ok(handled) => match handled.dropped() {
                None => (None, "accepted"),
                Some(e) => (Some(e), "the frame authenticated, its content is refused"),
            },
            Err(e) => (Some(e), "refused before it authenticated; nothing changed"),
        };
        let mut record = record;
        if let Ok(Handled::Client(events)) = d.outcome
            && let Some((peer, error)) = events.iter().find_map(|e| match e {
                ClientEvent::SendFailed { peer, error, .. } => Some((peer, error)),
                _ => None,
            })
            && let Value::Object(map) = &mut record
        {
            map.insert(
                "send_failed".to_owned(),
                json!({"peer": peer.as_str(), "error": error_class(&Error::from(error.clone()))}),
            );
        }
        self.push_case(d, record, error, description);
        Ok(())
    }

    /// Opens `frame` with the channel model; for handshake frames, runs the model when both
    /// ephemerals are known. Returns the JSON details of the frame.
    fn model_frame(
        &mut self,
        from: Party,
        to: Party,
        link: Option<LinkId>,
        frame: &[u8],
    ) -> Result<Value, VectorError> {
        let client = if from == Party::Server { to } else { from };
        let Some(LinkId(link)) = link else {
            return Ok(json!({}));
        };
        let Ok(decoded) = LinkFrame::decode(frame) else {
            return Ok(json!({"link": link}));
        };
        let server_key = self
            .statics
            .get(&Party::Server)
            .cloned()
            .ok_or_else(|| VectorError::malformed("server key"))?;
        let client_key = self
            .statics
            .get(&client)
            .cloned()
            .ok_or_else(|| VectorError::malformed("client key"))?;
        if decoded.kind() == LinkKind::HandshakeInit
            && !self.link_models.iter().any(|m| m.id == link)
            && let Some(server_ephemeral) = self.orphan_server_ephemerals.remove(&link)
        {
            // A replayed HandshakeInit on a new link: the client ephemeral is the one of the link
            // whose message 1 these bytes are.
            let original = self.link_models.iter().find(|m| {
                m.client == client
                    && Initiator::new(PROLOGUE, client_key.clone(), server_key.public_key())
                        .write_message_1(
                            m.client_ephemeral.clone(),
                            m.payload1.as_deref().unwrap_or(&[]),
                        )
                        .is_ok_and(|(_, m1)| m1 == decoded.noise())
            });
            if let Some(original) = original {
                let client_ephemeral = original.client_ephemeral.clone();
                self.link_models.push(LinkModel {
                    id: link,
                    client,
                    client_ephemeral,
                    server_ephemeral: Some(server_ephemeral),
                    trace: None,
                    payload1: None,
                    counters: [0, 0],
                });
            }
        }
        let Some(model) = self.link_models.iter_mut().rev().find(|m| m.id == link) else {
            return Ok(json!({"link": link}));
        };
        let mut details = vec![("link", Value::from(link))];
        match decoded.kind() {
            LinkKind::HandshakeInit => {
                // The payload as the server reads it (normally Register { the client's name }).
                let payload = Responder::new(PROLOGUE, server_key.clone())
                    .read_message_1(decoded.noise())?
                    .payload()
                    .to_vec();
                model.payload1 = Some(payload.clone());
                details.push(("handshake_message", 1.into()));
                details.push(("payload", hex(&payload).into()));
                details.push(("payload_message", message_json(&Message::decode(&payload)?)));
            }
            LinkKind::HandshakeResp => {
                // The server's ephemeral was drawn while it handled message 1.
                let server_ephemeral = model
                    .server_ephemeral
                    .clone()
                    .ok_or_else(|| VectorError::malformed("server ephemeral"))?;
                let payload1 =
                    model.payload1.clone().ok_or_else(|| VectorError::malformed("message 1"))?;
                // The payload as the client reads it (Welcome, or Refused).
                let (awaiting, _) =
                    Initiator::new(PROLOGUE, client_key.clone(), server_key.public_key())
                        .write_message_1(model.client_ephemeral.clone(), &payload1)?;
                let (_, payload) = awaiting.read_message_2(decoded.noise())?;
                let t = trace(&HandshakeInputs {
                    prologue: PROLOGUE,
                    is: &client_key,
                    ie: &model.client_ephemeral,
                    rs: &server_key,
                    re: &server_ephemeral,
                    payload1: &payload1,
                    payload2: &payload,
                })?;
                if t.message2 != decoded.noise() {
                    return Err(VectorError::mismatch(
                        "handshake message 2",
                        &hex(decoded.noise()),
                        &hex(&t.message2),
                    ));
                }
                model.trace = Some(t);
                details.push(("handshake_message", 2.into()));
                details.push(("payload", hex(&payload).into()));
                details.push(("payload_message", message_json(&Message::decode(&payload)?)));
            }
            LinkKind::Transport => {
                let Some(t) = &model.trace else {
                    return Ok(object(details));
                };
                let dir = usize::from(from == Party::Server);
                let n = model.counters[dir];
                let key = *t.key(from != Party::Server);
                details.push((
                    "direction",
                    if dir == 0 { "client_to_server" } else { "server_to_client" }.into(),
                ));
                details.push(("key", hex(key).into()));
                details.push(("n", n.into()));
                details.push(("nonce", hex(channel_nonce(n)).into()));
                if let Ok(plaintext) = transport_open(&key, n, decoded.noise()) {
                    model.counters[dir] += 1;
                    details.push(("plaintext", hex(&plaintext).into()));
                    if let Ok(message) = Message::decode(&plaintext) {
                        details.push(("message", message_json(&message)));
                        if let Message::Bundle { name, bundle } = &message {
                            self.fetched.insert((to, name.clone()), *bundle);
                        }
                        if let Some(e2e) = self.model_envelope(from, to, &message)? {
                            details.push(("e2e", e2e));
                        }
                    }
                }
            }
        }
        Ok(object(details))
    }

    /// The e2e keys of an envelope in a frame from `from` to `to`, from the session model.
    fn model_envelope(
        &mut self,
        from: Party,
        to: Party,
        message: &Message,
    ) -> Result<Option<Value>, VectorError> {
        // The author of an E2eSend is the client that sent it; the recipient of an E2eDeliver
        // is the client that receives it, and its author is the client that drew the ratchet key
        // in its header — not necessarily the `from` the server names, which the server chooses
        // (SPEC.md §5.2) and may relabel.
        let (author, recipient, envelope) = match message {
            Message::E2eSend { envelope, to, .. } => (Some(from), to.clone(), envelope),
            Message::E2eDeliver { envelope, .. } => (None, name(to)?, envelope),
            _ => return Ok(None),
        };
        let Ok(body) = EnvelopeBody::decode(envelope.as_bytes()) else {
            return Ok(Some(json!({"envelope": "malformed"})));
        };
        let (prekey, ratchet) = match &body {
            EnvelopeBody::Prekey { prekey, message } => (Some(prekey), message),
            EnvelopeBody::Ratchet(message) => (None, message),
        };
        let header = ratchet.header;
        let Some(sender) = author.or_else(|| self.author_of(&header.dh)) else {
            // An envelope no client of the run wrote (the server's own): nothing to model.
            return Ok(Some(
                json!({"envelope": envelope_json(&body), "note": "unknown ratchet key"}),
            ));
        };
        // The session: a prekey message names it by its base key (a new one starts a session —
        // if a party of the run drew it); a ratchet message by a ratchet key already seen, and a
        // new ratchet key belongs to the newest session between its author and its recipient.
        let session_index = match prekey {
            Some(p) if self.drawn_key(&p.base_key).is_some() => {
                match self.sessions.iter().position(|s| s.base_key == p.base_key) {
                    Some(i) => i,
                    None => {
                        let model = match self.party_named(&recipient) {
                            Some(responder) => self.start_model(sender, responder, p)?,
                            None => self.start_model_with(sender, &recipient, p)?,
                        };
                        self.sessions.push(model);
                        self.sessions.len() - 1
                    }
                }
            }
            _ => match self.chains.iter().find(|(_, c)| c.ratchet_public == header.dh) {
                Some((i, _)) => *i,
                None => match self.newest_session_between(sender, &recipient) {
                    Some(i) => i,
                    None => return Ok(None),
                },
            },
        };
        let Some(session) = self.sessions.get(session_index) else { return Ok(None) };
        let index = match self
            .chains
            .iter()
            .position(|(s, c)| *s == session_index && c.ratchet_public == header.dh)
        {
            Some(i) => i,
            None => {
                let Some(ratchet_key) = self.drawn_key(&header.dh) else {
                    return Ok(Some(
                        json!({"envelope": envelope_json(&body), "note": "unknown ratchet key"}),
                    ));
                };
                let last =
                    self.chains.iter().rev().find(|(s, _)| *s == session_index).map(|(_, c)| c);
                let peer_key = last.map_or(session.spk_b, |c| c.ratchet_public);
                let rk_before = last.map_or(session.sk, |c| c.rk_after);
                let dh_out = ratchet_key.diffie_hellman(&peer_key)?;
                let (rk, ck) = RootKey::new(Secret::new(rk_before)).kdf_rk(&dh_out);
                self.chains.push((
                    session_index,
                    Chain {
                        owner: sender,
                        ratchet_public: header.dh,
                        ratchet_key,
                        peer_key,
                        dh_out: *dh_out.expose(),
                        rk_before,
                        rk_after: *rk.expose(),
                        ck: *ck.expose(),
                    },
                ));
                self.chains.len() - 1
            }
        };
        let (_, chain) = &self.chains[index];
        let mut ck = ChainKey::new(Secret::new(chain.ck));
        for _ in 0..header.n {
            ck = ck.step().1;
        }
        let (mk, _) = ck.step();
        let (key, nonce) = mk.aead_key_and_nonce();
        let mut ad = session.ad.clone();
        ad.extend_from_slice(&header.encode());
        let opened = key.open(nonce.expose(), &ad, &ratchet.ciphertext);
        let mut fields = vec![
            ("envelope", envelope_json(&body)),
            ("chain", index.into()),
            ("CK", hex(ck.expose()).into()),
            ("MK", hex(mk.expose()).into()),
            ("aead_key", hex(key.expose()).into()),
            ("aead_nonce", hex(nonce.expose()).into()),
            ("aead_ad", hex(&ad).into()),
        ];
        match opened {
            Ok(plaintext) => {
                fields.push(("plaintext", hex(&plaintext).into()));
                fields.push(("text", String::from_utf8_lossy(&plaintext).into_owned().into()));
            }
            Err(_) => fields.push(("opens", false.into())),
        }
        Ok(Some(object(fields)))
    }

    /// X3DH from the responder's side of the model, for the first prekey message of a session
    /// `initiator` starts with `responder`'s current identity.
    fn start_model(
        &self,
        initiator: Party,
        responder: Party,
        prekey: &x3dh::PrekeyHeader,
    ) -> Result<SessionModel, VectorError> {
        let identity = self
            .identities
            .get(&responder)
            .and_then(|all| all.last())
            .ok_or_else(|| VectorError::malformed("identity"))?;
        let pair = identity.pair();
        let store = PrekeyStore::generate(
            &pair,
            &mut super::util::ReplayRng::new(
                identity.prekeys.iter().map(|(_, k)| k.expose().to_vec()),
            ),
        );
        let responded = x3dh::respond(&pair, &name(responder)?, &name(initiator)?, &store, prekey)?;
        let spk = store
            .signed_prekey(prekey.signed_prekey_id)
            .ok_or_else(|| VectorError::malformed("spk"))?
            .public_key();
        let opk = match prekey.one_time_prekey_id {
            Some(id) => Some(
                store
                    .one_time_prekey(id)
                    .ok_or_else(|| VectorError::malformed("opk"))?
                    .public_key(),
            ),
            None => None,
        };
        let (ek, initiator_pair) = self.initiator_keys(initiator, prekey)?;
        let dhs = x3dh_dhs(&initiator_pair, &ek, &pair.public().dh, &spk, opk.as_ref())?;
        let secret = (*responded.shared_secret().expose(), responded.ad().to_vec());
        Ok(session_model(initiator, responder.label(), prekey, key_json(&ek), dhs, secret, spk))
    }

    /// X3DH from the initiator's side, for a session `initiator` starts with `to`, a name that is
    /// no party of the run (its bundle was made up by the server): from the bundle `initiator`
    /// received for `to`.
    fn start_model_with(
        &self,
        initiator: Party,
        to: &Name,
        prekey: &x3dh::PrekeyHeader,
    ) -> Result<SessionModel, VectorError> {
        let bundle = self
            .fetched
            .get(&(initiator, to.clone()))
            .ok_or_else(|| VectorError::malformed("fetched bundle"))?;
        let verified = verify_fetched(to, bundle, None)?;
        let (ek, pair) = self.initiator_keys(initiator, prekey)?;
        let spk = verified.signed_prekey().key;
        let opk = verified.one_time_prekey().map(|o| o.key);
        let dhs = x3dh_dhs(&pair, &ek, &verified.identity().dh, &spk, opk.as_ref())?;
        let ek_a = key_json(&ek);
        let initiated = x3dh::initiate(&pair, &name(initiator)?, &verified, ek)?;
        let secret = (*initiated.shared_secret().expose(), initiated.ad().to_vec());
        Ok(session_model(initiator, to.as_str(), prekey, ek_a, dhs, secret, spk))
    }

    /// The initiator's base key (an RNG draw) and the identity its prekey message claims.
    fn initiator_keys(
        &self,
        initiator: Party,
        prekey: &x3dh::PrekeyHeader,
    ) -> Result<(PrivateKey, IdentityKeyPair), VectorError> {
        let ek = self.drawn_key(&prekey.base_key).ok_or_else(|| VectorError::malformed("EK_A"))?;
        let pair = self
            .identities
            .get(&initiator)
            .into_iter()
            .flatten()
            .map(Identity::pair)
            .find(|pair| pair.public() == prekey.identity)
            .ok_or_else(|| VectorError::malformed("identity"))?;
        Ok((ek, pair))
    }

    fn push_case(
        &mut self,
        d: &Delivery<'_>,
        record: Value,
        error: Option<&Error>,
        description: &str,
    ) {
        let event = d.event;
        let frame_type = event.frame_type.as_str();
        let carried = record
            .get("message")
            .or_else(|| record.get("payload_message"))
            .and_then(|m| m["type"].as_str())
            .map_or_else(String::new, |t| format!(" carrying {t}"));
        let what =
            format!("{} -> {}: {frame_type}{carried}; {description}", d.from.label(), d.to.label());
        let comment = match &event.note {
            Some(n) => format!("{n}. {what}"),
            None => what,
        };
        let mut case = serde_json::Map::new();
        case.insert("id".to_owned(), format!("{}/step-{:02}", self.run_id, event.step).into());
        case.insert("comment".to_owned(), comment.into());
        match error {
            None => {
                case.insert("result".to_owned(), "valid".into());
            }
            Some(e) => {
                case.insert("result".to_owned(), "invalid".into());
                case.insert("error".to_owned(), error_class(e).into());
            }
        }
        case.insert("step".to_owned(), event.step.into());
        case.insert("from".to_owned(), d.from.label().into());
        case.insert("to".to_owned(), d.to.label().into());
        case.insert("frame_type".to_owned(), frame_type.into());
        case.insert("frame".to_owned(), event.frame_hex.clone().into());
        if let Value::Object(map) = record {
            case.extend(map);
        }
        self.cases.push(Value::Object(case));
    }

    fn into_json(
        self,
        spec: &RunSpec,
        script: &[Step],
        transcript: &Transcript,
    ) -> Result<Value, VectorError> {
        let draws: Vec<Value> = self
            .draws
            .iter()
            .enumerate()
            .map(|(i, (purpose, bytes))| {
                object(vec![
                    ("index", i.into()),
                    ("purpose", purpose.as_str().into()),
                    ("bytes", hex(bytes).into()),
                ])
            })
            .collect();
        let mut parties = Vec::new();
        // Carol only in a run that has her (runner::Party::Carol).
        let carol = self.statics.contains_key(&Party::Carol).then_some(Party::Carol);
        for party in [Party::Server, Party::Alice, Party::Bob].into_iter().chain(carol) {
            let key = self.statics.get(&party).ok_or_else(|| VectorError::malformed("key"))?;
            let mut fields = vec![("channel_static", key_json(key))];
            let identities = self.identities.get(&party).map_or(&[][..], Vec::as_slice);
            if let Some((first, later)) = identities.split_first() {
                fields.extend(identity_json(first));
                if !later.is_empty() {
                    let later = later.iter().map(|i| object(identity_json(i))).collect();
                    fields.push(("later_identities", Value::Array(later)));
                }
            }
            parties.push((party.label(), object(fields)));
        }
        let links: Vec<Value> = self
            .link_models
            .iter()
            .map(|m| {
                let mut fields = vec![
                    ("link", Value::from(m.id)),
                    ("client", m.client.label().into()),
                    ("client_ephemeral", key_json(&m.client_ephemeral)),
                    ("server_ephemeral", m.server_ephemeral.as_ref().map_or(Value::Null, key_json)),
                ];
                if let Some(t) = &m.trace {
                    fields.extend([
                        ("handshake_hash", hex(t.handshake_hash).into()),
                        ("k1_client_to_server", hex(t.k1).into()),
                        ("k2_server_to_client", hex(t.k2).into()),
                    ]);
                }
                object(fields)
            })
            .collect();
        let mut run = vec![
            ("id", spec.id.into()),
            ("comment", spec.comment.into()),
            ("protocol", self.protocol.label().into()),
            ("seed", spec.seed.into()),
            ("rng", "ChaCha20Rng::seed_from_u64(seed) (rand_chacha 0.10): each draw is the next 32 bytes of its stream".into()),
            ("server_policy", spec.deny_word.map_or_else(|| "AllowAll".into(), |w| format!("DenyWord({w})").into())),
        ];
        if let Some(limits) = spec.server_limits {
            run.push((
                "server_limits",
                object(vec![
                    ("max_accounts", limits.max_accounts.into()),
                    ("max_queued_bytes", limits.max_queued_bytes.into()),
                ]),
            ));
        }
        run.push(("script", script.iter().map(describe).collect()));
        run.push(("rng_draws", Value::Array(draws)));
        run.push(("parties", object(parties)));
        run.push(("links", Value::Array(links)));
        if let Some((first, later)) = self.sessions.split_first() {
            run.push(("x3dh", first.x3dh.clone()));
            if !later.is_empty() {
                run.push((
                    "later_sessions",
                    Value::Array(later.iter().map(|s| s.x3dh.clone()).collect()),
                ));
            }
            let chains: Vec<Value> = self
                .chains
                .iter()
                .enumerate()
                .map(|(i, (_, c))| {
                    object(vec![
                        ("chain", i.into()),
                        ("owner", c.owner.label().into()),
                        ("ratchet_key", key_json(&c.ratchet_key)),
                        ("peer_ratchet_key", hex(c.peer_key.as_bytes()).into()),
                        ("dh_out", hex(c.dh_out).into()),
                        ("RK_before", hex(c.rk_before).into()),
                        ("RK_after", hex(c.rk_after).into()),
                        ("CK_0", hex(c.ck).into()),
                    ])
                })
                .collect();
            run.push(("ratchet_chains", Value::Array(chains)));
        }
        let delivered = transcript.summary.delivered.iter().map(|s| Value::from(s.as_str()));
        let mut summary = vec![("delivered", delivered.collect())];
        if let Some(numbers) = &transcript.summary.safety_numbers {
            let show = |n: &Option<String>| n.as_deref().map_or(Value::Null, Value::from);
            summary.push((
                "safety_numbers",
                object(vec![("alice", show(&numbers.alice)), ("bob", show(&numbers.bob))]),
            ));
        }
        run.push(("cases", Value::Array(self.cases)));
        run.push(("summary", object(summary)));
        Ok(object(run))
    }
}

/// A client's identity as `parties` lists it: `identity` (`ik`, `isk`, `IK`) and `prekeys`, each
/// with its id, kind and key pair, the signed one with its signature (SPEC.md §10).
fn identity_json(identity: &Identity) -> Vec<(&'static str, Value)> {
    let pair = identity.pair();
    let prekeys: Vec<Value> = identity
        .prekeys
        .iter()
        .map(|(id, k)| {
            let mut o = vec![
                ("id", Value::from(*id)),
                ("kind", if *id == 1 { "signed" } else { "one-time" }.into()),
                ("private", hex(k.expose()).into()),
                ("public", hex(k.public_key().as_bytes()).into()),
            ];
            if *id == 1 {
                o.push((
                    "signature",
                    hex(pair.sign_prekey(1, k.public_key()).signature.as_bytes()).into(),
                ));
            }
            object(o)
        })
        .collect();
    vec![
        (
            "identity",
            object(vec![
                ("ik", hex(identity.ik).into()),
                ("isk", hex(identity.isk).into()),
                ("IK", hex(pair.public().to_bytes()).into()),
            ]),
        ),
        ("prekeys", Value::Array(prekeys)),
    ]
}

fn describe(step: &Step) -> Value {
    match step {
        Step::Connect(p) => format!("{} connects", p.label()),
        Step::Disconnect(p) => format!("{} disconnects", p.label()),
        Step::Upload(p) => format!("{} uploads its bundle", p.label()),
        Step::Send { from, text } => format!("{} sends {text:?}", from.label()),
        Step::SendAtOnce { alice, bob } => {
            format!("alice sends {alice:?} and bob sends {bob:?}, before either is delivered")
        }
        Step::SendLate { from, text } => {
            format!("{} writes {text:?} now and it goes out after its next send", from.label())
        }
        Step::Hold { from, count } => {
            format!("{} encrypts {count} messages now and holds them", from.label())
        }
        Step::SubmitHeld { from, number } => {
            format!("{} sends its held message \"held {number}\"", from.label())
        }
        Step::ReplayLastFrame { to } => {
            format!("network attacker: replays the last frame {} received", to.label())
        }
        Step::TamperNextFrame { from, text } => {
            format!("{} sends {text:?}; network attacker flips a bit of it first", from.label())
        }
        Step::ServerReplaysDelivery { to, id, new_id } => format!(
            "server: seals its delivery #{id} to {} again{}",
            to.label(),
            new_id.map_or_else(String::new, |id| format!(" under id {id}"))
        ),
        Step::ServerTampersNextEnvelope { from, text } => {
            format!("{} sends {text:?}; server delivers a tampered copy first", from.label())
        }
        Step::SendTo { from, to, text } => format!("{} sends {text:?} to {to}", from.label()),
        Step::VerifySafetyNumber { party, peer, wrong } => format!(
            "{} verifies {}'s safety number, entering {} number",
            party.label(),
            peer.label(),
            if *wrong { "a wrong" } else { "the right" }
        ),
        Step::ReplayHandshakeInit { of } => {
            format!(
                "network attacker: replays {}'s last HandshakeInit on its open link",
                of.label()
            )
        }
        Step::ServerForges { to, message } => {
            format!("server: forges a {} for {}", message.type_name(), to.label())
        }
        Step::ServerRelabelsDelivery { to, id, as_from } => {
            format!("server: seals its delivery #{id} to {} again as from {as_from}", to.label())
        }
        Step::RegisterWith { party, payload } => format!(
            "{} connects with {} as its handshake payload",
            party.label(),
            payload.type_name()
        ),
        Step::RestoreWithLastId { party, last_id } => {
            format!("{} restarts from its state file with last id {last_id}", party.label())
        }
        Step::RestoreWithNextPrekeyId { party, next_id } => {
            format!("{} restarts from its state file with next prekey id {next_id}", party.label())
        }
        Step::RestoreWithoutSessions { party } => {
            format!("{} restarts from its state file without its sessions", party.label())
        }
        Step::VerifyPeer { party, peer } => format!(
            "{}'s user pins the identity {} holds now (compared in person)",
            party.label(),
            peer.label()
        ),
        Step::NewIdentity { party } => format!(
            "{} starts again from its account with a new e2e identity and new prekeys",
            party.label()
        ),
        Step::Replenish { party, count } => {
            format!("{} makes {count} more one-time prekeys", party.label())
        }
        Step::ReplayHandshakeOnNewLink { of } => format!(
            "network attacker: replays {}'s last HandshakeInit on a new link and keeps it open",
            of.label()
        ),
        Step::ReplayOnNewLink { of } => format!(
            "network attacker: sends a copy of {}'s last frame as the first frame of a new link",
            of.label()
        ),
        Step::ServerWelcomesAs { to, name } => {
            format!("server: answers {}'s next HandshakeInit with Welcome {name}", to.label())
        }
        Step::LoseNextFetchAnswer { party } => format!(
            "network: {}'s connection dies before the answer to its next FetchBundle arrives",
            party.label()
        ),
        Step::ServerAnswersNextFetch { from, answer } => match answer {
            Some(m) => format!(
                "server: answers {}'s next FetchBundle with a {} of its own",
                from.label(),
                m.type_name()
            ),
            None => format!("server: withholds the answer to {}'s next FetchBundle", from.label()),
        },
    }
    .into()
}

/// One run of a transcript file: its id and comment, the seed, the runner script, and the attacks
/// played after it.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run's id, prefix of its case ids.
    pub id: &'static str,
    /// What the run shows.
    pub comment: &'static str,
    /// The RNG seed.
    pub seed: u64,
    /// The script, as `e2e-ref run` plays it.
    pub script: Vec<Step>,
    /// The steps after the script: attacks, and what follows them.
    pub attacks: Vec<Step>,
    /// The server's hop content policy: `None` is `AllowAll`, `Some(w)` is `DenyWord(w)` (SPEC.md §5.5).
    pub deny_word: Option<&'static str>,
    /// The server's bounds, if smaller than SPEC.md §8's (`server_limits`, §17.2).
    pub server_limits: Option<ServerLimits>,
}

/// Runs `spec` (its script, then its attacks) in the runner and returns the run's JSON.
///
/// # Errors
/// A role error on a frame the run produced, or a disagreement of a model with the run.
pub fn run(protocol: Protocol, spec: &RunSpec) -> Result<Value, VectorError> {
    match spec.deny_word {
        None => run_with(protocol, spec, AllowAll),
        Some(word) => run_with(protocol, spec, DenyWord::new(word)),
    }
}

fn run_with<P: ContentPolicy>(
    protocol: Protocol,
    spec: &RunSpec,
    policy: P,
) -> Result<Value, VectorError> {
    let config = RunConfig {
        protocol,
        seed: spec.seed,
        script: spec.script.iter().chain(&spec.attacks).cloned().collect(),
        policy,
        mitm: false,
        verified: false,
        limits: spec.server_limits.unwrap_or_default(),
    };
    let mut recorder = Recorder::new(protocol, spec.id);
    let transcript = crate::runner::run_observed(&config, &mut recorder);
    if let Some(failure) = recorder.failure.take() {
        return Err(failure);
    }
    recorder.into_json(spec, &config.script, &transcript?)
}

/// Compares a file's run with a fresh one, case by case: one verdict per case, plus one for the
/// run's other fields.
pub fn verify_run(file_run: &Value, fresh: &Value) -> Vec<CaseResult> {
    let id = file_run["id"].as_str().unwrap_or("(run)");
    let mut results = Vec::new();
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("cases");
        }
        v
    };
    results.push(CaseResult::from_check(
        &format!("{id}/setup"),
        compare_json(id, &strip(file_run), &strip(fresh)),
    ));
    let empty = Vec::new();
    let file_cases = file_run["cases"].as_array().unwrap_or(&empty);
    let fresh_cases = fresh["cases"].as_array().unwrap_or(&empty);
    for (i, case) in file_cases.iter().enumerate() {
        let case_id =
            str_field(case, "id").map_or_else(|_| format!("{id}/case-{i}"), str::to_owned);
        let check = fresh_cases.get(i).map_or_else(
            || Err(VectorError::mismatch(&case_id, &"a case", &"none")),
            |fresh_case| compare_json(&case_id, case, fresh_case),
        );
        results.push(CaseResult::from_check(&case_id, check));
    }
    if fresh_cases.len() > file_cases.len() {
        results.push(CaseResult::from_check(
            &format!("{id}/missing"),
            Err(VectorError::mismatch("cases", &file_cases.len(), &fresh_cases.len())),
        ));
    }
    results
}
