//! A BERT encoder forward pass (inference only) on plain `f32` buffers, shaped for the
//! small sentence-embedding models: weights are rearranged once at load so a query costs
//! little besides its arithmetic (Q, K and V in one packed dense layer, the attention
//! scale folded into the query weights, position and token-type embeddings pre-summed).
//!
//! A batch is ragged: the tokens of every text are stacked without padding, the dense
//! layers run over all of them at once, and attention runs per text over its own span.
//! No compute goes to padding and no mask is needed.
//!
//! Written here rather than taken from candle or candle-transformers: for the ten-odd
//! tokens of a caller's question, a general tensor library's per-operation overhead
//! (allocation, repacking, thread dispatch) was most of the 9 ms a query took; see
//! the `kernel` module for the dense layer.

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::kernel::Dense;

/// The fields of a Hugging Face `config.json` this encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Rows of the word embedding table.
    pub vocab_size: usize,
    /// Width of every hidden state (the embedding dimension after pooling).
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of each layer's feed-forward block.
    pub intermediate_size: usize,
    /// Rows of the position table: the longest input in tokens.
    pub max_position_embeddings: usize,
    /// Layer normalisation epsilon (BERT's 1e-12 when absent).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Feed-forward activation; only `gelu` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Only `absolute` (or absent) is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// `bert` (RoBERTa-family files use the same tensor names but other position ids,
    /// and would load and embed wrongly without a word).
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_act() -> String {
    "gelu".to_owned()
}

/// Layer normalisation parameters.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    /// `x = LayerNorm(x + residual)` row by row (`residual` empty: `LayerNorm(x)`).
    #[inline(always)]
    fn add_forward(&self, x: &mut [f32], residual: &[f32]) {
        let dim = self.weight.len();
        for (r, row) in x.chunks_exact_mut(dim).enumerate() {
            if !residual.is_empty() {
                for (v, a) in row.iter_mut().zip(&residual[r * dim..(r + 1) * dim]) {
                    *v += a;
                }
            }
            let n = dim as f32;
            let mean = row.iter().sum::<f32>() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = (*v - mean) * inv * w + b;
            }
        }
    }
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    ffn_in: Dense,
    ffn_out: Dense,
    ffn_norm: Norm,
}

/// The loaded encoder.
pub struct Bert {
    /// `[vocab][hidden]` as IEEE half floats: only a few rows are read per input, and at
    /// half size the table (30k × 384 for MiniLM) costs 23 MB of the process instead of 47.
    word: Vec<half::f16>,
    vocab: usize,
    /// Position embedding plus the token-type-0 embedding, `[max_positions][hidden]`.
    position_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    max_positions: usize,
}

/// Why weights could not be turned into an encoder, or an input not encoded.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    /// The weights file lacks a tensor the config calls for (named).
    #[error("missing tensor {0}")]
    Missing(String),
    /// The config or a tensor's shape or type is one this encoder does not run.
    #[error("unsupported config: {0}")]
    Unsupported(String),
    /// The weights file is not valid safetensors.
    #[error("model.safetensors: {0}")]
    Format(String),
    /// An input holds a token id past the word embedding table.
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The offending id.
        id: u32,
        /// Rows of the word embedding table.
        vocab: usize,
    },
    /// An input is longer than the position table.
    #[error("input of {len} tokens is longer than the model's {max} positions")]
    TooLong {
        /// Tokens in the input.
        len: usize,
        /// The model's position count.
        max: usize,
    },
}

/// The tensors of a safetensors file, converted to `f32` on demand.
struct Weights<'a> {
    file: SafeTensors<'a>,
    prefix: &'static str,
}

