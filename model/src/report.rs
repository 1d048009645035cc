//! Running checks and reporting them: the table, counterexample traces (text or Mermaid), JSON.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use e2e_protocol::Error;
use serde_json::{Value, json};
use stateright::{Checker, Expectation, Model};

use crate::config::{Attacker, Bounds, Variant};
use crate::model::{Action, E2eModel, names};
use crate::world::{Dest, FORGED_BODY, World};

/// The outcome of one property.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The property's name.
    pub property: &'static str,
    /// `always` or `sometimes`.
    pub kind: &'static str,
    /// Whether it holds: an `always` property with no counterexample, a `sometimes` property
    /// with an example.
    pub holds: bool,
    /// The result on the unflawed protocol, and whether DESIGN.md's table claims it.
    pub expected: Expected,
    /// For a violated `always` property, the shortest counterexample, step by step.
    pub trace: Option<Vec<Step>>,
}

/// What the unflawed protocol gives for a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Whether it holds.
    pub holds: bool,
    /// Whether DESIGN.md's threat-model table has this cell (false: "—", reported only).
    pub claimed: bool,
}

/// One step of a counterexample.
#[derive(Debug, Clone)]
pub struct Step {
    /// Who acted.
    pub actor: &'static str,
    /// Towards whom (for diagrams).
    pub target: &'static str,
    /// What was done.
    pub what: String,
    /// What followed: acceptances, what the attacker learned, refusals.
    pub effects: Vec<String>,
}

/// One (variant, attacker) check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The variant.
    pub variant: Variant,
    /// The attacker.
    pub attacker: Attacker,
    /// The bounds.
    pub bounds: Bounds,
    /// States generated.
    pub states: usize,
    /// Unique states.
    pub unique_states: usize,
    /// Maximum BFS depth.
    pub depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// One cell per property.
    pub cells: Vec<Cell>,
}

