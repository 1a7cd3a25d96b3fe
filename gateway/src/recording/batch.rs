//! A call's recording events on their way to the writer thread, encoded back to back in
//! one buffer.
//!
//! Why one buffer and not a `Vec` of events: a talking call makes ≈ 150 events a second
//! (caller frames, agent chunks, mark echoes), and as a vector of owned events each one
//! was its own allocation (audio, mark name) held until the writer took the batch: about
//! 6 KiB per call at any moment, most of what recording added to a call's memory
//! (docs/performance.md, "Recordings"). Encoded, a batch is one allocation that grows
//! from [`FIRST_CAPACITY`] and is handed over at [`FLUSH_BYTES`]: caller audio is decoded
//! from base64 straight into it.
//!
//! Layout of one event: kind (1 byte), time in ms (u64 LE), mark name length (u16 LE),
//! audio length (u32 LE), the mark name, the audio.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A batch is handed to the writer once it holds this many bytes (≈ 200 ms of a talking
/// call's audio, both ways, with its marks: ≈ 20 KB/s). Smaller batches cost the writer
/// more: it writes each batch's audio with one positioned write per track, and at
/// 2 048 B (≈ 11 000 writes a second at 500 calls) the recorded gateway's core was full
/// (docs/performance.md, "Recordings").
pub const FLUSH_BYTES: usize = 4096;
/// What a new batch reserves; it grows by doubling up to about [`FLUSH_BYTES`].
const FIRST_CAPACITY: usize = 256;
/// Bytes before an event's mark name and audio.
const HEADER: usize = 1 + 8 + 2 + 4;

const CALLER: u8 = 1;
const AGENT: u8 = 2;
const ECHO: u8 = 3;
const CLEAR: u8 = 4;

/// One event of a batch, borrowed from its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// Caller audio (µ-law) with Twilio's media timestamp.
    Caller {
        /// Twilio's timestamp, ms since the stream started.
        ts_ms: u64,
        /// The audio.
        audio: &'a [u8],
    },
    /// Agent audio (µ-law) sent to Twilio at `at_ms`, followed by `mark`.
    Agent {
        /// The mark sent after it.
        mark: &'a str,
        /// The audio.
        audio: &'a [u8],
        /// When it was sent.
        at_ms: u64,
    },
    /// Twilio echoed `mark` at `at_ms`.
    Echo {
        /// The mark's name.
        mark: &'a str,
        /// When the echo arrived.
        at_ms: u64,
    },
    /// A barge-in's `clear` was sent at `at_ms`.
    Clear {
        /// When.
        at_ms: u64,
    },
}

/// Events being collected by a call task.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    events: u64,
}

impl Batch {
    /// Events collected.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Whether the batch should be handed over now (one event can be larger than
    /// [`FLUSH_BYTES`]).
    pub fn full(&self) -> bool {
        self.buf.len() >= FLUSH_BYTES
    }

    /// Whether an event with `bytes` of mark and audio would take a non-empty batch past
    /// [`FLUSH_BYTES`]: the batch is handed over first, so it never grows past it for
    /// frame-sized events.
    pub fn would_overflow(&self, bytes: usize) -> bool {
        !self.is_empty() && self.buf.len() + HEADER + bytes > FLUSH_BYTES
    }

    /// The encoded events and their count; the batch starts again empty (no allocation
    /// until its next event).
    pub fn take(&mut self) -> (Vec<u8>, u64) {
        (
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.events),
        )
    }

    /// Writes an event's header; `audio_len` is patched by [`Batch::caller_base64`].
    /// False (nothing written) when `mark` is too long to encode.
    fn header(&mut self, kind: u8, at_ms: u64, mark: &str, audio_len: usize) -> bool {
        let (Ok(mark_len), Ok(audio_len)) = (u16::try_from(mark.len()), u32::try_from(audio_len))
        else {
            return false;
        };
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(FIRST_CAPACITY);
        }
        self.buf.push(kind);
        self.buf.extend_from_slice(&at_ms.to_le_bytes());
        self.buf.extend_from_slice(&mark_len.to_le_bytes());
        self.buf.extend_from_slice(&audio_len.to_le_bytes());
        self.buf.extend_from_slice(mark.as_bytes());
        self.events += 1;
        true
    }

    /// Caller audio given as Twilio's base64 payload, decoded into the batch. Invalid
    /// base64 adds nothing and returns false.
    pub fn caller_base64(&mut self, ts_ms: u64, payload: &str) -> bool {
        let start = self.buf.len();
        if !self.header(CALLER, ts_ms, "", 0) {
            return false;
        }
        let audio_at = self.buf.len();
        let len = match STANDARD.decode_vec(payload, &mut self.buf) {
            Ok(()) => u32::try_from(self.buf.len() - audio_at).ok(),
            Err(_) => None,
        };
        match len {
            Some(len) => {
                self.buf[audio_at - 4..audio_at].copy_from_slice(&len.to_le_bytes());
                true
            }
            None => {
                self.buf.truncate(start);
                self.events -= 1;
                false
            }
        }
    }

    /// Agent audio sent at `at_ms`, followed by `mark`.
    pub fn agent(&mut self, mark: &str, audio: &[u8], at_ms: u64) -> bool {
        let ok = self.header(AGENT, at_ms, mark, audio.len());
        if ok {
            self.buf.extend_from_slice(audio);
        }
        ok
    }

    /// Twilio echoed `mark` at `at_ms`.
    pub fn echo(&mut self, mark: &str, at_ms: u64) -> bool {
        self.header(ECHO, at_ms, mark, 0)
    }

    /// A `clear` was sent at `at_ms`.
    pub fn clear(&mut self, at_ms: u64) {
        self.header(CLEAR, at_ms, "", 0);
    }
}

