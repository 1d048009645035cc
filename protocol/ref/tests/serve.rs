//! `e2e-ref serve` over real sockets: the binary is started on port 0 with a fresh data directory,
//! driven by the library's own `Client` roles over TCP, killed with SIGKILL and restarted
//! (SPEC.md §9.2). Loopback only; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{Relay, TempDir, read_frame};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, ClientEvent};
use e2e_protocol::suite::{PrivateKey, PublicKey};
use e2e_protocol::wire::{AckStatus, Body, HEADER_LEN, LinkFrame, MessageId, Name, frame_len};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// How long any single wait in these tests may take before it fails.
const WAIT: Duration = Duration::from_secs(20);

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// A library `Client` on a TCP connection; keeps every event it saw.
struct Peer {
    client: Client,
    stream: Option<TcpStream>,
    rng: ChaCha20Rng,
    events: Vec<ClientEvent>,
    pings: u64,
}

impl Peer {
    fn hop(who: &str, seed: u64, server: PublicKey) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let client = Client::new(name(who), PrivateKey::generate(&mut rng), server);
        Self { client, stream: None, rng, events: Vec::new(), pings: 0 }
    }

    fn e2e(who: &str, seed: u64, server: PublicKey) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = PrivateKey::generate(&mut rng);
        let peers = Peers::generate(&mut rng);
        let client = Client::with_e2e(name(who), key, server, peers);
        Self { client, stream: None, rng, events: Vec::new(), pings: 0 }
    }

    /// Connects and completes the handshake (`Connected`); returns whether it did.
    fn connect(&mut self, addr: SocketAddr) -> bool {
        self.client.disconnect();
        let Ok(mut stream) = TcpStream::connect(addr) else { return false };
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let init = self.client.connect(&mut self.rng).unwrap();
        if stream.write_all(&init).is_err() {
            return false;
        }
        self.stream = Some(stream);
        self.pump_until(|e| matches!(e, ClientEvent::Connected | ClientEvent::Refused(_)));
        self.client.is_connected() && (self.client.identity().is_some() || self.ping())
    }

    /// The relay does not answer `Ready`, so a hop client learns that its name is bound by sending
    /// itself a message: the relay handles it after `Ready`, and acknowledges it. Its events are
    /// then removed, so that tests see only their own traffic.
    fn ping(&mut self) -> bool {
        self.pings += 1;
        let text = format!("ping-{}", self.pings);
        let own = self.client.name().as_str().to_owned();
        let id = self.send(&own, &text);
        let acked = self.pump_until(|e| matches!(e, ClientEvent::Acked { id: i, .. } if *i == id));
        self.events.retain(|e| match e {
            ClientEvent::Received { body, .. } => body.as_bytes() != text.as_bytes(),
            ClientEvent::Acked { id: i, .. } => *i != id,
            _ => true,
        });
        acked
    }

    fn write(&mut self, frames: &[Vec<u8>]) -> bool {
        let Some(stream) = self.stream.as_mut() else { return false };
        frames.iter().all(|f| stream.write_all(f).is_ok())
    }

    /// The next frame: waits up to `wait` for its first byte (`Ok(None)` if none came), then up
    /// to `WAIT` for the rest, so that a timeout never cuts a frame in half. `Err` when the
    /// connection is gone.
    fn next_frame(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, ()> {
        let stream = self.stream.as_mut().ok_or(())?;
        stream.set_read_timeout(Some(wait)).unwrap();
        let mut first = [0u8; 1];
        match stream.peek(&mut first) {
            Ok(0) => {
                self.stream = None;
                return Err(());
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(_) => {
                self.stream = None;
                return Err(());
            }
        }
        stream.set_read_timeout(Some(WAIT)).unwrap();
        match read_frame(stream) {
            Some(frame) => Ok(Some(frame)),
            None => {
                self.stream = None;
                Err(())
            }
        }
    }

    /// Handles `frame`, sends what the client answers, keeps the events; returns whether `done`
    /// held for one of them.
    fn take(&mut self, frame: &[u8], done: &impl Fn(&ClientEvent) -> bool) -> Result<bool, ()> {
        let Ok(out) = self.client.handle(frame, &mut self.rng) else {
            self.stream = None;
            return Err(());
        };
        self.write(&out.transmit);
        let hit = out.events.iter().any(done);
        self.events.extend(out.events);
        Ok(hit)
    }

    /// Reads and handles frames until `done` holds for a new event, the connection ends, or
    /// `WAIT` passes. Returns whether `done` held.
    fn pump_until(&mut self, done: impl Fn(&ClientEvent) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match self.next_frame(Duration::from_millis(100)) {
                Err(()) => return false,
                Ok(None) => {}
                Ok(Some(frame)) => match self.take(&frame, &done) {
                    Ok(false) => {}
                    Ok(true) => return true,
                    Err(()) => return false,
                },
            }
        }
        false
    }

    /// Reads until nothing arrives for `quiet`, or the connection ends.
    fn drain(&mut self, quiet: Duration) {
        while let Ok(Some(frame)) = self.next_frame(quiet) {
            if self.take(&frame, &|_| false).is_err() {
                break;
            }
        }
    }

    fn send(&mut self, to: &str, text: &str) -> MessageId {
        let (id, frame) = self.client.send(&name(to), Body::new(text.into()).unwrap()).unwrap();
        self.write(&[frame]);
        id
    }

    fn acked(&self, status: AckStatus) -> Vec<MessageId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Acked { id, status: s } if *s == status => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// How often each body was received.
    fn received(&self) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for e in &self.events {
            if let ClientEvent::Received { body, .. } = e {
                let text = String::from_utf8(body.as_bytes().to_vec()).unwrap();
                *seen.entry(text).or_insert(0) += 1;
            }
        }
        seen
    }
}

