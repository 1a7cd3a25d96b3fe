//! The pgvector store: one table per tenant schema,
//! `{schema}.knowledge_chunks(kb, chunk_id, doc_id, title, text, hash, embedding vector(n))`
//! keyed by `(kb, chunk_id)` (a tenant's knowledge bases share the table), with an HNSW
//! index on cosine distance.
//!
//! Queries are built at run time (no sqlx macros); vectors travel as pgvector's text form
//! `[x,y,…]` cast with `::vector`. The extension may live in any schema (it is created in
//! `public` when missing), so its type, operator and operator class are always named with
//! that schema: the pool's `search_path` may hold only the tenant's schema.
//!
//! Searches run in a transaction that sets `hnsw.ef_search` (the candidate list size;
//! pgvector's default of 40 misses true neighbours on high-dimensional data) and, on
//! pgvector ≥ 0.8, `hnsw.iterative_scan`, so the `kb` filter cannot starve the result
//! when several knowledge bases share the index.

use std::collections::HashMap;
use std::fmt::Write as _;

use futures_util::future::BoxFuture;
use pg_escape::quote_identifier;
// Every dynamic statement below interpolates only identifiers passed through
// `quote_identifier`, the extension's schema (read from the catalog, quoted) and integers.
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::{Hit, StoreError, StoredChunk, VectorStore};

/// `hnsw.ef_search` used by searches unless changed with
/// [`PgVectorStore::with_ef_search`].
///
/// Measured recall@5 against exact search (tests/pgvector.rs, 384 dimensions, index
/// built with pgvector's defaults m = 16, ef_construction = 64): on clustered vectors at
/// 100k rows ef 40 already finds 5 of 5 (p50 4 ms) and ef 100 costs 11 ms; on uniform
/// random vectors — where all distances are nearly equal and no affordable setting helps —
/// recall@5 is 0.05 at ef 40 and 0.10 at ef 100 (100k rows), 0.40 and 0.62 at 10k. 64
/// keeps headroom over pgvector's 40 for less clustered data while a 100k-row search
/// stays within the lookup budget left after the query embedding (about 7 ms).
pub const DEFAULT_EF_SEARCH: u32 = 64;

/// The table [`PgVectorStore::provision`] uses, shared by the schema's knowledge bases.
const DEFAULT_TABLE: &str = "knowledge_chunks";
/// The HNSW index name of [`DEFAULT_TABLE`] (kept from before per-table names).
const LEGACY_INDEX: &str = "knowledge_chunks_embedding_hnsw";

/// Rows per INSERT statement when upserting.
const UPSERT_BATCH: usize = 500;

/// A pgvector-backed store inside one schema.
#[derive(Debug, Clone)]
pub struct PgVectorStore {
    pool: PgPool,
    dimensions: usize,
    ef_search: u32,
    iterative_scan: bool,
    /// `schema.knowledge_chunks`, the schema quoted when it needs to be.
    table: String,
    /// The pgvector type, schema-qualified (quoted as needed), e.g. `public.vector`.
    vector_type: String,
    /// The cosine distance operator, e.g. `OPERATOR(public.<=>)`.
    cosine_op: String,
}

/// pgvector's text form of `v`. Rust's shortest round-trip formatting keeps every bit.
fn vector_literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 11 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{x}");
    }
    s.push(']');
    s
}

impl PgVectorStore {
    /// Connects the store to `schema` for vectors of `dimensions` floats, creating the
    /// extension (in `public` if absent), schema, table and HNSW index when missing.
    /// Fails with [`StoreError::Dimensions`] if the table exists with another dimension.
    pub async fn provision(
        pool: PgPool,
        schema: &str,
        dimensions: usize,
    ) -> Result<Self, StoreError> {
        Self::provision_table(pool, schema, DEFAULT_TABLE, dimensions).await
    }

