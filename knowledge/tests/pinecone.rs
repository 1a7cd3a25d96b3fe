//! The Pinecone store against the Pinecone simulator (switchboard-sim): the incremental
//! ingestion scenario every store passes, search ranking, namespace isolation, batching
//! and pagination, retries on 429/503, a refused key, dimension checks, provisioning.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::FAKE_DIMS;
use common::scenario::incremental_steps;
use switchboard_knowledge::embed::normalize;
use switchboard_knowledge::store::pinecone::{API_VERSION, PineconeConfig, PineconeStore};
use switchboard_knowledge::{StoreError, StoredChunk, VectorStore};
use switchboard_sim::pinecone::{PineconeSim, PineconeSimConfig};

const INDEX: &str = "switchboard-test";

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn sim() -> PineconeSim {
    init();
    PineconeSim::start(PineconeSimConfig::default())
        .await
        .unwrap()
}

/// Points the store at the simulator, with quick retries.
fn config(sim: &PineconeSim) -> PineconeConfig {
    PineconeConfig {
        control_url: sim.url(),
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ready_timeout: Duration::from_secs(30),
        ..PineconeConfig::new(sim.api_key(), INDEX)
    }
}

async fn store(sim: &PineconeSim, dims: usize) -> PineconeStore {
    PineconeStore::ensure_index(config(sim), dims)
        .await
        .unwrap()
}

fn unit(v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    normalize(&mut v);
    v
}

fn chunk(id: &str, embedding: Vec<f32>) -> StoredChunk {
    StoredChunk {
        chunk_id: id.into(),
        doc_id: format!("doc-{id}"),
        title: format!("Title {id}"),
        text: format!("passage {id}"),
        hash: format!("hash-{id}"),
        embedding,
    }
}

#[tokio::test]
async fn incremental_ingestion() {
    let sim = sim().await;
    let store = store(&sim, FAKE_DIMS).await;
    incremental_steps(&store).await;
}

#[tokio::test]
async fn search_ranks_by_cosine_and_filters_by_score() {
    let sim = sim().await;
    let store = store(&sim, 3).await;
    let chunks = vec![
        chunk("near", unit(&[1.0, 0.1, 0.0])),
        chunk("mid", unit(&[1.0, 1.0, 0.0])),
        chunk("far", unit(&[0.0, 0.0, 1.0])),
        chunk("opposite", unit(&[-1.0, 0.0, 0.0])),
    ];
    store.upsert("kb", &chunks).await.unwrap();
    // Unnormalised query: cosine does not care about scale.
    let q = [3.0, 0.0, 0.0];
    let hits = store.search("kb", &q, 10, -1.0).await.unwrap();
    let order: Vec<&str> = hits.iter().map(|h| h.chunk_id.as_str()).collect();
    assert_eq!(order, ["near", "mid", "far", "opposite"]);
    assert!((hits[0].score - 0.995).abs() < 1e-3, "{}", hits[0].score);
    assert!((hits[3].score + 1.0).abs() < 1e-4);
    // Metadata round trip.
    assert_eq!(hits[0].doc_id, "doc-near");
    assert_eq!(hits[0].title, "Title near");
    assert_eq!(hits[0].text, "passage near");

    let top2 = store.search("kb", &q, 2, -1.0).await.unwrap();
    assert_eq!(top2.len(), 2);
    let good = store.search("kb", &q, 10, 0.5).await.unwrap();
    assert_eq!(good.len(), 2, "{good:?}");
    assert!(store.search("kb", &q, 0, -1.0).await.unwrap().is_empty());
    assert!(store.search("empty", &q, 5, -1.0).await.unwrap().is_empty());
}

