//! `wire.json`: valid frames of every type with their fields, and invalid ones with their error
//! class (SPEC.md §3, §13, §15.1).
//!
//! Three families: `link` (link frames, §3.2), `message` (§3.3, §15.1) and `envelope` (the e2e
//! envelope, §13, parsed only by the recipient). A valid case gives the bytes and the decoded
//! `fields`; encoding the fields gives the bytes again (every value has exactly one encoding).

use serde_json::{Value, json};

use super::util::{
    Ident, array_field, compare_json, error_class, fixed_key, hex, hex_array, hex_field, object,
    str_field, u32_field, u64_field,
};
use super::{CaseResult, VectorError, file_head, verify_cases};
use e2e_protocol::e2e::envelope::{EnvelopeBody, RatchetMessage};
use e2e_protocol::e2e::ratchet::Header;
use e2e_protocol::e2e::x3dh::PrekeyHeader;
use e2e_protocol::error::Error;
use e2e_protocol::suite::{PublicKey, Signature, VerifyingKey};
use e2e_protocol::wire::{
    AckStatus, Body, BundleRefusal, Codec, Envelope, FetchedBundle, IdentityPublic, LinkFrame,
    LinkKind, MAX_BODY_LEN, MAX_ENCODED_PREKEYS, MAX_ENVELOPE_LEN, Message, MessageId, Name,
    OneTimePrekeyPublic, RefusalReason, RejectReason, SignedPrekeyPublic, UploadedBundle,
};

const DESCRIPTION: &str = "Frames and envelopes, byte for byte (SPEC.md §3, §13, §15.1). `family` is \
`link` (link frames, max 65541 bytes), `message` (plaintext messages, max 65519 bytes) or `envelope` \
(the e2e envelope inside E2eSend/E2eDeliver, parsed by the recipient only). A valid case gives the bytes \
(`hex`) and the decoded `fields`; encoding the fields must give the bytes again. An invalid case gives the \
error class of the first failing check of SPEC.md §3.4 (for envelopes, §13). Names are ASCII strings, \
every other byte string is hex, integers are JSON numbers (ids are u64).";

// ---------------------------------------------------------------------------------------------
// Fields <-> JSON
// ---------------------------------------------------------------------------------------------

fn malformed(field: &str) -> VectorError {
    VectorError::malformed(field)
}

fn identity_from(bytes: &[u8; 64]) -> IdentityPublic {
    let mut dh = [0u8; 32];
    let mut sign = [0u8; 32];
    dh.copy_from_slice(&bytes[..32]);
    sign.copy_from_slice(&bytes[32..]);
    IdentityPublic { dh: PublicKey::from_bytes(dh), sign: VerifyingKey::from_bytes(sign) }
}

fn opk_json(opk: &OneTimePrekeyPublic) -> Value {
    json!({"id": opk.id, "key": hex(opk.key.as_bytes())})
}

fn opk_from(v: &Value) -> Result<OneTimePrekeyPublic, VectorError> {
    Ok(OneTimePrekeyPublic {
        id: u32_field(v, "id")?,
        key: PublicKey::from_bytes(hex_array(v, "key")?),
    })
}

fn spk_fields(spk: &SignedPrekeyPublic) -> Vec<(&'static str, Value)> {
    vec![
        ("spk_id", spk.id.into()),
        ("spk", hex(spk.key.as_bytes()).into()),
        ("spk_sig", hex(spk.signature.as_bytes()).into()),
    ]
}

fn spk_from(v: &Value) -> Result<SignedPrekeyPublic, VectorError> {
    Ok(SignedPrekeyPublic {
        id: u32_field(v, "spk_id")?,
        key: PublicKey::from_bytes(hex_array(v, "spk")?),
        signature: Signature::from_bytes(hex_array(v, "spk_sig")?),
    })
}

/// The JSON `fields` of an `UploadBundle`'s bundle.
#[must_use]
pub fn upload_json(bundle: &UploadedBundle) -> Vec<(&'static str, Value)> {
    let mut fields = vec![("IK", hex(bundle.identity().to_bytes()).into())];
    fields.extend(spk_fields(bundle.signed_prekey()));
    fields.push(("one_time_prekeys", bundle.one_time_prekeys().iter().map(opk_json).collect()));
    fields
}

/// The inverse of [`upload_json`].
///
/// # Errors
/// [`VectorError::Malformed`], or a codec bound.
pub fn upload_from(v: &Value) -> Result<UploadedBundle, VectorError> {
    let opks =
        array_field(v, "one_time_prekeys")?.iter().map(opk_from).collect::<Result<_, _>>()?;
    Ok(UploadedBundle::new(identity_from(&hex_array(v, "IK")?), spk_from(v)?, opks)?)
}

/// The JSON `fields` of a fetched bundle.
#[must_use]
pub fn fetched_json(bundle: &FetchedBundle) -> Vec<(&'static str, Value)> {
    let mut fields = vec![("IK", hex(bundle.identity.to_bytes()).into())];
    fields.extend(spk_fields(&bundle.signed_prekey));
    fields.push(("one_time_prekey", bundle.one_time_prekey.as_ref().map_or(Value::Null, opk_json)));
    fields
}

/// The inverse of [`fetched_json`].
///
/// # Errors
/// [`VectorError::Malformed`].
pub fn fetched_from(v: &Value) -> Result<FetchedBundle, VectorError> {
    Ok(FetchedBundle {
        identity: identity_from(&hex_array(v, "IK")?),
        signed_prekey: spk_from(v)?,
        one_time_prekey: match &v["one_time_prekey"] {
            Value::Null => None,
            opk => Some(opk_from(opk)?),
        },
    })
}

const fn refusal_reason_name(r: RefusalReason) -> &'static str {
    match r {
        RefusalReason::NameTaken => "NameTaken",
        RefusalReason::NotARegistration => "NotARegistration",
        RefusalReason::KeyInUse => "KeyInUse",
        RefusalReason::ServerFull => "ServerFull",
    }
}

