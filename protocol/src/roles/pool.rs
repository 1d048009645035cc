//! Frame buffers a driver gives back to the roles, so that the in-place API
//! ([`super::Server::handle_in_place`], [`super::Client::handle_in_place`]) seals the next frames
//! into them instead of allocating new ones.

/// Buffers that frames were sent from (or bodies were read from), kept for the next frames.
///
/// A driver that reuses one pool and one set of output lists relays a message without a heap
/// allocation once the pool holds as many buffers as one call seals frames (two on the relay
/// path: the delivery and the `Ack`). A buffer keeps its capacity, so a pool of 16 KiB frames
/// serves 64-byte ones without growing and the reverse grows a buffer once.
#[derive(Debug, Default)]
pub struct FramePool {
    buffers: Vec<Vec<u8>>,
}

impl FramePool {
    /// The most buffers a pool keeps: more than any one call seals (a mailbox of
    /// [`super::MAILBOX_CAPACITY`] delivered at once is the exception, and its frames are freed
    /// rather than kept), so a driver that recycles every frame cannot grow it without bound.
    pub const MAX_BUFFERS: usize = 16;

    /// An empty pool: the first calls allocate their frames.
    #[must_use]
    pub const fn new() -> Self {
        Self { buffers: Vec::new() }
    }

    /// Keeps `buffer` (emptied) for a later frame, unless the pool is full or the buffer has no
    /// room to offer (a buffer that never held anything, such as the empty one a consumed frame
    /// is left with when the pool had none).
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        if buffer.capacity() > 0 && self.buffers.len() < Self::MAX_BUFFERS {
            buffer.clear();
            self.buffers.push(buffer);
        }
    }

    /// How many buffers the pool holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Whether the pool holds no buffer.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// An empty buffer: a kept one, or a new one (which allocates only when written to).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.buffers.pop().unwrap_or_default()
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
    fn the_pool_keeps_at_most_its_bound() {
        let mut pool = FramePool::new();
        for _ in 0..FramePool::MAX_BUFFERS + 3 {
            pool.recycle(vec![1]);
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
