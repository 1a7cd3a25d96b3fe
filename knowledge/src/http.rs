//! What the crate's HTTP clients (the OpenAI-compatible embedder, the Pinecone store)
//! share: the delays between retries, the wait a server asks for, and readable
//! transport errors.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The delays before each of `retries` retries: `initial`, doubling each time up to
/// `max`, each with ±25 % jitter so clients that failed together do not retry together.
/// Ends after `retries` delays: the caller gives up when it yields `None`.
pub(crate) fn backoff(
    initial: Duration,
    max: Duration,
    retries: u32,
) -> impl Iterator<Item = Duration> {
    // backon's own jitter only adds (up to twice the delay); ours is centred on it.
    ExponentialBuilder::default()
        .with_min_delay(initial)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_max_times(usize::try_from(retries).unwrap_or(usize::MAX))
        .build()
        .map(move |base| jitter(base.min(max)))
}

/// `base` scaled by a random factor in [0.75, 1.25].
fn jitter(base: Duration) -> Duration {
    let factor = rand::rng().random_range(0.75..=1.25);
    Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
}

/// `Retry-After` in seconds; HTTP-date values are ignored (the backoff applies instead).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    seconds(number(headers, RETRY_AFTER.as_str())?)
}

/// OpenAI's `retry-after-ms` when it holds a number, else [`retry_after`].
pub(crate) fn retry_after_or_ms(headers: &HeaderMap) -> Option<Duration> {
    match number(headers, "retry-after-ms") {
        Some(ms) => seconds(ms / 1000.0),
        None => retry_after(headers),
    }
}

/// Header `name` parsed as a number (NaN and infinities included: [`seconds`] bounds them).
fn number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok()
}

/// A peer's number of seconds as a wait: clamped before converting, so no value can
/// panic the conversion or wait more than an hour; NaN gives `None`.
fn seconds(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs.clamp(0.0, 3600.0)).ok()
}

/// reqwest's error with its causes, which hold the useful part (DNS, TLS, refused).
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// From the Pinecone client, where this parsing lived.
    #[test]
    fn retry_after_is_bounded() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3600)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("NaN"));
        assert_eq!(retry_after(&h), None);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    /// From the OpenAI embedder, where this parsing lived.
    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after_or_ms(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after_or_ms(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after_or_ms(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after_or_ms(&h), None);
        // Hostile values neither panic nor wait forever.
        h.insert("retry-after-ms", HeaderValue::from_static("1e300"));
        assert_eq!(retry_after_or_ms(&h), Some(Duration::from_secs(3600)));
        h.insert("retry-after-ms", HeaderValue::from_static("-5"));
        assert_eq!(retry_after_or_ms(&h), Some(Duration::ZERO));
        h.insert("retry-after-ms", HeaderValue::from_static("NaN"));
        assert_eq!(retry_after_or_ms(&h), None);
    }

    #[test]
    fn backoff_doubles_within_jitter_up_to_the_cap_then_ends() {
        let delays: Vec<Duration> =
            backoff(Duration::from_millis(200), Duration::from_secs(1), 5).collect();
        assert_eq!(delays.len(), 5);
        for (d, base_ms) in delays.iter().zip([200u64, 400, 800, 1000, 1000]) {
            let base = Duration::from_millis(base_ms);
            assert!(
                *d >= base.mul_f64(0.74) && *d <= base.mul_f64(1.26),
                "{d:?} for {base:?}"
            );
        }
        assert_eq!(
            backoff(Duration::from_millis(1), Duration::ZERO, 0).count(),
            0
        );
    }
}
