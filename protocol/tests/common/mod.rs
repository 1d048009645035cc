//! Helpers shared by the integration tests.
#![cfg(test)] // test-only code: clippy.toml lets tests panic, which is how they fail
#![allow(dead_code)] // each test binary uses a different subset

/// Decodes a hex string from a vector file.
pub fn unhex(s: &serde_json::Value) -> Vec<u8> {
    hex::decode(s.as_str().unwrap_or_else(|| panic!("expected a hex string, got {s}")))
        .unwrap_or_else(|e| panic!("bad hex {s}: {e}"))
}

/// Decodes a hex string that must be exactly `N` bytes.
pub fn unhex_n<const N: usize>(s: &serde_json::Value) -> [u8; N] {
    unhex(s).try_into().unwrap_or_else(|v: Vec<u8>| panic!("expected {N} bytes, got {}", v.len()))
}
