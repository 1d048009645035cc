//! `key_schedule.json`: every key derivation of the protocol, each from its inputs.
//!
//! | `function`       | SPEC.md   | inputs → outputs                                                     |
//! |------------------|-----------|----------------------------------------------------------------------|
//! | `noise_ik`       | §4        | four key pairs, prologue, payloads → every `MixHash`/`MixKey`/`EncryptAndHash`, `Split()` |
//! | `channel_nonce`  | §2.2      | counter `n`, key, plaintext → nonce, ciphertext                       |
//! | `x3dh`           | §11       | identities, `EK_A`, prekeys → `DH1..DH4`, HKDF input, `SK`, `AD`      |
//! | `x3dh_respond`   | §11.2     | Bob's keys and a prekey header → `SK`, or the error                  |
//! | `kdf_rk`         | §12.1     | `RK`, our ratchet key, their ratchet key → `dh_out`, new `RK`, `CK`   |
//! | `kdf_ck`         | §12.1     | `CK` → `MK` and the next `CK`, three steps                            |
//! | `message_keys`   | §12.1     | `MK`, `AD`, header, plaintext → AEAD key, nonce, ciphertext           |
//! | `ratchet_first_message` | §12.2–12.4 | `SK`, `AD`, `SPK_B`, Alice's ratchet key, plaintext → header, ciphertext and every key |
//! | `safety_number`  | §14.1     | two identities and names → fingerprints, safety number                |

use serde_json::Value;

use super::channel::real_handshake;
use super::noise_trace::{HandshakeInputs, channel_nonce, trace, transport_seal};
use super::util::{
    Ident, ReplayRng, compare_json, error_class, fixed_bytes, fixed_key, hex, hex_array, hex_field,
    key_from_json, key_json, object, str_field, u32_field, u64_field,
};
use super::{CaseResult, VectorError, file_head, verify_cases};
use e2e_protocol::channel::PROLOGUE;
use e2e_protocol::e2e::bundle::verify_fetched;
use e2e_protocol::e2e::prekeys::PrekeyStore;
use e2e_protocol::e2e::ratchet::{ChainKey, Header, MessageKey, RootKey, Session};
use e2e_protocol::e2e::safety_number::{SafetyNumber, fingerprint};
use e2e_protocol::e2e::signed::identity_binding_message;
use e2e_protocol::e2e::x3dh::{self, PrekeyHeader, X3DH_INFO, X3DH_PREFIX};
use e2e_protocol::error::Error;
use e2e_protocol::suite::{
    AeadKey, PrivateKey, PublicKey, Secret, Signature, SigningKey, VerifyingKey,
};
use e2e_protocol::wire::{
    Codec, FetchedBundle, IdentityPublic, Message, Name, OneTimePrekeyPublic,
};

const DESCRIPTION: &str = "Every key derivation of the protocol, each from its inputs: the channel's \
Noise IK key schedule (SPEC.md §4: each MixHash, MixKey and EncryptAndHash, then Split), channel nonces \
(§2.2), the X3DH secret with and without a one-time prekey and its AD (§11), the Double Ratchet's \
KDF_RK, KDF_CK and message keys (§12.1), a whole first ratchet message (§12.3), and safety numbers \
(§14.1). `function` names the derivation. X25519 keys are {private, public}; identities are {ik, isk, \
IK} (X25519 private key, Ed25519 seed, 64-byte public IK = IK_dh || IK_sig). Byte strings are hex.";

fn name(s: &str) -> Result<Name, VectorError> {
    Ok(Name::new(s)?)
}

fn head(id: &str, function: &str, comment: &str, result: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("id", id.into()),
        ("function", function.into()),
        ("comment", comment.into()),
        ("result", result.into()),
    ]
}

// ---------------------------------------------------------------------------------------------
// noise_ik
// ---------------------------------------------------------------------------------------------

fn noise_ik(
    id: &str,
    comment: &str,
    keys: [&PrivateKey; 4],
    payload1: &[u8],
    payload2: &[u8],
) -> Result<Value, VectorError> {
    let [is, ie, rs, re] = keys;
    let t = trace(&HandshakeInputs { prologue: PROLOGUE, is, ie, rs, re, payload1, payload2 })?;
    // Cross-check the model against the channel itself, byte for byte.
    let mut real = real_handshake(PROLOGUE, keys, payload1, payload2)?;
    let probe = b"probe";
    let checks = [
        ("message1", hex(&real.message1), hex(&t.message1)),
        ("message2", hex(&real.message2), hex(&t.message2)),
        ("handshake_hash", hex(real.initiator.handshake_hash()), hex(t.handshake_hash)),
        ("k1", hex(real.initiator.write(probe)?), hex(transport_seal(&t.k1, 0, probe))),
        ("k2", hex(real.responder.write(probe)?), hex(transport_seal(&t.k2, 0, probe))),
    ];
    for (what, channel, model) in checks {
        if channel != model {
            return Err(VectorError::mismatch(what, &channel, &model));
        }
    }
    let mut case = head(id, "noise_ik", comment, "valid");
    case.extend([
        ("protocol_name", hex(e2e_protocol::channel::PROTOCOL_NAME).into()),
        ("prologue", hex(PROLOGUE).into()),
        ("initiator_static", key_json(is)),
        ("initiator_ephemeral", key_json(ie)),
        ("responder_static", key_json(rs)),
        ("responder_ephemeral", key_json(re)),
        ("payload1", hex(payload1).into()),
        ("payload2", hex(payload2).into()),
        ("steps", Value::Array(t.steps.clone())),
        ("dh", object(t.dh.iter().map(|(k, v)| (*k, hex(v).into())).collect())),
        ("message1", hex(&t.message1).into()),
        ("message2", hex(&t.message2).into()),
        ("handshake_hash", hex(t.handshake_hash).into()),
        ("k1", hex(t.k1).into()),
        ("k2", hex(t.k2).into()),
    ]);
    Ok(object(case))
}

fn verify_noise_ik(case: &Value) -> Result<Value, VectorError> {
    let keys = [
        key_from_json(&case["initiator_static"])?,
        key_from_json(&case["initiator_ephemeral"])?,
        key_from_json(&case["responder_static"])?,
        key_from_json(&case["responder_ephemeral"])?,
    ];
    noise_ik(
        str_field(case, "id")?,
        str_field(case, "comment")?,
        [&keys[0], &keys[1], &keys[2], &keys[3]],
        &hex_field(case, "payload1")?,
        &hex_field(case, "payload2")?,
    )
}