/// The result the unflawed protocol gives, per DESIGN.md's table (claimed cells) and per this
/// model's own exhaustive run for the table's "—" cells.
#[must_use]
pub fn expected(variant: Variant, attacker: Attacker, property: &str, bounds: Bounds) -> Expected {
    let server = attacker.is_server(variant);
    let mitm_possible = server && variant != Variant::E2eVerified;
    // `--first-registration`: the network attacker may register a name before its owner, and
    // names are first come, first served (SPEC.md §16.3). In hop it then speaks as the owner; in
    // e2e, whose clients refuse its hop forgery, the owner is locked out of the name.
    let squatted = bounds.first_registration
        && bounds.budget > 0
        && crate::model::setup::attacked(variant, attacker, bounds)
        && !server;
    let (holds, claimed) = match property {
        names::AUTHENTICITY if squatted && variant == Variant::Hop => (false, true),
        names::RECOVERY if squatted && variant == Variant::E2eUnverified => (false, true),
        names::SECRECY | names::AUTHENTICITY => (!mitm_possible, true),
        // Hop vs a malicious server: "—" (it re-delivers under new ids at will; exact replays
        // of a message still fail on the replay window).
        names::REPLAY => (true, !(server && variant == Variant::Hop)),
        // e2e-unverified: "—" (the man in the middle reads everything before compromise anyway).
        // With the set-up attacked the server may hand out a bundle without its one-time
        // prekey, and compromise then opens the initiator's first chain (SPEC.md §16.2).
        names::FORWARD_SECRECY => (
            !(variant == Variant::E2eUnverified
                && crate::model::setup::attacked(variant, attacker, bounds)),
            variant != Variant::E2eUnverified,
        ),
        // Needs a message each way.
        names::BOTH_WAYS | names::HEALED | names::SET_UP_REFUSAL | names::WITHOUT_ONE_TIME => {
            (bounds.alice_messages > 0 && bounds.bob_messages > 0, true)
        }
        // A fetch answered `NoBundle`: Alice's before Bob has uploaded; Bob's only before Alice
        // has (both set-ups in the run) or from the malicious server.
        names::RETRIED => (
            bounds.alice_messages > 0
                || (bounds.bob_messages > 0 && (server || bounds.set_ups >= 2)),
            true,
        ),
        // A prekey message must reach a client that rotated; a fetch must be answered.
        names::COPY_READS | names::FROM_PREVIOUS | names::PAST_RETENTION | names::SPK_REFUSED => {
            (bounds.alice_messages > 0 || bounds.bob_messages > 0, true)
        }
        // Hop: violated by design (the channel keys last until the next handshake), given a
        // message each way for the round trip. e2e-unverified is measured, not claimed by
        // DESIGN.md's table ("—").
        names::POST_COMPROMISE => (
            variant.is_e2e() || bounds.alice_messages == 0 || bounds.bob_messages == 0,
            variant != Variant::E2eUnverified,
        ),
        // SPEC.md §16.3's retention trade-off: a client keeps one previous signed prekey, so a
        // prekey message built on a bundle the server handed out before the first of two
        // rotations, and delivered after the second, is refused (`UnknownPrekey`) and its sender's
        // session stays unanswered. Measured against M (§8); the other attackers' cells at
        // `--rotations 2` keep "holds" until measured (P has no `delivery` and judges no
        // `recovery`; S was stopped unfinished at 300 s without a violation).
        names::DELIVERY | names::RECOVERY
            if attacker == Attacker::Malicious
                && variant == Variant::E2eUnverified
                && bounds.rotations >= 2
                && (bounds.alice_messages > 0 || bounds.bob_messages > 0) =>
        {
            (false, true)
        }
        // A fetch in the run must take one of a drained client's keys: the set-up drains the
        // clients it publishes (not those whose set-up is a step of the run), and in
        // e2e-verified no bundle is fetched but M's.
        names::TOPPED_UP => (
            match (variant, attacker) {
                (Variant::E2eVerified, _) => bounds.budget > 0,
                (_, Attacker::Malicious) => {
                    bounds.alice_messages > 0 || bounds.bob_messages > 0 || bounds.budget > 0
                }
                (_, Attacker::PostCompromise) => {
                    bounds.alice_messages > 0 || bounds.bob_messages > 0
                }
                _ => match bounds.set_ups {
                    0 => bounds.alice_messages > 0 || bounds.bob_messages > 0,
                    1 => bounds.bob_messages > 0,
                    _ => false,
                },
            },
            true,
        ),
        // S's forged notice spends an injection; the client tops up on it whenever connected.
        names::RECOVERED_FORGED_LOW => (bounds.budget > 0, true),
        // The network attacker's close spends an injection, and a top-up must be in flight:
        // a fetch in the run takes one of a drained client's keys, as for `TOPPED_UP`.
        names::RECOVERED_LOST_TOP_UP | names::TOPPED_UP_AGAIN => (
            bounds.budget > 0
                && bounds.outages > 0
                && match bounds.set_ups {
                    0 => bounds.alice_messages > 0 || bounds.bob_messages > 0,
                    1 => bounds.bob_messages > 0,
                    _ => false,
                },
            true,
        ),
        _ => (true, true),
    };
    Expected { holds, claimed }
}

/// How the checker walks the state space. Both visit every reachable state once; they differ in
/// memory, and in what `depth` means (spec/MODEL.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Search {
    /// Depth first: memory is the stack of pending states and the set of 64-bit fingerprints of
    /// the states seen; `depth` is the longest path followed.
    #[default]
    Dfs,
    /// Breadth first: memory holds the whole frontier, every state of a level at once; `depth` is
    /// the distance of the farthest state from the initial one.
    Bfs,
}

/// Checks `variant` against `attacker` within `bounds` (depth first), reporting progress on
/// stderr every few seconds when `progress` is set.
///
/// # Errors
/// A protocol error during the honest setup.
pub fn check(
    variant: Variant,
    attacker: Attacker,
    bounds: Bounds,
    threads: usize,
    progress: bool,
) -> Result<CheckResult, Error> {
    check_with(variant, attacker, bounds, threads, progress, Search::default())
}

/// [`check`] with the search of choice.
///
/// # Errors
/// A protocol error during the honest setup.
pub fn check_with(
    variant: Variant,
    attacker: Attacker,
    bounds: Bounds,
    threads: usize,
    progress: bool,
    search: Search,
) -> Result<CheckResult, Error> {
    let model = E2eModel::new(variant, attacker, bounds)?;
    let properties = model.properties();
    let started = Instant::now();
    let builder = model.clone().checker().threads(threads.max(1));
    Ok(match search {
        Search::Dfs => finish(&model, &properties, started, builder.spawn_dfs(), progress),
        Search::Bfs => finish(&model, &properties, started, builder.spawn_bfs(), progress),
    })
}

