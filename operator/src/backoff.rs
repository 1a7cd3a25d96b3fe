//! How long a controller waits before retrying a failed reconcile: exponential per
//! object, reset by a success. Both controllers use this one policy.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Delay before retry number `failures` (1 for the first failure): `min` doubling per
/// consecutive failure, at most `max`.
pub fn retry_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    min.saturating_mul(1u32 << doublings)
        .min(max)
        .max(min.min(max))
}

/// Consecutive failed reconciles per object (`K` names the object).
#[derive(Debug)]
pub struct Failures<K> {
    counts: Mutex<HashMap<K, u32>>,
}

impl<K> Default for Failures<K> {
    fn default() -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> Failures<K> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, u32>> {
        // A panic while holding the map cannot leave it inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more consecutive failure of `key`; returns the count (1 for the first).
    pub fn failed(&self, key: K) -> u32 {
        let mut counts = self.lock();
        let n = counts.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Consecutive failures of `key` so far.
    pub fn count(&self, key: &K) -> u32 {
        self.lock().get(key).copied().unwrap_or(0)
    }

    /// `key` reconciled: its backoff starts over.
    pub fn succeeded(&self, key: &K) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(300));
        let delays: Vec<u64> = (1..=11)
            .map(|n| retry_delay(n, min, max).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(retry_delay(0, min, max), min);
        assert_eq!(retry_delay(u32::MAX, min, max), max);
        let ms = Duration::from_millis(50);
        assert_eq!(
            retry_delay(3, ms, Duration::from_millis(150)),
            Duration::from_millis(150)
        );
    }

    #[test]
    fn failures_count_up_and_reset() {
        let failures = Failures::default();
        assert_eq!(failures.count(&"a"), 0);
        assert_eq!(failures.failed("a"), 1);
        assert_eq!(failures.failed("a"), 2);
        assert_eq!(failures.failed("b"), 1);
        failures.succeeded(&"a");
        assert_eq!(failures.count(&"a"), 0);
        assert_eq!(failures.count(&"b"), 1);
    }
}
