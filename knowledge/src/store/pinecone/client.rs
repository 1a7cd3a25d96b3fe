//! HTTP to Pinecone: the `Api-Key` and `X-Pinecone-API-Version` headers on every request,
//! a timeout per attempt, and retries with exponential backoff and jitter on 429, 5xx and
//! transport failures (waiting at least what `Retry-After` asks, within bounds). Every
//! request the store sends is idempotent (upsert by id, delete, reads; a repeated create
//! answers 409, which provisioning accepts), so retrying is safe.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};

use super::wire::error_message;
use crate::http::{backoff, error_chain, retry_after};
use crate::key::RotatingKey;
use crate::store::StoreError;

/// How requests are retried.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub timeout: Duration,
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// An answer that was not retried (or the last one when retries ran out).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body of a 2xx answer, or the error it stands for.
    pub(crate) fn ok(self) -> Result<Vec<u8>, StoreError> {
        if self.status.is_success() {
            Ok(self.body)
        } else {
            Err(self.error())
        }
    }

    /// The error a non-2xx answer stands for, with the service's message.
    pub(crate) fn error(&self) -> StoreError {
        let message = error_message(&self.body);
        let message = match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                format!("the Pinecone API key was refused ({message})")
            }
            _ => message,
        };
        StoreError::Remote {
            status: self.status.as_u16(),
            message,
        }
    }
}

/// The HTTP side of the store.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    api_key: RotatingKey,
    api_version: String,
    retry: RetryPolicy,
}

impl Http {
    pub(crate) fn new(
        client: reqwest::Client,
        api_key: RotatingKey,
        api_version: String,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            client,
            api_key,
            api_version,
            retry,
        }
    }

    /// Sends `method url` with an optional JSON body, retrying what is worth retrying.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<Answer, StoreError> {
        let mut delays = backoff(
            self.retry.initial_backoff,
            self.retry.max_backoff,
            self.retry.max_retries,
        );
        let mut attempt = 1u32;
        loop {
            let (outcome, wait) = self.attempt(method.clone(), url, body).await;
            let retryable = match &outcome {
                Ok(a) => a.status == StatusCode::TOO_MANY_REQUESTS || a.status.is_server_error(),
                Err(_) => true,
            };
            if !retryable {
                return outcome;
            }
            let Some(backoff) = delays.next() else {
                return outcome;
            };
            let delay = wait
                .map_or(backoff, |w| w.max(backoff))
                .min(self.retry.max_backoff);
            match &outcome {
                Ok(a) => {
                    tracing::warn!(status = a.status.as_u16(), %method, url, attempt, ?delay, "Pinecone request failed, retrying")
                }
                Err(e) => {
                    tracing::warn!(error = %e, %method, url, attempt, ?delay, "Pinecone request failed, retrying")
                }
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
    ) -> (Result<Answer, StoreError>, Option<Duration>) {
        let mut request = self
            .client
            .request(method, url)
            .timeout(self.retry.timeout)
            .header("Api-Key", self.api_key.current().as_str())
            .header("X-Pinecone-API-Version", &self.api_version);
        if let Some(b) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_vec());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return (Err(StoreError::Transport(error_chain(&e))), None),
        };
        let status = response.status();
        let wait = retry_after(response.headers());
        match response.bytes().await {
            Ok(b) => (
                Ok(Answer {
                    status,
                    body: b.to_vec(),
                }),
                wait,
            ),
            Err(e) => (Err(StoreError::Transport(error_chain(&e))), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_say_so() {
        let a = Answer {
            status: StatusCode::UNAUTHORIZED,
            body:
                br#"{"error":{"code":"UNAUTHENTICATED","message":"Invalid API Key"},"status":401}"#
                    .to_vec(),
        };
        let e = a.error().to_string();
        assert!(
            e.contains("401") && e.contains("API key was refused") && e.contains("Invalid API Key"),
            "{e}"
        );
    }
}
