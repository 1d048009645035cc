//! DANGER: the model checker's ghost log of AEAD seals, for the model checker's build only.
//!
//! Compiled only with the feature `model-memo`, which only `e2e-protocol-flawed` (model/flawed, the
//! checker's own build of this source) declares, as for the memos (`memo.rs`). In that build the
//! suite's backend (`suite::backend::memoized`) records every ChaCha20-Poly1305 seal here before it
//! seals: the channel's frames, the Noise handshake's payloads, the ratchet's envelopes — every
//! party's, since they all seal through the one suite. Nothing here changes what a seal computes.
//!
//! The model's ideal-AEAD reasoning cannot see a nonce reused under one key: the two ciphertexts
//! are just bytes. This log lets the checker state it (spec/MODEL.md §4): "no (key, nonce) pair
//! ever seals twice" and "no key seals for two parties". It records the key as a fingerprint, a
//! 64-bit hash (SipHash with fixed keys, so the same key gives the same record in every thread and
//! run; two different keys share one with probability 2^-64, the order of stateright's own state
//! fingerprints), and the nonce. Not what was sealed: a pair may seal once whatever the input, so
//! the checker reads only the pair (spec/MODEL.md §7.1, "What was sealed is not kept"), and
//! hashing every sealed frame would cost each seal of a model run for nothing.
//!
//! The log is per thread: a checker thread runs one step at a time, and drains the log ([`drain`])
//! before the step and after every call into a role, so each seal is attributed to the party whose
//! call made it. A thread that never drains keeps at most [`MAX_LOGGED`] seals and then stops
//! recording; [`drain`] reports that, so that no check silently runs on a partial log.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};

use crate::suite::{AEAD_KEY_LEN, AEAD_NONCE_LEN};

/// The most seals a thread's log holds between two [`drain`]s. A model step seals a few frames;
/// a test that seals without draining stops being recorded here instead of growing without bound.
pub const MAX_LOGGED: usize = 1 << 16;

/// One AEAD seal: the fingerprint of its key, and its nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seal {
    /// A 64-bit fingerprint of the key.
    pub key: u64,
    /// The nonce.
    pub nonce: [u8; AEAD_NONCE_LEN],
}

/// What [`drain`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// The seals recorded since the last drain, oldest first.
    pub seals: Vec<Seal>,
    /// Whether seals were left out because the log was full ([`MAX_LOGGED`]).
    pub overflowed: bool,
}

#[derive(Default)]
struct Log {
    seals: Vec<Seal>,
    overflowed: bool,
}

thread_local! {
    static LOG: RefCell<Log> = RefCell::new(Log::default());
}

fn fingerprint(value: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Records a seal under (`key`, `nonce`) in this thread's log. What it sealed is not recorded
/// (see the module's doc).
pub(crate) fn record(key: &[u8; AEAD_KEY_LEN], nonce: &[u8; AEAD_NONCE_LEN]) {
    let seal = Seal { key: fingerprint(key), nonce: *nonce };
    LOG.with(|log| {
        let mut log = log.borrow_mut();
        if log.seals.len() < MAX_LOGGED {
            log.seals.push(seal);
        } else {
            log.overflowed = true;
        }
    });
}

/// Takes every seal this thread recorded since the last call, leaving the log empty.
#[must_use]
pub fn drain() -> Drained {
    LOG.with(|log| {
        let log = std::mem::take(&mut *log.borrow_mut());
        Drained { seals: log.seals, overflowed: log.overflowed }
    })
}

/// Appends `drained` to this thread's log, as if its seals were made now: the model checker's
/// memos of the roles' steps (model/src/steps.rs) give back the seals a step made when it ran,
/// when they return the step without running it.
pub fn replay(drained: &Drained) {
    LOG.with(|log| {
        let mut log = log.borrow_mut();
        for seal in &drained.seals {
            if log.seals.len() < MAX_LOGGED {
                log.seals.push(*seal);
            } else {
                log.overflowed = true;
            }
        }
        log.overflowed |= drained.overflowed;
    });
}