#[test]
fn hop_relays_queues_and_a_restart_delivers_what_was_queued() {
    let dir = TempDir::new("restart");
    let relay = Relay::start(&dir.0, &[]);
    let mut alice = Peer::hop("alice", 1, relay.key);
    let mut bob = Peer::hop("bob", 2, relay.key);
    assert!(alice.connect(relay.addr) && bob.connect(relay.addr));
    alice.send("bob", "hello bob");
    assert!(alice.pump_until(|e| matches!(e, ClientEvent::Acked { .. })));
    assert!(bob.pump_until(|e| matches!(e, ClientEvent::Received { .. })));
    assert_eq!(alice.acked(AckStatus::Relayed).len(), 1);

    // Bob goes away; Alice's next message is queued, and acknowledged only once it is stored.
    bob.stream = None;
    std::thread::sleep(Duration::from_millis(100));
    alice.send("bob", "while you were away");
    assert!(alice.pump_until(|e| matches!(e, ClientEvent::Acked { .. })));
    assert_eq!(alice.acked(AckStatus::Queued).len(), 1);

    // A crash and a restart on the same directory: same key, the mailbox is still there.
    let key = relay.key;
    relay.kill();
    let relay = Relay::start(&dir.0, &[]);
    assert_eq!(relay.key, key, "the static key is kept in the store");
    assert!(bob.connect(relay.addr));
    bob.drain(Duration::from_millis(300));
    assert_eq!(bob.received().get("while you were away"), Some(&1));

    // Once written, the mailbox is settled: a second connection gets nothing again.
    bob.stream = None;
    std::thread::sleep(Duration::from_millis(200));
    assert!(bob.connect(relay.addr));
    bob.drain(Duration::from_millis(300));
    assert_eq!(bob.received().get("while you were away"), Some(&1));
    assert!(!bob.events.iter().any(|e| matches!(e, ClientEvent::Dropped { .. })));
}

