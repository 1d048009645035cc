//! `channel.json`: whole Noise IK handshakes and transport messages from fixed keys (SPEC.md §4),
//! valid and invalid.
//!
//! A case is a script of operations on one initiator and one responder. Writes give bytes; reads
//! are checked against their expectation. A read that fails leaves its side unchanged (SPEC.md
//! §4.4, §7.2), so a script may follow a bad message with the genuine one.
//!
//! | `op`                | input        | output                                        |
//! |---------------------|--------------|-----------------------------------------------|
//! | `initiator_write_1` | `payload`    | `message` (or `error`)                        |
//! | `responder_read_1`  | `message`    | `payload` (or `error`)                        |
//! | `responder_write_2` | `payload`    | `message`                                     |
//! | `initiator_read_2`  | `message`    | `payload`, `handshake_hash` (or `error`)      |
//! | `initiator_send`, `responder_send` | `plaintext` | `n`, `nonce`, `ciphertext`     |
//! | `initiator_receive`, `responder_receive` | `ciphertext` | `plaintext` (or `error`) |
//! | `initiator_set_nonce`, `responder_set_nonce` | `direction` (`send`/`receive`), `n` | — (Noise `SetNonce`, forward only) |

use serde_json::{Value, json};

use super::noise_trace::channel_nonce;
use super::util::{
    array_field, compare_json, error_class, fixed_key, hex, hex_array, hex_field, key_from_json,
    key_json, object, str_field,
};
use super::{CaseResult, VectorError, file_head, verify_cases};
use e2e_protocol::channel::{
    ChannelError, Initiator, InitiatorAwaitingResponse, MAX_NOISE_MESSAGE_LEN, PROLOGUE, Responder,
    ResponderReceived, Transport,
};
use e2e_protocol::error::Error;
use e2e_protocol::suite::{PrivateKey, PublicKey};
use e2e_protocol::wire::{AckStatus, Body, Codec, Message, MessageId, Name, RefusalReason};

const DESCRIPTION: &str = "Whole Noise_IK_25519_ChaChaPoly_SHA256 handshakes and transport messages \
(SPEC.md §4) from fixed keys, with this protocol's prologue and payloads. Each case is a script of \
operations on one initiator (client) and one responder (server); `op` names the operation, writes give \
the exact bytes, reads give the payload or the expected error class (SPEC.md §7.1). A failed read \
changes nothing, so a script may continue with the genuine message. Keys are {private, public} pairs; \
byte strings are hex.";

/// The fixed keys and prologues of a case.
struct Setup {
    prologue: Vec<u8>,
    responder_prologue: Vec<u8>,
    is: PrivateKey,
    ie: PrivateKey,
    rs: PrivateKey,
    re: PrivateKey,
    /// The responder static key as the initiator knows it (normally `rs.public_key()`).
    rs_known: PublicKey,
}

impl Setup {
    fn fixed(label: &str) -> Self {
        let rs = fixed_key(&format!("channel/{label}/responder-static"));
        Self {
            prologue: PROLOGUE.to_vec(),
            responder_prologue: PROLOGUE.to_vec(),
            is: fixed_key(&format!("channel/{label}/initiator-static")),
            ie: fixed_key(&format!("channel/{label}/initiator-ephemeral")),
            rs_known: rs.public_key(),
            rs,
            re: fixed_key(&format!("channel/{label}/responder-ephemeral")),
        }
    }

    fn from_json(case: &Value) -> Result<Self, VectorError> {
        Ok(Self {
            prologue: hex_field(case, "prologue")?,
            responder_prologue: hex_field(case, "responder_prologue")?,
            is: key_from_json(&case["initiator_static"])?,
            ie: key_from_json(&case["initiator_ephemeral"])?,
            rs: key_from_json(&case["responder_static"])?,
            re: key_from_json(&case["responder_ephemeral"])?,
            rs_known: PublicKey::from_bytes(hex_array(
                case,
                "responder_static_known_to_initiator",
            )?),
        })
    }
}

