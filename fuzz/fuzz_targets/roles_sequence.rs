//! `roles_sequence`: see `e2e_protocol::fuzzing::roles_sequence`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| e2e_protocol::fuzzing::roles_sequence(data));
