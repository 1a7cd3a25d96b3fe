//! Incremental ingestion against the embedded store (in memory and persisted in SQLite)
//! and pgvector (`SWITCHBOARD_TEST_PG`, a fresh schema per test; skipped when unset,
//! a failure under CI): ingest → update one document → only its chunks re-embedded → delete a
//! document → its chunks gone; a re-run with no change embeds nothing.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

mod common;

use common::scenario::{KB, chunking, docs, incremental_steps};
use common::{CountingEmbedder, drop_schema, pg_base, pg_pool, unique_schema};
use switchboard_knowledge::{EmbeddedStore, IngestError, PgVectorStore, VectorStore, ingest};

#[tokio::test]
async fn embedded_store_in_memory() {
    incremental_steps(&EmbeddedStore::in_memory()).await;
}

#[tokio::test]
async fn embedded_store_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("gw.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let store = EmbeddedStore::open(pool.clone()).await.unwrap();
    incremental_steps(&store).await;
    let before = store.list_hashes(KB).await.unwrap();
    let q = CountingEmbedder::vector("anything");
    let hits_before = store.search(KB, &q, 3, -1.0).await.unwrap();
    drop(store);
    pool.close().await;

    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let store = EmbeddedStore::open(pool).await.unwrap();
    assert_eq!(store.list_hashes(KB).await.unwrap(), before);
    assert_eq!(store.search(KB, &q, 3, -1.0).await.unwrap(), hits_before);
    let embedder = CountingEmbedder::default();
    let mut docs = docs();
    docs.remove(1);
    let rerun = ingest(KB, &docs, &chunking(), &embedder, &store)
        .await
        .unwrap();
    // The last run above used the renamed model; back on the counting one, all re-embed.
    assert_eq!(rerun.embedded, rerun.chunks);
    let rerun = ingest(KB, &docs, &chunking(), &embedder, &store)
        .await
        .unwrap();
    assert_eq!(rerun.embedded, 0);
}

#[tokio::test]
async fn duplicate_document_ids_are_refused() {
    let store = EmbeddedStore::in_memory();
    let mut d = docs();
    d[1].id = "hours".into();
    let err = ingest(KB, &d, &chunking(), &CountingEmbedder::default(), &store)
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::DuplicateDocument(id) if id == "hours"));
    assert!(store.is_empty(KB));
}

#[tokio::test]
async fn pgvector_store() {
    let Some(base) = pg_base() else {
        return;
    };
    let schema = unique_schema("ingest");
    let pool = pg_pool(&base, &schema).await;
    let store = PgVectorStore::provision(pool.clone(), &schema, common::FAKE_DIMS)
        .await
        .unwrap();
    incremental_steps(&store).await;

    // Provisioning again is a no-op; with another dimension it is refused.
    PgVectorStore::provision(pool.clone(), &schema, common::FAKE_DIMS)
        .await
        .unwrap();
    let err = PgVectorStore::provision(pool.clone(), &schema, 384)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            switchboard_knowledge::StoreError::Dimensions {
                expected: 16,
                got: 384
            }
        ),
        "{err}"
    );
    let wrong = store.search(KB, &[0.0; 3], 1, 0.0).await.unwrap_err();
    assert!(matches!(
        wrong,
        switchboard_knowledge::StoreError::Dimensions { .. }
    ));

    // The table lives in the tenant schema, with the HNSW cosine index.
    let index: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'knowledge_chunks'
         AND indexname = 'knowledge_chunks_embedding_hnsw'",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        index.contains("hnsw") && index.contains("vector_cosine_ops"),
        "{index}"
    );

    assert!(store.delete_kb(KB).await.unwrap() > 0);
    assert!(store.list_hashes(KB).await.unwrap().is_empty());
    store.drop_table().await.unwrap();
    pool.close().await;
    drop_schema(&base, &schema).await;
}
