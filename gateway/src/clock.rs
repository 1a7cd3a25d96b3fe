//! Wall-clock time as stored in call records (Unix ms). Durations inside a call use
//! `Instant`; only timestamps that leave the process come from here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time now, in ms.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
