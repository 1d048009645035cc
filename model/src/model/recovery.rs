//! `recovery` (spec/MODEL.md §4): the honest completion of a state, and the two properties that
//! read it.
//!
//! A completion is a short honest run from a state: the clients connect, everything in flight is
//! delivered, each client sends one more message (its probe), everything is delivered again. It
//! is made of the run's own steps (spec/MODEL.md §1, §4): every call goes through the step memos
//! ([`Steps`]) on the state's own role copies, and draws from the parties' own RNG streams from
//! the state's draw counters on, as the model's `Connect`, `Serve`, `Deliver` and `Send` actions
//! would from that state. So its deliveries are steps the search takes too, found in their memos,
//! and the completions of the states of one run, whose roles converge once their frames are
//! delivered, share their second half, which is memoised on that quiet point (`Quiet`). A
//! state's completion is computed once for the two rows that read it (`recovery` and its
//! `sometimes` row).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use e2e_protocol::roles::{Client, ClientEvent, Server};

use super::E2eModel;
use crate::steps::{Draw, Steps};
use crate::world::{Dest, Net, Shared, Who, World, body, text};

/// What an honest completion ([`E2eModel::gets_through`]) reads of a state: the roles, the frames
/// in flight but the network attacker's copies to a client, which clients sent their bundle, and
/// the draw counters its calls continue from. Nothing else: states that differ only in the ghost
/// log, the attacker's knowledge or the copies in flight to a client share one completion.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Input {
    clients: [Shared<Client>; 2],
    server: Shared<Server>,
    net: Net,
    uploaded: [bool; 2],
    uploaded_here: [bool; 2],
    draws: [u32; 3],
}

/// What the second half of a completion reads: the roles, once everything in flight was
/// delivered, with which clients sent their bundle, the draw counters and which probes arrived.
/// States of one run converge here (the same roles after their frames are delivered), and
/// comparing it is cheap: the roles' hashes are kept, and most are one interned copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Quiet {
    clients: [Shared<Client>; 2],
    server: Shared<Server>,
    uploaded: [bool; 2],
    uploaded_here: [bool; 2],
    draws: [u32; 3],
    heard: [bool; 2],
    reconnects: [u8; 2],
}

/// The most quiet points [`Completions`] keeps; a full memo is emptied and fills again. Measured
/// (spec/MODEL.md §8): e2e-unverified vs M at 2/2/1 met 15,321 distinct quiet points in its
/// first 1.8M completions (120 s), far fewer than states, which share them.
const MAX_QUIET: usize = 1 << 16;

/// Numbers the memos of [`Completions`], so that a thread's last completion is never taken for
/// another model's (another seed, flaw or variant).
static MEMOS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's last completion: (memo, input, result). The checker evaluates a state's
    /// properties one after the other on one thread, so `recovered` finds what `recovery` just
    /// computed for the same state.
    static LAST: RefCell<Option<(u64, Input, Option<bool>)>> = const { RefCell::new(None) };
}

/// What one model remembers of its completions.
#[derive(Debug)]
pub struct Completions {
    id: u64,
    quiet: Mutex<HashMap<Quiet, Option<bool>>>,
}

impl Default for Completions {
    fn default() -> Self {
        Self { id: MEMOS.fetch_add(1, Ordering::Relaxed), quiet: Mutex::default() }
    }
}

impl Completions {
    /// The result of `input`'s completion, computed by `complete` unless it is this thread's last.
    fn get(&self, input: Input, complete: impl FnOnce(&Input) -> Option<bool>) -> Option<bool> {
        let last = LAST.with_borrow(|last| match last {
            Some((id, kept, result)) if *id == self.id && *kept == input => Some(*result),
            _ => None,
        });
        if let Some(result) = last {
            return result;
        }
        let result = complete(&input);
        LAST.set(Some((self.id, input, result)));
        result
    }

    /// The result of the second half from `quiet`, computed by `finish` unless known.
    fn finish(&self, quiet: Quiet, finish: impl FnOnce() -> Option<bool>) -> Option<bool> {
        if let Some(known) = self.quiet.lock().unwrap_or_else(PoisonError::into_inner).get(&quiet) {
            return *known;
        }
        let result = finish();
        let mut memo = self.quiet.lock().unwrap_or_else(PoisonError::into_inner);
        if memo.len() >= MAX_QUIET {
            memo.clear();
        }
        memo.insert(quiet, result);
        result
    }
}

