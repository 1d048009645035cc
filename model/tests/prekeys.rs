//! A one-time-prekey store that runs low, and two ways its top-up goes wrong (spec/MODEL.md
//! §3–§4), step by step on the model's own transitions: the malicious server's `PrekeysLow` of its
//! own, which the client tops up on, and a top-up lost with the link that carried it. After each,
//! `recovery` judges the state and the conversation gets through. The exhaustive check of every
//! order is `e2e-check --prekeys-low`'s; this shows each path exists and what the ghost makes of
//! it.

mod common;

#[cfg(test)]
mod tests {
    use super::common::{holds, run, step};
    use e2e_model::model::names;
    use e2e_model::world::{Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};
    use e2e_protocol::e2e::PREKEYS_LOW_WATER;

    /// Both set-ups before the run, each client left with one one-time prekey above the
    /// low-water mark at the server.
    fn model(attacker: Attacker, outages: u8) -> E2eModel {
        let bounds =
            Bounds { alice_messages: 0, set_ups: 0, outages, prekeys_low: true, ..Bounds::DEFAULT };
        E2eModel::new(Variant::E2eUnverified, attacker, bounds).expect("setup")
    }

    fn held(s: &World, w: Who) -> usize {
        s.server.one_time_prekeys(&w.name())
    }

    #[test]
    fn a_forged_prekeys_low_is_topped_up_and_recovery_judges_after_it() {
        let model = model(Attacker::Server, 0);
        let s = run(&model, &[Action::ForgeLow(Who::Bob), Action::Deliver(Who::Bob)]);
        assert_eq!(held(&s, Who::Bob), PREKEYS_LOW_WATER + 1, "no fetch took a key");
        assert!(s.ghost.replenished[Who::Bob.index()], "Bob topped up on S's word");
        assert_eq!(s.ghost.forged_notices, 1);
        assert!(!s.ghost.interfered, "acting on a forged notice is no interference");
        assert!(holds(&model, &s, names::RECOVERY));
        assert!(holds(&model, &s, names::RECOVERED_FORGED_LOW), "recovery judged it, got through");
        assert!(!holds(&model, &s, names::RECOVERED), "no refusal: the row of refusals is apart");
        // The server stores the top-up: the forged notice cost Bob nothing but fresh keys.
        let s = step(&model, &s, Action::Serve(Who::Bob));
        let s = step(&model, &s, Action::Deliver(Who::Bob));
        assert_eq!(held(&s, Who::Bob), PREKEYS_LOW_WATER + 1 + 10);
        assert!(s.ghost.topped_up);
        assert!(holds(&model, &s, names::RECOVERY));
    }

    /// Bob sends b1: his fetch of Alice's bundle takes one of her keys and leaves her low, so the
    /// server seals `PrekeysLow` to her; she answers with her top-up, now in flight.
    fn alice_tops_up(model: &E2eModel) -> World {
        let s = run(
            model,
            &[Action::Send(Who::Bob), Action::Serve(Who::Bob), Action::Deliver(Who::Alice)],
        );
        assert_eq!(held(&s, Who::Alice), PREKEYS_LOW_WATER);
        assert!(s.ghost.replenished[Who::Alice.index()]);
        assert_eq!(s.net.to_server[Who::Alice.index()].len(), 1, "her top-up is in flight");
        s
    }

    #[test]
    fn a_top_up_lost_with_its_link_leaves_the_store_working_and_recovery_judges_after_it() {
        let model = model(Attacker::Network, 1);
        let s = alice_tops_up(&model);
        let s = step(&model, &s, Action::Close(Who::Alice));
        assert!(s.ghost.top_up_lost[Who::Alice.index()], "the top-up was all that was lost");
        assert!(!s.ghost.interfered);
        assert_eq!(held(&s, Who::Alice), PREKEYS_LOW_WATER, "the store keeps what it had");
        assert!(holds(&model, &s, names::RECOVERY));
        assert!(holds(&model, &s, names::RECOVERED_LOST_TOP_UP), "recovery judged it, got through");
        // Alice connects again: when her link is confirmed the server, still low, sends
        // `PrekeysLow` after `Ready` (SPEC.md §5.1 step 5), and she tops up again.
        let mut s = step(&model, &s, Action::Connect(Who::Alice));
        for _ in 0..3 {
            s = step(&model, &s, Action::Serve(Who::Alice));
            s = step(&model, &s, Action::Deliver(Who::Alice));
        }
        assert!(s.ghost.topped_up_again, "the next notice was answered, and the top-up stored");
        assert_eq!(held(&s, Who::Alice), PREKEYS_LOW_WATER + 10);
        assert!(holds(&model, &s, names::TOPPED_UP_AGAIN));
        assert!(holds(&model, &s, names::RECOVERY));
    }

    #[test]
    fn losing_more_than_a_top_up_is_interference() {
        let model = model(Attacker::Network, 1);
        let s = alice_tops_up(&model);
        // Bob's b1 is in flight to the server with the bundle's answer on its way to him; closing
        // Bob's link loses frames that are no top-up.
        let s = step(&model, &s, Action::Deliver(Who::Bob));
        assert!(!s.net.to_server[Who::Bob.index()].is_empty(), "b1 in flight");
        let s = step(&model, &s, Action::Close(Who::Bob));
        assert!(!s.ghost.top_up_lost[Who::Bob.index()]);
        assert!(s.ghost.interfered);
    }
}
