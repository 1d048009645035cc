//! `wire_decode`: see `e2e_protocol::fuzzing::wire_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| e2e_protocol::fuzzing::wire_decode(data));
