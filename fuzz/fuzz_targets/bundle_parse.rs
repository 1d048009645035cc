//! `bundle_parse`: see `e2e_protocol::fuzzing::bundle_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| e2e_protocol::fuzzing::bundle_parse(data));
