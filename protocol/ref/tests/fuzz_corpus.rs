//! Replays the fuzz corpus — every file under `fuzz/corpus/<target>/`, and the seeds the generator
//! makes now — through the same entry points the fuzz targets call (`e2e_protocol::fuzzing`), so a
//! regression is caught by `cargo test`, without a fuzzer or a nightly toolchain.
//!
//! Every crash a fuzzer finds becomes a corpus file (named after the bug) *and* a named test below.
#![cfg(test)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use e2e_protocol::fuzzing::{TARGETS, seeds::seeds};

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

fn entry(target: &str) -> fn(&[u8]) {
    TARGETS.iter().find(|(name, _)| *name == target).map(|(_, run)| *run).unwrap()
}

/// Runs one corpus file; panics (failing the test) if the entry point does.
fn replay(target: &str, file: &str) {
    let path = corpus_dir(target).join(file);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    entry(target)(&data);
}

#[test]
fn every_committed_corpus_file_replays() {
    let mut failures = Vec::new();
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {target} in {}", dir.display());
        for file in files {
            if catch_unwind(AssertUnwindSafe(|| replay(target, &file))).is_err() {
                failures.push(format!("{target}/{file}"));
            }
        }
    }
    assert!(failures.is_empty(), "corpus files that fail: {failures:#?}");
}

#[test]
fn every_generated_seed_replays() {
    let mut failures = Vec::new();
    for seed in seeds() {
        if catch_unwind(AssertUnwindSafe(|| entry(seed.target)(&seed.bytes))).is_err() {
            failures.push(format!("{}/{}", seed.target, seed.name));
        }
    }
    assert!(failures.is_empty(), "seeds that fail: {failures:#?}");
}

#[test]
fn every_target_has_seeds() {
    let seeds = seeds();
    for (target, _) in TARGETS {
        assert!(seeds.iter().any(|s| s.target == *target), "no seeds for {target}");
    }
}

/// An empty input, and a few bytes of noise, are valid inputs of every target.
#[test]
fn trivial_inputs() {
    for (_, run) in TARGETS {
        run(&[]);
        run(&[0xff; 7]);
        run(&[0; 64]);
    }
}

// Regressions: one named test per crash a fuzzer found, replaying its minimized input, committed as
// `fuzz/corpus/<target>/regression-<what broke>` (README, "Fuzzing").

/// Not a library bug but a harness one, kept so it stays fixed: libFuzzer traces the comparison of
/// the expected and received AEAD tags, and so learned the tag of an empty frame the sender never
/// wrote; the receiver rightly opened it. The harness now accepts any frame that *is* the sender's
/// encryption under the next nonce (channel_handshake, found after 1.8 M runs).
#[test]
fn regression_channel_handshake_learned_tag_for_an_unwritten_frame() {
    replay("channel_handshake", "regression-learned-tag-for-an-unwritten-frame");
}

/// A harness bug, kept so it stays fixed: an e2e message queued for a bundle while offline produces
/// no frame, which the harness took for a frame without a link (roles_sequence, 18 k runs).
#[test]
fn regression_roles_sequence_queued_while_offline() {
    replay("roles_sequence", "regression-queued-while-offline");
}

/// A harness bug, kept so it stays fixed: `Refused` sealed into Bob's open channel rightly takes him
/// offline (SPEC.md §5.1), and the harness then sealed the next frame into a channel he no longer
/// had. It now reconnects him (within `MAX_RECONNECTS`). Found by a seed added for coverage: no
/// fuzzing run had reached the client's `Refused` handling.
#[test]
fn regression_e2e_receive_refused_takes_bob_offline() {
    replay("e2e_receive", "seed-refused-while-open");
}

/// A harness bug, kept so it stays fixed: the hostile server end told Bob `PrekeysLow` twenty times
/// over, so he drew 200 new one-time prekeys and dropped the oldest (SPEC.md §10.2: he holds at most
/// `MAX_HELD_ONE_TIME_PREKEYS`), among them the one Alice's restarted session was built on; its
/// prekey message then rightly failed `UnknownPrekey`, which the harness took for a genuine envelope
/// refused. The harness now follows §10.2's bound and expects that refusal, with nothing changed.
/// Found by a 30-minute campaign (e2e_receive, 1.23 M runs, 2026-12-07).
#[test]
fn regression_e2e_receive_lying_prekeys_low_drops_a_published_prekey() {
    replay("e2e_receive", "regression-lying-prekeys-low-drops-a-published-prekey");
}

// Seeds that reach refusals no fuzzing run had reached (README "Fuzzing", coverage): the hop mode
// of e2e_receive checks each against its model of SPEC.md §5.3 and §5.1.

/// A hop-only client's id window refuses a replayed id (`Replayed`), id 0 and an id 64 below the
/// highest (`OutOfWindow`), each changing nothing but the channel.
#[test]
fn hop_client_id_window_refusals() {
    replay("e2e_receive", "seed-hop-client-id-window");
}

/// `connect` answered with a `Welcome` under another name (`WrongName`, nothing changed, the
/// genuine answer still connects) and with `Refused` (offline, reported).
#[test]
fn hop_client_connect_refusals() {
    replay("e2e_receive", "seed-hop-client-connect-wrong-name");
    replay("e2e_receive", "seed-hop-client-connect-refused");
}
