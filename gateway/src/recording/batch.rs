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
//! Layout of one event: kind (1 byte), time in ms since the call's media started (u32
//! LE), then by kind: caller audio: its length (u32 LE) and the audio; agent audio: its
//! mark's sequence number (u64 LE), length (u32 LE) and the audio; an echo: the mark's
//! sequence number; a clear: nothing. Marks go by the playback's sequence numbers, not
//! their names: a name is ≈ 45 bytes, and with one in each chunk's event and again in its
//! echo a talking call's batches were over a quarter larger (22 750 B a second against
//! 17 950), so there were that many more of them and of the writer's positioned writes
//! (docs/performance.md, "Recordings", session 10). Times fit
//! in 32 bits for 49 days; an event later than that is not recorded (calls end long
//! before).

/// A batch is handed to the writer once it holds this many bytes (≈ 230 ms of a talking
/// call's audio, both ways, with its marks: ≈ 18 KB/s). Smaller batches cost the writer
/// more: it writes each batch's audio with one positioned write per track, and at
/// 2 048 B (≈ 11 000 writes a second at 500 calls) the recorded gateway's core was full
/// (docs/performance.md, "Recordings").
pub const FLUSH_BYTES: usize = 4096;
/// What a new batch reserves; it grows by doubling up to about [`FLUSH_BYTES`].
const FIRST_CAPACITY: usize = 256;
/// Bytes of an event's kind and time.
const HEAD: usize = 1 + 4;
/// The most bytes an event has besides its audio (agent audio: head, seq, length).
const MAX_OVERHEAD: usize = HEAD + 8 + 4;

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
    /// Agent audio (µ-law) sent to Twilio at `at_ms`, followed by the mark numbered `seq`.
    Agent {
        /// The playback's sequence number of the mark sent after it.
        seq: u64,
        /// The audio.
        audio: &'a [u8],
        /// When it was sent.
        at_ms: u64,
    },
    /// Twilio echoed the mark numbered `seq` at `at_ms` (it was one of ours: the
    /// playback matched its whole name).
    Echo {
        /// The mark's sequence number.
        seq: u64,
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

    /// Whether an event with `bytes` of audio could take a non-empty batch past
    /// [`FLUSH_BYTES`]: the batch is handed over first, so it never grows past it for
    /// frame-sized events.
    pub fn would_overflow(&self, bytes: usize) -> bool {
        !self.is_empty() && self.buf.len() + MAX_OVERHEAD + bytes > FLUSH_BYTES
    }

    /// The encoded events and their count; the batch starts again empty (no allocation
    /// until its next event).
    pub fn take(&mut self) -> (Vec<u8>, u64) {
        (
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.events),
        )
    }

    /// Writes an event's kind and time; false (nothing written) when the time does not
    /// fit.
    fn head(&mut self, kind: u8, at_ms: u64) -> bool {
        let Ok(at) = u32::try_from(at_ms) else {
            return false;
        };
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(FIRST_CAPACITY);
        }
        self.buf.push(kind);
        self.buf.extend_from_slice(&at.to_le_bytes());
        self.events += 1;
        true
    }

    /// Takes back an event begun at `start`.
    fn undo(&mut self, start: usize) {
        self.buf.truncate(start);
        self.events -= 1;
    }

    /// Caller audio given as Twilio's base64 payload, decoded into the batch. Invalid
    /// base64 adds nothing and returns false.
    pub fn caller_base64(&mut self, ts_ms: u64, payload: &str) -> bool {
        let start = self.buf.len();
        if !self.head(CALLER, ts_ms) {
            return false;
        }
        self.buf.extend_from_slice(&[0; 4]);
        let audio_at = self.buf.len();
        // Grown as a `Vec` grows (doubling): the decoder reserves exactly what it needs,
        // which would make every frame a reallocation.
        self.buf.reserve(decoded_len(payload));
        let len = match base64_simd::STANDARD.decode_append(payload, &mut self.buf) {
            Ok(()) => u32::try_from(self.buf.len() - audio_at).ok(),
            Err(_) => None,
        };
        match len {
            Some(len) => {
                self.buf[audio_at - 4..audio_at].copy_from_slice(&len.to_le_bytes());
                true
            }
            None => {
                self.undo(start);
                false
            }
        }
    }

    /// Agent audio sent at `at_ms`, followed by the mark numbered `seq`.
    pub fn agent(&mut self, seq: u64, audio: &[u8], at_ms: u64) -> bool {
        let Ok(len) = u32::try_from(audio.len()) else {
            return false;
        };
        if !self.head(AGENT, at_ms) {
            return false;
        }
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(audio);
        true
    }

    /// Twilio echoed the mark numbered `seq` at `at_ms`.
    pub fn echo(&mut self, seq: u64, at_ms: u64) -> bool {
        if !self.head(ECHO, at_ms) {
            return false;
        }
        self.buf.extend_from_slice(&seq.to_le_bytes());
        true
    }

    /// A `clear` was sent at `at_ms`.
    pub fn clear(&mut self, at_ms: u64) -> bool {
        self.head(CLEAR, at_ms)
    }
}