impl Weights<'_> {
    /// The first dimension of tensor `name`.
    fn rows(&self, name: &str) -> Result<usize, BertError> {
        let key = format!("{}{name}", self.prefix);
        let view = self
            .file
            .tensor(&key)
            .map_err(|_| BertError::Missing(key.clone()))?;
        Ok(view.shape().first().copied().unwrap_or(0))
    }

    /// The tensor `name` (with the file's `bert.` prefix, if it has one) as `f32`, checked
    /// against `shape`.
    fn take(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, BertError> {
        let key = format!("{}{name}", self.prefix);
        let view = self
            .file
            .tensor(&key)
            .map_err(|_| BertError::Missing(key.clone()))?;
        if view.shape() != shape {
            return Err(BertError::Unsupported(format!(
                "{key} has shape {:?}, config says {shape:?}",
                view.shape()
            )));
        }
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(BertError::Unsupported(format!("{key} has dtype {other:?}")));
            }
        };
        Ok(values)
    }
}

impl Bert {
    /// Builds the encoder from a safetensors file with the Hugging Face BERT names
    /// (`embeddings.*`, `encoder.layer.N.*`, optionally prefixed with `bert.`).
    pub fn load(config: &BertConfig, safetensors: &[u8]) -> Result<Self, BertError> {
        if config.model_type.as_deref().is_some_and(|t| t != "bert") {
            return Err(BertError::Unsupported(format!(
                "model_type {} (only bert)",
                config.model_type.as_deref().unwrap_or_default()
            )));
        }
        if config.hidden_size == 0
            || config.intermediate_size == 0
            || config.vocab_size == 0
            || config.max_position_embeddings < 2
        {
            return Err(BertError::Unsupported(
                "hidden_size, intermediate_size and vocab_size must be positive and \
                 max_position_embeddings at least 2"
                    .into(),
            ));
        }
        if config.hidden_act != "gelu" {
            return Err(BertError::Unsupported(format!(
                "hidden_act {}",
                config.hidden_act
            )));
        }
        if config
            .position_embedding_type
            .as_deref()
            .is_some_and(|t| t != "absolute")
        {
            return Err(BertError::Unsupported(
                "position_embedding_type other than absolute".into(),
            ));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(BertError::Unsupported(
                "hidden_size not divisible by heads".into(),
            ));
        }
        let file =
            SafeTensors::deserialize(safetensors).map_err(|e| BertError::Format(e.to_string()))?;
        let prefix = if file
            .tensor("bert.embeddings.word_embeddings.weight")
            .is_ok()
        {
            "bert."
        } else {
            ""
        };
        let w = Weights { file, prefix };
        let eps = config.layer_norm_eps as f32;
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        let inner = config.intermediate_size;

        let word = w
            .take(
                "embeddings.word_embeddings.weight",
                &[config.vocab_size, hidden],
            )?
            .into_iter()
            .map(half::f16::from_f32)
            .collect();
        let mut position_type = w.take(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, hidden],
        )?;
        // Only token type 0 is ever used (single-segment inputs).
        let types = w.rows("embeddings.token_type_embeddings.weight")?;
        let token_type = w.take("embeddings.token_type_embeddings.weight", &[types, hidden])?;
        let type0 = token_type
            .get(..hidden)
            .ok_or_else(|| BertError::Unsupported("token_type_embeddings has no rows".into()))?;
        for row in position_type.chunks_exact_mut(hidden) {
            for (p, t) in row.iter_mut().zip(type0) {
                *p += t;
            }
        }
        let norm = |name: &str| -> Result<Norm, BertError> {
            Ok(Norm {
                weight: w.take(&format!("{name}.weight"), &[hidden])?,
                bias: w.take(&format!("{name}.bias"), &[hidden])?,
                eps,
            })
        };
        let embed_norm = norm("embeddings.LayerNorm")?;