/// The events of an encoded batch, in order. The buffer is only ever made by [`Batch`],
/// but a malformed one ends the iteration rather than panicking.
pub fn events(buf: &[u8]) -> Events<'_> {
    Events { rest: buf }
}

/// Iterator over an encoded batch; see [`events`].
#[derive(Debug)]
pub struct Events<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Events<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        let head = self.rest.get(..HEADER)?;
        let kind = head[0];
        let at_ms = u64::from_le_bytes(head[1..9].try_into().ok()?);
        let mark_len = usize::from(u16::from_le_bytes(head[9..11].try_into().ok()?));
        let audio_len = usize::try_from(u32::from_le_bytes(head[11..15].try_into().ok()?)).ok()?;
        let body = self.rest.get(HEADER..HEADER + mark_len + audio_len);
        let Some(body) = body else {
            self.rest = &[];
            return None;
        };
        let (mark, audio) = body.split_at(mark_len);
        let Ok(mark) = std::str::from_utf8(mark) else {
            self.rest = &[];
            return None;
        };
        self.rest = &self.rest[HEADER + mark_len + audio_len..];
        Some(match kind {
            CALLER => Event::Caller {
                ts_ms: at_ms,
                audio,
            },
            AGENT => Event::Agent { mark, audio, at_ms },
            ECHO => Event::Echo { mark, at_ms },
            CLEAR => Event::Clear { at_ms },
            _ => {
                self.rest = &[];
                return None;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_back_in_order_and_intact() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        assert!(b.caller_base64(20, "AAEC"));
        assert!(b.agent("item_1:0:g0:m1", &[7; 160], 25));
        assert!(b.echo("item_1:0:g0:m1", 45));
        b.clear(50);
        assert!(b.caller_base64(40, ""));
        assert_eq!(b.events(), 5);
        let (buf, n) = b.take();
        assert_eq!(n, 5);
        assert!(b.is_empty());
        let got: Vec<Event<'_>> = events(&buf).collect();
        assert_eq!(
            got,
            [
                Event::Caller {
                    ts_ms: 20,
                    audio: &[0, 1, 2]
                },
                Event::Agent {
                    mark: "item_1:0:g0:m1",
                    audio: &[7; 160],
                    at_ms: 25
                },
                Event::Echo {
                    mark: "item_1:0:g0:m1",
                    at_ms: 45
                },
                Event::Clear { at_ms: 50 },
                Event::Caller {
                    ts_ms: 40,
                    audio: &[]
                },
            ]
        );
    }

    #[test]
    fn invalid_base64_adds_nothing() {
        let mut b = Batch::default();
        assert!(b.caller_base64(0, "AAEC"));
        let before = b.buf.clone();
        assert!(!b.caller_base64(20, "not base64!"));
        assert_eq!(b.buf, before);
        assert_eq!(b.events(), 1);
    }

    #[test]
    fn a_mark_too_long_to_encode_is_refused() {
        let mut b = Batch::default();
        let long = "m".repeat(usize::from(u16::MAX) + 1);
        assert!(!b.echo(&long, 0));
        assert!(!b.agent(&long, &[1], 0));
        assert!(b.is_empty());
    }

    #[test]
    fn a_batch_stays_within_the_flush_size() {
        let mut b = Batch::default();
        let frame = STANDARD.encode([0x7f; 160]);
        let mut n = 0;
        while !b.would_overflow(160) {
            assert!(b.caller_base64(n * 20, &frame));
            n += 1;
        }
        assert_eq!(n as usize, FLUSH_BYTES / (HEADER + 160));
        assert!(!b.full());
        assert!(b.buf.capacity() <= FLUSH_BYTES);
        // One event larger than a batch is a batch of its own, handed over at once.
        let mut big = Batch::default();
        assert!(big.agent("m", &[0; FLUSH_BYTES], 0));
        assert!(big.full());
    }

    #[test]
    fn a_truncated_or_unknown_buffer_ends_without_panicking() {
        let mut b = Batch::default();
        assert!(b.agent("m", &[1, 2, 3], 5));
        b.clear(6);
        let (buf, _) = b.take();
        for cut in 0..buf.len() {
            let n = events(&buf[..cut]).count();
            assert!(n <= 1, "{cut}: {n}");
        }
        let mut bad = buf.clone();
        bad[0] = 99;
        assert_eq!(events(&bad).count(), 0);
        let mut bad_utf8 = buf;
        bad_utf8[HEADER] = 0xff;
        assert_eq!(events(&bad_utf8).count(), 0);
    }
}
