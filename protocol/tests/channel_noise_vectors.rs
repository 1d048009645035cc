//! `Noise_IK_25519_ChaChaPoly_SHA256` against the published Noise test vectors (cacophony and snow,
//! collected in `../shared/vectors/noise/noise-25519-chachapoly-sha256.json`): every handshake and
//! transport ciphertext byte for byte, every payload, and the handshake hash where the vector has one.

mod common;

use common::{unhex, unhex_n};
use e2e_protocol::channel::{Initiator, PROTOCOL_NAME, Responder, Transport};
use e2e_protocol::suite::{PrivateKey, PublicKey};
use serde_json::Value;

#[test]
fn every_ik_vector() {
    let Some(doc) = common::shared_vectors("noise/noise-25519-chachapoly-sha256.json") else {
        return;
    };
    let vectors = doc["vectors"].as_array().expect("a `vectors` array");
    let ik: Vec<&Value> =
        vectors.iter().filter(|v| v["protocol_name"].as_str() == Some(PROTOCOL_NAME)).collect();
    assert!(ik.len() >= 2, "expected at least 2 IK vectors, found {}", ik.len());
    let mut hashes_checked = 0;
    for (i, v) in ik.iter().enumerate() {
        let source = v["source"].as_str().unwrap_or("?");
        match run(v) {
            Ok(hash_checked) => hashes_checked += usize::from(hash_checked),
            Err(e) => panic!("IK vector {i} ({source}): {e}"),
        }
    }
    // The cacophony vector carries a handshake hash (snow's does not): make sure it was compared.
    assert!(hashes_checked >= 1, "no IK vector had a handshake_hash");
}

/// Runs one vector; returns whether it had a `handshake_hash` to compare.
fn run(v: &Value) -> Result<bool, String> {
    for psks in ["init_psks", "resp_psks"] {
        if let Some(list) = v.get(psks) {
            assert_eq!(list.as_array().map(Vec::len), Some(0), "{psks} must be empty for IK");
        }
    }
    let messages = v["messages"].as_array().ok_or("no `messages` array")?;
    assert!(messages.len() >= 2, "a vector has at least the two handshake messages");
    let payload = |i: usize| unhex(&messages[i]["payload"]);
    let ciphertext = |i: usize| unhex(&messages[i]["ciphertext"]);

    let init_static = PrivateKey::from_bytes(unhex_n(&v["init_static"]));
    let resp_static = PrivateKey::from_bytes(unhex_n(&v["resp_static"]));
    let init_remote_static = PublicKey::from_bytes(unhex_n(&v["init_remote_static"]));
    assert_eq!(init_remote_static, resp_static.public_key());

    let initiator =
        Initiator::new(&unhex(&v["init_prologue"]), init_static.clone(), init_remote_static);
    let responder = Responder::new(&unhex(&v["resp_prologue"]), resp_static);

    // -> e, es, s, ss
    let (awaiting, m1) = initiator
        .write_message_1(PrivateKey::from_bytes(unhex_n(&v["init_ephemeral"])), &payload(0))
        .map_err(|e| format!("write message 1: {e}"))?;
    check_eq("message 1 ciphertext", &m1, &ciphertext(0))?;
    let received = responder.read_message_1(&m1).map_err(|e| format!("read message 1: {e}"))?;
    check_eq("message 1 payload", received.payload(), &payload(0))?;
    assert_eq!(received.remote_static(), init_static.public_key());

    // <- e, ee, se
    let (mut resp, m2) = received
        .write_message_2(PrivateKey::from_bytes(unhex_n(&v["resp_ephemeral"])), &payload(1))
        .map_err(|e| format!("write message 2: {e}"))?;
    check_eq("message 2 ciphertext", &m2, &ciphertext(1))?;
    let (mut init, p2) =
        awaiting.read_message_2(&m2).map_err(|e| format!("read message 2: {e}"))?;
    check_eq("message 2 payload", &p2, &payload(1))?;

    check_eq("handshake hash", init.handshake_hash(), resp.handshake_hash())?;
    let hash = v.get("handshake_hash");
    if let Some(h) = hash {
        check_eq("handshake hash vs vector", init.handshake_hash(), &unhex(h))?;
    }

    // Transport messages keep alternating: initiator → responder at even indices.
    for i in 2..messages.len() {
        let (sender, receiver): (&mut Transport, &mut Transport) =
            if i % 2 == 0 { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
        let ct = sender.write(&payload(i)).map_err(|e| format!("write message {i}: {e}"))?;
        check_eq(&format!("message {i} ciphertext"), &ct, &ciphertext(i))?;
        let pt = receiver.read(&ct).map_err(|e| format!("read message {i}: {e}"))?;
        check_eq(&format!("message {i} payload"), &pt, &payload(i))?;
    }
    Ok(hash.is_some())
}

fn check_eq(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {}, want {}", hex::encode(got), hex::encode(want)))
    }
}
