//! The third registered client M (spec/MODEL.md §3) step by step on the model's own transitions:
//! M is a working user whose messages arrive as its own, a message it relays claims its sender's
//! identity in vain, and a registration under another user's name is refused. The exhaustive
//! check of every order is `e2e-check`'s (`vs M`).

mod common;

#[cfg(test)]
mod tests {
    use super::common::{holds, step};
    use e2e_model::model::mallory::{Content, MALLORY};
    use e2e_model::model::names::{AUTHENTICITY, DELIVERY, RECOVERED, SECRECY};
    use e2e_model::world::{Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};
    use stateright::Model;

    const SMALL: Bounds = Bounds { bob_messages: 0, ..Bounds::DEFAULT };

    /// Delivers every frame to Alice and Bob until none is in flight.
    fn settle(model: &E2eModel, mut s: World) -> World {
        while !s.net.is_empty() {
            let next = Who::BOTH
                .into_iter()
                .find_map(|w| {
                    let queues = [&s.net.to_server[w.index()], &s.net.to_client[w.index()]];
                    let actions = [Action::Serve(w), Action::Deliver(w)];
                    queues.into_iter().zip(actions).find(|(q, _)| !q.is_empty()).map(|(_, a)| a)
                })
                .unwrap_or_else(|| panic!("nothing to deliver"));
            s = step(model, &s, next);
        }
        s
    }

    /// Hop: M's message to Bob is accepted as from M, and Alice's a1 still arrives as hers.
    #[test]
    fn m_messages_arrive_as_its_own() {
        let model = E2eModel::new(Variant::Hop, Attacker::Malicious, SMALL).expect("setup");
        let s = model.init_states().remove(0);
        let s = step(&model, &s, Action::MSend(Who::Bob));
        let s = step(&model, &s, Action::Send(Who::Alice));
        let s = settle(&model, s);
        let from: Vec<&str> = s.ghost.accepted.iter().map(|a| a.from.as_str()).collect();
        assert_eq!(from, ["alice", MALLORY], "{:?}", s.ghost.accepted);
        for name in [AUTHENTICITY, SECRECY, DELIVERY] {
            assert!(holds(&model, &s, name), "{name}");
        }
    }

    /// e2e: Alice's greeting to M, relayed by M to Bob, claims Alice's identity; Bob refuses it
    /// (it was sealed for M's prekeys) and accepts nothing.
    #[test]
    fn a_relayed_envelope_is_refused() {
        let model =
            E2eModel::new(Variant::E2eUnverified, Attacker::Malicious, SMALL).expect("setup");
        let from_alice = model
            .inbox
            .iter()
            .position(|m| m.from == Who::Alice && matches!(m.content, Content::E2e(_)))
            .expect("Alice greeted M in the set-up");
        let s = model.init_states().remove(0);
        let s = step(&model, &s, Action::MRelay(from_alice, Who::Bob));
        assert_eq!(s.net.to_client[Who::Bob.index()].len(), 1, "the server relayed it");
        let s = step(&model, &s, Action::Deliver(Who::Bob));
        assert!(s.ghost.forgery_rejected, "Bob refuses it");
        assert!(s.ghost.accepted.is_empty());
        assert!(holds(&model, &s, RECOVERED), "and the conversation still gets through");
    }

    /// M registering a client of its own under Alice's name is refused by the server.
    #[test]
    fn registering_as_alice_is_refused() {
        let model = E2eModel::new(Variant::Hop, Attacker::Malicious, SMALL).expect("setup");
        let s = model.init_states().remove(0);
        let s = step(&model, &s, Action::Impersonate(Who::Alice));
        assert!(s.ghost.forgery_rejected && s.ghost.accepted.is_empty());
        assert!(s.net.is_empty(), "nothing reaches Bob");
    }
}
