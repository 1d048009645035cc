//! `e2e-check`'s exit status, which CI relies on (`.ci/run`, spec/MODEL.md §8): 0 when every cell
//! is as the expected table says, non-zero when one differs — shown here with a seeded flaw that
//! breaks a cell, the binary run as CI runs it.

#[cfg(test)]
mod tests {
    use std::process::{Command, Output};

    /// The cheapest cell a seeded flaw breaks: hop vs S, one message, one injection.
    const CELL: [&str; 12] = [
        "--variant",
        "hop",
        "--attacker",
        "S",
        "--alice-messages",
        "1",
        "--bob-messages",
        "0",
        "--budget",
        "1",
        "--threads",
        "2",
    ];

    fn run(extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_e2e-check"))
            .args(CELL)
            .args(extra)
            .output()
            .unwrap_or_else(|e| panic!("running e2e-check: {e}"))
    }

    #[test]
    fn exits_zero_when_the_table_is_as_expected() {
        let out = run(&[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("no-replay") && stdout.contains("hop"), "{stdout}");
    }

    #[test]
    fn exits_non_zero_when_a_cell_differs() {
        let out = run(&["--flaw", "skip-replay-window", "--expect-unflawed-table"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("differs from the expected table"), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let row = stdout.lines().find(|l| l.contains("no-replay")).unwrap_or_default();
        assert!(row.contains("VIOLATED") && row.contains("differs"), "{stdout}");
    }
}
