//! Content policies: what a hop server may do because it reads every plaintext.

use core::fmt::Debug;
use core::hash::Hash;

use crate::wire::Name;

/// The outcome of a policy check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Relay the message.
    Allow,
    /// Refuse it; the sender receives `Reject { reason: Policy }` and nobody else learns of it.
    Deny,
}

/// A check the hop server runs on each plaintext before re-sealing it.
///
/// Policies are plain values (`Clone + Eq + Hash`) so that a server holding one can still be cloned,
/// compared and hashed by the model checker. A policy must be a pure function of its inputs.
pub trait ContentPolicy: Clone + Debug + Eq + Hash {
    /// Decides whether `from` may send `body` to `to`.
    fn check(&self, from: &Name, to: &Name, body: &[u8]) -> Verdict;
}

/// The default policy: every message is relayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AllowAll;

impl ContentPolicy for AllowAll {
    fn check(&self, _from: &Name, _to: &Name, _body: &[u8]) -> Verdict {
        Verdict::Allow
    }
}

/// A demonstration policy: refuses any message containing a given word (ASCII case-insensitive,
/// as a substring of the bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DenyWord {
    word: Vec<u8>,
}

impl DenyWord {
    /// Refuses messages containing `word`. An empty word would refuse everything; it is allowed, and
    /// documented here, rather than silently treated as "refuse nothing".
    #[must_use]
    pub fn new(word: &str) -> Self {
        Self { word: word.as_bytes().to_ascii_lowercase() }
    }
}

impl ContentPolicy for DenyWord {
    fn check(&self, _from: &Name, _to: &Name, body: &[u8]) -> Verdict {
        let body = body.to_ascii_lowercase();
        let found = self.word.is_empty() || body.windows(self.word.len()).any(|w| w == self.word);
        if found { Verdict::Deny } else { Verdict::Allow }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &impl ContentPolicy, body: &str) -> Verdict {
        let (a, b) = (Name::new("alice").unwrap(), Name::new("bob").unwrap());
        p.check(&a, &b, body.as_bytes())
    }

    #[test]
    fn deny_word_matches_case_insensitively_anywhere() {
        let p = DenyWord::new("Secret");
        assert_eq!(check(&p, "the SECRET plan"), Verdict::Deny);
        assert_eq!(check(&p, "secret"), Verdict::Deny);
        assert_eq!(check(&p, "secre t"), Verdict::Allow);
        assert_eq!(check(&p, ""), Verdict::Allow);
        assert_eq!(check(&AllowAll, "secret"), Verdict::Allow);
    }
}
