//! Drivers: code that runs the roles. They add I/O and scheduling, never protocol logic.
//!
//! * [`runner`] — runs Alice, the Server and Bob in one process from a seed, delivering every frame
//!   in order, and records a [`Transcript`].
//! * [`transcript`] — the record of a run, rendered as text, JSON or a Mermaid sequence diagram.

pub mod runner;
pub mod transcript;

pub use runner::{Party, Step, default_hop_script, run_hop, script_from_messages};
pub use transcript::{Event, Summary, Transcript};
