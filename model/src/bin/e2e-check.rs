//! `e2e-check`: model-checks every protocol variant against every attacker and prints the
//! threat-model table, with a shortest counterexample for every violation (spec/MODEL.md).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use e2e_model::report::{self, CheckResult, Search};
use e2e_model::{Attacker, Bounds, E2eModel, Variant};
use e2e_protocol::flaws::{self, Flaw};
use stateright::Model;

/// Model-check the hop and e2e protocols against network, malicious-server, compromise,
/// third-client and post-compromise attackers.
#[derive(Parser, Debug)]
#[command(name = "e2e-check")]
struct Args {
    /// Print a JSON array (one object per variant, attacker and property).
    #[arg(long)]
    json: bool,
    /// How to print counterexamples: `text` or `mermaid` (sequence diagrams).
    #[arg(long, default_value = "text")]
    format: String,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Messages Alice sends to Bob.
    #[arg(long, default_value_t = 1)]
    alice_messages: u8,
    /// Messages Bob sends to Alice.
    #[arg(long, default_value_t = 1)]
    bob_messages: u8,
    /// Injections the attacker may make (replays, tampered frames, forgeries, registrations).
    #[arg(long, default_value_t = 1)]
    budget: u8,
    /// Seed of every key.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the set-up is attacked (N, S, C in hop and e2e-unverified): how many clients'
    /// set-ups are steps of the run — 0 none, 1 Bob's, 2 both.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    set_ups: u8,
    /// Links closed and server restarts, in all, where the server is honest.
    #[arg(long, default_value_t = 1)]
    outages: u8,
    /// Signed-prekey rotations, in all, by Alice or Bob, in e2e-unverified (default 0: each
    /// multiplies the state space, spec/MODEL.md §7).
    #[arg(long, default_value_t = 0)]
    rotations: u8,
    /// In e2e, start the run with each published client's one-time prekeys one above the
    /// server's low-water mark, so that `PrekeysLow` and the top-up are reached (spec/MODEL.md §2).
    #[arg(long)]
    prekeys_low: bool,
    /// Where the set-up is attacked, the clients whose set-up is in the run register their names
    /// in it (no earlier connection bound them): the network attacker may register one first
    /// (spec/MODEL.md §2).
    #[arg(long)]
    first_registration: bool,
    /// Search order: `dfs` (memory: the stack and the set of state fingerprints) or `bfs`
    /// (memory: the whole frontier); both visit every reachable state.
    #[arg(long, default_value = "dfs")]
    search: String,
    /// Only these variants (hop, e2e-unverified, e2e-verified); default all.
    #[arg(long)]
    variant: Vec<String>,
    /// Only these attackers (N, S, C, M, P); default all.
    #[arg(long)]
    attacker: Vec<String>,
    /// List the seeded flaws and exit.
    #[arg(long)]
    list_flaws: bool,
    /// Activate one seeded flaw of the protocol crate and report whether the checker catches it.
    #[arg(long)]
    flaw: Option<String>,
    /// With --flaw: exit as without it, non-zero when any cell differs from the unflawed table
    /// (what CI relies on; its test, model/tests/check_exit.rs, needs a table that differs).
    #[arg(long, requires = "flaw")]
    expect_unflawed_table: bool,
    /// Serve the stateright Explorer for one variant and attacker on ADDR (loopback only).
    #[arg(long)]
    serve: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list_flaws {
        for f in Flaw::ALL {
            println!("{:<28} {}", f.name(), f.description());
        }
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("e2e-check: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let bounds = Bounds {
        alice_messages: args.alice_messages,
        bob_messages: args.bob_messages,
        budget: args.budget,
        seed: args.seed,
        set_ups: args.set_ups,
        outages: args.outages,
        rotations: args.rotations,
        prekeys_low: args.prekeys_low,
        first_registration: args.first_registration,
    };
    let variants = pick(&args.variant, &Variant::ALL, Variant::from_name, "variant")?;
    let attackers = pick(&args.attacker, &Attacker::ALL, Attacker::from_name, "attacker")?;
    let search = match args.search.as_str() {
        "dfs" => Search::Dfs,
        "bfs" => Search::Bfs,
        other => return Err(format!("unknown search {other:?} (dfs or bfs)")),
    };
    let flaw = match &args.flaw {
        Some(name) => Some(Flaw::from_name(name).ok_or(format!("unknown flaw {name:?}"))?),
        None => None,
    };
    flaws::activate(flaw.as_slice());
    if let Some(addr) = args.serve {
        if !addr.ip().is_loopback() {
            return Err(format!("--serve {addr}: only loopback addresses are allowed"));
        }
        let ([variant], [attacker]) = (variants.as_slice(), attackers.as_slice()) else {
            return Err("--serve needs exactly one --variant and one --attacker".to_owned());
        };
        let model = E2eModel::new(*variant, *attacker, bounds).map_err(|e| e.to_string())?;
        eprintln!("serving the stateright Explorer on http://{addr}");
        let _explorer = model.checker().threads(args.threads.max(1)).serve(addr);
        // The Explorer runs on its own threads until the process is interrupted.
        loop {
            std::thread::park();
        }
    }
    let mut results: Vec<CheckResult> = Vec::new();
    for &variant in &variants {
        for &attacker in &attackers {
            eprintln!("checking {variant} vs {attacker} ({}) ...", attacker.describe(variant));
            let r = report::check_with(variant, attacker, bounds, args.threads, true, search)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "  done: {} states, {} unique, depth {}, {:.1}s ({:.0} states/s)",
                r.states,
                r.unique_states,
                r.depth,
                r.elapsed.as_secs_f64(),
                r.states as f64 / r.elapsed.as_secs_f64().max(0.001)
            );
            results.push(r);
        }
    }
    if args.json {
        let json =
            serde_json::to_string_pretty(&report::to_json(&results)).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        print!("{}", report::table(&results));
        if args.format == "mermaid" {
            print!("{}", report::mermaid(&results));
        } else {
            print!("{}", report::traces(&results));
        }
    }
    if let Some(flaw) = flaw.filter(|_| !args.expect_unflawed_table) {
        let caught = report::caught(&results);
        eprintln!(
            "flaw {}: {}",
            flaw.name(),
            if caught {
                "CAUGHT (a property that holds unflawed is violated)"
            } else {
                "NOT caught"
            }
        );
        return Ok(if caught { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    if report::as_expected(&results) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("e2e-check: a cell differs from the expected table (spec/MODEL.md §8)");
        Ok(ExitCode::FAILURE)
    }
}

fn pick<T: Copy>(
    names: &[String],
    all: &[T],
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<T>, String> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names.iter().map(|n| parse(n).ok_or(format!("unknown {what} {n:?}"))).collect()
}
