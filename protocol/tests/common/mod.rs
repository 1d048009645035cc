//! Helpers shared by the integration tests.
#![cfg(test)] // test-only code: clippy.toml lets tests panic, which is how they fail
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

/// Loads a published vector file from `../shared/vectors/` (relative to the project root).
///
/// Returns `None` (after saying which file was wanted) when the file is missing outside CI; under
/// `CI=true` a missing file fails the test, because a vector test that silently skips proves nothing.
pub fn shared_vectors(relative: &str) -> Option<serde_json::Value> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("..").join("shared").join("vectors").join(relative);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display())),
        ),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and the shared vector file {} is missing: {e}", path.display());
            }
            eprintln!("SKIPPED: shared vector file {} not found ({e})", path.display());
            None
        }
    }
}

/// Decodes a hex string from a vector file.
pub fn unhex(s: &serde_json::Value) -> Vec<u8> {
    hex::decode(s.as_str().unwrap_or_else(|| panic!("expected a hex string, got {s}")))
        .unwrap_or_else(|e| panic!("bad hex {s}: {e}"))
}

/// Decodes a hex string that must be exactly `N` bytes.
pub fn unhex_n<const N: usize>(s: &serde_json::Value) -> [u8; N] {
    unhex(s).try_into().unwrap_or_else(|v: Vec<u8>| panic!("expected {N} bytes, got {}", v.len()))
}
