//! pgvector search quality and speed: recall@5 of the HNSW index against exact search
//! (the embedded store) on the same data, for several `hnsw.ef_search` values, and search
//! latency. Two data sets: uniform random unit vectors (the worst case for HNSW: in 384
//! dimensions all distances are nearly equal) and clustered ones (closer to text
//! embeddings). Needs `SWITCHBOARD_TEST_PG`; skipped when
//! unset (a failure under CI: `switchboard_testenv`).
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

/// Unit vectors near one of `clusters` random centres: closer to real text embeddings,
/// whose neighbourhoods are far from uniform.
fn clustered(rng: &mut StdRng, centres: &[Vec<f32>], spread: f32) -> Vec<f32> {
    let c = &centres[rng.random_range(0..centres.len())];
    let mut v: Vec<f32> = c
        .iter()
        .map(|x| x + spread * rng.random_range(-1.0f32..1.0))
        .collect();
    normalize(&mut v);
    v
}

/// Loads `vectors` into pgvector and an exact store, then prints recall@5 and latency
/// per ef_search; returns the recall for each ef in `efs`.
async fn measure(
    pg: &PgVectorStore,
    kb: &str,
    vectors: Vec<Vec<f32>>,
    queries: &[Vec<f32>],
    efs: &[u32],
    label: &str,
) -> Vec<f64> {
    let n = vectors.len();
    let chunks: Vec<StoredChunk> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, embedding)| StoredChunk {
            chunk_id: format!("c{i}"),
            doc_id: format!("d{}", i / 10),
            title: "t".into(),
            text: format!("passage {i}"),
            hash: format!("h{i}"),
            embedding,
        })
        .collect();
    let exact = EmbeddedStore::in_memory();
    let start = Instant::now();
    for batch in chunks.chunks(2000) {
        pg.upsert(kb, batch).await.unwrap();
    }
    let load = start.elapsed();
    exact.upsert(kb, &chunks).await.unwrap();

    let mut exact_times = Vec::new();
    let truth: Vec<Vec<String>> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            let hits = exact.search_now(kb, q, K, -1.0);
            exact_times.push(t.elapsed().as_secs_f64() * 1000.0);
            hits.into_iter().map(|h| h.chunk_id).collect()
        })
        .collect();
    eprintln!(
        "{label} n={n}: pgvector upsert with index {:.1} s; exact search p50 {:.2} ms p95 {:.2} ms",
        load.as_secs_f64(),
        percentile(&mut exact_times.clone(), 50),
        percentile(&mut exact_times, 95)
    );

    let mut recalls = Vec::new();
    for &ef in efs {
        let store = pg.clone().with_ef_search(ef);
        let mut found = 0usize;
        let mut times = Vec::new();
        for (q, want) in queries.iter().zip(&truth) {
            let t = Instant::now();
            let hits = store.search(kb, q, K, -1.0).await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
            found += hits.iter().filter(|h| want.contains(&h.chunk_id)).count();
        }
        let recall = found as f64 / (queries.len() * K) as f64;
        eprintln!(
            "{label} n={n}: ef_search={ef}: recall@{K} {recall:.3}, search p50 {:.2} ms p95 {:.2} ms",
            percentile(&mut times.clone(), 50),
            percentile(&mut times, 95)
        );
        recalls.push(recall);
    }

    // Scores agree with exact cosine, and min_score filters.
    let hits = pg.search(kb, &queries[0], K, -1.0).await.unwrap();
    assert_eq!(hits.len(), K);
    for h in &hits {
        let i: usize = h.chunk_id[1..].parse().unwrap();
        let exact_score: f32 = chunks[i]
            .embedding
            .iter()
            .zip(&queries[0])
            .map(|(a, b)| a * b)
            .sum();
        assert!(
            (h.score - exact_score).abs() < 1e-4,
            "{h:?} vs {exact_score}"
        );
    }
    let cut = hits[2].score;
    let filtered = pg.search(kb, &queries[0], K, cut).await.unwrap();
    assert!(!filtered.is_empty() && filtered.iter().all(|h| h.score >= cut));
    let own = pg.search(kb, &chunks[7].embedding, 1, 0.0).await.unwrap();
    assert_eq!(own[0].chunk_id, "c7");
    assert!((own[0].score - 1.0).abs() < 1e-4);
    recalls
}

#[tokio::test]
async fn hnsw_recall_against_exact_search() {
    let Some(base) = pg_base() else {
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
    let mut rng = StdRng::seed_from_u64(42);
    // 5 is the floor: ef_search never goes below top_k.
    let efs = [5, 40, DEFAULT_EF_SEARCH, 100, 200, 400];
    let default_at = 2;

    // `KNOWLEDGE_RECALL_DATA=clustered` skips the random set (long to load at 100k).
    let only = std::env::var("KNOWLEDGE_RECALL_DATA").unwrap_or_default();

    // Two knowledge bases share the table, so the kb filter is exercised too.
    let random: Vec<Vec<f32>> = (0..n).map(|_| random_unit(&mut rng)).collect();
    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| random_unit(&mut rng)).collect();
    let r = if only.is_empty() || only == "random" {
        measure(&pg, "random", random, &queries, &efs, "random").await
    } else {
        vec![1.0; efs.len()]
    };

    let centres: Vec<Vec<f32>> = (0..(n / 20).max(10))
        .map(|_| random_unit(&mut rng))
        .collect();
    let data: Vec<Vec<f32>> = (0..n)
        .map(|_| clustered(&mut rng, &centres, 0.08))
        .collect();
    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|_| clustered(&mut rng, &centres, 0.08))
        .collect();
    let c = measure(&pg, "clustered", data, &queries, &efs, "clustered").await;

    assert!(
        c[default_at] >= 0.9,
        "clustered recall@{K} at ef_search {DEFAULT_EF_SEARCH}: {}",
        c[default_at]
    );
    if n <= 2000 {
        assert!(r[default_at] >= 0.9, "random recall@{K}: {r:?}");
    }

    pool.close().await;
    drop_schema(&base, &schema).await;
}
