//! The network attacker's last injection into a client's queue, delivered at once
//! (`Action::InjectDeliver`, spec/MODEL.md §7.1), `recovery` as a function of the state (§4),
//! the man in the middle offered only where it forges, and a call that draws nothing from its
//! RNG stream leaving its party's point where it was (§1, §7.1): step by step on the model's own
//! transitions.

mod common;

#[cfg(test)]
mod tests {
    use super::common::{holds, run, step};
    use e2e_model::model::names::{RECOVERED, RECOVERY};
    use e2e_model::reduction::CopyKind;
    use e2e_model::world::{Dest, Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};
    use stateright::Model;

    const SMALL: Bounds = Bounds { bob_messages: 0, set_ups: 0, outages: 0, ..Bounds::DEFAULT };

    /// hop vs N: Alice sent a1, the server relayed it, and it waits in Bob's queue (observed).
    fn a1_in_flight(bounds: Bounds) -> (E2eModel, World) {
        let model = E2eModel::new(Variant::Hop, Attacker::Network, bounds).expect("setup");
        let s = model.init_states().remove(0);
        let s = step(&model, &s, Action::Send(Who::Alice));
        let s = step(&model, &s, Action::Serve(Who::Alice));
        assert_eq!(s.net.to_client[Who::Bob.index()].len(), 1, "a1 waits for Bob");
        (model, s)
    }

    /// The index of the observed frame a1 took to Bob.
    fn observed_a1(s: &World) -> usize {
        s.know
            .observed
            .iter()
            .position(|(dest, f)| *dest == Dest::Client(Who::Bob) && f.tag == Some((Who::Alice, 1)))
            .expect("a1 to Bob was observed")
    }

    /// With the last injection left, a copy into a client's queue is offered only delivered at
    /// once; a copy into a queue to the server stays a step of its own.
    #[test]
    fn the_last_injection_into_a_client_queue_is_delivered_at_once() {
        let (model, s) = a1_in_flight(SMALL);
        let i = observed_a1(&s);
        let mut enabled = Vec::new();
        model.actions(&s, &mut enabled);
        assert!(enabled.contains(&Action::InjectDeliver(CopyKind::Replay, i, Who::Bob)));
        assert!(!enabled.contains(&Action::Replay(i, Who::Bob)), "no copy waits in a queue");
        assert!(!enabled.contains(&Action::Tamper(i)));
        assert!(enabled.iter().any(|a| matches!(a, Action::Replay(_, _))), "to the server");

        // With two injections left, the first joins the queue as before.
        let (model, s) = a1_in_flight(Bounds { budget: 2, ..SMALL });
        let mut enabled = Vec::new();
        model.actions(&s, &mut enabled);
        assert!(enabled.contains(&Action::Replay(observed_a1(&s), Who::Bob)));
        assert!(!enabled.iter().any(|a| matches!(a, Action::InjectDeliver(..))));
    }

    /// `InjectDeliver` is the injection, then the drop of what was queued ahead of it (if any),
    /// then the delivery: the same state as those steps of the full model.
    #[test]
    fn inject_deliver_is_the_injection_then_the_delivery() {
        let (model, s) = a1_in_flight(SMALL);
        let i = observed_a1(&s);
        let copy = Action::InjectDeliver(CopyKind::Replay, i, Who::Bob);

        // Bob's queue holds a1: it is dropped, and the copy delivered in its place.
        let reduced = step(&model, &s, copy.clone());
        let injected = model.next_state(&s, Action::Replay(i, Who::Bob)).expect("replay");
        let full = model.next_state(&injected, Action::Skip(Dest::Client(Who::Bob), 1));
        assert_eq!(Some(&reduced), full.as_ref());
        assert!(reduced.ghost.interfered, "a drop");
        assert_eq!(reduced.ghost.accepted.len(), 1, "Bob reads a1 from the copy");

        // Bob's queue empty (a1 delivered): the copy is refused, and `recovery` judges the state.
        let s = step(&model, &s, Action::Deliver(Who::Bob));
        let reduced = step(&model, &s, copy);
        let injected = model.next_state(&s, Action::Replay(i, Who::Bob)).expect("replay");
        let full = model.next_state(&injected, Action::Deliver(Who::Bob));
        assert_eq!(Some(&reduced), full.as_ref());
        assert!(reduced.ghost.forgery_rejected && !reduced.ghost.interfered);
        assert!(holds(&model, &reduced, RECOVERY));
        assert!(holds(&model, &reduced, RECOVERED), "judged, and the conversation gets through");
    }

