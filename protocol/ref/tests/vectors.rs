//! The reference test vectors of `spec/vectors/` (SPEC.md §17): the committed files are exactly what
//! the generator writes, every case re-derives, every file matches its JSON Schema (with the
//! `jsonschema` crate), and the `e2e-ref vectors` commands behave as documented.
#![cfg(test)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use e2e_ref::vectors::{COVERAGE_FILE, FILES, generate_into, verify_dir};

fn spec_vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join("spec").join("vectors")
}

/// A fresh directory under the system's temporary directory (never the source tree).
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("e2e-ref-vectors-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The files as this library generates them, once per test binary: a generation re-runs every
/// transcript (thousands of frames and sessions), so the tests share one. The second, independent
/// generation that shows the output is deterministic is `cli_generate_and_verify`'s, made by the
/// executable in a process of its own.
fn fresh(file: &str) -> &'static str {
    static FRESH: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let files = FRESH.get_or_init(|| {
        let dir = temp_dir("fresh");
        generate_into(&dir).unwrap();
        let files = FILES
            .iter()
            .map(|kind| kind.file)
            .chain([COVERAGE_FILE])
            .map(|f| (f, read(&dir.join(f))));
        let files = files.collect();
        let _ = std::fs::remove_dir_all(&dir);
        files
    });
    files.iter().find(|(f, _)| *f == file).map(|(_, text)| text.as_str()).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn committed_vectors_equal_a_fresh_generation() {
    for file in FILES.iter().map(|kind| kind.file).chain([COVERAGE_FILE]) {
        let generated = fresh(file);
        let committed = read(&spec_vectors().join(file));
        assert!(
            generated == committed,
            "spec/vectors/{file} differs from a fresh generation; if the change is intended, regenerate with \
             `cargo run --release --bin e2e-ref -- vectors generate --out spec/vectors`",
        );
    }
}

#[test]
fn every_committed_case_verifies() {
    let reports = verify_dir(&spec_vectors());
    assert_eq!(reports.len(), FILES.len());
    for report in reports {
        let failures: Vec<_> = report.cases.iter().filter(|c| c.failure.is_some()).collect();
        assert!(failures.is_empty(), "{}: {failures:#?}", report.file);
        assert!(report.passed() > 0, "{} has no cases", report.file);
    }
}

#[test]
fn every_file_matches_its_schema() {
    for kind in &FILES {
        let stem = kind.file.trim_end_matches(".json");
        let schema = json(&spec_vectors().join("schema").join(format!("{stem}.schema.json")));
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{stem}.schema.json is not a valid schema: {e}"));
        let instance = json(&spec_vectors().join(kind.file));
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .take(5)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{} does not match its schema: {errors:#?}", kind.file);
    }
}

/// Each case must carry an id, a comment and its expectation (`result`, and `error` for invalid
/// ones) — the schemas say so too; this also checks the ids are unique within a file.
#[test]
fn every_case_carries_its_expectation_and_a_unique_id() {
    for kind in &FILES {
        let file = json(&spec_vectors().join(kind.file));
        let cases: Vec<&serde_json::Value> = match file["cases"].as_array() {
            Some(cases) => cases.iter().collect(),
            None => file["runs"]
                .as_array()
                .expect("cases or runs")
                .iter()
                .flat_map(|run| run["cases"].as_array().expect("run cases"))
                .collect(),
        };
        let mut ids = std::collections::BTreeSet::new();
        let (mut valid, mut invalid) = (0, 0);
        for case in cases {
            let id = case["id"].as_str().expect("id");
            assert!(ids.insert(id.to_owned()), "{}: duplicate id {id}", kind.file);
            assert!(case["comment"].as_str().is_some_and(|c| !c.is_empty()), "{id}: comment");
            match case["result"].as_str() {
                Some("valid") => valid += 1,
                Some("invalid") => {
                    invalid += 1;
                    assert!(case["error"].as_str().is_some(), "{id}: invalid without error");
                }
                other => panic!("{id}: result {other:?}"),
            }
        }
        assert!(valid > 0 && invalid > 0, "{}: {valid} valid, {invalid} invalid", kind.file);
    }
}

/// The verifier is not a rubber stamp: a changed byte, a wrong expectation or a missing file fail.
#[test]
fn verify_detects_tampering() {
    // The files the test changes, and bundles.json untouched; the transcripts are left out (each
    // then fails as missing), since re-running them would only repeat every_committed_case_verifies.
    let dir = temp_dir("tampered");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["key_schedule.json", "wire.json", "channel.json", "bundles.json"] {
        std::fs::write(dir.join(file), fresh(file)).unwrap();
    }
    let path = dir.join("key_schedule.json");
    let mut file = json(&path);
    let sk =
        file["cases"].as_array_mut().unwrap().iter_mut().find(|c| c["function"] == "x3dh").unwrap();
    sk["SK"] = serde_json::Value::String("00".repeat(32));
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();

    let path = dir.join("wire.json");
    let mut file = json(&path);
    let case =
        file["cases"].as_array_mut().unwrap().iter_mut().find(|c| c["id"] == "link-empty").unwrap();
    case["error"] = "Wire.Oversized".into();
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    std::fs::remove_file(dir.join("channel.json")).unwrap();

    let reports = verify_dir(&dir);
    let failed = |file: &str| reports.iter().find(|r| r.file == file).unwrap().failed();
    assert_eq!(failed("key_schedule.json"), 1);
    assert_eq!(failed("wire.json"), 1);
    assert_eq!(failed("channel.json"), 1);
    assert_eq!(failed("bundles.json"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

fn e2e_ref(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_e2e-ref")).args(args).output().expect("run e2e-ref");
    (out.status.success(), String::from_utf8(out.stdout).expect("utf-8"))
}

/// `e2e-ref vectors verify` on the committed files: per-file counts, exit 0. `vectors generate`
/// writes the same bytes as the library. And a failing case makes `verify` exit non-zero.
#[test]
fn cli_generate_and_verify() {
    let spec = spec_vectors();
    let (ok, stdout) = e2e_ref(&["vectors", "verify", spec.to_str().unwrap()]);
    assert!(ok, "{stdout}");
    for kind in &FILES {
        assert!(
            stdout.lines().any(|l| l.starts_with(kind.file) && l.ends_with(" passed, 0 failed")),
            "{stdout}"
        );
    }
    assert!(stdout.lines().last().unwrap().ends_with(" failed"), "{stdout}");

    // A second generation, in a process of its own: byte-identical to the library's (no clock, no
    // hash-map order, no state shared between the two).
    let dir = temp_dir("cli");
    let (ok, stdout) = e2e_ref(&["vectors", "generate", "--out", dir.to_str().unwrap()]);
    assert!(ok, "{stdout}");
    for file in FILES.iter().map(|kind| kind.file).chain([COVERAGE_FILE]) {
        assert_eq!(read(&dir.join(file)), fresh(file), "{file}");
    }
    // A failing case makes `verify` exit non-zero. Without the transcripts (each then fails as
    // missing), so that this third verification does not re-run every transcript again.
    std::fs::write(dir.join("bundles.json"), "{}").unwrap();
    for file in ["hop_transcript.json", "e2e_transcript.json"] {
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    let (ok, stdout) = e2e_ref(&["vectors", "verify", dir.to_str().unwrap()]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("bundles.json: 0 passed, 1 failed"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A validator for one of `wire.schema.json`'s `$defs` (`message`, `envelope`, `link`): the one
/// decoded form every file uses (SPEC.md §17.1).
fn decoded_validator(def: &str) -> jsonschema::Validator {
    let wire = json(&spec_vectors().join("schema").join("wire.schema.json"));
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": wire["$defs"].clone(),
        "$ref": format!("#/$defs/{def}"),
    });
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("$defs/{def}: {e}"))
}

/// Every decoded message and envelope in the transcripts has the form `wire.schema.json` defines,
/// and the definitions refuse what they should (so the check is not vacuous).
#[test]
fn every_decoded_message_and_envelope_has_the_one_schema_form() {
    let message = decoded_validator("message");
    let envelope = decoded_validator("envelope");
    let mut checked = 0;
    for file in ["hop_transcript.json", "e2e_transcript.json"] {
        let value = json(&spec_vectors().join(file));
        for run in value["runs"].as_array().expect("runs") {
            for case in run["cases"].as_array().expect("cases") {
                for key in ["message", "payload_message"] {
                    if let Some(m) = case.get(key) {
                        assert!(message.is_valid(m), "{}: {key} {m}", case["id"]);
                        checked += 1;
                    }
                }
                if let Some(e) = case.get("e2e").and_then(|e| e.get("envelope")) {
                    assert!(envelope.is_valid(e), "{}: envelope {e}", case["id"]);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 250, "only {checked} decoded forms checked");
    let good = serde_json::json!({"type": "Ack", "id": 1, "status": "Queued"});
    assert!(message.is_valid(&good));
    for bad in [
        serde_json::json!({"type": "Ack", "id": 1, "status": "Queued", "extra": 0}),
        serde_json::json!({"type": "Ack", "id": 1}),
        serde_json::json!({"type": "Ack", "id": -1, "status": "Queued"}),
        serde_json::json!({"type": "Ack", "id": 1, "status": "queued"}),
        serde_json::json!({"type": "Register", "name": "Bob"}),
        serde_json::json!({"type": "Ping"}),
    ] {
        assert!(!message.is_valid(&bad), "accepted {bad}");
    }
    let no_opk = serde_json::json!({"type": "RatchetMessage", "header": {"dh": "00".repeat(32), "pn": 0, "n": 0}, "ciphertext": ""});
    assert!(envelope.is_valid(&no_opk));
    let bad_header = serde_json::json!({"type": "RatchetMessage", "header": {"dh": "00", "pn": 0, "n": 0}, "ciphertext": ""});
    assert!(!envelope.is_valid(&bad_header));
}
