//! `e2e-ref load` with faults, small and bounded: the real binary spawns its relay, SIGKILLs it
//! twice under load and restarts it on the same data directory; no message acknowledged `Queued`
//! may be lost and none may arrive twice (SPEC.md §5.4). No wall-clock assertion: the figures are
//! the command's business, not the test's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn fault_run(protocol: &str) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_e2e-ref"))
        .args(["load", "--spawn-relay", "--clients", "20", "--messages", "10", "--size", "64"])
        .args(["--protocol", protocol, "--kill-every", "100", "--kills", "2", "--drain", "2000"])
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&output.stderr)));
    assert!(output.status.success(), "{report}");
    report
}

fn check(report: &serde_json::Value) {
    let n = |key: &str| report[key].as_u64().unwrap_or_else(|| panic!("{key} in {report}"));
    assert_eq!(n("kills"), 2, "{report}");
    assert_eq!(n("lost_queued"), 0, "{report}");
    assert_eq!(n("duplicated"), 0, "{report}");
    // Every message was sent and answered one way or the other, and the counts add up.
    assert_eq!(n("sent"), 200, "{report}");
    assert_eq!(
        n("acked_queued") + n("acked_relayed") + n("rejected") + n("unacked"),
        n("sent"),
        "{report}"
    );
    assert_eq!(
        n("received"),
        n("acked_queued") + n("acked_relayed") - n("lost_relayed") + n("unacked_arrived"),
        "{report}"
    );
}

#[test]
fn hop_survives_sigkill_without_loss_or_duplicates() {
    check(&fault_run("hop"));
}

#[test]
fn e2e_survives_sigkill_without_loss_or_duplicates() {
    check(&fault_run("e2e"));
}
