//! Frame buffers a driver gives back to the roles, so that the in-place API
//! ([`super::Server::handle_in_place`], [`super::Client::handle_in_place`]) seals the next frames
//! into them instead of allocating new ones.

use std::cmp::Reverse;

/// Buffers that frames were sent from (or bodies were read from), kept for the next frames.
///
/// A driver that reuses one pool and one set of output lists relays a message without a heap
/// allocation once the pool holds as many buffers as one call takes (three on the relay path:
/// the one the frame is decrypted into, the delivery and the `Ack`). A buffer keeps its capacity,
/// so a pool of 16 KiB frames serves 64-byte ones without growing and the reverse grows a buffer
/// once.
///
/// A buffer given back with bytes in it (a body read) keeps them, and is the first one a frame is
/// decrypted into: the decryption writes over them, where an empty buffer would first have to be
/// zeroed to the plaintext's length (safe Rust hands out no uninitialised bytes). The bytes are
/// never read. An empty one (a sent frame, which the roles leave empty) is the first one a frame
/// is sealed into.
#[derive(Debug, Default)]
pub struct FramePool {
    /// Kept buffers that hold no bytes.
    empty: Vec<Vec<u8>>,
    /// Kept buffers that still hold bytes, the most recently given back last.
    filled: Vec<Vec<u8>>,
}

impl FramePool {
    /// The most buffers a pool keeps: more than any one call seals (a mailbox of
    /// [`super::MAILBOX_CAPACITY`] delivered at once is the exception, and its frames are freed
    /// rather than kept), so a driver that recycles every frame cannot grow it without bound.
    pub const MAX_BUFFERS: usize = 16;

    /// An empty pool: the first calls allocate their frames.
    #[must_use]
    pub const fn new() -> Self {
        Self { empty: Vec::new(), filled: Vec::new() }
    }

    /// Keeps `buffer` for a later frame, with the bytes it holds (see the type's docs), unless
    /// the pool is full or the buffer has no room to offer (a buffer that never held anything,
    /// such as the empty one a new frame starts as).
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 || self.len() >= Self::MAX_BUFFERS {
            return;
        }
        if buffer.is_empty() { self.empty.push(buffer) } else { self.filled.push(buffer) }
    }

    /// How many buffers the pool holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.empty.len() + self.filled.len()
    }

    /// Whether the pool holds no buffer.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty buffer to seal a frame into: a kept empty one, else the kept one that holds the
    /// fewest bytes, emptied, else a new one (which allocates only when written to).
    ///
    /// Of the filled ones, the one with the fewest bytes is the one a decryption would gain least
    /// from: taking the most recently given back instead (a body just read, say) left the next
    /// read of that size a short buffer to zero up to its length — 16.6 k instructions a message
    /// on the relay's 16 KiB hop, where the `Ack` takes a buffer after the empty ones run out.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let mut buffer = self.empty.pop().unwrap_or_else(|| {
            let fewest = self.filled.iter().enumerate().min_by_key(|(_, buffer)| buffer.len());
            let fewest = fewest.map(|(index, _)| index);
            fewest.map(|index| self.filled.swap_remove(index)).unwrap_or_default()
        });
        buffer.clear();
        buffer
    }

    /// A buffer to decrypt a frame of `len` bytes into (`channel::Transport::read_into`), which
    /// writes over the bytes it holds and zeroes only what it must add: of the kept buffers with
    /// bytes in them, the one that holds the fewest but at least `len` (so that a short message
    /// does not take, and cut, the buffer a long one needs), else the one that holds the most;
    /// else an empty one, else a new one. Its bytes are stale (an earlier body's), never read.
    pub(crate) fn take_filled(&mut self, len: usize) -> Vec<u8> {
        // Ordered by: holds at least `len`, then the fewest spare bytes, then the most bytes.
        let fit = |buffer: &Vec<u8>| match buffer.len().checked_sub(len) {
            Some(spare) => (false, spare, Reverse(0)),
            None => (true, 0, Reverse(buffer.len())),
        };
        let best = self.filled.iter().enumerate().min_by_key(|(_, buffer)| fit(buffer));
        match best.map(|(index, _)| index) {
            Some(index) => self.filled.swap_remove(index),
            None => self.empty.pop().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_buffer_comes_back_empty_with_its_capacity() {
        let mut pool = FramePool::new();
        assert!(pool.is_empty());
        assert_eq!(pool.take().capacity(), 0);
        let mut buffer = Vec::with_capacity(100);
        buffer.extend_from_slice(b"sent");
        pool.recycle(buffer);
        assert_eq!((pool.len(), pool.is_empty()), (1, false));
        let again = pool.take();
        assert_eq!((again.len(), again.capacity()), (0, 100));
        assert!(pool.is_empty());
    }

    #[test]
    fn a_frame_is_decrypted_into_a_buffer_with_bytes_and_sealed_into_an_empty_one() {
        let mut pool = FramePool::new();
        assert_eq!(pool.take_filled(8).capacity(), 0);
        pool.recycle(vec![5; 12]);
        pool.recycle(Vec::with_capacity(9));
        pool.recycle(vec![6; 30]);
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.take_filled(20), vec![6; 30]);
        let sealing = pool.take();
        assert_eq!((sealing.len(), sealing.capacity()), (0, 9));
        // No empty one left: a filled one, emptied.
        let sealing = pool.take();
        assert_eq!((sealing.len(), sealing.capacity()), (0, 12));
        assert!(pool.is_empty());
        // No filled one: an empty one.
        pool.recycle(Vec::with_capacity(4));
        assert_eq!(pool.take_filled(2).capacity(), 4);
    }

    #[test]
    fn a_frame_sealed_without_an_empty_buffer_takes_the_one_with_the_fewest_bytes() {
        // The relay's pattern: a 16 KiB body given back after a short `Ack`'s plaintext, and the
        // next frame sealed before the next body of that size is read.
        let mut pool = FramePool::new();
        for len in [30, 9, 16_000, 20] {
            pool.recycle(vec![3; len]);
        }
        let sealing = pool.take();
        assert_eq!((sealing.len(), sealing.capacity()), (0, 9));
        assert_eq!(pool.take_filled(16_000).len(), 16_000);
        assert_eq!(pool.take().capacity(), 20);
        assert_eq!(pool.take().capacity(), 30);
        assert!(pool.is_empty());
    }

    #[test]
    fn a_buffer_to_decrypt_into_holds_the_fewest_bytes_it_can_without_growing() {
        let mut pool = FramePool::new();
        for len in [5, 40, 20, 12] {
            pool.recycle(vec![7; len]);
        }
        pool.recycle(Vec::with_capacity(50));
        assert_eq!(pool.take_filled(10).len(), 12);
        assert_eq!(pool.take_filled(12).len(), 20);
        assert_eq!(pool.take_filled(41).len(), 40);
        assert_eq!(pool.take_filled(1).len(), 5);
        assert_eq!(pool.take_filled(1).capacity(), 50);
        assert!(pool.is_empty());
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound() {
        let mut pool = FramePool::new();
        for i in 0..FramePool::MAX_BUFFERS + 3 {
            // Empty and filled buffers count alike.
            pool.recycle(if i % 3 == 0 { Vec::with_capacity(1) } else { vec![1] });
        }
        assert_eq!(pool.len(), FramePool::MAX_BUFFERS);
    }

    #[test]
    fn a_buffer_without_room_is_not_kept() {
        let mut pool = FramePool::new();
        pool.recycle(Vec::new());
        assert!(pool.is_empty());
        pool.recycle(Vec::with_capacity(1));
        assert_eq!(pool.len(), 1);
    }
}
