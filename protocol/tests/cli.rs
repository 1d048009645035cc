//! The `e2e-ref` executable, run as a user runs it.
#![cfg(test)]

use std::process::Command;

fn e2e_ref(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_e2e-ref")).args(args).output().expect("run e2e-ref");
    (
        out.status.success(),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

fn json(args: &[&str]) -> serde_json::Value {
    let (ok, stdout, stderr) = e2e_ref(args);
    assert!(ok, "e2e-ref {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).expect("valid JSON")
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|s| s.as_str().expect("string").to_owned()).collect()
}

#[test]
fn hop_meet_at_noon_is_read_by_the_server_but_never_on_a_link() {
    let t = json(&["run", "hop", "--message", "meet at noon", "--json"]);
    assert_eq!(t["protocol"], "hop");
    assert_eq!(t["seed"], 1);
    assert_eq!(strings(&t["summary"]["delivered"]), ["meet at noon"]);
    assert_eq!(strings(&t["summary"]["server_read"]), ["meet at noon"]);
    let needle = hex::encode("meet at noon");
    let events = t["events"].as_array().expect("events");
    assert!(events.len() >= 7, "two handshakes, a send, a delivery and an ack");
    for e in events {
        for key in ["from", "to", "frame_hex"] {
            assert!(e[key].is_string(), "event without {key}: {e}");
        }
        assert!(!e["frame_hex"].as_str().unwrap().contains(&needle), "plaintext on a link: {e}");
    }
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let run = |seed: &str| e2e_ref(&["run", "hop", "--seed", seed, "--json"]).1;
    let (a, b, c) = (run("42"), run("42"), run("43"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let (_, text1, _) = e2e_ref(&["run", "hop", "--seed", "42"]);
    let (_, text2, _) = e2e_ref(&["run", "hop", "--seed", "42"]);
    assert_eq!(text1, text2);
}

#[test]
fn default_conversation_goes_both_ways_and_through_the_mailbox() {
    let t = json(&["run", "hop", "--json"]);
    let delivered = strings(&t["summary"]["delivered"]);
    assert_eq!(delivered, strings(&t["summary"]["server_read"]));
    assert!(delivered.len() >= 4);
    let events = t["events"].as_array().expect("events");
    let senders: Vec<&str> = events
        .iter()
        .filter(|e| e["to"] == "server" && e["frame_type"] == "Transport")
        .map(|e| e["from"].as_str().unwrap())
        .collect();
    assert!(senders.contains(&"alice") && senders.contains(&"bob"), "{senders:?}");
    assert!(events.iter().any(|e| e["read"].as_str().is_some_and(|r| r.contains("queued"))));
}

#[test]
fn bob_prefix_sends_from_bob() {
    let t = json(&["run", "hop", "--message", "bob: hello alice", "--json"]);
    assert_eq!(strings(&t["summary"]["delivered"]), ["hello alice"]);
    let send = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "server" && e["frame_type"] == "Transport")
        .expect("a send");
    assert_eq!(send["from"], "bob");
}

#[test]
fn deny_word_policy_rejects_and_nothing_is_delivered() {
    let t = json(&[
        "run",
        "hop",
        "--deny-word",
        "noon",
        "--message",
        "meet at noon",
        "--message",
        "ok",
        "--json",
    ]);
    assert_eq!(strings(&t["summary"]["delivered"]), ["ok"]);
    assert_eq!(strings(&t["summary"]["server_read"]), ["meet at noon", "ok"]);
    assert_eq!(strings(&t["summary"]["rejected"]), ["meet at noon: Policy"]);
}

#[test]
fn text_and_mermaid_formats() {
    let (ok, text, _) = e2e_ref(&["run", "hop", "--message", "meet at noon"]);
    assert!(ok);
    assert!(text.contains("server reads: Send #1 from alice to bob: \"meet at noon\""), "{text}");
    let (ok, mermaid, _) =
        e2e_ref(&["run", "hop", "--message", "meet at noon", "--format", "mermaid"]);
    assert!(ok);
    assert!(mermaid.starts_with("sequenceDiagram\n"));
    assert!(mermaid.contains("alice->>server: HandshakeInit"));
    assert!(
        mermaid
            .contains("Note right of server: reads Send no. 1 from alice to bob: \"meet at noon\""),
        "{mermaid}"
    );
}

#[test]
fn over_long_message_is_a_clean_error_not_a_panic() {
    let big = "x".repeat(e2e_protocol::wire::MAX_BODY_LEN + 1);
    let (ok, stdout, stderr) = e2e_ref(&["run", "hop", "--message", &big]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(stderr.contains("bad length 16385 for body"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}
