//! The record of a run: every frame on every link and what its receiver read from it.

use std::fmt::Write as _;

use serde::Serialize;

/// One frame crossing a link, and what its receiver made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// 1-based position in the run.
    pub step: usize,
    /// Sender: `"alice"`, `"bob"` or `"server"`.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// The link frame's type name (SPEC.md §3.2).
    pub frame_type: String,
    /// The frame exactly as it crossed the link, in hex: all a router sees.
    pub frame_hex: String,
    /// What the receiver read from the frame, if it accepted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
    /// Why the receiver refused the frame, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Context from the script (for example, that the recipient is offline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The safety number each client shows for its session with the other (e2e only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SafetyNumbers {
    /// What Alice's client shows for its session with Bob (none if it has no session).
    pub alice: Option<String>,
    /// What Bob's client shows for its session with Alice.
    pub bob: Option<String>,
    /// Whether both exist and are equal: when they differ, someone substituted a key.
    pub equal: bool,
}

/// What the run established.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Plaintexts the senders handed to the server, in the order they went out (a message the
    /// sending client refused to encrypt is not here).
    pub sent: Vec<String>,
    /// Plaintexts the recipients accepted, in the order they accepted them.
    pub delivered: Vec<String>,
    /// Plaintexts the server could read, in the order it read them.
    pub server_read: Vec<String>,
    /// Messages refused, by the server or by the sending client (`"<text>: <reason>"`).
    pub rejected: Vec<String>,
    /// e2e: the two safety numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_numbers: Option<SafetyNumbers>,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transcript {
    /// `"hop"` or `"e2e"`.
    pub protocol: String,
    /// The RNG seed the run was drawn from.
    pub seed: u64,
    /// Every frame, in order.
    pub events: Vec<Event>,
    /// What the run established.
    pub summary: Summary,
}

impl Transcript {
    /// Pretty-printed JSON.
    ///
    /// # Errors
    /// Never in practice (every field is a string, number or list); serde's error is passed on.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// A step-by-step account for people: each frame with its bytes, then what its receiver read.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "protocol {}  seed {}", self.protocol, self.seed);
        for e in &self.events {
            let _ = writeln!(s);
            if let Some(note) = &e.note {
                let _ = writeln!(s, "      -- {note}");
            }
            let _ = writeln!(
                s,
                "[{:>2}] {:>6} -> {:<6} {:<13} {:>4} B  on the link: {}",
                e.step,
                e.from,
                e.to,
                e.frame_type,
                e.frame_hex.len() / 2,
                abbreviate(&e.frame_hex, 48)
            );
            if let Some(read) = &e.read {
                let _ = writeln!(s, "      {} reads: {read}", e.to);
            }
            if let Some(error) = &e.error {
                let _ = writeln!(s, "      {} REFUSES it: {error}", e.to);
            }
        }
        let _ = writeln!(s, "\nsummary");
        let _ = writeln!(s, "  delivered:   {:?}", self.summary.delivered);
        let _ = writeln!(s, "  server read: {:?}", self.summary.server_read);
        if !self.summary.rejected.is_empty() {
            let _ = writeln!(s, "  rejected:    {:?}", self.summary.rejected);
        }
        if let Some(numbers) = &self.summary.safety_numbers {
            let show = |n: &Option<String>| n.clone().unwrap_or_else(|| "(no session)".to_owned());
            let _ = writeln!(s, "  safety number, alice's view: {}", show(&numbers.alice));
            let _ = writeln!(s, "  safety number, bob's view:   {}", show(&numbers.bob));
            let verdict = if numbers.equal {
                "equal: nobody substituted a key"
            } else {
                "DIFFERENT: a key was substituted (or a session is missing)"
            };
            let _ = writeln!(s, "  safety numbers {verdict}");
        }
        s
    }

    /// A Mermaid sequence diagram of the run.
    #[must_use]
    pub fn to_mermaid(&self) -> String {
        let mut s = String::from("sequenceDiagram\n");
        for p in ["alice", "server", "bob"] {
            let _ = writeln!(s, "    participant {p} as {}", capitalize(p));
        }
        for e in &self.events {
            if let Some(note) = &e.note {
                let _ = writeln!(s, "    Note over alice,bob: {}", mermaid_escape(note));
            }
            let _ = writeln!(
                s,
                "    {}->>{}: {} {}",
                e.from,
                e.to,
                e.frame_type,
                abbreviate(&e.frame_hex, 16)
            );
            if let Some(read) = &e.read {
                let _ = writeln!(s, "    Note right of {}: reads {}", e.to, mermaid_escape(read));
            }
            if let Some(error) = &e.error {
                let _ =
                    writeln!(s, "    Note right of {}: refuses: {}", e.to, mermaid_escape(error));
            }
        }
        s
    }
}

fn abbreviate(hex: &str, max: usize) -> String {
    if hex.len() <= max { hex.to_owned() } else { format!("{}…", &hex[..max]) }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// Mermaid ends a message at `;` and treats `#` as an entity start; replace both.
fn mermaid_escape(s: &str) -> String {
    s.replace(';', ",").replace('#', "no. ")
}