impl E2eModel {
    /// Whether `s` breaks the conversation for good: `recovery` judges it (an injected frame was
    /// refused on the run, and the attacker did nothing else) and its honest completion does not
    /// get through (spec/MODEL.md §4). A function of the state alone, not of the path to it.
    #[must_use]
    pub fn conversation_broken(&self, s: &World) -> bool {
        judged(s) && self.completes(s) == Some(false)
    }

    /// [`Self::gets_through`], memoised.
    fn completes(&self, s: &World) -> Option<bool> {
        let mut net = s.net.clone();
        for queue in &mut net.to_client {
            queue.retain(|f| !f.copy);
        }
        let input = Input {
            clients: s.clients.clone(),
            server: s.server.clone(),
            net,
            uploaded: s.life.uploaded,
            uploaded_here: s.life.uploaded_here,
            draws: s.draws,
        };
        let result = self.completions.get(input, |input| self.gets_through(input));
        // The completion's seals were made on copies of the roles.
        Self::unsealed();
        result
    }

    /// Whether the honest conversation still gets through both ways from the roles and frames
    /// of `input` with the attacker silent (spec/MODEL.md §4, `recovery`): a client not yet
    /// connected connects (and in e2e publishes its bundle on `Connected`, as in the run), every
    /// frame in flight — but the network attacker's copies in flight to a client, which `input`
    /// leaves out — is delivered in its queue's order until none is left, then each client sends
    /// one more message to the other, the server handles every frame honestly, and again every
    /// frame is delivered. `None` if a client accepted a frame the attacker injected on the way
    /// (a forgery that worked: `authenticity` reports it, not this).
    fn gets_through(&self, input: &Input) -> Option<bool> {
        let mut c = Completion {
            steps: &self.steps,
            seed: self.bounds.seed,
            clients: input.clients.clone(),
            server: input.server.clone(),
            draws: input.draws,
            queue: VecDeque::new(),
            uploaded: if self.variant.is_e2e() { input.uploaded } else { [true; 2] },
            uploaded_here: input.uploaded_here,
            heard: [false; 2],
            reconnects: [0; 2],
        };
        for w in Who::BOTH {
            let queues = [&input.net.to_server[w.index()], &input.net.to_client[w.index()]];
            for (dest, frames) in [Dest::Server(w), Dest::Client(w)].into_iter().zip(queues) {
                c.queue.extend(frames.iter().map(|f| (dest, f.bytes.clone(), f.injected)));
            }
        }
        for w in Who::BOTH {
            // `connect` fails unless the client is offline: one that is connecting goes on, and
            // one that is connected is not asked (the call would fail and change nothing).
            if c.clients[w.index()].is_connected() {
                continue;
            }
            let draw = c.draw(w.index());
            if let Some(init) = c.steps.connect(&mut c.clients[w.index()], draw) {
                c.drawn(w.index());
                c.uploaded_here[w.index()] = false;
                c.queue.push_back((Dest::Server(w), init, false));
            }
        }
        c.run()?;
        if !c.queue.is_empty() {
            // Stopped at [`MAX_COMPLETION_FRAMES`] with frames left: not a quiet point.
            return self.probe(c);
        }
        let quiet = Quiet {
            clients: c.clients.clone(),
            server: c.server.clone(),
            uploaded: c.uploaded,
            uploaded_here: c.uploaded_here,
            draws: c.draws,
            heard: c.heard,
            reconnects: c.reconnects,
        };
        self.completions.finish(quiet, || self.probe(c))
    }