/// The most bytes a base64 `payload` decodes to (its padding included).
pub fn decoded_len(payload: &str) -> usize {
    payload.len() / 4 * 3
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

impl<'a> Events<'a> {
    /// The next `n` bytes, or `None` (and the iteration ends) when fewer are left.
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        match self.rest.split_at_checked(n) {
            Some((head, rest)) => {
                self.rest = rest;
                Some(head)
            }
            None => {
                self.rest = &[];
                None
            }
        }
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }

    fn audio(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.bytes(len)
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        let kind = *self.bytes(1)?.first()?;
        let at_ms = u64::from(self.u32()?);
        let event = match kind {
            CALLER => Event::Caller {
                ts_ms: at_ms,
                audio: self.audio()?,
            },
            AGENT => {
                let seq = self.u64()?;
                Event::Agent {
                    seq,
                    audio: self.audio()?,
                    at_ms,
                }
            }
            ECHO => Event::Echo {
                seq: self.u64()?,
                at_ms,
            },
            CLEAR => Event::Clear { at_ms },
            _ => {
                self.rest = &[];
                return None;
            }
        };
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    #[test]
    fn events_come_back_in_order_and_intact() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        assert!(b.caller_base64(20, "AAEC"));
        assert!(b.agent(1, &[7; 160], 25));
        assert!(b.echo(1, 45));
        assert!(b.clear(50));
        assert!(b.caller_base64(40, ""));
        assert!(b.echo(u64::MAX, u64::from(u32::MAX)));
        assert_eq!(b.events(), 6);
        let (buf, n) = b.take();
        assert_eq!(n, 6);
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
                    seq: 1,
                    audio: &[7; 160],
                    at_ms: 25
                },
                Event::Echo { seq: 1, at_ms: 45 },
                Event::Clear { at_ms: 50 },
                Event::Caller {
                    ts_ms: 40,
                    audio: &[]
                },
                Event::Echo {
                    seq: u64::MAX,
                    at_ms: u64::from(u32::MAX)
                },
            ]
        );
    }

    #[test]
    fn invalid_base64_adds_nothing() {
        let mut b = Batch::default();
        assert!(b.caller_base64(0, "AAEC"));
        let before = b.buf.clone();
        for bad in ["not base64!", "AAE", "AAF=", "AA==AAEC"] {
            assert!(!b.caller_base64(20, bad), "{bad}");
            assert_eq!(b.buf, before, "{bad}");
            assert_eq!(b.events(), 1, "{bad}");
        }
    }

    /// The decoder is the `base64` crate's standard engine's equal: what one accepts the
    /// other does, to the same bytes.
    #[test]
    fn caller_audio_decodes_as_the_standard_engine_does() {
        for n in [0usize, 1, 2, 3, 159, 160, 161, 8000] {
            let raw: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let mut b = Batch::default();
            assert!(b.caller_base64(0, &STANDARD.encode(&raw)));
            let (buf, _) = b.take();
            assert_eq!(
                events(&buf).collect::<Vec<_>>(),
                [Event::Caller {
                    ts_ms: 0,
                    audio: &raw[..]
                }]
            );
        }
        // What either refuses, both refuse: unused bits of the last symbol set, padding
        // missing, misplaced or too long, characters outside the alphabet, whitespace.
        for text in [
            "AB==", "AAB=", "AA", "AAA", "A===", "=AAA", "AA=A", "AAAA====", "AAAA=", " AAA",
            "AA\nA", "AA-_", "AAA\0", "Zm9v\r\n", "Zm9vYg", "Zm9vYg=",
        ] {
            let ours = Batch::default().caller_base64(0, text);
            assert_eq!(ours, STANDARD.decode(text).is_ok(), "{text:?}");
            assert!(!ours, "{text:?}");
        }
        // Every 2-symbol tail after a valid block, padded: accepted and decoded alike.
        let symbols = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
        for &a in symbols {
            for &b in symbols {
                let text = format!("Zm9v{}{}==", char::from(a), char::from(b));
                let mut batch = Batch::default();
                let ours = batch.caller_base64(0, &text);
                let theirs = STANDARD.decode(&text);
                assert_eq!(ours, theirs.is_ok(), "{text}");
                if let Ok(bytes) = theirs {
                    let (buf, _) = batch.take();
                    let got: Vec<_> = events(&buf).collect();
                    assert_eq!(
                        got,
                        [Event::Caller {
                            ts_ms: 0,
                            audio: &bytes[..]
                        }]
                    );
                }
            }
        }
    }

    #[test]
    fn a_time_past_32_bits_is_refused() {
        let mut b = Batch::default();
        let late = u64::from(u32::MAX) + 1;
        assert!(!b.caller_base64(late, "AAEC"));
        assert!(!b.agent(1, &[1], late));
        assert!(!b.echo(1, late));
        assert!(!b.clear(late));
        assert!(b.is_empty());
        assert!(b.buf.is_empty());
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
        // 9 bytes besides the audio of a caller frame.
        assert_eq!(b.buf.len(), n as usize * (HEAD + 4 + 160));
        assert!(b.buf.len() > FLUSH_BYTES - MAX_OVERHEAD - 160 - (HEAD + 4));
        assert!(!b.full());
        assert!(b.buf.capacity() <= FLUSH_BYTES);
        // One event larger than a batch is a batch of its own, handed over at once.
        let mut big = Batch::default();
        assert!(big.agent(1, &[0; FLUSH_BYTES], 0));
        assert!(big.full());
    }

    #[test]
    fn a_truncated_or_unknown_buffer_ends_without_panicking() {
        let mut b = Batch::default();
        assert!(b.agent(3, &[1, 2, 3], 5));
        assert!(b.clear(6));
        let (buf, _) = b.take();
        for cut in 0..buf.len() {
            let n = events(&buf[..cut]).count();
            assert!(n <= 1, "{cut}: {n}");
        }
        let mut bad = buf.clone();
        bad[0] = 99;
        assert_eq!(events(&bad).count(), 0);
        // An audio length past the end.
        let mut long = buf;
        long[HEAD + 8..HEAD + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(events(&long).count(), 0);
    }

    /// Measurement, not a check: ns per decode of a Twilio-sized frame and of larger
    /// Realtime deltas, by the `base64` crate and by `base64-simd` (docs/performance.md,
    /// "Recordings", session 10). `cargo test --release -p switchboard-gateway --lib
    /// base64_decoders -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement; prints timings"]
    fn base64_decoders() {
        for n in [160usize, 480, 2400] {
            let raw: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let text = STANDARD.encode(&raw);
            let rounds = 2_000_000 * 160 / n;
            let mut out = Vec::with_capacity(4096);
            for round in 0..3 {
                let t = std::time::Instant::now();
                for _ in 0..rounds {
                    out.clear();
                    STANDARD
                        .decode_vec(std::hint::black_box(&text), &mut out)
                        .expect("valid");
                    std::hint::black_box(&out);
                }
                let crate_ns = t.elapsed().as_nanos() as f64 / rounds as f64;
                let t = std::time::Instant::now();
                for _ in 0..rounds {
                    out.clear();
                    base64_simd::STANDARD
                        .decode_append(std::hint::black_box(&text), &mut out)
                        .expect("valid");
                    std::hint::black_box(&out);
                }
                let simd_ns = t.elapsed().as_nanos() as f64 / rounds as f64;
                assert_eq!(out, raw);
                println!(
                    "{n} B, round {round}: base64 {crate_ns:.1} ns, base64-simd {simd_ns:.1} ns"
                );
            }
        }
    }
}