/// The two sides while a script runs.
struct Sides {
    initiator: Option<Initiator>,
    awaiting: Option<InitiatorAwaitingResponse>,
    responder: Responder,
    received: Option<ResponderReceived>,
    initiator_transport: Option<Transport>,
    responder_transport: Option<Transport>,
    ie: PrivateKey,
    re: PrivateKey,
}

fn missing_state(op: &str) -> VectorError {
    VectorError::Malformed { field: format!("op {op} in a state that cannot do it") }
}

fn outcome_into(step: &mut serde_json::Map<String, Value>, result: Result<(&str, Value), Error>) {
    match result {
        Ok((key, value)) => {
            step.insert("result".to_owned(), "valid".into());
            step.insert(key.to_owned(), value);
        }
        Err(e) => {
            step.insert("result".to_owned(), "invalid".into());
            step.insert("error".to_owned(), error_class(&e).into());
        }
    }
}

/// Runs one step, returning it with its outputs filled in.
fn run_step(sides: &mut Sides, input: &Value) -> Result<Value, VectorError> {
    let op = str_field(input, "op")?;
    let mut step = serde_json::Map::new();
    step.insert("op".to_owned(), op.into());
    match op {
        "initiator_write_1" => {
            let payload = hex_field(input, "payload")?;
            step.insert("payload".to_owned(), hex(&payload).into());
            let initiator = sides.initiator.take().ok_or_else(|| missing_state(op))?;
            let written = initiator.write_message_1(sides.ie.clone(), &payload);
            outcome_into(
                &mut step,
                written.map_err(Error::from).map(|(awaiting, message)| {
                    sides.awaiting = Some(awaiting);
                    ("message", hex(message).into())
                }),
            );
        }
        "responder_read_1" => {
            let message = hex_field(input, "message")?;
            step.insert("message".to_owned(), hex(&message).into());
            let read = sides.responder.read_message_1(&message);
            outcome_into(
                &mut step,
                read.map_err(Error::from).map(|received| {
                    let payload = hex(received.payload());
                    sides.received = Some(received);
                    ("payload", payload.into())
                }),
            );
        }
        "responder_write_2" => {
            let payload = hex_field(input, "payload")?;
            step.insert("payload".to_owned(), hex(&payload).into());
            let received = sides.received.take().ok_or_else(|| missing_state(op))?;
            let written = received.write_message_2(sides.re.clone(), &payload);
            outcome_into(
                &mut step,
                written.map_err(Error::from).map(|(transport, message)| {
                    sides.responder_transport = Some(transport);
                    ("message", hex(message).into())
                }),
            );
        }
        "initiator_read_2" => {
            let message = hex_field(input, "message")?;
            step.insert("message".to_owned(), hex(&message).into());
            let awaiting = sides.awaiting.as_ref().ok_or_else(|| missing_state(op))?;
            let read = awaiting.read_message_2(&message);
            match read {
                Ok((transport, payload)) => {
                    step.insert("result".to_owned(), "valid".into());
                    step.insert("payload".to_owned(), hex(payload).into());
                    step.insert(
                        "handshake_hash".to_owned(),
                        hex(transport.handshake_hash()).into(),
                    );
                    sides.initiator_transport = Some(transport);
                }
                Err(e) => outcome_into(&mut step, Err(e.into())),
            }
        }
        "initiator_send" | "responder_send" => {
            let plaintext = hex_field(input, "plaintext")?;
            let n = input["n"].as_u64().ok_or_else(|| VectorError::malformed("n"))?;
            step.insert("plaintext".to_owned(), hex(&plaintext).into());
            step.insert("n".to_owned(), n.into());
            step.insert("nonce".to_owned(), hex(channel_nonce(n)).into());
            let transport = if op == "initiator_send" {
                sides.initiator_transport.as_mut()
            } else {
                sides.responder_transport.as_mut()
            }
            .ok_or_else(|| missing_state(op))?;
            let written = transport.write(&plaintext).map_err(Error::from);
            outcome_into(&mut step, written.map(|ct| ("ciphertext", hex(ct).into())));
        }
        "initiator_receive" | "responder_receive" => {
            let ciphertext = hex_field(input, "ciphertext")?;
            step.insert("ciphertext".to_owned(), hex(&ciphertext).into());
            let transport = if op == "initiator_receive" {
                sides.initiator_transport.as_mut()
            } else {
                sides.responder_transport.as_mut()
            }
            .ok_or_else(|| missing_state(op))?;
            let read = transport.read(&ciphertext).map_err(Error::from);
            outcome_into(&mut step, read.map(|pt| ("plaintext", hex(pt).into())));
        }
        "initiator_set_nonce" | "responder_set_nonce" => {
            // Noise SetNonce (SPEC.md §17.2), forward only: how a case starts from a stated counter.
            let direction = str_field(input, "direction")?;
            let n = input["n"].as_u64().ok_or_else(|| VectorError::malformed("n"))?;
            step.insert("direction".to_owned(), direction.into());
            step.insert("n".to_owned(), n.into());
            let transport = if op == "initiator_set_nonce" {
                sides.initiator_transport.as_mut()
            } else {
                sides.responder_transport.as_mut()
            }
            .ok_or_else(|| missing_state(op))?;
            let moved = match direction {
                "send" => transport.advance_send_nonce(n),
                "receive" => transport.advance_receive_nonce(n),
                _ => return Err(VectorError::malformed("direction")),
            };
            if !moved {
                return Err(VectorError::malformed("n (below the current counter)"));
            }
            step.insert("result".to_owned(), "valid".into());
        }
        _ => return Err(VectorError::malformed("op")),
    }
    if let Some(comment) = input.get("comment") {
        step.insert("comment".to_owned(), comment.clone());
    }
    Ok(Value::Object(step))
}