// ---------------------------------------------------------------------------------------------
// channel_nonce
// ---------------------------------------------------------------------------------------------

fn nonce_case(id: &str, comment: &str, n: u64, key: [u8; 32], plaintext: &[u8]) -> Value {
    let nonce = channel_nonce(n);
    let mut case = head(id, "channel_nonce", comment, "valid");
    case.extend([
        ("n", n.into()),
        ("key", hex(key).into()),
        ("plaintext", hex(plaintext).into()),
        ("nonce", hex(nonce).into()),
        ("ciphertext", hex(AeadKey::new(key).seal(&nonce, &[], plaintext)).into()),
    ]);
    object(case)
}

// ---------------------------------------------------------------------------------------------
// x3dh
// ---------------------------------------------------------------------------------------------

/// Bob's keys for the X3DH cases: identity, signed prekey (id 1), one-time prekeys (ids 2..=11).
struct BobKeys {
    identity: Ident,
    spk: [u8; 32],
    opks: Vec<[u8; 32]>,
}

impl BobKeys {
    fn fixed() -> Self {
        Self {
            identity: Ident::fixed("x3dh/bob"),
            spk: fixed_bytes("x3dh/bob/spk/1"),
            opks: (2..=11).map(|id| fixed_bytes(&format!("x3dh/bob/opk/{id}"))).collect(),
        }
    }

    /// Bob's prekey store, drawn from his fixed keys in SPEC.md §10.2 order.
    fn store(&self) -> PrekeyStore {
        let chunks =
            core::iter::once(self.spk.to_vec()).chain(self.opks.iter().map(|k| k.to_vec()));
        PrekeyStore::generate(&self.identity.pair(), &mut ReplayRng::new(chunks))
    }
}

fn x3dh_case(
    id: &str,
    comment: &str,
    alice: &Ident,
    ek: &PrivateKey,
    bob: &BobKeys,
    with_opk: bool,
) -> Result<Value, VectorError> {
    let alice_pair = alice.pair();
    let bob_pair = bob.identity.pair();
    let store = bob.store();
    let spk = store.current_signed_prekey();
    let opk_id = 2u32;
    let opk_private =
        store.one_time_prekey(opk_id).cloned().ok_or_else(|| VectorError::malformed("opk"))?;
    let bundle = FetchedBundle {
        identity: bob_pair.public(),
        signed_prekey: spk,
        one_time_prekey: with_opk
            .then(|| OneTimePrekeyPublic { id: opk_id, key: opk_private.public_key() }),
    };
    let verified = verify_fetched(&name("bob")?, &bundle, None)?;
    let (alice_name, bob_name) = (name("alice")?, name("bob")?);
    let initiated = x3dh::initiate(&alice_pair, &alice_name, &verified, ek.clone())?;
    let responded = x3dh::respond(&bob_pair, &bob_name, &alice_name, &store, &initiated.header())?;
    if responded.shared_secret() != initiated.shared_secret() || responded.ad() != initiated.ad() {
        return Err(VectorError::mismatch("SK", &"initiator's", &"responder's differs"));
    }
    let spk_private = PrivateKey::from_bytes(bob.spk);
    let dh1 = alice_pair.dh().diffie_hellman(&spk.key)?;
    let dh2 = ek.diffie_hellman(&bob_pair.public().dh)?;
    let dh3 = ek.diffie_hellman(&spk.key)?;
    let mut ikm = X3DH_PREFIX.to_vec();
    for dh in [&dh1, &dh2, &dh3] {
        ikm.extend_from_slice(dh.expose());
    }
    let mut dhs = vec![
        ("DH1 = DH(ik_A, SPK_B)", hex(dh1.expose()).into()),
        ("DH2 = DH(ek_A, IK_B_dh)", hex(dh2.expose()).into()),
        ("DH3 = DH(ek_A, SPK_B)", hex(dh3.expose()).into()),
    ];
    if with_opk {
        let dh4 = ek.diffie_hellman(&opk_private.public_key())?;
        ikm.extend_from_slice(dh4.expose());
        dhs.push(("DH4 = DH(ek_A, OPK_B)", hex(dh4.expose()).into()));
    }
    let mut case = head(id, "x3dh", comment, "valid");
    case.extend([
        ("alice_name", "alice".into()),
        ("alice_identity", alice.json()),
        ("alice_ephemeral", key_json(ek)),
        ("bob_name", "bob".into()),
        ("bob_identity", bob.identity.json()),
        (
            "bob_signed_prekey",
            object(vec![
                ("id", spk.id.into()),
                ("private", hex(spk_private.expose()).into()),
                ("public", hex(spk.key.as_bytes()).into()),
            ]),
        ),
        (
            "bob_one_time_prekey",
            if with_opk {
                object(vec![
                    ("id", opk_id.into()),
                    ("private", hex(opk_private.expose()).into()),
                    ("public", hex(opk_private.public_key().as_bytes()).into()),
                ])
            } else {
                Value::Null
            },
        ),
        ("dh", object(dhs)),
        ("hkdf_salt", hex([0u8; 32]).into()),
        ("hkdf_ikm", hex(&ikm).into()),
        ("hkdf_info", hex(X3DH_INFO).into()),
        ("SK", hex(initiated.shared_secret().expose()).into()),
        ("AD", hex(initiated.ad()).into()),
    ]);
    Ok(object(case))
}

fn verify_x3dh(case: &Value) -> Result<Value, VectorError> {
    let bob_identity = Ident::from_json(&case["bob_identity"])?;
    let spk = hex_array(&case["bob_signed_prekey"], "private")?;
    let with_opk = !case["bob_one_time_prekey"].is_null();
    let opk =
        if with_opk { hex_array(&case["bob_one_time_prekey"], "private")? } else { [0u8; 32] };
    let bob = BobKeys { identity: bob_identity, spk, opks: vec![opk] };
    x3dh_case(
        str_field(case, "id")?,
        str_field(case, "comment")?,
        &Ident::from_json(&case["alice_identity"])?,
        &key_from_json(&case["alice_ephemeral"])?,
        &bob,
        with_opk,
    )
}

