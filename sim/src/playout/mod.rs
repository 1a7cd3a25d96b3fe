//! Twilio's playout clock: when the audio a gateway sends has been heard, and so when each
//! `mark` comes back.
//!
//! Twilio plays outbound audio in order at real time and echoes a mark once the audio
//! queued before it has played, at once if nothing is queued, and every pending mark on
//! `clear`. That rule lives once, in [`Marks`]; two clocks drive it:
//!
//! - [`Playout`] (`sim call`): a 20 ms frame clock that holds the audio itself, so the
//!   caller can record what was heard and tell turns apart. Positions are bytes.
//! - [`TimedPlayout`] (`sim load`): no audio kept and no ticks, only the instant the queued
//!   audio ends, so a load call costs a few integer operations per frame. Positions are
//!   instants.

mod frames;
mod timed;

use std::collections::VecDeque;

pub use frames::{Playout, Tick};
pub use timed::TimedPlayout;

/// Marks waiting for the audio queued before them, keyed by the position (bytes or time)
/// where that audio ends.
#[derive(Debug, Clone)]
pub struct Marks<P> {
    pending: VecDeque<(P, String)>,
}

impl<P> Default for Marks<P> {
    fn default() -> Self {
        Self {
            pending: VecDeque::new(),
        }
    }
}

impl<P: Ord + Copy> Marks<P> {
    /// Queues `name` behind the audio that ends at `at`.
    pub fn push(&mut self, at: P, name: String) {
        self.pending.push_back((at, name));
    }

    /// Moves every mark whose audio has ended by `played` to `out`, in order.
    pub fn release(&mut self, played: P, out: &mut Vec<String>) {
        while self.pending.front().is_some_and(|(at, _)| *at <= played) {
            if let Some((_, name)) = self.pending.pop_front() {
                out.push(name);
            }
        }
    }

    /// Moves every pending mark to `out` (a `clear`).
    pub fn release_all(&mut self, out: &mut Vec<String>) {
        out.extend(self.pending.drain(..).map(|(_, name)| name));
    }

    /// Marks still waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no mark is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_released_in_order_once_their_audio_has_ended() {
        let mut m = Marks::default();
        m.push(10u64, "a".into());
        m.push(10, "b".into());
        m.push(20, "c".into());
        let mut out = Vec::new();
        m.release(9, &mut out);
        assert!(out.is_empty());
        m.release(10, &mut out);
        assert_eq!(out, ["a", "b"]);
        assert_eq!(m.len(), 1);
        m.release_all(&mut out);
        assert_eq!(out, ["a", "b", "c"]);
        assert!(m.is_empty());
    }
}