/// Kills the relay at several points of a bounded load and restarts it each time: every message
/// acknowledged `Queued` is received exactly once, and the receiver accepts nothing twice.
#[test]
fn every_queued_ack_survives_sigkill_and_arrives_exactly_once() {
    let dir = TempDir::new("crash");
    let mut relay = Relay::start(&dir.0, &[]);
    let mut alice = Peer::hop("alice", 11, relay.key);
    let mut bob = Peer::hop("bob", 12, relay.key);
    // Bob registers once, then is offline while Alice sends.
    assert!(bob.connect(relay.addr));
    bob.stream = None;
    let mut sent = 0usize;
    let mut acked = Vec::new();
    let mut texts = BTreeMap::new();
    for round in 0..5u64 {
        assert!(alice.connect(relay.addr), "round {round}: alice connects");
        // Ten messages in a burst, without waiting for their acks; the kill lands at a
        // different point of the burst each round.
        for _ in 0..10 {
            sent += 1;
            let text = format!("m{sent}");
            texts.insert(alice.send("bob", &text), text);
        }
        // Each `Queued` waits for a durable commit (a burst shares a few): the kill comes before
        // the first ack, in the middle of the burst, or after it.
        std::thread::sleep(Duration::from_millis([0, 2, 5, 9, 30][round as usize]));
        alice.drain(Duration::from_millis(1));
        if round % 2 == 1 {
            // Bob comes and goes, so that a kill also meets a mailbox being delivered.
            bob.connect(relay.addr);
        }
        relay.kill();
        alice.drain(Duration::from_millis(50));
        bob.drain(Duration::from_millis(50));
        acked.extend(alice.acked(AckStatus::Queued));
        acked.extend(alice.acked(AckStatus::Relayed));
        alice.events.clear();
        relay = Relay::start(&dir.0, &[]);
    }
    assert!(bob.connect(relay.addr));
    bob.drain(Duration::from_millis(500));
    let received = bob.received();
    assert!(!acked.is_empty(), "the load was acknowledged at least in part");
    for id in &acked {
        let text = &texts[id];
        assert_eq!(received.get(text), Some(&1), "acknowledged {text} arrived exactly once");
    }
    assert!(received.values().all(|&n| n == 1), "nothing was accepted twice: {received:?}");
    let refused = bob.events.iter().filter(|e| matches!(e, ClientEvent::Dropped { .. })).count();
    eprintln!(
        "sent {sent}, acknowledged {}, received {}, copies refused by bob {refused}",
        acked.len(),
        received.len()
    );
    relay.kill();
}

#[test]
fn garbage_oversize_and_silent_connections_are_closed_and_others_are_served() {
    let dir = TempDir::new("abuse");
    let relay = Relay::start(&dir.0, &["--handshake-timeout", "1", "--frame-timeout", "1"]);
    let closed = |stream: &mut TcpStream| {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        matches!(stream.read(&mut buf), Ok(0) | Err(_))
    };
    // Garbage: an unknown version byte.
    let mut garbage = TcpStream::connect(relay.addr).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(closed(&mut garbage));
    // An oversized header: body_len 2^32 - 1, refused before any allocation.
    let mut oversize = TcpStream::connect(relay.addr).unwrap();
    oversize.write_all(&[0x01, 0x01, 0xff, 0xff, 0xff, 0xff]).unwrap();
    assert!(closed(&mut oversize));
    // A header, then silence: the body never comes (frame timeout).
    let mut trickle = TcpStream::connect(relay.addr).unwrap();
    trickle.write_all(&[0x01, 0x01, 0x00, 0x00, 0x01, 0x00]).unwrap();
    assert!(closed(&mut trickle));
    // Nothing at all: the handshake timeout.
    let mut silent = TcpStream::connect(relay.addr).unwrap();
    assert!(closed(&mut silent));
    // And the relay still serves.
    let mut alice = Peer::hop("alice", 21, relay.key);
    let mut bob = Peer::hop("bob", 22, relay.key);
    assert!(alice.connect(relay.addr) && bob.connect(relay.addr));
    alice.send("bob", "still here");
    assert!(bob.pump_until(|e| matches!(e, ClientEvent::Received { .. })));
}

/// SPEC.md §7.2: a link on which the server refuses a frame before the link is confirmed is
/// closed. Here a `HandshakeInit` (as a replay would put ahead of the client's own) is answered, and
/// the second one on the same connection — refused as `Unexpected` — closes it, so the client
/// connects again instead of waiting on a link nobody can confirm.
#[test]
fn a_refusal_before_confirmation_closes_the_connection() {
    let dir = TempDir::new("unconfirmed");
    let relay = Relay::start(&dir.0, &[]);
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let mut client = Client::new(name("carol"), PrivateKey::generate(&mut rng), relay.key);
    let init = client.connect(&mut rng).unwrap();
    let mut stream = TcpStream::connect(relay.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(&init).unwrap();
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).unwrap();
    let len = frame_len::<LinkFrame>(&header).unwrap().unwrap();
    let mut response = vec![0u8; len - HEADER_LEN];
    stream.read_exact(&mut response).unwrap();
    // The link is open and unconfirmed: a second handshake on it is refused, and the relay closes.
    stream.write_all(&init).unwrap();
    let mut rest = Vec::new();
    let closed = match stream.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the connection closes without another frame ({} bytes came)", rest.len());
    // The same client (the same key: seed 31) connects again on a new connection and is confirmed.
    let mut carol = Peer::hop("carol", 31, relay.key);
    assert!(carol.connect(relay.addr));
}

