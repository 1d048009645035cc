//! Drivers: code that runs the roles. They add I/O and scheduling, never protocol logic.
//!
//! * [`runner`] — runs Alice, the Server and Bob in one process from a seed, delivering every frame
//!   in order, and records a [`Transcript`]; an [`Observer`] sees every RNG draw and delivery.
//! * [`mitm`] — a malicious server that substitutes prekey bundles (for `run e2e --mitm`).
//! * [`compare`](mod@compare) — hop and e2e on the same messages and seed, side by side.
//! * [`transcript`] — the record of a run, rendered as text, JSON or a Mermaid sequence diagram.
//! * [`client`](mod@client) — `e2e-ref client`: the client role on TCP, driven from the terminal.
//! * [`events`] — a client's events as a line of text and as spec/INTEROP.md's JSON.
//! * [`load`] — `e2e-ref load`: many clients against the relay, measured, with SIGKILL faults.
//! * [`serve`] — `e2e-ref serve`: the relay on TCP (tokio), its state in an ACID store (redb).
//! * [`interop`] — `e2e-ref shim` and `e2e-ref interop` (spec/INTEROP.md).
//! * [`vectors`] — the reference test vectors of `spec/vectors/`: generation and verification.

pub mod client;
pub mod compare;
pub mod events;
pub mod interop;
pub mod load;
pub mod mitm;
pub mod runner;
pub mod serve;
pub mod transcript;
pub mod vectors;

pub use compare::{Comparison, Row, compare};
pub use runner::{
    Delivery, Draw, Handled, Observer, Party, Protocol, Purpose, RunConfig, RunError, Step,
    default_script, run, run_observed, script_from_messages,
};
pub use transcript::{Event, SafetyNumbers, Summary, Transcript};
