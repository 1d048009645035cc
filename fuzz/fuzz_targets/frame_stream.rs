//! `frame_stream`: see `e2e_protocol::fuzzing::frame_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| e2e_protocol::fuzzing::frame_stream(data));
