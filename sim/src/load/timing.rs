//! Lock-free timing tables shared by the caller and responder tasks.
//!
//! Senders write a frame's send time into [`SendTimes`] before the frame leaves; the task
//! that receives it on the other side of the relay looks the time up and records the
//! difference in a [`LatencyHistogram`]. Both are arrays of atomics, so thousands of tasks
//! record without a lock and memory is fixed however long the run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Nanoseconds since the run's epoch: one clock for every task.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        self.ns_at(Instant::now())
    }

    /// Nanoseconds from the epoch to `at` (0 before it).
    pub fn ns_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Frames remembered per stream. A frame still in flight after this many newer frames
/// were sent (20 s of audio) counts as unmatched rather than as a latency.
const RING: usize = 1024;
const TIME_BITS: u32 = 48;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

/// Send time of recent frames per stream: a ring of slots holding the low 16 bits of the
/// sequence number and 48 bits of nanoseconds (78 hours), so a slot reused by a newer
/// frame is detected instead of producing a wrong latency.
#[derive(Debug)]
pub struct SendTimes {
    streams: usize,
    slots: Vec<AtomicU64>,
}

impl SendTimes {
    /// Room for `streams` streams.
    pub fn new(streams: usize) -> Self {
        Self {
            streams,
            slots: (0..streams * RING).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Whether `stream` has a row (frames of other streams go out untagged).
    pub fn has(&self, stream: u32) -> bool {
        (stream as usize) < self.streams
    }

    fn slot(&self, stream: u32, seq: u32) -> Option<&AtomicU64> {
        if !self.has(stream) {
            return None;
        }
        self.slots.get(stream as usize * RING + seq as usize % RING)
    }

    /// Remembers that frame `seq` of `stream` was sent at `at_ns`.
    pub fn record(&self, stream: u32, seq: u32, at_ns: u64) {
        if let Some(slot) = self.slot(stream, seq) {
            // +1 keeps an empty slot (0) distinct from a frame sent at the epoch.
            let packed = (u64::from(seq & 0xFFFF) << TIME_BITS) | ((at_ns + 1) & TIME_MASK);
            slot.store(packed, Ordering::Release);
        }
    }

    /// When frame `seq` of `stream` was sent, if it is still remembered.
    pub fn sent_at(&self, stream: u32, seq: u32) -> Option<u64> {
        let packed = self.slot(stream, seq)?.load(Ordering::Acquire);
        let time = packed & TIME_MASK;
        if time == 0 || packed >> TIME_BITS != u64::from(seq & 0xFFFF) {
            return None;
        }
        Some(time - 1)
    }
}

/// Exact below 128 µs, then 64 sub-buckets per power of two (≤ 1.6 % error).
const LINEAR: u64 = 128;
const SUB: u64 = 64;
/// Latencies are capped at 2^32 µs (71 minutes), which bounds the bucket count.
const MAX_US: u64 = u32::MAX as u64;
const BUCKETS: usize = 128 + 25 * 64;

/// A lock-free log-linear histogram of microsecond latencies.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    max: AtomicU64,
}

fn bucket_of(us: u64) -> usize {
    let v = us.min(MAX_US);
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - u64::from(v.leading_zeros());
    let shift = msb - 6;
    let mantissa = v >> shift;
    (LINEAR + (shift - 1) * SUB + (mantissa - SUB)) as usize
}

/// The middle of bucket `i`, µs.
fn bucket_mid(i: usize) -> f64 {
    let i = i as u64;
    if i < LINEAR {
        return i as f64;
    }
    let k = i - LINEAR;
    let shift = k / SUB + 1;
    let mantissa = k % SUB + SUB;
    let low = mantissa << shift;
    let high = ((mantissa + 1) << shift) - 1;
    (low + high) as f64 / 2.0
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Adds one latency.
    pub fn record_ns(&self, ns: u64) {
        let us = ns / 1000;
        if let Some(b) = self.buckets.get(bucket_of(us)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(us.min(MAX_US), Ordering::Relaxed);
    }

    /// Number of latencies recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Largest latency, µs.
    pub fn max_us(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0–1), µs; `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // Rank of the quantile, 1-based: the smallest value with at least q·n values ≤ it.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(bucket_mid(i).min(self.max_us() as f64));
            }
        }
        Some(self.max_us() as f64)
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut last = 0;
        for us in 0..200_000u64 {
            let b = bucket_of(us);
            assert!(b == last || b == last + 1, "gap at {us}");
            last = b;
            let mid = bucket_mid(b);
            assert!(
                (mid - us as f64).abs() <= 0.016 * us as f64 + 0.5,
                "{us} -> {mid}"
            );
        }
        assert!(bucket_of(MAX_US) < BUCKETS);
        assert_eq!(bucket_of(u64::MAX), bucket_of(MAX_US));
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let h = LatencyHistogram::new();
        assert_eq!(h.quantile_us(0.5), None);
        for us in 1..=1000u64 {
            h.record_ns(us * 1000);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max_us(), 1000);
        let p50 = h.quantile_us(0.5).unwrap();
        let p99 = h.quantile_us(0.99).unwrap();
        assert!((p50 - 500.0).abs() <= 8.0, "p50 {p50}");
        assert!((p99 - 990.0).abs() <= 16.0, "p99 {p99}");
        assert_eq!(h.quantile_us(1.0).unwrap(), 1000.0);
        assert_eq!(h.quantile_us(0.0).unwrap(), 1.0);
    }

    #[test]
    fn send_times_detect_reused_slots_and_unknown_streams() {
        let t = SendTimes::new(2);
        t.record(1, 5, 0);
        assert_eq!(t.sent_at(1, 5), Some(0));
        assert_eq!(t.sent_at(0, 5), None);
        t.record(1, 5 + RING as u32, 77);
        assert_eq!(t.sent_at(1, 5), None, "overwritten by a newer frame");
        assert_eq!(t.sent_at(1, 5 + RING as u32), Some(77));
        t.record(2, 0, 1);
        assert!(!t.has(2));
        assert_eq!(t.sent_at(2, 0), None);
    }
}
