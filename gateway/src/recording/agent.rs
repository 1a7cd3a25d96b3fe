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
/// Waiting audio a call holds in memory (256 ms). The Realtime API generates faster than
/// real time, so Twilio may hold seconds of a call's audio ahead of playback (8 000 B per
/// second of lead); beyond this, waiting chunks are staged in the call's staging file
/// (written by the writer at the offset [`AgentTrack::sent`] returns) and read back when
/// their echo comes, so a call's memory does not grow with the lead.
pub const HELD_BYTES: usize = 2048;
/// Size of a call's staging ring: twice what may wait, so a chunk nearly always fits when
/// the free space is split at the ring's end (one that does not is held in memory for
/// as long as it waits). The ring is reused from its start as soon as the chunk fits
/// there, so its file holds about twice the audio staged, not the whole ring.
pub const STAGING_BYTES: u64 = 2 * MAX_WAITING_SAMPLES as u64;

/// Where a waiting chunk's audio is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audio {
    /// In memory (µ-law bytes).
    Held(Vec<u8>),
    /// In the call's staging ring: `len` bytes at offset `at`.
    Staged {
        /// Offset in the ring.
        at: u64,
        /// Bytes.
        len: usize,
    },
}

impl Audio {
    /// Bytes (samples).
    pub fn len(&self) -> usize {
        match self {
            Audio::Held(v) => v.len(),
            Audio::Staged { len, .. } => *len,
        }
    }

    /// Whether there is no audio.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Audio::Held(v) => v.truncate(n),
            Audio::Staged { len, .. } => *len = (*len).min(n),
        }
    }
}

/// Audio to write at a position of the agent channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// First sample.
    pub at: u64,
    /// The audio.
    pub audio: Audio,
}

#[derive(Debug)]
struct Waiting {
    /// The playback's sequence number of the chunk's mark.
    seq: u64,
    audio: Audio,
    sent_ms: u64,
}

/// The agent channel's playout model for one call.
#[derive(Debug, Default)]
pub struct AgentTrack {
    waiting: VecDeque<Waiting>,
    /// Bytes of `waiting` held in memory.
    held: usize,
    /// Bytes of `waiting` staged.
    staged: usize,
    /// Where the next staged chunk goes in the ring.
    stage_tail: u64,
    /// End of the last placed audio, in samples.
    cursor: u64,
}

impl AgentTrack {
    /// A chunk followed by the mark numbered `seq` was sent at `sent_ms`. Returns the staging offset when
    /// the chunk is not held in memory: the caller writes `audio` there before it places
    /// anything. Audio that had to be placed early (only past [`MAX_WAITING_SAMPLES`])
    /// goes to `out`.
    pub fn sent(
        &mut self,
        seq: u64,
        audio: &[u8],
        sent_ms: u64,
        out: &mut Vec<Placement>,
    ) -> Option<u64> {
        let staged = if self.held + audio.len() > HELD_BYTES {
            self.stage(audio.len())
        } else {
            None
        };
        let stored = match staged {
            Some(at) => {
                self.staged += audio.len();
                Audio::Staged {
                    at,
                    len: audio.len(),
                }
            }
            None => {
                self.held += audio.len();
                Audio::Held(audio.to_vec())
            }
        };
        self.waiting.push_back(Waiting {
            seq,
            audio: stored,
            sent_ms,
        });
        while self.waiting_samples() > MAX_WAITING_SAMPLES {
            let Some(w) = self.pop() else {
                break;
            };
            let at = self.cursor.max(w.sent_ms * SAMPLES_PER_MS);
            self.place(at, w.audio, out);
        }
        staged
    }

    /// Room for `len` bytes in the staging ring (`None`: held in memory instead, which
    /// only a chunk longer than may wait needs; it is placed at once). Staged chunks
    /// leave the ring in the order they came, so the used part is one span from the
    /// oldest staged chunk to the tail, possibly wrapped.
    fn stage(&mut self, len: usize) -> Option<u64> {
        let len = len as u64;
        if len == 0 || len > STAGING_BYTES / 2 {
            return None;
        }
        let oldest = self.waiting.iter().find_map(|w| match w.audio {
            Audio::Staged { at, .. } => Some(at),
            Audio::Held(_) => None,
        });
        let at = match oldest {
            None => 0,
            Some(head) if self.stage_tail > head => {
                if len <= head {
                    0
                } else if self.stage_tail + len <= STAGING_BYTES {
                    self.stage_tail
                } else {
                    return None;
                }
            }
            Some(head) if self.stage_tail + len <= head => self.stage_tail,
            Some(_) => return None,
        };
        self.stage_tail = at + len;
        Some(at)
    }

