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
        .find(|e| e["read"].as_str().is_some_and(|r| r.starts_with("Send ")))
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

fn assert_not_on_any_link(t: &serde_json::Value, text: &str) {
    let needle = hex::encode(text);
    for e in t["events"].as_array().expect("events") {
        assert!(!e["frame_hex"].as_str().unwrap().contains(&needle), "{text:?} on a link: {e}");
    }
}

#[test]
fn e2e_meet_at_noon_is_delivered_and_the_server_reads_nothing() {
    let t = json(&["run", "e2e", "--message", "meet at noon", "--json"]);
    assert_eq!(t["protocol"], "e2e");
    assert_eq!(strings(&t["summary"]["delivered"]), ["meet at noon"]);
    assert!(strings(&t["summary"]["server_read"]).is_empty());
    assert_not_on_any_link(&t, "meet at noon");
    let numbers = &t["summary"]["safety_numbers"];
    assert_eq!(numbers["equal"], true);
    assert_eq!(numbers["alice"], numbers["bob"]);
    assert_eq!(numbers["alice"].as_str().unwrap().replace(' ', "").len(), 60);
}

#[test]
fn e2e_default_conversation_turns_the_ratchet_and_delivers_out_of_order() {
    let t = json(&["run", "e2e", "--json"]);
    let delivered = strings(&t["summary"]["delivered"]);
    assert!(strings(&t["summary"]["server_read"]).is_empty());
    // Replies both ways.
    let events = t["events"].as_array().unwrap();
    let e2e_senders: Vec<&str> = events
        .iter()
        .filter(|e| e["read"].as_str().is_some_and(|r| r.starts_with("E2eSend")))
        .map(|e| e["from"].as_str().unwrap())
        .collect();
    assert!(e2e_senders.contains(&"alice") && e2e_senders.contains(&"bob"), "{e2e_senders:?}");
    // "meet at noon…" was encrypted before "bring an umbrella" but arrives after it.
    let pos = |m: &str| delivered.iter().position(|d| d == m).expect(m);
    assert!(pos("bring an umbrella") < pos("meet at noon by the fountain"), "{delivered:?}");
    assert_eq!(delivered.len(), 6, "{delivered:?}");
    for text in &delivered {
        assert_not_on_any_link(&t, text);
    }
    assert_eq!(t["summary"]["safety_numbers"]["equal"], true);
}

#[test]
fn e2e_mitm_reads_everything_and_the_safety_numbers_differ() {
    let t = json(&["run", "e2e", "--mitm", "--message", "meet at noon", "--json"]);
    assert_eq!(strings(&t["summary"]["delivered"]), ["meet at noon"]);
    assert_eq!(strings(&t["summary"]["server_read"]), ["meet at noon"]);
    let numbers = &t["summary"]["safety_numbers"];
    assert_eq!(numbers["equal"], false);
    assert!(numbers["alice"].is_string() && numbers["bob"].is_string());
    assert_ne!(numbers["alice"], numbers["bob"]);
}

#[test]
fn e2e_mitm_against_verified_identities_is_refused_and_nothing_leaks() {
    let t = json(&["run", "e2e", "--mitm", "--verified", "--message", "meet at noon", "--json"]);
    assert!(strings(&t["summary"]["delivered"]).is_empty());
    assert!(strings(&t["summary"]["server_read"]).is_empty());
    let rejected = strings(&t["summary"]["rejected"]);
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].starts_with("meet at noon: refused by alice"), "{rejected:?}");
    assert!(rejected[0].contains("not the one verified"), "{rejected:?}");
    // Nothing e2e left Alice: no E2eSend reached the server.
    assert!(
        !t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["read"].as_str().is_some_and(|r| r.contains("E2eSend")))
    );
}

#[test]
fn e2e_verified_without_mitm_still_works() {
    let t = json(&["run", "e2e", "--verified", "--message", "meet at noon", "--json"]);
    assert_eq!(strings(&t["summary"]["delivered"]), ["meet at noon"]);
    assert_eq!(t["summary"]["safety_numbers"]["equal"], true);
}

#[test]
fn run_without_a_protocol_compares_both_on_the_same_messages() {
    let t = json(&["run", "--message", "meet at noon", "--message", "bob: ok", "--json"]);
    assert_eq!(t["protocol"], "both");
    let runs = t["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0]["protocol"].as_str(), runs[1]["protocol"].as_str()),
        (Some("hop"), Some("e2e"))
    );
    let rows = t["comparison"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["hop_on_links"], false);
        assert_eq!(row["e2e_on_links"], false);
        assert_eq!(row["hop_server_read"], true);
        assert_eq!(row["e2e_server_read"], false);
        assert_eq!(row["hop_delivered"], true);
        assert_eq!(row["e2e_delivered"], true);
    }
    let (ok, text, _) = e2e_ref(&["run"]);
    assert!(ok);
    assert!(text.contains("side by side"), "{text}");
}

/// The default `run` plays one conversation in both protocols: the same messages, each sent and
/// delivered in both, so the side-by-side table compares like with like.
#[test]
fn run_plays_the_same_conversation_in_both_protocols() {
    let t = json(&["run", "--json"]);
    let runs = t["runs"].as_array().unwrap();
    let (hop, e2e) = (&runs[0]["summary"], &runs[1]["summary"]);
    let mut sent_hop = strings(&hop["sent"]);
    let mut sent_e2e = strings(&e2e["sent"]);
    assert_eq!(sent_hop.len(), 6);
    sent_hop.sort();
    sent_e2e.sort();
    assert_eq!(sent_hop, sent_e2e, "the same messages");
    let rows = t["comparison"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for row in rows {
        assert_eq!(
            (&row["hop_delivered"], &row["e2e_delivered"]),
            (&true.into(), &true.into()),
            "{row}"
        );
    }
    // The late message is overtaken in both.
    for summary in [hop, e2e] {
        let delivered = strings(&summary["delivered"]);
        let late = delivered.iter().position(|m| m == "meet at noon by the fountain").unwrap();
        let next = delivered.iter().position(|m| m == "bring an umbrella").unwrap();
        assert!(next < late, "{delivered:?}");
    }
}

#[test]
fn meaningless_option_combinations_are_refused() {
    for args in
        [&["run", "hop", "--mitm"][..], &["run", "e2e", "--deny-word", "x"], &["run", "--mitm"]]
    {
        let (ok, stdout, stderr) = e2e_ref(args);
        assert!(!ok, "{args:?} should fail");
        assert!(stdout.is_empty());
        assert!(stderr.starts_with("e2e-ref: "), "{stderr}");
    }
}
