//! Hop and e2e on the same conversation and seed, side by side: for each message, whether its bytes
//! appeared on any link, whether the server could read it, and whether the recipient accepted it —
//! or, where the sending client did not send it at all in that protocol, none of these (`null` in
//! JSON, `—` in text), so that "not sent" never reads as "not delivered".

use std::fmt::Write as _;

use serde::Serialize;

use super::runner::{Protocol, RunConfig, RunError, Step, run};
use super::transcript::Transcript;
use e2e_protocol::hop::AllowAll;
use e2e_protocol::roles::ServerLimits;

/// One message in both runs. Each field is `None` when the message was not sent in that run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The message.
    pub text: String,
    /// Hop: the plaintext bytes appear in some frame on a link.
    pub hop_on_links: Option<bool>,
    /// Hop: the server read it.
    pub hop_server_read: Option<bool>,
    /// Hop: the recipient accepted it.
    pub hop_delivered: Option<bool>,
    /// e2e: the plaintext bytes appear in some frame on a link.
    pub e2e_on_links: Option<bool>,
    /// e2e: the server read it.
    pub e2e_server_read: Option<bool>,
    /// e2e: the recipient accepted it.
    pub e2e_delivered: Option<bool>,
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

/// Runs hop then e2e on the conversation `scripts(protocol)` gives (the same messages in the same
/// order for both; e2e adds its bundle uploads), with the same seed.
///
/// # Errors
/// As [`run`].
pub fn compare(seed: u64, scripts: impl Fn(Protocol) -> Vec<Step>) -> Result<Comparison, RunError> {
    let config = |protocol| RunConfig {
        protocol,
        seed,
        script: scripts(protocol),
        policy: AllowAll,
        mitm: false,
        verified: false,
        limits: ServerLimits::default(),
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
    // What a run says of `text`: nothing if its sender never sent it.
    let seen = |t: &Transcript, text: &str, fact: bool| {
        t.summary.sent.iter().any(|s| s == text).then_some(fact)
    };
    let comparison = texts
        .map(|text| Row {
            hop_on_links: seen(&hop, &text, on_links(&hop, &text)),
            hop_server_read: seen(&hop, &text, hop.summary.server_read.contains(&text)),
            hop_delivered: seen(&hop, &text, hop.summary.delivered.contains(&text)),
            e2e_on_links: seen(&e2e, &text, on_links(&e2e, &text)),
            e2e_server_read: seen(&e2e, &text, e2e.summary.server_read.contains(&text)),
            e2e_delivered: seen(&e2e, &text, e2e.summary.delivered.contains(&text)),
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
        let yes = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "—",
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Party, default_script};

    /// A message the e2e sender never sends (Bob published no bundle, so Alice discards it) shows
    /// as not sent (`None`, "—") in the e2e columns, never as "not delivered".
    #[test]
    fn a_message_one_protocol_did_not_send_is_not_reported_as_undelivered() {
        let script = |protocol| {
            let mut steps = vec![Step::Connect(Party::Alice), Step::Connect(Party::Bob)];
            if protocol == Protocol::E2e {
                steps.push(Step::Upload(Party::Alice)); // Bob publishes nothing
            }
            steps.push(Step::Send { from: Party::Alice, text: "hello".to_owned() });
            steps
        };
        let both = compare(1, script).unwrap();
        let row = &both.comparison[0];
        assert_eq!((row.hop_delivered, row.hop_server_read), (Some(true), Some(true)));
        assert_eq!((row.e2e_on_links, row.e2e_server_read, row.e2e_delivered), (None, None, None));
        let table = both.to_text();
        let rows = table.split("side by side").nth(1).unwrap();
        let line = rows.lines().find(|l| l.contains("\"hello\"")).unwrap();
        let e2e_columns: Vec<&str> = line.rsplit('|').next().unwrap().split_whitespace().collect();
        assert_eq!(e2e_columns, ["—", "—", "—"], "{line}");
        // The default conversation: every message sent and delivered in both.
        let both = compare(1, default_script).unwrap();
        assert!(
            both.comparison
                .iter()
                .all(|r| r.hop_delivered == Some(true) && r.e2e_delivered == Some(true))
        );
    }
}
