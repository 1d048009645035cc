//! The malicious server's composed forgeries of spec/MODEL.md §3, step by step on the model's own
//! transitions: each is built (the action is enabled and applies) and each is refused by the
//! client it reaches, which accepts nothing from it. The exhaustive check of every order is
//! `e2e-check`'s; this pins down that the actions are not vacuous.

mod common;

#[cfg(test)]
mod tests {
    use super::common::step;
    use e2e_model::model::Edit;
    use e2e_model::world::{Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};
    use e2e_protocol::e2e::envelope::EnvelopeBody;
    use e2e_protocol::e2e::x3dh::PrekeyHeader;
    use e2e_protocol::wire::Envelope;
    use stateright::Model;

    const SMALL: Bounds = Bounds { bob_messages: 0, set_ups: 0, ..Bounds::DEFAULT };

    /// e2e-unverified vs S: Alice's first message, a prekey message, has reached Bob honestly and
    /// is in the server's log as message #0.
    fn a1_delivered() -> (E2eModel, World) {
        let model = E2eModel::new(Variant::E2eUnverified, Attacker::Server, SMALL).expect("setup");
        let mut s = model.init_states().remove(0);
        for action in [
            Action::Send(Who::Alice),
            Action::Serve(Who::Alice),
            Action::Deliver(Who::Alice),
            Action::Serve(Who::Alice),
            Action::Deliver(Who::Bob),
        ] {
            s = step(&model, &s, action);
        }
        assert_eq!(s.know.seen.len(), 1);
        assert_eq!(s.ghost.accepted.len(), 1, "Bob accepted a1");
        (model, s)
    }

    #[test]
    fn every_composed_forgery_is_built_and_refused() {
        let (model, s) = a1_delivered();
        let forgeries = Edit::ALL
            .map(|edit| (Action::Rebuild(0, edit), Who::Bob))
            .into_iter()
            .chain([(Action::Reflect(0), Who::Alice), (Action::ToSelf(0), Who::Alice)]);
        for (forgery, victim) in forgeries {
            let forged = step(&model, &s, forgery.clone());
            assert_eq!(forged.know.budget, 0, "{forgery:?} spends the budget");
            // The victim's queue may hold an honest frame first (Alice's `Ack` for a1).
            let mut after = forged;
            while !after.net.to_client[victim.index()].is_empty() {
                after = step(&model, &after, Action::Deliver(victim));
            }
            assert!(after.ghost.forgery_rejected, "{forgery:?} refused");
            assert_eq!(after.ghost.accepted, s.ghost.accepted, "{forgery:?} accepted nothing");
        }
    }

    /// The prekey header of `envelope`, which must be a prekey message.
    fn prekey_header(envelope: &Envelope) -> PrekeyHeader {
        match EnvelopeBody::decode(envelope.as_bytes()) {
            Ok(EnvelopeBody::Prekey { prekey, .. }) => prekey,
            other => panic!("not a prekey message: {other:?}"),
        }
    }

    /// e2e-unverified vs C: the compromise oracle tries Alice's prekey message as sent and as S
    /// rebuilds it — each identity half swapped for the impostor's, the one-time prekey id left
    /// out — each list on fresh keys; none of the rebuilt ones opens, the original does (Bob's
    /// one-time prekey is still held: a1 is in flight), and compromise reads it.
    #[test]
    fn the_compromise_oracle_tries_the_rebuilt_prekey_messages() {
        let model =
            E2eModel::new(Variant::E2eUnverified, Attacker::Compromise, SMALL).expect("setup");
        let mut s = model.init_states().remove(0);
        for action in
            [Action::Send(Who::Alice), Action::Serve(Who::Alice), Action::Deliver(Who::Alice)]
        {
            s = step(&model, &s, action);
        }
        let lists = model.compromise_inputs(&s, Who::Bob);
        assert_eq!(lists.len(), 1 + Edit::ALL.len(), "a1 as sent and each rebuilt form");
        let a1 = prekey_header(&lists[0][0].1);
        let rebuilt: Vec<_> = lists[1..].iter().map(|l| prekey_header(&l[0].1)).collect();
        assert!(
            rebuilt
                .iter()
                .any(|p| p.identity.dh != a1.identity.dh && p.identity.sign == a1.identity.sign)
        );
        assert!(
            rebuilt
                .iter()
                .any(|p| p.identity.sign != a1.identity.sign && p.identity.dh == a1.identity.dh)
        );
        assert!(
            rebuilt
                .iter()
                .any(|p| p.one_time_prekey_id.is_none() && a1.one_time_prekey_id.is_some())
        );
        assert!(
            model.compromise_inputs(&s, Who::Alice).iter().all(Vec::is_empty),
            "nothing to Alice"
        );
        let after = step(&model, &s, Action::Compromise);
        assert!(after.know.learned_at_compromise.contains("a1"));
    }

    /// The padded answer: a bundle request answered with the real bundle and one byte more is
    /// refused, and Alice's message keeps waiting for a bundle.
    #[test]
    fn a_padded_bundle_is_refused() {
        let model = E2eModel::new(Variant::E2eUnverified, Attacker::Server, SMALL).expect("setup");
        let s = model.init_states().remove(0);
        let s = step(&model, &s, Action::Send(Who::Alice));
        let s = step(&model, &s, Action::Pad(Who::Alice));
        let s = step(&model, &s, Action::Deliver(Who::Alice));
        assert!(s.ghost.forgery_rejected && !s.ghost.malformed_accepted);
        assert!(s.net.to_server[Who::Alice.index()].is_empty(), "nothing sealed for Bob");
    }
}
