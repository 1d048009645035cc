//! `e2e-ref`: runs the reference protocols and prints what every party and every link saw.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use e2e_protocol::hop::{AllowAll, ContentPolicy, DenyWord};
use e2e_protocol::roles::ServerLimits;
use e2e_ref::{
    Protocol as RunProtocol, RunConfig, Transcript, compare, default_script, run as run_protocol,
    script_from_messages,
};

// The real binary never contains the seeded flaws (protocol/src/flaws.rs, spec/MODEL.md §6).
const _: () = assert!(
    !e2e_protocol::flaws::COMPILED,
    "e2e-ref must not be built with the seeded flaws (insecure-seeded-flaws)"
);

/// Reference hop-by-hop and end-to-end messaging between Alice and Bob through a relay server.
#[derive(Parser, Debug)]
#[command(name = "e2e-ref", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs Alice, the Server and Bob in-process and prints every frame on every link and what each
    /// party read from it.
    Run(RunArgs),
    /// Generates or verifies the reference test vectors (spec/vectors/, SPEC.md §17).
    #[command(subcommand)]
    Vectors(VectorsCommand),
    /// Runs the relay as a TCP server with its state in DIR (SPEC.md §9.2). Prints its public key
    /// and address, then serves until killed; stopping it at any moment loses nothing acknowledged.
    Serve(ServeArgs),
    /// Connects to a relay as NAME and takes one command per line: `send NAME TEXT`,
    /// `safety-number NAME`, `verify NAME NUMBER`, `quit`. Prints events as they happen.
    Client(ClientArgs),
    /// The reference client speaking the interop shim protocol (spec/INTEROP.md): one JSON command
    /// per line on standard input, one JSON answer or event per line on standard output.
    Shim,
    /// Runs the interop scenarios (spec/INTEROP.md) through a real relay for every ordered pair of
    /// the given client implementations and prints a pass/fail matrix.
    Interop(e2e_ref::interop::harness::InteropArgs),
    /// Runs many clients against a relay and reports messages/s, latency, the relay's peak RSS
    /// and the ratio to the crypto floor; with --spawn-relay --kill-every D --kills K, SIGKILLs
    /// and restarts the relay under load and checks that no acknowledged message is lost or
    /// duplicated. Exits non-zero if one is.
    Load(LoadArgs),
}

#[derive(clap::Args, Debug)]
struct LoadArgs {
    /// The relay's address (a relay already running).
    #[arg(
        long,
        value_name = "ADDR",
        required_unless_present = "spawn_relay",
        requires = "server_key"
    )]
    connect: Option<std::net::SocketAddr>,
    /// The relay's static public key, as `serve` prints it (64 hex digits).
    #[arg(long, value_name = "HEX")]
    server_key: Option<String>,
    /// The relay's process id, to report its peak RSS (VmHWM).
    #[arg(long, value_name = "PID")]
    relay_pid: Option<u32>,
    /// Start a relay (this executable's `serve`) on loopback with a temporary data directory.
    #[arg(long, conflicts_with_all = ["connect", "relay_pid"])]
    spawn_relay: bool,
    /// Clients, one TCP connection each; client i sends to client i^1 (even, at least 2).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Messages each client sends, one at a time (the next after the previous one's answer).
    #[arg(long, default_value_t = 20)]
    messages: usize,
    /// hop or e2e.
    #[arg(long, value_enum, default_value_t = LoadProtocol::Hop)]
    protocol: LoadProtocol,
    /// Body size in bytes (16..=16384; the first 16 are the tag).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seeds the clients' keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// With --spawn-relay: SIGKILL the relay this often (milliseconds), then restart it.
    #[arg(long, value_name = "MS", requires = "spawn_relay")]
    kill_every: Option<u64>,
    /// With --kill-every: how many times.
    #[arg(long, default_value_t = 0, requires = "kill_every")]
    kills: usize,
    /// Once every client has sent everything, stop after this many milliseconds without an arrival.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    drain: u64,
    /// Only even clients send, odd ones only receive (e2e: no DH ratchet step per message).
    #[arg(long)]
    one_way: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LoadProtocol {
    Hop,
    E2e,
}

