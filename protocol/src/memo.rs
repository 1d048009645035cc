//! DANGER: memos of deterministic primitive results, for the model checker's build only.
//!
//! Compiled only with the feature `model-memo`, which only the package `e2e-protocol-flawed`
//! (model/flawed, the model checker's own build of this source) declares; the real `e2e-protocol`
//! has no such feature, so in every build but the model's the functions below do not exist and the
//! primitives are called directly (spec/MODEL.md §8, "Speed").
//!
//! The model checker explores millions of states that repeat the same few key operations on the
//! same inputs: every key is drawn from a seeded RNG stream, so the same (party, draw) gives the
//! same key in every branch. Each memo maps the *whole* input of one pure function (X25519, its
//! public key, an Ed25519 strict verification, a safety-number fingerprint) to its output, so a
//! hit returns exactly the bytes the call would have computed: same inputs, same bytes. Nothing is
//! approximated and no input is dropped from a key. A memo that is full (`CAP` entries) or whose
//! lock is poisoned computes without storing: slower, never different.
//!
//! A seeded flaw (crate::flaws) may change what a memoised function computes, and the model's tests
//! switch flaws on and off within one process; so every memo is keyed by the set of active flaws as
//! well, and a result computed under one set is never returned under another.
//!
//! The memos hold key material of the checker's seeded test keys for the life of the process;
//! that is why this is never compiled into anything but the checker.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{LazyLock, Mutex};

/// Entries a memo keeps at most; beyond that it computes without storing (memory stays bounded).
const CAP: usize = 1 << 20;

/// One memo: a map from a function's whole input to its output, shared by the checker's threads.
pub(crate) struct Memo<K, V>(LazyLock<Mutex<HashMap<(u128, K), V>>>);

/// The seeded flaws active now, one bit per [`crate::flaws::Flaw::ALL`] entry (none without the
/// feature `insecure-seeded-flaws`).
fn active_flaws() -> u128 {
    crate::flaws::Flaw::ALL
        .iter()
        .enumerate()
        .filter(|(_, f)| crate::flaws::on(**f))
        .fold(0, |bits, (i, _)| bits | 1u128.checked_shl(i as u32).unwrap_or(0))
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// An empty memo (for a `static`).
    pub(crate) const fn new() -> Self {
        Self(LazyLock::new(|| Mutex::new(HashMap::new())))
    }

    /// `compute()`'s result for `key`: the stored one if `key` was computed before, else computed
    /// now (outside the lock) and stored.
    pub(crate) fn get_or(&self, key: K, compute: impl FnOnce() -> V) -> V {
        let key = (active_flaws(), key);
        if let Ok(map) = self.0.lock()
            && let Some(hit) = map.get(&key)
        {
            return hit.clone();
        }
        let value = compute();
        if let Ok(mut map) = self.0.lock()
            && map.len() < CAP
        {
            map.insert(key, value.clone());
        }
        value
    }
}