    /// [`PgVectorStore::provision`] with the table named `table` (its index
    /// `{table}_hnsw`): one table per knowledge base ([`PgVectorStore::kb_table`]) lets knowledge bases
    /// of one schema use embedders of different dimensions and be dropped one by one.
    pub async fn provision_table(
        pool: PgPool,
        schema: &str,
        table: &str,
        dimensions: usize,
    ) -> Result<Self, StoreError> {
        check_names(schema, table, dimensions)?;
        ensure_extension(&pool).await?;
        let store = Self::open_table(pool, schema, table, dimensions).await?;
        let schema_q = quote_identifier(schema);
        let table_is_default = table == DEFAULT_TABLE;
        let index = format!("{table}_hnsw");
        let ext = store
            .vector_type
            .strip_suffix(".vector")
            .unwrap_or("public")
            .to_string();

        // Concurrent provisioning of one schema (two replicas starting) races on the
        // catalog; a transaction-scoped advisory lock on the schema name serialises it.
        let mut tx = store.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('switchboard.knowledge.' || $1))")
            .bind(schema)
            .execute(&mut *tx)
            .await?;
        // Only when missing: `CREATE SCHEMA IF NOT EXISTS` needs CREATE on the database
        // even when the schema exists, which a tenant's own role does not have.
        let schema_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut *tx)
                .await?;
        if !schema_exists {
            sqlx::query(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema_q}"
            )))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                kb TEXT NOT NULL,
                chunk_id TEXT NOT NULL,
                doc_id TEXT NOT NULL,
                title TEXT NOT NULL,
                text TEXT NOT NULL,
                hash TEXT NOT NULL,
                embedding {vt}({dimensions}) NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (kb, chunk_id)
            )",
            table = store.table,
            vt = store.vector_type,
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE INDEX IF NOT EXISTS {index} ON {table}
             USING hnsw (embedding {ext}.vector_cosine_ops)",
            index = if table_is_default {
                LEGACY_INDEX.to_string()
            } else {
                index
            },
            table = store.table,
        )))
        .execute(&mut *tx)
        .await?;
        let existing: i32 = sqlx::query_scalar(
            "SELECT a.atttypmod FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1) AND a.attname = 'embedding'",
        )
        .bind(&store.table)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        if usize::try_from(existing).ok() != Some(dimensions) {
            return Err(StoreError::Dimensions {
                expected: usize::try_from(existing).unwrap_or(0),
                got: dimensions,
            });
        }
        Ok(store)
    }

    /// A store on table `table` of `schema` as it exists, without any DDL (for readers
    /// whose role may not create anything, e.g. a tenant's gateway searching what the
    /// operator indexed). Searches fail until the table exists.
    pub async fn open_table(
        pool: PgPool,
        schema: &str,
        table: &str,
        dimensions: usize,
    ) -> Result<Self, StoreError> {
        check_names(schema, table, dimensions)?;
        let ext_schema: String = sqlx::query_scalar(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
             WHERE e.extname = 'vector'",
        )
        .fetch_optional(&pool)
        .await?
        .ok_or_else(|| StoreError::Config("the vector extension is not installed".into()))?;
        let version: String =
            sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                .fetch_one(&pool)
                .await?;
        let ext = quote_identifier(&ext_schema);
        Ok(Self {
            pool,
            dimensions,
            ef_search: DEFAULT_EF_SEARCH,
            iterative_scan: supports_iterative_scan(&version),
            table: format!("{}.{table}", quote_identifier(schema)),
            vector_type: format!("{ext}.vector"),
            cosine_op: format!("OPERATOR({ext}.<=>)"),
        })
    }

    /// The table of knowledge base `kb` for [`PgVectorStore::provision_table`]: `kb_`
    /// and the name with `-` as `_` when the name is short and made of lowercase letters,
    /// digits and `-` (Kubernetes names mostly are); otherwise a cleaned prefix and a
    /// hash of the whole name, so distinct names never share a table.
    pub fn kb_table(kb: &str) -> String {
        let plain = !kb.is_empty()
            && kb.len() <= 40
            && kb
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if plain {
            return format!("kb_{}", kb.replace('-', "_"));
        }
        let clean: String = kb
            .chars()
            .take(40)
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let hash = crate::chunk::sha256_hex(kb.as_bytes());
        format!("kb_{clean}_{}", &hash[..12])
    }

    /// Uses `ef_search` for searches (higher: better recall, slower).
    pub fn with_ef_search(mut self, ef_search: u32) -> Self {
        self.ef_search = ef_search.clamp(1, 1000);
        self
    }

    /// The dimension of the table's vectors.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Removes every chunk of `kb` (a deleted knowledge base).
    pub async fn delete_kb(&self, kb: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE kb = $1",
            self.table
        )))
        .bind(kb)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Drops the table and its index (a tenant's Delete policy); the schema stays.
    pub async fn drop_table(&self) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            self.table
        )))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn check(&self, v: &[f32]) -> Result<(), StoreError> {
        if v.len() == self.dimensions {
            Ok(())
        } else {
            Err(StoreError::Dimensions {
                expected: self.dimensions,
                got: v.len(),
            })
        }
    }

    async fn upsert_impl(&self, kb: &str, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        for c in chunks {
            self.check(&c.embedding)?;
        }
        let sql = format!(
            "INSERT INTO {table} (kb, chunk_id, doc_id, title, text, hash, embedding)
             SELECT $1, c, d, t, x, h, e::{vt}
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
               AS u(c, d, t, x, h, e)
             ON CONFLICT (kb, chunk_id) DO UPDATE SET doc_id = EXCLUDED.doc_id,
               title = EXCLUDED.title, text = EXCLUDED.text, hash = EXCLUDED.hash,
               embedding = EXCLUDED.embedding, updated_at = now()",
            table = self.table,
            vt = self.vector_type,
        );
        let mut tx = self.pool.begin().await?;
        for batch in chunks.chunks(UPSERT_BATCH) {
            let col = |f: fn(&StoredChunk) -> &String| -> Vec<String> {
                batch.iter().map(|c| f(c).clone()).collect()
            };
            let vectors: Vec<String> = batch.iter().map(|c| vector_literal(&c.embedding)).collect();
            sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(kb)
                .bind(col(|c| &c.chunk_id))
                .bind(col(|c| &c.doc_id))
                .bind(col(|c| &c.title))
                .bind(col(|c| &c.text))
                .bind(col(|c| &c.hash))
                .bind(vectors)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_impl(&self, kb: &str, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE kb = $1 AND chunk_id = ANY($2::text[])",
            self.table
        )))
        .bind(kb)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn search_impl(
        &self,
        kb: &str,
        query: &[f32],
        top_k: usize,
        min_score: f32,
    ) -> Result<Vec<Hit>, StoreError> {
        self.check(query)?;
        if top_k == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        // SET LOCAL takes no parameters; the values are integers formatted here. A custom
        // plan per search: under the generic plan sqlx's cached statement drifts to after a
        // few runs, the text-to-vector cast of the query is evaluated for every row and
        // the index goes unused (measured: 150 ms instead of 1 ms at 2000 rows).
        let ef = self
            .ef_search
            .max(u32::try_from(top_k).unwrap_or(u32::MAX).min(1000));
        let mut settings = format!(
            "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL hnsw.ef_search = {ef};"
        );
        if self.iterative_scan {
            settings.push_str(" SET LOCAL hnsw.iterative_scan = strict_order;");
        }
        sqlx::raw_sql(AssertSqlSafe(settings))
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT chunk_id, doc_id, title, text,
                    (1 - (embedding {op} $1::{vt}))::float4 AS score
             FROM {table} WHERE kb = $2
             ORDER BY embedding {op} $1::{vt} LIMIT $3",
            op = self.cosine_op,
            vt = self.vector_type,
            table = self.table,
        )))
        .bind(vector_literal(query))
        .bind(kb)
        .bind(i64::try_from(top_k).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut hits = Vec::with_capacity(rows.len());
        for row in rows {
            let score: f32 = row.try_get("score")?;
            if score < min_score || score.is_nan() {
                continue;
            }
            hits.push(Hit {
                chunk_id: row.try_get("chunk_id")?,
                doc_id: row.try_get("doc_id")?,
                title: row.try_get("title")?,
                text: row.try_get("text")?,
                score,
            });
        }
        Ok(hits)
    }

    async fn list_hashes_impl(&self, kb: &str) -> Result<HashMap<String, String>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT chunk_id, hash FROM {} WHERE kb = $1",
            self.table
        )))
        .bind(kb)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("chunk_id")?, r.try_get("hash")?)))
            .collect()
    }
}

