//! Knowledge benchmarks (docs/performance.md, "Knowledge"; bench/knowledge.sh runs them
//! all). Release builds only make sense: `cargo run --release -p switchboard-knowledge
//! --example bench -- MODE [--flag value]…`, pinned with `taskset -c 1` for one-core
//! figures. Needs the model (`SWITCHBOARD_MODEL_DIR` or `--model-dir`).
//!
//! Modes:
//! - `embed`: the local embedder alone: one short query at a time (p50/p95), and passages
//!   of the default chunk size in ingestion's batches (chunks/s).
//! - `embedded`: ingestion of `--chunks` (10000) synthetic chunks end to end (chunking,
//!   local embeddings, the SQLite-persisted embedded store), then lookups against it.
//! - `pgvector`: `--chunks` (100000) chunks in pgvector (`SWITCHBOARD_TEST_PG`, schema
//!   `--schema`, kept between runs: ingestion is incremental, so a rerun embeds nothing),
//!   lookups at `--ef` (64), and recall@5 of the HNSW index against exact search over the
//!   same vectors for each of `--recall-efs` (40,64,100,200). The first `--real` (10000)
//!   chunks get the real model's vectors (computed once, cached in `--cache`,
//!   ~/.cache/switchboard/bench); embedding 100k chunks takes hours on a shared 2-core
//!   machine, so every further chunk gets a real vector plus Gaussian noise (cosine about
//!   0.9 to it), which keeps the clustered shape of text embeddings. Queries are always
//!   embedded by the real model.
//!
//! A lookup is the gateway's path for `search_knowledge_base` (gateway/src/knowledge.rs:
//! `KnowledgeRunner::run` → `Knowledge::search`), repeated here call for call because the
//! gateway crate cannot be a dependency of this one: parse the arguments JSON, embed the
//! query (`Embedder::embed`: a blocking task on the embedder's private pool), search the
//! store, sort and cut to top-k, render the output JSON as a string. Timed from arguments
//! received to output string ready; the Realtime socket write that follows is not in it.
//!
//! Every figure is also printed as one JSON line (`{"bench": …}`) for scripts.

mod corpus;

use std::collections::HashMap;
use std::error::Error;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use switchboard_knowledge::store::DEFAULT_EF_SEARCH;
use switchboard_knowledge::{
    Chunk, ChunkingConfig, EmbedError, EmbeddedStore, Embedder, LocalMiniLm, MiniLmOptions,
    PgVectorStore, StoredChunk, VectorStore, chunk_document, ingest,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The defaults of a KnowledgeBase (crds/src/knowledge.rs).
const CHUNKING: ChunkingConfig = ChunkingConfig {
    size: 500,
    overlap: 50,
};
const TOP_K: usize = 4;
const MIN_SCORE: f32 = 0.3;
const KB: &str = "bench";

struct Args {
    mode: String,
    flags: HashMap<String, String>,
}

impl Args {
    fn parse() -> Result<Self> {
        let mut it = std::env::args().skip(1);
        let mode = it
            .next()
            .ok_or("usage: bench embed|embedded|pgvector [--flag value]…")?;
        let mut flags = HashMap::new();
        while let Some(k) = it.next() {
            let key = k
                .strip_prefix("--")
                .ok_or(format!("unexpected argument {k:?}"))?;
            let value = it.next().ok_or(format!("--{key} needs a value"))?;
            flags.insert(key.to_owned(), value);
        }
        Ok(Self { mode, flags })
    }

    fn get<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.flags.get(key) {
            Some(v) => v.parse().map_err(|_| format!("--{key} {v:?}").into()),
            None => Ok(default),
        }
    }

    fn string(&self, key: &str, default: &str) -> String {
        self.flags
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p95 and mean of `ms`, in ms.
fn summary(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    (percentile(&ms, 50.0), percentile(&ms, 95.0), mean)
}

fn report(line: Value) {
    println!("{}", json!({ "bench": line }));
}

fn model(args: &Args, threads: usize) -> Result<LocalMiniLm> {
    let dir = match args.flags.get("model-dir") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("SWITCHBOARD_MODEL_DIR")
                .ok_or("set SWITCHBOARD_MODEL_DIR=\"$(scripts/model.sh)\" or --model-dir")?,
        ),
    };
    Ok(LocalMiniLm::load_with(
        &dir,
        MiniLmOptions {
            threads,
            ..MiniLmOptions::default()
        },
    )?)
}

