//! A BERT encoder forward pass (inference only) on candle tensors, shaped for the small
//! sentence-embedding models: weights are rearranged once at load so a query costs few
//! tensor ops (Q, K and V in one matmul, the attention scale folded into the query
//! weights, position and token-type embeddings pre-summed).
//!
//! Written here rather than taken from candle-transformers: that crate compiles every
//! model it ships, and the fused layout above is what makes a short query fast.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

/// The fields of a Hugging Face `config.json` this encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_act() -> String {
    "gelu".to_owned()
}

/// A dense layer, weight `[out, in]` row-major as stored by PyTorch.
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    /// `x` is `[rows, in]`. Computed as `(W · xᵀ)ᵀ`: with the weight as the row-major
    /// left operand gemm streams it without repacking, which for the few rows of a query
    /// is the whole cost (measured about 1.6× faster than `x · Wᵀ`).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.weight
            .matmul(&x.t()?)?
            .t()?
            .contiguous()?
            .broadcast_add(&self.bias)
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
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
pub(crate) struct Bert {
    word: Tensor,
    /// Position embedding plus the token-type-0 embedding, `[max_positions, hidden]`.
    position_type: Tensor,
    embed_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    max_positions: usize,
}

/// Why weights could not be turned into an encoder.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BertError {
    #[error("missing tensor {0}")]
    Missing(String),
    #[error("unsupported config: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Bert {
    /// Builds the encoder from safetensors-named weights (`embeddings.*`, `encoder.layer.N.*`,
    /// optionally prefixed with `bert.`).
    pub(crate) fn new(
        config: &BertConfig,
        mut tensors: HashMap<String, Tensor>,
    ) -> Result<Self, BertError> {
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
        let prefixed = tensors.contains_key("bert.embeddings.word_embeddings.weight");
        let mut take = |name: &str| -> Result<Tensor, BertError> {
            let key = if prefixed {
                format!("bert.{name}")
            } else {
                name.to_owned()
            };
            tensors
                .remove(&key)
                .ok_or(BertError::Missing(key))?
                .to_dtype(DType::F32)
                .map_err(BertError::from)
        };
        let eps = config.layer_norm_eps as f32;
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;

        let word = take("embeddings.word_embeddings.weight")?;
        check_shape(&word, &[config.vocab_size, hidden], "word_embeddings")?;
        let position = take("embeddings.position_embeddings.weight")?;
        check_shape(
            &position,
            &[config.max_position_embeddings, hidden],
            "position_embeddings",
        )?;
        let token_type = take("embeddings.token_type_embeddings.weight")?;
        let type0 = token_type.get(0)?;
        let position_type = position.broadcast_add(&type0)?.contiguous()?;
        let embed_norm = Norm {
            weight: take("embeddings.LayerNorm.weight")?,
            bias: take("embeddings.LayerNorm.bias")?,
            eps,
        };

        let scale = 1.0 / ((hidden / heads) as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let mut dense = |name: &str| -> Result<(Tensor, Tensor), BertError> {
                Ok((
                    take(&format!("{p}.{name}.weight"))?,
                    take(&format!("{p}.{name}.bias"))?,
                ))
            };
            let (qw, qb) = dense("attention.self.query")?;
            let (kw, kb) = dense("attention.self.key")?;
            let (vw, vb) = dense("attention.self.value")?;
            let (ow, ob) = dense("attention.output.dense")?;
            let (iw, ib) = dense("intermediate.dense")?;
            let (fw, fb) = dense("output.dense")?;
            check_shape(&qw, &[hidden, hidden], "attention.self.query")?;
            check_shape(&iw, &[config.intermediate_size, hidden], "intermediate")?;
            // Scaling the query projection scales q·k the same way as dividing scores.
            let qw = (qw * scale)?;
            let qb = (qb * scale)?;
            let qkv = Dense {
                weight: Tensor::cat(&[qw, kw, vw], 0)?.contiguous()?,
                bias: Tensor::cat(&[qb, kb, vb], 0)?,
            };
            let mut norm = |name: &str| -> Result<Norm, BertError> {
                Ok(Norm {
                    weight: take(&format!("{p}.{name}.weight"))?,
                    bias: take(&format!("{p}.{name}.bias"))?,
                    eps,
                })
            };
            let attn_norm = norm("attention.output.LayerNorm")?;
            let ffn_norm = norm("output.LayerNorm")?;
            layers.push(Layer {
                qkv,
                attn_out: Dense {
                    weight: ow,
                    bias: ob,
                },
                attn_norm,
                ffn_in: Dense {
                    weight: iw,
                    bias: ib,
                },
                ffn_out: Dense {
                    weight: fw,
                    bias: fb,
                },
                ffn_norm,
            });
        }
        Ok(Self {
            word,
            position_type,
            embed_norm,
            layers,
            heads,
            hidden,
            max_positions: config.max_position_embeddings,
        })
    }

    /// Longest input the position table allows.
    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Hidden size (the embedding dimension after pooling).
    pub(crate) fn hidden(&self) -> usize {
        self.hidden
    }

    /// Last hidden states `[batch, seq, hidden]` for `ids` (`[batch, seq]`, u32). `mask`
    /// (`[batch, seq]`, 1 for real tokens) is needed only when rows are padded.
    pub(crate) fn forward(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let heads = self.heads;
        let head_dim = self.hidden / heads;
        let rows = batch * seq;

        let words = self.word.index_select(&ids.flatten_all()?, 0)?;
        let positions = self.position_type.narrow(0, 0, seq)?;
        let x = words
            .reshape((batch, seq, self.hidden))?
            .broadcast_add(&positions)?;
        let mut x = self.embed_norm.forward(&x)?.reshape((rows, self.hidden))?;

        // Additive mask: 0 for real tokens, a large negative for padding.
        let bias = match mask {
            Some(m) => Some(((m.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((batch, 1, 1, seq))?),
            None => None,
        };

        for layer in &self.layers {
            let qkv = layer
                .qkv
                .forward(&x)?
                .reshape((batch, seq, 3, heads, head_dim))?
                .permute((2, 0, 3, 1, 4))?;
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let mut scores = q.matmul(&k.t()?)?;
            if let Some(bias) = &bias {
                scores = scores.broadcast_add(bias)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((rows, self.hidden))?;
            let attn = layer.attn_out.forward(&context)?;
            x = layer.attn_norm.forward(&(attn + &x)?)?;
            let inner = gelu(&layer.ffn_in.forward(&x)?)?;
            let out = layer.ffn_out.forward(&inner)?;
            x = layer.ffn_norm.forward(&(out + &x)?)?;
        }
        x.reshape((batch, seq, self.hidden))
    }
}

fn check_shape(t: &Tensor, want: &[usize], what: &str) -> Result<(), BertError> {
    if t.dims() == want {
        Ok(())
    } else {
        Err(BertError::Unsupported(format!(
            "{what} has shape {:?}, config says {want:?}",
            t.dims()
        )))
    }
}

/// Exact (erf) GELU, as BERT uses, computed with a branch-free erf the compiler can
/// vectorise; candle's `gelu_erf` calls libm's scalar `erff` per element, which was a
/// tenth of a query's time.
fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    let shape = x.shape().clone();
    let mut data = x.flatten_all()?.to_vec1::<f32>()?;
    for v in &mut data {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
    Tensor::from_vec(data, shape, x.device())
}

/// erf as a rational function of x² on [-4, 4] (the approximation Eigen and XLA use for
/// f32; absolute error below 1e-6, and erf(±4) is ±1 to f32 precision).
#[inline]
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

/// Mean of the hidden states over real tokens, per row: `hidden` is `[batch, seq, dim]`
/// flattened, `lengths[b]` the count of real (unpadded, leading) tokens of row `b`.
pub(crate) fn mean_pool(
    hidden: &[f32],
    seq: usize,
    dim: usize,
    lengths: &[usize],
) -> Vec<Vec<f32>> {
    lengths
        .iter()
        .enumerate()
        .map(|(b, &len)| {
            let mut acc = vec![0f32; dim];
            let row = &hidden[b * seq * dim..(b * seq + len) * dim];
            for token in row.chunks_exact(dim) {
                for (a, v) in acc.iter_mut().zip(token) {
                    *a += v;
                }
            }
            let n = len.max(1) as f32;
            for a in &mut acc {
                *a /= n;
            }
            acc
        })
        .collect()
}

/// The device every tensor here lives on.
pub(crate) fn device() -> Device {
    Device::Cpu
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
