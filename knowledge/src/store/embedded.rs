//! The embedded store: exact cosine search in memory, persisted in SQLite so a laptop
//! gateway keeps its index across restarts.
//!
//! Each knowledge base is one contiguous row-major matrix of unit vectors, so a search is
//! a linear scan of dot products plus a partial sort — 10k × 384 floats is 15 MB and
//! takes about a millisecond. Rows are removed by swapping the last row in.
//!
//! SQLite table `knowledge_chunks(kb, chunk_id, doc_id, title, text, hash, embedding)`
//! with the vector as little-endian f32 bytes; the database is written before memory so a
//! failed write leaves both as they were.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures_util::future::BoxFuture;
use sqlx::{Row, SqlitePool};

use super::topk::top_k;
use super::{Hit, StoreError, StoredChunk, VectorStore};
use crate::embed::normalize;

struct Entry {
    chunk_id: String,
    doc_id: String,
    title: String,
    text: String,
    hash: String,
}

#[derive(Default)]
struct KbIndex {
    dim: usize,
    entries: Vec<Entry>,
    matrix: Vec<f32>,
    rows: HashMap<String, usize>,
}

impl KbIndex {
    fn check_dim(&self, got: usize) -> Result<(), StoreError> {
        if self.entries.is_empty() || self.dim == got {
            Ok(())
        } else {
            Err(StoreError::Dimensions {
                expected: self.dim,
                got,
            })
        }
    }

    /// `vector` must already be unit length.
    fn put(&mut self, entry: Entry, vector: &[f32]) {
        if self.entries.is_empty() {
            self.dim = vector.len();
        }
        let dim = self.dim;
        match self.rows.get(&entry.chunk_id) {
            Some(&row) => {
                self.matrix[row * dim..(row + 1) * dim].copy_from_slice(vector);
                self.entries[row] = entry;
            }
            None => {
                self.rows.insert(entry.chunk_id.clone(), self.entries.len());
                self.entries.push(entry);
                self.matrix.extend_from_slice(vector);
            }
        }
    }

    fn remove(&mut self, chunk_id: &str) {
        let Some(row) = self.rows.remove(chunk_id) else {
            return;
        };
        let dim = self.dim;
        let last = self.entries.len() - 1;
        if row != last {
            self.matrix
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            self.rows.insert(self.entries[last].chunk_id.clone(), row);
        }
        self.matrix.truncate(last * dim);
        self.entries.swap_remove(row);
    }
}

/// In-process exact vector store, optionally persisted in SQLite.
#[derive(Default)]
pub struct EmbeddedStore {
    kbs: RwLock<HashMap<String, KbIndex>>,
    db: Option<SqlitePool>,
    /// Serialises writers so the database and memory apply changes in the same order.
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("persistent", &self.db.is_some())
            .finish()
    }
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS knowledge_chunks (
    kb TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    hash TEXT NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (kb, chunk_id)
)";

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

