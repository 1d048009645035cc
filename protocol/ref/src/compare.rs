//! Hop and e2e on the same messages and seed, side by side: for each message, whether its bytes
//! appeared on any link, whether the server could read it, and whether the recipient accepted it.

use std::fmt::Write as _;

use serde::Serialize;

use super::runner::{Protocol, RunConfig, Step, run};
use super::transcript::Transcript;
use e2e_protocol::error::Error;
use e2e_protocol::hop::AllowAll;

/// One message in both runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The message.
    pub text: String,
    /// Hop: the plaintext bytes appear in some frame on a link.
    pub hop_on_links: bool,
    /// Hop: the server read it.
    pub hop_server_read: bool,
    /// Hop: the recipient accepted it.
    pub hop_delivered: bool,
    /// e2e: the plaintext bytes appear in some frame on a link.
    pub e2e_on_links: bool,
    /// e2e: the server read it.
    pub e2e_server_read: bool,
    /// e2e: the recipient accepted it.
    pub e2e_delivered: bool,
}

/// Both runs and the rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// `"both"`.
    pub protocol: String,
    /// The seed both runs used.
    pub seed: u64,
    /// The hop run, then the e2e run.
    pub runs: Vec<Transcript>,
    /// One row per message, in script order.
    pub comparison: Vec<Row>,
}

/// Runs hop then e2e on the messages of `scripts(protocol)`, with the same seed.
///
/// # Errors
/// As [`run`].
pub fn compare(seed: u64, scripts: impl Fn(Protocol) -> Vec<Step>) -> Result<Comparison, Error> {
    let config = |protocol| RunConfig {
        protocol,
        seed,
        script: scripts(protocol),
        policy: AllowAll,
        mitm: false,
        verified: false,
    };
    let hop = run(&config(Protocol::Hop))?;
    let e2e = run(&config(Protocol::E2e))?;
    let texts = scripts(Protocol::E2e).into_iter().filter_map(|step| match step {
        Step::Send { text, .. } | Step::SendLate { text, .. } => Some(text),
        _ => None,
    });
    let on_links = |t: &Transcript, text: &str| {
        let needle = hex::encode(text);
        !text.is_empty() && t.events.iter().any(|e| e.frame_hex.contains(&needle))
    };
    let comparison = texts
        .map(|text| Row {
            hop_on_links: on_links(&hop, &text),
            hop_server_read: hop.summary.server_read.contains(&text),
            hop_delivered: hop.summary.delivered.contains(&text),
            e2e_on_links: on_links(&e2e, &text),
            e2e_server_read: e2e.summary.server_read.contains(&text),
            e2e_delivered: e2e.summary.delivered.contains(&text),
            text,
        })
        .collect();
    Ok(Comparison { protocol: "both".to_owned(), seed, runs: vec![hop, e2e], comparison })
}

impl Comparison {
    /// Both transcripts, then the side-by-side table.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for run in &self.runs {
            let _ = writeln!(s, "{}\n", run.to_text());
        }
        let yes = |b: bool| if b { "yes" } else { "no" };
        let width = self.comparison.iter().map(|r| r.text.len()).max().unwrap_or(7).max(7) + 2;
        let _ = writeln!(s, "side by side (seed {})", self.seed);
        let _ = writeln!(s, "  {:<width$} | {:^32} | {:^32}", "message", "hop", "e2e");
        let _ = writeln!(
            s,
            "  {:<width$} | {:<10} {:<12} {:<8} | {:<10} {:<12} {:<8}",
            "", "on a link", "server reads", "bob/alice", "on a link", "server reads", "bob/alice"
        );
        for r in &self.comparison {
            let _ = writeln!(
                s,
                "  {:<width$} | {:<10} {:<12} {:<8} | {:<10} {:<12} {:<8}",
                format!("{:?}", r.text),
                yes(r.hop_on_links),
                yes(r.hop_server_read),
                yes(r.hop_delivered),
                yes(r.e2e_on_links),
                yes(r.e2e_server_read),
                yes(r.e2e_delivered),
            );
        }
        s
    }

    /// Pretty-printed JSON.
    ///
    /// # Errors
    /// As [`Transcript::to_json`].
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}