        let scale = 1.0 / ((hidden / heads) as f32).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let dense = |name: &str, outputs: usize, inputs: usize| {
                Ok::<_, BertError>((
                    w.take(&format!("{p}.{name}.weight"), &[outputs, inputs])?,
                    w.take(&format!("{p}.{name}.bias"), &[outputs])?,
                ))
            };
            let (mut qw, mut qb) = dense("attention.self.query", hidden, hidden)?;
            let (kw, kb) = dense("attention.self.key", hidden, hidden)?;
            let (vw, vb) = dense("attention.self.value", hidden, hidden)?;
            // Scaling the query projection scales q·k the same way as dividing scores.
            qw.iter_mut().chain(qb.iter_mut()).for_each(|v| *v *= scale);
            let qkv_w = [qw, kw, vw].concat();
            let qkv_b = [qb, kb, vb].concat();
            let (ow, ob) = dense("attention.output.dense", hidden, hidden)?;
            let (iw, ib) = dense("intermediate.dense", inner, hidden)?;
            let (fw, fb) = dense("output.dense", hidden, inner)?;
            layers.push(Layer {
                qkv: Dense::new(&qkv_w, qkv_b, 3 * hidden, hidden),
                attn_out: Dense::new(&ow, ob, hidden, hidden),
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                ffn_in: Dense::new(&iw, ib, inner, hidden),
                ffn_out: Dense::new(&fw, fb, hidden, inner),
                ffn_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word,
            vocab: config.vocab_size,
            position_type,
            embed_norm,
            layers,
            heads,
            hidden,
            max_positions: config.max_position_embeddings,
        })
    }

    /// Longest input the position table allows.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Hidden size (the embedding dimension after pooling).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Last hidden states of every token of every input, stacked: `[Σ len][hidden]`, the
    /// rows of input `k` following those of input `k - 1`.
    pub fn forward(&self, inputs: &[&[u32]]) -> Result<Vec<f32>, BertError> {
        // Everything between the dense layers (attention, GELU, layer norms) is plain
        // loops; run inside the widest SIMD level the CPU has so the compiler vectorises
        // them for it (they were a third of a passage's time at SSE2 width).
        pulp::Arch::new().dispatch(Forward { bert: self, inputs })
    }

    #[inline(always)]
    fn forward_impl(&self, inputs: &[&[u32]]) -> Result<Vec<f32>, BertError> {
        let h = self.hidden;
        let rows: usize = inputs.iter().map(|t| t.len()).sum();
        let mut x = vec![0f32; rows * h];
        let mut r = 0;
        for tokens in inputs {
            if tokens.len() > self.max_positions {
                return Err(BertError::TooLong {
                    len: tokens.len(),
                    max: self.max_positions,
                });
            }
            for (pos, &id) in tokens.iter().enumerate() {
                let id_usize = id as usize;
                if id_usize >= self.vocab {
                    return Err(BertError::TokenOutOfRange {
                        id,
                        vocab: self.vocab,
                    });
                }
                let word = &self.word[id_usize * h..(id_usize + 1) * h];
                let position = &self.position_type[pos * h..(pos + 1) * h];
                for ((v, a), b) in x[r * h..(r + 1) * h].iter_mut().zip(word).zip(position) {
                    *v = a.to_f32() + b;
                }
                r += 1;
            }
        }
        self.embed_norm.add_forward(&mut x, &[]);

        let inner = self.layers.first().map_or(0, |l| l.ffn_in.outputs());
        let mut qkv = vec![0f32; rows * 3 * h];
        let mut context = vec![0f32; rows * h];
        let mut projected = vec![0f32; rows * h];
        let mut intermediate = vec![0f32; rows * inner];
        let mut scores = Vec::new();
        for layer in &self.layers {
            debug_assert_eq!(layer.qkv.inputs(), h);
            layer.qkv.forward(&x, rows, &mut qkv);
            let mut start = 0;
            for tokens in inputs {
                self.attend(&qkv, start, tokens.len(), &mut context, &mut scores);
                start += tokens.len();
            }
            layer.attn_out.forward(&context, rows, &mut projected);
            layer.attn_norm.add_forward(&mut x, &projected);
            layer.ffn_in.forward(&x, rows, &mut intermediate);
            gelu(&mut intermediate);
            layer.ffn_out.forward(&intermediate, rows, &mut projected);
            layer.ffn_norm.add_forward(&mut x, &projected);
        }
        Ok(x)
    }

    /// Self-attention of one input (rows `start..start + len`) from the stacked Q|K|V
    /// rows into `context`.
    #[inline(always)]
    fn attend(
        &self,
        qkv: &[f32],
        start: usize,
        len: usize,
        context: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        let h = self.hidden;
        let head_dim = h / self.heads;
        let row = |r: usize| &qkv[(start + r) * 3 * h..(start + r + 1) * 3 * h];
        scores.resize(len, 0.0);
        for head in 0..self.heads {
            let cols = head * head_dim..(head + 1) * head_dim;
            for a in 0..len {
                let q = &row(a)[cols.clone()];
                let mut max = f32::NEG_INFINITY;
                for (b, s) in scores.iter_mut().enumerate() {
                    let k = &row(b)[h + cols.start..h + cols.end];
                    *s = dot(q, k);
                    max = max.max(*s);
                }
                let mut total = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    total += *s;
                }
                let out = &mut context[(start + a) * h + cols.start..(start + a) * h + cols.end];
                out.fill(0.0);
                for (b, s) in scores.iter().enumerate() {
                    let p = s / total;
                    let v = &row(b)[2 * h + cols.start..2 * h + cols.end];
                    for (o, v) in out.iter_mut().zip(v) {
                        *o += p * v;
                    }
                }
            }
        }
    }
}