impl EmbeddedStore {
    /// A store that lives in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A store persisted in `pool`'s database: creates the table if needed and loads
    /// every stored chunk.
    pub async fn open(pool: SqlitePool) -> Result<Self, StoreError> {
        sqlx::query(CREATE).execute(&pool).await?;
        let rows = sqlx::query(
            "SELECT kb, chunk_id, doc_id, title, text, hash, embedding FROM knowledge_chunks",
        )
        .fetch_all(&pool)
        .await?;
        let mut kbs: HashMap<String, KbIndex> = HashMap::new();
        for row in rows {
            let kb: String = row.try_get("kb")?;
            let chunk_id: String = row.try_get("chunk_id")?;
            let blob: Vec<u8> = row.try_get("embedding")?;
            let vector = from_bytes(&blob).ok_or_else(|| StoreError::Corrupt {
                chunk_id: chunk_id.clone(),
                reason: format!("embedding of {} bytes", blob.len()),
            })?;
            let index = kbs.entry(kb).or_default();
            index
                .check_dim(vector.len())
                .map_err(|e| StoreError::Corrupt {
                    chunk_id: chunk_id.clone(),
                    reason: e.to_string(),
                })?;
            index.put(
                Entry {
                    chunk_id,
                    doc_id: row.try_get("doc_id")?,
                    title: row.try_get("title")?,
                    text: row.try_get("text")?,
                    hash: row.try_get("hash")?,
                },
                &vector,
            );
        }
        Ok(Self {
            kbs: RwLock::new(kbs),
            db: Some(pool),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Number of chunks held for `kb`.
    pub fn len(&self, kb: &str) -> usize {
        self.read().get(kb).map_or(0, |i| i.entries.len())
    }

    /// Whether `kb` holds no chunk.
    pub fn is_empty(&self, kb: &str) -> bool {
        self.len(kb) == 0
    }

    /// Searches without the async wrapper (the scan is CPU-only and short).
    pub fn search_now(&self, kb: &str, query: &[f32], k: usize, min_score: f32) -> Vec<Hit> {
        let kbs = self.read();
        let Some(index) = kbs.get(kb) else {
            return Vec::new();
        };
        let mut q = query.to_vec();
        normalize(&mut q);
        top_k(&index.matrix, index.dim, &q, k, min_score)
            .into_iter()
            .map(|s| {
                let e = &index.entries[s.row];
                Hit {
                    chunk_id: e.chunk_id.clone(),
                    doc_id: e.doc_id.clone(),
                    title: e.title.clone(),
                    text: e.text.clone(),
                    score: s.score,
                }
            })
            .collect()
    }

    // A panic while holding the lock cannot leave an index half-updated in a way later
    // readers would misread (each mutation is a few slice copies), so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, KbIndex>> {
        self.kbs.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, KbIndex>> {
        self.kbs.write().unwrap_or_else(|e| e.into_inner())
    }

    async fn upsert_impl(&self, kb: &str, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        let Some(first) = chunks.first() else {
            return Ok(());
        };
        let _guard = self.writes.lock().await;
        let dim = first.embedding.len();
        if let Some(index) = self.read().get(kb) {
            index.check_dim(dim)?;
        }
        let mut unit = Vec::with_capacity(chunks.len());
        for c in chunks {
            if c.embedding.len() != dim || dim == 0 {
                return Err(StoreError::Dimensions {
                    expected: dim,
                    got: c.embedding.len(),
                });
            }
            let mut v = c.embedding.clone();
            normalize(&mut v);
            unit.push(v);
        }
        if let Some(db) = &self.db {
            let mut tx = db.begin().await?;
            for (c, v) in chunks.iter().zip(&unit) {
                sqlx::query(
                    "INSERT INTO knowledge_chunks (kb, chunk_id, doc_id, title, text, hash, embedding)
                     VALUES (?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (kb, chunk_id) DO UPDATE SET doc_id = excluded.doc_id,
                       title = excluded.title, text = excluded.text, hash = excluded.hash,
                       embedding = excluded.embedding",
                )
                .bind(kb)
                .bind(&c.chunk_id)
                .bind(&c.doc_id)
                .bind(&c.title)
                .bind(&c.text)
                .bind(&c.hash)
                .bind(to_bytes(v))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        let mut kbs = self.write();
        let index = kbs.entry(kb.to_owned()).or_default();
        for (c, v) in chunks.iter().zip(&unit) {
            index.put(
                Entry {
                    chunk_id: c.chunk_id.clone(),
                    doc_id: c.doc_id.clone(),
                    title: c.title.clone(),
                    text: c.text.clone(),
                    hash: c.hash.clone(),
                },
                v,
            );
        }
        Ok(())
    }

    async fn delete_impl(&self, kb: &str, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _guard = self.writes.lock().await;
        if let Some(db) = &self.db {
            let mut tx = db.begin().await?;
            for id in ids {
                sqlx::query("DELETE FROM knowledge_chunks WHERE kb = ? AND chunk_id = ?")
                    .bind(kb)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        let mut kbs = self.write();
        if let Some(index) = kbs.get_mut(kb) {
            for id in ids {
                index.remove(id);
            }
            if index.entries.is_empty() {
                kbs.remove(kb);
            }
        }
        Ok(())
    }
}

impl VectorStore for EmbeddedStore {
    fn upsert<'a>(
        &'a self,
        kb: &'a str,
        chunks: &'a [StoredChunk],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.upsert_impl(kb, chunks))
    }

    fn delete<'a>(
        &'a self,
        kb: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.delete_impl(kb, ids))
    }

    fn search<'a>(
        &'a self,
        kb: &'a str,
        query: &'a [f32],
        top_k: usize,
        min_score: f32,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>> {
        Box::pin(async move {
            if let Some(index) = self.read().get(kb) {
                index.check_dim(query.len())?;
            }
            Ok(self.search_now(kb, query, top_k, min_score))
        })
    }

    fn list_hashes<'a>(
        &'a self,
        kb: &'a str,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .read()
                .get(kb)
                .map(|i| {
                    i.entries
                        .iter()
                        .map(|e| (e.chunk_id.clone(), e.hash.clone()))
                        .collect()
                })
                .unwrap_or_default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str, v: Vec<f32>) -> StoredChunk {
        StoredChunk {
            chunk_id: id.into(),
            doc_id: "d".into(),
            title: "t".into(),
            text: format!("text {id}"),
            hash: format!("h-{id}"),
            embedding: v,
        }
    }

    #[tokio::test]
    async fn upsert_replace_delete_search() {
        let s = EmbeddedStore::in_memory();
        s.upsert(
            "kb",
            &[
                chunk("a", vec![1.0, 0.0]),
                chunk("b", vec![0.0, 2.0]),
                chunk("c", vec![1.0, 1.0]),
            ],
        )
        .await
        .unwrap();
        let hits = s.search("kb", &[1.0, 0.0], 2, -1.0).await.unwrap();
        assert_eq!(hits[0].chunk_id, "a");
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        assert_eq!(hits[1].chunk_id, "c");

        s.upsert("kb", &[chunk("a", vec![-1.0, 0.0])])
            .await
            .unwrap();
        assert_eq!(s.len("kb"), 3);
        let hits = s.search("kb", &[1.0, 0.0], 1, -1.0).await.unwrap();
        assert_eq!(hits[0].chunk_id, "c");

        s.delete("kb", &["c".into(), "zz".into()]).await.unwrap();
        let ids: Vec<String> = s
            .search("kb", &[0.0, 1.0], 10, -1.0)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.chunk_id)
            .collect();
        assert_eq!(ids, vec!["b", "a"]);
        assert!(
            s.search("other", &[0.0, 1.0], 10, -1.0)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            s.upsert("kb", &[chunk("x", vec![1.0, 0.0, 0.0])]).await,
            Err(StoreError::Dimensions {
                expected: 2,
                got: 3
            })
        ));
    }

    #[test]
    fn swap_remove_keeps_rows_consistent() {
        let mut index = KbIndex::default();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let e = Entry {
                chunk_id: (*id).into(),
                doc_id: String::new(),
                title: String::new(),
                text: String::new(),
                hash: String::new(),
            };
            index.put(e, &[i as f32, 0.0]);
        }
        index.remove("a");
        index.remove("c");
        for (id, &row) in &index.rows {
            assert_eq!(&index.entries[row].chunk_id, id);
        }
        let b = index.rows["b"];
        let d = index.rows["d"];
        assert_eq!(index.matrix[b * 2], 1.0);
        assert_eq!(index.matrix[d * 2], 3.0);
        assert_eq!(index.matrix.len(), 4);
    }
}