/// Waits for `checker`, then reads every property's cell, with a shortest counterexample for
/// each violation.
fn finish(
    model: &E2eModel,
    properties: &[stateright::Property<E2eModel>],
    started: Instant,
    checker: impl Checker<E2eModel>,
    progress: bool,
) -> CheckResult {
    let (variant, attacker, bounds) = (model.variant, model.attacker, model.bounds);
    let mut last = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        if progress && last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            let states = checker.state_count();
            eprintln!(
                "  {variant} vs {attacker}: {states} states, {} unique, depth {}, {:.0} states/s",
                checker.unique_state_count(),
                checker.max_depth(),
                states as f64 / secs.max(0.001)
            );
        }
    }
    let checker = checker.join();
    let elapsed = started.elapsed();
    let mut cells = Vec::new();
    for p in properties {
        let discovery = checker.discovery(p.name);
        let (kind, holds) = match p.expectation {
            Expectation::Always => ("always", discovery.is_none()),
            Expectation::Sometimes => ("sometimes", discovery.is_some()),
            Expectation::Eventually => ("eventually", discovery.is_none()),
        };
        // stateright's parallel BFS keeps the last violating path it met, not the shortest: search
        // level by level from the initial state for the first violating state instead.
        let trace = match (kind, discovery) {
            ("always", Some(path)) => Some(describe_path(
                model,
                shortest_violation(model, p.condition).unwrap_or_else(|| path.into_vec()),
            )),
            _ => None,
        };
        cells.push(Cell {
            property: p.name,
            kind,
            holds,
            expected: expected(variant, attacker, p.name, bounds),
            trace,
        });
    }
    CheckResult {
        variant,
        attacker,
        bounds,
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        depth: checker.max_depth(),
        elapsed,
        cells,
    }
}

fn party(w: crate::world::Who) -> &'static str {
    match w {
        crate::world::Who::Alice => "Alice",
        crate::world::Who::Bob => "Bob",
    }
}

/// The shortest path (breadth-first, one thread) from the initial state to a state where
/// `condition` fails, if any. Only the current and the next level are kept as states; the rest
/// of the search is a map from fingerprint to (parent's fingerprint, action), and the path is
/// replayed from the initial state.
fn shortest_violation(
    model: &E2eModel,
    condition: fn(&E2eModel, &World) -> bool,
) -> Option<Vec<(World, Option<Action>)>> {
    use std::collections::HashMap;
    use std::collections::hash_map::Entry;
    use std::hash::{Hash, Hasher};
    let fingerprint = |s: &World| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        s.hash(&mut h);
        h.finish()
    };
    let init = model.init_states().into_iter().next()?;
    let mut parent: HashMap<u64, Option<(u64, Action)>> = HashMap::new();
    parent.insert(fingerprint(&init), None);
    let mut level = vec![init.clone()];
    let mut actions = Vec::new();
    while !level.is_empty() {
        let mut next_level = Vec::new();
        for state in level {
            let from = fingerprint(&state);
            if !condition(model, &state) {
                // Walk back to the initial state, then replay the actions from it.
                let mut taken = Vec::new();
                let mut fp = from;
                while let Some(Some((prev, action))) = parent.get(&fp) {
                    taken.push(action.clone());
                    fp = *prev;
                }
                let mut path = Vec::new();
                let mut at = init;
                for action in taken.into_iter().rev() {
                    let next = model.next_state(&at, action.clone())?;
                    path.push((at, Some(action)));
                    at = next;
                }
                path.push((at, None));
                return Some(path);
            }
            actions.clear();
            model.actions(&state, &mut actions);
            for action in actions.drain(..) {
                let Some(next) = model.next_state(&state, action.clone()) else { continue };
                if let Entry::Vacant(e) = parent.entry(fingerprint(&next)) {
                    e.insert(Some((from, action)));
                    next_level.push(next);
                }
            }
        }
        level = next_level;
    }
    None
}

fn describe_path(model: &E2eModel, path: Vec<(World, Option<Action>)>) -> Vec<Step> {
    let mut steps = Vec::new();
    for (before, action) in path {
        let Some(action) = action else { continue };
        let Some(after) = model.next_state(&before, action.clone()) else { continue };
        let mut step = describe(&before, &action, &after);
        if model.conversation_broken(&after) && !model.conversation_broken(&before) {
            step.effects.push(
                "from here the honest conversation no longer gets through (recovery)".to_owned(),
            );
        }
        steps.push(step);
    }
    steps
}

