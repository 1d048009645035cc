//! DANGER: memos of deterministic primitive results, for the model checker's and the fuzz
//! targets' builds only.
//!
//! Compiled only with the feature `model-memo`, which only the package `e2e-protocol-flawed`
//! (model/flawed, the model checker's own build of this source) declares, or `fuzz-memo`, which
//! only the fuzz crate (fuzz/Cargo.toml, a workspace of its own) enables. No package of the main
//! workspace enables either on `e2e-protocol`, so in every other build — the `e2e-ref` executable,
//! the tests, and the corpus replay of protocol/ref/tests/fuzz_corpus.rs — the functions below do
//! not exist and the primitives are called directly (spec/MODEL.md §8, "Speed"; README
//! "Fuzzing"). `.ci/run` checks with `nm` that `e2e-ref` holds no memo.
//!
//! The model checker explores millions of states that repeat the same few key operations on the
//! same inputs: every key is drawn from a seeded RNG stream, so the same (party, draw) gives the
//! same key in every branch. The fuzz targets are alike: each input starts from the same seeded
//! parties, and the honest ones repeat the same key operations on the same inputs. Each memo maps
//! the *whole* input of one pure function (X25519, its public key, the small-order check of a key,
//! Ed25519 signing, the decoding of an Ed25519 key and a strict verification, a safety-number
//! fingerprint) to its output, so a hit returns exactly the bytes the call would have computed:
//! same inputs, same bytes, and the same verdict for a signature. Nothing is approximated and no
//! input is dropped from a key; the AEAD (every MAC check) is never memoised; an input that differs
//! in one bit (a fuzzer's) misses and is computed. A memo that is full ([`CAP`] entries) is emptied
//! and fills again with what is used next; one whose lock is poisoned computes without storing:
//! slower, never different.
//!
//! A seeded flaw (crate::flaws) may change what a memoised function computes, and the model's tests
//! switch flaws on and off within one process; so every memo is keyed by the set of active flaws as
//! well, and a result computed under one set is never returned under another.
//!
//! The memos hold key material of seeded test keys (and, in a fuzz target, of whatever keys the
//! fuzzer made up) for the life of the process; that is why this is never compiled into anything
//! but the checker and the fuzz targets.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{LazyLock, Mutex};

/// How a memo hashes its keys, in a fuzz target: foldhash's fast hasher with a fixed seed. The
/// standard library's SipHash is generic code compiled into this crate, so cargo-fuzz instruments
/// it, and hashing the keys — whole inputs: a 32-byte key once per one-time prekey of an upload,
/// key, signed message and signature once per verification — took ~8 % of `bundle_parse`'s time
/// (README "Fuzzing"). Flooding a memo's buckets is no attack here: the keys come from the fuzzer
/// and the harnesses, and a collision still compares the whole key.
#[cfg(not(feature = "model-memo"))]
type KeyHasher = foldhash::fast::FixedState;

/// How a memo hashes its keys, in the model checker (whose package does not depend on foldhash).
#[cfg(feature = "model-memo")]
type KeyHasher = std::hash::RandomState;

/// Entries a memo keeps at most, in the model checker; a full memo is emptied (memory stays
/// bounded).
#[cfg(feature = "model-memo")]
const CAP: usize = 1 << 20;

/// Entries a memo keeps at most, in a fuzz target: most misses there are keys the fuzzer made up,
/// which recur rarely; the honest parties' few hundred entries come back after an emptying at the
/// cost of one computation each. 65,536 entries of a few hundred bytes at most: tens of MB a memo,
/// far inside the 2 GiB CI gives a target (`-rss_limit_mb=2048`).
#[cfg(not(feature = "model-memo"))]
const CAP: usize = 1 << 16;

/// A memo's entries: (active flaws, the function's whole input) → its output.
type Entries<K, V> = HashMap<(u128, K), V, KeyHasher>;

/// One memo: a map from a function's whole input to its output, shared by the checker's threads.
pub(crate) struct Memo<K, V>(LazyLock<Mutex<Entries<K, V>>>);

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
        Self(LazyLock::new(|| Mutex::new(HashMap::default())))
    }

    /// `compute()`'s result for `key`: the stored one if `key` was computed before, else computed
    /// now (outside the lock) and stored, the memo emptied first if it is full.
    pub(crate) fn get_or(&self, key: K, compute: impl FnOnce() -> V) -> V {
        let key = (active_flaws(), key);
        if let Ok(map) = self.0.lock()
            && let Some(hit) = map.get(&key)
        {
            return hit.clone();
        }
        let value = compute();
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= CAP {
                map.clear();
            }
            map.insert(key, value.clone());
        }
        value
    }
}