/// `x3dh_respond`: Bob (the fixed keys above) answers a prekey header.
fn respond_case(
    id: &str,
    comment: &str,
    bob: &BobKeys,
    header: &PrekeyHeader,
) -> Result<Value, VectorError> {
    let outcome =
        x3dh::respond(&bob.identity.pair(), &name("bob")?, &name("alice")?, &bob.store(), header)
            .map_err(Error::from);
    let (result, error) = super::util::outcome_fields(&outcome);
    let mut case = head(id, "x3dh_respond", comment, result);
    if let Some(error) = error {
        case.push(("error", error.into()));
    }
    case.extend([
        ("bob_name", "bob".into()),
        ("bob_identity", bob.identity.json()),
        ("bob_signed_prekey", object(vec![("id", 1.into()), ("private", hex(bob.spk).into())])),
        (
            "bob_one_time_prekeys",
            Value::Array(
                bob.opks
                    .iter()
                    .enumerate()
                    .map(|(i, k)| object(vec![("id", (i + 2).into()), ("private", hex(k).into())]))
                    .collect(),
            ),
        ),
        ("from", "alice".into()),
        ("IK_A", hex(header.identity.to_bytes()).into()),
        ("id_sig", hex(header.identity_signature.as_bytes()).into()),
        ("EK_A", hex(header.base_key.as_bytes()).into()),
        ("spk_id", header.signed_prekey_id.into()),
        ("opk_id", header.one_time_prekey_id.map_or(Value::Null, Value::from)),
    ]);
    if let Ok(responded) = outcome {
        case.push(("SK", hex(responded.shared_secret().expose()).into()));
        case.push(("AD", hex(responded.ad()).into()));
    }
    Ok(object(case))
}

fn verify_respond(case: &Value) -> Result<Value, VectorError> {
    let opks = super::util::array_field(case, "bob_one_time_prekeys")?
        .iter()
        .map(|o| hex_array::<32>(o, "private"))
        .collect::<Result<Vec<_>, _>>()?;
    let bob = BobKeys {
        identity: Ident::from_json(&case["bob_identity"])?,
        spk: hex_array(&case["bob_signed_prekey"], "private")?,
        opks,
    };
    let ik: [u8; 64] = hex_array(case, "IK_A")?;
    let mut dh = [0u8; 32];
    let mut sign = [0u8; 32];
    dh.copy_from_slice(&ik[..32]);
    sign.copy_from_slice(&ik[32..]);
    let header = PrekeyHeader {
        identity: IdentityPublic {
            dh: PublicKey::from_bytes(dh),
            sign: VerifyingKey::from_bytes(sign),
        },
        identity_signature: Signature::from_bytes(hex_array(case, "id_sig")?),
        base_key: PublicKey::from_bytes(hex_array(case, "EK_A")?),
        signed_prekey_id: u32_field(case, "spk_id")?,
        one_time_prekey_id: if case["opk_id"].is_null() {
            None
        } else {
            Some(u32_field(case, "opk_id")?)
        },
    };
    respond_case(str_field(case, "id")?, str_field(case, "comment")?, &bob, &header)
}

// ---------------------------------------------------------------------------------------------
// Double Ratchet KDFs
// ---------------------------------------------------------------------------------------------

fn kdf_rk_case(
    id: &str,
    comment: &str,
    rk: [u8; 32],
    ours: &PrivateKey,
    theirs: PublicKey,
) -> Result<Value, VectorError> {
    let outcome = ours.diffie_hellman(&theirs);
    let mut case = head(id, "kdf_rk", comment, if outcome.is_ok() { "valid" } else { "invalid" });
    if outcome.is_err() {
        // How a ratchet step reports it (SPEC.md §12.3): the session's DH with the peer's key.
        let mut session = Session::initiator(Secret::new(rk), Vec::new(), theirs);
        let err = session
            .encrypt(b"", &mut ReplayRng::new([ours.expose().to_vec()]))
            .map_err(|e| Error::from(e2e_protocol::e2e::E2eError::from(e)))
            .err()
            .map_or_else(String::new, |e| error_class(&e));
        case.push(("error", err.into()));
    }
    case.extend([
        ("RK", hex(rk).into()),
        ("our_ratchet_key", key_json(ours)),
        ("their_ratchet_key", hex(theirs.as_bytes()).into()),
        ("hkdf_info", hex(b"e2e-ref/ratchet/root/v1").into()),
    ]);
    if let Ok(dh_out) = outcome {
        let (next, chain) = RootKey::new(Secret::new(rk)).kdf_rk(&dh_out);
        case.extend([
            ("dh_out", hex(dh_out.expose()).into()),
            ("next_RK", hex(next.expose()).into()),
            ("CK", hex(chain.expose()).into()),
        ]);
    }
    Ok(object(case))
}

fn verify_kdf_rk(case: &Value) -> Result<Value, VectorError> {
    kdf_rk_case(
        str_field(case, "id")?,
        str_field(case, "comment")?,
        hex_array(case, "RK")?,
        &key_from_json(&case["our_ratchet_key"])?,
        PublicKey::from_bytes(hex_array(case, "their_ratchet_key")?),
    )
}

fn kdf_ck_case(id: &str, comment: &str, ck: [u8; 32]) -> Value {
    let mut chain = ChainKey::new(Secret::new(ck));
    let mut steps = Vec::new();
    for n in 0..3u32 {
        let (mk, next) = chain.step();
        steps.push(object(vec![
            ("n", n.into()),
            ("CK", hex(chain.expose()).into()),
            ("MK = HMAC(CK, 0x01)", hex(mk.expose()).into()),
            ("next_CK = HMAC(CK, 0x02)", hex(next.expose()).into()),
        ]));
        chain = next;
    }
    let mut case = head(id, "kdf_ck", comment, "valid");
    case.extend([("CK", hex(ck).into()), ("steps", Value::Array(steps))]);
    object(case)
}

fn message_keys_case(
    id: &str,
    comment: &str,
    mk: [u8; 32],
    ad: &[u8],
    header: &Header,
    plaintext: &[u8],
) -> Value {
    let message_key = MessageKey::new(Secret::new(mk));
    let (key, nonce) = message_key.aead_key_and_nonce();
    let mut full_ad = ad.to_vec();
    full_ad.extend_from_slice(&header.encode());
    let mut case = head(id, "message_keys", comment, "valid");
    case.extend([
        ("MK", hex(mk).into()),
        ("hkdf_salt", hex([0u8; 32]).into()),
        ("hkdf_info", hex(b"e2e-ref/ratchet/message/v1").into()),
        ("aead_key", hex(key.expose()).into()),
        ("aead_nonce", hex(nonce.expose()).into()),
        ("AD", hex(ad).into()),
        ("header", hex(header.encode()).into()),
        ("aead_ad", hex(&full_ad).into()),
        ("plaintext", hex(plaintext).into()),
        ("ciphertext", hex(message_key.seal(&full_ad, plaintext)).into()),
    ]);
    object(case)
}

