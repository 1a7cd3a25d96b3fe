//! Where embedded chunks live and are searched: one trait, an in-process exact store
//! persisted in SQLite, a pgvector store and a Pinecone store.

mod embedded;
mod pgvector;
pub mod pinecone;
mod topk;

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use embedded::EmbeddedStore;
pub use pgvector::{DEFAULT_EF_SEARCH, PgVectorStore};
pub use pinecone::{PineconeConfig, PineconeStore};
pub use topk::{Scored, top_k};

/// A chunk with its vector, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredChunk {
    /// Stable chunk id (see [`crate::Chunk::id`]).
    pub chunk_id: String,
    /// The document it belongs to.
    pub doc_id: String,
    /// The document's title.
    pub title: String,
    /// The passage.
    pub text: String,
    /// Fingerprint compared by ingestion to decide what to re-embed.
    pub hash: String,
    /// The vector (any scale: stores compare by cosine).
    pub embedding: Vec<f32>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Stable chunk id: the grounding trail's source id.
    pub chunk_id: String,
    /// The document it comes from.
    pub doc_id: String,
    /// The document's title.
    pub title: String,
    /// The passage.
    pub text: String,
    /// Cosine similarity to the query, in [-1, 1].
    pub score: f32,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A vector's length does not match the store's.
    #[error("vector has {got} dimensions, the store holds {expected}")]
    Dimensions {
        /// The store's dimension.
        expected: usize,
        /// The offending vector's.
        got: usize,
    },
    /// The store's settings are unusable (e.g. an invalid schema name).
    #[error("configuration: {0}")]
    Config(String),
    /// A stored row could not be decoded.
    #[error("corrupt row {chunk_id}: {reason}")]
    Corrupt {
        /// The row's chunk id.
        chunk_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A remote vector service (Pinecone) answered with an error status, after any
    /// retries; `message` is the service's own explanation.
    #[error("vector service answered {status}: {message}")]
    Remote {
        /// HTTP status code.
        status: u16,
        /// The error message from the answer's body.
        message: String,
    },
    /// A remote vector service could not be reached, timed out, or answered something
    /// that is not its protocol (after any retries).
    #[error("vector service: {0}")]
    Transport(String),
}

/// A vector store partitioned by knowledge base id (`kb`). Object-safe.
pub trait VectorStore: Send + Sync {
    /// Inserts or replaces chunks by `(kb, chunk_id)`.
    fn upsert<'a>(
        &'a self,
        kb: &'a str,
        chunks: &'a [StoredChunk],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes chunks by id; unknown ids are ignored.
    fn delete<'a>(
        &'a self,
        kb: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The `top_k` chunks of `kb` most similar to `query` with a score of at least
    /// `min_score`, best first.
    fn search<'a>(
        &'a self,
        kb: &'a str,
        query: &'a [f32],
        top_k: usize,
        min_score: f32,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>>;

    /// Every chunk of `kb`: id → stored hash.
    fn list_hashes<'a>(
        &'a self,
        kb: &'a str,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>>;
}
