//! The set-up under attack (spec/MODEL.md §2–§3), step by step on the model's own transitions:
//! Bob's handshake, key confirmation and upload are steps of the run; a message sent before he is
//! online waits in his mailbox; a fetch before his upload is answered `NoBundle` and the message
//! is sent again; the malicious server's answer without a one-time prekey starts a session that
//! works. The exhaustive check of every order is `e2e-check`'s; this shows each path exists.

mod common;

#[cfg(test)]
mod tests {
    use super::common::{holds, step};
    use e2e_model::model::{Reply, names};
    use e2e_model::world::{Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};
    use stateright::Model;

    const ONE: Bounds = Bounds { bob_messages: 0, ..Bounds::DEFAULT };

    /// Every frame in `w`'s queue delivered, in order.
    fn deliver_all(model: &E2eModel, mut s: World, w: Who) -> World {
        while !s.net.to_client[w.index()].is_empty() {
            s = step(model, &s, Action::Deliver(w));
        }
        s
    }

    /// Every frame on `w`'s link handled by the honest server, in order.
    fn serve_all(model: &E2eModel, mut s: World, w: Who) -> World {
        while !s.net.to_server[w.index()].is_empty() {
            s = step(model, &s, Action::Serve(w));
        }
        s
    }

    /// Bob connects: handshake, `Welcome`, `Ready` (and in e2e his upload), all handled.
    fn bob_connects(model: &E2eModel, s: &World) -> World {
        let s = step(model, s, Action::Connect(Who::Bob));
        let s = serve_all(model, s, Who::Bob);
        let s = deliver_all(model, s, Who::Bob);
        let s = serve_all(model, s, Who::Bob);
        deliver_all(model, s, Who::Bob)
    }

    /// Against N, before Bob connects: Alice sends a1, the server handles what she sent, and she
    /// handles its answers.
    fn alice_sends_first(variant: Variant) -> (E2eModel, World) {
        let model = E2eModel::new(variant, Attacker::Network, ONE).expect("setup");
        let s = model.init_states().remove(0);
        let s = step(&model, &s, Action::Send(Who::Alice));
        let s = serve_all(&model, s, Who::Alice);
        let s = deliver_all(&model, s, Who::Alice);
        (model, s)
    }

    fn accepted_a1(s: &World) -> bool {
        s.ghost.accepted.iter().any(|a| a.by == Who::Bob && a.from == "alice" && a.body == "a1")
    }

    #[test]
    fn bob_starts_offline_and_sends_nothing_before_he_connects() {
        for variant in [Variant::Hop, Variant::E2eUnverified] {
            let model = E2eModel::new(variant, Attacker::Network, ONE).expect("setup");
            let s = model.init_states().remove(0);
            assert!(!s.clients[Who::Bob.index()].is_connected());
            assert!(s.clients[Who::Alice.index()].is_connected());
            let mut enabled = Vec::new();
            model.actions(&s, &mut enabled);
            assert!(enabled.contains(&Action::Connect(Who::Bob)));
            assert!(!enabled.contains(&Action::Connect(Who::Alice)));
            let s = bob_connects(&model, &s);
            assert!(s.clients[Who::Bob.index()].is_connected(), "{variant}: Bob online");
            let mut enabled = Vec::new();
            model.actions(&s, &mut enabled);
            assert!(!enabled.contains(&Action::Connect(Who::Bob)), "one handshake");
        }
    }

    /// Hop: a1 sent while Bob is offline is queued (`Ack { Queued }`) and reaches him after his
    /// key confirmation.
    #[test]
    fn a_message_to_an_offline_client_waits_in_its_mailbox() {
        let (model, s) = alice_sends_first(Variant::Hop);
        assert!(s.net.to_client[Who::Bob.index()].is_empty(), "Bob is offline");
        assert!(!accepted_a1(&s));
        let s = bob_connects(&model, &s);
        assert!(accepted_a1(&s), "the mailbox is delivered on Ready");
    }

    /// e2e: Alice's fetch before Bob's upload is answered `NoBundle`; a1 is given up, her user
    /// sends it again once Bob is online, and Bob accepts it.
    #[test]
    fn a_fetch_answered_no_bundle_is_retried_and_delivered() {
        let (model, s) = alice_sends_first(Variant::E2eUnverified);
        assert_eq!(s.ghost.sent[Who::Alice.index()], 0, "a1 was given up, never sealed");
        assert!(s.ghost.retried[Who::Alice.index()]);
        assert!(!holds(&model, &s, names::RETRIED));
        let s = bob_connects(&model, &s);
        let s = step(&model, &s, Action::Send(Who::Alice));
        let s = serve_all(&model, s, Who::Alice);
        let s = deliver_all(&model, s, Who::Alice);
        let s = serve_all(&model, s, Who::Alice);
        let s = deliver_all(&model, s, Who::Bob);
        assert!(accepted_a1(&s));
        assert!(holds(&model, &s, names::RETRIED));
        assert!(holds(&model, &s, names::AUTHENTICITY) && holds(&model, &s, names::SECRECY));
    }

    /// e2e vs S: Bob is online, Alice sends a1, and the server answers her bundle request itself
    /// with `reply`, which Alice has handled.
    fn answered(reply: Reply) -> (E2eModel, World) {
        let model = E2eModel::new(Variant::E2eUnverified, Attacker::Server, ONE).expect("setup");
        let s = model.init_states().remove(0);
        let s = bob_connects(&model, &s);
        let s = step(&model, &s, Action::Send(Who::Alice));
        let s = step(&model, &s, Action::Answer(Who::Alice, reply));
        assert_eq!(s.know.budget, 0, "the answer spends the budget");
        let s = deliver_all(&model, s, Who::Alice);
        (model, s)
    }

