//! `e2e-ref load`, small and bounded, loopback only.
//!
//! With faults: the real binary spawns its relay, SIGKILLs it twice under load and restarts it on
//! the same data directory; no message acknowledged `Queued` may be lost and none may arrive twice
//! (SPEC.md §5.4).
//!
//! With a relay that lags: a client is *ready* — the load may send to it — only once the relay
//! has processed its key confirmation (`Ready`, SPEC.md §5.1), which binds its name; before that,
//! a message to it is refused (`UnknownRecipient`, §5.2). A proxy holds back one client's `Ready`
//! for a second, so a load that counted that client ready on `Welcome` alone would send into the
//! gap every time.
//!
//! Every run asserts that no message was refused and that the counts add up. No wall-clock
//! assertion: the figures are the command's business, not the test's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{Relay, TempDir, read_frame};
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one `e2e-ref load` of these tests may take before it fails.
const LIMIT: Duration = Duration::from_secs(120);

/// How long the lagging proxy holds back its first client's `Ready`: far longer than the peer
/// takes to send its first message once it counts that client ready, on a loaded machine too.
const LAG: Duration = Duration::from_secs(1);

/// Runs `e2e-ref load ARGS --json` to its end, or fails after [`LIMIT`]; its report.
fn load(args: &[&str]) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-ref"))
        .arg("load")
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("load {args:?}: no end within {LIMIT:?}; stderr: {}", stderr(&output));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", stderr(&output)));
    assert!(output.status.success(), "{report}");
    report
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What every run must show: every message sent was answered one way or the other, none was
/// refused, none arrived twice, no `Queued` one was lost, and the counts add up.
fn check(report: &serde_json::Value, sent: u64) {
    let n = |key: &str| report[key].as_u64().unwrap_or_else(|| panic!("{key} in {report}"));
    assert_eq!(n("sent"), sent, "{report}");
    assert_eq!(n("rejected"), 0, "{report}");
    assert_eq!(n("lost_queued"), 0, "{report}");
    assert_eq!(n("duplicated"), 0, "{report}");
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

fn fault_run(protocol: &str) {
    let report = load(&[
        "--spawn-relay",
        "--clients",
        "20",
        "--messages",
        "10",
        "--size",
        "64",
        "--protocol",
        protocol,
        "--kill-every",
        "100",
        "--kills",
        "2",
        "--drain",
        "2000",
    ]);
    assert_eq!(report["kills"].as_u64(), Some(2), "{report}");
    check(&report, 200);
}

#[test]
fn hop_survives_sigkill_without_loss_or_duplicates() {
    fault_run("hop");
}

#[test]
fn e2e_survives_sigkill_without_loss_or_duplicates() {
    fault_run("e2e");
}

/// A TCP proxy on loopback in front of `relay`. Of the first connection it accepts, it passes the
/// first frame (the client's `HandshakeInit`) on at once and everything after it — the client's
/// `Ready` first — [`LAG`] later, in order; every other byte, both ways, at once. So the relay
/// answers that client's handshake with `Welcome` at once, and binds its name a second later.
fn lagging_proxy(relay: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (accepted, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { return };
            let Ok(upstream) = TcpStream::connect(relay) else { return };
            let lag = if accepted == 0 { LAG } else { Duration::ZERO };
            for stream in [&client, &upstream] {
                stream.set_nodelay(true).unwrap();
            }
            let (mut from_client, mut to_relay) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                if let Some(first) = read_frame(&mut from_client) {
                    let _ = to_relay.write_all(&first);
                    std::thread::sleep(lag);
                    let _ = std::io::copy(&mut from_client, &mut to_relay);
                }
                let _ = to_relay.shutdown(Shutdown::Write);
            });
            let (mut from_relay, mut to_client) = (upstream, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_relay, &mut to_client);
                let _ = to_client.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// Two clients, one of them behind the lag: its peer must not send before the relay has bound
/// the lagging client's name, so nothing is refused and every message arrives.
fn lagging_run(protocol: &str) {
    let data = TempDir::new("load");
    let relay = Relay::start(&data.0, &[]);
    let key = hex::encode(relay.key.as_bytes());
    let proxy = lagging_proxy(relay.addr).to_string();
    let report = load(&[
        "--connect",
        &proxy,
        "--server-key",
        &key,
        "--clients",
        "2",
        "--messages",
        "10",
        "--size",
        "64",
        "--protocol",
        protocol,
        "--drain",
        "2000",
    ]);
    check(&report, 20);
    assert_eq!(report["received"].as_u64(), Some(20), "{report}");
}

#[test]
fn hop_sends_only_once_the_relay_has_bound_the_peer() {
    lagging_run("hop");
}

/// e2e is ready on `BundleStored`, the relay's answer to an upload that follows `Ready` on the
/// same link: the same lag must not make it send early either.
#[test]
fn e2e_sends_only_once_the_relay_has_bound_the_peer() {
    lagging_run("e2e");
}