/// Runs a case's script and returns the whole case with every output derived.
fn run_case(id: &str, comment: &str, setup: &Setup, steps: &[Value]) -> Result<Value, VectorError> {
    let mut sides = Sides {
        initiator: Some(Initiator::new(&setup.prologue, setup.is.clone(), setup.rs_known)),
        awaiting: None,
        responder: Responder::new(&setup.responder_prologue, setup.rs.clone()),
        received: None,
        initiator_transport: None,
        responder_transport: None,
        ie: setup.ie.clone(),
        re: setup.re.clone(),
    };
    let mut done = Vec::new();
    for input in steps {
        done.push(run_step(&mut sides, input)?);
    }
    let first_error = done.iter().find_map(|s| s.get("error").cloned());
    let mut case = vec![
        ("id", id.into()),
        ("comment", comment.into()),
        ("result", if first_error.is_some() { "invalid" } else { "valid" }.into()),
    ];
    if let Some(error) = first_error {
        case.push(("error", error));
    }
    case.extend([
        ("prologue", hex(&setup.prologue).into()),
        ("responder_prologue", hex(&setup.responder_prologue).into()),
        ("initiator_static", key_json(&setup.is)),
        ("initiator_ephemeral", key_json(&setup.ie)),
        ("responder_static", key_json(&setup.rs)),
        ("responder_ephemeral", key_json(&setup.re)),
        ("responder_static_known_to_initiator", hex(setup.rs_known.as_bytes()).into()),
        ("steps", Value::Array(done)),
    ]);
    Ok(object(case))
}

fn op(op: &str, key: &str, bytes: &[u8]) -> Value {
    json!({ "op": op, key: hex(bytes) })
}

fn send(op_name: &str, n: u64, plaintext: &[u8]) -> Value {
    json!({ "op": op_name, "n": n, "plaintext": hex(plaintext) })
}

fn with_comment(mut step: Value, comment: &str) -> Value {
    step["comment"] = comment.into();
    step
}

/// The `index`-th step's field `key` of a run case, as bytes.
fn output(case: &Value, index: usize, key: &str) -> Result<Vec<u8>, VectorError> {
    hex_field(&array_field(case, "steps")?[index], key)
}

fn flip(mut bytes: Vec<u8>, index: usize, mask: u8) -> Vec<u8> {
    if let Some(b) = bytes.get_mut(index) {
        *b ^= mask;
    }
    bytes
}

fn name(s: &str) -> Result<Name, VectorError> {
    Ok(Name::new(s)?)
}