fn verify_message_keys(case: &Value) -> Result<Value, VectorError> {
    let header: [u8; 40] = hex_array(case, "header")?;
    Ok(message_keys_case(
        str_field(case, "id")?,
        str_field(case, "comment")?,
        hex_array(case, "MK")?,
        &hex_field(case, "AD")?,
        &Header::decode(&header),
        &hex_field(case, "plaintext")?,
    ))
}

/// The initiator's first message and the responder's decryption of it, with every key.
fn first_message_case(
    id: &str,
    comment: &str,
    sk: [u8; 32],
    ad: &[u8],
    spk: &PrivateKey,
    ratchet: &PrivateKey,
    plaintext: &[u8],
) -> Result<Value, VectorError> {
    let mut alice = Session::initiator(Secret::new(sk), ad.to_vec(), spk.public_key());
    let mut rng = ReplayRng::new([ratchet.expose().to_vec()]);
    let (header, ciphertext) =
        alice.encrypt(plaintext, &mut rng).map_err(e2e_protocol::e2e::E2eError::from)?;
    let mut bob = Session::responder(Secret::new(sk), ad.to_vec(), spk.clone());
    let opened = bob.decrypt(&header, &ciphertext).map_err(e2e_protocol::e2e::E2eError::from)?;
    if opened != plaintext {
        return Err(VectorError::mismatch("plaintext", &hex(plaintext), &hex(opened)));
    }
    let dh_out = ratchet.diffie_hellman(&spk.public_key())?;
    let (rk, cks) = RootKey::new(Secret::new(sk)).kdf_rk(&dh_out);
    let (mk, next_ck) = cks.step();
    let (key, nonce) = mk.aead_key_and_nonce();
    let mut case = head(id, "ratchet_first_message", comment, "valid");
    case.extend([
        ("SK", hex(sk).into()),
        ("AD", hex(ad).into()),
        ("bob_signed_prekey", key_json(spk)),
        ("alice_ratchet_key", key_json(ratchet)),
        ("plaintext", hex(plaintext).into()),
        ("dh_out", hex(dh_out.expose()).into()),
        ("RK_after", hex(rk.expose()).into()),
        ("CKs", hex(cks.expose()).into()),
        ("MK", hex(mk.expose()).into()),
        ("CKs_after", hex(next_ck.expose()).into()),
        ("aead_key", hex(key.expose()).into()),
        ("aead_nonce", hex(nonce.expose()).into()),
        ("header", hex(header.encode()).into()),
        ("ciphertext", hex(&ciphertext).into()),
    ]);
    Ok(object(case))
}

fn verify_first_message(case: &Value) -> Result<Value, VectorError> {
    first_message_case(
        str_field(case, "id")?,
        str_field(case, "comment")?,
        hex_array(case, "SK")?,
        &hex_field(case, "AD")?,
        &key_from_json(&case["bob_signed_prekey"])?,
        &key_from_json(&case["alice_ratchet_key"])?,
        &hex_field(case, "plaintext")?,
    )
}

/// `ratchet_receive`: Alice sends `count` messages in her first chain; Bob receives the ones the
/// plan names, in the plan's order, some tampered with (SPEC.md §12.4, §12.5).
/// The inputs of a `ratchet_receive` case.
struct Receive<'a> {
    sk: [u8; 32],
    ad: &'a [u8],
    spk: &'a PrivateKey,
    ratchet: &'a PrivateKey,
    count: u32,
    plan: &'a [(u32, &'a str)],
    /// Bob's `Nr` after the first delivery, moved forward to this index (SPEC.md §17.2).
    index_after_first: Option<u32>,
}

fn receive_case(id: &str, comment: &str, inputs: &Receive<'_>) -> Result<Value, VectorError> {
    let Receive { sk, ad, spk, ratchet, count, plan, index_after_first } = *inputs;
    let mut alice = Session::initiator(Secret::new(sk), ad.to_vec(), spk.public_key());
    let mut rng = ReplayRng::new([ratchet.expose().to_vec()]);
    let mut sent = Vec::new();
    for i in 0..count {
        sent.push(
            alice
                .encrypt(format!("message {i}").as_bytes(), &mut rng)
                .map_err(e2e_protocol::e2e::E2eError::from)?,
        );
    }
    let mut bob = Session::responder(Secret::new(sk), ad.to_vec(), spk.clone());
    let mut deliveries = Vec::new();
    let mut first_error = None;
    for (index, tamper) in plan {
        let (mut header, mut ciphertext) =
            sent.get(*index as usize).cloned().ok_or_else(|| VectorError::malformed("message"))?;
        match *tamper {
            "ciphertext" => {
                if let Some(b) = ciphertext.first_mut() {
                    *b ^= 0x01;
                }
            }
            "n = 2^32 - 1" => header.n = u32::MAX,
            // A low-order ratchet key: the DH of the ratchet step is all zero.
            "dh = 0" => header.dh = PublicKey::from_bytes([0; 32]),
            // A new ratchet key (the X25519 base point, u = 9) whose pn asks to skip far past Nr in
            // the current chain.
            "dh = 9, pn = 1500" => {
                let mut nine = [0u8; 32];
                nine[0] = 9;
                header.dh = PublicKey::from_bytes(nine);
                header.pn = 1500;
            }
            "" => {}
            _ => return Err(VectorError::malformed("tamper")),
        }
        let outcome = bob
            .decrypt(&header, &ciphertext)
            .map_err(|e| Error::from(e2e_protocol::e2e::E2eError::from(e)));
        let mut d = vec![
            ("message", Value::from(*index)),
            ("tamper", if tamper.is_empty() { Value::Null } else { (*tamper).into() }),
            ("header", hex(header.encode()).into()),
            ("ciphertext", hex(&ciphertext).into()),
        ];
        match outcome {
            Ok(plaintext) => {
                d.push(("result", "valid".into()));
                d.push(("plaintext", hex(plaintext).into()));
            }
            Err(e) => {
                let class = error_class(&e);
                first_error.get_or_insert_with(|| class.clone());
                d.push(("result", "invalid".into()));
                d.push(("error", class.into()));
            }
        }
        d.push(("skipped_keys_after", bob.skipped_key_count().into()));
        deliveries.push(object(d));
        if deliveries.len() == 1
            && let Some(nr) = index_after_first
            && !bob.advance_receiving_index(nr)
        {
            return Err(VectorError::malformed("receiver_index_after_first"));
        }
    }
    let mut case = head(
        id,
        "ratchet_receive",
        comment,
        if first_error.is_some() { "invalid" } else { "valid" },
    );
    if let Some(error) = first_error {
        case.push(("error", error.into()));
    }
    case.extend([
        ("SK", hex(sk).into()),
        ("AD", hex(ad).into()),
        ("bob_signed_prekey", key_json(spk)),
        ("alice_ratchet_key", key_json(ratchet)),
        ("messages_sent", count.into()),
        ("plaintexts", "message i is the ASCII text \"message <i>\"".into()),
        ("receiver_index_after_first", index_after_first.map_or(Value::Null, Value::from)),
        ("deliveries", Value::Array(deliveries)),
    ]);
    Ok(object(case))
}

