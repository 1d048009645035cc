//! `e2e_receive`: see `e2e_protocol::fuzzing::e2e_receive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| e2e_protocol::fuzzing::e2e_receive(data));
