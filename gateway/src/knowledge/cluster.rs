//! Cluster mode: knowledge bases the operator indexed, searched where they live.
//!
//! pgvector: the knowledge base's own table in the tenant's schema (the first schema of
//! the call store URL's search path), opened without any DDL: the tenant's role only
//! reads. Pinecone: the knowledge base's namespace of its index, with the API key from
//! the secrets directory. Both are opened on the first lookup (and again after a failed
//! open), so a gateway starts and takes calls while its database or Pinecone is away.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use switchboard_knowledge::store::{PineconeConfig, PineconeStore};
use switchboard_knowledge::{Hit, PgVectorStore, StoreError, StoredChunk, VectorStore};
use tokio::sync::OnceCell;

/// Connections of the lookup pool: lookups are short; calls beyond this queue briefly.
const LOOKUP_POOL_SIZE: u32 = 4;

type Opener = Box<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Arc<dyn VectorStore>, StoreError>> + Send>>
        + Send
        + Sync,
>;

/// A store opened on first use; a failed open is tried again on the next use.
pub(super) struct LazyStore {
    cell: OnceCell<Arc<dyn VectorStore>>,
    open: Opener,
}

impl LazyStore {
    async fn get(&self) -> Result<&Arc<dyn VectorStore>, StoreError> {
        self.cell.get_or_try_init(|| (self.open)()).await
    }
}

impl VectorStore for LazyStore {
    fn upsert<'a>(
        &'a self,
        kb: &'a str,
        chunks: &'a [StoredChunk],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.get().await?.upsert(kb, chunks).await })
    }

    fn delete<'a>(
        &'a self,
        kb: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.get().await?.delete(kb, ids).await })
    }

    fn search<'a>(
        &'a self,
        kb: &'a str,
        query: &'a [f32],
        top_k: usize,
        min_score: f32,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>> {
        Box::pin(async move { self.get().await?.search(kb, query, top_k, min_score).await })
    }

    fn list_hashes<'a>(
        &'a self,
        kb: &'a str,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(async move { self.get().await?.list_hashes(kb).await })
    }
}

/// Lookup pools by database URL (every knowledge base of a tenant shares one).
#[derive(Default)]
pub(super) struct Pools(HashMap<String, PgPool>);

impl Pools {
    fn get(&mut self, url: &str) -> Result<PgPool, StoreError> {
        if let Some(pool) = self.0.get(url) {
            return Ok(pool.clone());
        }
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Config(format!("database URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(LOOKUP_POOL_SIZE)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(options);
        self.0.insert(url.to_string(), pool.clone());
        Ok(pool)
    }

    /// Every pool opened.
    pub(super) fn into_pools(self) -> Vec<PgPool> {
        self.0.into_values().collect()
    }
}

/// Points `pools` at `url` for the connections they open from now on: connections already
/// open stay (a rotated password does not end a session), a connection the server ended
/// is replaced with the new credentials.
///
/// # Errors
/// [`StoreError::Config`] when `url` is not a Postgres URL; nothing changes then.
pub(super) fn repoint(pools: &[PgPool], url: &str) -> Result<(), StoreError> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| StoreError::Config(format!("database URL: {e}")))?;
    for pool in pools {
        pool.set_connect_options(options.clone());
    }
    Ok(())
}

/// The pgvector table of knowledge base `kb` in the search path's schema of `url`.
pub(super) fn pgvector(
    pools: &mut Pools,
    url: &str,
    kb: &str,
    dimensions: usize,
) -> Result<LazyStore, StoreError> {
    let pool = pools.get(url)?;
    let table = PgVectorStore::kb_table(kb);
    Ok(LazyStore {
        cell: OnceCell::new(),
        open: Box::new(move || {
            let pool = pool.clone();
            let table = table.clone();
            Box::pin(async move {
                let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
                    .fetch_one(&pool)
                    .await?;
                let schema = schema.ok_or_else(|| {
                    StoreError::Config("the database URL's search path names no schema".into())
                })?;
                let store = PgVectorStore::open_table(pool, &schema, &table, dimensions).await?;
                Ok(Arc::new(store) as Arc<dyn VectorStore>)
            })
        }),
    })
}

/// The Pinecone index of `config` (connected, never created: the operator creates it).
pub(super) fn pinecone(config: PineconeConfig) -> LazyStore {
    LazyStore {
        cell: OnceCell::new(),
        open: Box::new(move || {
            let config = config.clone();
            Box::pin(async move {
                let store = PineconeStore::connect(config).await?;
                Ok(Arc::new(store) as Arc<dyn VectorStore>)
            })
        }),
    }
}