/// Builds `channel.json`.
///
/// # Errors
/// A protocol error where the generator expects success.
pub fn generate() -> Result<Value, VectorError> {
    let register = Message::Register { name: name("alice")? }.encode();
    let welcome = Message::Welcome { name: name("alice")? }.encode();
    let refused = Message::Refused { reason: RefusalReason::NameTaken }.encode();
    let ready = Message::Ready.encode();
    let hi = Message::Send { id: MessageId(1), to: name("bob")?, body: Body::new(b"hi".to_vec())? }
        .encode();
    let ack = Message::Ack { id: MessageId(1), status: AckStatus::Relayed }.encode();
    let deliver =
        Message::Deliver { id: MessageId(1), from: name("bob")?, body: Body::new(b"yo".to_vec())? }
            .encode();

    let setup = Setup::fixed("main");
    let handshake = |payload2: &[u8]| {
        vec![
            op("initiator_write_1", "payload", &register),
            json!({"op": "responder_read_1", "message": ""}),
            op("responder_write_2", "payload", payload2),
            json!({"op": "initiator_read_2", "message": ""}),
        ]
    };
    // First pass: learn the genuine messages, then fill them into the reads.
    let fill = |steps: &mut Vec<Value>, setup: &Setup| -> Result<Value, VectorError> {
        let first = run_case("", "", setup, &steps[..1])?;
        steps[1]["message"] = hex(output(&first, 0, "message")?).into();
        let second = run_case("", "", setup, &steps[..3])?;
        steps[3]["message"] = hex(output(&second, 2, "message")?).into();
        run_case("", "", setup, steps)
    };

    let mut main_steps = handshake(&welcome);
    main_steps.extend([
        send("initiator_send", 0, &ready),
        send("initiator_send", 1, &hi),
        send("responder_send", 0, &ack),
        send("responder_send", 1, &deliver),
    ]);
    let main = fill(&mut main_steps, &setup)?;
    let ct = |i: usize| output(&main, i, "ciphertext");
    main_steps.extend([
        op("responder_receive", "ciphertext", &ct(4)?),
        op("responder_receive", "ciphertext", &ct(5)?),
        op("initiator_receive", "ciphertext", &ct(6)?),
        op("initiator_receive", "ciphertext", &ct(7)?),
    ]);
    let m1 = output(&main, 0, "message")?;
    let m2 = output(&main, 2, "message")?;
    let handshake_done = &main_steps[..4];

    let mut cases = vec![run_case(
        "ik-register-welcome",
        "Alice registers; the server welcomes her; then Ready and Send from the client (counters 0, 1) and \
         Ack and Deliver from the server (counters 0, 1), each opened by the other side.",
        &setup,
        &main_steps,
    )?];

    let refused_setup = Setup::fixed("refused");
    let mut steps = handshake(&refused);
    cases.push(run_case(
        "ik-refused",
        "A handshake whose message 2 payload is Refused { NameTaken }: the handshake itself completes.",
        &refused_setup,
        &{
            fill(&mut steps, &refused_setup)?;
            steps
        },
    )?);

    let empty_setup = Setup::fixed("empty");
    let mut steps = vec![
        op("initiator_write_1", "payload", b""),
        json!({"op": "responder_read_1", "message": ""}),
        op("responder_write_2", "payload", b""),
        json!({"op": "initiator_read_2", "message": ""}),
    ];
    fill(&mut steps, &empty_setup)?;
    cases.push(run_case(
        "ik-empty-payloads",
        "Empty payloads: message 1 is exactly 96 bytes and message 2 exactly 48, the minimums of SPEC.md §3.2.",
        &empty_setup,
        &steps,
    )?);

    // Bad message 1, then the genuine one, which still opens.
    let genuine_rest = || main_steps[1..4].to_vec();
    let bad_m1 = |id: &str, comment: &str, bad: Vec<u8>, step_comment: &str| {
        let mut steps = vec![main_steps[0].clone()];
        steps.push(with_comment(op("responder_read_1", "message", &bad), step_comment));
        steps.extend(genuine_rest());
        run_case(id, comment, &setup, &steps)
    };
    cases.push(bad_m1(
        "message1-tampered-ephemeral",
        "Bit 0 of the ephemeral key in message 1 flipped: another es, so the encrypted static key does not open.",
        flip(m1.clone(), 0, 0x01),
        "tampered: byte 0 ^ 0x01",
    )?);
    cases.push(bad_m1(
        "message1-tampered-ephemeral-high-bit",
        "The masked top bit of the ephemeral key flipped: the same DH (X25519 ignores the bit) but a different \
         h, since h hashes the 32 bytes as received; the encrypted static key does not open.",
        flip(m1.clone(), 31, 0x80),
        "tampered: byte 31 ^ 0x80",
    )?);
    cases.push(bad_m1(
        "message1-tampered-static",
        "A byte of the encrypted static key in message 1 flipped.",
        flip(m1.clone(), 40, 0x01),
        "tampered: byte 40 ^ 0x01",
    )?);
    cases.push(bad_m1(
        "message1-tampered-payload",
        "The last byte of message 1 (the payload's tag) flipped.",
        flip(m1.clone(), m1.len() - 1, 0x01),
        "tampered: last byte ^ 0x01",
    )?);
    cases.push(bad_m1(
        "message1-truncated",
        "Message 1 cut to 95 bytes, below the 96-byte fixed part.",
        m1[..95].to_vec(),
        "truncated to 95 bytes",
    )?);
    cases.push(bad_m1(
        "message1-truncated-payload",
        "Message 1 missing its last byte: long enough, but the payload's tag does not verify.",
        m1[..m1.len() - 1].to_vec(),
        "last byte removed",
    )?);
    let mut zero_e = m1.clone();
    zero_e[..32].fill(0);
    cases.push(bad_m1(
        "message1-low-order-ephemeral",
        "Message 1 whose ephemeral key is u = 0, a point of small order: DH(s_r, e) is all zero (SPEC.md §2.1).",
        zero_e,
        "ephemeral replaced by 32 zero bytes",
    )?);

    cases.push(bad_m1(
        "message1-too-long",
        "Message 1 of 65536 bytes (the genuine one padded with zeros), one more than a Noise message may \
         have: MessageTooLong, checked before any DH (SPEC.md §4.3).",
        [&m1[..], &vec![0u8; MAX_NOISE_MESSAGE_LEN + 1 - m1.len()][..]].concat(),
        "padded to 65536 bytes",
    )?);
    // `ss` with a low-order initiator static key: only a hand-built message 1 can carry one.
    let low_static = super::noise_trace::message1_with_static(
        &setup.prologue,
        &setup.ie,
        &setup.rs.public_key(),
        &[0u8; 32],
    )?;
    cases.push(bad_m1(
        "message1-low-order-static",
        "Message 1 whose encrypted static key is u = 0, a point of small order, correctly encrypted under \
         the es of a genuine ephemeral: ss = DH(s_r, s_i) is all zero, so the responder refuses it with \
         NonContributory before it reads the payload (SPEC.md §2.1, §4.2).",
        low_static,
        "static key replaced by 32 zero bytes, re-encrypted",
    )?);

    // Bad message 2, then the genuine one.
    let bad_m2 = |id: &str, comment: &str, bad: Vec<u8>, step_comment: &str| {
        let mut steps = main_steps[..3].to_vec();
        steps.push(with_comment(op("initiator_read_2", "message", &bad), step_comment));
        steps.push(main_steps[3].clone());
        run_case(id, comment, &setup, &steps)
    };
    cases.push(bad_m2(
        "message2-tampered-payload",
        "A byte of message 2's payload ciphertext flipped.",
        flip(m2.clone(), 40, 0x01),
        "tampered: byte 40 ^ 0x01",
    )?);
    cases.push(bad_m2(
        "message2-tampered-ephemeral",
        "A byte of message 2's ephemeral key flipped.",
        flip(m2.clone(), 5, 0x20),
        "tampered: byte 5 ^ 0x20",
    )?);
    cases.push(bad_m2(
        "message2-truncated",
        "Message 2 cut to 47 bytes, below the 48-byte fixed part.",
        m2[..47].to_vec(),
        "truncated to 47 bytes",
    )?);
    let mut one_e = m2.clone();
    one_e[..32].fill(0);
    one_e[0] = 1;
    cases.push(bad_m2(
        "message2-low-order-ephemeral",
        "Message 2 whose ephemeral key is u = 1, a point of small order: DH(e_i, e_r) is all zero.",
        one_e,
        "ephemeral replaced by u = 1",
    )?);

    // Transport: replayed, reordered, tampered, truncated; each followed by the genuine message.
    let transport = |id: &str, comment: &str, tail: Vec<Value>| {
        let mut steps = handshake_done.to_vec();
        steps.extend(main_steps[4..8].iter().cloned());
        steps.extend(tail);
        run_case(id, comment, &setup, &steps)
    };
    let recv = |bytes: &[u8], comment: &str| {
        with_comment(op("responder_receive", "ciphertext", bytes), comment)
    };
    cases.push(transport(
        "transport-replayed",
        "The client's transport message 0 delivered twice: the second time the responder expects counter 1, \
         so it does not open; message 1 still does.",
        vec![
            recv(&ct(4)?, "genuine, counter 0"),
            recv(&ct(4)?, "replayed"),
            recv(&ct(5)?, "genuine, counter 1"),
        ],
    )?);
    cases.push(transport(
        "transport-reordered",
        "The client's transport message 1 delivered before message 0: it does not open under counter 0.",
        vec![
            recv(&ct(5)?, "counter 1 first"),
            recv(&ct(4)?, "genuine, counter 0"),
            recv(&ct(5)?, "genuine, counter 1"),
        ],
    )?);
    cases.push(transport(
        "transport-tampered",
        "A byte of a transport message flipped.",
        vec![recv(&flip(ct(4)?, 0, 0x01), "tampered: byte 0 ^ 0x01"), recv(&ct(4)?, "genuine")],
    )?);
    cases.push(transport(
        "transport-truncated",
        "A transport message cut to 15 bytes, shorter than a tag.",
        vec![recv(&ct(4)?[..15], "truncated to 15 bytes"), recv(&ct(4)?, "genuine")],
    )?);
    cases.push(transport(
        "transport-too-long",
        "A transport message of 65536 bytes, one more than a Noise message may have: MessageTooLong, \
         before the AEAD; the genuine message then opens at the same counter.",
        vec![
            recv(&[&ct(4)?[..], &vec![0u8; MAX_NOISE_MESSAGE_LEN + 1 - ct(4)?.len()][..]].concat(), "padded to 65536 bytes"),
            recv(&ct(4)?, "genuine"),
        ],
    )?);
    cases.push(transport(
        "transport-reflected",
        "The server's own transport message sent back to it: the directions use different keys.",
        vec![recv(&ct(6)?, "the server's message 0, reflected"), recv(&ct(4)?, "genuine")],
    )?);

    // A handshake message replayed to the side that already read it (SPEC.md §4.3): that side is in
    // transport mode, so the bytes are read as the next transport message and do not open.
    cases.push(transport(
        "handshake-message2-replayed",
        "Message 2 delivered to the initiator a second time, after it read it: the initiator has a \
         transport channel now, which reads the bytes as its next transport message — they do not open \
         (Crypto(AeadOpen)) and its receive counter does not move; the server's transport message 0 then opens.",
        vec![
            with_comment(op("initiator_receive", "ciphertext", &m2), "message 2 again"),
            with_comment(op("initiator_receive", "ciphertext", &ct(6)?), "genuine, counter 0"),
        ],
    )?);
    cases.push(transport(
        "handshake-message1-replayed",
        "Message 1 delivered to the responder a second time on the channel it made: read as the next \
         transport message, it does not open and the counter does not move; the client's message 0 then opens.",
        vec![recv(&m1, "message 1 again"), recv(&ct(4)?, "genuine, counter 0")],
    )?);

    // The reserved counter 2^64 − 1 (SPEC.md §4.4), reached by SetNonce rather than 2^64 messages.
    let set_nonce = |side: &str, direction: &str, n: u64, comment: &str| {
        with_comment(json!({"op": side, "direction": direction, "n": n}), comment)
    };
    let last = u64::MAX - 1;
    let mut exhausted = handshake_done.to_vec();
    exhausted.extend([
        set_nonce(
            "initiator_set_nonce",
            "send",
            last,
            "the client's sending counter skipped to 2^64 - 2",
        ),
        set_nonce(
            "responder_set_nonce",
            "receive",
            last,
            "the server's receiving counter likewise",
        ),
        send("initiator_send", last, &ready),
    ]);
    let at_last = run_case("", "", &setup, &exhausted)?;
    let last_ct = output(&at_last, exhausted.len() - 1, "ciphertext")?;
    exhausted.extend([
        with_comment(
            op("responder_receive", "ciphertext", &last_ct),
            "the last usable counter, 2^64 - 2",
        ),
        with_comment(
            send("initiator_send", u64::MAX, &hi),
            "counter 2^64 - 1 is reserved: NonceExhausted",
        ),
        with_comment(
            op("responder_receive", "ciphertext", &last_ct),
            "any message at receive counter 2^64 - 1: NonceExhausted, before the AEAD",
        ),
        with_comment(send("responder_send", 0, &ack), "the other direction is independent"),
    ]);
    let reverse = run_case("", "", &setup, &exhausted)?;
    let reverse_ct = output(&reverse, exhausted.len() - 1, "ciphertext")?;
    exhausted.push(op("initiator_receive", "ciphertext", &reverse_ct));
    cases.push(run_case(
        "transport-nonce-exhausted",
        "Both counters of the client-to-server direction are moved to 2^64 - 2 with Noise's SetNonce: one \
         message is sent and read there; then the client cannot send (NonceExhausted, nothing changes) and \
         the server cannot receive (NonceExhausted, checked before the AEAD, nothing changes); the other \
         direction still works.",
        &setup,
        &exhausted,
    )?);

    let mut wrong = Setup::fixed("main");
    wrong.responder_prologue = b"e2e-ref/channel/v2".to_vec();
    cases.push(run_case(
        "wrong-prologue",
        "The responder uses another prologue (e2e-ref/channel/v2): h differs from the start, so message 1's \
         encrypted static key does not open.",
        &wrong,
        &[main_steps[0].clone(), op("responder_read_1", "message", &m1)],
    )?);

    let mut low = Setup::fixed("low-order-server");
    low.rs_known = PublicKey::from_bytes([0u8; 32]);
    cases.push(run_case(
        "initiator-knows-low-order-responder-static",
        "The initiator is given u = 0 as the server's static key: es is all zero, so it refuses to write \
         message 1.",
        &low,
        &[main_steps[0].clone()],
    )?);

    let mut file = file_head("channel", DESCRIPTION);
    file.insert("cases".to_owned(), Value::Array(cases));
    Ok(Value::Object(file))
}

