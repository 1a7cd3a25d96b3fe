//! Turning text into vectors: one trait, a local in-process model and an HTTP client.

mod minilm;
mod openai;

use futures_util::future::BoxFuture;

pub use minilm::{LocalMiniLm, MiniLmOptions};
pub use openai::{OpenAiConfig, OpenAiEmbedder};

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model directory is missing a file or holds something unreadable.
    #[error("loading the model: {0}")]
    Load(String),
    /// Tokenising the input failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The forward pass failed.
    #[error("inference: {0}")]
    Inference(String),
    /// The embedder's settings are unusable (e.g. unknown dimensions for a model).
    #[error("configuration: {0}")]
    Config(String),
    /// The endpoint answered with an error status (after any retries).
    #[error("embedding endpoint answered {status}: {body}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// Start of the response body, for the operator's condition message.
        body: String,
    },
    /// The request could not be sent or its answer not read (after any retries).
    #[error("embedding request failed: {0}")]
    Transport(String),
    /// The endpoint's answer does not have the expected shape.
    #[error("unexpected embedding response: {0}")]
    BadResponse(String),
    /// A vector has another length than the embedder promises.
    #[error("embedding has {got} dimensions, expected {expected}")]
    Dimensions {
        /// What [`Embedder::dimensions`] says.
        expected: usize,
        /// What came back.
        got: usize,
    },
}

/// Turns texts into vectors of [`Embedder::dimensions`] floats, one per text, in order.
///
/// Object-safe so the operator and the gateway can pick an implementation from config
/// (`Arc<dyn Embedder>`).
pub trait Embedder: Send + Sync {
    /// Embeds a batch. An empty batch gives an empty result without any work.
    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;

    /// Length of every vector this embedder returns.
    fn dimensions(&self) -> usize;

    /// Identifies the model and its settings (e.g. `local:all-MiniLM-L6-v2`): vectors from
    /// embedders with different ids are not comparable, so ingestion re-embeds everything
    /// when it changes.
    fn model_id(&self) -> &str;
}

/// Scales `v` to unit length in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v {
            *x /= norm;
        }
    }
}
