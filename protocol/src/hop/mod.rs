//! The hop-by-hop protocol (SPEC.md §5).
//!
//! A message travels as plaintext inside each client's channel: Alice seals `Send` for the server,
//! the server opens it, asks its [`ContentPolicy`], and re-seals it as `Deliver` in Bob's channel.
//! Routers on either link see only channel ciphertext; the server sees everything — that is the
//! point of the design, and what makes a content policy possible at all.
//!
//! The relay itself is in [`crate::roles::Server`]; this module holds what is specific to hop: the
//! policy the server applies to plaintexts.

mod policy;

pub use policy::{AllowAll, ContentPolicy, DenyWord, Verdict};
