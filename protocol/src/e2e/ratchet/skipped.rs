//! The skipped-message-key store (SPEC §12.4 `SKIP`, §12.5): `(DHr, n) → MK`, bounded, evicting the
//! oldest entry first.

use std::collections::BTreeMap;

use crate::state::{StateError, StateWriter, ensure, read_count, read_public_key, read_secret};
use crate::suite::PublicKey;
use crate::wire::Reader;

use super::MAX_SKIPPED_KEYS;
use super::message_key::MessageKey;

/// Where a skipped key belongs: the peer ratchet key of its chain and its index in that chain.
type Slot = (PublicKey, u32);

/// Message keys derived ahead of their message, to decrypt messages that arrive out of order.
///
/// Invariant: every stored key carries a distinct insertion number, and `order` maps exactly those
/// numbers back to their slots, so the oldest entry is `order`'s first and every operation is
/// `O(log n)`; there are at most [`MAX_SKIPPED_KEYS`] entries.
///
/// Equality and hashing look at the content only — the keys and their order of insertion — not at
/// the insertion numbers, so two stores holding the same keys in the same order are equal and hash
/// alike whatever their history (a model checker deduplicates sessions by hash).
#[derive(Clone, Debug, Default)]
pub(crate) struct SkippedKeys {
    keys: BTreeMap<Slot, (u64, MessageKey)>,
    order: BTreeMap<u64, Slot>,
    next: u64,
}

impl SkippedKeys {
    /// The entries, oldest first.
    fn entries(&self) -> impl Iterator<Item = (&Slot, &MessageKey)> {
        self.order.values().filter_map(|slot| self.keys.get(slot).map(|(_, key)| (slot, key)))
    }
}

impl PartialEq for SkippedKeys {
    fn eq(&self, other: &Self) -> bool {
        self.keys.len() == other.keys.len() && self.entries().eq(other.entries())
    }
}

impl Eq for SkippedKeys {}

impl core::hash::Hash for SkippedKeys {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.keys.len().hash(state);
        for entry in self.entries() {
            entry.hash(state);
        }
    }
}