fn describe(before: &World, action: &Action, after: &World) -> Step {
    use crate::world::honest_body;
    let (actor, target, what) = match action {
        Action::Send(w) => {
            let seq = after.ghost.sent[w.index()];
            let b = honest_body(*w, seq);
            (party(*w), "Server", format!("sends {b:?} to {}", w.peer().label()))
        }
        Action::Deliver(w) => ("Server", party(*w), format!("frame delivered to {}", w.label())),
        Action::Serve(w) => (
            "Server",
            "Server",
            format!("server handles {}'s frame with the honest code", w.label()),
        ),
        Action::Mitm(w) => (
            "Server",
            "Server",
            format!("malicious server opens {}'s frame and plays man in the middle", w.label()),
        ),
        Action::Drop(Dest::Server(w)) => {
            ("Attacker", "Server", format!("drops {}'s frame to the server", w.label()))
        }
        Action::Drop(Dest::Client(w)) => {
            ("Attacker", party(*w), format!("drops the frame to {}", w.label()))
        }
        Action::Skip(Dest::Client(w), k) => (
            "Attacker",
            party(*w),
            format!("drops {k} frame(s) to {}; the next is delivered to {}", w.label(), w.label()),
        ),
        Action::Skip(Dest::Server(w), k) => (
            "Attacker",
            "Server",
            format!(
                "drops {k} of {}'s frame(s) to the server; the server handles the next",
                w.label()
            ),
        ),
        Action::Replay(i, w) => {
            ("Attacker", party(*w), format!("replays observed frame #{i} on {}'s link", w.label()))
        }
        Action::Tamper(i) => {
            ("Attacker", "Server", format!("injects observed frame #{i} with one bit flipped"))
        }
        Action::InjectDeliver(kind, i, w) => (
            "Attacker",
            party(*w),
            format!(
                "{} observed frame #{i} into {}'s queue (dropping the frames there) and it is \
                 delivered",
                match kind {
                    crate::reduction::CopyKind::Replay => "replays",
                    crate::reduction::CopyKind::Tamper => "flips a bit of",
                    crate::reduction::CopyKind::Reflect => "reflects",
                },
                w.label()
            ),
        ),
        Action::Impersonate(w) => (
            "Attacker",
            "Server",
            format!("registers as {} with a key of its own and sends \"forged\"", w.label()),
        ),
        Action::ForgeHop(w) => (
            "Server",
            party(*w),
            format!(
                "seals Deliver{{from: {}, body: \"forged\"}} to {}",
                w.peer().label(),
                w.label()
            ),
        ),
        Action::Reinject(i) => {
            let to = before.know.seen.get(*i).map_or("?", |s| party(s.to));
            ("Server", to, format!("re-delivers message #{i} it saw (same content)"))
        }
        Action::ForgeE2e(w) => (
            "Server",
            party(*w),
            format!(
                "its impostor of {} encrypts \"forged\" to {} in its own session",
                w.peer().label(),
                w.label()
            ),
        ),
        Action::Reflect(i) => match before.know.seen.get(*i) {
            Some(seen) => (
                "Server",
                party(seen.from),
                format!(
                    "reflects message #{i} to its sender {}, as from {}",
                    seen.from.label(),
                    seen.to.label()
                ),
            ),
            None => ("Attacker", "Attacker", format!("reflects observed frame #{i} back")),
        },
        Action::ToSelf(i) => {
            let to = before.know.seen.get(*i).map_or("?", |s| party(s.from));
            ("Server", to, format!("delivers message #{i} to its sender, as from itself"))
        }
        Action::Rebuild(i, edit) => {
            let to = before.know.seen.get(*i).map_or("?", |s| party(s.to));
            let change = match edit {
                crate::model::Edit::ImpostorDh => {
                    "its identity's X25519 half swapped for the impostor's"
                }
                crate::model::Edit::ImpostorSign => {
                    "its identity's Ed25519 half swapped for the impostor's"
                }
                crate::model::Edit::NoOneTimePrekey => "without its one-time prekey id",
            };
            ("Server", to, format!("re-delivers prekey message #{i} {change}"))
        }
        Action::Close(w) => ("Attacker", party(*w), format!("{}'s link closes", w.label())),
        Action::Restart => {
            ("Server", "Server", "the server restarts from its durable state".to_owned())
        }
        Action::Connect(w) => {
            (party(*w), "Server", format!("{} starts its handshake (HandshakeInit)", w.label()))
        }
        Action::Rotate(w) => (
            party(*w),
            "Server",
            format!("{} rotates its signed prekey and uploads the new one", w.label()),
        ),
        Action::ForgeLow(w) => (
            "Server",
            party(*w),
            format!("seals PrekeysLow of its own to {}: no fetch left its store low", w.label()),
        ),
        Action::Answer(w, reply) => {
            let answer = match reply {
                crate::model::Reply::NoBundle => "NoBundle",
                crate::model::Reply::WithoutOneTime => "the real bundle without one-time prekey",
                crate::model::Reply::OldSignedPrekey => {
                    "the real bundle with the signed prekey a rotation replaced"
                }
                crate::model::Reply::OwnSignedPrekey => {
                    "the real identity with a signed prekey of its own"
                }
            };
            ("Server", party(*w), format!("answers {}'s bundle request with {answer}", w.label()))
        }
        Action::Pad(w) => (
            "Server",
            party(*w),
            format!(
                "answers {}'s request itself, with a byte after the answer's last field",
                w.label()
            ),
        ),
        Action::Compromise => (
            "Attacker",
            "Attacker",
            "compromise: learns Alice's and Bob's long-term keys".to_owned(),
        ),
        Action::MSend(w) => (
            "Attacker",
            party(*w),
            format!("M sends {} a message of its own ({FORGED_BODY:?})", w.label()),
        ),
        Action::MRelay(i, w) => {
            ("Attacker", party(*w), format!("M relays message #{i} it received to {}", w.label()))
        }
        Action::CopyState(w) => (
            "Attacker",
            party(*w),
            format!(
                "copies {}'s whole state, then only reads what reaches {}",
                w.label(),
                w.label()
            ),
        ),
    };
    let mut effects = Vec::new();
    for imp in after.know.impostors.iter() {
        let old = before.know.impostors.iter().find(|i| i.impersonates == imp.impersonates);
        if old.is_some_and(|o| o.handed_out != imp.handed_out) {
            effects.push(format!(
                "server hands out a bundle of its own keys as {}'s",
                imp.impersonates.label()
            ));
        }
    }
    for a in &after.ghost.accepted {
        let was = before.ghost.accepted.iter().filter(|b| *b == a).count();
        let now = after.ghost.accepted.iter().filter(|b| *b == a).count();
        if now > was {
            effects.push(format!("{} accepts {:?} as from {}", a.by.label(), a.body, a.from));
        }
    }
    for b in after.know.learned.difference(&before.know.learned) {
        effects.push(format!("attacker learns {b:?}"));
    }
    if let (Some(now), old) = (&after.ghost.pcs, before.ghost.pcs.as_ref()) {
        let victim = now.victim;
        for k in now.read.iter().filter(|k| old.is_none_or(|o| !o.read.contains(*k))) {
            let b = honest_body(victim.peer(), *k);
            let when = if now.protects(*k) { "after" } else { "before" };
            effects.push(format!(
                "the copy of {}'s state reads {b:?} (sent {when} the round trip)",
                victim.label()
            ));
        }
        if now.healed_after.is_some() && old.is_none_or(|o| o.healed_after.is_none()) {
            let (peer, victim) = (victim.peer().label(), victim.label());
            effects.push(format!(
                "round trip: {peer} accepts a message {victim} sealed after the copy (in e2e, \
                 under a ratchet key {victim} drew after it)"
            ));
        }
    }
    for b in after.ghost.fs_leak.difference(&before.ghost.fs_leak) {
        effects.push(format!("{b:?} (sent before compromise) opened with compromised keys"));
    }
    for b in after.ghost.own_prekey_leak.difference(&before.ghost.own_prekey_leak) {
        effects.push(format!(
            "{b:?} opened with a compromised identity and the attacker's own signed prekey"
        ));
    }
    let (seals, old) = (&after.ghost.seals, &before.ghost.seals);
    if let Some(by) = seals.nonce_reused.filter(|_| old.nonce_reused.is_none()) {
        effects
            .push(format!("{} seals a second time under a (key, nonce) already used", by.label()));
    }
    if let Some((first, then)) = seals.key_shared.filter(|_| old.key_shared.is_none()) {
        effects.push(format!("{} seals with a key {} sealed with", then.label(), first.label()));
    }
    if after.ghost.malformed_accepted && !before.ghost.malformed_accepted {
        effects.push("the client acts on the malformed frame".to_owned());
    }
    if after.ghost.forgery_rejected && !before.ghost.forgery_rejected {
        effects.push("the injected frame is refused".to_owned());
    }
    Step { actor, target, what, effects }
}

