//! The server's durable state as data (SPEC.md §5.4, §9.2): what a driver must store so that a
//! restarted server is the one that stopped, minus its connections.
//!
//! A server made durable ([`crate::roles::Server::durable`], [`crate::roles::Server::restore`])
//! reports every change to its durable state in [`crate::roles::ServerOutputs::changes`]. The
//! server stays the only protocol logic: a store applies the changes blindly, and a restart
//! rebuilds the server from what the store holds ([`Snapshot`]). Everything else — links, channel
//! keys, which connection is whose — is volatile by design: a restarted server has no connections,
//! and every client handshakes again.
//!
//! **Ordering contract.** A driver commits the changes of one call in one atomic, durable
//! transaction *before* it sends any frame of that call. So an `Ack { Queued }` never leaves before
//! its message is stored, and a `Bundle` never leaves before the one-time prekey in it is deleted.
//!
//! **Mailbox removal is deferred.** A durable server sends a mailbox on confirmation but keeps it,
//! and reports [`crate::roles::ServerOutputs::delivered`]; the driver calls
//! [`crate::roles::Server::settle`] once those frames are written, and only that removes them (and
//! reports [`DurableChange::Removed`]). A crash in between delivers them again on the next
//! connection, where the recipient refuses the copies: by the replay window in hop (the stored
//! `Deliver` keeps its id, §5.3), by the ratchet in e2e (a used message key is gone, §12.5).

use crate::suite::PublicKey;
use crate::wire::{IdentityPublic, Message, Name, OneTimePrekeyPublic, SignedPrekeyPublic};

/// One change to the server's durable state, in the order the server made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DurableChange {
    /// `name` is now bound to `key` (its first confirmed registration, SPEC.md §5.1). Bindings are
    /// never removed.
    Bound {
        /// The name.
        name: Name,
        /// The client's static key.
        key: PublicKey,
    },
    /// `message` (a `Deliver` or an `E2eDeliver`) was appended to `to`'s mailbox at `position`.
    /// Positions count every message the mailbox ever held, from 0: each is used once.
    Queued {
        /// The recipient.
        to: Name,
        /// The message's position in `to`'s mailbox.
        position: u64,
        /// The message, exactly as it will be sealed to `to`.
        message: Message,
    },
    /// Every message of `name`'s mailbox below position `until` was delivered and is removed.
    Removed {
        /// The recipient.
        name: Name,
        /// The first position still held.
        until: u64,
    },
    /// `name`'s directory entry is now `entry`: an upload was stored, or a fetch took a one-time
    /// prekey (which is then no longer in `entry`).
    Directory {
        /// The owner.
        name: Name,
        /// The whole entry as the server now holds it.
        entry: DirectoryEntry,
    },
}

/// One name's published keys as the server holds them (SPEC.md §15.2). Public keys only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirectoryEntry {
    /// The owner's identity.
    pub identity: IdentityPublic,
    /// The current signed prekey.
    pub signed_prekey: SignedPrekeyPublic,
    /// The one-time prekeys not yet handed out, oldest first.
    pub one_time: Vec<OneTimePrekeyPublic>,
    /// Who took one of these one-time prekeys since the owner's last upload, in name order.
    pub takers: Vec<Name>,
}

/// One name's mailbox as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredMailbox {
    /// The recipient.
    pub name: Name,
    /// The position of the first message in `messages` (everything below was delivered).
    pub head: u64,
    /// The messages, oldest first, at positions `head, head + 1, …`.
    pub messages: Vec<Message>,
}

/// Everything a server needs to restart: what a store loads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// Every binding, name → static key.
    pub accounts: Vec<(Name, PublicKey)>,
    /// Every mailbox that holds a message or was ever delivered from.
    pub mailboxes: Vec<StoredMailbox>,
    /// Every published bundle.
    pub directory: Vec<(Name, DirectoryEntry)>,
}

/// Why a [`Snapshot`] cannot be restored: the store holds something no server could have written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A name is bound twice, or one key to two names (SPEC.md §5.1).
    DuplicateBinding(Name),
    /// A mailbox or directory entry for a name that is not bound.
    Unbound(Name),
    /// A mailbox listed twice, or a mailbox message that is not a `Deliver` or an `E2eDeliver`.
    BadMailbox(Name),
    /// More accounts, mailbox messages or queued bytes than the server's limits allow.
    OverLimit,
}

impl core::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::DuplicateBinding(name) => write!(f, "{name} is bound twice, or its key is"),
            Self::Unbound(name) => write!(f, "state stored for {name}, which is not bound"),
            Self::BadMailbox(name) => write!(f, "the mailbox of {name} is not a mailbox"),
            Self::OverLimit => f.write_str("the stored state exceeds the server's limits"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// A durable driver calls [`crate::roles::Server::settle`] with this once every frame of the call
/// that reported it has been written to `link`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The link the mailbox went out on.
    pub link: crate::roles::LinkId,
    /// Whose mailbox.
    pub name: Name,
    /// The position after the last message sent.
    pub until: u64,
}