impl SkippedKeys {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// How many keys are stored.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Stores `key` for message `n` of the chain of `dh`, as the newest entry. If the store is
    /// full, the oldest entry is evicted first (§12.5), so it never holds more than
    /// [`MAX_SKIPPED_KEYS`].
    ///
    /// `SKIP` only stores indices at or beyond `Nr`, which are not in the store for the current
    /// `DHr`; a slot can be stored twice only by a header naming an old `DHr` again, whose ratchet
    /// step yields a chain that cannot open the message, so the transaction is discarded. Such a
    /// second insert replaces the key and makes the slot the newest, keeping the invariant.
    pub(crate) fn insert(&mut self, dh: PublicKey, n: u32, key: MessageKey) {
        let slot = (dh, n);
        let seq = self.next;
        // At most one insertion per derived key: 2^64 of them cannot happen.
        self.next = self.next.wrapping_add(1);
        if let Some((old_seq, _)) = self.keys.insert(slot, (seq, key)) {
            self.order.remove(&old_seq);
        } else if self.keys.len() > MAX_SKIPPED_KEYS
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.keys.remove(&oldest);
        }
        self.order.insert(seq, slot);
    }

    /// The key for message `n` of the chain of `dh`, if stored, left in place: the caller opens the
    /// message with it and [`Self::take`]s it only if it opened, so a forgery costs no key.
    pub(crate) fn get(&self, dh: &PublicKey, n: u32) -> Option<&MessageKey> {
        self.keys.get(&(*dh, n)).map(|(_, key)| key)
    }

    /// Removes and returns the key for message `n` of the chain of `dh`: each key is used once
    /// (§12.5).
    pub(crate) fn take(&mut self, dh: &PublicKey, n: u32) -> Option<MessageKey> {
        let (seq, key) = self.keys.remove(&(*dh, n))?;
        self.order.remove(&seq);
        Some(key)
    }

    /// Evicts up to `count` of the oldest keys (their messages can no longer be decrypted) and
    /// returns how many were evicted.
    pub(crate) fn evict_oldest(&mut self, count: usize) -> usize {
        let mut evicted = 0;
        while evicted < count
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.keys.remove(&oldest);
            evicted += 1;
        }
        evicted
    }

    /// The persisted form (SPEC.md §18.3): `count: u16`, then per key, oldest first,
    /// `DHr (32) || BE32(n) || MK (32)`. The order is the eviction order, so it is kept.
    pub(crate) fn write_state(&self, w: &mut StateWriter) {
        w.count(self.len());
        for ((dh, n), key) in self.entries() {
            w.public_key(dh);
            w.u32(*n);
            w.bytes(key.expose());
        }
    }

    /// Reads [`Self::write_state`]'s form, inserting the keys oldest first.
    ///
    /// # Errors
    /// A count over [`MAX_SKIPPED_KEYS`], a low-order `DHr`, a slot stored twice, or truncation.
    pub(crate) fn read_state(r: &mut Reader<'_>) -> Result<Self, StateError> {
        let count = read_count(r, "skipped keys", MAX_SKIPPED_KEYS)?;
        let mut store = Self::new();
        for _ in 0..count {
            let dh = read_public_key(r, "skipped key DHr")?;
            let n = r.u32()?;
            let key = read_secret(r, MessageKey::new)?;
            store.insert(dh, n, key);
        }
        // A repeated slot replaces the earlier one: fewer keys than the count.
        ensure(store.len() == count, "a skipped key slot is stored twice")?;
        Ok(store)
    }

    /// Whether the key for message `n` of the chain of `dh` is stored.
    #[cfg(test)]
    pub(crate) fn contains(&self, dh: &PublicKey, n: u32) -> bool {
        self.keys.contains_key(&(*dh, n))
    }

    /// Whether the invariant holds: `order` lists exactly the stored slots, each once, and the
    /// store is within its bound.
    #[cfg(test)]
    pub(crate) fn is_consistent(&self) -> bool {
        self.order.len() == self.keys.len()
            && self.keys.iter().all(|(slot, (seq, _))| self.order.get(seq) == Some(slot))
            && self.keys.len() <= MAX_SKIPPED_KEYS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Secret;

    fn dh(byte: u8) -> PublicKey {
        PublicKey::from_bytes([byte; 32])
    }

    fn mk(n: u32) -> MessageKey {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        MessageKey::new(Secret::new(bytes))
    }

    /// A store holding `(dh(1), 0..MAX)`, full to the boundary.
    fn full() -> SkippedKeys {
        let mut store = SkippedKeys::new();
        for n in 0..MAX_SKIPPED_KEYS as u32 {
            store.insert(dh(1), n, mk(n));
        }
        assert_eq!(store.len(), MAX_SKIPPED_KEYS);
        assert!(store.is_consistent());
        store
    }

    #[test]
    fn get_leaves_the_key_in_place() {
        let mut store = SkippedKeys::new();
        store.insert(dh(1), 5, mk(5));
        let before = store.clone();
        assert_eq!(store.get(&dh(1), 5), Some(&mk(5)));
        assert_eq!(store.get(&dh(1), 6), None);
        assert_eq!(store.get(&dh(2), 5), None);
        assert_eq!(store, before);
        assert!(store.is_consistent());
    }

    #[test]
    fn take_returns_each_key_once() {
        let mut store = SkippedKeys::new();
        store.insert(dh(1), 5, mk(5));
        store.insert(dh(2), 5, mk(6));
        assert_eq!(store.take(&dh(1), 5), Some(mk(5)));
        assert_eq!(store.take(&dh(1), 5), None);
        assert_eq!(store.take(&dh(3), 5), None);
        assert_eq!(store.take(&dh(2), 5), Some(mk(6)));
        assert_eq!(store, SkippedKeys::new());
    }

    #[test]
    fn at_the_boundary_one_more_evicts_exactly_the_oldest() {
        let mut store = full();
        store.insert(dh(2), 0, mk(9999));
        assert_eq!(store.len(), MAX_SKIPPED_KEYS);
        assert!(!store.contains(&dh(1), 0));
        assert!(store.contains(&dh(1), 1));
        assert!(store.contains(&dh(2), 0));
        assert!(store.is_consistent());

        // And the next one evicts the next oldest.
        store.insert(dh(2), 1, mk(9998));
        assert!(!store.contains(&dh(1), 1));
        assert!(store.contains(&dh(1), 2));
        assert!(store.is_consistent());
    }

    #[test]
    fn eviction_follows_insertion_order_not_key_order() {
        let mut store = full();
        // Use a key from the middle: the order of the rest is unchanged, and there is room for one.
        assert_eq!(store.take(&dh(1), 1000), Some(mk(1000)));
        store.insert(dh(0), 7, mk(7)); // sorts first by slot, but is the newest
        assert!(store.contains(&dh(1), 0));
        store.insert(dh(2), 0, mk(0));
        assert!(!store.contains(&dh(1), 0));
        assert!(store.contains(&dh(0), 7));
        assert!(store.is_consistent());
    }

    #[test]
    fn a_second_insert_of_a_slot_replaces_it_and_makes_it_newest() {
        let mut store = full();
        store.insert(dh(1), 0, mk(42));
        assert_eq!(store.len(), MAX_SKIPPED_KEYS);
        assert!(store.is_consistent());
        store.insert(dh(2), 0, mk(0));
        assert!(!store.contains(&dh(1), 1), "slot 1 is now the oldest");
        assert_eq!(store.take(&dh(1), 0), Some(mk(42)));
    }

    /// Equality and hashing see the keys and their order, not the insertion numbers: the same keys
    /// in the same order are equal and hash alike whatever the history, and another order (another
    /// eviction order) is another store.
    #[test]
    fn equality_and_hash_see_keys_and_order_not_history() {
        use core::hash::{Hash, Hasher};
        let hash = |store: &SkippedKeys| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            store.hash(&mut hasher);
            hasher.finish()
        };
        let stored = |slots: &[u32]| {
            let mut store = SkippedKeys::new();
            for &n in slots {
                store.insert(dh(1), n, mk(n));
            }
            store
        };
        let plain = stored(&[0, 1]);
        let mut with_history = stored(&[7, 0, 1, 2]);
        with_history.take(&dh(1), 7);
        with_history.take(&dh(1), 2);
        assert_eq!(plain, with_history);
        assert_eq!(hash(&plain), hash(&with_history));

        let reordered = stored(&[1, 0]);
        assert_ne!(plain, reordered);
        assert_ne!(hash(&plain), hash(&reordered));
        assert_ne!(plain, stored(&[0]));
        assert_ne!(plain, stored(&[0, 2]));
    }

    /// `evict_oldest(count)` (the client-wide bound, §12.5) takes the `count` oldest keys in
    /// insertion order, never more than are stored, and says how many it took.
    #[test]
    fn evict_oldest_takes_that_many_oldest_first() {
        let mut store = SkippedKeys::new();
        for (byte, n) in [(1, 5), (1, 3), (2, 0), (1, 4)] {
            store.insert(dh(byte), n, mk(n));
        }
        let before = store.clone();
        assert_eq!(store.evict_oldest(0), 0);
        assert_eq!(store, before);
        assert_eq!(store.evict_oldest(2), 2);
        assert_eq!(store.len(), 2);
        assert!(!store.contains(&dh(1), 5) && !store.contains(&dh(1), 3));
        assert!(store.contains(&dh(2), 0) && store.contains(&dh(1), 4));
        assert!(store.is_consistent());
        assert_eq!(store.evict_oldest(5), 2);
        assert_eq!(store, SkippedKeys::new());
    }
}