fn verify_receive(case: &Value) -> Result<Value, VectorError> {
    let deliveries = super::util::array_field(case, "deliveries")?;
    let plan: Vec<(u32, String)> = deliveries
        .iter()
        .map(|d| Ok((u32_field(d, "message")?, d["tamper"].as_str().unwrap_or("").to_owned())))
        .collect::<Result<_, VectorError>>()?;
    let plan: Vec<(u32, &str)> = plan.iter().map(|(i, t)| (*i, t.as_str())).collect();
    receive_case(
        str_field(case, "id")?,
        str_field(case, "comment")?,
        &Receive {
            sk: hex_array(case, "SK")?,
            ad: &hex_field(case, "AD")?,
            spk: &key_from_json(&case["bob_signed_prekey"])?,
            ratchet: &key_from_json(&case["alice_ratchet_key"])?,
            count: u32_field(case, "messages_sent")?,
            plan: &plan,
            index_after_first: match &case["receiver_index_after_first"] {
                Value::Null => None,
                v => Some(
                    v.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| VectorError::malformed("receiver_index_after_first"))?,
                ),
            },
        },
    )
}

/// `ratchet_edge`: a ratchet asked for something its state cannot do yet (SPEC.md §12.3–§12.4): a
/// responder that sends before it has heard (`NoSession`), or an initiator that receives a header
/// for which it has no receiving chain or no sending ratchet key (`DecryptFailed`).
struct Edge<'a> {
    sk: [u8; 32],
    ad: &'a [u8],
    spk: &'a PrivateKey,
    /// `"initiator"` (Alice, `DHr = SPK_B`) or `"responder"` (Bob, `DHs = spk_B`).
    role: &'a str,
    /// The initiator's ratchet key, drawn at its first send.
    ratchet: &'a PrivateKey,
    /// How many messages the party sends first.
    sent: u32,
    /// `None`: the party then sends one more; `Some((header, ciphertext))`: it receives these.
    receive: Option<(Header, Vec<u8>)>,
}

fn edge_case(id: &str, comment: &str, inputs: &Edge<'_>) -> Result<Value, VectorError> {
    let Edge { sk, ad, spk, role, ratchet, sent, ref receive } = *inputs;
    let mut session = match role {
        "initiator" => Session::initiator(Secret::new(sk), ad.to_vec(), spk.public_key()),
        "responder" => Session::responder(Secret::new(sk), ad.to_vec(), spk.clone()),
        _ => return Err(VectorError::malformed("role")),
    };
    let mut rng = ReplayRng::new([ratchet.expose().to_vec()]);
    let send = |session: &mut Session, rng: &mut ReplayRng, i: u32| {
        session
            .encrypt(format!("message {i}").as_bytes(), rng)
            .map_err(|e| Error::from(e2e_protocol::e2e::E2eError::from(e)))
    };
    for i in 0..sent {
        send(&mut session, &mut rng, i)?;
    }
    let outcome = match receive {
        None => send(&mut session, &mut rng, sent).map(|_| ()),
        Some((header, ciphertext)) => session
            .decrypt(header, ciphertext)
            .map(|_| ())
            .map_err(|e| Error::from(e2e_protocol::e2e::E2eError::from(e))),
    };
    let (result, error) = super::util::outcome_fields(&outcome);
    let mut case = head(id, "ratchet_edge", comment, result);
    if let Some(error) = error {
        case.push(("error", error.into()));
    }
    case.extend([
        ("SK", hex(sk).into()),
        ("AD", hex(ad).into()),
        ("bob_signed_prekey", key_json(spk)),
        ("role", role.into()),
        ("alice_ratchet_key", key_json(ratchet)),
        ("messages_sent", sent.into()),
        ("plaintexts", "message i is the ASCII text \"message <i>\"".into()),
    ]);
    match receive {
        None => case.push(("then", "send".into())),
        Some((header, ciphertext)) => case.extend([
            ("then", "receive".into()),
            ("header", hex(header.encode()).into()),
            ("ciphertext", hex(ciphertext).into()),
        ]),
    }
    Ok(object(case))
}

