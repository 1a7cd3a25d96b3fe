//! Where the agent's audio goes on the recording's timeline: when the caller heard it
//! (sans-I/O).
//!
//! Audio is sent to Twilio faster than real time and played from Twilio's buffer, so the
//! time a chunk was sent says little about when it was heard. Each chunk is followed by
//! a mark, and Twilio echoes a mark once the audio before it has played: an echo at `t`
//! places its chunk to end at `t` (not before the previous chunk's end). Chunks wait
//! here until their echo. A barge-in's `clear` flushes what Twilio still held: the
//! waiting chunks are placed as they would have played, from where playback stood, and
//! cut at the clear; the rest is dropped, so the agent channel is silent from the clear
//! on. At hang-up the same cut happens at the end of the call.
//!
//! Positions are in samples (8 kHz: 8 per ms, one µ-law byte each).

use std::collections::VecDeque;

/// Samples per ms at 8 kHz.
pub const SAMPLES_PER_MS: u64 = 8;
/// Audio waiting for its echo beyond this (60 s) is placed as sent, so a peer that
/// never echoes cannot make a call hold unbounded audio.
pub const MAX_WAITING_SAMPLES: usize = 60 * 1000 * SAMPLES_PER_MS as usize;

/// Audio to write at a position of the agent channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// First sample.
    pub at: u64,
    /// µ-law bytes.
    pub audio: Vec<u8>,
}

#[derive(Debug)]
struct Waiting {
    mark: String,
    audio: Vec<u8>,
    sent_ms: u64,
}

/// The agent channel's playout model for one call.
#[derive(Debug, Default)]
pub struct AgentTrack {
    waiting: VecDeque<Waiting>,
    waiting_samples: usize,
    /// End of the last placed audio, in samples.
    cursor: u64,
}

impl AgentTrack {
    /// A chunk followed by `mark` was sent at `sent_ms`. Returns audio that had to be
    /// placed early (only past [`MAX_WAITING_SAMPLES`]).
    pub fn sent(&mut self, mark: String, audio: Vec<u8>, sent_ms: u64, out: &mut Vec<Placement>) {
        self.waiting_samples += audio.len();
        self.waiting.push_back(Waiting {
            mark,
            audio,
            sent_ms,
        });
        while self.waiting_samples > MAX_WAITING_SAMPLES {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            self.waiting_samples -= w.audio.len();
            let at = self.cursor.max(w.sent_ms * SAMPLES_PER_MS);
            self.place(at, w.audio, out);
        }
    }

    /// Twilio echoed `mark` at `at_ms`. Marks echo in order, so every chunk before it has
    /// played too: they are placed back to back, ending at `at_ms`. An unknown mark (a
    /// done-mark, or one flushed by a clear) places nothing.
    pub fn echoed(&mut self, mark: &str, at_ms: u64, out: &mut Vec<Placement>) {
        let Some(n) = self.waiting.iter().position(|w| w.mark == mark) else {
            return;
        };
        let played: usize = self.waiting.iter().take(n + 1).map(|w| w.audio.len()).sum();
        let end = at_ms * SAMPLES_PER_MS;
        let mut at = self.cursor.max(end.saturating_sub(played as u64));
        for _ in 0..=n {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            self.waiting_samples -= w.audio.len();
            let len = w.audio.len() as u64;
            self.place(at, w.audio, out);
            at += len;
        }
    }

    /// Everything not yet echoed stops at `at_ms` (a `clear`, or the end of the call):
    /// what played before is placed, from where playback stood (not before it was
    /// sent), cut at `at_ms`; the rest was never heard.
    pub fn cut(&mut self, at_ms: u64, out: &mut Vec<Placement>) {
        let end = at_ms * SAMPLES_PER_MS;
        let mut at = match self.waiting.front() {
            Some(w) => self.cursor.max(w.sent_ms * SAMPLES_PER_MS),
            None => return,
        };
        for mut w in self.waiting.drain(..) {
            if at >= end {
                break;
            }
            let room = usize::try_from(end - at).unwrap_or(usize::MAX);
            w.audio.truncate(room);
            let len = w.audio.len() as u64;
            if len > 0 {
                self.cursor = self.cursor.max(at + len);
                out.push(Placement { at, audio: w.audio });
            }
            at += len;
        }
        self.waiting_samples = 0;
    }