#[tokio::test]
async fn namespaces_are_isolated() {
    let sim = sim().await;
    let store = store(&sim, 2).await;
    store
        .upsert(
            "a",
            &[chunk("x", vec![1.0, 0.0]), chunk("y", vec![0.0, 1.0])],
        )
        .await
        .unwrap();
    store
        .upsert("b", &[chunk("x", vec![0.5, 0.5])])
        .await
        .unwrap();

    let a = store.search("a", &[1.0, 0.0], 10, -1.0).await.unwrap();
    assert_eq!(a.len(), 2);
    let b = store.search("b", &[1.0, 0.0], 10, -1.0).await.unwrap();
    assert_eq!(b.len(), 1);
    assert!((b[0].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-4);

    // Same chunk id, different knowledge bases: deleting in one leaves the other.
    store.delete("a", &["x".to_owned()]).await.unwrap();
    assert_eq!(store.list_hashes("a").await.unwrap().len(), 1);
    assert_eq!(store.list_hashes("b").await.unwrap().len(), 1);

    let stats = store.stats().await.unwrap();
    assert_eq!(stats.dimension, Some(2));
    assert_eq!(stats.total, 2);
    assert_eq!(stats.namespaces.get("a"), Some(&1));

    // The finalizer's namespace delete: gone, and deleting again is not an error.
    store.delete_namespace("a").await.unwrap();
    store.delete_namespace("a").await.unwrap();
    assert!(store.list_hashes("a").await.unwrap().is_empty());
    assert_eq!(store.list_hashes("b").await.unwrap().len(), 1);
    // Deleting ids from a namespace that does not exist is not an error either.
    store.delete("nowhere", &["x".to_owned()]).await.unwrap();
}

#[tokio::test]
async fn large_writes_are_batched_and_listing_paginates() {
    let sim = sim().await;
    let dims = 384;
    let store = store(&sim, dims).await;
    let n = 2500;
    let chunks: Vec<StoredChunk> = (0..n)
        .map(|i| {
            let mut v = vec![0.01f32; dims];
            v[i % dims] = 1.0 + (i / dims) as f32;
            chunk(&format!("c{i:05}"), v)
        })
        .collect();
    store.upsert("big", &chunks).await.unwrap();
    let hashes = store.list_hashes("big").await.unwrap();
    assert_eq!(hashes.len(), n);
    assert_eq!(hashes["c00042"], "hash-c00042");

    let log = sim.requests();
    let upserts: Vec<_> = log.iter().filter(|r| r.path == "/vectors/upsert").collect();
    // 2500 records of 384 floats are over 2 MB: size, not the 1000 count, cuts them.
    assert!(upserts.len() >= 3, "{} upsert requests", upserts.len());
    assert!(upserts.iter().all(|r| r.status == 200));
    let lists = log
        .iter()
        .filter(|r| r.path.starts_with("/vectors/list"))
        .count();
    assert_eq!(lists, n.div_ceil(100));
    // Every request carried the API version.
    assert!(
        log.iter()
            .all(|r| r.api_version.as_deref() == Some(API_VERSION)),
        "{log:?}"
    );
}

#[tokio::test]
async fn throttling_and_outages_are_retried() {
    let sim = sim().await;
    let store = store(&sim, 2).await;
    sim.fail_next(2, 429);
    store
        .upsert("kb", &[chunk("x", vec![1.0, 0.0])])
        .await
        .unwrap();
    sim.fail_next(1, 503);
    let hits = store.search("kb", &[1.0, 0.0], 1, 0.0).await.unwrap();
    assert_eq!(hits[0].chunk_id, "x");
    let statuses: Vec<(String, u16)> = sim
        .requests()
        .into_iter()
        .filter(|r| r.plane != "control")
        .map(|r| (r.path, r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("/vectors/upsert".to_owned(), 429),
            ("/vectors/upsert".to_owned(), 429),
            ("/vectors/upsert".to_owned(), 200),
            ("/query".to_owned(), 503),
            ("/query".to_owned(), 200),
        ]
    );

    // An outage longer than the retries: the last status, with Pinecone's message.
    let impatient = PineconeStore::connect(PineconeConfig {
        max_retries: 2,
        ..config(&sim)
    })
    .await
    .unwrap();
    sim.fail_next(10, 503);
    let err = impatient
        .search("kb", &[1.0, 0.0], 1, 0.0)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Remote { status: 503, message } if message.contains("unavailable")),
        "{err}"
    );
    sim.fail_next(0, 503);
}

