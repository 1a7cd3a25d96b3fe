//! The local MiniLM embedder against sentence-transformers' own output and on a small
//! retrieval task. Needs the model files (`SWITCHBOARD_MODEL_DIR`, from scripts/model.sh);
//! skipped when unset, a failure under CI (`switchboard_testenv`).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

mod common;

use std::time::Instant;

use common::{cosine, model_dir};
use switchboard_knowledge::{
    ChunkingConfig, Document, EmbeddedStore, Embedder, LocalMiniLm, MiniLmOptions, VectorStore,
    ingest,
};

const REFERENCE: &str = include_str!("../fixtures/reference_vectors.json");
const RANKING: &str = include_str!("../fixtures/ranking.json");

fn load() -> Option<LocalMiniLm> {
    let dir = model_dir()?;
    Some(LocalMiniLm::load(&dir).unwrap())
}

#[derive(serde::Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    embedding: Vec<f32>,
}

#[tokio::test]
async fn matches_sentence_transformers_reference_vectors() {
    let Some(model) = load() else {
        return;
    };
    let reference: Reference = serde_json::from_str(REFERENCE).unwrap();
    assert!(reference.cases.len() >= 5);
    assert_eq!(model.dimensions(), 384);
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();

    // As one ragged batch, and one by one: both must match. The bound is far tighter than
    // the 0.999: the encoder's half-float weights and summation order move the
    // vectors by about 1e-7, and a real mistake would show far above that.
    let batch = model.embed(&texts).await.unwrap();
    for (case, got) in reference.cases.iter().zip(&batch) {
        let c = cosine(got, &case.embedding);
        assert!(c >= 0.99999, "batch: cosine {c} for {:?}", case.text);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
    }
    for case in &reference.cases {
        let got = model.embed(&[case.text.as_str()]).await.unwrap().remove(0);
        let c = cosine(&got, &case.embedding);
        assert!(c >= 0.99999, "single: cosine {c} for {:?}", case.text);
    }
}

#[tokio::test]
async fn empty_input_and_over_long_input() {
    let Some(model) = load() else {
        return;
    };
    assert!(model.embed(&[]).await.unwrap().is_empty());
    // Far past the 256-token window: truncated, not an error.
    let long = "word ".repeat(2000);
    let v = model.embed(&[long.as_str(), ""]).await.unwrap();
    assert_eq!(v.len(), 2);
    assert!(
        v.iter()
            .all(|v| v.len() == 384 && v.iter().all(|x| x.is_finite()))
    );
}

#[derive(serde::Deserialize)]
struct Ranking {
    passages: Vec<Passage>,
    questions: Vec<Question>,
}

#[derive(serde::Deserialize)]
struct Passage {
    id: String,
    title: String,
    text: String,
}

#[derive(serde::Deserialize)]
struct Question {
    question: String,
    answer: String,
}

#[tokio::test]
async fn ranks_the_right_passage_first() {
    let Some(model) = load() else {
        return;
    };
    let fixture: Ranking = serde_json::from_str(RANKING).unwrap();
    let docs: Vec<Document> = fixture
        .passages
        .iter()
        .map(|p| Document {
            id: p.id.clone(),
            title: p.title.clone(),
            content: p.text.clone(),
            category: None,
        })
        .collect();
    let store = EmbeddedStore::in_memory();
    let report = ingest("shop", &docs, &ChunkingConfig::default(), &model, &store)
        .await
        .unwrap();
    assert_eq!(report.chunks, fixture.passages.len());
    for q in &fixture.questions {
        let v = model.embed(&[q.question.as_str()]).await.unwrap().remove(0);
        let hits = store.search("shop", &v, 3, 0.0).await.unwrap();
        assert_eq!(
            hits[0].doc_id,
            q.answer,
            "{:?} ranked {:?}",
            q.question,
            hits.iter()
                .map(|h| (&h.doc_id, h.score))
                .collect::<Vec<_>>()
        );
    }
}

/// Measures one short query's embedding latency on one thread. Prints the figure; the
/// assertion is loose (debug builds and busy CI machines are slow), the release target
/// is ≤ 5 ms.
#[tokio::test]
async fn short_query_latency() {
    let Some(dir) = model_dir() else {
        return;
    };
    for threads in [1, 2] {
        let model = LocalMiniLm::load_with(
            &dir,
            MiniLmOptions {
                threads,
                ..MiniLmOptions::default()
            },
        )
        .unwrap();
        let q = "Are you open on Saturday?";
        for _ in 0..3 {
            model.embed_blocking(&[q]).unwrap();
        }
        let mut times: Vec<f64> = (0..30)
            .map(|_| {
                let t = Instant::now();
                model.embed_blocking(&[q]).unwrap();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p50 = times[times.len() / 2];
        let p95 = times[times.len() * 95 / 100];
        eprintln!("MiniLM short query, {threads} thread(s): p50 {p50:.2} ms, p95 {p95:.2} ms");
        assert!(p50 < 500.0, "p50 {p50} ms");
    }
}

/// Measures batch throughput on one thread for passage-sized chunks (about 120 tokens),
/// the figure that bounds ingestion time. Prints chunks/s; the bound is loose.
#[tokio::test]
async fn passage_throughput() {
    let Some(model) = load() else {
        return;
    };
    let passage = "Local delivery costs five dollars and arrives the next business day. \
                   Orders over fifty dollars are delivered for free within ten miles of the store, \
                   and larger items such as bicycles can be delivered on Saturdays by appointment. ";
    let texts: Vec<String> = (0..64)
        .map(|i| format!("Delivery {i}\n{}", passage.repeat(2)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    model.embed_blocking(&refs[..8]).unwrap();
    let t = Instant::now();
    let out = model.embed_blocking(&refs).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.len(), 64);
    let rate = 64.0 / secs;
    eprintln!(
        "MiniLM passages (~{} chars), 1 thread: {rate:.1} chunks/s",
        texts[0].len()
    );
    assert!(rate > 0.5, "{rate} chunks/s");
}
