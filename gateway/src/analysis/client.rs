//! The HTTP side of an analysis: one Chat Completions POST per attempt, with a timeout,
//! retried with exponential backoff on 429, 5xx and transport errors (the request is
//! idempotent: nothing is stored until an answer passes).

use std::time::Duration;

use serde_json::Value;

/// How requests are timed and retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (the first included).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time up to `max_delay`.
    pub first_delay: Duration,
    /// Longest wait between two attempts (also caps a server's `Retry-After`).
    pub max_delay: Duration,
    /// Time allowed for one attempt (connect, send, answer).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

/// Why no answer came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Every attempt failed with a retryable status or transport error.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A status that retrying cannot fix (400, 401, 403, 404, …).
    #[error("HTTP {status}: {body}")]
    Refused {
        /// The status code.
        status: u16,
        /// The start of the error body.
        body: String,
    },
    /// The answer is not JSON.
    #[error("the answer is not JSON: {0}")]
    NotJson(String),
}

impl ClientError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Exhausted { .. } => "unavailable",
            ClientError::Refused { .. } => "refused",
            ClientError::NotJson(_) => "bad_response",
        }
    }
}

/// The request URL for a base URL (`…/v1` → `…/v1/chat/completions`).
pub fn completions_url(base_url: &str) -> String {
    format!("{}/chat/completions", base_url.trim_end_matches('/'))
}

/// How long to wait before attempt `n + 1` (after `n` failures), honouring a server's
/// `Retry-After` seconds within `max_delay`.
pub fn delay(policy: &RetryPolicy, failures: u32, retry_after: Option<u64>) -> Duration {
    if let Some(s) = retry_after {
        return Duration::from_secs(s).min(policy.max_delay);
    }
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    (policy.first_delay * factor).min(policy.max_delay)
}

/// Posts `body` to `url` with `api_key`, retrying per `policy`.
///
/// # Errors
/// See [`ClientError`].
pub async fn post(
    http: &reqwest::Client,
    policy: &RetryPolicy,
    url: &str,
    api_key: &str,
    body: &Value,
) -> Result<Value, ClientError> {
    let mut failures = 0;
    loop {
        let attempt = http
            .post(url)
            .bearer_auth(api_key)
            .timeout(policy.attempt_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        let (last, retry_after) = match attempt {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                match resp.bytes().await {
                    Ok(bytes) if status.is_success() => {
                        return serde_json::from_slice(&bytes)
                            .map_err(|e| ClientError::NotJson(e.to_string()));
                    }
                    Ok(bytes) => {
                        let text: String =
                            String::from_utf8_lossy(&bytes).chars().take(300).collect();
                        if status.as_u16() != 429 && !status.is_server_error() {
                            return Err(ClientError::Refused {
                                status: status.as_u16(),
                                body: text,
                            });
                        }
                        (format!("HTTP {}: {text}", status.as_u16()), retry_after)
                    }
                    Err(e) => (format!("reading the answer: {e}"), None),
                }
            }
            Err(e) => (format!("request failed: {e}"), None),
        };
        failures += 1;
        if failures >= policy.attempts {
            return Err(ClientError::Exhausted {
                attempts: failures,
                last,
            });
        }
        tracing::debug!(
            url,
            failures,
            error = last,
            "analysis request failed; retrying"
        );
        tokio::time::sleep(delay(policy, failures, retry_after)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(delay(&p, 1, None), Duration::from_millis(500));
        assert_eq!(delay(&p, 2, None), Duration::from_secs(1));
        assert_eq!(delay(&p, 3, None), Duration::from_secs(2));
        assert_eq!(delay(&p, 30, None), p.max_delay);
        assert_eq!(delay(&p, 1, Some(3)), Duration::from_secs(3));
        assert_eq!(delay(&p, 1, Some(3600)), p.max_delay);
    }

    #[test]
    fn url_joins_the_base() {
        assert_eq!(
            completions_url("http://h:1/v1/"),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            completions_url(switchboard_crds::DEFAULT_ANALYSIS_BASE_URL),
            "https://api.openai.com/v1/chat/completions"
        );
    }
}