#[derive(clap::Args, Debug)]
struct ClientArgs {
    /// The relay's address.
    #[arg(long, value_name = "ADDR")]
    connect: std::net::SocketAddr,
    /// The relay's static public key, as `serve` prints it (64 hex digits).
    #[arg(long, value_name = "HEX")]
    server_key: String,
    /// This client's name (SPEC.md §3.3: `a`-`z`, `0`-`9`, `-`, `_`, `.`; at most 32).
    #[arg(long)]
    name: String,
    /// The client's state file (SPEC.md §18): created with new keys if absent, else restored;
    /// rewritten atomically, mode 0600, after every change. It holds the client's secrets.
    #[arg(long, value_name = "FILE")]
    state: std::path::PathBuf,
    /// Speak e2e: upload a bundle, send end to end, accept only e2e messages.
    #[arg(long)]
    e2e: bool,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
    /// Seeds the client's keys and ephemerals, for reproducible tests only.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    listen: std::net::SocketAddr,
    /// The data directory (created if needed): the static key, bindings, bundles, mailboxes.
    #[arg(long, value_name = "DIR")]
    data: std::path::PathBuf,
    /// Listen on an address that is not loopback. Off by default: this is a reference, not a
    /// hardened service.
    #[arg(long)]
    allow_non_loopback: bool,
    /// Seeds the relay's RNG (its first static key and its ephemerals) instead of the operating
    /// system: for reproducible tests only — every start on the same seed draws the same
    /// ephemeral keys again.
    #[arg(long)]
    seed: Option<u64>,
    /// The most connections served at once; beyond it a handshake is answered
    /// `Refused { ServerFull }`.
    #[arg(long, default_value_t = e2e_ref::serve::Limits::default().max_connections)]
    max_connections: usize,
    /// Seconds a connection may stay silent after its handshake (there is no keep-alive).
    #[arg(long, default_value_t = e2e_ref::serve::Limits::default().idle_timeout.as_secs())]
    idle_timeout: u64,
    /// Seconds a client has from connecting to finishing its handshake.
    #[arg(long, default_value_t = e2e_ref::serve::Limits::default().handshake_timeout.as_secs())]
    handshake_timeout: u64,
    /// Print every server event, one line each (in hop, every plaintext the relay reads).
    #[arg(long)]
    log: bool,
    /// Seconds one frame may take to be read (after its header) or written.
    #[arg(long, default_value_t = e2e_ref::serve::Limits::default().frame_timeout.as_secs())]
    frame_timeout: u64,
    /// For the interop scenarios only: a malicious relay. `bad-bundle` corrupts every bundle's
    /// signature; `mitm=A,B` substitutes bundles between A and B and reads their messages.
    #[arg(long, value_name = "MODE")]
    adversary: Option<String>,
}