    fn pop(&mut self) -> Option<Waiting> {
        let w = self.waiting.pop_front()?;
        match &w.audio {
            Audio::Held(v) => self.held -= v.len(),
            Audio::Staged { len, .. } => self.staged -= len,
        }
        Some(w)
    }

    /// Twilio echoed the mark numbered `seq` at `at_ms`. Marks echo in order, so every
    /// chunk before it has played too: they are placed back to back, ending at `at_ms`.
    /// A mark not waiting here (one flushed by a clear) places nothing.
    pub fn echoed(&mut self, seq: u64, at_ms: u64, out: &mut Vec<Placement>) {
        let Some(n) = self.waiting.iter().position(|w| w.seq == seq) else {
            return;
        };
        let played: usize = self.waiting.iter().take(n + 1).map(|w| w.audio.len()).sum();
        let end = at_ms * SAMPLES_PER_MS;
        let mut at = self.cursor.max(end.saturating_sub(played as u64));
        for _ in 0..=n {
            let Some(w) = self.pop() else {
                break;
            };
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
        self.held = 0;
        self.staged = 0;
    }

    fn place(&mut self, at: u64, audio: Audio, out: &mut Vec<Placement>) {
        if audio.is_empty() {
            return;
        }
        self.cursor = self.cursor.max(at + audio.len() as u64);
        out.push(Placement { at, audio });
    }

    /// Audio waiting for its echo, in samples (one byte each, held or staged).
    pub fn waiting_samples(&self) -> usize {
        self.held + self.staged
    }

    /// Waiting audio held in memory, in bytes (at most [`HELD_BYTES`], but for a chunk
    /// the ring had no room for).
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Waiting audio staged, in bytes: none means the staging file may go.
    pub fn staged_bytes(&self) -> usize {
        self.staged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(ms: u64) -> Vec<u8> {
        vec![0x10; (ms * SAMPLES_PER_MS) as usize]
    }

    /// Sends `ms` of audio after `mark`; true when it was staged.
    fn send(t: &mut AgentTrack, seq: u64, ms: u64, sent_ms: u64, out: &mut Vec<Placement>) -> bool {
        t.sent(seq, &chunk(ms), sent_ms, out).is_some()
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
        for m in [1, 2, 3] {
            send(&mut t, m, 100, 1000, &mut out);
        }
        assert!(out.is_empty());
        t.echoed(1, 1100, &mut out);
        t.echoed(2, 1200, &mut out);
        t.echoed(3, 1300, &mut out);
        assert_eq!(spans(&out), [(1000, 1100), (1100, 1200), (1200, 1300)]);
        assert_eq!(t.waiting_samples(), 0);
    }

    #[test]
    fn a_late_echo_does_not_overlap_the_previous_chunk() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        send(&mut t, 1, 100, 0, &mut out);
        send(&mut t, 2, 100, 0, &mut out);
        t.echoed(1, 100, &mut out);
        // b's echo came early (jitter): it still starts where a ended.
        t.echoed(2, 150, &mut out);
        assert_eq!(spans(&out), [(0, 100), (100, 200)]);
    }

    #[test]
    fn an_echo_releases_the_chunks_before_it() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        send(&mut t, 1, 100, 0, &mut out);
        send(&mut t, 2, 100, 0, &mut out);
        t.echoed(2, 500, &mut out);
        assert_eq!(spans(&out), [(300, 400), (400, 500)]);
    }

