//! Per-sender acceptance of hop message ids: each id at most once (SPEC.md §5.3).
//!
//! Only hop messages use these windows. An e2e message's id is a label the server chooses; its
//! replay protection is what the envelope authenticates (SPEC.md §12.5, §15.3), so a server cannot
//! poison e2e delivery with an id of its choice.

use std::collections::BTreeMap;

use crate::e2e::MAX_PEERS;
use crate::state::{StateError, StateWriter, ensure, read_count, read_next_name};
use crate::wire::{MessageId, Name, Reader};

/// How far behind the highest id seen from a sender an id may still be accepted, in ids.
///
/// The server relays each sender's messages in the order it received them, so ids normally arrive in
/// increasing order; the window only has to absorb what a queue flush interleaved with live relays
/// can reorder. 64 ids is one `u64` bitmap: constant memory per sender.
pub const REPLAY_WINDOW: u64 = 64;

/// The ids accepted from one sender: the highest, and a bitmap of the [`REPLAY_WINDOW`] ids at or
/// below it (bit `i` set ⇔ id `highest − i` accepted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ReplayWindow {
    highest: u64,
    seen: u64,
}

/// Why an id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Already accepted.
    Replayed,
    /// Older than the window (or id 0, which no sender uses): cannot be checked, so refused.
    OutOfWindow,
}

impl ReplayWindow {
    /// Whether `id` would be accepted; does not record it.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub const fn check(&self, id: MessageId) -> Result<(), Refusal> {
        let id = id.0;
        if id == 0 {
            return Err(Refusal::OutOfWindow);
        }
        if id > self.highest {
            return Ok(());
        }
        let back = self.highest - id;
        if back >= REPLAY_WINDOW {
            return Err(Refusal::OutOfWindow);
        }
        // back < REPLAY_WINDOW = 64, so the shift is in range.
        if self.seen & (1u64 << back) != 0 { Err(Refusal::Replayed) } else { Ok(()) }
    }

    /// Accepts `id` if [`ReplayWindow::check`] allows it, recording it.
    ///
    /// # Errors
    /// The [`Refusal`]; the window is then unchanged.
    pub fn accept(&mut self, id: MessageId) -> Result<(), Refusal> {
        self.check(id)?;
        let id = id.0;
        if id > self.highest {
            let shift = id - self.highest;
            self.seen =
                self.seen.checked_shl(u32::try_from(shift).unwrap_or(u32::MAX)).unwrap_or(0);
            self.seen |= 1;
            self.highest = id;
        } else {
            // `check` guarantees 0 ≤ highest − id < REPLAY_WINDOW = 64.
            self.seen |=
                1u64.checked_shl(u32::try_from(self.highest - id).unwrap_or(u32::MAX)).unwrap_or(0);
        }
        Ok(())
    }
}

/// A client's replay windows, one per hop sender, for at most [`MAX_PEERS`] senders: the names come
/// from the server. A window for one more sender evicts the least recently accepted sender's
/// window, so throw-away senders cannot lock a client out of new ones (SPEC.md §5.3); the evicted
/// sender's ids start a fresh window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ReplayWindows {
    windows: BTreeMap<Name, (ReplayWindow, u64)>,
    clock: u64,
}

impl ReplayWindows {
    /// No window yet.
    #[must_use]
    pub const fn new() -> Self {
        Self { windows: BTreeMap::new(), clock: 0 }
    }

