//! Fuzzing entry points, shared by the fuzz crate (`fuzz/`, one libFuzzer target per function) and
//! by `protocol/tests/fuzz_corpus.rs`, which replays every committed corpus file through the same
//! functions under plain `cargo test`, so a finding stays a regression test without a fuzzer.
//!
//! Each entry point takes the fuzzer's bytes and **panics** (with `assert!`) exactly when it finds a
//! bug: a panic inside the library, or a broken invariant. They drive the public API only: no
//! check is bypassed, no MAC or signature is skipped. Where a target needs a valid channel to carry
//! arbitrary content, it plays the other end of the channel by hand, holding only the keys that end
//! would hold.
//!
//! | target                | what goes in                                        | invariants beyond "no panic" |
//! |-----------------------|-----------------------------------------------------|------------------------------|
//! | `wire_decode`         | bytes as a link frame, a message, an envelope        | accepted ⇒ re-encodes to the same bytes; `frame_len` agrees with `decode` |
//! | `channel_handshake`   | bytes as handshake message 1 / 2, transport frames   | errors change nothing; only the genuine message opens |
//! | `channel_snow`        | keys, payloads, damaged handshake messages and transport frames, to the channel and to snow | both agree on every accept, every refusal and every byte written or read (but an all-zero DH, which only we refuse) |
//! | `hop_server`          | any plaintext sealed in valid client channels, raw frames, handshakes | errors and refusals change nothing but the channel; every request is answered; registrations, `Ready` and relay answers agree with the §5.1/§5.4 model (bound at `Ready`, one key one name, bounded accounts and queued bytes) |
//! | `e2e_receive`         | envelopes and messages sealed into Bob's channel; in its hop mode, messages into a hop-only client's channel and answers to its `connect` | errors and `Dropped` leave Bob unchanged; genuine messages still decrypt, in any order, under any id, once; hop `Deliver` refused; `PrekeysLow` answered with one upload; hop mode: the id window agrees with a §5.3 model, `connect` refusals (`WrongName`, `Refused`) as §5.1 says |
//! | `bundle_parse`        | prekey bundles into the server's upload and the client's fetch path | server and client agree with the §10.3/§15.2 model: one one-time prekey per requester per upload, one answer to the requester, `PrekeysLow` to the owner exactly when owed |
//! | `frame_stream`        | a stream of frames cut into pieces at arbitrary points | the pieces framed with `frame_len` give the frames, and the stop, of a reader written from SPEC.md §3.1/§3.4; at most one frame buffered; a cut frame passes `split`, never fails `decode` for a header reason, and re-encodes |
//! | `roles_sequence`      | operations over Alice's and Bob's e2e and hop-only clients and the server on a hostile network | nothing accepted twice; everything accepted was sent by its claimed sender, under the right protection; e2e clients refuse hop messages; `PrekeysLow` is answered; the network heals |
//!
//! Operation sequences are decoded with [`arbitrary`]; [`seeds`] builds the seed corpus by encoding
//! chosen operations with the inverse of that decoding (`fuzz/examples/gen_corpus.rs` writes it).
//! Keys are generated once per process (`OnceLock`) from fixed seeds, so an iteration costs little
//! more than the protocol work it fuzzes. The fuzz crate also enables the feature `fuzz-memo`
//! (`crate::memo`, README "Fuzzing"): the honest parties' X25519s, Ed25519 signatures and
//! verifications and small-order checks, the same on every input, are computed once per process;
//! the corpus replay under `cargo test` runs without it. And it builds the suite with its AWS-LC
//! backend (`backend-aws-lc`), C and assembly that cargo-fuzz leaves uninstrumented: the fuzzer's
//! time goes to the protocol, not to coverage counters inside constant-time primitives (README
//! "Fuzzing"); the replay runs with the default backend.

mod bundle_parse;
mod channel_handshake;
mod channel_snow;
mod e2e_receive;
mod frame_stream;
mod hop_receive;
mod hop_server;
mod input;
mod net;
mod roles_sequence;
pub mod seeds;
mod wire_decode;

pub use bundle_parse::bundle_parse;
pub use channel_handshake::channel_handshake;
pub use channel_snow::channel_snow;
pub use e2e_receive::e2e_receive;
pub use frame_stream::frame_stream;
pub use hop_server::hop_server;
pub use roles_sequence::roles_sequence;
pub use wire_decode::wire_decode;

/// One fuzz target: its name (the fuzz crate's binary and the corpus folder) and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order CI runs them.
pub const TARGETS: &[Target] = &[
    ("wire_decode", wire_decode),
    ("channel_handshake", channel_handshake),
    ("hop_server", hop_server),
    ("e2e_receive", e2e_receive),
    ("bundle_parse", bundle_parse),
    ("roles_sequence", roles_sequence),
    ("frame_stream", frame_stream),
    ("channel_snow", channel_snow),
];

/// Reports a broken invariant: a bug the fuzzer found. This is the oracle, so it panics on purpose
/// (as `assert!` does everywhere else in these targets).
#[track_caller]
#[expect(clippy::panic, reason = "the fuzzing oracle: reaching this is a library bug to report")]
fn fail(what: impl core::fmt::Display) -> ! {
    panic!("{what}")
}

/// Unwraps a result the harness relies on (set-up, or a step the protocol guarantees); an `Err` is a
/// bug in the library, reported through [`fail`].
#[track_caller]
fn must<T, E: core::fmt::Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => fail(format_args!("{what}: {error:?}")),
    }
}
