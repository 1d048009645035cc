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

/// Spare frame buffers shared by the connections and the actor, at most [`Buffers::MAX`].
#[derive(Debug, Default)]
pub struct Buffers {
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// The most spare buffers kept; one given back beyond it is freed. In flight, one relayed
    /// message holds three buffers and a batch at most [`super::actor::GROUP_COMMIT`] messages, so
    /// 128 spares cover the frames in flight between two batches with room to spare. A buffer has
    /// the capacity of the largest frame it held (at most `MAX_FRAME_LEN`, 64 KiB, rounded up by
    /// the allocator's growth to at most twice that), so the spares hold at most 16 MiB, and with
    /// the usual frames of a few KiB far less.
    pub const MAX: usize = 128;

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

    /// Keeps `buffer` (emptied) for a later frame, unless [`Buffers::MAX`] are kept already or it
    /// has no room to offer.
    pub fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        buffer.clear();
        let mut spare = self.lock();
        if spare.len() < Self::MAX {
            spare.push(buffer);
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
        self.lock().len()
    }

    /// Whether no spare buffer is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The spares. A thread that panicked holding the lock left a list of empty buffers, which is
    /// as good as any: the poison is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
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
