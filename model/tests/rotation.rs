//! Signed-prekey rotation (spec/MODEL.md §3–§4), step by step on the model's own transitions:
//! Alice starts her session from Bob's bundle, Bob rotates his signed prekey before her prekey
//! message reaches him; after one rotation it still opens (the previous signed prekey is kept),
//! after two it is refused (`UnknownPrekey`), as SPEC.md §10.2 says. The exhaustive check of every
//! order is `e2e-check`'s; this shows each path exists and what the ghost makes of it.

mod common;

#[cfg(test)]
mod tests {
    use super::common::{holds, run, step};
    use e2e_model::model::{Reply, names};
    use e2e_model::world::{Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};
    use stateright::Model;

    /// Both set-ups before the run, so that both clients start online with their bundles out.
    fn bounds(rotations: u8) -> Bounds {
        Bounds { bob_messages: 0, budget: 0, set_ups: 0, outages: 0, rotations, ..Bounds::DEFAULT }
    }

    /// Alice sends a1: her fetch is answered with Bob's bundle and she seals a1 from it; then Bob
    /// rotates `rotations` times, each upload handled by the server; then a1 reaches Bob.
    fn a1_after_rotations(rotations: u8) -> (E2eModel, World) {
        let model = E2eModel::new(Variant::E2eUnverified, Attacker::Network, bounds(rotations))
            .expect("setup");
        let mut s = run(
            &model,
            &[Action::Send(Who::Alice), Action::Serve(Who::Alice), Action::Deliver(Who::Alice)],
        );
        for _ in 0..rotations {
            s = step(&model, &s, Action::Rotate(Who::Bob));
            s = step(&model, &s, Action::Serve(Who::Bob));
            s = step(&model, &s, Action::Deliver(Who::Bob));
        }
        let s = step(&model, &s, Action::Serve(Who::Alice));
        let s = step(&model, &s, Action::Deliver(Who::Bob));
        (model, s)
    }

    fn accepted_a1(s: &World) -> bool {
        s.ghost.accepted.iter().any(|a| a.by == Who::Bob && a.from == "alice" && a.body == "a1")
    }

    #[test]
    fn a_prekey_message_on_the_previous_signed_prekey_still_opens() {
        let (model, s) = a1_after_rotations(1);
        let bob = &s.clients[Who::Bob.index()];
        assert_ne!(bob.signed_prekey_id(), Some(1), "Bob rotated");
        assert_eq!(s.ghost.rotation.retired[Who::Bob.index()], [1]);
        assert_eq!(s.ghost.rotation.names.get(&(Who::Alice, 1)), Some(&1), "a1 names spk 1");
        assert!(accepted_a1(&s));
        assert!(holds(&model, &s, names::FROM_PREVIOUS));
        assert!(holds(&model, &s, names::RETENTION));
    }

    #[test]
    fn a_prekey_message_past_retention_is_refused() {
        let (model, s) = a1_after_rotations(2);
        assert_eq!(s.ghost.rotation.retired[Who::Bob.index()].len(), 2);
        assert!(!accepted_a1(&s), "signed prekey 1 was deleted at the second rotation");
        assert!(holds(&model, &s, names::PAST_RETENTION));
        assert!(!holds(&model, &s, names::FROM_PREVIOUS));
        assert!(holds(&model, &s, names::RETENTION));
    }

    /// Every frame on `w`'s link handled by the server (honestly), then every frame to `w`
    /// delivered, until both queues are empty.
    fn settle(model: &E2eModel, mut s: World, w: Who) -> World {
        while !s.net.to_server[w.index()].is_empty() || !s.net.to_client[w.index()].is_empty() {
            let action = if s.net.to_server[w.index()].is_empty() {
                Action::Deliver(w)
            } else {
                Action::Serve(w)
            };
            s = step(model, &s, action);
        }
        s
    }

    /// e2e vs S: Bob connects and rotates; the malicious server keeps the signed prekey the
    /// rotation replaced and answers Alice's fetch with it. The session starts from Bob's previous
    /// signed prekey, which he still holds: a1 reaches him, and the server reads nothing.
    #[test]
    fn the_malicious_servers_old_bundle_starts_a_session_bob_still_answers() {
        let b = Bounds { set_ups: 1, budget: 1, ..bounds(1) };
        let model = E2eModel::new(Variant::E2eUnverified, Attacker::Server, b).expect("setup");
        let s = run(&model, &[Action::Connect(Who::Bob)]);
        let s = settle(&model, s, Who::Bob);
        assert_eq!(s.know.old_signed_prekeys[Who::Bob.index()], None, "no rotation yet");
        let s = step(&model, &s, Action::Rotate(Who::Bob));
        let s = settle(&model, s, Who::Bob);
        let old = s.know.old_signed_prekeys[Who::Bob.index()].expect("S kept the old one");
        assert_eq!(old.id, 1);
        let s = step(&model, &s, Action::Send(Who::Alice));
        let s = step(&model, &s, Action::Answer(Who::Alice, Reply::OldSignedPrekey));
        let s = step(&model, &s, Action::Deliver(Who::Alice));
        let s = step(&model, &s, Action::Serve(Who::Alice));
        assert_eq!(s.ghost.rotation.names.get(&(Who::Alice, 1)), Some(&1), "a1 names spk 1");
        let s = step(&model, &s, Action::Deliver(Who::Bob));
        assert!(accepted_a1(&s));
        assert!(holds(&model, &s, names::FROM_PREVIOUS));
        assert!(holds(&model, &s, names::SECRECY) && holds(&model, &s, names::AUTHENTICITY));
    }

    /// One-time-prekey exhaustion as the real directory answers it (SPEC.md §15.2): N closes
    /// Alice's link while the answer to her fetch, carrying one of Bob's one-time prekeys, is in
    /// flight; she connects again and asks again, and the directory, which handed her one since
    /// Bob's last upload, answers without one. Her session starts without it, and a1 gets through.
    #[test]
    fn a_second_fetch_after_a_lost_answer_gets_no_one_time_prekey() {
        let b = Bounds { budget: 1, outages: 1, ..bounds(0) };
        let model = E2eModel::new(Variant::E2eUnverified, Attacker::Network, b).expect("setup");
        let s = run(
            &model,
            &[
                Action::Send(Who::Alice),
                Action::Serve(Who::Alice),
                Action::Close(Who::Alice),
                Action::Connect(Who::Alice),
            ],
        );
        assert!(!s.ghost.without_one_time);
        let s = settle(&model, s, Who::Alice);
        assert!(s.ghost.without_one_time, "the second answer had no one-time prekey");
        let s = settle(&model, s, Who::Bob);
        assert!(accepted_a1(&s));
    }

    #[test]
    fn rotations_are_bounded_and_only_in_e2e_unverified() {
        let model =
            E2eModel::new(Variant::E2eUnverified, Attacker::Network, bounds(1)).expect("setup");
        let s = run(&model, &[Action::Rotate(Who::Alice)]);
        let mut enabled = Vec::new();
        model.actions(&s, &mut enabled);
        assert!(!enabled.iter().any(|a| matches!(a, Action::Rotate(_))), "the bound is spent");
        for variant in [Variant::Hop, Variant::E2eVerified] {
            let model = E2eModel::new(variant, Attacker::Network, bounds(1)).expect("setup");
            let mut enabled = Vec::new();
            model.actions(&model.init_states().remove(0), &mut enabled);
            assert!(!enabled.iter().any(|a| matches!(a, Action::Rotate(_))), "{variant}");
        }
    }
}
