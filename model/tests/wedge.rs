//! Issue 18's wedge (spec/MODEL.md §4, SPEC.md §7.2): hop vs N at budget 2. An old
//! `HandshakeInit` of Bob's, replayed on his link while he is offline, sits ahead of his own; the
//! server accepts the replay and refuses Bob's real one (`Unexpected { state: "open" }`). While a
//! driver kept such a link open, Bob's link was wedged for good and `recovery` failed on this
//! two-step trace. Now the link closes on that refusal and Bob connects again.

mod common;

#[cfg(test)]
mod tests {
    use super::common::{holds, run, step};
    use e2e_model::model::names;
    use e2e_model::reduction::CopyKind;
    use e2e_model::world::{Dest, Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};

    fn model() -> E2eModel {
        let bounds = Bounds { budget: 2, ..Bounds::DEFAULT };
        E2eModel::new(Variant::Hop, Attacker::Network, bounds).expect("setup")
    }

    /// The checker's counterexample: frame #0 (Bob's `HandshakeInit` of the earlier connection)
    /// replayed on Bob's link, then reflected into Alice's queue, where she refuses it.
    fn wedge(model: &E2eModel) -> World {
        run(
            model,
            &[Action::Replay(0, Who::Bob), Action::InjectDeliver(CopyKind::Reflect, 0, Who::Alice)],
        )
    }

    #[test]
    fn the_two_step_trace_is_judged_and_recovers() {
        let model = model();
        let s = wedge(&model);
        assert!(s.ghost.forgery_rejected, "Alice refused the reflected frame");
        assert!(!s.ghost.interfered, "nothing but refused injections: recovery judges it");
        assert!(!s.net.to_server[Who::Bob.index()].is_empty(), "the replay waits on Bob's link");
        assert!(!model.conversation_broken(&s), "the honest completion gets through");
        assert!(holds(&model, &s, names::RECOVERY));
        assert!(holds(&model, &s, names::RECOVERED));
    }

    #[test]
    fn the_refusal_closes_the_unconfirmed_link_and_bob_connects_again() {
        let model = model();
        let mut s = wedge(&model);
        let bob = Who::Bob;
        s = step(&model, &s, Action::Connect(bob));
        // The server takes the replay first: an unconfirmed link that nobody can confirm.
        s = step(&model, &s, Action::Serve(bob));
        assert_eq!(s.server.link_of(&bob.name()), None);
        assert_eq!(s.net.to_client[bob.index()].len(), 1, "a Welcome Bob cannot read");
        // Bob's own `HandshakeInit` is refused on that link: its driver closes it.
        s = step(&model, &s, Action::Serve(bob));
        assert!(!s.life.connecting[bob.index()], "Bob is offline");
        assert!(!s.clients[bob.index()].is_connected());
        assert!(s.net.to_client[bob.index()].is_empty(), "the replay's Welcome went with it");
        assert_eq!(s.life.refused_closes[bob.index()], 1);
        // He connects again and is confirmed.
        s = step(&model, &s, Action::Connect(bob));
        s = step(&model, &s, Action::Serve(bob));
        s = step(&model, &s, Action::Deliver(bob));
        assert!(s.clients[bob.index()].is_connected());
        s = step(&model, &s, Action::Serve(bob));
        assert_eq!(s.server.link_of(&bob.name()), Some(bob.link()), "Ready confirmed the link");
        assert!(s.net.queue(Dest::Server(bob)).is_empty());
    }
}
