//! Per-sender acceptance of message ids: each id at most once.

use crate::wire::MessageId;

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
}