/// The gateway's lookup, call for call (see the module docs).
async fn lookup(
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    arguments: &str,
) -> std::result::Result<String, String> {
    let query = serde_json::from_str::<Value>(arguments)
        .ok()
        .and_then(|v| v.get("query").and_then(|q| q.as_str()).map(str::to_string))
        .filter(|q| !q.trim().is_empty())
        .ok_or("arguments must be an object with a non-empty \"query\" string")?;
    let vectors = embedder
        .embed(&[query.as_str()])
        .await
        .map_err(|e| e.to_string())?;
    let vector = vectors.first().ok_or("the embedder returned nothing")?;
    let found = store
        .search(KB, vector, TOP_K, MIN_SCORE)
        .await
        .map_err(|e| e.to_string())?;
    let mut hits: Vec<(String, _)> = found.into_iter().map(|h| (KB.to_owned(), h)).collect();
    hits.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    hits.truncate(TOP_K);
    Ok(json!({
        "query": query,
        "passages": hits.iter().map(|(kb, h)| json!({
            "source": format!("{kb}/{}", h.chunk_id),
            "title": h.title,
            "text": h.text,
            // Rounded in f64: an f32 rounded to 3 places prints as 0.6940000057220459.
                "score": (f64::from(h.score) * 1000.0).round() / 1000.0,
        })).collect::<Vec<_>>(),
    })
    .to_string())
}

/// Times `queries` lookups after `warmup` untimed ones; returns (ms list, empty answers).
async fn time_lookups(
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    questions: &[String],
    warmup: usize,
) -> Result<(Vec<f64>, usize)> {
    let mut times = Vec::with_capacity(questions.len());
    let mut empty = 0;
    for (i, q) in questions.iter().enumerate() {
        let arguments = json!({ "query": q }).to_string();
        let t = Instant::now();
        let out = lookup(embedder, store, &arguments).await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if out.contains("\"passages\":[]") {
            empty += 1;
        }
        if i >= warmup {
            times.push(ms);
        }
    }
    Ok((times, empty))
}

fn chunks_of(docs: &[switchboard_knowledge::Document]) -> Vec<Chunk> {
    docs.iter()
        .flat_map(|d| chunk_document(d, &CHUNKING))
        .collect()
}

/// The smallest cosine between this encoder's vectors and sentence-transformers' for the
/// committed reference texts (knowledge/fixtures): how far the encoder's shortcuts
/// (half-float weights, summation order) move the embeddings.
fn reference_agreement(model: &LocalMiniLm) -> Result<f64> {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/reference_vectors.json"))?;
    let cases = fixture["cases"].as_array().ok_or("fixture without cases")?;
    let mut worst = 1.0f64;
    for case in cases {
        let text = case["text"].as_str().ok_or("case without text")?;
        let want: Vec<f64> = case["embedding"]
            .as_array()
            .ok_or("case without embedding")?
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        let got = model.embed_blocking(&[text])?.remove(0);
        let dot: f64 = got.iter().zip(&want).map(|(a, b)| f64::from(*a) * b).sum();
        let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
        worst = worst.min(dot / norm);
    }
    Ok(worst)
}

