//! Embeddings from any OpenAI-compatible endpoint: `POST {base_url}/embeddings` with
//! `{"model", "input": [...], "dimensions"?, "encoding_format": "float"}`.
//!
//! Inputs go in batches; 429 and 5xx answers and transport failures are retried with
//! exponential backoff and jitter, waiting at least what `Retry-After` (or OpenAI's
//! `retry-after-ms`) asks; every attempt has a timeout; every vector's length is checked.
//!
//! The client is reqwest with rustls and no bundled crypto provider: a process must
//! install one (`rustls::crypto::ring::default_provider().install_default()`) before the
//! first HTTPS request.

use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde::Deserialize;

use super::{EmbedError, Embedder};
use crate::http::{backoff, error_chain, retry_after_or_ms};
use crate::key::RotatingKey;

/// Settings of an [`OpenAiEmbedder`].
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// API root, e.g. `https://api.openai.com/v1` (no trailing `/embeddings`).
    pub base_url: String,
    /// Bearer token; `None` for endpoints that need none. Read per request: a key
    /// replaced through a clone of it ([`RotatingKey::set`]) is used from the next one on.
    pub api_key: Option<RotatingKey>,
    /// Model name, e.g. `text-embedding-3-small`.
    pub model: String,
    /// Requested vector length. Sent as `dimensions` when set; when unset, the model's
    /// native length must be known (the text-embedding-3 and ada-002 models are).
    pub dimensions: Option<usize>,
    /// Texts per request.
    pub batch_size: usize,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Retries after the first attempt, for 429, 5xx and transport errors.
    pub max_retries: u32,
    /// First backoff delay; doubles each retry (with jitter), capped at `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest wait between attempts, including a server's `Retry-After`.
    pub max_backoff: Duration,
}

impl OpenAiConfig {
    /// Defaults for `model` at `base_url`: batches of 96, 20 s timeout, 4 retries from
    /// 250 ms up to 20 s.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            dimensions: None,
            batch_size: 96,
            timeout: Duration::from_secs(20),
            max_retries: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(20),
        }
    }
}

/// Native output length of well-known OpenAI embedding models.
fn native_dimensions(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        _ => None,
    }
}

/// The HTTP embedder.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    config: OpenAiConfig,
    client: reqwest::Client,
    url: String,
    dimensions: usize,
    model_id: String,
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

/// What one attempt came to.
enum Attempt {
    Done(Vec<Vec<f32>>),
    Retry {
        error: EmbedError,
        wait: Option<Duration>,
    },
    Fail(EmbedError),
}