/// Re-runs every case of `channel.json` from its keys and script.
#[must_use]
pub fn verify(file: &Value) -> Vec<CaseResult> {
    verify_cases(file, |case| {
        let setup = Setup::from_json(case)?;
        let got = run_case(
            str_field(case, "id")?,
            str_field(case, "comment")?,
            &setup,
            array_field(case, "steps")?,
        )?;
        compare_json(str_field(case, "id")?, case, &got)
    })
}

/// The channel's real messages and transports for a full handshake; used to cross-check the key
/// schedule model.
pub(crate) struct RealHandshake {
    pub(crate) message1: Vec<u8>,
    pub(crate) message2: Vec<u8>,
    pub(crate) initiator: Transport,
    pub(crate) responder: Transport,
}

/// Runs the channel's own handshake.
pub(crate) fn real_handshake(
    prologue: &[u8],
    keys: [&PrivateKey; 4],
    payload1: &[u8],
    payload2: &[u8],
) -> Result<RealHandshake, ChannelError> {
    let [is, ie, rs, re] = keys;
    let (awaiting, message1) = Initiator::new(prologue, is.clone(), rs.public_key())
        .write_message_1(ie.clone(), payload1)?;
    let (responder, message2) = Responder::new(prologue, rs.clone())
        .read_message_1(&message1)?
        .write_message_2(re.clone(), payload2)?;
    let (initiator, _) = awaiting.read_message_2(&message2)?;
    Ok(RealHandshake { message1, message2, initiator, responder })
}
