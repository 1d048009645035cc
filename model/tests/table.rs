//! The threat-model table of DESIGN.md, reproduced at small bounds (the default bounds are
//! checked by `e2e-check`; see spec/MODEL.md §8).

#[cfg(test)]
mod tests {
    use e2e_model::report::{self, CheckResult};
    use e2e_model::{Attacker, Bounds, Variant};

    const SMALL: Bounds = Bounds { bob_messages: 0, ..Bounds::DEFAULT };

    fn run(variant: Variant, attacker: Attacker) -> CheckResult {
        match report::check(variant, attacker, SMALL, 2, false) {
            Ok(r) => r,
            Err(e) => panic!("setup failed: {e}"),
        }
    }

    fn cell<'a>(r: &'a CheckResult, property: &str) -> &'a report::Cell {
        r.cells.iter().find(|c| c.property == property).unwrap_or_else(|| panic!("no {property}"))
    }

    fn assert_table(variants: &[Variant]) {
        for &variant in variants {
            for attacker in Attacker::ALL {
                let r = run(variant, attacker);
                for c in &r.cells {
                    assert_eq!(
                        c.holds, c.expected.holds,
                        "{variant} vs {attacker}: {} is {} (expected {})",
                        c.property, c.holds, c.expected.holds
                    );
                    if c.kind == "always" && !c.holds {
                        let trace = c.trace.as_ref().expect("a violation has a trace");
                        assert!(!trace.is_empty());
                    }
                }
                assert!(r.unique_states > 1);
            }
        }
    }

    /// Fast enough for `cargo test` in debug: the hop rows of the table.
    #[test]
    fn hop_rows_match_design() {
        assert_table(&[Variant::Hop]);
    }

    /// Every row; slow in debug (unoptimised curve arithmetic): run with
    /// `cargo test --release -p e2e-model -- --include-ignored` (about 10 s).
    #[test]
    #[ignore = "slow in debug builds; run with --release -- --include-ignored"]
    fn every_row_matches_design_and_every_violation_has_a_trace() {
        assert_table(&Variant::ALL);
    }

    /// The man in the middle against unverified e2e, without any injection: secrecy falls.
    #[test]
    fn mitm_reads_unverified_e2e() {
        use e2e_model::model::names::SECRECY;
        let bounds = Bounds { budget: 0, ..SMALL };
        let r = report::check(Variant::E2eUnverified, Attacker::Server, bounds, 2, false)
            .unwrap_or_else(|e| panic!("setup failed: {e}"));
        let c = cell(&r, SECRECY);
        assert!(!c.holds && c.trace.as_ref().is_some_and(|t| !t.is_empty()));
    }

    #[test]
    #[ignore = "slow in debug builds; run with --release -- --include-ignored"]
    fn design_cells() {
        use e2e_model::model::names::{AUTHENTICITY, FORWARD_SECRECY, SECRECY};
        // hop vs S and e2e-unverified vs S: violated; e2e-verified vs S: holds.
        let hop_s = run(Variant::Hop, Attacker::Server);
        assert!(!cell(&hop_s, SECRECY).holds && !cell(&hop_s, AUTHENTICITY).holds);
        let unverified_s = run(Variant::E2eUnverified, Attacker::Server);
        assert!(!cell(&unverified_s, SECRECY).holds && !cell(&unverified_s, AUTHENTICITY).holds);
        let verified_c = run(Variant::E2eVerified, Attacker::Compromise);
        assert!(cell(&verified_c, SECRECY).holds && cell(&verified_c, FORWARD_SECRECY).holds);
        let json = report::to_json(&[hop_s]);
        let rows = json.as_array().expect("array");
        assert!(rows.iter().any(|r| r["property"] == SECRECY && r["result"] == "violated"));
        assert!(rows.iter().all(|r| r["states"].as_u64().is_some_and(|n| n > 0)));
    }
}
