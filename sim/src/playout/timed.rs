//! The load caller's playout clock (`sim load`): when Twilio would echo each mark, from
//! instants alone.
//!
//! A gateway that is never sent its marks back grows its per-call mark table, so the load
//! caller must echo them as Twilio does; it keeps no audio, only when the queued audio
//! ends.

use std::time::{Duration, Instant};

use super::Marks;

/// Outbound audio queued for playing and the marks waiting behind it.
#[derive(Debug)]
pub struct TimedPlayout {
    played_until: Instant,
    pending: Marks<Instant>,
}

impl TimedPlayout {
    /// Nothing queued at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            played_until: now,
            pending: Marks::default(),
        }
    }

    /// `bytes` of 8 kHz µ-law arrived at `now`: it plays after what is queued.
    pub fn audio(&mut self, now: Instant, bytes: usize) {
        let ms = (bytes / crate::mulaw::BYTES_PER_MS) as u64;
        self.played_until = self.played_until.max(now) + Duration::from_millis(ms);
    }

    /// A mark arrived: it is due when the audio queued so far has played.
    pub fn mark(&mut self, name: String) {
        self.pending.push(self.played_until, name);
    }

    /// Marks due by `now`, in order.
    pub fn due(&mut self, now: Instant, out: &mut Vec<String>) {
        self.pending.release(now, out);
    }

    /// `clear` at `now`: queued audio is dropped and every pending mark is due.
    pub fn clear(&mut self, now: Instant, out: &mut Vec<String>) {
        self.played_until = now;
        self.pending.release_all(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_wait_for_the_audio_before_them() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut p = TimedPlayout::new(t0);
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
        let mut p = TimedPlayout::new(t0);
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
        let mut p = TimedPlayout::new(t0);
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