/// The text table of `results`.
#[must_use]
pub fn table(results: &[CheckResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<15} {:<3} {:<37} {:<9} {:<9} {:>9} {:>9} {:>5} {:>8}",
        "variant", "att", "property", "result", "expected", "states", "unique", "depth", "time"
    );
    for r in results {
        for c in &r.cells {
            let result = if c.holds { "holds" } else { "VIOLATED" };
            let expected = match (c.expected.claimed, c.expected.holds) {
                (false, _) => "—",
                (true, true) => "holds",
                (true, false) => "violated",
            };
            let mark = if c.holds == c.expected.holds { "" } else { "  <-- differs" };
            let _ = writeln!(
                out,
                "{:<15} {:<3} {:<37} {:<9} {:<9} {:>9} {:>9} {:>5} {:>7.1}s{mark}",
                r.variant.label(),
                r.attacker.label(),
                c.property,
                result,
                expected,
                r.states,
                r.unique_states,
                r.depth,
                r.elapsed.as_secs_f64()
            );
        }
    }
    out
}

/// Every counterexample of `results`, as text.
#[must_use]
pub fn traces(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for r in results {
        for c in &r.cells {
            let Some(trace) = &c.trace else { continue };
            let _ = writeln!(
                out,
                "\n== {} vs {} ({}): {} VIOLATED — shortest counterexample ({} steps)",
                r.variant,
                r.attacker,
                r.attacker.describe(r.variant),
                c.property,
                trace.len()
            );
            for (i, step) in trace.iter().enumerate() {
                let _ = writeln!(out, "  {:>2}. [{}] {}", i + 1, step.actor, step.what);
                for e in &step.effects {
                    let _ = writeln!(out, "        -> {e}");
                }
            }
        }
    }
    out
}