const fn ack_name(s: AckStatus) -> &'static str {
    match s {
        AckStatus::Relayed => "Relayed",
        AckStatus::Queued => "Queued",
    }
}

const fn reject_name(r: RejectReason) -> &'static str {
    match r {
        RejectReason::Policy => "Policy",
        RejectReason::MailboxFull => "MailboxFull",
        RejectReason::UnknownRecipient => "UnknownRecipient",
        RejectReason::ServerFull => "ServerFull",
    }
}

const ALL_REFUSALS: [BundleRefusal; 5] = [
    BundleRefusal::BadSigningKey,
    BundleRefusal::LowOrderKey,
    BundleRefusal::BadSignature,
    BundleRefusal::TooManyPrekeys,
    BundleRefusal::DuplicatePrekeyId,
];

fn named<T: Copy>(
    all: &[T],
    name_of: fn(T) -> &'static str,
    v: &Value,
    key: &str,
) -> Result<T, VectorError> {
    let wanted = str_field(v, key)?;
    all.iter().copied().find(|x| name_of(*x) == wanted).ok_or_else(|| malformed(key))
}

fn name_from(v: &Value, key: &str) -> Result<Name, VectorError> {
    Ok(Name::new(str_field(v, key)?)?)
}

/// A message as `{"type", …fields}`.
#[must_use]
pub fn message_json(m: &Message) -> Value {
    let mut fields: Vec<(&str, Value)> = vec![("type", m.type_name().into())];
    match m {
        Message::Register { name } | Message::Welcome { name } => {
            fields.push(("name", name.as_str().into()))
        }
        Message::FetchBundle { name } | Message::NoBundle { name } => {
            fields.push(("name", name.as_str().into()))
        }
        Message::Refused { reason } => fields.push(("reason", refusal_reason_name(*reason).into())),
        Message::Ready => {}
        Message::Send { id, to, body } => fields.extend([
            ("id", id.0.into()),
            ("to", to.as_str().into()),
            ("body", hex(body.as_bytes()).into()),
        ]),
        Message::Deliver { id, from, body } => fields.extend([
            ("id", id.0.into()),
            ("from", from.as_str().into()),
            ("body", hex(body.as_bytes()).into()),
        ]),
        Message::Ack { id, status } => {
            fields.extend([("id", id.0.into()), ("status", ack_name(*status).into())])
        }
        Message::Reject { id, reason } => {
            fields.extend([("id", id.0.into()), ("reason", reject_name(*reason).into())])
        }
        Message::UploadBundle { bundle } => fields.extend(upload_json(bundle)),
        Message::BundleStored { one_time_prekeys } | Message::PrekeysLow { one_time_prekeys } => {
            fields.push(("one_time_prekeys", (*one_time_prekeys).into()))
        }
        Message::BundleRefused { reason } => {
            fields.push(("reason", super::util::refusal_name(*reason).into()))
        }
        Message::Bundle { name, bundle } => {
            fields.push(("name", name.as_str().into()));
            fields.extend(fetched_json(bundle));
        }
        Message::E2eSend { id, to, envelope } => fields.extend([
            ("id", id.0.into()),
            ("to", to.as_str().into()),
            ("envelope", hex(envelope.as_bytes()).into()),
        ]),
        Message::E2eDeliver { id, from, envelope } => fields.extend([
            ("id", id.0.into()),
            ("from", from.as_str().into()),
            ("envelope", hex(envelope.as_bytes()).into()),
        ]),
    }
    object(fields)
}

/// The inverse of [`message_json`].
///
/// # Errors
/// [`VectorError::Malformed`], or a field outside its bounds.
pub fn message_from(v: &Value) -> Result<Message, VectorError> {
    let id = || u64_field(v, "id").map(MessageId);
    let body = || -> Result<Body, VectorError> { Ok(Body::new(hex_field(v, "body")?)?) };
    let envelope =
        || -> Result<Envelope, VectorError> { Ok(Envelope::new(hex_field(v, "envelope")?)?) };
    Ok(match str_field(v, "type")? {
        "Register" => Message::Register { name: name_from(v, "name")? },
        "Welcome" => Message::Welcome { name: name_from(v, "name")? },
        "Refused" => Message::Refused {
            reason: named(
                &[
                    RefusalReason::NameTaken,
                    RefusalReason::NotARegistration,
                    RefusalReason::KeyInUse,
                    RefusalReason::ServerFull,
                ],
                refusal_reason_name,
                v,
                "reason",
            )?,
        },
        "Ready" => Message::Ready,
        "Send" => Message::Send { id: id()?, to: name_from(v, "to")?, body: body()? },
        "Deliver" => Message::Deliver { id: id()?, from: name_from(v, "from")?, body: body()? },
        "Ack" => Message::Ack {
            id: id()?,
            status: named(&[AckStatus::Relayed, AckStatus::Queued], ack_name, v, "status")?,
        },
        "Reject" => Message::Reject {
            id: id()?,
            reason: named(
                &[
                    RejectReason::Policy,
                    RejectReason::MailboxFull,
                    RejectReason::UnknownRecipient,
                    RejectReason::ServerFull,
                ],
                reject_name,
                v,
                "reason",
            )?,
        },
        "UploadBundle" => Message::UploadBundle { bundle: upload_from(v)? },
        "BundleStored" => Message::BundleStored {
            one_time_prekeys: u16::try_from(u64_field(v, "one_time_prekeys")?)
                .map_err(|_| malformed("one_time_prekeys"))?,
        },
        "PrekeysLow" => Message::PrekeysLow {
            one_time_prekeys: u16::try_from(u64_field(v, "one_time_prekeys")?)
                .map_err(|_| malformed("one_time_prekeys"))?,
        },
        "BundleRefused" => Message::BundleRefused {
            reason: named(&ALL_REFUSALS, super::util::refusal_name, v, "reason")?,
        },
        "FetchBundle" => Message::FetchBundle { name: name_from(v, "name")? },
        "Bundle" => Message::Bundle { name: name_from(v, "name")?, bundle: fetched_from(v)? },
        "NoBundle" => Message::NoBundle { name: name_from(v, "name")? },
        "E2eSend" => Message::E2eSend { id: id()?, to: name_from(v, "to")?, envelope: envelope()? },
        "E2eDeliver" => {
            Message::E2eDeliver { id: id()?, from: name_from(v, "from")?, envelope: envelope()? }
        }
        _ => return Err(malformed("type")),
    })
}

