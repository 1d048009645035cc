//! Interoperability (issue 14, items 4–5; spec/INTEROP.md).
//!
//! * [`shim`] — `e2e-ref shim`: the reference client driven by JSON lines on stdin/stdout.
//! * [`adversary`] — `e2e-ref serve --adversary`: a bad-bundle or man-in-the-middle relay.
//! * [`harness`] — `e2e-ref interop`: starts a real relay, drives any two shim-speaking client
//!   implementations through the scenarios, and prints a pass/fail matrix.

pub mod adversary;
pub mod harness;
pub mod shim;
