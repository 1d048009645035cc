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

/// The form in which the network attacker records a frame it observed: without the `injected`
/// flag. `Replay` and `Tamper` overwrite it (their copy is injected), and `Reflect` and
/// `Compromise` read only the bytes; so a frame and its replayed copy are
/// one observation, and one choice for the attacker instead of two with the same result.
#[must_use]
pub fn observed(frame: &Frame) -> Frame {
    Frame { injected: false, ..frame.clone() }
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