#[tokio::test]
async fn a_refused_key_is_a_clear_error() {
    let sim = sim().await;
    store(&sim, 2).await;
    let err = PineconeStore::connect(PineconeConfig {
        api_key: "wrong".into(),
        ..config(&sim)
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Remote { status: 401, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("API key was refused"),
        "{text}"
    );
    // Not retried: one refused request, no more.
    let refused = sim.requests().iter().filter(|r| r.status == 401).count();
    assert_eq!(refused, 1);
}

#[tokio::test]
async fn dimension_mismatch_is_refused() {
    let sim = sim().await;
    let store = store(&sim, FAKE_DIMS).await;
    // Provisioning again with the same dimension is a no-op; another is refused.
    PineconeStore::ensure_index(config(&sim), FAKE_DIMS)
        .await
        .unwrap();
    let err = PineconeStore::ensure_index(config(&sim), 384)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Dimensions {
                expected: FAKE_DIMS,
                got: 384
            }
        ),
        "{err}"
    );
    // Vectors are checked before anything is sent.
    let err = store
        .upsert("kb", &[chunk("x", vec![1.0; 3])])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Dimensions {
            expected: FAKE_DIMS,
            got: 3
        }
    ));
    assert!(matches!(
        store.search("kb", &[1.0; 3], 1, 0.0).await.unwrap_err(),
        StoreError::Dimensions { .. }
    ));

    // And the simulator refuses them the way Pinecone does.
    let host = sim.index_host(INDEX).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("http://{host}/vectors/upsert"))
        .header("Api-Key", sim.api_key())
        .header("X-Pinecone-API-Version", API_VERSION)
        .body(r#"{"namespace":"kb","vectors":[{"id":"x","values":[1,2,3]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], 3);
    assert_eq!(
        body["message"],
        format!("Vector dimension 3 does not match the dimension of the index {FAKE_DIMS}")
    );
}

#[tokio::test]
async fn provisioning_creates_waits_and_refuses_what_it_cannot_use() {
    init();
    let sim = PineconeSim::start(PineconeSimConfig {
        ready_delay: Duration::from_millis(300),
        ..PineconeSimConfig::default()
    })
    .await
    .unwrap();

    // Unknown index: connect says so.
    let err = PineconeStore::connect(config(&sim)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Remote { status: 404, .. }),
        "{err}"
    );

    // Created, then described until ready; usable at once.
    let store = PineconeStore::ensure_index(config(&sim), 4).await.unwrap();
    assert_eq!(store.dimensions(), 4);
    assert_eq!(
        store.data_url(),
        format!("http://{}", sim.index_host(INDEX).unwrap())
    );
    let describes = sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == format!("/indexes/{INDEX}"))
        .count();
    assert!(describes >= 3, "polled {describes} times");
    store
        .upsert("kb", &[chunk("x", vec![1.0; 4])])
        .await
        .unwrap();

    // A second create is a 409, which provisioning treats as "already there".
    let body = serde_json::json!({"name": INDEX, "dimension": 4, "metric": "cosine",
        "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}});
    let resp = reqwest::Client::new()
        .post(format!("{}/indexes", sim.url()))
        .header("Api-Key", sim.api_key())
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let err: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(err["error"]["code"], "ALREADY_EXISTS");
    assert_eq!(err["status"], 409);

    // Invalid names never reach the service.
    let err = PineconeStore::ensure_index(
        PineconeConfig {
            index: "Bad_Name".into(),
            ..config(&sim)
        },
        4,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err}");
}