    /// e2e vs S: the server answers Alice's fetch with Bob's real bundle without its one-time
    /// prekey; the session starts without one and a1 reaches Bob.
    #[test]
    fn a_bundle_without_one_time_prekey_starts_a_working_session() {
        let (model, s) = answered(Reply::WithoutOneTime);
        assert!(s.ghost.without_one_time);
        let s = serve_all(&model, s, Who::Alice);
        let s = deliver_all(&model, s, Who::Bob);
        assert!(accepted_a1(&s));
    }

    /// e2e vs S: the server answers Alice's fetch with Bob's real identity and a signed prekey of
    /// its own. Its signature is not Bob's: Alice refuses the bundle, starts no session and gives
    /// a1 up, which her user sends again.
    #[test]
    fn a_signed_prekey_of_the_servers_own_under_the_real_identity_is_refused() {
        let (model, s) = answered(Reply::OwnSignedPrekey);
        assert!(holds(&model, &s, names::SPK_REFUSED));
        assert!(s.ghost.retried[Who::Alice.index()]);
        assert!(s.clients[Who::Alice.index()].safety_number(&Who::Bob.name()).is_none());
        assert!(s.net.to_server[Who::Alice.index()].is_empty(), "nothing sealed for Bob");
    }

    /// e2e vs S: `NoBundle` from the malicious server is given up and retried like the honest one.
    #[test]
    fn a_forged_no_bundle_is_retried() {
        let (model, s) = answered(Reply::NoBundle);
        assert!(s.ghost.retried[Who::Alice.index()]);
        let mut enabled = Vec::new();
        model.actions(&s, &mut enabled);
        assert!(enabled.contains(&Action::Send(Who::Alice)), "her user sends a1 again");
    }

    /// `--first-registration`, against N: Bob's name is bound by nothing before the run, and the
    /// network attacker's `Impersonate(Bob)` registers it first, before Bob's own handshake.
    fn bob_squatted(variant: Variant) -> (E2eModel, World) {
        let bounds = Bounds { first_registration: true, ..ONE };
        let model = E2eModel::new(variant, Attacker::Network, bounds).expect("setup");
        let s = model.init_states().remove(0);
        let s = step(&model, &s, Action::Impersonate(Who::Bob));
        (model, s)
    }

    /// Bob's handshake, after his name was taken: the server refuses to bind it to his key.
    fn bob_refused(model: &E2eModel, s: &World) -> World {
        let s = step(model, s, Action::Connect(Who::Bob));
        let s = serve_all(model, s, Who::Bob);
        let s = deliver_all(model, s, Who::Bob);
        assert!(!s.clients[Who::Bob.index()].is_connected(), "the name is the attacker's");
        s
    }

    /// Hop: first come, first served (SPEC.md §16.3) — the attacker that registers `bob` first
    /// speaks as Bob, and Alice accepts its forgery as from him.
    #[test]
    fn a_name_registered_first_by_the_attacker_forges_as_its_owner_in_hop() {
        let (model, s) = bob_squatted(Variant::Hop);
        let s = deliver_all(&model, s, Who::Alice);
        assert!(s.ghost.accepted.iter().any(|a| a.by == Who::Alice && a.from == "bob"));
        assert!(!holds(&model, &s, names::AUTHENTICITY));
        let s = bob_refused(&model, &s);
        assert!(!holds(&model, &s, names::AUTHENTICITY));
    }

    /// e2e: the squatter's hop forgery is refused (SPEC.md §15.3), but Bob can no longer
    /// register, so `recovery`, judged after that refusal, finds the conversation broken.
    #[test]
    fn a_name_registered_first_by_the_attacker_locks_its_owner_out_in_e2e() {
        let (model, s) = bob_squatted(Variant::E2eUnverified);
        let s = deliver_all(&model, s, Who::Alice);
        assert!(s.ghost.forgery_rejected, "Alice refuses a hop Deliver");
        assert!(holds(&model, &s, names::AUTHENTICITY));
        assert!(!holds(&model, &s, names::RECOVERY), "Bob cannot take his name back");
        let s = bob_refused(&model, &s);
        assert!(!holds(&model, &s, names::RECOVERY));
    }

    /// Without `--first-registration` the names are bound before the run: in e2e the network
    /// attacker registers nothing, and in hop its registration under `bob` is refused.
    #[test]
    fn names_bound_before_the_run_are_not_raced() {
        let model = E2eModel::new(Variant::E2eUnverified, Attacker::Network, ONE).expect("setup");
        let mut enabled = Vec::new();
        model.actions(&model.init_states().remove(0), &mut enabled);
        assert!(!enabled.contains(&Action::Impersonate(Who::Bob)));
        let model = E2eModel::new(Variant::Hop, Attacker::Network, ONE).expect("setup");
        let s = step(&model, &model.init_states().remove(0), Action::Impersonate(Who::Bob));
        assert!(s.ghost.forgery_rejected, "the server refuses `bob` under another key");
        assert!(s.net.to_client[Who::Alice.index()].is_empty(), "no forgery reaches Alice");
    }
}
