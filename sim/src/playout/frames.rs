//! The caller's ear (`sim call`): a sans-I/O 20 ms frame clock for the audio a gateway
//! sends.
//!
//! Audio is queued as it arrives and played one 20 ms frame per [`Playout::tick`]. A mark
//! sits at the end of the audio queued before it and is released once that audio has
//! finished playing, i.e. at the first tick after its last byte's frame; a mark that
//! arrives while nothing is queued or sounding is released at once. `clear` drops the
//! queue, cuts the frame that is sounding and releases every pending mark.

use std::collections::VecDeque;

use super::Marks;
use crate::mulaw::FRAME_BYTES;

/// What one 20 ms tick did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tick {
    /// Bytes that started playing in this tick (0..=160).
    pub played: usize,
    /// Marks whose audio has finished playing, in the order they were queued.
    pub marks: Vec<String>,
}

/// The playout buffer and its clock, counted in µ-law bytes (8 per ms).
#[derive(Debug, Clone, Default)]
pub struct Playout {
    buffer: VecDeque<u8>,
    /// Bytes ever queued: the position of the end of the buffer.
    queued: u64,
    /// Bytes taken from the buffer to play (the sounding frame included).
    started: u64,
    /// Bytes whose playout has finished.
    finished: u64,
    marks: Marks<u64>,
    idle_ticks: u64,
    record: Option<Vec<u8>>,
}

impl Playout {
    /// An empty playout clock; with `record_audio` it keeps every byte it plays.
    pub fn new(record_audio: bool) -> Self {
        Self {
            record: record_audio.then(Vec::new),
            ..Self::default()
        }
    }

    /// Queues audio behind whatever is already buffered.
    pub fn push_audio(&mut self, audio: &[u8]) {
        self.buffer.extend(audio);
        self.queued += audio.len() as u64;
    }

    /// Queues a mark at the current end of the buffer. Returns the name when it is to be
    /// echoed right away because nothing is queued or sounding.
    pub fn push_mark(&mut self, name: String) -> Option<String> {
        if self.queued == self.finished && self.marks.is_empty() {
            Some(name)
        } else {
            self.marks.push(self.queued, name);
            None
        }
    }

    /// Drops all queued audio and returns every pending mark, in order.
    pub fn clear(&mut self) -> Vec<String> {
        self.buffer.clear();
        self.queued = self.started;
        self.finished = self.started;
        let mut out = Vec::new();
        self.marks.release_all(&mut out);
        out
    }

    /// Advances the clock by one 20 ms frame: the frame that was sounding has finished
    /// (releasing its marks) and the next one starts.
    pub fn tick(&mut self) -> Tick {
        self.finished = self.started;
        let mut marks = Vec::new();
        self.marks.release(self.finished, &mut marks);
        let played = self.buffer.len().min(FRAME_BYTES);
        if let Some(record) = &mut self.record {
            record.extend(self.buffer.iter().take(played));
        }
        self.buffer.drain(..played);
        self.started += played as u64;
        self.idle_ticks = if played == 0 { self.idle_ticks + 1 } else { 0 };
        Tick { played, marks }
    }

    /// Bytes queued and not yet started.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Bytes that have started playing since the call began.
    pub fn played_bytes(&self) -> u64 {
        self.started
    }

    /// Milliseconds since the last tick that played anything.
    pub fn idle_ms(&self) -> u64 {
        self.idle_ticks * 20
    }

    /// Marks waiting for their audio to play.
    pub fn pending_marks(&self) -> usize {
        self.marks.len()
    }

    /// Everything played so far, when recording was asked for.
    pub fn into_recording(self) -> Vec<u8> {
        self.record.unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mark_is_echoed_at_once_when_nothing_is_queued_or_sounding() {
        let mut p = Playout::new(false);
        assert_eq!(p.push_mark("a".into()), Some("a".into()));
        p.push_audio(&[1; 160]);
        assert_eq!(p.tick().played, 160);
        // The frame is still sounding: the mark waits for it.
        assert_eq!(p.push_mark("b".into()), None);
        assert_eq!(
            p.tick(),
            Tick {
                played: 0,
                marks: vec!["b".into()]
            }
        );
        assert_eq!(p.push_mark("c".into()), Some("c".into()));
    }

    #[test]
    fn marks_are_echoed_only_after_the_audio_before_them_played() {
        let mut p = Playout::new(false);
        p.push_audio(&[1; 400]); // 50 ms: frames of 160, 160, 80
        assert_eq!(p.push_mark("m1".into()), None);
        p.push_audio(&[2; 160]);
        assert_eq!(p.push_mark("m2".into()), None);
        assert_eq!(
            p.tick(),
            Tick {
                played: 160,
                marks: vec![]
            }
        );
        assert_eq!(
            p.tick(),
            Tick {
                played: 160,
                marks: vec![]
            }
        );
        // m1's last bytes start playing here, together with the next audio.
        assert_eq!(
            p.tick(),
            Tick {
                played: 160,
                marks: vec![]
            }
        );
        assert_eq!(
            p.tick(),
            Tick {
                played: 80,
                marks: vec!["m1".into()]
            }
        );
        assert_eq!(p.pending_marks(), 1);
        assert_eq!(
            p.tick(),
            Tick {
                played: 0,
                marks: vec!["m2".into()]
            }
        );
        assert_eq!(p.played_bytes(), 560);
    }

    #[test]
    fn consecutive_marks_at_one_point_are_released_together_in_order() {
        let mut p = Playout::new(false);
        p.push_audio(&[1; 160]);
        assert_eq!(p.push_mark("x".into()), None);
        assert_eq!(p.push_mark("y".into()), None);
        p.tick();
        assert_eq!(p.tick().marks, ["x", "y"]);
    }

    #[test]
    fn clear_drops_audio_and_echoes_every_pending_mark_at_once() {
        let mut p = Playout::new(false);
        p.push_audio(&[1; 1600]);
        p.push_mark("a".into());
        p.push_audio(&[1; 1600]);
        p.push_mark("b".into());
        p.tick();
        assert_eq!(p.clear(), ["a", "b"]);
        assert_eq!(p.buffered(), 0);
        assert_eq!(
            p.tick(),
            Tick {
                played: 0,
                marks: vec![]
            }
        );
        assert_eq!(p.played_bytes(), 160);
        // The clock is idle again: a new mark comes straight back.
        assert_eq!(p.push_mark("c".into()), Some("c".into()));
    }

    #[test]
    fn mark_right_after_clear_is_immediate() {
        let mut p = Playout::new(false);
        p.push_audio(&[1; 800]);
        p.tick();
        assert!(p.clear().is_empty());
        assert_eq!(p.push_mark("now".into()), Some("now".into()));
    }

    #[test]
    fn idle_time_and_recording() {
        let mut p = Playout::new(true);
        p.push_audio(&[7; 200]);
        p.tick();
        assert_eq!(p.idle_ms(), 0);
        p.tick();
        assert_eq!(p.idle_ms(), 0);
        p.tick();
        p.tick();
        assert_eq!(p.idle_ms(), 40);
        assert_eq!(p.into_recording(), vec![7; 200]);
    }
}
