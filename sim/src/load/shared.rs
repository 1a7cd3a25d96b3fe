//! State every task of a load run shares: the clock, send-time tables, latency histograms
//! and counters. All of it is atomics, so no task ever waits on another to record.

use std::sync::atomic::{AtomicU64, Ordering};

use super::tag::Tag;
use super::timing::{Clock, LatencyHistogram, SendTimes};

/// One relay direction's tables and counters.
#[derive(Debug)]
pub struct Direction {
    /// Send times by stream and frame.
    pub sent_at: SendTimes,
    /// Send → receive latencies of matched frames.
    pub latency: LatencyHistogram,
    /// Tagged frames sent.
    pub sent: AtomicU64,
    /// Tagged frames received.
    pub received: AtomicU64,
    /// Tagged frames received whose send time was unknown (too old or never sent).
    pub unmatched: AtomicU64,
}

impl Direction {
    fn new(streams: usize) -> Self {
        Self {
            sent_at: SendTimes::new(streams),
            latency: LatencyHistogram::new(),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
        }
    }

    /// Records that `tag` is being sent at `now_ns`.
    pub fn sending(&self, tag: Tag, now_ns: u64) {
        self.sent_at.record(tag.stream, tag.seq, now_ns);
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that `tag` arrived at `now_ns`.
    pub fn received(&self, tag: Tag, now_ns: u64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        match self.sent_at.sent_at(tag.stream, tag.seq) {
            Some(sent) if sent <= now_ns => self.latency.record_ns(now_ns - sent),
            _ => {
                self.unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Everything shared by the callers, the responder and the monitor.
#[derive(Debug)]
pub struct Shared {
    /// The run's clock.
    pub clock: Clock,
    /// Random per run, so ids (CallSids) never repeat across runs against one gateway.
    pub run_id: u32,
    /// Caller → model frames (stream = call index).
    pub inbound: Direction,
    /// Model → caller frames (stream = responder session index).
    pub outbound: Direction,
    /// Caller send ticks that fired more than one frame late.
    pub late_frames: AtomicU64,
    /// Largest caller send-tick lag, µs.
    pub max_lag_us: AtomicU64,
    /// Calls whose media stream is running.
    pub streaming: AtomicU64,
    /// Messages from the relay Twilio would have refused.
    pub protocol_errors: AtomicU64,
    /// Responder connections accepted so far (the next session's index).
    pub sessions: AtomicU64,
    /// Responder connections still open.
    pub sessions_open: AtomicU64,
    /// Responder handshakes refused (bad path or no bearer key).
    pub sessions_refused: AtomicU64,
}

impl Shared {
    /// Tables for `calls` calls and up to `sessions` responder sessions.
    pub fn new(calls: usize, sessions: usize, run_id: u32) -> Self {
        Self {
            clock: Clock::new(),
            run_id,
            inbound: Direction::new(calls),
            outbound: Direction::new(sessions),
            late_frames: AtomicU64::new(0),
            max_lag_us: AtomicU64::new(0),
            streaming: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            sessions_open: AtomicU64::new(0),
            sessions_refused: AtomicU64::new(0),
        }
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Decrements a gauge when dropped, so every exit path of a task counts.
pub struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    /// Increments `counter` until the guard is dropped.
    pub fn up(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
