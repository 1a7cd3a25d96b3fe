//! Switchboard's knowledge engine, shared by the operator (indexing) and the gateway
//! (lookups mid-call): documents are cut into chunks ([`chunk`]), turned into vectors by
//! an [`Embedder`] (local MiniLM run in-process on `switchboard-encoder`, or any
//! OpenAI-compatible endpoint), kept in a [`VectorStore`] (in-process exact search
//! persisted in SQLite, pgvector, or Pinecone) and kept in sync by [`ingest()`], which
//! embeds only what changed.
//!
//! Configuration here is plain Rust structs; mapping the `KnowledgeBase` resource onto
//! them is the operator's and gateway's job.

pub mod chunk;
pub mod embed;
mod http;
pub mod ingest;
pub mod key;
pub mod store;

pub use chunk::{Chunk, ChunkingConfig, Document, chunk_document};
pub use embed::{EmbedError, Embedder, LocalMiniLm, MiniLmOptions, OpenAiConfig, OpenAiEmbedder};
pub use ingest::{IngestError, IngestReport, fingerprint, ingest};
pub use key::RotatingKey;
pub use store::{EmbeddedStore, Hit, PgVectorStore, StoreError, StoredChunk, VectorStore};