fn link_json(f: &LinkFrame) -> Value {
    json!({"type": f.type_name(), "noise": hex(f.noise())})
}

fn link_from(v: &Value) -> Result<LinkFrame, VectorError> {
    let kind = match str_field(v, "type")? {
        "HandshakeInit" => LinkKind::HandshakeInit,
        "HandshakeResp" => LinkKind::HandshakeResp,
        "Transport" => LinkKind::Transport,
        _ => return Err(malformed("type")),
    };
    Ok(LinkFrame::new(kind, hex_field(v, "noise")?)?)
}

/// A ratchet header as `{"dh", "pn", "n"}`.
#[must_use]
pub fn header_json(h: &Header) -> Value {
    json!({"dh": hex(h.dh.as_bytes()), "pn": h.pn, "n": h.n})
}

fn header_from(v: &Value) -> Result<Header, VectorError> {
    Ok(Header {
        dh: PublicKey::from_bytes(hex_array(v, "dh")?),
        pn: u32_field(v, "pn")?,
        n: u32_field(v, "n")?,
    })
}

/// An envelope as `{"type": "PrekeyMessage" | "RatchetMessage", …}`.
#[must_use]
pub fn envelope_json(e: &EnvelopeBody) -> Value {
    match e {
        EnvelopeBody::Prekey { prekey, message } => object(vec![
            ("type", "PrekeyMessage".into()),
            ("IK", hex(prekey.identity.to_bytes()).into()),
            ("id_sig", hex(prekey.identity_signature.as_bytes()).into()),
            ("EK", hex(prekey.base_key.as_bytes()).into()),
            ("spk_id", prekey.signed_prekey_id.into()),
            ("opk_id", prekey.one_time_prekey_id.map_or(Value::Null, Value::from)),
            ("header", header_json(&message.header)),
            ("ciphertext", hex(&message.ciphertext).into()),
        ]),
        EnvelopeBody::Ratchet(message) => object(vec![
            ("type", "RatchetMessage".into()),
            ("header", header_json(&message.header)),
            ("ciphertext", hex(&message.ciphertext).into()),
        ]),
    }
}

