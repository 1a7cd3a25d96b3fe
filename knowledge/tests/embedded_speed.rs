//! Exact search in the embedded store at 10k × 384 (the laptop/gateway size): results
//! equal a full sort, and the latency is printed (release target: about a millisecond;
//! the bound is loose: CI runs unoptimised builds on a shared machine).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard_knowledge::embed::normalize;
use switchboard_knowledge::{EmbeddedStore, StoredChunk, VectorStore};

const DIMS: usize = 384;
const N: usize = 10_000;

fn random_unit(rng: &mut StdRng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    normalize(&mut v);
    v
}

#[tokio::test]
async fn ten_thousand_chunks() {
    let mut rng = StdRng::seed_from_u64(7);
    let chunks: Vec<StoredChunk> = (0..N)
        .map(|i| StoredChunk {
            chunk_id: format!("c{i}"),
            doc_id: format!("d{}", i / 20),
            title: "t".into(),
            text: format!("passage {i}"),
            hash: format!("h{i}"),
            embedding: random_unit(&mut rng),
        })
        .collect();
    let store = EmbeddedStore::in_memory();
    store.upsert("kb", &chunks).await.unwrap();
    assert_eq!(store.len("kb"), N);

    let mut times = Vec::new();
    for round in 0..30 {
        let q = random_unit(&mut rng);
        let t = Instant::now();
        let hits = store.search("kb", &q, 5, -1.0).await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if round >= 5 {
            continue;
        }

        let mut all: Vec<(f32, &str)> = chunks
            .iter()
            .map(|c| {
                let s: f32 = c.embedding.iter().zip(&q).map(|(a, b)| a * b).sum();
                (s, c.chunk_id.as_str())
            })
            .collect();
        all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
        let want: Vec<&str> = all[..5].iter().map(|x| x.1).collect();
        let got: Vec<&str> = hits.iter().map(|h| h.chunk_id.as_str()).collect();
        assert_eq!(got, want);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p50 = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    eprintln!("embedded store, {N} x {DIMS}: search p50 {p50:.2} ms, p95 {p95:.2} ms");
    // Unoptimised builds (CI's) are two orders of magnitude slower than release.
    let bound = if cfg!(debug_assertions) { 2000.0 } else { 20.0 };
    assert!(p50 < bound, "p50 {p50} ms");
}