    /// `recovery` does not read the network attacker's copies in flight to a client: the state
    /// with a refused injection behind it is judged alike with and without a copy waiting.
    #[test]
    fn recovery_leaves_the_copies_in_flight_to_a_client_out() {
        let (model, s) = a1_in_flight(Bounds { budget: 2, ..SMALL });
        let i = observed_a1(&s);
        let s = step(&model, &s, Action::Deliver(Who::Bob));
        // A tampered copy of a1 is refused: the run is judged from here on.
        let s = step(&model, &s, Action::Tamper(i));
        let refused = step(&model, &s, Action::Deliver(Who::Bob));
        assert!(refused.ghost.forgery_rejected && !refused.ghost.interfered);
        assert!(holds(&model, &refused, RECOVERED));
        // A replayed copy of a1 waits for Bob (a state of the full model; the reduced one
        // delivers the last injection at once): judged, and judged alike.
        let waiting = model.next_state(&refused, Action::Replay(i, Who::Bob)).expect("replay");
        assert!(waiting.net.to_client[Who::Bob.index()].iter().all(|f| f.copy));
        assert!(holds(&model, &waiting, RECOVERED) && holds(&model, &waiting, RECOVERY));
    }

    /// The malicious server's man in the middle is a step only where it forges something: on a
    /// message its impostors cannot open it would be `Serve` with `interfered` set, a state
    /// whose every future the honest service's state has too (spec/MODEL.md §7.1).
    #[test]
    fn the_man_in_the_middle_is_offered_only_where_it_forges() {
        // e2e-verified: Alice's session is pinned to Bob's real identity, so S's impostor of Bob
        // opens nothing she sends.
        let model = E2eModel::new(Variant::E2eVerified, Attacker::Server, SMALL).expect("setup");
        let s = model.init_states().remove(0);
        let s = step(&model, &s, Action::Send(Who::Alice));
        assert!(model.next_state(&s, Action::Mitm(Who::Alice)).is_none());
        assert!(model.next_state(&s, Action::Serve(Who::Alice)).is_some());

        // e2e-unverified: Alice asks for Bob's bundle first, and S answers with its impostor's.
        let model = E2eModel::new(Variant::E2eUnverified, Attacker::Server, SMALL).expect("setup");
        let s = model.init_states().remove(0);
        let s = step(&model, &s, Action::Send(Who::Alice));
        let forged = model.next_state(&s, Action::Mitm(Who::Alice)).expect("a bundle of S's own");
        let served = model.next_state(&s, Action::Serve(Who::Alice)).expect("the real bundle");
        assert_ne!(forged.net.to_client, served.net.to_client);
        assert!(forged.ghost.interfered && !served.ghost.interfered);
    }

    /// The server's RNG stream (`world::rng`'s party 2).
    const SERVER: usize = 2;

    /// A call that draws nothing from its stream leaves its party's point where it was: the
    /// server relaying Alice's message draws nothing, its answer to Bob's handshake draws its
    /// ephemeral key, and the two orders of these independent steps meet in one state. While
    /// every successful call moved the point, the answer drew from a point that counted the relays
    /// served before it, and the two orders were two states — as was every reconnection's
    /// handshake, once per number of frames the server had served before it (spec/MODEL.md §7.1).
    #[test]
    fn a_call_that_draws_nothing_leaves_the_stream_and_independent_orders_meet() {
        let model = E2eModel::new(Variant::Hop, Attacker::Network, Bounds::DEFAULT).expect("setup");
        // Bob's set-up is in the run: he starts offline, and Alice's message waits in his mailbox.
        let s = run(&model, &[Action::Send(Who::Alice), Action::Connect(Who::Bob)]);
        let point = s.draws[SERVER];
        let relayed = step(&model, &s, Action::Serve(Who::Alice));
        assert_eq!(relayed.draws[SERVER], point, "a relay draws nothing");
        let answered = step(&model, &s, Action::Serve(Who::Bob));
        assert_eq!(answered.draws[SERVER], point + 1, "the answer draws an ephemeral key");
        let one = step(&model, &relayed, Action::Serve(Who::Bob));
        let other = step(&model, &answered, Action::Serve(Who::Alice));
        assert_eq!(one, other, "the two orders meet in one state");

        // Bob reads the answer and sends `Ready`: no draw; his next handshake draws.
        let bob = Who::Bob.index();
        let connected = step(&model, &one, Action::Deliver(Who::Bob));
        assert!(connected.clients[bob].is_connected());
        assert_eq!(connected.draws[bob], one.draws[bob], "reading the answer draws nothing");
        assert_eq!(one.draws[bob], 1, "his handshake drew its ephemeral key");
    }
}