impl OpenAiEmbedder {
    /// An embedder with its own HTTP client.
    /// Fails (rather than letting reqwest panic) when no rustls crypto provider is
    /// installed.
    pub fn new(config: OpenAiConfig) -> Result<Self, EmbedError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(EmbedError::Config(
                "no rustls crypto provider installed (call \
                 rustls::crypto::ring::default_provider().install_default() at start-up)"
                    .into(),
            ));
        }
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| EmbedError::Config(format!("HTTP client: {e}")))?;
        Self::with_client(config, client)
    }

    /// An embedder sharing `client` (the attempt timeout is applied per request).
    pub fn with_client(config: OpenAiConfig, client: reqwest::Client) -> Result<Self, EmbedError> {
        let dimensions = config
            .dimensions
            .or_else(|| native_dimensions(&config.model))
            .ok_or_else(|| {
                EmbedError::Config(format!(
                    "dimensions unknown for model {:?}: set them",
                    config.model
                ))
            })?;
        if dimensions == 0 {
            return Err(EmbedError::Config("dimensions must be positive".into()));
        }
        if config.model.is_empty() {
            return Err(EmbedError::Config("model is empty".into()));
        }
        let url = format!("{}/embeddings", config.base_url.trim_end_matches('/'));
        reqwest::Url::parse(&url)
            .map_err(|e| EmbedError::Config(format!("base URL {:?}: {e}", config.base_url)))?;
        let model_id = format!("openai:{}:{}:{dimensions}", url, config.model);
        Ok(Self {
            config,
            client,
            url,
            dimensions,
            model_id,
        })
    }

    async fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut body = serde_json::json!({
            "model": self.config.model,
            "input": texts,
            "encoding_format": "float",
        });
        if let Some(d) = self.config.dimensions {
            body["dimensions"] = d.into();
        }
        let body = serde_json::to_vec(&body)
            .map_err(|e| EmbedError::Config(format!("request body: {e}")))?;
        let mut delays = backoff(
            self.config.initial_backoff,
            self.config.max_backoff,
            self.config.max_retries,
        );
        let mut attempt = 1u32;
        loop {
            let (error, wait) = match self.attempt(&body, texts.len()).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { error, wait } => (error, wait),
            };
            let Some(backoff) = delays.next() else {
                return Err(error);
            };
            let delay = wait
                .map_or(backoff, |w| w.max(backoff))
                .min(self.config.max_backoff);
            tracing::warn!(%error, attempt, ?delay, "embedding request failed, retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, body: &[u8], expected: usize) -> Attempt {
        let mut request = self
            .client
            .post(&self.url)
            .timeout(self.config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.current().as_str());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    error: EmbedError::Transport(error_chain(&e)),
                    wait: None,
                };
            }
        };
        let status = response.status();
        let wait = retry_after_or_ms(response.headers());
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    error: EmbedError::Transport(error_chain(&e)),
                    wait: None,
                };
            }
        };
        if !status.is_success() {
            let error = EmbedError::Http {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            };
            return if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                Attempt::Retry { error, wait }
            } else {
                Attempt::Fail(error)
            };
        }
        match self.parse(&bytes, expected) {
            Ok(v) => Attempt::Done(v),
            Err(e) => Attempt::Fail(e),
        }
    }

    fn parse(&self, bytes: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let parsed: EmbeddingsResponse =
            serde_json::from_slice(bytes).map_err(|e| EmbedError::BadResponse(e.to_string()))?;
        if parsed.data.len() != expected {
            return Err(EmbedError::BadResponse(format!(
                "{} embeddings for {expected} inputs",
                parsed.data.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
        for (position, item) in parsed.data.into_iter().enumerate() {
            let index = item.index.unwrap_or(position);
            if item.embedding.len() != self.dimensions {
                return Err(EmbedError::Dimensions {
                    expected: self.dimensions,
                    got: item.embedding.len(),
                });
            }
            match out.get_mut(index) {
                Some(slot @ None) => *slot = Some(item.embedding),
                _ => {
                    return Err(EmbedError::BadResponse(format!(
                        "embedding index {index} out of range or repeated"
                    )));
                }
            }
        }
        out.into_iter()
            .map(|v| v.ok_or_else(|| EmbedError::BadResponse("missing embedding index".into())))
            .collect()
    }
}

impl Embedder for OpenAiEmbedder {
    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len());
            for batch in texts.chunks(self.config.batch_size.max(1)) {
                out.extend(self.embed_batch(batch).await?);
            }
            Ok(out)
        })
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_must_be_known() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let c = OpenAiConfig::new("http://127.0.0.1:1/v1", "my-model");
        assert!(matches!(
            OpenAiEmbedder::with_client(c.clone(), reqwest::Client::new()),
            Err(EmbedError::Config(_))
        ));
        let e = OpenAiEmbedder::with_client(
            OpenAiConfig {
                dimensions: Some(8),
                ..c
            },
            reqwest::Client::new(),
        )
        .unwrap();
        assert_eq!(e.dimensions(), 8);
        let small = OpenAiConfig::new("http://x/v1/", "text-embedding-3-small");
        let e = OpenAiEmbedder::with_client(small, reqwest::Client::new()).unwrap();
        assert_eq!(e.dimensions(), 1536);
        assert_eq!(e.url, "http://x/v1/embeddings");
    }
}
