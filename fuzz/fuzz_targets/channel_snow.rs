//! `channel_snow`: see `e2e_protocol::fuzzing::channel_snow`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| e2e_protocol::fuzzing::channel_snow(data));
