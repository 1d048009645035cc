//! Post-compromise security (spec/MODEL.md §3–§5, attacker P) step by step: a copy of Bob's whole
//! state reads what reaches Bob until a round trip with fresh DH has passed; in e2e it reads
//! nothing Alice sends after that, in hop it reads everything (the channel keys last until the
//! next handshake). The exhaustive checks are `e2e-check`'s (`vs P`).

mod common;

#[cfg(test)]
mod tests {
    use super::common::{holds, run};
    use e2e_model::model::names::POST_COMPROMISE;
    use e2e_model::report;
    use e2e_model::world::{Who, World};
    use e2e_model::{Action, Attacker, Bounds, E2eModel, Variant};

    const ONE_EACH: Bounds = Bounds::DEFAULT;

    /// Bob's state is copied; Bob sends b1 (a fresh ratchet key in e2e), Alice accepts it, then
    /// sends a1, which Bob accepts.
    fn round_trip(variant: Variant) -> (E2eModel, World) {
        let model = E2eModel::new(variant, Attacker::PostCompromise, ONE_EACH).expect("setup");
        let (a, b) = (Who::Alice, Who::Bob);
        let s = run(
            &model,
            &[
                Action::CopyState(b),
                Action::Send(b),
                Action::Serve(b),
                Action::Deliver(a),
                Action::Send(a),
                Action::Serve(a),
                Action::Deliver(b), // the server's Ack of b1
                Action::Deliver(b), // a1
            ],
        );
        (model, s)
    }

    /// e2e-verified: b1 carries a key Bob drew after the copy, so Alice's a1 after it is
    /// protected, and the copy (Bob's old state) cannot open it.
    #[test]
    fn e2e_heals_after_a_round_trip() {
        let (model, s) = round_trip(Variant::E2eVerified);
        let pcs = s.ghost.pcs.as_ref().expect("copied");
        assert!(pcs.fresh.contains(&1), "b1 is under a fresh ratchet key");
        assert_eq!(pcs.healed_after, Some(0), "Alice had sent nothing when she heard b1");
        assert!(pcs.protected_delivered, "Bob accepted a1");
        assert!(pcs.read.is_empty(), "the copy read nothing");
        assert!(holds(&model, &s, POST_COMPROMISE));
    }

    /// e2e-verified: before any round trip, the copy of Bob reads what Alice sends (it holds
    /// Bob's receiving chain): the attacker is not vacuous.
    #[test]
    fn e2e_copy_reads_before_healing() {
        let model =
            E2eModel::new(Variant::E2eVerified, Attacker::PostCompromise, ONE_EACH).expect("setup");
        let (a, b) = (Who::Alice, Who::Bob);
        let s = run(
            &model,
            &[Action::CopyState(b), Action::Send(a), Action::Serve(a), Action::Deliver(b)],
        );
        let pcs = s.ghost.pcs.as_ref().expect("copied");
        assert!(pcs.read.contains(&1) && pcs.healed_after.is_none());
        assert!(holds(&model, &s, POST_COMPROMISE), "read before healing: no violation");
    }

    /// Hop: the same round trip protects nothing: the copy reads a1 with Bob's channel keys.
    #[test]
    fn hop_does_not_heal() {
        let (model, s) = round_trip(Variant::Hop);
        let pcs = s.ghost.pcs.as_ref().expect("copied");
        assert_eq!(pcs.healed_after, Some(0));
        assert!(pcs.read.contains(&1));
        assert!(!holds(&model, &s, POST_COMPROMISE));
    }

    /// The hop cell reports the violation with a counterexample that copies a state first.
    #[test]
    fn hop_violation_has_a_trace() {
        let r = report::check(Variant::Hop, Attacker::PostCompromise, ONE_EACH, 2, false)
            .expect("setup");
        let cell = r.cells.iter().find(|c| c.property == POST_COMPROMISE).expect("cell");
        assert!(!cell.holds && !cell.expected.holds && cell.expected.claimed);
        let trace = cell.trace.as_ref().expect("trace");
        assert!(trace.first().is_some_and(|t| t.what.contains("copies")), "{trace:?}");
        assert!(report::as_expected(&[r]));
    }
}