async fn bench_embed(args: &Args) -> Result<()> {
    let model = model(args, 1)?;
    let worst = reference_agreement(&model)?;
    println!(
        "agreement with sentence-transformers (knowledge/fixtures reference texts): smallest cosine {worst:.7}"
    );
    report(json!({"what": "reference_cosine_min", "cosine": worst}));
    let n_queries: usize = args.get("queries", 300)?;
    let n_passages: usize = args.get("passages", 640)?;
    let questions = corpus::questions(n_queries + 20, 7);
    let mut times = Vec::new();
    for (i, q) in questions.iter().enumerate() {
        let t = Instant::now();
        model.embed_blocking(&[q.as_str()])?;
        if i >= 20 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (p50, p95, mean) = summary(times);
    println!(
        "query embedding ({n_queries} short questions, one at a time): p50 {p50:.2} ms, p95 {p95:.2} ms, mean {mean:.2} ms"
    );
    report(
        json!({"what": "query_embedding", "queries": n_queries, "p50_ms": p50, "p95_ms": p95, "mean_ms": mean}),
    );

    let docs = corpus::documents(n_passages, &CHUNKING, 3);
    let texts: Vec<String> = chunks_of(&docs).iter().map(Chunk::embedding_text).collect();
    let mean_chars = texts.iter().map(String::len).sum::<usize>() / texts.len().max(1);
    let t = Instant::now();
    for batch in texts.chunks(64) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        model.embed_blocking(&refs)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let rate = texts.len() as f64 / secs;
    println!(
        "passage embedding ({} chunks of {mean_chars} chars on average, batches of 64): {rate:.1} chunks/s",
        texts.len()
    );
    report(
        json!({"what": "passage_throughput", "chunks": texts.len(), "mean_chars": mean_chars, "chunks_per_s": rate}),
    );
    Ok(())
}

async fn bench_embedded(args: &Args) -> Result<()> {
    let model = model(args, 1)?;
    let n: usize = args.get("chunks", 10_000)?;
    let n_queries: usize = args.get("queries", 300)?;
    let docs = corpus::documents(n, &CHUNKING, 1);
    let dir = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("knowledge.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let store = EmbeddedStore::open(pool.clone()).await?;

    let t = Instant::now();
    let r = ingest(KB, &docs, &CHUNKING, &model, &store).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "ingestion: {} documents, {} chunks embedded and stored in {secs:.1} s: {:.1} chunks/s",
        r.documents,
        r.embedded,
        r.embedded as f64 / secs
    );
    report(
        json!({"what": "ingestion_embedded", "documents": r.documents, "chunks": r.embedded, "seconds": secs, "chunks_per_s": r.embedded as f64 / secs}),
    );

    let questions = corpus::questions(n_queries + 20, 11);
    let (times, empty) = time_lookups(&model, &store, &questions, 20).await?;
    let (p50, p95, mean) = summary(times);
    println!(
        "lookup, embedded store, {n} chunks: p50 {p50:.2} ms, p95 {p95:.2} ms, mean {mean:.2} ms ({empty} of {} answers empty)",
        questions.len()
    );
    report(
        json!({"what": "lookup_embedded", "chunks": store.len(KB), "queries": n_queries, "p50_ms": p50, "p95_ms": p95, "mean_ms": mean}),
    );

    // The search alone, for the split.
    let vectors =
        model.embed_blocking(&questions.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut search = Vec::new();
    for v in &vectors {
        let t = Instant::now();
        store.search(KB, v, TOP_K, MIN_SCORE).await?;
        search.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (sp50, sp95, _) = summary(search);
    println!("  of which the exact search: p50 {sp50:.2} ms, p95 {sp95:.2} ms");
    report(
        json!({"what": "search_embedded", "chunks": store.len(KB), "p50_ms": sp50, "p95_ms": sp95}),
    );
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Vectors for `texts`, from `cache` when it holds them (same count, model and texts),
/// else computed with `model` and written there.
fn cached_vectors(model: &LocalMiniLm, texts: &[String], cache: &Path) -> Result<Vec<Vec<f32>>> {
    let dims = model.dimensions();
    let mut key = Vec::new();
    key.extend_from_slice(model.model_id().as_bytes());
    for t in texts {
        key.extend_from_slice(t.as_bytes());
        key.push(0);
    }
    let key = switchboard_knowledge::chunk::sha256_hex(&key);
    let path = cache.join(format!("corpus-{}-{}.f32", texts.len(), &key[..16]));
    if let Ok(mut f) = std::fs::File::open(&path) {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        if bytes.len() == texts.len() * dims * 4 {
            eprintln!("vectors from {}", path.display());
            return Ok(bytes
                .chunks_exact(dims * 4)
                .map(|row| {
                    row.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                })
                .collect());
        }
    }
    eprintln!(
        "embedding {} chunks once (cached in {})…",
        texts.len(),
        path.display()
    );
    let t = Instant::now();
    let mut out = Vec::with_capacity(texts.len());
    for (i, batch) in texts.chunks(64).enumerate() {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        out.extend(model.embed_blocking(&refs)?);
        if i % 100 == 99 {
            eprintln!(
                "  {} / {} ({:.0} s)",
                out.len(),
                texts.len(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    std::fs::create_dir_all(cache)?;
    let mut f = std::fs::File::create(&path)?;
    for v in &out {
        for x in v {
            f.write_all(&x.to_le_bytes())?;
        }
    }
    Ok(out)
}

/// Answers from precomputed vectors under the real model's id (so ingestion's
/// fingerprints are the real ones).
struct Precomputed {
    vectors: HashMap<String, Vec<f32>>,
    model_id: String,
    dims: usize,
}

impl Embedder for Precomputed {
    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> BoxFuture<'a, std::result::Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            texts
                .iter()
                .map(|t| {
                    self.vectors.get(*t).cloned().ok_or_else(|| {
                        EmbedError::Inference(format!("no precomputed vector for {t:?}"))
                    })
                })
                .collect()
        })
    }

    fn dimensions(&self) -> usize {
        self.dims
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}

/// `v` plus Gaussian noise of `sigma` per component, renormalised (σ 0.025 in 384
/// dimensions: cosine about 0.9 to `v`).
fn jitter(v: &[f32], sigma: f32, rng: &mut StdRng) -> Vec<f32> {
    let mut out: Vec<f32> = v
        .iter()
        .map(|x| {
            // Box-Muller.
            let (u1, u2): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
            x + sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    switchboard_knowledge::embed::normalize(&mut out);
    out
}

async fn bench_pgvector(args: &Args) -> Result<()> {
    let threads: usize = args.get("threads", 1)?;
    let model = model(args, threads)?;
    let n: usize = args.get("chunks", 100_000)?;
    let n_queries: usize = args.get("queries", 300)?;
    let ef: u32 = args.get("ef", DEFAULT_EF_SEARCH)?;
    let efs: Vec<u32> = args
        .string("recall-efs", "40,64,100,200")
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<std::result::Result<_, _>>()?;
    let schema = args.string("schema", "kn_bench");
    let base = std::env::var("SWITCHBOARD_TEST_PG")
        .map_err(|_| "set SWITCHBOARD_TEST_PG (eval \"$(scripts/postgres.sh start)\")")?;
    let cache = PathBuf::from(args.string(
        "cache",
        &format!(
            "{}/.cache/switchboard/bench",
            std::env::var("HOME").unwrap_or_default()
        ),
    ));

    let real: usize = args.get::<usize>("real", 10_000)?.clamp(1, n);
    let docs = corpus::documents(n, &CHUNKING, 1);
    let chunks = chunks_of(&docs);
    let texts: Vec<String> = chunks.iter().map(Chunk::embedding_text).collect();
    let real_vectors = cached_vectors(&model, &texts[..real.min(texts.len())], &cache)?;
    let mut rng = StdRng::seed_from_u64(5);
    let vectors: Vec<Vec<f32>> = (0..texts.len())
        .map(|i| match real_vectors.get(i) {
            Some(v) => v.clone(),
            None => jitter(&real_vectors[i % real_vectors.len()], 0.025, &mut rng),
        })
        .collect();
    let pre = Precomputed {
        vectors: texts.iter().cloned().zip(vectors.iter().cloned()).collect(),
        model_id: model.model_id().to_owned(),
        dims: model.dimensions(),
    };

    let sep = if base.contains('?') { '&' } else { '?' };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        .await?;
    let pg = PgVectorStore::provision(pool.clone(), &schema, model.dimensions()).await?;
    let t = Instant::now();
    let r = ingest(KB, &docs, &CHUNKING, &pre, &pg).await?;
    println!(
        "pgvector: {} chunks ({real} with real vectors; {} written now, {} already there) in {:.1} s",
        r.chunks,
        r.embedded,
        r.unchanged,
        t.elapsed().as_secs_f64()
    );

    let questions = corpus::questions(n_queries + 20, 11);
    let store = pg.clone().with_ef_search(ef);
    let (times, empty) = time_lookups(&model, &store, &questions, 20).await?;
    let (p50, p95, mean) = summary(times);
    println!(
        "lookup, pgvector HNSW ef_search {ef}, {n} chunks: p50 {p50:.2} ms, p95 {p95:.2} ms, mean {mean:.2} ms ({empty} of {} answers empty)",
        questions.len()
    );
    report(
        json!({"what": "lookup_pgvector", "chunks": r.chunks, "ef_search": ef, "queries": n_queries, "p50_ms": p50, "p95_ms": p95, "mean_ms": mean}),
    );

    // Recall@5 against exact search over the same vectors.
    let exact = EmbeddedStore::in_memory();
    let rows: Vec<StoredChunk> = chunks
        .iter()
        .zip(vectors)
        .map(|(c, embedding)| StoredChunk {
            chunk_id: c.id.clone(),
            doc_id: c.doc_id.clone(),
            title: c.title.clone(),
            text: String::new(),
            hash: String::new(),
            embedding,
        })
        .collect();
    for batch in rows.chunks(10_000) {
        exact.upsert(KB, batch).await?;
    }
    drop(rows);
    let qv = model.embed_blocking(&questions.iter().map(String::as_str).collect::<Vec<_>>())?;
    let truth: Vec<Vec<String>> = qv
        .iter()
        .map(|q| {
            exact
                .search_now(KB, q, 5, -1.0)
                .into_iter()
                .map(|h| h.chunk_id)
                .collect()
        })
        .collect();
    for &e in &efs {
        let s = pg.clone().with_ef_search(e);
        let mut found = 0;
        let mut times = Vec::new();
        for (q, want) in qv.iter().zip(&truth) {
            let t = Instant::now();
            let hits = s.search(KB, q, 5, -1.0).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            found += hits.iter().filter(|h| want.contains(&h.chunk_id)).count();
        }
        let recall = found as f64 / (qv.len() * 5) as f64;
        let (sp50, sp95, _) = summary(times);
        println!(
            "  ef_search {e}: recall@5 {recall:.3}, search p50 {sp50:.2} ms, p95 {sp95:.2} ms"
        );
        report(
            json!({"what": "recall_pgvector", "chunks": r.chunks, "ef_search": e, "recall_at_5": recall, "search_p50_ms": sp50, "search_p95_ms": sp95}),
        );
    }
    pool.close().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse()?;
    let started = Arc::new(Instant::now());
    match args.mode.as_str() {
        "embed" => bench_embed(&args).await?,
        "embedded" => bench_embedded(&args).await?,
        "pgvector" => bench_pgvector(&args).await?,
        other => return Err(format!("unknown mode {other:?} (embed, embedded, pgvector)").into()),
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
