//! The server's bounded per-recipient queue for recipients that are offline.

use std::collections::VecDeque;

use crate::wire::{HEADER_LEN, MAX_NAME_LEN, Message};

/// Most messages the server holds for one offline recipient.
///
/// With [`crate::wire::MAX_BODY_LEN`] = 16 KiB this bounds the server's memory per account at about
/// 1 MiB. A message that would exceed it is refused to its sender (`Reject { MailboxFull }`),
/// never dropped silently.
pub const MAILBOX_CAPACITY: usize = 64;

/// The mailbox already holds [`MAILBOX_CAPACITY`] messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxFull;

/// What every queued message counts besides its content (SPEC.md §5.4): the message header and
/// the fields as §3.3 bounds them — id (8), name (1 + [`MAX_NAME_LEN`]) and the content's length
/// prefix (2) — whatever the sender's name.
pub const QUEUED_OVERHEAD: usize = HEADER_LEN + 8 + 1 + MAX_NAME_LEN + 2;

/// The bytes a queued message counts against the server's [`crate::roles::MAX_QUEUED_BYTES`]:
/// [`QUEUED_OVERHEAD`] plus its body or envelope (SPEC.md §5.4: `49 + len(content)`).
#[must_use]
pub fn queued_len(message: &Message) -> usize {
    let content = match message {
        Message::Send { body, .. } | Message::Deliver { body, .. } => body.as_bytes().len(),
        Message::E2eSend { envelope, .. } | Message::E2eDeliver { envelope, .. } => {
            envelope.as_bytes().len()
        }
        _ => 0,
    };
    QUEUED_OVERHEAD + content
}

/// Messages waiting for one recipient, oldest first, each exactly as it will be delivered.
///
/// A durable server (SPEC.md §5.4) numbers the messages: `head` is the position of the oldest,
/// and only [`Mailbox::settle`] advances it. A server without a store drains with
/// [`Mailbox::drain`] and leaves `head` at 0, so its state does not count deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Mailbox {
    queue: VecDeque<Message>,
    head: u64,
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

    /// A mailbox restored from a store: `messages` at positions `head, head + 1, …`. Restoring
    /// ignores [`MAILBOX_CAPACITY`]; the caller checks it.
    #[must_use]
    pub fn restored(head: u64, messages: Vec<Message>) -> Self {
        Self { queue: messages.into(), head }
    }

    /// The position the next pushed message gets.
    #[must_use]
    pub fn next_position(&self) -> u64 {
        self.head.saturating_add(u64::try_from(self.queue.len()).unwrap_or(u64::MAX))
    }

    /// The position of the oldest message.
    #[must_use]
    pub const fn head(&self) -> u64 {
        self.head
    }

    /// The waiting messages, oldest first, without removing them.
    pub fn iter(&self) -> impl Iterator<Item = &Message> + '_ {
        self.queue.iter()
    }

    /// Removes every message below position `until` (delivered); returns the bytes freed, each
    /// message counted by its [`queued_len`]. Idempotent: positions already removed stay removed.
    pub fn settle(&mut self, until: u64) -> usize {
        let mut freed = 0;
        while self.head < until {
            let Some(message) = self.queue.pop_front() else { break };
            freed += queued_len(&message);
            self.head += 1;
        }
        freed
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, Envelope, MessageId, Name};

    /// SPEC.md §5.4: a queued message counts `49 + len(content)` bytes, whatever its names.
    #[test]
    fn a_queued_message_counts_49_bytes_and_its_content() {
        assert_eq!(QUEUED_OVERHEAD, 49);
        let body = Body::new(vec![7; 10]).unwrap();
        for from in ["a", "alice", &"n".repeat(MAX_NAME_LEN)] {
            let from = Name::new(from).unwrap();
            let deliver =
                Message::Deliver { id: MessageId(1), from: from.clone(), body: body.clone() };
            assert_eq!(queued_len(&deliver), 59, "{from}");
            let envelope = Envelope::new(vec![1]).unwrap();
            let e2e = Message::E2eDeliver { id: MessageId(2), from, envelope };
            assert_eq!(queued_len(&e2e), 50);
        }
        let empty = Message::Send {
            id: MessageId(3),
            to: Name::new("b").unwrap(),
            body: Body::new(Vec::new()).unwrap(),
        };
        assert_eq!(queued_len(&empty), 49);
    }

    fn deliver(id: u64, text: &str) -> Message {
        let (from, body) = (Name::new("alice").unwrap(), Body::new(text.as_bytes().to_vec()));
        Message::Deliver { id: MessageId(id), from, body: body.unwrap() }
    }

    /// SPEC.md §5.4: a mailbox holds `MAILBOX_CAPACITY` messages and refuses one more, unchanged.
    #[test]
    fn a_mailbox_holds_its_capacity_and_refuses_one_more_unchanged() {
        let mut mailbox = Mailbox::default();
        assert!(mailbox.is_empty());
        for id in 1..=MAILBOX_CAPACITY {
            mailbox.push(deliver(id as u64, "m")).unwrap();
            assert_eq!(mailbox.len(), id);
        }
        assert!(!mailbox.is_empty());
        assert_eq!(mailbox.bytes(), MAILBOX_CAPACITY * (QUEUED_OVERHEAD + 1));
        let full = mailbox.clone();
        assert_eq!(mailbox.push(deliver(99, "m")), Err(MailboxFull));
        assert_eq!(mailbox, full);
    }

    /// SPEC.md §5.4, a durable server: `settle(until)` removes the messages at positions below
    /// `until`, oldest first, and returns the bytes they counted; positions already removed stay
    /// removed, and a position past the last message removes what there is.
    #[test]
    fn settling_removes_the_messages_below_a_position_once() {
        let messages = vec![deliver(1, "one"), deliver(2, "four"), deliver(3, "three")];
        let mut mailbox = Mailbox::restored(5, messages.clone());
        assert_eq!((mailbox.head(), mailbox.next_position(), mailbox.len()), (5, 8, 3));
        assert_eq!(mailbox.iter().collect::<Vec<_>>(), messages.iter().collect::<Vec<_>>());
        assert_eq!(mailbox.settle(5), 0, "nothing is below the head");
        assert_eq!(mailbox.settle(7), 2 * QUEUED_OVERHEAD + "one".len() + "four".len());
        assert_eq!((mailbox.head(), mailbox.next_position()), (7, 8));
        assert_eq!(mailbox.iter().collect::<Vec<_>>(), [&messages[2]]);
        assert_eq!(mailbox.settle(6), 0, "already removed");
        assert_eq!(mailbox.settle(100), QUEUED_OVERHEAD + "three".len());
        assert_eq!((mailbox.head(), mailbox.next_position()), (8, 8));
        assert!(mailbox.is_empty());
    }

    /// A server without a store drains a mailbox as it sends it: oldest first, the head stays 0.
    #[test]
    fn draining_hands_out_every_message_oldest_first() {
        let mut mailbox = Mailbox::default();
        mailbox.push(deliver(1, "one")).unwrap();
        mailbox.push(deliver(2, "two")).unwrap();
        assert_eq!(mailbox.next_position(), 2);
        assert_eq!(mailbox.drain().collect::<Vec<_>>(), [deliver(1, "one"), deliver(2, "two")]);
        assert!(mailbox.is_empty());
        assert_eq!((mailbox.head(), mailbox.next_position(), mailbox.bytes()), (0, 0, 0));
    }
}
