//! `e2e-ref interop` (spec/INTEROP.md): the real binary runs every scenario through a real relay,
//! with the reference shim on both sides; and, when `python3` with `cryptography` is available and
//! spec/interop/client.py exists, with the Python client on either side too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_e2e-ref");

/// Runs `e2e-ref interop --json` with `impls` and returns the parsed result (the harness bounds
/// itself: 15 s a step, 60 s a scenario).
fn interop(impls: &[String]) -> Value {
    let mut command = Command::new(EXE);
    command.arg("interop").arg("--json");
    for i in impls {
        command.arg("--impl").arg(i);
    }
    let output = command.output().expect("e2e-ref interop runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn assert_all_passed(result: &Value, pairings: usize) {
    let cells = result["results"].as_array().unwrap();
    let scenarios = result["scenarios"].as_array().unwrap().len();
    assert!(scenarios >= 12, "only {scenarios} scenarios");
    assert_eq!(cells.len(), scenarios * pairings, "every pairing runs every scenario");
    let failed: Vec<&Value> = cells.iter().filter(|c| c["passed"] != true).collect();
    assert!(failed.is_empty(), "failed cells: {failed:#?}");
}

#[test]
fn reference_against_itself_passes_every_scenario() {
    let rust = format!("rust={EXE} shim");
    let result = interop(&[rust]);
    assert_all_passed(&result, 1);
}

#[test]
fn python_client_interoperates_with_the_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let client = root.join("spec/interop/client.py");
    if !client.exists() {
        println!("skipped: {} does not exist", client.display());
        return;
    }
    let python = Command::new("python3").args(["-c", "import cryptography"]).status();
    if !python.is_ok_and(|s| s.success()) {
        println!("skipped: python3 with the cryptography package is not available");
        return;
    }
    let result =
        interop(&[format!("rust={EXE} shim"), format!("python=python3 {}", client.display())]);
    assert_all_passed(&result, 4);
}
