//! `e2e-ref interop`: drives client implementations that speak the shim protocol of
//! spec/INTEROP.md through a real relay (`e2e-ref serve`, started and restarted by the harness) and
//! prints which scenarios pass for every ordered pairing (Alice's implementation, Bob's).
//!
//! Everything is bounded: each step waits at most [`STEP`], each scenario at most [`SCENARIO`];
//! a child that hangs is killed. Nothing is reported as passed that did not run to its end.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The longest one step (an answer, an awaited event) may take.
pub const STEP: Duration = Duration::from_secs(15);
/// The longest one scenario may take.
pub const SCENARIO: Duration = Duration::from_secs(60);
/// How long the harness listens for something that must *not* happen.
pub const QUIET: Duration = Duration::from_millis(500);

/// `e2e-ref interop` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct InteropArgs {
    /// A client implementation: `NAME=COMMAND` (COMMAND is split on spaces and must speak the
    /// shim protocol). Repeatable; default: `rust=<this executable> shim`.
    #[arg(long = "impl", value_name = "NAME=COMMAND")]
    pub impls: Vec<String>,
    /// Run only the scenarios with these names (repeatable).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print every line exchanged with the clients on standard error.
    #[arg(long)]
    pub verbose: bool,
}

/// One client implementation under test.
#[derive(Debug, Clone)]
pub struct Implementation {
    /// Its name in the matrix.
    pub name: String,
    /// The program and its arguments.
    pub command: Vec<String>,
}

/// The scenarios, in the order they run: name and what it shows.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("hop_a_to_b", "hop: Alice's message reaches Bob, labelled hop, and Alice gets Relayed"),
    ("hop_b_to_a", "hop: Bob's message reaches Alice"),
    (
        "hop_offline_mailbox",
        "hop: a message to offline Bob is Queued and delivered when he connects",
    ),
    (
        "e2e_first_contact",
        "e2e: Alice fetches Bob's bundle, starts a session, Bob receives it as e2e",
    ),
    ("e2e_reply", "e2e: Bob replies and Alice answers (two DH ratchet turns)"),
    ("e2e_offline_first_contact", "e2e: first contact with offline Bob goes through his mailbox"),
    (
        "e2e_out_of_order",
        "e2e: two envelopes sealed 1, 2 and submitted 2, 1 both open, in arrival order",
    ),
    (
        "e2e_replay_refused",
        "e2e: an envelope submitted twice is accepted once; the session goes on",
    ),
    ("e2e_burst_both_ways", "e2e: messages in flight both ways at once, several ratchet turns"),
    (
        "safety_number_verify",
        "e2e: both sides compute the same safety number; a wrong one is not verified",
    ),
    (
        "bad_bundle_refused",
        "e2e: a relay that corrupts Bob's bundle signature: Alice sends nothing",
    ),
    (
        "mitm_detected",
        "e2e: a relay that substitutes bundles: safety numbers differ; once verified, refused",
    ),
    (
        "mitm_refused_when_verified",
        "e2e: Alice pinned Bob's real identity beforehand: the substituted bundle is refused, nothing is sent",
    ),
    ("server_restart", "the relay is killed mid-conversation and restarted: queued mail survives"),
    ("client_restart", "Alice's process exits mid-session and restarts from her state file"),
];

type Outcome = Result<(), String>;

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Alice's implementation.
    pub alice: String,
    /// Bob's implementation.
    pub bob: String,
    /// The scenario.
    pub scenario: String,
    /// `None`: passed; `Some(why)`: failed, or not run and why.
    pub failure: Option<String>,
    /// Whether the scenario ran at all.
    pub ran: bool,
    /// How long it took.
    pub millis: u128,
}