    /// The second half of a completion: each client sends its probe, and every frame is
    /// delivered. Whether both probes arrived.
    fn probe(&self, mut c: Completion<'_>) -> Option<bool> {
        for w in Who::BOTH {
            let (to, probe) = (w.peer().name(), body(&probe_body(w)));
            let Some(probe) = probe else { return Some(false) };
            let draw = c.draw(w.index());
            let client = &mut c.clients[w.index()];
            let sent = if self.variant.is_e2e() {
                c.steps.send_e2e(client, &to, probe, draw).map(|out| out.transmit)
            } else {
                c.steps.send_hop(client, &to, probe).map(|frame| vec![frame])
            };
            let Some(frames) = sent else { return Some(false) };
            if self.variant.is_e2e() {
                c.drawn(w.index());
            }
            c.queue.extend(frames.into_iter().map(|f| (Dest::Server(w), f, false)));
        }
        c.run()?;
        Some(c.heard == [true; 2])
    }
}

/// The most frames an honest completion ([`E2eModel::gets_through`]) delivers: far more than the
/// model's bounds produce, so that only a bug that makes frames beget frames reaches it.
const MAX_COMPLETION_FRAMES: usize = 1000;

/// The most times a client connects again in one completion after the server refused a frame on
/// its link before confirming it, which closes the link (SPEC.md §7.2): once per injected frame
/// in flight would do, and the model's budgets allow at most two.
const MAX_RECONNECTS: u8 = 2;

/// The server's RNG stream in the run (`world::rng`'s party 2, which it shares with the
/// attacker): the honest server's calls draw from it, as `Serve` does.
const SERVER: usize = 2;

/// An honest completion ([`E2eModel::gets_through`]): the roles (shared with the states, changed
/// through the step memos), the frames in flight (destination, bytes, whether injected), and which
/// client heard its peer's probe.
struct Completion<'m> {
    steps: &'m Steps,
    seed: u64,
    clients: [Shared<Client>; 2],
    server: Shared<Server>,
    /// The next draw of Alice, Bob and the server: each advances only when that party's call
    /// succeeds (and, for a delivery or a service, drew from its stream), as in the run
    /// (spec/MODEL.md §1), so a refused input changes nothing, its draws included.
    draws: [u32; 3],
    queue: VecDeque<(Dest, Vec<u8>, bool)>,
    /// Per client: whether its bundle was sent (a client publishes it on `Connected`), and whether
    /// on its current connection (lost with it if it closes unconfirmed).
    uploaded: [bool; 2],
    uploaded_here: [bool; 2],
    heard: [bool; 2],
    /// Per client: how often it connected again after its link closed (at most
    /// [`MAX_RECONNECTS`]).
    reconnects: [u8; 2],
}