fn verify_edge(case: &Value) -> Result<Value, VectorError> {
    let receive = match str_field(case, "then")? {
        "send" => None,
        "receive" => {
            Some((Header::decode(&hex_array(case, "header")?), hex_field(case, "ciphertext")?))
        }
        _ => return Err(VectorError::malformed("then")),
    };
    edge_case(
        str_field(case, "id")?,
        str_field(case, "comment")?,
        &Edge {
            sk: hex_array(case, "SK")?,
            ad: &hex_field(case, "AD")?,
            spk: &key_from_json(&case["bob_signed_prekey"])?,
            role: str_field(case, "role")?,
            ratchet: &key_from_json(&case["alice_ratchet_key"])?,
            sent: u32_field(case, "messages_sent")?,
            receive,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Safety numbers
// ---------------------------------------------------------------------------------------------

fn identity_from_bytes(ik: &[u8; 64]) -> IdentityPublic {
    let mut dh = [0u8; 32];
    let mut sign = [0u8; 32];
    dh.copy_from_slice(&ik[..32]);
    sign.copy_from_slice(&ik[32..]);
    IdentityPublic { dh: PublicKey::from_bytes(dh), sign: VerifyingKey::from_bytes(sign) }
}

fn safety_case(
    id: &str,
    comment: &str,
    a: (&[u8; 64], &str),
    b: (&[u8; 64], &str),
) -> Result<Value, VectorError> {
    let (ia, na) = (identity_from_bytes(a.0), name(a.1)?);
    let (ib, nb) = (identity_from_bytes(b.0), name(b.1)?);
    let number = SafetyNumber::new((&ia, &na), (&ib, &nb));
    let mut case = head(id, "safety_number", comment, "valid");
    case.extend([
        ("iterations", 5200.into()),
        (
            "a",
            object(vec![
                ("IK", hex(a.0).into()),
                ("name", a.1.into()),
                ("fingerprint", fingerprint(&ia, &na).into()),
            ]),
        ),
        (
            "b",
            object(vec![
                ("IK", hex(b.0).into()),
                ("name", b.1.into()),
                ("fingerprint", fingerprint(&ib, &nb).into()),
            ]),
        ),
        ("safety_number", number.digits().into()),
        ("displayed", number.to_string().into()),
    ]);
    Ok(object(case))
}

fn verify_safety(case: &Value) -> Result<Value, VectorError> {
    let a: [u8; 64] = hex_array(&case["a"], "IK")?;
    let b: [u8; 64] = hex_array(&case["b"], "IK")?;
    safety_case(
        str_field(case, "id")?,
        str_field(case, "comment")?,
        (&a, str_field(&case["a"], "name")?),
        (&b, str_field(&case["b"], "name")?),
    )
}

// ---------------------------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------------------------

/// Builds `key_schedule.json`.
///
/// # Errors
/// A protocol error where the generator expects success, or a disagreement between the model and
/// the channel.
pub fn generate() -> Result<Value, VectorError> {
    let mut cases = Vec::new();

    let register = Message::Register { name: name("alice")? }.encode();
    let welcome = Message::Welcome { name: name("alice")? }.encode();
    let keys =
        ["initiator-static", "initiator-ephemeral", "responder-static", "responder-ephemeral"]
            .map(|k| fixed_key(&format!("key-schedule/noise/{k}")));
    cases.push(noise_ik(
        "noise-ik-register-welcome",
        "The channel handshake of SPEC.md §4 with payloads Register { alice } and Welcome { alice }: every \
         symmetric-state operation in order, the four DH outputs, both messages, the handshake hash and the \
         two transport keys of Split() (k1 for the client's messages, k2 for the server's).",
        [&keys[0], &keys[1], &keys[2], &keys[3]],
        &register,
        &welcome,
    )?);
    cases.push(noise_ik(
        "noise-ik-empty-payloads",
        "The same keys with empty payloads.",
        [&keys[0], &keys[1], &keys[2], &keys[3]],
        b"",
        b"",
    )?);

    let key = fixed_bytes("key-schedule/channel-key");
    for (n, comment) in [
        (0u64, "The first nonce of a direction."),
        (1, "The second: the counter is little-endian in bytes 4..12."),
        (255, "Counter 255."),
        (256, "Counter 256: the carry goes into byte 5, not byte 10."),
        (4_294_967_296, "Counter 2^32."),
        (
            u64::MAX - 1,
            "Counter 2^64 − 2, the last usable one (2^64 − 1 is reserved, SPEC.md §4.4).",
        ),
    ] {
        cases.push(nonce_case(&format!("channel-nonce-{n}"), comment, n, key, b"nonce test"));
    }

    let alice = Ident::fixed("x3dh/alice");
    let ek = fixed_key("x3dh/alice/ek");
    let bob = BobKeys::fixed();
    cases.push(x3dh_case(
        "x3dh-with-one-time-prekey",
        "Alice's side of SPEC.md §11.1 with a bundle carrying one-time prekey 2: four DHs. Bob's side (§11.2) \
         derives the same SK and AD.",
        &alice,
        &ek,
        &bob,
        true,
    )?);
    cases.push(x3dh_case(
        "x3dh-without-one-time-prekey",
        "The same keys with a bundle without a one-time prekey: three DHs, another SK, the same AD.",
        &alice,
        &ek,
        &bob,
        false,
    )?);
    let alice_pub = alice.pair().public();
    let header = PrekeyHeader {
        identity: alice_pub,
        identity_signature: alice.pair().binding_signature(),
        base_key: ek.public_key(),
        signed_prekey_id: 1,
        one_time_prekey_id: Some(2),
    };
    cases.push(respond_case(
        "x3dh-respond-with-one-time-prekey",
        "Bob answers Alice's prekey header (spk 1, opk 2): the SK and AD of x3dh-with-one-time-prekey.",
        &bob,
        &header,
    )?);
    cases.push(respond_case(
        "x3dh-respond-unknown-signed-prekey",
        "The header names signed prekey 7, which Bob does not hold (SPEC.md §11.2: looked up first).",
        &bob,
        &PrekeyHeader { signed_prekey_id: 7, ..header },
    )?);
    cases.push(respond_case(
        "x3dh-respond-unknown-one-time-prekey",
        "The header names one-time prekey 99, which Bob does not hold.",
        &bob,
        &PrekeyHeader { one_time_prekey_id: Some(99), ..header },
    )?);
    cases.push(respond_case(
        "x3dh-respond-low-order-base-key",
        "EK_A is u = 0: DH2 = DH(ik_B, EK_A) is all zero (SPEC.md §2.1).",
        &bob,
        &PrekeyHeader { base_key: PublicKey::from_bytes([0u8; 32]), ..header },
    )?);
    let mut low_ik = alice_pub;
    low_ik.dh = PublicKey::from_bytes({
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    });
    cases.push(respond_case(
        "x3dh-respond-low-order-identity",
        "IK_A_dh is u = 1, which DH1 = DH(spk_B, IK_A_dh) would make all zero: refused before any DH \
         by the identity check of SPEC.md §11.2 (§10.3 step 2 on IK_A: LowOrderKey).",
        &bob,
        &PrekeyHeader { identity: low_ik, ..header },
    )?);
    let mallory = Ident::fixed("key-schedule/mallory");
    let other = mallory.pair();
    let mut mixed = alice_pub;
    mixed.dh = other.public().dh;
    cases.push(respond_case(
        "x3dh-respond-mixed-identity",
        "IK_A pairs another identity's X25519 key with Alice's Ed25519 key, with Alice's id_sig: the \
         signature covers Alice's IK_dh, not this one (SPEC.md §10.1, §11.2: BadSignature).",
        &bob,
        &PrekeyHeader { identity: mixed, ..header },
    )?);
    cases.push(respond_case(
        "x3dh-respond-mixed-identity-own-signature",
        "IK_A pairs Alice's X25519 key with another identity's Ed25519 key, which signed Alice's IK_dh \
         itself: the signature is valid, the identity is whole as claimed (one X25519 key, one \
         signing key that vouches for it); it is the one whose safety number Bob would show. \
         The handshake then succeeds only for the holder of Alice's ik (DH1).",
        &bob,
        &PrekeyHeader {
            identity: IdentityPublic { dh: alice_pub.dh, sign: other.public().sign },
            identity_signature: SigningKey::from_seed(mallory.isk)
                .sign(&identity_binding_message(&alice_pub.dh)),
            ..header
        },
    )?);
    cases.push(respond_case(
        "x3dh-respond-small-order-signing-key",
        "IK_A_sig is the Ed25519 identity point (small order): BadSigningKey, before anything else.",
        &bob,
        &PrekeyHeader {
            identity: IdentityPublic {
                dh: alice_pub.dh,
                sign: VerifyingKey::from_bytes({
                    let mut one = [0u8; 32];
                    one[0] = 1;
                    one
                }),
            },
            ..header
        },
    )?);

    let rk = fixed_bytes("key-schedule/rk");
    let ours = fixed_key("key-schedule/ratchet/ours");
    let theirs = fixed_key("key-schedule/ratchet/theirs").public_key();
    cases.push(kdf_rk_case(
        "kdf-rk",
        "One DH ratchet step: dh_out = DH(ours, theirs); HKDF(salt = RK, ikm = dh_out, info = \
         \"e2e-ref/ratchet/root/v1\", L = 64) split into the next RK and a chain key.",
        rk,
        &ours,
        theirs,
    )?);
    cases.push(kdf_rk_case(
        "kdf-rk-low-order-peer-key",
        "Their ratchet key is u = 0: the DH is all zero and the step fails.",
        rk,
        &ours,
        PublicKey::from_bytes([0u8; 32]),
    )?);
    cases.push(kdf_ck_case(
        "kdf-ck",
        "Three symmetric-ratchet steps from a chain key: MK = HMAC(CK, 0x01), next CK = HMAC(CK, 0x02).",
        fixed_bytes("key-schedule/ck"),
    ));
    let header = Header { dh: ours.public_key(), pn: 3, n: 7 };
    cases.push(message_keys_case(
        "message-keys",
        "A message key expanded to the AEAD key (bytes 0..32) and nonce (32..44) of HKDF(salt = 32 zero \
         bytes, ikm = MK, info = \"e2e-ref/ratchet/message/v1\", L = 44), and the AEAD over AD || header.",
        fixed_bytes("key-schedule/mk"),
        &fixed_bytes("key-schedule/ad"),
        &header,
        b"meet at noon",
    ));
    let ad = x3dh::associated_data(
        (&alice_pub, &name("alice")?),
        (&bob.identity.pair().public(), &name("bob")?),
    );
    cases.push(first_message_case(
        "ratchet-first-message",
        "Alice's first message after X3DH (SPEC.md §12.2–12.3): her first ratchet key turns the ratchet \
         against SPK_B, then KDF_CK gives the message key for n = 0. Bob, as responder with spk_B, decrypts it.",
        fixed_bytes("key-schedule/sk"),
        &ad,
        &PrivateKey::from_bytes(bob.spk),
        &fixed_key("key-schedule/alice-ratchet-1"),
        b"hi bob",
    )?);

    cases.push(receive_case(
        "ratchet-receive-skip-replay-tamper",
        "Alice sends messages 0..=1001 in her first chain; Bob (responder) receives: 1001 first (1001 keys \
         to skip > MAX_SKIP: TooFarAhead, nothing changes); 1000 (exactly MAX_SKIP skipped, stored); 1000 \
         again (n < Nr: Replayed); 5 (from the skipped store); 5 again (its key is gone: Replayed); 6 with a \
         flipped ciphertext byte (the stored key does not open it: DecryptFailed, the key stays); 6; 1001; 7 \
         with n forged to 2^32 - 1 (a gap beyond MAX_SKIP: TooFarAhead is checked before ChainExhausted).",
        &Receive {
            sk: fixed_bytes("key-schedule/receive/sk"),
            ad: &fixed_bytes("key-schedule/receive/ad"),
            spk: &fixed_key("key-schedule/receive/spk"),
            ratchet: &fixed_key("key-schedule/receive/alice-ratchet"),
            count: 1002,
            plan: &[
                (1001, ""),
                (1000, ""),
                (1000, ""),
                (5, ""),
                (5, ""),
                (6, "ciphertext"),
                (6, ""),
                (1001, ""),
                (7, "n = 2^32 - 1"),
            ],
            index_after_first: None,
        },
    )?);
    cases.push(receive_case(
        "ratchet-receive-bad-ratchet-keys",
        "Alice sends messages 0..=3 in her first chain; Bob receives 0; then 1 with its header's ratchet \
         key replaced by u = 0 (a new DHr, so Bob turns the ratchet: DH(DHs, 0) is all zero, \
         Ratchet.Crypto.NonContributory, nothing changes); then 2 with its ratchet key replaced by the base \
         point u = 9 and pn = 1500 (a new DHr: SKIP(pn) on the current chain would store 1499 keys, more \
         than MAX_SKIP: TooFarAhead, before any DH); then 1, 2 and 3 as sent, which all open.",
        &Receive {
            sk: fixed_bytes("key-schedule/receive-bad-keys/sk"),
            ad: &fixed_bytes("key-schedule/receive-bad-keys/ad"),
            spk: &fixed_key("key-schedule/receive-bad-keys/spk"),
            ratchet: &fixed_key("key-schedule/receive-bad-keys/alice-ratchet"),
            count: 4,
            plan: &[(0, ""), (1, "dh = 0"), (2, "dh = 9, pn = 1500"), (1, ""), (2, ""), (3, "")],
            index_after_first: None,
        },
    )?);
    cases.push(receive_case(
        "ratchet-receive-skipped-key-eviction",
        "Alice sends messages 0..=3000 in her first chain; Bob receives 1000 (stores the keys of 0..=999), \
         2000 (stores 1001..=1999: 1999 keys) and 3000 (1001..=1999 and 2001..=2999 would make 2998, more \
         than MAX_SKIPPED_KEYS: the oldest are evicted first, 0..=997, leaving 2000). Then 0 and 997, \
         whose keys were evicted and are below Nr: Replayed; 998, the oldest key kept, opens (1999 left).",
        &Receive {
            sk: fixed_bytes("key-schedule/receive-eviction/sk"),
            ad: &fixed_bytes("key-schedule/receive-eviction/ad"),
            spk: &fixed_key("key-schedule/receive-eviction/spk"),
            ratchet: &fixed_key("key-schedule/receive-eviction/alice-ratchet"),
            count: 3001,
            plan: &[(1000, ""), (2000, ""), (3000, ""), (0, ""), (997, ""), (998, "")],
            index_after_first: None,
        },
    )?);
    cases.push(receive_case(
        "ratchet-receive-chain-exhausted",
        "Alice sends messages 0..=2 in her first chain; Bob receives 0; then his Nr is moved forward to \
         2^32 - 1 - MAX_SKIP = 4294966295 (receiver_index_after_first: the end of a chain, reached without \
         2^32 messages). Message 1 with n forged to 2^32 - 1 now passes SKIP (exactly MAX_SKIP keys to \
         skip), and Nr + 1 would overflow: ChainExhausted, before the AEAD, and nothing changes (no \
         skipped key is stored). Message 2 as sent has n = 2 < Nr: Replayed.",
        &Receive {
            sk: fixed_bytes("key-schedule/receive-chain-exhausted/sk"),
            ad: &fixed_bytes("key-schedule/receive-chain-exhausted/ad"),
            spk: &fixed_key("key-schedule/receive-chain-exhausted/spk"),
            ratchet: &fixed_key("key-schedule/receive-chain-exhausted/alice-ratchet"),
            count: 3,
            plan: &[(0, ""), (1, "n = 2^32 - 1"), (2, "")],
            index_after_first: Some(u32::MAX - 1000),
        },
    )?);

    let edge_spk = fixed_key("key-schedule/edge/spk");
    let edge_ratchet = fixed_key("key-schedule/edge/alice-ratchet");
    let edge = |role, sent, receive| Edge {
        sk: fixed_bytes("key-schedule/edge/sk"),
        ad: b"e2e-ref/vectors/edge-ad",
        spk: &edge_spk,
        role,
        ratchet: &edge_ratchet,
        sent,
        receive,
    };
    cases.push(edge_case(
        "ratchet-responder-sends-first",
        "Bob, as responder, has DHs = spk_B but no DHr and no CKs: he cannot send before he has heard \
         (SPEC.md §12.3: NoSession).",
        &edge("responder", 0, None),
    )?);
    // The X25519 base point (u = 9): a valid key that is not Alice's DHr.
    let mut nine = [0u8; 32];
    nine[0] = 9;
    cases.push(edge_case(
        "ratchet-initiator-receives-before-sending",
        "Alice, as initiator, has not sent yet (DHs is none) and receives a header with another ratchet key \
         (u = 9): the ratchet step would need DHs, so the message cannot be genuine (SPEC.md §12.4: \
         DecryptFailed).",
        &edge("initiator", 0, Some((Header { dh: PublicKey::from_bytes(nine), pn: 0, n: 0 }, vec![0; 16]))),
    )?);
    cases.push(edge_case(
        "ratchet-initiator-receives-on-signed-prekey",
        "Alice, as initiator, has sent one message and receives a header whose ratchet key is her DHr, \
         SPK_B, with n = 3: she has no receiving chain for it (CKr is none), so the message cannot be \
         genuine (SPEC.md §12.4: DecryptFailed).",
        &edge(
            "initiator",
            1,
            Some((Header { dh: edge_spk.public_key(), pn: 0, n: 3 }, vec![0; 16])),
        ),
    )?);

    let ik = |label: &str| -> [u8; 64] {
        let pair = Ident::fixed(label).pair();
        pair.public().to_bytes()
    };
    let kat_a: [u8; 64] = hex_to_64(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6ad75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    )?;
    let kat_b: [u8; 64] = hex_to_64(
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    )?;
    cases.push(safety_case(
        "safety-number-rfc-keys",
        "IK_A = RFC 7748 §6.1 Alice's X25519 key || RFC 8032 TEST 1's Ed25519 key as \"alice\"; IK_B = RFC 7748 \
         Bob's || RFC 8032 TEST 2's as \"bob\". Bob's fingerprint is the smaller, so it comes first.",
        (&kat_a, "alice"),
        (&kat_b, "bob"),
    )?);
    cases.push(safety_case(
        "safety-number-x3dh-identities",
        "The identities of the X3DH cases, named alice and bob.",
        (&ik("x3dh/alice"), "alice"),
        (&ik("x3dh/bob"), "bob"),
    )?);

    let mut file = file_head("key_schedule", DESCRIPTION);
    file.insert("cases".to_owned(), Value::Array(cases));
    Ok(Value::Object(file))
}

fn hex_to_64(s: &str) -> Result<[u8; 64], VectorError> {
    hex::decode(s).ok().and_then(|v| v.try_into().ok()).ok_or_else(|| VectorError::malformed("IK"))
}

/// Re-derives every case of `key_schedule.json` from its inputs.
#[must_use]
pub fn verify(file: &Value) -> Vec<CaseResult> {
    verify_cases(file, |case| {
        let id = str_field(case, "id")?;
        let got = match str_field(case, "function")? {
            "noise_ik" => verify_noise_ik(case)?,
            "channel_nonce" => nonce_case(
                id,
                str_field(case, "comment")?,
                u64_field(case, "n")?,
                hex_array(case, "key")?,
                &hex_field(case, "plaintext")?,
            ),
            "x3dh" => verify_x3dh(case)?,
            "x3dh_respond" => verify_respond(case)?,
            "kdf_rk" => verify_kdf_rk(case)?,
            "kdf_ck" => kdf_ck_case(id, str_field(case, "comment")?, hex_array(case, "CK")?),
            "message_keys" => verify_message_keys(case)?,
            "ratchet_first_message" => verify_first_message(case)?,
            "ratchet_receive" => verify_receive(case)?,
            "ratchet_edge" => verify_edge(case)?,
            "safety_number" => verify_safety(case)?,
            _ => return Err(VectorError::malformed("function")),
        };
        compare_json(id, case, &got)
    })
}