#[derive(Subcommand, Debug)]
enum VectorsCommand {
    /// Writes every vector file into DIR, deterministically.
    Generate {
        /// The directory to write (created if needed).
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
    /// Re-derives every case of the vector files in DIR and prints, per file, how many passed and
    /// failed; exits non-zero on any failure.
    Verify {
        /// The directory holding the vector files.
        #[arg(value_name = "DIR", default_value = "spec/vectors")]
        dir: std::path::PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// Hop-by-hop: the server opens, checks and re-seals every message.
    Hop,
    /// End-to-end: keys agreed through the server (X3DH-style), a Double Ratchet, safety numbers.
    E2e,
    /// Hop, then e2e, on the same messages and seed, with a side-by-side summary.
    Both,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// A step-by-step account for people.
    Text,
    /// The transcript as JSON (`protocol`, `seed`, `events`, `summary`).
    Json,
    /// A Mermaid sequence diagram.
    Mermaid,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Which protocol to run.
    #[arg(value_enum, default_value_t = Protocol::Both)]
    protocol: Protocol,
    /// Seed for every key and ephemeral; the same seed gives byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A message to send (repeatable). Sent by Alice to Bob; prefix `bob:` to have Bob send it to
    /// Alice. Default: a short conversation both ways, with Bob offline for one message.
    #[arg(long = "message", value_name = "TEXT")]
    messages: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Shorthand for `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Hop only: the server refuses any message containing WORD (a demonstration content policy).
    #[arg(long, value_name = "WORD")]
    deny_word: Option<String>,
    /// e2e only: the server is malicious. It hands each client a bundle of its own keys in place of
    /// the other's and relays between two sessions of its own, reading everything.
    #[arg(long)]
    mitm: bool,
    /// e2e only: Alice and Bob compared safety numbers out of band beforehand and marked each other's
    /// identity as verified, so a substituted bundle is refused.
    #[arg(long)]
    verified: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => match run(&args) {
            Ok(output) => {
                print!("{output}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("e2e-ref: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Vectors(command) => vectors(&command),
        Command::Serve(args) => serve(args),
        Command::Client(args) => client(args),
        Command::Shim => shim(),
        Command::Interop(args) => e2e_ref::interop::harness::main(&args),
        Command::Load(args) => load(args),
    }
}

fn load(args: LoadArgs) -> ExitCode {
    use e2e_ref::load::{LoadConfig, RelaySource};
    let relay = if args.spawn_relay {
        match std::env::current_exe() {
            Ok(exe) => RelaySource::Spawn { exe },
            Err(e) => {
                eprintln!("e2e-ref: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let key: Option<[u8; 32]> = args
            .server_key
            .as_deref()
            .and_then(|k| hex::decode(k.trim()).ok())
            .and_then(|bytes| bytes.try_into().ok());
        match (args.connect, key) {
            (Some(addr), Some(key)) => RelaySource::Connect {
                addr,
                key: e2e_protocol::suite::PublicKey::from_bytes(key),
                pid: args.relay_pid,
            },
            _ => {
                eprintln!(
                    "e2e-ref: --connect ADDR --server-key HEX (64 hex digits), or --spawn-relay"
                );
                return ExitCode::FAILURE;
            }
        }
    };
    let config = LoadConfig {
        relay,
        clients: args.clients,
        messages: args.messages,
        e2e: args.protocol == LoadProtocol::E2e,
        size: args.size,
        seed: args.seed,
        kill_every: args.kill_every.map(std::time::Duration::from_millis),
        kills: args.kills,
        drain: std::time::Duration::from_millis(args.drain),
        one_way: args.one_way,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("e2e-ref: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(e2e_ref::load::run(config)) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.exactly_once() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("e2e-ref: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client(args: ClientArgs) -> ExitCode {
    let config = match client_config(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("e2e-ref: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("e2e-ref: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(e2e_ref::client::run(config, tokio::io::stdin())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e-ref: {e}");
            ExitCode::FAILURE
        }
    }
}

fn shim() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("e2e-ref: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(e2e_ref::interop::shim::run(tokio::io::stdin())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e-ref: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client_config(args: ClientArgs) -> Result<e2e_ref::client::ClientConfig, String> {
    let key: [u8; 32] = hex::decode(args.server_key.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or("--server-key must be 64 hex digits")?;
    let name = e2e_protocol::wire::Name::new(&args.name).map_err(|e| format!("--name: {e}"))?;
    Ok(e2e_ref::client::ClientConfig {
        connect: args.connect,
        server_key: e2e_protocol::suite::PublicKey::from_bytes(key),
        name,
        state: args.state,
        e2e: args.e2e,
        json: args.json,
        seed: args.seed,
    })
}

fn serve(args: ServeArgs) -> ExitCode {
    use e2e_ref::serve::{Limits, ServeConfig};
    use std::io::Write as _;
    use std::time::Duration;
    let limits = Limits {
        max_connections: args.max_connections,
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        frame_timeout: Duration::from_secs(args.frame_timeout),
        ..Limits::default()
    };
    let adversary = match args
        .adversary
        .as_deref()
        .map(|mode| e2e_ref::interop::adversary::Adversary::parse(mode, args.seed))
    {
        Some(Err(message)) => {
            eprintln!("e2e-ref: {message}");
            return ExitCode::FAILURE;
        }
        Some(Ok(adversary)) => Some(adversary),
        None => None,
    };
    let config = ServeConfig {
        listen: args.listen,
        data: args.data,
        allow_non_loopback: args.allow_non_loopback,
        seed: args.seed,
        limits,
        log: args.log,
        adversary,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("e2e-ref: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(e2e_ref::serve::serve(config, |started| {
        println!("public key: {}", hex::encode(started.public_key.as_bytes()));
        println!("listening on {}", started.addr);
        let _ = std::io::stdout().flush();
    }));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e-ref: {e}");
            ExitCode::FAILURE
        }
    }
}

fn vectors(command: &VectorsCommand) -> ExitCode {
    use e2e_ref::vectors;
    match command {
        VectorsCommand::Generate { out } => match vectors::generate_into(out) {
            Ok(paths) => {
                for path in paths {
                    println!("wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("e2e-ref: {e}");
                ExitCode::FAILURE
            }
        },
        VectorsCommand::Verify { dir } => {
            let (mut passed, mut failed) = (0, 0);
            for report in vectors::verify_dir(dir) {
                println!("{}: {} passed, {} failed", report.file, report.passed(), report.failed());
                for case in &report.cases {
                    if let Some(why) = &case.failure {
                        println!("  FAILED {}: {why}", case.id);
                    }
                }
                passed += report.passed();
                failed += report.failed();
            }
            println!("vectors: {passed} passed, {failed} failed");
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
    }
}

fn run(args: &RunArgs) -> Result<String, String> {
    let format = if args.json { Format::Json } else { args.format };
    let script = |protocol| {
        if args.messages.is_empty() {
            default_script(protocol)
        } else {
            script_from_messages(protocol, &args.messages)
        }
    };
    let protocol = match args.protocol {
        Protocol::Hop => RunProtocol::Hop,
        Protocol::E2e => RunProtocol::E2e,
        Protocol::Both => {
            if args.mitm || args.verified || args.deny_word.is_some() {
                return Err(
                    "--mitm, --verified and --deny-word need a protocol: `run e2e --mitm`, \
                            `run hop --deny-word W`"
                        .to_owned(),
                );
            }
            let both = compare(args.seed, script).map_err(|e| e.to_string())?;
            return match format {
                Format::Text => Ok(both.to_text()),
                Format::Json => Ok(both.to_json().map_err(|e| e.to_string())? + "\n"),
                Format::Mermaid => Ok(both.runs.iter().map(Transcript::to_mermaid).collect()),
            };
        }
    };
    if protocol == RunProtocol::Hop && (args.mitm || args.verified) {
        return Err("--mitm and --verified are about e2e key agreement: use `run e2e`".to_owned());
    }
    if protocol == RunProtocol::E2e && args.deny_word.is_some() {
        return Err("--deny-word needs a server that reads content: use `run hop`".to_owned());
    }
    let transcript = match &args.deny_word {
        None => run_with(args, protocol, script(protocol), AllowAll),
        Some(word) => run_with(args, protocol, script(protocol), DenyWord::new(word)),
    }?;
    Ok(match format {
        Format::Text => transcript.to_text(),
        Format::Json => transcript.to_json().map_err(|e| e.to_string())? + "\n",
        Format::Mermaid => transcript.to_mermaid(),
    })
}

fn run_with<P: ContentPolicy>(
    args: &RunArgs,
    protocol: RunProtocol,
    script: Vec<e2e_ref::Step>,
    policy: P,
) -> Result<Transcript, String> {
    let config = RunConfig {
        protocol,
        seed: args.seed,
        script,
        policy,
        mitm: args.mitm,
        verified: args.verified,
        limits: ServerLimits::default(),
    };
    run_protocol(&config).map_err(|e| e.to_string())
}
