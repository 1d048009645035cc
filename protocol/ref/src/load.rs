//! `e2e-ref load`: many library [`Client`]s on TCP against `e2e-ref serve`, measured (issue 14,
//! item 6). A benchmark command, not a test: it reports what it saw.
//!
//! **Shape.** `clients` clients, one tokio task each, each on its own TCP connection. Client `i`
//! sends `messages` messages of `size` bytes to client `i ^ 1`, one at a time: the next goes out
//! when the previous one is acknowledged (`Ack`), refused, or its connection died. Every body
//! starts with a tag — sender, sequence number, send time on this process's monotonic clock — so
//! the receiver counts each message exactly once and measures its latency (send → receive).
//!
//! **Ready.** Measurement starts once every client is *ready*: the relay has processed its key
//! confirmation (`Ready`, SPEC.md §5.1), which binds its name. Before that, a message to it is
//! refused (`Reject { UnknownRecipient }`, §5.2) — a refusal that would only say the load started
//! too early. `Welcome` (the client's `Connected`) comes before the relay has read `Ready`, so it
//! is not enough: a client learns it from the relay's answer to a frame it sent after `Ready` on
//! the same link, which the relay serves in order — in hop an empty message to itself (its
//! `Ack`), in e2e its bundle upload (`BundleStored`). Neither counts in the figures: both are
//! answered before the clock starts, and the message to itself is none of the `messages` and
//! does not come from the peer.
//!
//! **Faults.** With a spawned relay (`--spawn-relay`), `--kill-every D --kills K` SIGKILLs the relay
//! `K` times, `D` apart, each time restarting it on the same data directory (a new port; the clients
//! reconnect with a new handshake and keep their state in memory, as a client with its state file
//! would). SPEC.md §5.4: an `Ack { Queued }` is durable, so every such message must arrive; an
//! `Ack { Relayed }` was never stored, so a crash may lose it (counted apart); a message whose
//! connection died before its acknowledgement may or may not have arrived (counted apart). No
//! message may arrive twice.
//!
//! **The floor.** Before the load, the primitive work the relay benches
//! (`protocol/benches/protocol/floor.rs`, paths `relay/hop/SIZE` and `relay/e2e/SIZE`) count for one
//! relayed message is timed on this machine, on one core ([`Floor`]); the report divides the
//! measured message rate by the floor's rate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e_protocol::Error;
use e2e_protocol::e2e::E2eError;
use e2e_protocol::e2e::peers::Peers;
use e2e_protocol::roles::{Client, ClientEvent, ClientOutputs, FramePool, LinkId, Server};
use e2e_protocol::suite::{PrivateKey, PublicKey};
use e2e_protocol::wire::frame_len;
use e2e_protocol::wire::{AckStatus, Body, HEADER_LEN, LinkFrame, MAX_BODY_LEN, MessageId, Name};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The tag at the front of every body: sender index, sequence number, send time (ns).
const TAG_LEN: usize = 16;

/// Where the relay is.
#[derive(Debug, Clone)]
pub enum RelaySource {
    /// A relay already running; `pid`, if given, is read for its peak RSS.
    Connect {
        /// Its address.
        addr: SocketAddr,
        /// Its static public key.
        key: PublicKey,
        /// Its process id.
        pid: Option<u32>,
    },
    /// Start `exe serve` on loopback with a fresh temporary data directory (removed at the end).
    Spawn {
        /// The `e2e-ref` executable.
        exe: PathBuf,
    },
}

/// How to run the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The relay.
    pub relay: RelaySource,
    /// Clients (connections); client `i` talks to client `i ^ 1`, so an even number.
    pub clients: usize,
    /// Messages each client sends.
    pub messages: usize,
    /// e2e (bundles, Double Ratchet) instead of hop.
    pub e2e: bool,
    /// Body size in bytes (at least 16, the tag).
    pub size: usize,
    /// Seeds every client's keys.
    pub seed: u64,
    /// With a spawned relay: kill it with SIGKILL this often…
    pub kill_every: Option<Duration>,
    /// …this many times.
    pub kills: usize,
    /// After every sender finished, how long to wait without a new arrival before stopping.
    pub drain: Duration,
    /// Only even clients send (odd ones only receive): every e2e message then follows one of the
    /// same sender, so the ratchet takes only its symmetric step, as the `relay/e2e` floor counts.
    pub one_way: bool,
}

/// Why the load did not run.
#[derive(Debug)]
pub struct LoadError(pub String);

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// How long a run may go without a message arriving or a sender finishing before it stops with an
/// error: far longer than a relay restart and every client's reconnection take.
const STALL: Duration = Duration::from_secs(60);

fn err(what: impl core::fmt::Display) -> LoadError {
    LoadError(what.to_string())
}

/// The crypto floor of one relayed message, timed on one core before the load.
#[derive(Debug, Clone)]
pub struct Floor {
    /// The operations counted, as in `floor.rs` (`aead(n)`: one seal plus one open of `n` bytes).
    pub ops: String,
    /// Their summed medians, nanoseconds per message.
    pub ns: f64,
}

impl Floor {
    /// Messages per second one core could relay if it did nothing but this primitive work.
    #[must_use]
    pub fn rate(&self) -> f64 {
        1e9 / self.ns
    }
}