    fn place(&mut self, at: u64, audio: Vec<u8>, out: &mut Vec<Placement>) {
        if audio.is_empty() {
            return;
        }
        self.cursor = self.cursor.max(at + audio.len() as u64);
        out.push(Placement { at, audio });
    }

    /// Audio waiting for its echo, in samples.
    pub fn waiting_samples(&self) -> usize {
        self.waiting_samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(ms: u64) -> Vec<u8> {
        vec![0x10; (ms * SAMPLES_PER_MS) as usize]
    }

    fn spans(p: &[Placement]) -> Vec<(u64, u64)> {
        p.iter()
            .map(|p| (p.at / 8, (p.at + p.audio.len() as u64) / 8))
            .collect()
    }

    #[test]
    fn echoes_place_audio_when_it_played_not_when_it_was_sent() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        // 3 × 100 ms sent in a burst at 1000 ms; played 1000–1300.
        for m in ["a", "b", "c"] {
            t.sent(m.into(), chunk(100), 1000, &mut out);
        }
        assert!(out.is_empty());
        t.echoed("a", 1100, &mut out);
        t.echoed("b", 1200, &mut out);
        t.echoed("c", 1300, &mut out);
        assert_eq!(spans(&out), [(1000, 1100), (1100, 1200), (1200, 1300)]);
        assert_eq!(t.waiting_samples(), 0);
    }

    #[test]
    fn a_late_echo_does_not_overlap_the_previous_chunk() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        t.sent("a".into(), chunk(100), 0, &mut out);
        t.sent("b".into(), chunk(100), 0, &mut out);
        t.echoed("a", 100, &mut out);
        // b's echo came early (jitter): it still starts where a ended.
        t.echoed("b", 150, &mut out);
        assert_eq!(spans(&out), [(0, 100), (100, 200)]);
    }

    #[test]
    fn an_echo_releases_the_chunks_before_it() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        t.sent("a".into(), chunk(100), 0, &mut out);
        t.sent("b".into(), chunk(100), 0, &mut out);
        t.echoed("b", 500, &mut out);
        assert_eq!(spans(&out), [(300, 400), (400, 500)]);
    }

    #[test]
    fn clear_cuts_what_was_playing_and_drops_the_rest() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        for m in ["a", "b", "c", "d"] {
            t.sent(m.into(), chunk(200), 2000, &mut out);
        }
        t.echoed("a", 2200, &mut out);
        // Caller barges in at 2350: b was playing (2200–2400), c and d were flushed.
        t.cut(2350, &mut out);
        assert_eq!(spans(&out), [(2000, 2200), (2200, 2350)]);
        // Their echoes after the clear place nothing.
        t.echoed("c", 2360, &mut out);
        assert_eq!(out.len(), 2);
        // The next turn starts fresh.
        t.sent("e".into(), chunk(100), 4000, &mut out);
        t.echoed("e", 4100, &mut out);
        assert_eq!(spans(&out)[2], (4000, 4100));
    }

    #[test]
    fn a_clear_before_playback_reached_the_audio_places_nothing() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        t.sent("a".into(), chunk(100), 500, &mut out);
        t.cut(400, &mut out);
        assert!(out.is_empty());
        t.cut(1000, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn unknown_and_done_marks_are_ignored() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        t.echoed("done:item:g0:m3", 100, &mut out);
        t.echoed("forged", 100, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn audio_never_echoed_is_bounded() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        for i in 0..70u64 {
            t.sent(format!("m{i}"), chunk(1000), i * 1000, &mut out);
        }
        assert!(t.waiting_samples() <= MAX_WAITING_SAMPLES);
        assert_eq!(out.len(), 10);
        assert_eq!(spans(&out)[0], (0, 1000));
    }
}
