//! pgvector search quality and speed: recall@5 of the HNSW index against exact search
//! (the embedded store) on the same random unit vectors — the hard case for HNSW, since
//! random high-dimensional vectors have near-equal distances — for several
//! `hnsw.ef_search` values, and search latency. Needs `SWITCHBOARD_TEST_PG`; skipped with
//! a notice when unset.
//!
//! `KNOWLEDGE_RECALL_N` (default 2000) sets the number of stored vectors, e.g. 10000 or
//! 100000 for the benchmark figures.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

mod common;

use std::time::Instant;

use common::{drop_schema, pg_base, pg_pool, unique_schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard_knowledge::embed::normalize;
use switchboard_knowledge::store::DEFAULT_EF_SEARCH;
use switchboard_knowledge::{EmbeddedStore, PgVectorStore, StoredChunk, VectorStore};

const DIMS: usize = 384;
const QUERIES: usize = 50;
const K: usize = 5;

fn random_unit(rng: &mut StdRng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    normalize(&mut v);
    v
}

fn percentile(times: &mut [f64], p: usize) -> f64 {
    times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    times[(times.len() * p / 100).min(times.len() - 1)]
}

#[tokio::test]
async fn hnsw_recall_against_exact_search() {
    let Some(base) = pg_base("hnsw_recall_against_exact_search") else {
        return;
    };
    let n: usize = std::env::var("KNOWLEDGE_RECALL_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let schema = unique_schema("recall");
    let pool = pg_pool(&base, &schema).await;
    let pg = PgVectorStore::provision(pool.clone(), &schema, DIMS)
        .await
        .unwrap();
    let exact = EmbeddedStore::in_memory();

    let mut rng = StdRng::seed_from_u64(42);
    let chunks: Vec<StoredChunk> = (0..n)
        .map(|i| StoredChunk {
            chunk_id: format!("c{i}"),
            doc_id: format!("d{}", i / 10),
            title: "t".into(),
            text: format!("passage {i}"),
            hash: format!("h{i}"),
            embedding: random_unit(&mut rng),
        })
        .collect();
    let start = Instant::now();
    for batch in chunks.chunks(2000) {
        pg.upsert("kb", batch).await.unwrap();
    }
    let pg_load = start.elapsed();
    exact.upsert("kb", &chunks).await.unwrap();
    // A second knowledge base in the same table, so the kb filter matters.
    pg.upsert("noise", &chunks[..n.min(500)]).await.unwrap();
    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| random_unit(&mut rng)).collect();

    let mut exact_times = Vec::new();
    let truth: Vec<Vec<String>> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            let hits = exact.search_now("kb", q, K, -1.0);
            exact_times.push(t.elapsed().as_secs_f64() * 1000.0);
            hits.into_iter().map(|h| h.chunk_id).collect()
        })
        .collect();
    eprintln!(
        "n={n}: pgvector upsert+index {:.1} s; exact search p50 {:.2} ms p95 {:.2} ms",
        pg_load.as_secs_f64(),
        percentile(&mut exact_times.clone(), 50),
        percentile(&mut exact_times, 95)
    );

    let mut default_recall = 0.0;
    for ef in [40, DEFAULT_EF_SEARCH, 200, 400] {
        let store = pg.clone().with_ef_search(ef);
        let mut found = 0usize;
        let mut times = Vec::new();
        for (q, want) in queries.iter().zip(&truth) {
            let t = Instant::now();
            let hits = store.search("kb", q, K, -1.0).await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
            found += hits.iter().filter(|h| want.contains(&h.chunk_id)).count();
        }
        let recall = found as f64 / (QUERIES * K) as f64;
        eprintln!(
            "n={n}: ef_search={ef}: recall@{K} {recall:.3}, search p50 {:.2} ms p95 {:.2} ms",
            percentile(&mut times.clone(), 50),
            percentile(&mut times, 95)
        );
        if ef == DEFAULT_EF_SEARCH {
            default_recall = recall;
        }
    }
    assert!(
        default_recall >= 0.9,
        "recall@{K} at the default ef_search {DEFAULT_EF_SEARCH} is {default_recall}"
    );

    // Scores agree with exact cosine, and min_score filters.
    let hits = pg.search("kb", &queries[0], K, -1.0).await.unwrap();
    let exact_hits = exact.search_now("kb", &queries[0], K, -1.0);
    assert!((hits[0].score - exact_hits[0].score).abs() < 1e-4);
    let cut = hits[2].score;
    let filtered = pg.search("kb", &queries[0], K, cut).await.unwrap();
    assert!(filtered.len() <= 3 && filtered.iter().all(|h| h.score >= cut));
    // A stored vector finds itself first with score 1.
    let own = pg.search("kb", &chunks[7].embedding, 1, 0.0).await.unwrap();
    assert_eq!(own[0].chunk_id, "c7");
    assert!((own[0].score - 1.0).abs() < 1e-4);

    pool.close().await;
    drop_schema(&base, &schema).await;
}
