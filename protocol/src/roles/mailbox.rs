//! The server's bounded per-recipient queue for recipients that are offline.

use std::collections::VecDeque;

use crate::wire::{Codec, Message};

/// Most messages the server holds for one offline recipient.
///
/// With [`crate::wire::MAX_BODY_LEN`] = 16 KiB this bounds the server's memory per account at about
/// 1 MiB. A message that would exceed it is refused to its sender (`Reject { MailboxFull }`),
/// never dropped silently.
pub const MAILBOX_CAPACITY: usize = 64;

/// The mailbox already holds [`MAILBOX_CAPACITY`] messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxFull;

/// The bytes a queued message counts against the server's [`crate::roles::MAX_QUEUED_BYTES`]:
/// its encoded length (SPEC.md §5.4).
#[must_use]
pub fn queued_len(message: &Message) -> usize {
    crate::wire::HEADER_LEN + message.body_len_hint()
}

/// Messages waiting for one recipient, oldest first, each exactly as it will be delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Mailbox {
    queue: VecDeque<Message>,
}

impl Mailbox {
    /// Queues `message`.
    ///
    /// # Errors
    /// [`MailboxFull`] when [`MAILBOX_CAPACITY`] messages are already queued; nothing changes.
    pub fn push(&mut self, message: Message) -> Result<(), MailboxFull> {
        if self.queue.len() >= MAILBOX_CAPACITY {
            return Err(MailboxFull);
        }
        self.queue.push_back(message);
        Ok(())
    }

    /// Empties the mailbox, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = Message> + '_ {
        self.queue.drain(..)
    }

    /// How many bytes the waiting messages count (each its [`queued_len`]).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.queue.iter().map(queued_len).sum()
    }

    /// How many messages are waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