/// What the load measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// `hop` or `e2e`.
    pub protocol: &'static str,
    /// Clients (TCP connections).
    pub clients: usize,
    /// Messages each client was to send.
    pub messages: usize,
    /// Only even clients sent.
    pub one_way: bool,
    /// Body size.
    pub size: usize,
    /// Messages sent (written to a connection).
    pub sent: u64,
    /// Acknowledged `Queued` (durable).
    pub acked_queued: u64,
    /// Acknowledged `Relayed` (not durable).
    pub acked_relayed: u64,
    /// Refused by the relay (`Reject`).
    pub rejected: u64,
    /// Sent, but the connection died before the acknowledgement.
    pub unacked: u64,
    /// Distinct messages received.
    pub received: u64,
    /// `Queued`-acknowledged messages never received: must be 0.
    pub lost_queued: u64,
    /// `Relayed`-acknowledged messages never received (allowed by SPEC.md §5.4 across a crash).
    pub lost_relayed: u64,
    /// Unacknowledged messages that nevertheless arrived.
    pub unacked_arrived: u64,
    /// Extra copies the application saw: must be 0.
    pub duplicated: u64,
    /// From the start signal to the last first arrival.
    pub seconds: f64,
    /// Distinct messages received per second.
    pub rate: f64,
    /// Latency send → receive, median, milliseconds.
    pub p50_ms: f64,
    /// Latency send → receive, 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// The relay's peak resident set (`VmHWM`), KiB, highest over its lives; `None`: unknown.
    pub relay_peak_rss_kib: Option<u64>,
    /// Relay kills done.
    pub kills: usize,
    /// Of those, kills done while some client still had messages to send.
    pub kills_under_load: usize,
    /// The crypto floor.
    pub floor: Floor,
    /// `rate / floor.rate()`.
    pub ratio: f64,
    /// CPU seconds (user + system) the load process and the relay spent from the start signal to
    /// the end; `None` if `/proc` could not tell (the relay's share needs its pid).
    pub cpu_seconds: Option<f64>,
    /// The relay's share of `cpu_seconds`: what its CPU cost per message is read from, which
    /// neither the clients' work nor other processes on the machine move.
    pub relay_cpu_seconds: Option<f64>,
    /// `received / cpu_seconds` divided by the floor's rate: the ratio per CPU-second consumed,
    /// which does not depend on how much of the machine other processes took.
    pub cpu_ratio: Option<f64>,
    /// The 1-minute load average when the load ended.
    pub loadavg: String,
    /// This process's open-file limit (soft).
    pub nofile: String,
}

impl LoadReport {
    /// Whether the exactly-once guarantees held: no `Queued`-acknowledged message lost, none twice.
    #[must_use]
    pub const fn exactly_once(&self) -> bool {
        self.lost_queued == 0 && self.duplicated == 0
    }

    /// The report as one JSON object.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "protocol": self.protocol, "clients": self.clients, "messages": self.messages, "one_way": self.one_way,
            "size": self.size, "sent": self.sent, "acked_queued": self.acked_queued,
            "acked_relayed": self.acked_relayed, "rejected": self.rejected, "unacked": self.unacked,
            "received": self.received, "lost_queued": self.lost_queued,
            "lost_relayed": self.lost_relayed, "unacked_arrived": self.unacked_arrived,
            "duplicated": self.duplicated, "seconds": self.seconds, "msgs_per_s": self.rate,
            "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
            "relay_peak_rss_kib": self.relay_peak_rss_kib, "kills": self.kills, "kills_under_load": self.kills_under_load,
            "floor_ops": self.floor.ops, "floor_ns": self.floor.ns,
            "floor_msgs_per_s_one_core": self.floor.rate(), "ratio": self.ratio,
            "cpu_seconds": self.cpu_seconds, "relay_cpu_seconds": self.relay_cpu_seconds,
            "cpu_ratio": self.cpu_ratio,
            "loadavg": self.loadavg, "nofile": self.nofile,
        })
    }

    /// The report as text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let rss = self
            .relay_peak_rss_kib
            .map_or_else(|| "unknown".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        format!(
            "protocol {} | clients {} | messages {} each{} | size {} B | relay kills {} ({} under load)\n\
             sent {} | acked Queued {} | acked Relayed {} | rejected {} | unacked (connection died) {}\n\
             received {} distinct | lost Queued-acked {} | lost Relayed-acked {} | unacked that arrived {} | duplicated {}\n\
             {:.0} msgs/s over {:.2} s | latency p50 {:.2} ms, p99 {:.2} ms | relay peak RSS {rss}\n\
             floor (one core): {} = {:.2} µs/msg = {:.0} msgs/s | ratio {:.1}%\n\
             CPU (load process + relay) {}, relay {} | ratio per CPU-second {}\n\
             load average {} | open files limit {}\n",
            self.protocol,
            self.clients,
            self.messages,
            if self.one_way { " (even clients only)" } else { "" },
            self.size,
            self.kills,
            self.kills_under_load,
            self.sent,
            self.acked_queued,
            self.acked_relayed,
            self.rejected,
            self.unacked,
            self.received,
            self.lost_queued,
            self.lost_relayed,
            self.unacked_arrived,
            self.duplicated,
            self.rate,
            self.seconds,
            self.p50_ms,
            self.p99_ms,
            self.floor.ops,
            self.floor.ns / 1e3,
            self.floor.rate(),
            self.ratio * 100.0,
            self.cpu_seconds.map_or_else(|| "unknown".to_owned(), |c| format!("{c:.2} s")),
            self.relay_cpu_seconds.map_or_else(|| "unknown".to_owned(), |c| format!("{c:.2} s")),
            self.cpu_ratio.map_or_else(|| "unknown".to_owned(), |r| format!("{:.1}%", r * 100.0)),
            self.loadavg,
            self.nofile,
        )
    }
}

