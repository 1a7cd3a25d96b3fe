//! The caller's playout clock: when Twilio would echo each mark.
//!
//! Twilio plays outbound audio in order at real time and echoes a mark once the audio
//! queued before it has played, at once if nothing is queued, and every pending mark on
//! `clear`. A gateway that is never sent its marks back grows its per-call mark table, so
//! the load caller must behave the same way.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Outbound audio queued for playing and the marks waiting behind it.
#[derive(Debug)]
pub struct Playout {
    played_until: Instant,
    pending: VecDeque<(Instant, String)>,
}

impl Playout {
    /// Nothing queued at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            played_until: now,
            pending: VecDeque::new(),
        }
    }

    /// `bytes` of 8 kHz µ-law arrived at `now`: it plays after what is queued.
    pub fn audio(&mut self, now: Instant, bytes: usize) {
        let ms = (bytes / crate::mulaw::BYTES_PER_MS) as u64;
        self.played_until = self.played_until.max(now) + Duration::from_millis(ms);
    }

    /// A mark arrived: it is due when the audio queued so far has played.
    pub fn mark(&mut self, name: String) {
        self.pending.push_back((self.played_until, name));
    }

    /// Marks due by `now`, in order.
    pub fn due(&mut self, now: Instant, out: &mut Vec<String>) {
        while let Some((at, _)) = self.pending.front() {
            if *at > now {
                break;
            }
            if let Some((_, name)) = self.pending.pop_front() {
                out.push(name);
            }
        }
    }

    /// `clear` at `now`: queued audio is dropped and every pending mark is due.
    pub fn clear(&mut self, now: Instant, out: &mut Vec<String>) {
        self.played_until = now;
        out.extend(self.pending.drain(..).map(|(_, name)| name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_wait_for_the_audio_before_them() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut p = Playout::new(t0);
        let mut out = Vec::new();
        p.mark("empty".into());
        p.due(t0, &mut out);
        assert_eq!(out, ["empty"], "nothing queued: echoed at once");
        out.clear();
        p.audio(t0, 160);
        p.mark("a".into());
        p.audio(ms(5), 160);
        p.mark("b".into());
        p.due(ms(19), &mut out);
        assert!(out.is_empty());
        p.due(ms(20), &mut out);
        assert_eq!(out, ["a"]);
        p.due(ms(39), &mut out);
        assert_eq!(out, ["a"]);
        p.due(ms(40), &mut out);
        assert_eq!(out, ["a", "b"]);
    }

    #[test]
    fn audio_after_a_gap_starts_playing_when_it_arrives() {
        let t0 = Instant::now();
        let mut p = Playout::new(t0);
        let mut out = Vec::new();
        p.audio(t0 + Duration::from_millis(100), 160);
        p.mark("late".into());
        p.due(t0 + Duration::from_millis(119), &mut out);
        assert!(out.is_empty());
        p.due(t0 + Duration::from_millis(120), &mut out);
        assert_eq!(out, ["late"]);
    }

    #[test]
    fn clear_echoes_everything_pending() {
        let t0 = Instant::now();
        let mut p = Playout::new(t0);
        let mut out = Vec::new();
        p.audio(t0, 8000);
        p.mark("x".into());
        p.mark("y".into());
        p.clear(t0, &mut out);
        assert_eq!(out, ["x", "y"]);
        out.clear();
        p.mark("z".into());
        p.due(t0, &mut out);
        assert_eq!(out, ["z"]);
    }
}
