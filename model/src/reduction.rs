//! Sound state reductions: parts of a state that no later step and no property reads are put in
//! one canonical form, so that states that differ only there are one state (spec/MODEL.md §7.1).
//!
//! A reduction here never removes a transition and never changes a role or the ghost log's
//! fields that a property reads; it only forgets information that is *dead*: no action enabled
//! in this state or any later one, and no property, can observe it. Two states that differ only
//! in dead information have the same futures (the same actions, giving states that again differ
//! only in dead information) and the same property values, so merging them skips no violating
//! state. Each reduction below states what reads the information it forgets.

use crate::config::Attacker;
use crate::model::{Action, E2eModel};
use crate::world::{Dest, Frame, Who, World};

/// The drops the attacker may make in `s`, each deferred to the next delivery on its queue:
/// [`Action::Skip`]`(queue, k)` drops `k` frames and delivers the next (spec/MODEL.md §7.1).
///
/// A drop that only removes the head of a queue is *invisible* (it changes nothing a property
/// reads: no role, no ghost log, no knowledge) and commutes with every step but the next one
/// that takes a frame from the same queue: the other steps touch other parts of the state, or
/// append to this queue behind a head that is still there. So on any run, each such drop can be
/// moved later, to just before the next step that takes from its queue — a delivery, or another
/// drop, which moves with it — and a drop that no later step follows is left out. The moved run is
/// a run of this model (its drops are `Skip`s) and passes through the same values of every
/// property in the same order, the frames not yet dropped being read by no property. Its states
/// are states of the full model (a `Skip` is drops then a delivery). What is not visited are the
/// states between a drop and the delivery after it, and states that differ from visited ones only
/// by frames dropped for good.
///
/// Which drops are such: every drop of a frame to a client (only `Deliver` and the drop take
/// from those queues), and, when the attacker is not the server, every drop of a frame to the
/// server (only the honest `Serve` takes from those; `Compromise` in hop reads the observed
/// frames, not the queues). The malicious server's drop reads the frame first (it learns, and its
/// channel advances): it is visible, stays an [`Action::Drop`], and is explored at every point.
/// This holds while no other step reads a queue (a new action that does must be added here).
pub fn deferred_drops(model: &E2eModel, s: &World, actions: &mut Vec<Action>) {
    // M and P leave the network honest: nothing is dropped.
    if !model.attacker.holds_the_wire() {
        return;
    }
    let server_attacker = model.attacker.is_server(model.variant);
    for w in Who::BOTH {
        let mut queues = vec![Dest::Client(w)];
        if !server_attacker {
            queues.push(Dest::Server(w));
        }
        for dest in queues {
            let len = match dest {
                Dest::Client(w) => s.net.to_client[w.index()].len(),
                Dest::Server(w) => s.net.to_server[w.index()].len(),
            };
            actions.extend((1..len).map(|k| Action::Skip(dest, k)));
        }
    }
}

/// Drops the first `k` frames of `dest`'s queue, if more than `k` are there (a frame must be left
/// to deliver).
pub fn skip(s: &mut World, dest: Dest, k: usize) -> Option<()> {
    let queue = s.net.queue(dest);
    if queue.len() <= k {
        return None;
    }
    queue.drain(..k);
    Some(())
}

/// How the network attacker copies a frame it observed (spec/MODEL.md §3): `Replay` sends the
/// same bytes again, `Tamper` with their last bit flipped, `Reflect` back the other way on the
/// link they travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyKind {
    /// The same bytes, towards the same kind of destination on a link of the attacker's choice.
    Replay,
    /// The same bytes with their last bit flipped, towards the same destination.
    Tamper,
    /// The same bytes, back the other way on their link: to their sender, or from a client's
    /// queue to the server on that client's link.
    Reflect,
}

impl CopyKind {
    /// The queue copy `self` of a frame observed going to `seen` joins; `link` names the link of
    /// a replay (the others keep theirs).
    #[must_use]
    pub const fn dest(self, seen: Dest, link: Who) -> Dest {
        match (self, seen) {
            (Self::Replay, Dest::Server(_)) => Dest::Server(link),
            (Self::Replay, Dest::Client(_)) => Dest::Client(link),
            (Self::Tamper, dest) => dest,
            (Self::Reflect, Dest::Server(w)) => Dest::Client(w),
            (Self::Reflect, Dest::Client(w)) => Dest::Server(w),
        }
    }

    /// Copy `self` of `frame`: a replay keeps its ghost tag (it is an exact copy of what its
    /// destination was sent, if it goes the same way); a tampered or reflected copy has none.
    #[must_use]
    pub fn of(self, frame: &Frame) -> Option<Frame> {
        let mut bytes = frame.bytes.clone();
        Some(match self {
            Self::Replay => Frame::copied(bytes, frame.tag),
            Self::Tamper => {
                *bytes.last_mut()? ^= 1;
                Frame::copied(bytes, None)
            }
            Self::Reflect => Frame::copied(bytes, None),
        })
    }
}

