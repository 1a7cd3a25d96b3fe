//! Incremental ingestion: chunk every document, embed only chunks whose fingerprint the
//! store does not already hold, upsert them, then delete chunks that no longer exist.
//!
//! The fingerprint stored with a chunk is the sha256 of the embedder's model id and the
//! chunk's content hash, so switching models re-embeds everything while a re-run with
//! nothing changed embeds nothing. New chunks are written before stale ones are deleted,
//! so a search during an update never sees a knowledge base emptier than before or after.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::chunk::{Chunk, ChunkingConfig, Document, chunk_document, sha256_hex};
use crate::embed::{EmbedError, Embedder};
use crate::store::{StoreError, StoredChunk, VectorStore};

/// Chunks embedded and upserted per round trip: bounds memory and makes progress durable
/// in steps on large knowledge bases.
const BATCH: usize = 64;

/// What an ingestion run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Documents given.
    pub documents: usize,
    /// Chunks they make.
    pub chunks: usize,
    /// Chunks embedded and written (new or changed).
    pub embedded: usize,
    /// Chunks deleted (their document or section is gone).
    pub deleted: usize,
    /// Chunks already stored with the same fingerprint.
    pub unchanged: usize,
    /// sha256 over every chunk's id and fingerprint, in id order: equal exactly when the
    /// indexed content is (for a status field).
    pub content_hash: String,
}

/// Why ingestion stopped. Chunks written before the failure stay written; the next run
/// picks up where this one stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Two documents share an id.
    #[error("duplicate document id {0:?}")]
    DuplicateDocument(String),
    /// Two chunks share an id (document ids that collide after the `#` suffix).
    #[error("duplicate chunk id {0:?}")]
    DuplicateChunk(String),
    /// The embedder failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hash stored with a chunk: its content under a given model.
pub fn fingerprint(model_id: &str, chunk: &Chunk) -> String {
    sha256_hex(format!("{model_id}\n{}", chunk.hash).as_bytes())
}

/// Brings knowledge base `kb` in `store` in line with `documents`.
pub async fn ingest(
    kb: &str,
    documents: &[Document],
    chunking: &ChunkingConfig,
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
) -> Result<IngestReport, IngestError> {
    let mut doc_ids = HashSet::new();
    for d in documents {
        if !doc_ids.insert(d.id.as_str()) {
            return Err(IngestError::DuplicateDocument(d.id.clone()));
        }
    }
    let chunks: Vec<Chunk> = documents
        .iter()
        .flat_map(|d| chunk_document(d, chunking))
        .collect();
    let model_id = embedder.model_id();
    let mut wanted: HashMap<&str, String> = HashMap::with_capacity(chunks.len());
    for c in &chunks {
        if wanted.insert(&c.id, fingerprint(model_id, c)).is_some() {
            return Err(IngestError::DuplicateChunk(c.id.clone()));
        }
    }

    let stored = store.list_hashes(kb).await?;
    let stale: Vec<&Chunk> = chunks
        .iter()
        .filter(|c| stored.get(&c.id) != wanted.get(c.id.as_str()))
        .collect();
    let gone: Vec<String> = stored
        .keys()
        .filter(|id| !wanted.contains_key(id.as_str()))
        .cloned()
        .collect();

    for batch in stale.chunks(BATCH) {
        let texts: Vec<String> = batch.iter().map(|c| c.embedding_text()).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&refs).await?;
        if vectors.len() != batch.len() {
            return Err(EmbedError::BadResponse(format!(
                "{} vectors for {} texts",
                vectors.len(),
                batch.len()
            ))
            .into());
        }
        let rows: Vec<StoredChunk> = batch
            .iter()
            .zip(vectors)
            .map(|(c, embedding)| StoredChunk {
                chunk_id: c.id.clone(),
                doc_id: c.doc_id.clone(),
                title: c.title.clone(),
                text: c.text.clone(),
                hash: wanted.get(c.id.as_str()).cloned().unwrap_or_default(),
                embedding,
            })
            .collect();
        store.upsert(kb, &rows).await?;
    }
    store.delete(kb, &gone).await?;

    let mut ids: Vec<(&str, &String)> = wanted.iter().map(|(k, v)| (*k, v)).collect();
    ids.sort_unstable();
    let mut all = String::with_capacity(ids.len() * 100);
    for (id, fp) in ids {
        all.push_str(id);
        all.push(' ');
        all.push_str(fp);
        all.push('\n');
    }
    Ok(IngestReport {
        documents: documents.len(),
        chunks: chunks.len(),
        embedded: stale.len(),
        deleted: gone.len(),
        unchanged: chunks.len() - stale.len(),
        content_hash: sha256_hex(all.as_bytes()),
    })
}