    #[test]
    fn clear_cuts_what_was_playing_and_drops_the_rest() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        for m in [1, 2, 3, 4] {
            send(&mut t, m, 200, 2000, &mut out);
        }
        t.echoed(1, 2200, &mut out);
        // Caller barges in at 2350: b was playing (2200–2400), c and d were flushed.
        t.cut(2350, &mut out);
        assert_eq!(spans(&out), [(2000, 2200), (2200, 2350)]);
        // Their echoes after the clear place nothing.
        t.echoed(3, 2360, &mut out);
        assert_eq!(out.len(), 2);
        // The next turn starts fresh.
        send(&mut t, 5, 100, 4000, &mut out);
        t.echoed(5, 4100, &mut out);
        assert_eq!(spans(&out)[2], (4000, 4100));
    }

    #[test]
    fn a_clear_before_playback_reached_the_audio_places_nothing() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        send(&mut t, 1, 100, 500, &mut out);
        t.cut(400, &mut out);
        assert!(out.is_empty());
        t.cut(1000, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn echoes_of_marks_not_waiting_are_ignored() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        t.echoed(3, 100, &mut out);
        t.echoed(u64::MAX, 100, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn audio_never_echoed_is_bounded() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        for i in 0..70u64 {
            send(&mut t, i, 1000, i * 1000, &mut out);
        }
        assert!(t.waiting_samples() <= MAX_WAITING_SAMPLES);
        assert_eq!(out.len(), 10);
        assert_eq!(spans(&out)[0], (0, 1000));
    }

    /// Past [`HELD_BYTES`] a call's waiting audio is staged, not held: memory stays
    /// bounded however far ahead Twilio's buffer runs, and the placements are the same.
    #[test]
    fn audio_beyond_the_held_budget_is_staged_and_placed_the_same() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        // 10 s of audio sent in 200 ms chunks at 1000 ms: a model generating faster
        // than real time.
        let staged: Vec<bool> = (0..50)
            .map(|i| send(&mut t, i, 200, 1000, &mut out))
            .collect();
        assert!(!staged[0], "the first 1 600 B fit the budget");
        assert!(staged[1..].iter().all(|&s| s));
        assert!(t.held_bytes() <= HELD_BYTES);
        assert_eq!(t.waiting_samples(), 50 * 1600);
        t.echoed(49, 11_000, &mut out);
        assert_eq!(out.len(), 50);
        for (i, p) in out.iter().enumerate() {
            assert_eq!(p.at, (1000 + 200 * i as u64) * SAMPLES_PER_MS);
            assert_eq!(p.audio.len(), 1600);
        }
        assert_eq!(
            out[1].audio,
            Audio::Staged { at: 0, len: 1600 },
            "staged from the ring's start"
        );
        assert_eq!(
            out[2].audio,
            Audio::Staged {
                at: 1600,
                len: 1600
            }
        );
        assert_eq!((t.held_bytes(), t.waiting_samples()), (0, 0));
        assert_eq!(t.staged_bytes(), 0);
    }

    /// The ring is reused from its start once its end is reached, never over a staged
    /// chunk still waiting.
    #[test]
    fn the_staging_ring_wraps_without_overwriting_waiting_audio() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        let mut live: VecDeque<std::ops::Range<u64>> = VecDeque::new();
        let mut wrapped = false;
        // 1 s chunks (all staged), each echoed 20 chunks later: 300 s through a 120 s
        // ring.
        for i in 0..300u64 {
            let at = t.sent(i, &chunk(1000), i * 1000, &mut out).expect("staged");
            let span = at..at + 8000;
            assert!(span.end <= STAGING_BYTES);
            assert!(
                live.iter()
                    .all(|l| span.end <= l.start || l.end <= span.start),
                "{span:?} over {live:?}"
            );
            wrapped |= live.back().is_some_and(|l| span.start < l.start);
            live.push_back(span);
            if i >= 20 {
                t.echoed(i - 20, (i + 1) * 1000, &mut out);
                live.pop_front();
            }
        }
        assert!(wrapped);
        assert_eq!(t.held_bytes(), 0);
        assert_eq!(t.staged_bytes(), 20 * 8000);
        // 20 s waiting never needs more than twice that of the ring.
        assert!(live.iter().all(|l| l.end <= 2 * 21 * 8000), "{live:?}");
    }

    /// A clear cuts staged audio like held audio.
    #[test]
    fn a_clear_cuts_staged_audio() {
        let mut t = AgentTrack::default();
        let mut out = Vec::new();
        for m in [1, 2, 3] {
            send(&mut t, m, 200, 2000, &mut out);
        }
        t.cut(2300, &mut out);
        assert_eq!(spans(&out), [(2000, 2200), (2200, 2300)]);
        assert_eq!(out[1].audio, Audio::Staged { at: 0, len: 800 });
        assert_eq!((t.held_bytes(), t.waiting_samples()), (0, 0));
    }
}
