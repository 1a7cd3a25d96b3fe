//! Energy voice-activity detection over 20 ms windows, in input-buffer time.

use super::codec::{AudioFormat, SampleReader};

/// Window length the detector decides on.
pub const WINDOW_MS: u64 = 20;
/// Consecutive loud windows needed before speech counts as started (filters clicks).
const ONSET_WINDOWS: u32 = 2;
/// Linear RMS a `threshold` of 1.0 maps to; 0.5 gives 800, far below synthetic speech
/// (~5000) and far above digital silence (0).
const FULL_SCALE_THRESHOLD_RMS: f64 = 1600.0;

/// Detector parameters derived from the session's turn detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadParams {
    /// A window is speech when its RMS exceeds this.
    pub threshold_rms: f64,
    /// Reported onsets are moved this much earlier (the audio the model gets before speech).
    pub prefix_padding_ms: u64,
    /// Non-speech needed to end a turn.
    pub silence_duration_ms: u64,
}

impl VadParams {
    /// Parameters for a GA `threshold` in 0.0..=1.0.
    pub fn new(threshold: f64, prefix_padding_ms: u64, silence_duration_ms: u64) -> Self {
        Self {
            threshold_rms: threshold.clamp(0.0, 1.0) * FULL_SCALE_THRESHOLD_RMS,
            prefix_padding_ms,
            silence_duration_ms,
        }
    }
}

/// A detector decision, in milliseconds of input-buffer time since the session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began; the offset already includes the prefix padding.
    Started {
        /// Onset minus prefix padding, never below zero.
        audio_start_ms: u64,
    },
    /// Speech ended; the offset includes the silence that confirmed it.
    Stopped {
        /// End of the window that completed the silence duration.
        audio_end_ms: u64,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    Quiet { run: u32, run_start_ms: u64 },
    Speaking { silence_ms: u64 },
}

/// Streaming detector; feed it every appended byte in order.
#[derive(Debug, Clone)]
pub struct Vad {
    reader: SampleReader,
    sum_sq: f64,
    samples: u64,
    window_start_ms: u64,
    state: State,
}

impl Default for Vad {
    fn default() -> Self {
        Self {
            reader: SampleReader::default(),
            sum_sq: 0.0,
            samples: 0,
            window_start_ms: 0,
            state: State::Quiet {
                run: 0,
                run_start_ms: 0,
            },
        }
    }
}

impl Vad {
    /// Processes appended audio; decisions are pushed to `out` in order.
    pub fn feed(
        &mut self,
        params: &VadParams,
        format: AudioFormat,
        bytes: &[u8],
        out: &mut Vec<VadEvent>,
    ) {
        let window_samples = WINDOW_MS * SampleReader::samples_per_ms(format);
        let mut reader = std::mem::take(&mut self.reader);
        reader.for_each_sample(format, bytes, |s| {
            let x = f64::from(s);
            self.sum_sq += x * x;
            self.samples += 1;
            if self.samples == window_samples {
                let rms = (self.sum_sq / window_samples as f64).sqrt();
                self.sum_sq = 0.0;
                self.samples = 0;
                if let Some(ev) = self.decide(params, rms > params.threshold_rms) {
                    out.push(ev);
                }
                self.window_start_ms += WINDOW_MS;
            }
        });
        self.reader = reader;
    }

    /// Forgets any speech in progress (buffer cleared or committed by the client); the
    /// clock keeps running.
    pub fn reset(&mut self) {
        self.state = State::Quiet {
            run: 0,
            run_start_ms: 0,
        };
    }

    /// Whether speech is in progress.
    pub fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    fn decide(&mut self, params: &VadParams, loud: bool) -> Option<VadEvent> {
        let start = self.window_start_ms;
        let end = start + WINDOW_MS;
        match &mut self.state {
            State::Quiet { run, run_start_ms } => {
                if !loud {
                    *run = 0;
                    return None;
                }
                if *run == 0 {
                    *run_start_ms = start;
                }
                *run += 1;
                if *run < ONSET_WINDOWS {
                    return None;
                }
                let onset = *run_start_ms;
                self.state = State::Speaking { silence_ms: 0 };
                Some(VadEvent::Started {
                    audio_start_ms: onset.saturating_sub(params.prefix_padding_ms),
                })
            }
            State::Speaking { silence_ms } => {
                if loud {
                    *silence_ms = 0;
                    return None;
                }
                *silence_ms += WINDOW_MS;
                if *silence_ms < params.silence_duration_ms {
                    return None;
                }
                self.state = State::Quiet {
                    run: 0,
                    run_start_ms: 0,
                };
                Some(VadEvent::Stopped { audio_end_ms: end })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mulaw;

    fn run(chunks: &[Vec<u8>], params: VadParams) -> Vec<VadEvent> {
        let mut vad = Vad::default();
        let mut out = Vec::new();
        for c in chunks {
            // Odd-sized slices prove window bookkeeping does not depend on frame size.
            for part in c.chunks(77) {
                vad.feed(&params, AudioFormat::Pcmu, part, &mut out);
            }
        }
        out
    }

    #[test]
    fn speech_between_silences_gives_padded_offsets() {
        let events = run(
            &[
                mulaw::silence(1000),
                mulaw::speech(1200, 2),
                mulaw::silence(1000),
            ],
            VadParams::new(0.5, 300, 500),
        );
        assert_eq!(
            events,
            vec![
                VadEvent::Started {
                    audio_start_ms: 700
                },
                VadEvent::Stopped { audio_end_ms: 2700 },
            ]
        );
    }

    #[test]
    fn a_single_click_is_not_speech() {
        let events = run(
            &[
                mulaw::silence(100),
                mulaw::speech(20, 1),
                mulaw::silence(1000),
            ],
            VadParams::new(0.5, 300, 500),
        );
        assert!(events.is_empty());
    }

    #[test]
    fn short_pauses_do_not_end_the_turn() {
        let events = run(
            &[
                mulaw::speech(400, 1),
                mulaw::silence(300),
                mulaw::speech(400, 1),
                mulaw::silence(600),
            ],
            VadParams::new(0.5, 300, 500),
        );
        assert_eq!(
            events,
            vec![
                VadEvent::Started { audio_start_ms: 0 },
                VadEvent::Stopped { audio_end_ms: 1600 },
            ]
        );
    }

    #[test]
    fn a_high_threshold_ignores_speech() {
        let quiet = VadParams {
            threshold_rms: 20_000.0,
            prefix_padding_ms: 0,
            silence_duration_ms: 200,
        };
        assert!(run(&[mulaw::speech(500, 1)], quiet).is_empty());
    }
}
