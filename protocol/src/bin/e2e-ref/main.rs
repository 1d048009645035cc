//! `e2e-ref`: runs the reference protocols and prints what every party and every link saw.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use e2e_protocol::drivers::{Transcript, default_hop_script, run_hop, script_from_messages};
use e2e_protocol::hop::{AllowAll, DenyWord};

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
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// Hop-by-hop: the server opens, checks and re-seals every message.
    Hop,
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
    #[arg(value_enum, default_value_t = Protocol::Hop)]
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
    }
}

fn run(args: &RunArgs) -> Result<String, String> {
    let script = if args.messages.is_empty() {
        default_hop_script()
    } else {
        script_from_messages(&args.messages)
    };
    let transcript: Transcript = match (args.protocol, &args.deny_word) {
        (Protocol::Hop, None) => run_hop(args.seed, &script, AllowAll),
        (Protocol::Hop, Some(word)) => run_hop(args.seed, &script, DenyWord::new(word)),
    }
    .map_err(|e| e.to_string())?;
    let format = if args.json { Format::Json } else { args.format };
    Ok(match format {
        Format::Text => transcript.to_text(),
        Format::Json => transcript.to_json().map_err(|e| e.to_string())? + "\n",
        Format::Mermaid => transcript.to_mermaid(),
    })
}