fn envelope_from(v: &Value) -> Result<EnvelopeBody, VectorError> {
    let message = RatchetMessage {
        header: header_from(&v["header"])?,
        ciphertext: hex_field(v, "ciphertext")?,
    };
    Ok(match str_field(v, "type")? {
        "PrekeyMessage" => EnvelopeBody::Prekey {
            prekey: PrekeyHeader {
                identity: identity_from(&hex_array(v, "IK")?),
                identity_signature: Signature::from_bytes(hex_array(v, "id_sig")?),
                base_key: PublicKey::from_bytes(hex_array(v, "EK")?),
                signed_prekey_id: u32_field(v, "spk_id")?,
                one_time_prekey_id: if v["opk_id"].is_null() {
                    None
                } else {
                    Some(u32_field(v, "opk_id")?)
                },
            },
            message,
        },
        "RatchetMessage" => EnvelopeBody::Ratchet(message),
        _ => return Err(malformed("type")),
    })
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// Decodes `bytes` as `family`: the fields, or the error.
fn decode(family: &str, bytes: &[u8]) -> Result<Result<Value, Error>, VectorError> {
    Ok(match family {
        "link" => LinkFrame::decode(bytes).map(|f| link_json(&f)).map_err(Error::from),
        "message" => Message::decode(bytes).map(|m| message_json(&m)).map_err(Error::from),
        "envelope" => EnvelopeBody::decode(bytes).map(|e| envelope_json(&e)).map_err(Error::from),
        _ => return Err(malformed("family")),
    })
}

/// Encodes `fields` as `family`.
fn encode(family: &str, fields: &Value) -> Result<Vec<u8>, VectorError> {
    Ok(match family {
        "link" => link_from(fields)?.encode(),
        "message" => message_from(fields)?.encode(),
        "envelope" => envelope_from(fields)?.encode(),
        _ => return Err(malformed("family")),
    })
}

/// A case from its bytes; `expect` is the error class the generator expects, if any.
fn case(
    id: &str,
    comment: &str,
    family: &str,
    bytes: &[u8],
    expect: Option<&str>,
) -> Result<Value, VectorError> {
    let decoded = decode(family, bytes)?;
    let mut fields = vec![("id", id.into()), ("comment", comment.into())];
    match &decoded {
        Ok(decoded) => {
            if let Some(expected) = expect {
                return Err(VectorError::mismatch(id, &expected, &"valid"));
            }
            if encode(family, decoded)? != bytes {
                return Err(VectorError::mismatch(
                    id,
                    &"a canonical encoding",
                    &"another encoding",
                ));
            }
            fields.extend([
                ("result", "valid".into()),
                ("family", family.into()),
                ("hex", hex(bytes).into()),
            ]);
            fields.push(("fields", decoded.clone()));
        }
        Err(e) => {
            let class = error_class(e);
            if expect != Some(class.as_str()) {
                return Err(VectorError::mismatch(id, &expect.unwrap_or("valid"), &class));
            }
            fields.extend([
                ("result", "invalid".into()),
                ("error", class.into()),
                ("family", family.into()),
                ("hex", hex(bytes).into()),
            ]);
        }
    }
    Ok(object(fields))
}

fn frame(version: u8, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![version, kind];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn header_only(kind: u8, declared: u32) -> Vec<u8> {
    let mut out = vec![0x01, kind];
    out.extend_from_slice(&declared.to_be_bytes());
    out
}

fn name(s: &str) -> Result<Name, VectorError> {
    Ok(Name::new(s)?)
}

fn body(b: &[u8]) -> Result<Body, VectorError> {
    Ok(Body::new(b.to_vec())?)
}

/// Sample keys and bundles for the e2e messages.
struct Samples {
    upload: UploadedBundle,
    fetched: FetchedBundle,
    prekey_envelope: Vec<u8>,
    ratchet_envelope: Vec<u8>,
}

fn samples() -> Result<Samples, VectorError> {
    let identity = Ident::fixed("wire/bob").pair();
    let spk = identity.sign_prekey(1, fixed_key("wire/bob/spk/1").public_key());
    let opks: Vec<OneTimePrekeyPublic> = (2..=3)
        .map(|id| OneTimePrekeyPublic {
            id,
            key: fixed_key(&format!("wire/bob/opk/{id}")).public_key(),
        })
        .collect();
    let upload = UploadedBundle::new(identity.public(), spk, opks.clone())?;
    let fetched = FetchedBundle {
        identity: identity.public(),
        signed_prekey: spk,
        one_time_prekey: opks.first().copied(),
    };
    let alice_pair = Ident::fixed("wire/alice").pair();
    let alice = alice_pair.public();
    let header = Header { dh: fixed_key("wire/alice/ratchet").public_key(), pn: 0, n: 0 };
    let ciphertext: Vec<u8> = (0u8..18).collect();
    let prekey_envelope = EnvelopeBody::Prekey {
        prekey: PrekeyHeader {
            identity: alice,
            identity_signature: alice_pair.binding_signature(),
            base_key: fixed_key("wire/alice/ek").public_key(),
            signed_prekey_id: 1,
            one_time_prekey_id: Some(2),
        },
        message: RatchetMessage { header, ciphertext: ciphertext.clone() },
    }
    .encode();
    let ratchet_envelope = EnvelopeBody::Ratchet(RatchetMessage {
        header: Header { n: 5, pn: 2, ..header },
        ciphertext,
    })
    .encode();
    Ok(Samples { upload, fetched, prekey_envelope, ratchet_envelope })
}

/// Builds `wire.json`.
///
/// # Errors
/// A protocol error, or a case whose outcome differs from what the generator expects.
#[allow(clippy::too_many_lines)]
pub fn generate() -> Result<Value, VectorError> {
    let s = samples()?;
    let mut cases = Vec::new();
    let mut valid =
        |id: &str, comment: &str, family: &str, bytes: &[u8]| -> Result<(), VectorError> {
            cases.push(case(id, comment, family, bytes, None)?);
            Ok(())
        };

    // Link frames.
    valid(
        "link-handshake-init-minimum",
        "HandshakeInit with the 96-byte minimum body (an empty payload).",
        "link",
        &frame(1, 1, &[0x11; 96]),
    )?;
    valid(
        "link-handshake-resp-minimum",
        "HandshakeResp with the 48-byte minimum body.",
        "link",
        &frame(1, 2, &[0x22; 48]),
    )?;
    valid(
        "link-transport-minimum",
        "Transport with a bare 16-byte tag.",
        "link",
        &frame(1, 3, &[0x33; 16]),
    )?;
    valid(
        "link-transport-maximum",
        "Transport with a 65535-byte body: the largest link frame, 65541 bytes.",
        "link",
        &frame(1, 3, &vec![0x44; 65535]),
    )?;

    // Messages: every type.
    let m = |msg: Message| msg.encode();
    valid(
        "message-register",
        "Register { alice }.",
        "message",
        &m(Message::Register { name: name("alice")? }),
    )?;
    valid(
        "message-welcome",
        "Welcome { alice }.",
        "message",
        &m(Message::Welcome { name: name("alice")? }),
    )?;
    valid(
        "message-refused-name-taken",
        "Refused { NameTaken } (0x01).",
        "message",
        &m(Message::Refused { reason: RefusalReason::NameTaken }),
    )?;
    valid(
        "message-refused-not-a-registration",
        "Refused { NotARegistration } (0x02).",
        "message",
        &m(Message::Refused { reason: RefusalReason::NotARegistration }),
    )?;
    valid(
        "message-refused-key-in-use",
        "Refused { KeyInUse } (0x03): the static key is bound to another name (SPEC.md §5.1).",
        "message",
        &m(Message::Refused { reason: RefusalReason::KeyInUse }),
    )?;
    valid(
        "message-refused-server-full",
        "Refused { ServerFull } (0x04): the server binds no more names (SPEC.md §5.1, §8).",
        "message",
        &m(Message::Refused { reason: RefusalReason::ServerFull }),
    )?;
    valid("message-ready", "Ready: no fields, body length 0.", "message", &m(Message::Ready))?;
    valid(
        "message-send-spec-example",
        "The example of SPEC.md §3.3: Send { id: 1, to: bob, body: \"hi\" }.",
        "message",
        &m(Message::Send { id: MessageId(1), to: name("bob")?, body: body(b"hi")? }),
    )?;
    valid(
        "message-send-empty-body",
        "Send with an empty body (len 0 is allowed).",
        "message",
        &m(Message::Send { id: MessageId(2), to: name("bob")?, body: body(b"")? }),
    )?;
    valid(
        "message-send-max-body",
        "Send with a 16384-byte body, MAX_BODY_LEN.",
        "message",
        &m(Message::Send {
            id: MessageId(3),
            to: name("bob")?,
            body: body(&vec![0x61; MAX_BODY_LEN])?,
        }),
    )?;
    valid(
        "message-send-max-name-max-id",
        "Send to a 32-byte name using every character class, id 2^64 − 1.",
        "message",
        &m(Message::Send {
            id: MessageId(u64::MAX),
            to: name("abcdefghijklmnopqrstuvwxyz0-_.89")?,
            body: body(b"x")?,
        }),
    )?;
    valid(
        "message-deliver",
        "Deliver { id: 1, from: alice, body: \"hi bob\" }.",
        "message",
        &m(Message::Deliver { id: MessageId(1), from: name("alice")?, body: body(b"hi bob")? }),
    )?;
    valid(
        "message-ack-relayed",
        "Ack { 1, Relayed } (0x01).",
        "message",
        &m(Message::Ack { id: MessageId(1), status: AckStatus::Relayed }),
    )?;
    valid(
        "message-ack-queued",
        "Ack { 2, Queued } (0x02).",
        "message",
        &m(Message::Ack { id: MessageId(2), status: AckStatus::Queued }),
    )?;
    for (code, reason) in [
        (1, RejectReason::Policy),
        (2, RejectReason::MailboxFull),
        (3, RejectReason::UnknownRecipient),
        (4, RejectReason::ServerFull),
    ] {
        valid(
            &format!("message-reject-{code}"),
            &format!("Reject {{ 7, {} }} (0x0{code}).", reject_name(reason)),
            "message",
            &m(Message::Reject { id: MessageId(7), reason }),
        )?;
    }
    valid(
        "message-upload-bundle",
        "UploadBundle: IK, signed prekey 1 with its signature, two one-time prekeys (ids 2, 3).",
        "message",
        &m(Message::UploadBundle { bundle: s.upload.clone() }),
    )?;
    let no_opks = UploadedBundle::new(*s.upload.identity(), *s.upload.signed_prekey(), Vec::new())?;
    valid(
        "message-upload-bundle-no-one-time-prekeys",
        "UploadBundle with count 0 (a rotation or a bare re-upload).",
        "message",
        &m(Message::UploadBundle { bundle: no_opks }),
    )?;
    let many: Vec<OneTimePrekeyPublic> = (0..MAX_ENCODED_PREKEYS)
        .map(|i| OneTimePrekeyPublic {
            id: 100 + u32::try_from(i).unwrap_or(0),
            key: s.upload.one_time_prekeys()[0].key,
        })
        .collect();
    let max_upload = UploadedBundle::new(*s.upload.identity(), *s.upload.signed_prekey(), many)?;
    valid(
        "message-upload-bundle-1000-prekeys",
        "UploadBundle with count 1000, MAX_ENCODED_PREKEYS: the codec accepts it (the bundle rule of §10.3 then refuses more than 100).",
        "message",
        &m(Message::UploadBundle { bundle: max_upload }),
    )?;
    valid(
        "message-bundle-stored",
        "BundleStored { 10 }.",
        "message",
        &m(Message::BundleStored { one_time_prekeys: 10 }),
    )?;
    valid(
        "message-prekeys-low",
        "PrekeysLow { 5 } (0x38): the server holds 5 of the client's one-time prekeys (SPEC.md §15.2).",
        "message",
        &m(Message::PrekeysLow { one_time_prekeys: 5 }),
    )?;
    for (i, reason) in ALL_REFUSALS.iter().enumerate() {
        valid(
            &format!("message-bundle-refused-{}", i + 1),
            &format!("BundleRefused {{ {} }} (0x0{}).", super::util::refusal_name(*reason), i + 1),
            "message",
            &m(Message::BundleRefused { reason: *reason }),
        )?;
    }
    valid(
        "message-fetch-bundle",
        "FetchBundle { bob }.",
        "message",
        &m(Message::FetchBundle { name: name("bob")? }),
    )?;
    valid(
        "message-bundle-with-one-time-prekey",
        "Bundle for bob with has_opk = 1 and one-time prekey 2.",
        "message",
        &m(Message::Bundle { name: name("bob")?, bundle: s.fetched }),
    )?;
    valid(
        "message-bundle-without-one-time-prekey",
        "Bundle for bob with has_opk = 0.",
        "message",
        &m(Message::Bundle {
            name: name("bob")?,
            bundle: FetchedBundle { one_time_prekey: None, ..s.fetched },
        }),
    )?;
    valid(
        "message-no-bundle",
        "NoBundle { carol }.",
        "message",
        &m(Message::NoBundle { name: name("carol")? }),
    )?;
    valid(
        "message-e2e-send",
        "E2eSend { 1, bob, a prekey-message envelope }.",
        "message",
        &m(Message::E2eSend {
            id: MessageId(1),
            to: name("bob")?,
            envelope: Envelope::new(s.prekey_envelope.clone())?,
        }),
    )?;
    valid(
        "message-e2e-deliver",
        "E2eDeliver { 4, alice, a ratchet-message envelope }.",
        "message",
        &m(Message::E2eDeliver {
            id: MessageId(4),
            from: name("alice")?,
            envelope: Envelope::new(s.ratchet_envelope.clone())?,
        }),
    )?;
    valid(
        "message-e2e-send-max-envelope",
        "E2eSend with a 16640-byte envelope, MAX_ENVELOPE_LEN (the server never parses it).",
        "message",
        &m(Message::E2eSend {
            id: MessageId(9),
            to: name("bob")?,
            envelope: Envelope::new(vec![0x02; MAX_ENVELOPE_LEN])?,
        }),
    )?;

    // Envelopes.
    valid(
        "envelope-prekey-message",
        "PrekeyMessage with has_opk = 1 (opk_id 2), then the ratchet header and an 18-byte ciphertext.",
        "envelope",
        &s.prekey_envelope,
    )?;
    // Offsets (SPEC.md §13): kind 0, IK_A 1..65, id_sig 65..129, EK_A 129..161, spk_id 161..165,
    // has_opk 165, opk_id 166..170.
    let mut no_opk = s.prekey_envelope.clone();
    no_opk.drain(166..170);
    no_opk[165] = 0;
    valid(
        "envelope-prekey-message-without-opk",
        "PrekeyMessage with has_opk = 0: no opk_id follows.",
        "envelope",
        &no_opk,
    )?;
    valid(
        "envelope-ratchet-message",
        "RatchetMessage: kind 0x02, header (pn 2, n 5), ciphertext.",
        "envelope",
        &s.ratchet_envelope,
    )?;
    valid(
        "envelope-ratchet-message-bare-tag",
        "RatchetMessage whose ciphertext is exactly 16 bytes (an empty plaintext).",
        "envelope",
        &s.ratchet_envelope[..57],
    )?;

    // Invalid.
    let mut invalid = |id: &str,
                       comment: &str,
                       family: &str,
                       bytes: &[u8],
                       class: &str|
     -> Result<(), VectorError> {
        cases.push(case(id, comment, family, bytes, Some(class))?);
        Ok(())
    };
    let ready = m(Message::Ready);
    let register = m(Message::Register { name: name("bob")? });
    invalid("link-empty", "No bytes at all.", "link", b"", "Wire.Truncated")?;
    invalid("link-version-only", "Version byte, nothing else.", "link", &[0x01], "Wire.Truncated")?;
    invalid(
        "link-unknown-version-0",
        "Version 0x00.",
        "link",
        &frame(0, 3, &[0; 16]),
        "Wire.UnknownVersion",
    )?;
    invalid(
        "link-unknown-version-2",
        "Version 0x02, otherwise a valid Transport frame.",
        "link",
        &frame(2, 3, &[0; 16]),
        "Wire.UnknownVersion",
    )?;
    invalid(
        "link-unknown-version-alone",
        "A single byte 0x02: the version is checked before the length.",
        "link",
        &[0x02],
        "Wire.UnknownVersion",
    )?;
    invalid("link-unknown-type", "Type 0x04.", "link", &frame(1, 4, &[0; 16]), "Wire.UnknownType")?;
    invalid(
        "link-message-type",
        "Type 0x13 (Ready) is a message code, unknown to the link family.",
        "link",
        &frame(1, 0x13, &[0; 16]),
        "Wire.UnknownType",
    )?;
    invalid(
        "link-short-header",
        "Four bytes: the length field is cut.",
        "link",
        &[0x01, 0x03, 0x00, 0x00],
        "Wire.Truncated",
    )?;
    invalid(
        "link-declared-oversized",
        "A header declaring a 65536-byte body (frame 65542 > 65541), with no body: Oversized before Truncated.",
        "link",
        &header_only(3, 65536),
        "Wire.Oversized",
    )?;
    invalid(
        "link-declared-max-u32",
        "A header declaring body_len 2^32 − 1.",
        "link",
        &header_only(3, u32::MAX),
        "Wire.Oversized",
    )?;
    invalid(
        "link-input-oversized",
        "An input of 65542 bytes (longer than any link frame), whatever its header says.",
        "link",
        &frame(1, 3, &vec![0; 65536]),
        "Wire.Oversized",
    )?;
    invalid(
        "link-body-truncated",
        "A header declaring 16 bytes followed by 15.",
        "link",
        &frame(1, 3, &[0; 16])[..21],
        "Wire.Truncated",
    )?;
    invalid(
        "link-trailing-bytes",
        "A Transport frame followed by one more byte.",
        "link",
        &[frame(1, 3, &[0; 16]), vec![0]].concat(),
        "Wire.TrailingBytes",
    )?;
    invalid(
        "link-transport-too-short",
        "A Transport body of 15 bytes, below the 16-byte tag.",
        "link",
        &frame(1, 3, &[0; 15]),
        "Wire.BadLength",
    )?;
    invalid(
        "link-handshake-init-too-short",
        "A HandshakeInit body of 95 bytes.",
        "link",
        &frame(1, 1, &[0; 95]),
        "Wire.BadLength",
    )?;
    invalid(
        "link-handshake-resp-too-short",
        "A HandshakeResp body of 47 bytes.",
        "link",
        &frame(1, 2, &[0; 47]),
        "Wire.BadLength",
    )?;

    invalid("message-empty", "No bytes.", "message", b"", "Wire.Truncated")?;
    invalid(
        "message-link-type",
        "Type 0x03 (Transport) is a link code, unknown to the message family.",
        "message",
        &frame(1, 3, &[]),
        "Wire.UnknownType",
    )?;
    invalid(
        "message-reserved-type",
        "Type 0x39, reserved (SPEC.md §3.3).",
        "message",
        &frame(1, 0x39, &[]),
        "Wire.UnknownType",
    )?;
    invalid(
        "message-unassigned-type",
        "Type 0x00.",
        "message",
        &frame(1, 0x00, &[]),
        "Wire.UnknownType",
    )?;
    invalid(
        "message-declared-oversized",
        "A header declaring a 65514-byte body (frame 65520 > 65519).",
        "message",
        &header_only(0x20, 65514),
        "Wire.Oversized",
    )?;
    invalid(
        "message-input-oversized",
        "An input of 65520 bytes.",
        "message",
        &frame(1, 0x20, &vec![0; 65514]),
        "Wire.Oversized",
    )?;
    invalid(
        "message-ready-trailing",
        "Ready with a one-byte body: the body has bytes after its last field.",
        "message",
        &frame(1, 0x13, &[0]),
        "Wire.TrailingBytes",
    )?;
    invalid(
        "message-frame-trailing",
        "A whole Ready frame followed by one byte.",
        "message",
        &[ready.clone(), vec![0]].concat(),
        "Wire.TrailingBytes",
    )?;
    invalid(
        "message-register-empty-name",
        "Register with name length 0.",
        "message",
        &frame(1, 0x10, &[0]),
        "Wire.BadLength",
    )?;
    invalid(
        "message-register-name-33",
        "Register with name length 33, and no name bytes: the length prefix is refused before the bytes it announces.",
        "message",
        &frame(1, 0x10, &[33]),
        "Wire.BadLength",
    )?;
    invalid(
        "message-register-name-truncated",
        "Register whose name length 5 runs past the end of the 4-byte body.",
        "message",
        &frame(1, 0x10, &[5, b'b', b'o', b'b']),
        "Wire.Truncated",
    )?;
    invalid(
        "message-register-upper-case",
        "Register { \"Bob\" }: upper case is outside the name alphabet.",
        "message",
        &frame(1, 0x10, b"\x03Bob"),
        "Wire.InvalidValue",
    )?;
    invalid(
        "message-register-space",
        "Register { \"a b\" }.",
        "message",
        &frame(1, 0x10, b"\x03a b"),
        "Wire.InvalidValue",
    )?;
    invalid(
        "message-register-non-ascii",
        "Register with the bytes c3 a9 (UTF-8 e-acute).",
        "message",
        &frame(1, 0x10, &[2, 0xc3, 0xa9]),
        "Wire.InvalidValue",
    )?;
    invalid(
        "message-register-trailing",
        "Register { bob } with one extra byte in the body.",
        "message",
        &frame(1, 0x10, b"\x03bobx"),
        "Wire.TrailingBytes",
    )?;
    invalid(
        "message-refused-unknown-reason",
        "Refused with reason 0x05.",
        "message",
        &frame(1, 0x12, &[5]),
        "Wire.InvalidValue",
    )?;
    invalid(
        "message-refused-reason-zero",
        "Refused with reason 0x00.",
        "message",
        &frame(1, 0x12, &[0]),
        "Wire.InvalidValue",
    )?;
    invalid(
        "message-refused-empty",
        "Refused with an empty body.",
        "message",
        &frame(1, 0x12, &[]),
        "Wire.Truncated",
    )?;
    invalid(
        "message-send-truncated-id",
        "Send whose body holds 4 bytes: the u64 id is cut.",
        "message",
        &frame(1, 0x20, &[0; 4]),
        "Wire.Truncated",
    )?;
    let mut big_body = 1u64.to_be_bytes().to_vec();
    big_body.extend_from_slice(b"\x03bob\x40\x01");
    invalid(
        "message-send-body-16385",
        "Send with a body length prefix of 16385 and no body bytes: BadLength before Truncated.",
        "message",
        &frame(1, 0x20, &big_body),
        "Wire.BadLength",
    )?;
    let mut cut_body = 1u64.to_be_bytes().to_vec();
    cut_body.extend_from_slice(b"\x03bob\x00\x05hi");
    invalid(
        "message-send-body-truncated",
        "Send whose body length 5 runs past the end.",
        "message",
        &frame(1, 0x20, &cut_body),
        "Wire.Truncated",
    )?;
    let mut ack = 1u64.to_be_bytes().to_vec();
    ack.push(3);
    invalid(
        "message-ack-unknown-status",
        "Ack with status 0x03.",
        "message",
        &frame(1, 0x22, &ack),
        "Wire.InvalidValue",
    )?;
    ack.pop();
    ack.push(5);
    invalid(
        "message-reject-unknown-reason",
        "Reject with reason 0x05.",
        "message",
        &frame(1, 0x23, &ack),
        "Wire.InvalidValue",
    )?;
    invalid(
        "message-bundle-refused-unknown",
        "BundleRefused with reason 0x06.",
        "message",
        &frame(1, 0x32, &[6]),
        "Wire.InvalidValue",
    )?;
    invalid(
        "message-bundle-stored-short",
        "BundleStored with a one-byte body.",
        "message",
        &frame(1, 0x31, &[0]),
        "Wire.Truncated",
    )?;
    let upload = m(Message::UploadBundle { bundle: s.upload.clone() });
    let upload_body = &upload[6..];
    let mut over = upload_body[..164].to_vec();
    over.extend_from_slice(&1001u16.to_be_bytes());
    invalid(
        "message-upload-1001-prekeys",
        "UploadBundle with count 1001 > MAX_ENCODED_PREKEYS and no entries: refused when the count is read.",
        "message",
        &frame(1, 0x30, &over),
        "Wire.BadLength",
    )?;
    invalid(
        "message-upload-missing-prekey",
        "UploadBundle announcing 2 one-time prekeys and carrying 1.",
        "message",
        &frame(1, 0x30, &upload_body[..upload_body.len() - 36]),
        "Wire.Truncated",
    )?;
    invalid(
        "message-upload-cut-identity",
        "UploadBundle whose body is 63 bytes: IK is cut.",
        "message",
        &frame(1, 0x30, &upload_body[..63]),
        "Wire.Truncated",
    )?;
    let bundle = m(Message::Bundle { name: name("bob")?, bundle: s.fetched });
    let mut bad_flag = bundle[6..].to_vec();
    let flag_at = 4 + 64 + 100;
    bad_flag[flag_at] = 2;
    invalid(
        "message-bundle-has-opk-2",
        "Bundle with has_opk = 0x02.",
        "message",
        &frame(1, 0x34, &bad_flag),
        "Wire.InvalidValue",
    )?;
    let mut zero_flag = bundle[6..].to_vec();
    zero_flag[flag_at] = 0;
    invalid(
        "message-bundle-has-opk-0-with-key",
        "Bundle with has_opk = 0 followed by an opk anyway: the 36 bytes are trailing (there is no optional field).",
        "message",
        &frame(1, 0x34, &zero_flag),
        "Wire.TrailingBytes",
    )?;
    invalid(
        "message-bundle-missing-opk",
        "Bundle with has_opk = 1 and no one-time prekey after it.",
        "message",
        &frame(1, 0x34, &bundle[6..6 + flag_at + 1]),
        "Wire.Truncated",
    )?;
    let mut e2e = 1u64.to_be_bytes().to_vec();
    e2e.extend_from_slice(b"\x03bob\x00\x00");
    invalid(
        "message-e2e-send-empty-envelope",
        "E2eSend with envelope length 0.",
        "message",
        &frame(1, 0x36, &e2e),
        "Wire.BadLength",
    )?;
    let mut e2e_big = 1u64.to_be_bytes().to_vec();
    e2e_big.extend_from_slice(b"\x03bob");
    e2e_big
        .extend_from_slice(&u16::try_from(MAX_ENVELOPE_LEN + 1).unwrap_or(u16::MAX).to_be_bytes());
    invalid(
        "message-e2e-send-envelope-16641",
        "E2eSend with envelope length 16641 > MAX_ENVELOPE_LEN, no bytes after it.",
        "message",
        &frame(1, 0x36, &e2e_big),
        "Wire.BadLength",
    )?;
    // E2eDeliver's envelope is the same length-prefixed field as E2eSend's (SPEC.md §15.1).
    let mut deliver = 1u64.to_be_bytes().to_vec();
    deliver.extend_from_slice(b"\x05alice\x00\x00");
    invalid(
        "message-e2e-deliver-empty-envelope",
        "E2eDeliver with envelope length 0.",
        "message",
        &frame(1, 0x37, &deliver),
        "Wire.BadLength",
    )?;
    let mut deliver_big = 1u64.to_be_bytes().to_vec();
    deliver_big.extend_from_slice(b"\x05alice");
    deliver_big
        .extend_from_slice(&u16::try_from(MAX_ENVELOPE_LEN + 1).unwrap_or(u16::MAX).to_be_bytes());
    deliver_big.extend_from_slice(&vec![0x02; MAX_ENVELOPE_LEN + 1]);
    invalid(
        "message-e2e-deliver-envelope-16641",
        "E2eDeliver with envelope length 16641 > MAX_ENVELOPE_LEN, followed by all 16641 bytes: the \
         prefix is refused before the bytes it announces.",
        "message",
        &frame(1, 0x37, &deliver_big),
        "Wire.BadLength",
    )?;
    invalid(
        "message-register-name-cut-and-invalid",
        "Register whose name length 5 runs past the end of the body, and whose bytes present include \
         one outside the alphabet (\"B\"): a Name's bytes are taken before they are checked, so \
         Truncated wins over InvalidValue (SPEC.md §3.4 step 6).",
        "message",
        &frame(1, 0x10, b"\x05Bob"),
        "Wire.Truncated",
    )?;
    invalid(
        "message-unknown-version",
        "A Register frame with version 0x02.",
        "message",
        &[&[2u8][..], &register[1..]].concat(),
        "Wire.UnknownVersion",
    )?;

    invalid(
        "envelope-empty",
        "An empty envelope (E2eSend never carries one, but a recipient's parser must refuse it).",
        "envelope",
        b"",
        "Wire.Truncated",
    )?;
    invalid(
        "envelope-unknown-kind",
        "Kind 0x03.",
        "envelope",
        &[&[3u8][..], &s.ratchet_envelope[1..]].concat(),
        "Wire.InvalidValue",
    )?;
    invalid("envelope-kind-zero", "Kind 0x00.", "envelope", &[0u8; 60], "Wire.InvalidValue")?;
    invalid(
        "envelope-ratchet-short-ciphertext",
        "RatchetMessage with a 15-byte ciphertext.",
        "envelope",
        &s.ratchet_envelope[..56],
        "Wire.BadLength",
    )?;
    invalid(
        "envelope-ratchet-no-ciphertext",
        "RatchetMessage with a header and nothing after it.",
        "envelope",
        &s.ratchet_envelope[..41],
        "Wire.BadLength",
    )?;
    invalid(
        "envelope-ratchet-cut-header",
        "RatchetMessage whose header is cut at 39 bytes.",
        "envelope",
        &s.ratchet_envelope[..40],
        "Wire.Truncated",
    )?;
    let mut flag2 = s.prekey_envelope.clone();
    flag2[165] = 2;
    invalid(
        "envelope-prekey-has-opk-2",
        "PrekeyMessage with has_opk = 0x02.",
        "envelope",
        &flag2,
        "Wire.InvalidValue",
    )?;
    invalid(
        "envelope-prekey-cut",
        "PrekeyMessage cut inside IK_A.",
        "envelope",
        &s.prekey_envelope[..50],
        "Wire.Truncated",
    )?;
    invalid(
        "envelope-prekey-cut-in-id-sig",
        "PrekeyMessage cut inside id_sig (the identity binding signature after IK_A).",
        "envelope",
        &s.prekey_envelope[..100],
        "Wire.Truncated",
    )?;
    invalid(
        "envelope-over-maximum",
        "A RatchetMessage of 16641 bytes, one more than MAX_ENVELOPE_LEN: BadLength, checked before the \
         kind (SPEC.md §13; the length prefix that carries an envelope refuses it the same way).",
        "envelope",
        &[&s.ratchet_envelope[..57], &vec![0u8; MAX_ENVELOPE_LEN + 1 - 57][..]].concat(),
        "Wire.BadLength",
    )?;

    let mut file = file_head("wire", DESCRIPTION);
    file.insert("cases".to_owned(), Value::Array(cases));
    Ok(Value::Object(file))
}

/// Decodes every case of `wire.json` and, for valid ones, re-encodes the fields.
#[must_use]
pub fn verify(file: &Value) -> Vec<CaseResult> {
    verify_cases(file, |c| {
        let family = str_field(c, "family")?;
        let bytes = hex_field(c, "hex")?;
        let expect = match str_field(c, "result")? {
            "valid" => None,
            _ => Some(str_field(c, "error")?),
        };
        let got = case(str_field(c, "id")?, str_field(c, "comment")?, family, &bytes, None);
        let got = match (got, expect) {
            (Ok(v), _) => v,
            (Err(_), Some(class)) => {
                case(str_field(c, "id")?, str_field(c, "comment")?, family, &bytes, Some(class))?
            }
            (Err(e), None) => return Err(e),
        };
        compare_json(str_field(c, "id")?, c, &got)
    })
}