/// [`Bert::forward`] as a `pulp` operation, so it is compiled for each SIMD level.
struct Forward<'a> {
    bert: &'a Bert,
    inputs: &'a [&'a [u32]],
}

impl pulp::WithSimd for Forward<'_> {
    type Output = Result<Vec<f32>, BertError>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
        self.bert.forward_impl(self.inputs)
    }
}

/// `a · b` with eight independent partial sums: a single running sum is a chain of
/// dependent additions the compiler may not reorder, which made attention a third of a
/// passage's time; eight lanes vectorise.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    for (x, y) in a8.iter().zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Exact (erf) GELU, as BERT uses, in place, with a branch-free erf the compiler can
/// vectorise (libm's scalar `erff` per element was a tenth of a query's time).
#[inline(always)]
fn gelu(x: &mut [f32]) {
    for v in x {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf as a rational function of x² on [-4, 4] (the approximation Eigen and XLA use for
/// f32; absolute error below 1e-6, and erf(±4) is ±1 to f32 precision).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_2e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_3e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

/// Mean of the hidden states of each input over its tokens: `hidden` is the stacked
/// `[Σ lengths][dim]` output of [`Bert::forward`].
pub fn mean_pool(hidden: &[f32], dim: usize, lengths: &[usize]) -> Vec<Vec<f32>> {
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            let mut acc = vec![0f32; dim];
            for token in hidden[start * dim..(start + len) * dim].chunks_exact(dim) {
                for (a, v) in acc.iter_mut().zip(token) {
                    *a += v;
                }
            }
            start += len;
            let n = len.max(1) as f32;
            for a in &mut acc {
                *a /= n;
            }
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::erf;

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let want = libm_erf(f64::from(x));
            worst = worst.max((f64::from(erf(x)) - want).abs());
        }
        assert!(worst < 2e-6, "max error {worst}");
    }

    /// erf by its Taylor series (|x| < 3) or the asymptotic erfc expansion, in f64:
    /// an independent reference accurate far beyond f32.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() >= 3.0 {
            let mut term = 1.0;
            let mut sum = 1.0;
            for n in 1..8 {
                term *= -f64::from(2 * n - 1) / (2.0 * x * x);
                sum += term;
            }
            let erfc = (-x * x).exp() / (x.abs() * std::f64::consts::PI.sqrt()) * sum;
            return x.signum() * (1.0 - erfc);
        }
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / f64::from(n);
            sum += term / f64::from(2 * n + 1);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
