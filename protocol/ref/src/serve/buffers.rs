//! Frame buffers that go round the relay instead of being allocated for each frame.
//!
//! A relayed message crosses three buffers: the reader reads the sender's frame into one, the
//! actor decrypts it there and seals the delivery and the `Ack` into two more (from its
//! [`FramePool`]), and the writers write those. Without reuse each is a fresh heap allocation;
//! with it, a buffer a writer has written goes back to [`Buffers`], where the next reader or the
//! actor takes it. The buffers flow one way round — readers and the actor take, writers and the
//! actor give back — so they cannot live in the actor alone: a writer gives its buffer back here,
//! not on the actor's command queue, which stays for work (and a writer never waits on a full one).
//!
//! [`FramePool`]: e2e_protocol::roles::FramePool

use std::sync::{Mutex, PoisonError};

use e2e_protocol::roles::FramePool;

/// Spare frame buffers shared by the connections and the actor: at most [`Buffers::MAX`] of them,
/// holding at most [`Buffers::MAX_BYTES`] between them.
#[derive(Debug, Default)]
pub struct Buffers {
    spare: Mutex<Spare>,
}

/// The spares and their capacities' sum.
#[derive(Debug, Default)]
struct Spare {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl Spare {
    fn pop(&mut self) -> Option<Vec<u8>> {
        let buffer = self.buffers.pop()?;
        self.bytes = self.bytes.saturating_sub(buffer.capacity());
        Some(buffer)
    }
}

impl Buffers {
    /// The most spare buffers kept; one given back beyond it (or beyond [`Buffers::MAX_BYTES`]) is
    /// freed. A relayed message holds three buffers while it crosses the relay, and every
    /// connection may have one in flight: 4096 spares let a relay with about a thousand busy
    /// connections (the README's load runs) keep every buffer, where a bound of a few hundred
    /// made the relay free buffers at one moment and allocate them again at the next.
    pub const MAX: usize = 4096;

    /// The most bytes the spares hold together (their capacities). A buffer has the capacity of
    /// the largest frame it held, up to `MAX_FRAME_LEN` (64 KiB) and the allocator's rounding
    /// above it, so the bound on bytes, not the count, is what keeps large frames from pinning
    /// memory: 8 MiB holds 4096 buffers of 2 KiB frames, or 64 of the largest.
    pub const MAX_BYTES: usize = 8 << 20;

    /// An empty set: the first frames allocate their buffers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer: a spare one, or a new one (which allocates only when written to).
    #[must_use]
    pub fn take(&self) -> Vec<u8> {
        self.lock().pop().unwrap_or_default()
    }

    /// Keeps `buffer` (emptied) for a later frame, unless it has no room to offer or keeping it
    /// would exceed [`Buffers::MAX`] or [`Buffers::MAX_BYTES`].
    pub fn give(&self, mut buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        if capacity == 0 {
            return;
        }
        buffer.clear();
        let mut spare = self.lock();
        if spare.buffers.len() < Self::MAX
            && spare.bytes.saturating_add(capacity) <= Self::MAX_BYTES
        {
            spare.bytes += capacity;
            spare.buffers.push(buffer);
        }
    }

    /// Moves spare buffers into `pool` until it holds `count` (or the spares run out): the
    /// buffers the server seals the next call's frames into.
    pub fn refill(&self, pool: &mut FramePool, count: usize) {
        if pool.len() >= count {
            return;
        }
        let mut spare = self.lock();
        while pool.len() < count {
            let Some(buffer) = spare.pop() else { break };
            pool.recycle(buffer);
        }
    }

    /// How many spare buffers are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().buffers.len()
    }

    /// Whether no spare buffer is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().buffers.is_empty()
    }

    /// The spares. A thread that panicked holding the lock left a consistent list (each change to
    /// it is one push or pop with its byte count), so the poison is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, Spare> {
        self.spare.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty_with_its_capacity() {
        let buffers = Buffers::new();
        assert!(buffers.is_empty());
        assert_eq!(buffers.take().capacity(), 0);
        let mut written = Vec::with_capacity(100);
        written.extend_from_slice(b"frame");
        buffers.give(written);
        assert_eq!(buffers.len(), 1);
        let again = buffers.take();
        assert_eq!((again.len(), again.capacity()), (0, 100));
        assert!(buffers.is_empty());
    }

    #[test]
    fn at_most_max_buffers_are_kept_and_empty_ones_never() {
        let buffers = Buffers::new();
        buffers.give(Vec::new());
        assert!(buffers.is_empty());
        for _ in 0..Buffers::MAX + 5 {
            buffers.give(vec![1]);
        }
        assert_eq!(buffers.len(), Buffers::MAX);
    }

    #[test]
    fn at_most_max_bytes_are_kept_and_a_taken_buffer_frees_its_share() {
        let buffers = Buffers::new();
        let large = Buffers::MAX_BYTES / 4;
        for _ in 0..5 {
            buffers.give(Vec::with_capacity(large));
        }
        assert_eq!(buffers.len(), 4);
        // Full by bytes: a buffer of one more byte is not kept.
        buffers.give(Vec::with_capacity(1));
        assert_eq!(buffers.len(), 4);
        assert_eq!(buffers.take().capacity(), large);
        buffers.give(Vec::with_capacity(1));
        assert_eq!(buffers.len(), 4);
    }

    #[test]
    fn refill_tops_the_pool_up_to_the_count_and_no_further() {
        let buffers = Buffers::new();
        for _ in 0..5 {
            buffers.give(vec![1]);
        }
        let mut pool = FramePool::new();
        buffers.refill(&mut pool, 3);
        assert_eq!((pool.len(), buffers.len()), (3, 2));
        buffers.refill(&mut pool, 3);
        assert_eq!((pool.len(), buffers.len()), (3, 2));
        buffers.refill(&mut pool, 10);
        assert_eq!((pool.len(), buffers.len()), (5, 0));
    }
}