#[test]
fn a_reader_that_never_reads_is_closed_and_others_are_served() {
    let dir = TempDir::new("slow");
    let relay = Relay::start(&dir.0, &["--frame-timeout", "1"]);
    let mut alice = Peer::hop("alice", 31, relay.key);
    let mut bob = Peer::hop("bob", 32, relay.key);
    assert!(alice.connect(relay.addr) && bob.connect(relay.addr));
    // Bob stops reading; Alice sends him far more than a socket buffer and his queue hold
    // (each message 16 KiB; the relay keeps at most 256 frames for him).
    let big = "x".repeat(16_000);
    for _ in 0..400 {
        alice.send("bob", &big);
        alice.drain(Duration::from_millis(1));
    }
    alice.drain(Duration::from_millis(500));
    let mut carol = Peer::hop("carol", 33, relay.key);
    assert!(carol.connect(relay.addr), "the relay still serves");
    carol.send("alice", "hi");
    assert!(alice.pump_until(|e| matches!(e, ClientEvent::Received { .. })));
    // Bob's connection was closed: reading it to the end terminates.
    let stream = bob.stream.as_mut().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    if let Err(e) = stream.read_to_end(&mut sink) {
        let open =
            matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
        assert!(!open, "bob's connection was closed, not left open: {e}");
    }
    assert!(
        alice.acked(AckStatus::Queued).len() + alice.acked(AckStatus::Relayed).len() >= 64,
        "the relay kept acknowledging"
    );
}

#[test]
fn beyond_the_connection_limit_a_handshake_is_refused_server_full() {
    let dir = TempDir::new("limit");
    let relay = Relay::start(&dir.0, &["--max-connections", "1"]);
    let mut alice = Peer::hop("alice", 41, relay.key);
    assert!(alice.connect(relay.addr));
    let mut bob = Peer::hop("bob", 42, relay.key);
    assert!(!bob.connect(relay.addr));
    assert!(
        bob.events.iter().any(|e| matches!(
            e,
            ClientEvent::Refused(e2e_protocol::wire::RefusalReason::ServerFull)
        ))
    );
    // Alice leaves; Bob gets her place.
    alice.stream = None;
    std::thread::sleep(Duration::from_millis(200));
    assert!(bob.connect(relay.addr));
}

/// e2e through the network relay, with a kill between every fetch: no one-time prekey goes out
/// twice, so Bob opens every first message (a reused prekey would fail as `UnknownPrekey`).
#[test]
fn one_time_prekeys_are_never_handed_out_twice_across_sigkill() {
    let dir = TempDir::new("prekeys");
    let mut relay = Relay::start(&dir.0, &[]);
    let mut bob = Peer::e2e("bob", 51, relay.key);
    assert!(bob.connect(relay.addr));
    let upload = bob.client.upload_bundle().unwrap();
    bob.write(&[upload]);
    assert!(bob.pump_until(|e| matches!(e, ClientEvent::BundleStored { .. })));
    bob.stream = None;
    let senders = ["carol", "dave", "erin", "frank"];
    for (i, who) in senders.iter().enumerate() {
        let mut sender = Peer::e2e(who, 60 + i as u64, relay.key);
        assert!(sender.connect(relay.addr));
        let out = sender
            .client
            .send_e2e(
                &name("bob"),
                Body::new(format!("from {who}").into()).unwrap(),
                &mut sender.rng,
            )
            .unwrap();
        sender.write(&out.transmit);
        assert!(sender.pump_until(|e| matches!(e, ClientEvent::Acked { .. })));
        assert!(
            sender
                .events
                .iter()
                .any(|e| matches!(e, ClientEvent::SessionStarted { one_time_prekey: true, .. }))
        );
        relay.kill();
        relay = Relay::start(&dir.0, &[]);
    }
    assert!(bob.connect(relay.addr));
    bob.drain(Duration::from_millis(500));
    let received = bob.received();
    for who in senders {
        assert_eq!(received.get(&format!("from {who}")), Some(&1), "{received:?} {:?}", bob.events);
    }
}