/// Table names are spliced into SQL unquoted: only `[a-z0-9_]`, short enough for the
/// index name `{table}_hnsw` to fit Postgres' 63 bytes.
fn check_names(schema: &str, table: &str, dimensions: usize) -> Result<(), StoreError> {
    let valid_table = !table.is_empty()
        && table.len() <= 58
        && table
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid_table {
        return Err(StoreError::Config(format!("invalid table name {table:?}")));
    }
    if schema.is_empty() || schema.len() > 63 {
        return Err(StoreError::Config(format!(
            "invalid schema name {schema:?}"
        )));
    }
    if dimensions == 0 || dimensions > 16000 {
        return Err(StoreError::Config(format!(
            "pgvector cannot hold {dimensions} dimensions"
        )));
    }
    Ok(())
}

/// `CREATE EXTENSION IF NOT EXISTS` is not safe against a concurrent creator (it can fail
/// with a duplicate-key error); losing that race is fine as long as the extension exists.
async fn ensure_extension(pool: &PgPool) -> Result<(), StoreError> {
    let exists = |pool: &PgPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')",
            )
            .fetch_one(&pool)
            .await
        }
    };
    if exists(pool).await? {
        return Ok(());
    }
    match sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public")
        .execute(pool)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            if exists(pool).await? {
                Ok(())
            } else {
                Err(e.into())
            }
        }
    }
}

/// Iterative index scans arrived in pgvector 0.8.0.
fn supports_iterative_scan(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (0, 8)
}

impl VectorStore for PgVectorStore {
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
        Box::pin(self.search_impl(kb, query, top_k, min_score))
    }

    fn list_hashes<'a>(
        &'a self,
        kb: &'a str,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(self.list_hashes_impl(kb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_identifiers() {
        assert_eq!(vector_literal(&[1.0, -0.5, 1e-7]), "[1,-0.5,0.0000001]");
        assert_eq!(quote_identifier("ten\"ant"), "\"ten\"\"ant\"");
        assert!(supports_iterative_scan("0.8.1"));
        assert!(!supports_iterative_scan("0.7.4"));
        assert!(supports_iterative_scan("1.0"));
    }

    #[test]
    fn kb_tables_are_distinct_valid_identifiers() {
        assert_eq!(PgVectorStore::kb_table("demo-faq"), "kb_demo_faq");
        let dotted = PgVectorStore::kb_table("demo.faq");
        assert_ne!(dotted, "kb_demo_faq");
        let long = PgVectorStore::kb_table(&"a".repeat(253));
        for t in [dotted, long] {
            assert!(t.len() <= 58, "{t}");
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
    }
}
