//! What is checked: the protocol variant, the attacker, and the bounds (spec/MODEL.md §2–§3).

use std::fmt;

/// The protocol variant under check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Hop-by-hop: the server opens, checks and re-seals every message.
    Hop,
    /// End-to-end; the clients trust whatever bundle the server hands out.
    E2eUnverified,
    /// End-to-end; before the run Alice greeted Bob (a session each) and the users compared the
    /// safety numbers their clients display, each pinning the identity behind its number where
    /// the two were equal (`Client::verify_safety_number`).
    E2eVerified,
}

impl Variant {
    /// Every variant, in table order.
    pub const ALL: [Self; 3] = [Self::Hop, Self::E2eUnverified, Self::E2eVerified];

    /// Command-line and table name.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Hop => "hop",
            Self::E2eUnverified => "e2e-unverified",
            Self::E2eVerified => "e2e-verified",
        }
    }

    /// Whether the variant is end-to-end.
    #[must_use]
    pub const fn is_e2e(self) -> bool {
        !matches!(self, Self::Hop)
    }

    /// The variant called `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.label() == name)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The attacker (DESIGN.md, threat model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attacker {
    /// (N) on the links: sees every frame, drops, replays, reorders, tampers, registers under
    /// names of its own choosing with keys of its own; no server key.
    Network,
    /// (S) the malicious server: the server role itself plus forged e2e identities.
    Server,
    /// (C) compromise: after messages were exchanged the attacker learns Alice's and Bob's
    /// long-term keys. Combined with the strongest attacker the table has a forward-secrecy cell
    /// for: N for hop, S for e2e.
    Compromise,
    /// (M) a third registered user, `mallory`: a client of the honest server with real keys of
    /// its own, which sends Alice and Bob whatever its client lets it build. The network and the
    /// server are honest.
    Malicious,
    /// (P) post-compromise: at some point the attacker copies one client's whole state (channel,
    /// sessions, ratchets) and from then on only reads what reaches that client. The network and
    /// the server are honest.
    PostCompromise,
}

impl Attacker {
    /// Every attacker, in table order.
    pub const ALL: [Self; 5] =
        [Self::Network, Self::Server, Self::Compromise, Self::Malicious, Self::PostCompromise];

    /// Command-line and table name.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Network => "N",
            Self::Server => "S",
            Self::Compromise => "C",
            Self::Malicious => "M",
            Self::PostCompromise => "P",
        }
    }

    /// The table's longer name, given the variant (C builds on N or S).
    #[must_use]
    pub const fn describe(self, variant: Variant) -> &'static str {
        match (self, variant) {
            (Self::Network, _) => "network",
            (Self::Server, _) => "malicious server",
            (Self::Compromise, Variant::Hop) => "network + later key compromise",
            (Self::Compromise, _) => "malicious server + later key compromise",
            (Self::Malicious, _) => "a third registered client, honest server",
            (Self::PostCompromise, _) => "a passive copy of one client's whole state",
        }
    }

    /// The attacker called `name` (`N`, `S`, `C`, `M`, `P`, case-insensitive).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.label().eq_ignore_ascii_case(name))
    }

    /// Whether the attacker plays the server (S, and C in e2e).
    #[must_use]
    pub const fn is_server(self, variant: Variant) -> bool {
        match self {
            Self::Network => false,
            Self::Server => true,
            Self::Compromise => variant.is_e2e(),
            Self::Malicious | Self::PostCompromise => false,
        }
    }

    /// Whether the attacker holds the wire: it observes the frames, drops and injects them (N,
    /// S, C). M and P leave the network and the server honest.
    #[must_use]
    pub const fn holds_the_wire(self) -> bool {
        !matches!(self, Self::Malicious | Self::PostCompromise)
    }
}

impl fmt::Display for Attacker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The bounds of one check. Every field is a command-line option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Messages Alice sends to Bob (default 1).
    pub alice_messages: u8,
    /// Messages Bob sends to Alice (default 1).
    pub bob_messages: u8,
    /// Frames or messages the attacker may inject: replays, tampered copies, forgeries,
    /// registrations of its own (default 1).
    pub budget: u8,
    /// The seed every key is drawn from (default 1).
    pub seed: u64,
    /// Where the set-up is attacked (N, S, C in `hop` and `e2e-unverified`, spec/MODEL.md §2):
    /// how many clients' set-ups — handshake, key confirmation, bundle upload — are steps of the
    /// run: 0 none (both done before it), 1 Bob's (default), 2 both.
    pub set_ups: u8,
    /// Links closed and server restarts, in all, where the server is honest (spec/MODEL.md §3;
    /// default 1).
    pub outages: u8,
    /// Signed-prekey rotations, in all, by Alice or Bob, in `e2e-unverified` (spec/MODEL.md §3,
    /// §7: default 0, each rotation multiplies the cells' states).
    pub rotations: u8,
    /// In e2e, whether the set-up leaves each published client's one-time prekeys at the server
    /// one above `PREKEYS_LOW_WATER`, so that the run's first fetch that takes one sends
    /// `PrekeysLow` and the client tops its store up (spec/MODEL.md §2; default off: it
    /// multiplies e2e-unverified's states by 4 to 18).
    pub prekeys_low: bool,
    /// Where the set-up is attacked: whether the clients whose set-up is a step of the run
    /// register their names in it — no earlier connection bound them — so that the network
    /// attacker may register a name first (spec/MODEL.md §2; default off: first come, first
    /// served, SPEC.md §16.3, then decides the table's network cells, and the seeded flaws they
    /// catch would no longer show).
    pub first_registration: bool,
}

impl Bounds {
    /// The defaults of `e2e-check`: one message each way, one injection, seed 1, Bob's set-up in
    /// the run, one outage, no rotation (spec/MODEL.md §7).
    pub const DEFAULT: Self = Self {
        alice_messages: 1,
        bob_messages: 1,
        budget: 1,
        seed: 1,
        set_ups: 1,
        outages: 1,
        rotations: 0,
        prekeys_low: false,
        first_registration: false,
    };
}

impl Default for Bounds {
    fn default() -> Self {
        Self::DEFAULT
    }
}