/// Runs the load (on the current tokio runtime) and reports.
///
/// # Errors
/// [`LoadError`]: a bad configuration, the relay did not start, or clients did not connect.
pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    if config.clients < 2 || !config.clients.is_multiple_of(2) {
        return Err(err("--clients must be even and at least 2"));
    }
    if config.size < TAG_LEN || config.size > MAX_BODY_LEN {
        return Err(err(format!("--size must be {TAG_LEN}..={MAX_BODY_LEN}")));
    }
    if config.kills > 0 && !matches!(config.relay, RelaySource::Spawn { .. }) {
        return Err(err("--kills needs --spawn-relay"));
    }
    let floor = tokio::task::spawn_blocking({
        let (e2e, size) = (config.e2e, config.size);
        move || measure_floor(e2e, size)
    })
    .await
    .map_err(err)??;

    let mut relay = match &config.relay {
        RelaySource::Connect { addr, key, pid } => {
            Relay { addr: *addr, key: *key, pid: *pid, spawned: None }
        }
        RelaySource::Spawn { exe } => {
            let dir = TempDir::new()?;
            let spawned =
                Spawned { exe: exe.clone(), dir, child: None, max_conn: config.clients + 16 };
            let mut relay = Relay {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                key: PublicKey::from_bytes([0; 32]),
                pid: None,
                spawned: Some(spawned),
            };
            relay.start().await?;
            relay
        }
    };

    let (addr_tx, addr_rx) = watch::channel(relay.addr);
    let (go_tx, go_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        base: Instant::now(),
        ready: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        received: AtomicU64::new(0),
        last_arrival_ns: AtomicU64::new(0),
    });
    let mut tasks = Vec::with_capacity(config.clients);
    for i in 0..config.clients {
        let mut rng =
            ChaCha20Rng::seed_from_u64(config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let name = client_name(i)?;
        let key = PrivateKey::generate(&mut rng);
        let client = if config.e2e {
            Client::with_e2e(name, key, relay.key, Peers::generate(&mut rng))
        } else {
            Client::new(name, key, relay.key)
        };
        let driver = Driver {
            index: i,
            name: client_name(i)?,
            peer: client_name(i ^ 1)?,
            client,
            rng,
            e2e: config.e2e,
            size: config.size,
            messages: if config.one_way && i % 2 == 1 { 0 } else { config.messages },
            shared: Arc::clone(&shared),
            addr: addr_rx.clone(),
            go: go_rx.clone(),
            stop: stop_rx.clone(),
            status: vec![Status::NotSent; config.messages],
            arrivals: vec![0; config.messages],
            latencies: Vec::with_capacity(config.messages),
            pool: FramePool::new(),
            body: Vec::new(),
            next: 0,
            in_flight: None,
            is_ready: false,
            is_done: false,
        };
        tasks.push(tokio::spawn(driver.run()));
    }

    // Every client ready — its name bound, in e2e its bundle stored — before the clock starts.
    let setup = Instant::now();
    while shared.ready.load(Ordering::Acquire) < config.clients {
        if setup.elapsed() > Duration::from_secs(120) {
            let _ = stop_tx.send(true);
            return Err(err(format!(
                "only {} of {} clients ready within 120 s",
                shared.ready.load(Ordering::Acquire),
                config.clients
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let start_ns = shared.now_ns();
    let own_cpu_start = cpu_ticks("self");
    let mut relay_cpu = relay.cpu().map(|t| -(t as f64));
    let _ = go_tx.send(true);

    let mut peak_rss = None;
    let (mut kills, mut kills_under_load) = (0, 0);
    if let Some(every) = config.kill_every {
        for _ in 0..config.kills {
            tokio::time::sleep(every).await;
            peak_rss = peak_rss.max(relay.peak_rss());
            relay_cpu = relay_cpu.zip(relay.cpu()).map(|(sum, t)| sum + t as f64);
            let under_load = shared.done.load(Ordering::Acquire) < config.clients;
            relay.kill().await?;
            kills += 1;
            kills_under_load += usize::from(under_load);
            relay.start().await?;
            let _ = addr_tx.send(relay.addr);
        }
    }

    // Wait for the senders, then for arrivals to stop. A run in which neither a message arrives
    // nor a sender finishes for `STALL` (a client waiting forever for an answer its relay will
    // never send) stops with an error instead of hanging.
    let mut last = (shared.received.load(Ordering::Acquire), Instant::now());
    let mut last_done = shared.done.load(Ordering::Acquire);
    let senders = if config.one_way { config.clients / 2 } else { config.clients };
    let expected = (senders * config.messages) as u64;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let received = shared.received.load(Ordering::Acquire);
        let done = shared.done.load(Ordering::Acquire);
        if received != last.0 || done != last_done {
            last = (received, Instant::now());
            last_done = done;
        }
        let senders_done = done == config.clients;
        if senders_done && (received >= expected || last.1.elapsed() >= config.drain) {
            break;
        }
        if !senders_done && last.1.elapsed() >= STALL.max(config.drain) {
            let _ = stop_tx.send(true);
            return Err(err(format!(
                "no progress for {:?}: {done} of {} clients done, {received} of {expected} \
                 messages received",
                STALL.max(config.drain),
                config.clients
            )));
        }
    }
    peak_rss = peak_rss.max(relay.peak_rss());
    relay_cpu = relay_cpu.zip(relay.cpu()).map(|(sum, t)| sum + t as f64);
    let own_cpu = own_cpu_start.zip(cpu_ticks("self")).map(|(a, b)| b.saturating_sub(a) as f64);
    let cpu_seconds = own_cpu.zip(relay_cpu).map(|(a, b)| (a + b) / CLOCK_TICKS);
    let relay_cpu_seconds = relay_cpu.map(|ticks| ticks / CLOCK_TICKS);
    let _ = stop_tx.send(true);
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.map_err(err)?);
    }
    relay.stop().await;

    let mut report = LoadReport {
        protocol: if config.e2e { "e2e" } else { "hop" },
        clients: config.clients,
        messages: config.messages,
        one_way: config.one_way,
        size: config.size,
        sent: 0,
        acked_queued: 0,
        acked_relayed: 0,
        rejected: 0,
        unacked: 0,
        received: 0,
        lost_queued: 0,
        lost_relayed: 0,
        unacked_arrived: 0,
        duplicated: 0,
        seconds: 0.0,
        rate: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        relay_peak_rss_kib: peak_rss,
        kills,
        kills_under_load,
        cpu_seconds,
        relay_cpu_seconds,
        cpu_ratio: None,
        ratio: 0.0,
        floor,
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        nofile: nofile(),
    };
    let mut latencies = Vec::new();
    for i in 0..outcomes.len() {
        let (sender, receiver) = (&outcomes[i], &outcomes[i ^ 1]);
        for (seq, status) in sender.status.iter().enumerate() {
            let arrived = receiver.arrivals[seq];
            report.duplicated += u64::from(arrived.saturating_sub(1));
            match status {
                Status::NotSent => {}
                Status::Unacked => {
                    report.sent += 1;
                    report.unacked += 1;
                    report.unacked_arrived += u64::from(arrived > 0);
                }
                Status::Acked(AckStatus::Queued) => {
                    report.sent += 1;
                    report.acked_queued += 1;
                    report.lost_queued += u64::from(arrived == 0);
                }
                Status::Acked(AckStatus::Relayed) => {
                    report.sent += 1;
                    report.acked_relayed += 1;
                    report.lost_relayed += u64::from(arrived == 0);
                }
                Status::Rejected => {
                    report.sent += 1;
                    report.rejected += 1;
                }
            }
            report.received += u64::from(arrived > 0);
        }
        latencies.extend_from_slice(&receiver.latencies);
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let at = ((latencies.len() - 1) as f64 * p).round() as usize;
        latencies[at.min(latencies.len() - 1)] as f64 / 1e6
    };
    report.p50_ms = percentile(0.50);
    report.p99_ms = percentile(0.99);
    let end_ns = shared.last_arrival_ns.load(Ordering::Acquire);
    report.seconds = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    if report.seconds > 0.0 {
        report.rate = report.received as f64 / report.seconds;
    }
    report.ratio = report.rate / report.floor.rate();
    report.cpu_ratio =
        cpu_seconds.filter(|c| *c > 0.0).map(|c| report.received as f64 / c / report.floor.rate());
    Ok(report)
}

fn client_name(i: usize) -> Result<Name, LoadError> {
    Name::new(&format!("c{i}")).map_err(err)
}

/// `/proc/PID/stat`'s clock ticks per second (`USER_HZ`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// User + system CPU time of `/proc/{pid}`, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses: state is field 3,
    // utime 14 and stime 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn nofile() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| l.split_whitespace().nth(3).unwrap_or("?").to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// What every client task shares with the coordinator.
struct Shared {
    base: Instant,
    /// Clients ready ([`Driver::ready`]).
    ready: AtomicUsize,
    /// Clients that sent all their messages.
    done: AtomicUsize,
    /// Distinct messages received, all clients.
    received: AtomicU64,
    /// The latest first arrival, ns since `base`.
    last_arrival_ns: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What became of one message a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    NotSent,
    /// Written, and the connection died before an answer.
    Unacked,
    Acked(AckStatus),
    Rejected,
}

/// What a client task hands back.
struct Outcome {
    status: Vec<Status>,
    /// How many times each of the peer's messages arrived.
    arrivals: Vec<u32>,
    /// ns, first arrivals.
    latencies: Vec<u64>,
}

/// One client and its connection loop.
struct Driver {
    index: usize,
    /// This client's name: in hop it sends itself a message to learn that the relay bound it.
    name: Name,
    peer: Name,
    client: Client,
    rng: ChaCha20Rng,
    e2e: bool,
    size: usize,
    messages: usize,
    shared: Arc<Shared>,
    addr: watch::Receiver<SocketAddr>,
    go: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
    status: Vec<Status>,
    arrivals: Vec<u32>,
    latencies: Vec<u64>,
    /// The buffers the client seals into and reads bodies into, given back once written or read.
    pool: FramePool,
    /// The buffer the next body is written into, kept from message to message.
    body: Vec<u8>,
    next: usize,
    /// The message out: its sequence number and, once known, its id (an e2e message waiting for
    /// the peer's bundle has none yet).
    in_flight: Option<(usize, Option<MessageId>)>,
    is_ready: bool,
    is_done: bool,
}

impl Driver {
    async fn run(mut self) -> Outcome {
        while !*self.stop.borrow() {
            let addr = *self.addr.borrow_and_update();
            if self.session(addr).await.is_err() {
                // The connection failed or ended: an answer that did not come will not come.
                if let Some((seq, Some(_))) = self.in_flight {
                    self.status[seq] = Status::Unacked;
                    self.in_flight = None;
                }
                let mut addr = self.addr.clone();
                let mut stop = self.stop.clone();
                tokio::select! {
                    _ = addr.changed() => {}
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
        Outcome { status: self.status, arrivals: self.arrivals, latencies: self.latencies }
    }

    /// One connection, until it fails or the load stops (`Ok`).
    ///
    /// In place, as a driver that relays many messages should be: a frame is read into one
    /// buffer and decrypted there ([`Client::handle_in_place`]), a message is sealed straight into
    /// the write buffer ([`Client::send_into`], [`Client::send_e2e_into`]), and the buffers of
    /// the frames the client sealed and of the bodies it read go back to its [`FramePool`], so that
    /// the client role sends and receives without a heap allocation (what
    /// `protocol/tests/allocations.rs` counts for the role itself).
    async fn session(&mut self, addr: SocketAddr) -> Result<(), ()> {
        let stream = TcpStream::connect(addr).await.map_err(|_| ())?;
        stream.set_nodelay(true).map_err(|_| ())?;
        let (mut read, mut write) = stream.into_split();
        self.client.disconnect();
        let init = self.client.connect(&mut self.rng).map_err(|_| ())?;
        write.write_all(&init).await.map_err(|_| ())?;
        let mut stop = self.stop.clone();
        let mut go = self.go.clone();
        let mut connected = false;
        // Hop, until ready: the id of the message to itself whose answer says its name is bound.
        let mut confirmation = None;
        let mut frame = Vec::new();
        let mut out = ClientOutputs::default();
        // What goes out next, all frames in one write.
        let mut wire = Vec::new();
        loop {
            let read_one = tokio::select! {
                read = read_frame(&mut read, &mut frame) => { read?; true }
                _ = stop.changed() => return Ok(()),
                _ = go.changed(), if !*go.borrow() => false,
            };
            if read_one {
                let rng = &mut self.rng;
                self.client
                    .handle_in_place(&mut frame, rng, &mut out, &mut self.pool)
                    .map_err(|_| ())?;
                for event in out.events.drain(..) {
                    match event {
                        // On `Welcome`: `Ready` is first in `out.transmit`, and the relay has not
                        // read it yet; what this pushes after it is answered only once it has.
                        ClientEvent::Connected => {
                            connected = true;
                            if self.is_ready {
                                // Bound already: a binding outlives the link and, being durable
                                // state (SPEC.md §6.2), a relay restart.
                            } else if self.e2e {
                                out.transmit.push(self.client.upload_bundle().map_err(|_| ())?);
                            } else {
                                let empty = Body::new(Vec::new()).map_err(|_| ())?;
                                let (id, sealed) =
                                    self.client.send(&self.name, empty).map_err(|_| ())?;
                                out.transmit.push(sealed);
                                confirmation = Some(id);
                            }
                        }
                        ClientEvent::BundleStored { .. } => self.ready(),
                        ClientEvent::Acked { id, .. } if confirmation == Some(id) => {
                            confirmation = None;
                            self.ready();
                        }
                        // The relay refuses a message to a bound name on its confirmed link only
                        // by content policy (SPEC.md §5.2); one that refuses an empty message is
                        // not one to load. This connection ends, and the next tries again until
                        // the set-up's 120 s run out.
                        ClientEvent::Rejected { id, .. } if confirmation == Some(id) => {
                            return Err(());
                        }
                        // An e2e message waiting for the peer's bundle was given up, unsent (no
                        // bundle, or one the client refused): it stays `NotSent`, and the client
                        // goes on with the next instead of waiting for an answer that never comes.
                        ClientEvent::SendFailed { peer, .. } if peer == self.peer => {
                            if let Some((_, None)) = self.in_flight {
                                self.in_flight = None;
                            }
                        }
                        ClientEvent::Refused(_) => return Err(()),
                        ClientEvent::Received { from, body, .. } if from == self.peer => {
                            self.arrived(body.as_bytes());
                            self.pool.recycle(body.into_bytes());
                        }
                        ClientEvent::Sent { id, .. } => {
                            if let Some((_, slot @ None)) = &mut self.in_flight {
                                *slot = Some(id);
                            }
                        }
                        ClientEvent::Acked { id, status } => {
                            self.answered(id, Status::Acked(status))
                        }
                        ClientEvent::Rejected { id, .. } => self.answered(id, Status::Rejected),
                        _ => {}
                    }
                }
            }
            for sealed in out.transmit.drain(..) {
                wire.extend_from_slice(&sealed);
                self.pool.recycle(sealed);
            }
            if connected && *go.borrow() && self.in_flight.is_none() {
                if self.next < self.messages {
                    self.send_next(&mut wire)?;
                } else if !self.is_done {
                    self.is_done = true;
                    self.shared.done.fetch_add(1, Ordering::AcqRel);
                }
            }
            if !wire.is_empty() {
                write.write_all(&wire).await.map_err(|_| ())?;
                wire.clear();
            }
        }
    }

    /// Counts this client ready, once: the relay has processed its key confirmation, so its name
    /// is bound and a message to it is relayed or queued, never refused as `UnknownRecipient`
    /// (module doc, **Ready**).
    fn ready(&mut self) {
        if !self.is_ready {
            self.is_ready = true;
            self.shared.ready.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Seals the next message onto `wire`. An e2e message to a peer without a session yet (the
    /// first) goes through [`Client::send_e2e`], which asks for the peer's bundle and sends the
    /// message when it arrives.
    fn send_next(&mut self, wire: &mut Vec<u8>) -> Result<(), ()> {
        let seq = self.next;
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        body.resize(self.size, 0);
        let sender = u32::try_from(self.index).map_err(|_| ())?;
        let seq32 = u32::try_from(seq).map_err(|_| ())?;
        body[..4].copy_from_slice(&sender.to_le_bytes());
        body[4..8].copy_from_slice(&seq32.to_le_bytes());
        body[8..16].copy_from_slice(&self.shared.now_ns().to_le_bytes());
        let body = Body::new(body).map_err(|_| ())?;
        let id = if self.e2e {
            match self.client.send_e2e_into(&self.peer, &body, &mut self.rng, wire) {
                Ok(id) => Some(id),
                Err(Error::E2e(E2eError::NoSession { .. })) => {
                    let out =
                        self.client.send_e2e(&self.peer, body, &mut self.rng).map_err(|_| ())?;
                    for sealed in out.transmit {
                        wire.extend_from_slice(&sealed);
                    }
                    self.in_flight = Some((seq, None));
                    self.next += 1;
                    // Sent once the bundle arrives: its id comes with the `Sent` event.
                    return Ok(());
                }
                Err(_) => return Err(()),
            }
        } else {
            Some(self.client.send_into(&self.peer, &body, wire).map_err(|_| ())?)
        };
        self.in_flight = Some((seq, id));
        self.body = body.into_bytes();
        self.next += 1;
        Ok(())
    }

    fn answered(&mut self, id: MessageId, status: Status) {
        if let Some((seq, Some(out))) = self.in_flight
            && out == id
        {
            self.status[seq] = status;
            self.in_flight = None;
        }
    }

    fn arrived(&mut self, body: &[u8]) {
        let (Some(sender), Some(seq), Some(sent)) = (
            body.get(0..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes),
            body.get(4..8).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes),
            body.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes),
        ) else {
            return;
        };
        if sender as usize != (self.index ^ 1) {
            return;
        }
        let Some(count) = self.arrivals.get_mut(seq as usize) else { return };
        *count += 1;
        if *count == 1 {
            let now = self.shared.now_ns();
            self.latencies.push(now.saturating_sub(sent));
            self.shared.received.fetch_add(1, Ordering::AcqRel);
            self.shared.last_arrival_ns.fetch_max(now, Ordering::AcqRel);
        }
    }
}

/// One link frame (SPEC.md §3) into `frame`, which grows only if it is too small; `Err` on EOF or
/// a bad header.
async fn read_frame<R: AsyncRead + Unpin>(read: &mut R, frame: &mut Vec<u8>) -> Result<(), ()> {
    let mut header = [0u8; HEADER_LEN];
    read.read_exact(&mut header).await.map_err(|_| ())?;
    let len = frame_len::<LinkFrame>(&header).map_err(|_| ())?.ok_or(())?;
    frame.clear();
    frame.extend_from_slice(&header);
    frame.resize(len, 0);
    let body = frame.get_mut(HEADER_LEN..).ok_or(())?;
    read.read_exact(body).await.map(|_| ()).map_err(|_| ())
}

/// The relay the load runs against.
struct Relay {
    addr: SocketAddr,
    key: PublicKey,
    pid: Option<u32>,
    spawned: Option<Spawned>,
}

struct Spawned {
    exe: PathBuf,
    dir: TempDir,
    child: Option<Child>,
    max_conn: usize,
}

/// A relay this command spawned dies with the run whenever the run returns, with its report or an
/// error (no clients ready in time, a stalled run, a relay that did not start): none may leave it
/// listening. (A signal that kills this process runs no `Drop`; the relay then outlives it.)
impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Relay {
    /// Starts (or restarts) the spawned relay on its data directory and reads its key and address.
    /// The child is kept before its first line is read, so that whatever goes wrong from there —
    /// a relay that says something else, or nothing for [`RELAY_START`] — the relay is killed with
    /// the rest ([`Spawned`]'s `Drop`).
    async fn start(&mut self) -> Result<(), LoadError> {
        let Some(spawned) = self.spawned.as_mut() else { return Ok(()) };
        let mut child = spawn_relay(&spawned.exe, &spawned.dir.0, spawned.max_conn)?;
        let stdout = child.stdout.take();
        self.pid = Some(child.id());
        spawned.child = Some(child);
        let stdout = stdout.ok_or_else(|| err("relay without stdout"))?;
        let said = tokio::time::timeout(
            RELAY_START,
            tokio::task::spawn_blocking(move || read_relay_greeting(stdout)),
        )
        .await
        .map_err(|_| err(format!("the relay said nothing within {RELAY_START:?}")))?
        .map_err(err)??;
        (self.key, self.addr) = said;
        Ok(())
    }

    /// SIGKILL, then reap.
    async fn kill(&mut self) -> Result<(), LoadError> {
        let Some(mut child) = self.spawned.as_mut().and_then(|s| s.child.take()) else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            child.kill()?;
            child.wait().map(|_| ())
        })
        .await
        .map_err(err)?
        .map_err(err)
    }

    async fn stop(&mut self) {
        let _ = self.kill().await;
    }

    /// The relay's CPU time so far, clock ticks.
    fn cpu(&self) -> Option<u64> {
        cpu_ticks(&self.pid?.to_string())
    }

    /// `VmHWM` of the relay process, KiB.
    fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// How long a spawned relay may take to print its key and address.
const RELAY_START: Duration = Duration::from_secs(30);

fn spawn_relay(exe: &Path, dir: &Path, max_conn: usize) -> Result<Child, LoadError> {
    Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-connections",
            &max_conn.to_string(),
            "--data",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| err(format!("cannot start {}: {e}", exe.display())))
}

/// The relay's first two lines: its public key and the address it listens on.
fn read_relay_greeting(stdout: ChildStdout) -> Result<(PublicKey, SocketAddr), LoadError> {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut line = || -> Result<String, LoadError> {
        lines.next().ok_or_else(|| err("the relay exited before it listened"))?.map_err(err)
    };
    let key_line = line()?;
    let key: [u8; 32] = key_line
        .strip_prefix("public key: ")
        .and_then(|k| hex::decode(k).ok())
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| err(format!("relay said {key_line:?}")))?;
    let addr_line = line()?;
    let addr = addr_line
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| err(format!("relay said {addr_line:?}")))?;
    Ok((PublicKey::from_bytes(key), addr))
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, LoadError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("e2e-ref-load-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(err)?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The floor.

/// Times the primitive work of one relayed message, as `floor.rs` counts it for `relay/hop/SIZE`
/// and `relay/e2e/SIZE`: three channel messages — sender → relay, relay → recipient, the `Ack` —
/// each one `aead(n)` (a seal plus an open of its plaintext, `n` as sent), and for e2e also the
/// ratchet's symmetric step: 4 HMAC (`KDF_CK`, both sides), 2 HKDF (message keys) and one
/// `aead(size)`. Each operation is the lowest of three medians of 31 batches, on one core.
fn measure_floor(e2e: bool, size: usize) -> Result<Floor, LoadError> {
    let plaintexts = channel_plaintexts(e2e, size)?;
    let mut ops: Vec<(usize, String, f64)> = Vec::new();
    for n in plaintexts {
        ops.push((1, format!("aead({n})"), f64::INFINITY));
    }
    if e2e {
        ops.push((4, "hmac".into(), f64::INFINITY));
        ops.push((2, "hkdf".into(), f64::INFINITY));
        ops.push((1, format!("aead({size})"), f64::INFINITY));
    }
    // Three rounds over every operation; each keeps its lowest median (as the benches' floor does:
    // other work on the machine only ever slows a measurement down).
    for _ in 0..3 {
        for (i, op) in ops.iter_mut().enumerate() {
            let ns = match i {
                0..3 => {
                    let n = plaintexts[i];
                    median_ns(|| aead(n))
                }
                3 => median_ns(hmac),
                4 => median_ns(hkdf),
                _ => median_ns(|| aead(size)),
            };
            op.2 = op.2.min(ns);
        }
    }
    let ns = ops.iter().map(|(count, _, ns)| *count as f64 * ns).sum();
    let text: Vec<String> =
        ops.iter().map(|(count, op, ns)| format!("{count} {op} ({ns:.0} ns)")).collect();
    Ok(Floor { ops: text.join(" + "), ns })
}

/// The median over 31 batches of the time one call of `f` takes, in ns.
fn median_ns<T>(mut f: impl FnMut() -> T) -> f64 {
    // A batch of about 2 ms.
    let probe = Instant::now();
    let mut calls = 0u32;
    while probe.elapsed() < Duration::from_millis(2) {
        std::hint::black_box(f());
        calls += 1;
    }
    let mut samples: Vec<f64> = (0..31)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                std::hint::black_box(f());
            }
            t.elapsed().as_nanos() as f64 / f64::from(calls)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn aead(n: usize) -> Result<(), ()> {
    use chacha20poly1305::aead::{AeadInOut, KeyInit};
    use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
    let key = Key::from([5u8; 32]);
    let nonce = Nonce::from([0u8; 12]);
    let mut buffer = vec![6u8; n];
    let tag: Tag = ChaCha20Poly1305::new(std::hint::black_box(&key))
        .encrypt_inout_detached(&nonce, &[], buffer.as_mut_slice().into())
        .map_err(|_| ())?;
    ChaCha20Poly1305::new(std::hint::black_box(&key))
        .decrypt_inout_detached(&nonce, &[], buffer.as_mut_slice().into(), &tag)
        .map_err(|_| ())
}

fn hmac() -> Result<[u8; 32], ()> {
    use hmac::{KeyInit, Mac};
    let key = [3u8; 32];
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(std::hint::black_box(&key))
        .map_err(|_| ())?;
    mac.update(&[0x01]);
    Ok(mac.finalize().into_bytes().into())
}

fn hkdf() -> Result<[u8; 64], ()> {
    let (salt, ikm, info) = ([1u8; 32], [2u8; 32], *b"e2e-ref/ratchet/message/v1");
    let mut okm = [0u8; 64];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(std::hint::black_box(&salt)), std::hint::black_box(&ikm))
        .expand(&info, &mut okm)
        .map(|()| okm)
        .map_err(|_| ())
}

/// The plaintext bytes of the three channel messages of one relayed message (as
/// `benches/protocol/relay.rs` finds them): in-process, a server and two clients in the steady
/// state (e2e: one message each way first).
fn channel_plaintexts(e2e: bool, size: usize) -> Result<[usize; 3], LoadError> {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut server = Server::new(PrivateKey::generate(&mut rng));
    let mut clients = Vec::new();
    for who in ["alice", "bob"] {
        let name = Name::new(who).map_err(err)?;
        let key = PrivateKey::generate(&mut rng);
        clients.push(if e2e {
            Client::with_e2e(name, key, server.public_key(), Peers::generate(&mut rng))
        } else {
            Client::new(name, key, server.public_key())
        });
    }
    // Delivers `frame` from client `from` and everything that follows; returns the frames the
    // server sent (link, plaintext length) in answer to `frame` itself.
    fn deliver(
        server: &mut Server,
        clients: &mut [Client],
        rng: &mut ChaCha20Rng,
        from: usize,
        frame: &[u8],
    ) -> Result<Vec<(usize, usize)>, LoadError> {
        let out = server.handle(LinkId(from as u64), frame, rng).map_err(err)?;
        let mut sent = Vec::new();
        for (link, frame) in out.transmit {
            let to = usize::try_from(link.0).map_err(err)?;
            sent.push((to, frame.len() - HEADER_LEN - 16));
            let client = clients.get_mut(to).ok_or_else(|| err("no such link"))?;
            let reply = client.handle(&frame, rng).map_err(err)?;
            for frame in reply.transmit {
                deliver(server, clients, rng, to, &frame)?;
            }
        }
        Ok(sent)
    }
    for i in 0..2 {
        let init = clients[i].connect(&mut rng).map_err(err)?;
        deliver(&mut server, &mut clients, &mut rng, i, &init)?;
    }
    let alice = Name::new("alice").map_err(err)?;
    let bob = Name::new("bob").map_err(err)?;
    let body = |n: usize| Body::new(vec![7u8; n]).map_err(err);
    if e2e {
        for i in 0..2 {
            let upload = clients[i].upload_bundle().map_err(err)?;
            deliver(&mut server, &mut clients, &mut rng, i, &upload)?;
        }
        for (i, to) in [(0, &bob), (1, &alice)] {
            let out = clients[i].send_e2e(to, body(8)?, &mut rng).map_err(err)?;
            for frame in out.transmit {
                deliver(&mut server, &mut clients, &mut rng, i, &frame)?;
            }
        }
    }
    let frame = if e2e {
        let out = clients[0].send_e2e(&bob, body(size)?, &mut rng).map_err(err)?;
        out.transmit.into_iter().next().ok_or_else(|| err("nothing sent"))?
    } else {
        clients[0].send(&bob, body(size)?).map_err(err)?.1
    };
    let answers = deliver(&mut server, &mut clients, &mut rng, 0, &frame)?;
    let to_bob = answers.iter().find(|(to, _)| *to == 1).map_or(0, |a| a.1);
    let ack = answers.iter().find(|(to, _)| *to == 0).map_or(0, |a| a.1);
    Ok([frame.len() - HEADER_LEN - 16, to_bob, ack])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether process `pid` still exists (a zombie counts: it has not been reaped).
    fn exists(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn a_spawned_relay_is_killed_and_reaped_when_the_run_drops_it() {
        let child = Command::new("sleep").arg("600").spawn().unwrap();
        let pid = child.id();
        let spawned = Spawned {
            exe: PathBuf::from("sleep"),
            dir: TempDir::new().unwrap(),
            child: Some(child),
            max_conn: 1,
        };
        assert!(exists(pid));
        drop(spawned);
        assert!(!exists(pid), "the relay outlived the run");
    }

    /// A relay that starts but says something else than its key is an error, and is killed with
    /// the run: it was kept before its first line was read.
    #[test]
    fn a_relay_that_starts_wrong_is_killed_with_the_run() {
        use std::os::unix::fs::PermissionsExt as _;
        let scripts = TempDir::new().unwrap();
        let exe = scripts.0.join("not-a-relay");
        std::fs::write(&exe, "#!/bin/sh\necho hello\nexec sleep 600\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Before the relay: on a failed assertion the relay (and its child) must go first, or the
        // runtime waits for the blocking read of the child's output.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut relay = Relay {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            key: PublicKey::from_bytes([9; 32]),
            pid: None,
            spawned: Some(Spawned { exe, dir: TempDir::new().unwrap(), child: None, max_conn: 1 }),
        };
        let error = runtime.block_on(relay.start()).unwrap_err();
        assert_eq!(error.0, "relay said \"hello\"");
        let pid = relay.pid.unwrap();
        assert!(exists(pid), "the script was meant to stay up");
        drop(relay);
        assert!(!exists(pid), "the relay outlived the run");
    }
}