/// The harness entry point.
#[must_use]
pub fn main(args: &InteropArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("e2e-ref: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut impls = Vec::new();
    for spec in &args.impls {
        let Some((name, command)) = spec.split_once('=') else {
            eprintln!("e2e-ref: --impl takes NAME=COMMAND, got {spec:?}");
            return ExitCode::FAILURE;
        };
        let command: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        if command.is_empty() {
            eprintln!("e2e-ref: --impl {name}: empty command");
            return ExitCode::FAILURE;
        }
        impls.push(Implementation { name: name.to_owned(), command });
    }
    if impls.is_empty() {
        impls.push(Implementation {
            name: "rust".into(),
            command: vec![exe.display().to_string(), "shim".into()],
        });
    }
    for wanted in &args.scenarios {
        if !SCENARIOS.iter().any(|(name, _)| name == wanted) {
            eprintln!("e2e-ref: no scenario {wanted:?}");
            return ExitCode::FAILURE;
        }
    }
    let chosen: Vec<&str> = SCENARIOS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == name))
        .collect();
    let mut cells = Vec::new();
    for alice in &impls {
        for bob in &impls {
            for scenario in &chosen {
                let began = Instant::now();
                let ctx = Ctx { exe: exe.clone(), alice, bob, verbose: args.verbose };
                let outcome = ctx.run(scenario);
                let cell = Cell {
                    alice: alice.name.clone(),
                    bob: bob.name.clone(),
                    scenario: (*scenario).to_owned(),
                    ran: true,
                    failure: outcome.err(),
                    millis: began.elapsed().as_millis(),
                };
                if !args.json {
                    eprintln!(
                        "{} alice={} bob={} {} ({} ms){}",
                        if cell.failure.is_none() { "PASS" } else { "FAIL" },
                        cell.alice,
                        cell.bob,
                        cell.scenario,
                        cell.millis,
                        cell.failure.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
                    );
                }
                cells.push(cell);
            }
        }
    }
    let failed = cells.iter().filter(|c| c.failure.is_some()).count();
    if args.json {
        let value = json!({
            "implementations": impls.iter().map(|i| json!({"name": i.name, "command": i.command})).collect::<Vec<_>>(),
            "scenarios": chosen,
            "results": cells.iter().map(|c| json!({
                "alice": c.alice, "bob": c.bob, "scenario": c.scenario,
                "passed": c.failure.is_none() && c.ran, "failure": c.failure, "millis": c.millis,
            })).collect::<Vec<_>>(),
            "passed": cells.len() - failed,
            "failed": failed,
        });
        println!("{value:#}");
    } else {
        print!("{}", matrix(&impls, &chosen, &cells));
        println!("interop: {} passed, {} failed", cells.len() - failed, failed);
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The text matrix: one row per scenario, one column per pairing `alice→bob`.
#[must_use]
pub fn matrix(impls: &[Implementation], scenarios: &[&str], cells: &[Cell]) -> String {
    let mut pairs = Vec::new();
    for a in impls {
        for b in impls {
            pairs.push((a.name.clone(), b.name.clone()));
        }
    }
    let width = scenarios.iter().map(|s| s.len()).max().unwrap_or(8).max(8);
    let mut out = format!("{:width$}", "scenario");
    for (a, b) in &pairs {
        out += &format!("  {:>14}", format!("{a}→{b}"));
    }
    out.push('\n');
    for scenario in scenarios {
        out += &format!("{scenario:width$}");
        for (a, b) in &pairs {
            let mark = cells
                .iter()
                .find(|c| &c.alice == a && &c.bob == b && c.scenario == *scenario)
                .map_or("-", |c| if c.failure.is_none() && c.ran { "pass" } else { "FAIL" });
            out += &format!("  {mark:>14}");
        }
        out.push('\n');
    }
    out
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("e2e-interop-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("temp dir: {e}"))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child whose standard output is read line by line on a thread.
struct Proc {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    verbose: bool,
}

impl Proc {
    fn spawn(label: &str, command: &[String], verbose: bool) -> Result<Self, String> {
        let (program, args) = command.split_first().ok_or("empty command")?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if verbose { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .map_err(|e| format!("{label}: cannot start {program}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Self { label: label.to_owned(), child, stdin, lines, verbose })
    }

    fn line(&mut self, deadline: Instant) -> Result<String, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                if self.verbose {
                    eprintln!("  {} > {line}", self.label);
                }
                Ok(line)
            }
            Err(RecvTimeoutError::Timeout) => Err(format!("{}: timed out", self.label)),
            Err(RecvTimeoutError::Disconnected) => Err(format!("{}: its output ended", self.label)),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The relay, as the real `e2e-ref serve`.
struct Relay {
    proc: Proc,
    addr: String,
    key: String,
}

impl Relay {
    fn start(
        exe: &Path,
        data: &Path,
        listen: &str,
        extra: &[&str],
        verbose: bool,
    ) -> Result<Self, String> {
        let mut command = vec![
            exe.display().to_string(),
            "serve".into(),
            "--listen".into(),
            listen.into(),
            "--data".into(),
            data.display().to_string(),
            // Its log says when a link is active (`NAME online`): see `World::connect`.
            "--log".into(),
        ];
        command.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut proc = Proc::spawn("relay", &command, verbose)?;
        let deadline = Instant::now() + STEP;
        let (mut key, mut addr) = (None, None);
        while key.is_none() || addr.is_none() {
            let line = proc.line(deadline)?;
            if let Some(k) = line.strip_prefix("public key: ") {
                key = Some(k.trim().to_owned());
            } else if let Some(a) = line.strip_prefix("listening on ") {
                addr = Some(a.trim().to_owned());
            }
        }
        let (Some(key), Some(addr)) = (key, addr) else { return Err("relay: no address".into()) };
        Ok(Self { proc, addr, key })
    }

    /// Waits for the log line saying `name`'s link is active (SPEC.md §5.1: only after `Ready`):
    /// `link N: NAME online, ...`. Returns `link N`.
    fn wait_online(&mut self, name: &str) -> Result<String, String> {
        let needle = format!(": {name} online,");
        self.wait_line(&format!("{name} online"), |line| {
            line.split_once(&needle).map(|(link, _)| link.to_owned())
        })
    }

    /// Waits for the log line saying `link` (`link N`) closed.
    fn wait_closed(&mut self, link: &str) -> Outcome {
        let needle = format!("{link}: closed");
        self.wait_line(&needle.clone(), |line| (line == needle).then_some(()))
    }

    fn wait_line<T>(
        &mut self,
        what: &str,
        matches: impl Fn(&str) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + STEP;
        loop {
            let line = self.proc.line(deadline).map_err(|e| format!("waiting for {what}: {e}"))?;
            if let Some(found) = matches(&line) {
                return Ok(found);
            }
        }
    }
}

/// One client under the harness: the process and the events it printed but no step took yet.
struct Peer {
    proc: Proc,
    name: String,
    pending: VecDeque<Value>,
}

impl Peer {
    fn spawn(imp: &Implementation, name: &str, verbose: bool) -> Result<Self, String> {
        let proc = Proc::spawn(&format!("{name}({})", imp.name), &imp.command, verbose)?;
        Ok(Self { proc, name: name.to_owned(), pending: VecDeque::new() })
    }

    fn next(&mut self, deadline: Instant) -> Result<Value, String> {
        loop {
            let line = self.proc.line(deadline)?;
            if line.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&line)
                .map_err(|e| format!("{}: not a JSON line ({e}): {line}", self.proc.label));
        }
    }

    /// Sends `command`, returns its answer (`ok` true or false); events met meanwhile are kept.
    fn ask(&mut self, command: &Value) -> Result<Value, String> {
        if self.proc.verbose {
            eprintln!("  {} < {command}", self.proc.label);
        }
        let stdin = self.proc.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: {e}", self.proc.label))?;
        let deadline = Instant::now() + STEP;
        loop {
            let value = self.next(deadline)?;
            if value.get("ok").is_some() {
                return Ok(value);
            }
            self.pending.push_back(value);
        }
    }

    /// Like [`Peer::ask`], but the answer must be `ok: true`.
    fn ok(&mut self, command: &Value) -> Result<Value, String> {
        let answer = self.ask(command)?;
        if answer.get("ok") == Some(&Value::Bool(true)) {
            Ok(answer)
        } else {
            Err(format!("{}: {command} answered {answer}", self.proc.label))
        }
    }

    /// Waits for the first event that `matches`; earlier events stay pending.
    fn wait(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Result<Value, String> {
        if let Some(i) = self.pending.iter().position(&matches) {
            return self.pending.remove(i).ok_or_else(|| "lost event".into());
        }
        let deadline = Instant::now() + STEP;
        loop {
            let value = self.next(deadline).map_err(|e| format!("waiting for {what}: {e}"))?;
            if matches(&value) {
                return Ok(value);
            }
            self.pending.push_back(value);
        }
    }

    /// Fails if an event that `matches` arrives within [`QUIET`] (or is pending).
    fn never(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Outcome {
        if let Some(v) = self.pending.iter().find(|v| matches(v)) {
            return Err(format!("{}: unexpected {what}: {v}", self.proc.label));
        }
        let deadline = Instant::now() + QUIET;
        loop {
            match self.next(deadline) {
                Ok(value) if matches(&value) => {
                    return Err(format!("{}: unexpected {what}: {value}", self.proc.label));
                }
                Ok(value) => self.pending.push_back(value),
                Err(_) => return Ok(()),
            }
        }
    }

    fn event(&mut self, kind: &str) -> Result<Value, String> {
        let k = kind.to_owned();
        self.wait(kind, move |v| v["event"] == k.as_str())
    }

    fn received(&mut self, from: &str, text: &str, protection: &str) -> Outcome {
        let (f, t) = (from.to_owned(), text.to_owned());
        let got = self.wait(&format!("received {text:?}"), move |v| {
            v["event"] == "received" && v["text"] == t.as_str() && v["from"] == f.as_str()
        })?;
        if got["protection"] != protection {
            return Err(format!(
                "{}: {text:?} arrived with protection {}",
                self.name, got["protection"]
            ));
        }
        Ok(())
    }

    fn quit(&mut self) {
        let _ = self.ask(&json!({"cmd": "quit"}));
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.proc.kill();
    }
}

struct Ctx<'a> {
    exe: PathBuf,
    alice: &'a Implementation,
    bob: &'a Implementation,
    verbose: bool,
}

/// A running scenario: the relay, Alice, Bob, their files.
struct World<'a> {
    ctx: &'a Ctx<'a>,
    relay: Relay,
    relay_extra: Vec<&'static str>,
    alice: Peer,
    bob: Peer,
    e2e: bool,
    started: Instant,
    /// Bob's e2e identity as his `start` answered it (hex), or empty.
    bob_identity: String,
    /// The relay's names (`link N`) for Alice's and Bob's current connections.
    links: (String, String),
    /// Last: fields drop in order, so the relay and the clients are killed before it is removed.
    dir: TempDir,
}

impl<'a> World<'a> {
    fn new(ctx: &'a Ctx<'a>, e2e: bool, relay_extra: &[&'static str]) -> Result<Self, String> {
        let dir = TempDir::new()?;
        let relay =
            Relay::start(&ctx.exe, &dir.0.join("relay"), "127.0.0.1:0", relay_extra, ctx.verbose)?;
        let alice = Peer::spawn(ctx.alice, "alice", ctx.verbose)?;
        let bob = Peer::spawn(ctx.bob, "bob", ctx.verbose)?;
        let mut world = Self {
            ctx,
            dir,
            relay,
            relay_extra: relay_extra.to_vec(),
            alice,
            bob,
            e2e,
            started: Instant::now(),
            bob_identity: String::new(),
            links: (String::new(), String::new()),
        };
        world.start_alice()?;
        world.start_bob()?;
        Ok(world)
    }

    fn start_command(&self, name: &str) -> Value {
        json!({
            "cmd": "start",
            "server": self.relay.addr,
            "server_key": self.relay.key,
            "name": name,
            "state": self.dir.0.join(format!("{name}.state")).display().to_string(),
            "e2e": self.e2e,
        })
    }

    fn start_alice(&mut self) -> Outcome {
        let c = self.start_command("alice");
        self.alice.ok(&c).map(drop)
    }

    fn start_bob(&mut self) -> Outcome {
        let c = self.start_command("bob");
        let answer = self.bob.ok(&c)?;
        self.bob_identity = answer["identity"].as_str().unwrap_or_default().to_owned();
        Ok(())
    }

    fn check_time(&self) -> Outcome {
        if self.started.elapsed() > SCENARIO {
            Err(format!("scenario took over {} s", SCENARIO.as_secs()))
        } else {
            Ok(())
        }
    }

    /// Connects `who` and waits until it is ready: `connected`, and in e2e `bundle_stored`.
    fn connect(&mut self, who: Who) -> Outcome {
        let e2e = self.e2e;
        let peer = self.peer(who);
        peer.ok(&json!({"cmd": "connect"}))?;
        peer.event("connected")?;
        if e2e {
            peer.event("bundle_stored")?;
        }
        // `connected` means the client sent `Ready`; the relay binds the name only when it reads
        // it. Its log tells when it has, so that a message to this peer is not `UnknownRecipient`.
        let link = self.relay.wait_online(who.name())?;
        match who {
            Who::Alice => self.links.0 = link,
            Who::Bob => self.links.1 = link,
        }
        Ok(())
    }

    /// Disconnects `who` and waits until the relay has seen the connection close (its log line
    /// `link N: closed`): until then a message to `who` would still be relayed to the dead link.
    fn disconnect(&mut self, who: Who) -> Outcome {
        self.peer(who).ok(&json!({"cmd": "disconnect"}))?;
        let link = match who {
            Who::Alice => self.links.0.clone(),
            Who::Bob => self.links.1.clone(),
        };
        self.relay.wait_closed(&link)
    }

    fn peer(&mut self, who: Who) -> &mut Peer {
        match who {
            Who::Alice => &mut self.alice,
            Who::Bob => &mut self.bob,
        }
    }

    /// `from` sends `text` to the other and the other receives it; `from` sees it acked with
    /// `status`.
    fn say(&mut self, from: Who, text: &str, status: Option<&str>) -> Outcome {
        let protection = if self.e2e { "e2e" } else { "hop" };
        let (to, other) = (from.other().name(), from.other());
        self.send(from, text, status)?;
        self.peer(other).received(from.name(), text, protection)?;
        let _ = to;
        self.check_time()
    }

    /// `from` sends `text`; its ack must say `status` (if given).
    fn send(&mut self, from: Who, text: &str, status: Option<&str>) -> Outcome {
        let to = from.other().name();
        let peer = self.peer(from);
        let answer = peer.ok(&json!({"cmd": "send", "to": to, "text": text}))?;
        let id = match answer.get("id").and_then(Value::as_u64) {
            Some(id) => id,
            None => peer.event("sent")?["id"].as_u64().ok_or("sent without id")?,
        };
        let acked = peer.wait("acked", move |v| v["event"] == "acked" && v["id"] == id)?;
        if let Some(status) = status
            && acked["status"] != status
        {
            return Err(format!(
                "{} acked {text:?} as {}, not {status}",
                from.name(),
                acked["status"]
            ));
        }
        Ok(())
    }

    fn restart_relay(&mut self) -> Outcome {
        let listen = self.relay.addr.clone();
        self.relay.proc.kill();
        // Same data directory, same port: the clients' `server` stays right.
        let deadline = Instant::now() + STEP;
        loop {
            match Relay::start(
                &self.ctx.exe,
                &self.dir.0.join("relay"),
                &listen,
                &self.relay_extra,
                self.ctx.verbose,
            ) {
                Ok(relay) => {
                    self.relay = relay;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(format!("relay restart: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn safety_number(&mut self, who: Who) -> Result<String, String> {
        let peer = who.other().name();
        let answer = self.peer(who).ok(&json!({"cmd": "safety_number", "peer": peer}))?;
        let number = answer["number"].as_str().ok_or("no number")?.to_owned();
        if number.len() != 60 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{}: safety number {number:?} is not 60 digits", who.name()));
        }
        Ok(number)
    }

    fn verify(&mut self, who: Who, number: &str) -> Result<bool, String> {
        let peer = who.other().name();
        let answer =
            self.peer(who).ok(&json!({"cmd": "verify", "peer": peer, "number": number}))?;
        answer["verified"].as_bool().ok_or_else(|| "no verified".into())
    }

    /// Both connect, Alice starts the session, Bob replies: an established e2e conversation.
    fn converse(&mut self) -> Outcome {
        self.connect(Who::Bob)?;
        self.connect(Who::Alice)?;
        self.say(Who::Alice, "hello bob", Some("Relayed"))?;
        self.say(Who::Bob, "hello alice", Some("Relayed"))
    }

    fn finish(mut self) -> Outcome {
        self.alice.quit();
        self.bob.quit();
        self.check_time()
    }
}

#[derive(Clone, Copy)]
enum Who {
    Alice,
    Bob,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Self::Alice => "alice",
            Self::Bob => "bob",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Alice => Self::Bob,
            Self::Bob => Self::Alice,
        }
    }
}

use Who::{Alice, Bob};

impl Ctx<'_> {
    fn run(&self, scenario: &str) -> Outcome {
        match scenario {
            "hop_a_to_b" | "hop_b_to_a" => {
                let mut w = World::new(self, false, &[])?;
                w.connect(Bob)?;
                w.connect(Alice)?;
                let from = if scenario == "hop_a_to_b" { Alice } else { Bob };
                w.say(from, "hop hello", Some("Relayed"))?;
                w.finish()
            }
            "hop_offline_mailbox" => {
                let mut w = World::new(self, false, &[])?;
                w.connect(Bob)?;
                w.disconnect(Bob)?;
                w.connect(Alice)?;
                w.send(Alice, "while you were out", Some("Queued"))?;
                w.connect(Bob)?;
                w.bob.received("alice", "while you were out", "hop")?;
                w.finish()
            }
            "e2e_first_contact" => {
                let mut w = World::new(self, true, &[])?;
                w.connect(Bob)?;
                w.connect(Alice)?;
                w.say(Alice, "first contact", Some("Relayed"))?;
                w.alice.wait("session_started", |v| {
                    v["event"] == "session_started" && v["peer"] == "bob"
                })?;
                w.bob.wait("session_started", |v| {
                    v["event"] == "session_started" && v["peer"] == "alice"
                })?;
                w.finish()
            }
            "e2e_reply" => {
                let mut w = World::new(self, true, &[])?;
                w.converse()?;
                w.say(Alice, "and back again", Some("Relayed"))?;
                w.finish()
            }
            "e2e_offline_first_contact" => {
                let mut w = World::new(self, true, &[])?;
                w.connect(Bob)?;
                w.disconnect(Bob)?;
                w.connect(Alice)?;
                w.send(Alice, "mailbox first contact", Some("Queued"))?;
                w.connect(Bob)?;
                w.bob.received("alice", "mailbox first contact", "e2e")?;
                w.say(Bob, "got it", Some("Relayed"))?;
                w.finish()
            }
            "e2e_out_of_order" => {
                let mut w = World::new(self, true, &[])?;
                w.converse()?;
                let one =
                    w.alice.ok(&json!({"cmd": "seal", "to": "bob", "text": "one"}))?["handle"]
                        .clone();
                let two =
                    w.alice.ok(&json!({"cmd": "seal", "to": "bob", "text": "two"}))?["handle"]
                        .clone();
                w.alice.ok(&json!({"cmd": "submit", "handle": two}))?;
                w.bob.received("alice", "two", "e2e")?;
                w.alice.ok(&json!({"cmd": "submit", "handle": one}))?;
                w.bob.received("alice", "one", "e2e")?;
                w.say(Bob, "both arrived", Some("Relayed"))?;
                w.finish()
            }
            "e2e_replay_refused" => {
                let mut w = World::new(self, true, &[])?;
                w.converse()?;
                let h = w.alice.ok(&json!({"cmd": "seal", "to": "bob", "text": "once only"}))?["handle"].clone();
                w.alice.ok(&json!({"cmd": "submit", "handle": h}))?;
                w.bob.received("alice", "once only", "e2e")?;
                w.alice.ok(&json!({"cmd": "submit", "handle": h}))?;
                let dropped = w.bob.event("dropped")?;
                if dropped["error"] != "E2e" {
                    return Err(format!("bob dropped the replay as {}, not E2e", dropped["error"]));
                }
                w.bob.never("second delivery", |v| {
                    v["event"] == "received" && v["text"] == "once only"
                })?;
                w.say(Alice, "after the replay", Some("Relayed"))?;
                w.say(Bob, "still here", Some("Relayed"))?;
                w.finish()
            }
            "e2e_burst_both_ways" => {
                let mut w = World::new(self, true, &[])?;
                w.converse()?;
                for round in 0..3 {
                    for i in 0..3 {
                        w.alice.ok(
                            &json!({"cmd": "send", "to": "bob", "text": format!("a{round}.{i}")}),
                        )?;
                        w.bob.ok(
                            &json!({"cmd": "send", "to": "alice", "text": format!("b{round}.{i}")}),
                        )?;
                    }
                    for i in 0..3 {
                        w.bob.received("alice", &format!("a{round}.{i}"), "e2e")?;
                        w.alice.received("bob", &format!("b{round}.{i}"), "e2e")?;
                    }
                }
                w.finish()
            }
            "safety_number_verify" => {
                let mut w = World::new(self, true, &[])?;
                w.converse()?;
                let (a, b) = (w.safety_number(Alice)?, w.safety_number(Bob)?);
                if a != b {
                    return Err(format!("safety numbers differ without a MITM: {a} / {b}"));
                }
                let mut wrong = a.clone().into_bytes();
                wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
                let wrong = String::from_utf8(wrong).map_err(|e| e.to_string())?;
                if w.verify(Alice, &wrong)? {
                    return Err("alice verified a wrong safety number".into());
                }
                if !w.verify(Alice, &a)? || !w.verify(Bob, &b)? {
                    return Err("the right safety number did not verify".into());
                }
                w.say(Alice, "verified", Some("Relayed"))?;
                w.finish()
            }
            "bad_bundle_refused" => {
                let mut w = World::new(self, true, &["--adversary", "bad-bundle"])?;
                w.connect(Bob)?;
                w.connect(Alice)?;
                w.alice.ok(&json!({"cmd": "send", "to": "bob", "text": "into a bad bundle"}))?;
                let failed = w.alice.event("send_failed")?;
                if failed["peer"] != "bob" || failed["error"] != "E2e" {
                    return Err(format!("alice: unexpected {failed}"));
                }
                w.bob.never("a message", |v| v["event"] == "received")?;
                w.finish()
            }
            "mitm_detected" => {
                let mut w = World::new(self, true, &["--adversary", "mitm=alice,bob"])?;
                w.converse()?;
                let (a, b) = (w.safety_number(Alice)?, w.safety_number(Bob)?);
                if a == b {
                    return Err("safety numbers agree under a bundle-substituting relay".into());
                }
                // Each side verifies what the other reads out: neither number verifies.
                if w.verify(Alice, &b)? || w.verify(Bob, &a)? {
                    return Err("a number read out across a MITM verified".into());
                }
                w.finish()
            }
            "mitm_refused_when_verified" => {
                let mut w = World::new(self, true, &["--adversary", "mitm=alice,bob"])?;
                // Out of band, before any session: Alice learns Bob's real identity (the shim's
                // `start` answer) and pins it, as users who compared safety numbers before would.
                let bob_identity = w.bob_identity.clone();
                w.alice.ok(&json!({"cmd": "pin", "peer": "bob", "identity": bob_identity}))?;
                w.connect(Bob)?;
                w.connect(Alice)?;
                w.alice.ok(&json!({"cmd": "send", "to": "bob", "text": "for bob only"}))?;
                let failed = w.alice.event("send_failed")?;
                if failed["peer"] != "bob" || failed["error"] != "E2e" {
                    return Err(format!("alice: unexpected {failed}"));
                }
                w.bob.never("a message", |v| v["event"] == "received")?;
                w.finish()
            }
            "server_restart" => {
                let mut w = World::new(self, true, &[])?;
                w.converse()?;
                w.disconnect(Bob)?;
                w.send(Alice, "queued before the crash", Some("Queued"))?;
                w.restart_relay()?;
                w.alice.event("disconnected")?;
                w.connect(Alice)?;
                w.connect(Bob)?;
                w.bob.received("alice", "queued before the crash", "e2e")?;
                w.say(Bob, "after the restart", Some("Relayed"))?;
                w.say(Alice, "and again", Some("Relayed"))?;
                w.finish()
            }
            "client_restart" => {
                let mut w = World::new(self, true, &[])?;
                w.converse()?;
                let before = w.safety_number(Alice)?;
                w.alice.quit();
                w.alice = Peer::spawn(self.alice, "alice", self.verbose)?;
                w.start_alice()?;
                w.connect(Alice)?;
                if w.safety_number(Alice)? != before {
                    return Err("alice's safety number changed across her restart".into());
                }
                w.say(Bob, "did you restart?", Some("Relayed"))?;
                w.say(Alice, "yes, same session", Some("Relayed"))?;
                w.alice.never("a new session", |v| v["event"] == "session_started")?;
                w.finish()
            }
            other => Err(format!("no scenario {other}")),
        }
    }
}
