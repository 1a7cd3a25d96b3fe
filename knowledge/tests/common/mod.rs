//! Helpers shared by the integration tests: locating the model and Postgres, and a
//! counting embedder double.
#![allow(dead_code, clippy::unwrap_used)]

pub mod scenario;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::BoxFuture;
use switchboard_knowledge::chunk::sha256_hex;
use switchboard_knowledge::embed::{EmbedError, Embedder, normalize};

/// The MiniLM directory from `SWITCHBOARD_MODEL_DIR` (exported by scripts/test.sh from
/// scripts/model.sh); `None` when unset, through the shared service gate (skips locally,
/// fails under CI).
pub fn model_dir() -> Option<PathBuf> {
    switchboard_testenv::service_path(
        "SWITCHBOARD_MODEL_DIR",
        "export SWITCHBOARD_MODEL_DIR=\"$(scripts/model.sh)\"",
    )
}

/// Base Postgres URL from `SWITCHBOARD_TEST_PG`; `None` when unset, through the shared
/// service gate (skips locally, fails under CI).
pub fn pg_base() -> Option<String> {
    switchboard_testenv::service(
        "SWITCHBOARD_TEST_PG",
        "eval \"$(scripts/postgres.sh start)\"",
    )
}

/// A fresh schema name for one test.
pub fn unique_schema(hint: &str) -> String {
    format!("kn_{hint}_{:08x}", rand::random::<u32>())
}

/// A pool whose connections see only `schema` on their search path (as a tenant
/// gateway's do), so the store must qualify pgvector's names itself.
pub async fn pg_pool(base: &str, schema: &str) -> sqlx::PgPool {
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap()
}

/// Drops a test schema.
pub async fn drop_schema(base: &str, schema: &str) {
    let pool = sqlx::PgPool::connect(base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .unwrap();
}

/// Deterministic fake embedder: a vector derived from the text's sha256, so equal texts
/// map to equal vectors. Counts every text it embeds and remembers them.
#[derive(Default)]
pub struct CountingEmbedder {
    pub count: AtomicUsize,
    pub seen: Mutex<Vec<String>>,
}

pub const FAKE_DIMS: usize = 16;

impl CountingEmbedder {
    pub fn take(&self) -> (usize, Vec<String>) {
        let n = self.count.swap(0, Ordering::SeqCst);
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        (n, seen)
    }

    pub fn vector(text: &str) -> Vec<f32> {
        let h = sha256_hex(text.as_bytes());
        let mut v: Vec<f32> = h
            .as_bytes()
            .chunks(4)
            .take(FAKE_DIMS)
            .map(|c| c.iter().map(|b| f32::from(*b)).sum::<f32>() - 300.0)
            .collect();
        normalize(&mut v);
        v
    }
}

impl Embedder for CountingEmbedder {
    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            self.count.fetch_add(texts.len(), Ordering::SeqCst);
            self.seen
                .lock()
                .unwrap()
                .extend(texts.iter().map(|t| (*t).to_owned()));
            Ok(texts.iter().map(|t| Self::vector(t)).collect())
        })
    }

    fn dimensions(&self) -> usize {
        FAKE_DIMS
    }

    fn model_id(&self) -> &str {
        "fake:sha256"
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}