    /// Whether `id` from `from` would be accepted; records nothing.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn check(&self, from: &Name, id: MessageId) -> Result<(), Refusal> {
        self.windows
            .get(from)
            .map_or_else(|| ReplayWindow::default().check(id), |(w, _)| w.check(id))
    }

    /// Accepts `id` from `from` if [`Self::check`] allows it, recording it (and evicting the least
    /// recently accepted sender's window if `from` is new and [`MAX_PEERS`] windows are kept).
    ///
    /// # Errors
    /// The [`Refusal`]; nothing changes.
    pub fn accept(&mut self, from: &Name, id: MessageId) -> Result<(), Refusal> {
        let mut window = self.windows.get(from).map(|(w, _)| *w).unwrap_or_default();
        window.accept(id)?;
        if !self.windows.contains_key(from)
            && self.windows.len() >= MAX_PEERS
            && let Some(oldest) =
                self.windows.iter().min_by_key(|(_, (_, at))| *at).map(|(name, _)| name.clone())
        {
            self.windows.remove(&oldest);
        }
        self.clock = self.clock.wrapping_add(1);
        self.windows.insert(from.clone(), (window, self.clock));
        Ok(())
    }

    /// How many senders have a window (at most [`MAX_PEERS`]).
    #[must_use]
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no sender has a window.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The persisted form (SPEC.md §18.2): `BE64(clock)`, then `count: u16` windows in ascending
    /// name order, each `Name || BE64(highest) || BE64(seen) || BE64(last accepted at)`.
    pub(crate) fn write_state(&self, w: &mut StateWriter) {
        w.u64(self.clock);
        w.count(self.windows.len());
        for (name, (window, at)) in &self.windows {
            w.name(name);
            w.u64(window.highest);
            w.u64(window.seen);
            w.u64(*at);
        }
    }

    /// Reads [`Self::write_state`]'s form. A window only exists once an id was accepted, so its
    /// highest id is at least 1 and accepted (bit 0 set), no bit stands for an id below 1, and it
    /// was stamped no later than the clock.
    ///
    /// # Errors
    /// A count over [`MAX_PEERS`], names out of order, an impossible window, or truncation.
    pub(crate) fn read_state(r: &mut Reader<'_>) -> Result<Self, StateError> {
        let clock = r.u64()?;
        let count = read_count(r, "replay windows", MAX_PEERS)?;
        let mut windows = BTreeMap::new();
        let mut last: Option<Name> = None;
        for _ in 0..count {
            let name = read_next_name(r, last.as_ref(), "replay window order")?;
            let window = ReplayWindow { highest: r.u64()?, seen: r.u64()? };
            let at = r.u64()?;
            // Accepting advances the clock and stamps the window with it (SPEC.md §5.3).
            ensure(at <= clock, "a replay window accepted after the clock")?;
            // Bit i stands for id highest − i, which must be at least 1.
            let below_one =
                window.seen.checked_shr(u32::try_from(window.highest).unwrap_or(u32::MAX));
            ensure(
                window.highest >= 1 && window.seen & 1 == 1 && below_one.unwrap_or(0) == 0,
                "a replay window no accepted id could have made",
            )?;
            last = Some(name.clone());
            windows.insert(name, (window, at));
        }
        Ok(Self { windows, clock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &mut ReplayWindow, id: u64) -> Result<(), Refusal> {
        let before = *w;
        let result = w.accept(MessageId(id));
        if result.is_err() {
            assert_eq!(*w, before, "a refusal must not change the window");
        }
        result
    }

    #[test]
    fn in_order_out_of_order_replay_and_window_edge() {
        let mut w = ReplayWindow::default();
        assert_eq!(accept(&mut w, 0), Err(Refusal::OutOfWindow));
        assert_eq!(accept(&mut w, 1), Ok(()));
        assert_eq!(accept(&mut w, 1), Err(Refusal::Replayed));
        assert_eq!(accept(&mut w, 3), Ok(()));
        assert_eq!(accept(&mut w, 2), Ok(()));
        assert_eq!(accept(&mut w, 2), Err(Refusal::Replayed));
        assert_eq!(accept(&mut w, 3 + REPLAY_WINDOW), Ok(()));
        // `highest − 63` is the oldest id still inside the window; `highest − 64` is outside.
        assert_eq!(accept(&mut w, 4), Ok(()));
        assert_eq!(accept(&mut w, 3), Err(Refusal::OutOfWindow));
        assert_eq!(accept(&mut w, u64::MAX), Ok(()));
        assert_eq!(accept(&mut w, u64::MAX), Err(Refusal::Replayed));
    }

    #[test]
    fn windows_evict_the_least_recently_accepted_sender_at_max_peers() {
        let name = |i: usize| Name::new(&format!("s{i}")).unwrap();
        let mut windows = ReplayWindows::default();
        for i in 0..MAX_PEERS {
            windows.accept(&name(i), MessageId(5)).unwrap();
        }
        // s0 is touched again, so s1 is now the least recently accepted.
        windows.accept(&name(0), MessageId(6)).unwrap();
        assert_eq!(windows.check(&name(1), MessageId(5)), Err(Refusal::Replayed));
        let before = windows.clone();
        assert_eq!(windows.accept(&name(0), MessageId(6)), Err(Refusal::Replayed));
        assert_eq!(windows, before, "a refusal changes nothing");
        windows.accept(&name(MAX_PEERS), MessageId(1)).unwrap();
        assert_eq!(windows.len(), MAX_PEERS);
        assert_eq!(windows.check(&name(1), MessageId(5)), Ok(()), "s1's window was evicted");
        assert_eq!(windows.check(&name(0), MessageId(6)), Err(Refusal::Replayed), "s0 kept");
    }

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    /// `windows` written in SPEC.md §18.2's form and read back.
    fn reread(windows: &ReplayWindows) -> Result<ReplayWindows, StateError> {
        let bytes = crate::state::export(|w| windows.write_state(w));
        crate::state::restore(bytes.as_bytes(), 1 << 16, ReplayWindows::read_state)
    }

    /// SPEC.md §18.2–§18.4: the windows read back as written; a window that no sequence of
    /// accepted ids makes — its highest id not accepted, or a bit for an id below 1 — is
    /// `Inconsistent`, and the windows at those edges that ids do make are read back.
    #[test]
    fn windows_read_back_as_written_and_an_impossible_window_is_refused() {
        let mut windows = ReplayWindows::new();
        assert!(windows.is_empty());
        for (from, id) in [("s", 1), ("t", 70), ("t", 10), ("s", 3)] {
            windows.accept(&name(from), MessageId(id)).unwrap();
        }
        assert!(!windows.is_empty());
        assert_eq!(windows.len(), 2);
        assert_eq!(reread(&windows), Ok(windows.clone()));

        let one = |highest, seen| ReplayWindows {
            windows: BTreeMap::from([(name("s"), (ReplayWindow { highest, seen }, 1))]),
            clock: 1,
        };
        for (highest, seen) in [(1, 1), (3, 0b111), (64, u64::MAX), (u64::MAX, u64::MAX)] {
            assert_eq!(reread(&one(highest, seen)), Ok(one(highest, seen)), "{highest} {seen:b}");
        }
        let impossible = Err(StateError::Inconsistent {
            what: "a replay window no accepted id could have made",
        });
        for (highest, seen) in [(0, 0), (0, 1), (5, 0b10), (3, 0b1001), (63, u64::MAX)] {
            assert_eq!(reread(&one(highest, seen)), impossible, "{highest} {seen:b}");
        }
    }
}
