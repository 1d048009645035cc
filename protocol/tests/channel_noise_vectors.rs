//! `Noise_IK_25519_ChaChaPoly_SHA256` against the published Noise test vectors: the cacophony and
//! snow vector sets, read from the files the `snow` crate (a dev-dependency) ships in its package,
//! `tests/vectors/cacophony.txt` and `tests/vectors/snow.txt`. Every handshake and transport
//! ciphertext is compared byte for byte, every payload, and the handshake hash where the vector has
//! one.
//!
//! The files are found through Cargo: `cargo metadata` for this workspace gives the package that
//! e2e-protocol's dev-dependency `snow` resolved to, and its `manifest_path`. A missing file, or one
//! without an IK vector, fails the test: nothing is skipped.

// Integration tests are always built with `cfg(test)`; saying so at the crate root lets clippy's
// `allow-*-in-tests` (clippy.toml) cover the helpers here and in `common`, not only `#[test]` bodies.
#![cfg(test)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{unhex, unhex_n};
use e2e_protocol::channel::{Initiator, PROTOCOL_NAME, Responder, Transport};
use e2e_protocol::suite::{PrivateKey, PublicKey};
use serde_json::Value;

/// The vector files of the `snow` package, with at least this many IK vectors in each.
const VECTOR_FILES: [(&str, usize); 2] = [("cacophony.txt", 1), ("snow.txt", 1)];

/// Fewer IK vectors than this in all, and the test fails.
const MIN_IK_VECTORS: usize = 2;

#[test]
fn every_ik_vector() {
    let dir = snow_package_dir().join("tests").join("vectors");
    let (mut ik_total, mut messages_total, mut hashes_checked) = (0usize, 0usize, 0usize);
    let mut per_file = Vec::new();
    for (file, min_ik) in VECTOR_FILES {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the snow package's vector file {}: {e}", path.display()));
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        let vectors = doc["vectors"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no `vectors` array", path.display()));
        let ik: Vec<&Value> =
            vectors.iter().filter(|v| v["protocol_name"].as_str() == Some(PROTOCOL_NAME)).collect();
        assert!(
            ik.len() >= min_ik,
            "{}: expected at least {min_ik} {PROTOCOL_NAME} vector(s), found {}",
            path.display(),
            ik.len()
        );
        for (i, v) in ik.iter().enumerate() {
            match run(v) {
                Ok(hash_checked) => hashes_checked += usize::from(hash_checked),
                Err(e) => panic!("{file}: IK vector {i}: {e}"),
            }
            messages_total += v["messages"].as_array().map_or(0, Vec::len);
        }
        per_file.push(format!("{file}: {} of {} vectors", ik.len(), vectors.len()));
        ik_total += ik.len();
    }

    eprintln!(
        "noise {PROTOCOL_NAME}: {ik_total} vectors ({}), {messages_total} messages, \
         {hashes_checked} handshake hash(es) compared; from {}",
        per_file.join(", "),
        dir.display()
    );
    assert!(ik_total >= MIN_IK_VECTORS, "expected at least {MIN_IK_VECTORS} IK vectors");
    // The cacophony vector carries a handshake hash (snow's does not): make sure it was compared.
    assert!(hashes_checked >= 1, "no IK vector had a handshake_hash");
}

/// The directory of the `snow` package that e2e-protocol's dev-dependency resolved to, from
/// `cargo metadata` (filtered to the host platform, so that Cargo needs no package a build for this
/// host did not already fetch).
fn snow_package_dir() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let host = host_triple(&cargo);
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--filter-platform", &host])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| panic!("running {} metadata: {e}", Path::new(&cargo).display()));
    assert!(
        output.status.success(),
        "cargo metadata failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata printed valid JSON");

    let members = metadata["workspace_members"].as_array().expect("workspace_members");
    let packages = metadata["packages"].as_array().expect("packages");
    let package = |id: &Value| {
        packages.iter().find(|p| p["id"] == *id).unwrap_or_else(|| panic!("no package {id}"))
    };
    let ours = members
        .iter()
        .find(|id| package(id)["name"] == env!("CARGO_PKG_NAME"))
        .expect("e2e-protocol is a workspace member");
    let node = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .find(|n| n["id"] == *ours)
        .expect("e2e-protocol has a resolve node");
    let snow = node["deps"]
        .as_array()
        .expect("deps")
        .iter()
        .find(|d| {
            d["name"] == "snow"
                && d["dep_kinds"].as_array().is_some_and(|k| k.iter().any(|k| k["kind"] == "dev"))
        })
        .expect("e2e-protocol has the dev-dependency snow");
    let manifest_path = package(&snow["pkg"])["manifest_path"].as_str().expect("manifest_path");
    Path::new(manifest_path).parent().expect("a manifest has a directory").to_path_buf()
}

/// The host's target triple, from `cargo -vV`.
fn host_triple(cargo: &std::ffi::OsStr) -> String {
    let output = Command::new(cargo).arg("-vV").output().expect("cargo -vV runs");
    assert!(output.status.success(), "cargo -vV failed: {}", output.status);
    let text = String::from_utf8(output.stdout).expect("cargo -vV prints UTF-8");
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("cargo -vV printed no `host:` line:\n{text}"))
        .trim()
        .to_owned()
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