/// An `e2e-ref client` process: commands on its stdin, JSON lines from its stdout.
struct Terminal {
    child: Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Terminal {
    fn start(relay: &Relay, who: &str, state: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-ref"))
            .args(["client", "--e2e", "--json", "--name", who, "--connect"])
            .arg(relay.addr.to_string())
            .arg("--server-key")
            .arg(hex::encode(relay.key.as_bytes()))
            .arg("--state")
            .arg(state.join(who))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    fn say(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// The first line for which `pick` gives something, within `WAIT`.
    fn expect<T>(&self, pick: impl Fn(&serde_json::Value) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).expect("the client printed it in time");
            if let Some(found) = pick(&line) {
                return found;
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn terminal_clients_talk_end_to_end_and_verify_safety_numbers() {
    let dir = TempDir::new("terminal");
    let relay = Relay::start(&dir.0, &[]);
    let mut bob = Terminal::start(&relay, "bob", &dir.0);
    let stored = |v: &serde_json::Value| (v["event"] == "bundle_stored").then_some(());
    bob.expect(stored);
    let mut alice = Terminal::start(&relay, "alice", &dir.0);
    alice.expect(stored);
    alice.say("send bob hello from alice");
    let text = bob.expect(|v| (v["event"] == "received").then(|| v["text"].clone()));
    assert_eq!(text, "hello from alice");
    alice.say("safety-number bob");
    bob.say("safety-number alice");
    let number = |v: &serde_json::Value| v["number"].as_str().map(str::to_owned);
    let (a, b) = (alice.expect(number), bob.expect(number));
    assert_eq!(a, b, "no one swapped keys: both see the same safety number");
    alice.say(&format!("verify bob {a}"));
    assert!(alice.expect(|v| v["ok"].as_bool()), "the number alice read out verifies");
    bob.say("verify alice 12345");
    assert!(!bob.expect(|v| v["ok"].as_bool()), "a wrong number does not");
    alice.say("quit");
    assert!(alice.child.wait().unwrap().success());
}

#[test]
fn a_restarted_terminal_client_keeps_its_name_and_continues_its_sessions() {
    let dir = TempDir::new("restart");
    let relay = Relay::start(&dir.0, &[]);
    let stored = |v: &serde_json::Value| (v["event"] == "bundle_stored").then_some(());
    let received = |v: &serde_json::Value| (v["event"] == "received").then(|| v["text"].clone());
    let number = |v: &serde_json::Value| v["number"].as_str().map(str::to_owned);
    let bob = Terminal::start(&relay, "bob", &dir.0);
    bob.expect(stored);
    let mut alice = Terminal::start(&relay, "alice", &dir.0);
    alice.expect(stored);
    alice.say("send bob before the restart");
    assert_eq!(bob.expect(received), "before the restart");
    alice.say("safety-number bob");
    let before = alice.expect(number);
    // SIGKILL both: whatever they last wrote is their state.
    drop(alice);
    drop(bob);
    #[cfg(unix)]
    for who in ["alice", "bob"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.0.join(who)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{who}'s state file is readable by its owner only");
    }
    // The same names, keys and sessions: the relay takes the names back (no NameTaken), and Bob
    // answers in the session Alice started before the restart, which she still holds.
    let mut bob = Terminal::start(&relay, "bob", &dir.0);
    bob.expect(stored);
    let mut alice = Terminal::start(&relay, "alice", &dir.0);
    alice.expect(stored);
    bob.say("send alice after the restart");
    assert_eq!(alice.expect(received), "after the restart");
    alice.say("safety-number bob");
    assert_eq!(alice.expect(number), before, "the same identities: the same safety number");
    alice.say("quit");
    assert!(alice.child.wait().unwrap().success());
    // A state file is one client's: used under another name it is refused, and left as it was.
    let kept = std::fs::read(dir.0.join("alice")).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_e2e-ref"))
        .args(["client", "--e2e", "--name", "carol", "--connect"])
        .arg(relay.addr.to_string())
        .arg("--server-key")
        .arg(hex::encode(relay.key.as_bytes()))
        .arg("--state")
        .arg(dir.0.join("alice"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
    assert_eq!(std::fs::read(dir.0.join("alice")).unwrap(), kept);
}
