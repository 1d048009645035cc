//! `hop_server`: see `e2e_protocol::fuzzing::hop_server`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| e2e_protocol::fuzzing::hop_server(data));
