//! Disconnection, offline delivery through the mailbox and a server restart (spec/MODEL.md §3),
//! step by step on the model's own transitions, against M (honest network and server): Bob's link
//! closes, a1 waits in his mailbox, the server restarts from its durable state, both clients
//! connect again on fresh channels, and Bob reads a1. The exhaustive check is `e2e-check`'s.

mod common;

#[cfg(test)]
mod tests {
    use super::common::{holds, step};
    use e2e_model::model::names;
    use e2e_model::world::{Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};
    use stateright::Model;

    const TWO_OUTAGES: Bounds = Bounds { bob_messages: 0, outages: 2, ..Bounds::DEFAULT };

    fn drain(model: &E2eModel, mut s: World) -> World {
        loop {
            let next = Who::BOTH.into_iter().find_map(|w| {
                if !s.net.to_server[w.index()].is_empty() {
                    Some(Action::Serve(w))
                } else if !s.net.to_client[w.index()].is_empty() {
                    Some(Action::Deliver(w))
                } else {
                    None
                }
            });
            match next {
                Some(action) => s = step(model, &s, action),
                None => return s,
            }
        }
    }

    #[test]
    fn a_message_waits_out_a_closed_link_and_a_restart() {
        for variant in [Variant::Hop, Variant::E2eUnverified] {
            let model = E2eModel::new(variant, Attacker::Malicious, TWO_OUTAGES).expect("setup");
            let s = model.init_states().remove(0);
            let s = step(&model, &s, Action::Close(Who::Bob));
            assert!(!s.clients[Who::Bob.index()].is_connected());
            let s = step(&model, &s, Action::Send(Who::Alice));
            let s = drain(&model, s);
            assert!(s.ghost.accepted.is_empty(), "{variant}: Bob is offline");
            assert!(holds(&model, &s, names::DELIVERY), "a1 waits in the mailbox");
            let s = step(&model, &s, Action::Restart);
            assert!(!s.clients[Who::Alice.index()].is_connected(), "every channel is gone");
            let mut enabled = Vec::new();
            model.actions(&s, &mut enabled);
            assert!(!enabled.contains(&Action::Close(Who::Alice)), "the bound is spent");
            let s = step(&model, &s, Action::Connect(Who::Alice));
            let s = step(&model, &s, Action::Connect(Who::Bob));
            let s = drain(&model, s);
            assert!(
                s.ghost.accepted.iter().any(|a| a.by == Who::Bob && a.body == "a1"),
                "{variant}: the mailbox survived the restart and reached Bob on his new channel"
            );
            for name in [names::DELIVERY, names::AUTHENTICITY, names::SECRECY, names::REPLAY] {
                assert!(holds(&model, &s, name), "{variant}: {name}");
            }
            assert!(holds(&model, &s, names::AFTER_RECONNECT));
            assert!(holds(&model, &s, names::AFTER_RESTART));
        }
    }
}