impl Completion<'_> {
    /// `party`'s next RNG stream.
    const fn draw(&self, party: usize) -> Draw {
        Draw { seed: self.seed, party: party as u64, counter: self.draws[party] }
    }

    /// `party`'s call just made succeeded and drew: its next call draws from the next point of
    /// its stream.
    const fn drawn(&mut self, party: usize) {
        self.draws[party] = self.draws[party].wrapping_add(1);
    }

    /// The server refused a frame on `w`'s link: as in the run's `Serve`, an unconfirmed link
    /// closes (SPEC.md §7.2) and the frames in flight on it are lost; then `w`'s client, offline,
    /// connects again, as its user would (at most [`MAX_RECONNECTS`] times).
    fn close_unconfirmed(&mut self, w: Who) {
        if self.server.link_of(&w.name()) == Some(w.link()) {
            return;
        }
        self.server.make_mut().close_link(w.link());
        self.close_displaced(w);
    }

    /// The server forgot `w`'s link (a refusal before confirmation, or a newer connection of
    /// `w`'s name: the run's `route`, spec/MODEL.md §4): its driver closes it, the frames in flight
    /// on it are lost, and `w`'s client, offline, connects again as its user would (at most
    /// [`MAX_RECONNECTS`] times).
    fn close_displaced(&mut self, w: Who) {
        self.queue.retain(|(dest, _, _)| *dest != Dest::Server(w) && *dest != Dest::Client(w));
        let i = w.index();
        self.clients[i].make_mut().disconnect();
        if self.uploaded_here[i] {
            self.uploaded[i] = false;
            self.uploaded_here[i] = false;
        }
        if self.reconnects[i] >= MAX_RECONNECTS {
            return;
        }
        self.reconnects[i] += 1;
        let draw = self.draw(i);
        if let Some(init) = self.steps.connect(&mut self.clients[i], draw) {
            self.drawn(i);
            self.uploaded_here[i] = false;
            self.queue.push_back((Dest::Server(w), init, false));
        }
    }

    /// Delivers every frame in flight, and every frame that causes, in order (at most
    /// [`MAX_COMPLETION_FRAMES`]). `None` if a client accepted an injected frame.
    fn run(&mut self) -> Option<()> {
        for _ in 0..MAX_COMPLETION_FRAMES {
            let Some((dest, bytes, injected)) = self.queue.pop_front() else { break };
            match dest {
                Dest::Server(w) => {
                    let draw = self.draw(SERVER);
                    let Some((out, drew)) =
                        self.steps.serve(&mut self.server, w.link(), &bytes, draw)
                    else {
                        self.close_unconfirmed(w);
                        continue;
                    };
                    if drew {
                        self.drawn(SERVER);
                    }
                    // As the run's `route`: a durable server's delivered mailbox is settled.
                    for delivery in &out.delivered {
                        let _removed = self.server.make_mut().settle(delivery);
                    }
                    for (link, frame) in out.transmit {
                        if let Some(to) = Who::of_link(link) {
                            self.queue.push_back((Dest::Client(to), frame, injected));
                        }
                    }
                    for to in out.close.iter().filter_map(|link| Who::of_link(*link)) {
                        if to != w {
                            self.close_displaced(to);
                        }
                    }
                }
                Dest::Client(w) => {
                    let i = w.index();
                    let draw = self.draw(i);
                    let Some((out, drew)) = self.steps.handle(&mut self.clients[i], &bytes, draw)
                    else {
                        continue;
                    };
                    if drew {
                        self.drawn(i);
                    }
                    let mut transmit = out.transmit;
                    for event in &out.events {
                        match event {
                            ClientEvent::Received { .. } if injected => return None,
                            ClientEvent::Received { from, body, .. }
                                if *from == w.peer().name()
                                    && text(body) == probe_body(w.peer()) =>
                            {
                                self.heard[i] = true;
                            }
                            ClientEvent::Connected if !self.uploaded[i] => {
                                if let Some(upload) = self.steps.upload(&mut self.clients[i]) {
                                    self.uploaded[i] = true;
                                    self.uploaded_here[i] = true;
                                    transmit.push(upload);
                                }
                            }
                            _ => {}
                        }
                    }
                    self.queue.extend(transmit.into_iter().map(|f| (Dest::Server(w), f, false)));
                }
            }
        }
        Some(())
    }
}

/// The message `from` sends in an honest completion ([`E2eModel::gets_through`]): not an honest
/// message of the run.
fn probe_body(from: Who) -> String {
    format!("probe-{}", from.label())
}

/// Whether `recovery` judges `s` (spec/MODEL.md §4): on the run a role refused an injected
/// frame, a client topped up on a `PrekeysLow` the malicious server forged, or a top-up was lost
/// with its link; the attacker did nothing else (`interfered`); and no compromise ended the run.
/// Read from flags each step sets from what it did itself: the same steps in another order give
/// the same value.
const fn judged(s: &World) -> bool {
    let triggered = s.ghost.forgery_rejected
        || s.ghost.forged_notices > 0
        || s.ghost.top_up_lost[0]
        || s.ghost.top_up_lost[1];
    triggered && !s.ghost.interfered && s.ghost.compromised.is_none()
}

/// `recovery`: in every state it judges, the honest completion gets through (or is
/// inconclusive: a client accepted an injected frame on the way, which `authenticity` judges).
pub(super) fn holds(model: &E2eModel, s: &World) -> bool {
    !model.conversation_broken(s)
}

/// Sometimes: a state `recovery` judges after a refusal, whose honest completion gets through.
pub(super) fn recovered(model: &E2eModel, s: &World) -> bool {
    s.ghost.forgery_rejected && recovered_from(model, s)
}

/// Whether `recovery` judges `s` and its honest completion gets through: the `sometimes` rows
/// that show `recovery` is not vacuous, one per trigger.
pub(super) fn recovered_from(model: &E2eModel, s: &World) -> bool {
    judged(s) && model.completes(s) == Some(true)
}
