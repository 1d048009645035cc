//! A stateright model checker over the e2e-ref protocol crate's own state machines (issue 4).
//!
//! The state holds the real [`e2e_protocol::roles::Client`]s (Alice, Bob) and
//! [`e2e_protocol::roles::Server`], the frames in flight, the attacker's knowledge and a ghost log
//! of what Alice and Bob really sent and accepted. There is no second implementation of the
//! protocol here: every step is a call into the protocol crate. See `spec/MODEL.md`.

pub mod config;
pub mod model;
pub mod reduction;
pub mod report;
pub mod steps;
pub mod world;

pub use config::{Attacker, Bounds, Variant};
pub use model::{Action, E2eModel};