/// Every counterexample of `results`, as Mermaid sequence diagrams.
#[must_use]
pub fn mermaid(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for r in results {
        for c in &r.cells {
            let Some(trace) = &c.trace else { continue };
            let _ = writeln!(out, "\n%% {} vs {}: {} violated", r.variant, r.attacker, c.property);
            let _ = writeln!(out, "sequenceDiagram");
            for p in ["Alice", "Server", "Bob", "Attacker"] {
                let _ = writeln!(out, "    participant {p}");
            }
            for step in trace {
                let what = step.what.replace(';', ",").replace('"', "'");
                if step.actor == step.target {
                    let _ = writeln!(out, "    Note over {}: {what}", step.actor);
                } else {
                    let _ = writeln!(out, "    {}->>{}: {what}", step.actor, step.target);
                }
                for e in &step.effects {
                    let e = e.replace(';', ",").replace('"', "'");
                    let _ = writeln!(out, "    Note over {}: {e}", step.target);
                }
            }
        }
    }
    out
}

/// `results` as a JSON array, one object per (variant, attacker, property).
#[must_use]
pub fn to_json(results: &[CheckResult]) -> Value {
    let mut rows = Vec::new();
    for r in results {
        for c in &r.cells {
            let trace = c.trace.as_ref().map(|t| {
                t.iter()
                    .map(|s| json!({"actor": s.actor, "action": s.what, "effects": s.effects}))
                    .collect::<Vec<_>>()
            });
            rows.push(json!({
                "variant": r.variant.label(),
                "attacker": r.attacker.label(),
                "property": c.property,
                "kind": c.kind,
                "result": if c.holds { "holds" } else { "violated" },
                "expected": if !c.expected.claimed { "—" } else if c.expected.holds { "holds" } else { "violated" },
                "states": r.states,
                "unique_states": r.unique_states,
                "depth": r.depth,
                "seconds": r.elapsed.as_secs_f64(),
                "bounds": {
                    "alice_messages": r.bounds.alice_messages,
                    "bob_messages": r.bounds.bob_messages,
                    "budget": r.bounds.budget,
                    "seed": r.bounds.seed,
                },
                "trace": trace,
            }));
        }
    }
    Value::Array(rows)
}

/// Whether every cell of `results` matches the unflawed expectation.
#[must_use]
pub fn as_expected(results: &[CheckResult]) -> bool {
    results.iter().flat_map(|r| &r.cells).all(|c| c.holds == c.expected.holds)
}

/// Whether a seeded flaw is caught: some `always` property that holds on the unflawed protocol
/// is violated.
#[must_use]
pub fn caught(results: &[CheckResult]) -> bool {
    results
        .iter()
        .flat_map(|r| &r.cells)
        .any(|c| c.kind == "always" && c.expected.holds && !c.holds)
}
