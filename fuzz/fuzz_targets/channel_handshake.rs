//! `channel_handshake`: see `e2e_protocol::fuzzing::channel_handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| e2e_protocol::fuzzing::channel_handshake(data));