/// The network attacker's copies of the frames it observed, as actions (N, and C in hop): each
/// observed frame replayed on either link, tampered with, and reflected. Where
/// [`injects_at_delivery`] holds, a copy into a client's queue is offered only delivered at once
/// ([`Action::InjectDeliver`]); a copy into a queue to the server is always a step of its own.
pub fn copies(model: &E2eModel, s: &World, actions: &mut Vec<Action>) {
    let at_delivery = injects_at_delivery(model, s);
    for (index, (seen, _)) in s.know.observed.iter().enumerate() {
        let kinds = [
            (CopyKind::Replay, Who::Alice),
            (CopyKind::Replay, Who::Bob),
            (CopyKind::Tamper, Who::Alice),
            (CopyKind::Reflect, Who::Alice),
        ];
        for (kind, link) in kinds {
            actions.push(match (kind.dest(*seen, link), kind) {
                (Dest::Client(to), _) if at_delivery => Action::InjectDeliver(kind, index, to),
                (_, CopyKind::Replay) => Action::Replay(index, link),
                (_, CopyKind::Tamper) => Action::Tamper(index),
                (_, CopyKind::Reflect) => Action::Reflect(index),
            });
        }
    }
}

/// Whether the network attacker's copies into a client's queue are delivered at once in `s`
/// ([`Action::InjectDeliver`]: the queue's frames dropped, if any, the copy injected and
/// delivered), instead of joining the queue (spec/MODEL.md §7.1). That is where the attacker
/// holds the wire and is not the server (N, and C in hop), for the copy that spends the last
/// injection of its budget.
///
/// Take a run on which copy `F` of that last injection joins client `R`'s queue at step `t` and is
/// delivered at step `t'`. With the budget spent, every step between them is an honest step or a
/// deferred drop (`Skip`): no injection, registration or outage. The steps among them that `F`'s
/// delivery depends on are `R`'s own — its sends, connects and rotations, and the deliveries and
/// drops of the frames queued ahead of `F` — which read only `R`'s client, its draw counter,
/// `R`'s `life` and ghost entries, and those frames. Every other step — the server's, the peer's,
/// their drops — writes none of that: it takes from the head of a queue to the server, appends to
/// a client's queue behind `F`, and appends to no queue of `R`'s link to the server, which only
/// `R`'s steps append to (an injection would, and there is none). So the other steps move, in
/// their order, to just after `F`'s delivery, and `F`'s injection to just before it, when `R`'s
/// queue is empty or holds only frames the delivery's drop removes: each step reads what it read
/// before, and the run ends in the same state. A copy that is never delivered — dropped, or still
/// in flight — is left out: nothing read it, and the run has one injection left. The moved run
/// passes through other states than the run; what makes that sound for the properties is that
/// each is a function of the state, not of the path ([`crate::model`]'s `recovery` included,
/// whose completion leaves the copies in flight to a client out): every state of the run, with
/// the copy in flight left out, is the last state of such a moved run of its prefix.
///
/// Only the last injection: an earlier one may be followed by an injection into a queue of `R`'s
/// link to the server, made from a frame an other step put on the wire, between two frames `R`
/// sends — a step that can move neither before nor after `F`'s delivery.
#[must_use]
pub fn injects_at_delivery(model: &E2eModel, s: &World) -> bool {
    model.attacker.holds_the_wire()
        && !model.attacker.is_server(model.variant)
        && s.know.budget == 1
}

/// The form in which the network attacker records a frame it observed: without the `injected`
/// flag. `Replay` and `Tamper` overwrite it (their copy is injected), and `Reflect` and
/// `Compromise` read only the bytes; so a frame and its replayed copy are
/// one observation, and one choice for the attacker instead of two with the same result.
#[must_use]
pub fn observed(frame: &Frame) -> Frame {
    Frame { injected: false, copy: false, ..frame.clone() }
}

/// Puts the dead parts of `s` in their canonical form (called on every new state).
///
/// * **Spent budget, no compromise.** The observed frames (N) and the opened messages (S) are
///   read only by `Replay`, `Tamper` and `Reinject`, which each spend budget, and by
///   `Compromise` (attacker C only); no property reads them. With the budget at 0 and an
///   attacker other than C they are dead, and emptied.
pub fn canonical(model: &E2eModel, s: &mut World) {
    if s.know.budget == 0 && model.attacker != Attacker::Compromise {
        if !s.know.observed.is_empty() {
            s.know.observed = Default::default();
        }
        if !s.know.seen.is_empty() {
            s.know.seen = Default::default();
        }
    }
}
