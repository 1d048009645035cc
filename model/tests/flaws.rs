//! The seeded-flaw catalog: every flaw of `e2e_protocol::flaws` is caught (a property that holds
//! on the unflawed protocol is violated), and the unflawed protocol passes the same checks.
//! Flaws are process-wide switches, so the tests of this file take one lock and run one at a time.

#[cfg(test)]
mod tests {
    use e2e_model::report;
    use e2e_model::{Attacker, Bounds, Variant};
    use e2e_protocol::flaws::{self, Flaw};

    const SMALL: Bounds = Bounds { alice_messages: 1, bob_messages: 0, budget: 1, seed: 1 };

    /// Where each flaw shows (the cheapest cell that catches it).
    fn target(flaw: Flaw) -> (Variant, Attacker) {
        match flaw {
            Flaw::IgnorePin
            | Flaw::SkipPinOnReceive
            | Flaw::RatchetNoAdvance
            | Flaw::AcceptHopInE2e => (Variant::E2eVerified, Attacker::Server),
            Flaw::KeepOneTimePrekey => (Variant::E2eVerified, Attacker::Compromise),
            Flaw::SkipReplayWindow => (Variant::Hop, Attacker::Server),
            Flaw::SkipNameBinding => (Variant::Hop, Attacker::Network),
            other => panic!("no target for {other:?}"),
        }
    }

    /// Serializes the tests of this binary: each switches process-wide flaws on and off.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn assert_caught(catalog: &[Flaw]) {
        let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for &flaw in catalog {
            let (variant, attacker) = target(flaw);
            flaws::activate(&[]);
            let clean = report::check(variant, attacker, SMALL, 2, false).expect("setup");
            assert!(
                report::as_expected(std::slice::from_ref(&clean)),
                "{variant} vs {attacker} unflawed"
            );
            assert!(!report::caught(&[clean]));
            flaws::activate(&[flaw]);
            let flawed = report::check(variant, attacker, SMALL, 2, false).expect("setup");
            flaws::activate(&[]);
            assert!(report::caught(&[flawed]), "flaw {} not caught", flaw.name());
        }
    }

    /// The hop flaws: fast enough for `cargo test` in debug.
    #[test]
    fn hop_flaws_are_caught() {
        assert_caught(&[Flaw::SkipReplayWindow, Flaw::SkipNameBinding]);
    }

    /// The whole catalog; slow in debug: `cargo test --release -p e2e-model -- --include-ignored`.
    #[test]
    #[ignore = "slow in debug builds; run with --release -- --include-ignored"]
    fn every_seeded_flaw_is_caught_and_the_unflawed_protocol_passes() {
        assert_caught(&Flaw::ALL);
    }
}
