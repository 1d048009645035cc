//! The roles — [`Client`] (Alice, Bob) and [`Server`] — as sans-IO state machines (SPEC.md §6).
//!
//! Roles take frames (and, where a key must be drawn, the caller's RNG) in and hand frames and
//! events out. They own no socket, clock or global RNG, so the in-process runner, a TCP relay, the
//! fuzzers and the model checker all drive the very same code, and a seeded run is reproducible
//! byte for byte. On any error a role is exactly as it was before the call.

mod client;
mod directory;
mod durable;
mod mailbox;
mod pool;
mod replay;
mod server;
mod state_bound;

pub use client::{Client, ClientEvent, ClientOutputs, Protection};
pub use directory::Directory;
pub use durable::{
    Delivery, DirectoryEntry, DurableChange, Snapshot, SnapshotError, StoredMailbox,
};
pub use mailbox::{MAILBOX_CAPACITY, Mailbox, MailboxFull, QUEUED_OVERHEAD, queued_len};
pub use pool::FramePool;
pub use replay::{REPLAY_WINDOW, Refusal, ReplayWindow, ReplayWindows};
pub use server::{
    LinkId, MAX_ACCOUNTS, MAX_QUEUED_BYTES, Server, ServerEvent, ServerLimits, ServerOutputs,
};
pub use state_bound::{MAX_STATE_BODY_LEN, MAX_STATE_LEN};
