//! The in-process BERT encoder behind Switchboard's local embedder: token ids in, last
//! hidden states out, on the CPU, without a tensor library.
//!
//! [`Bert::load`] turns a Hugging Face `config.json` ([`BertConfig`]) and a
//! `model.safetensors` file into an encoder whose weights are packed once for the SIMD
//! dense layers; [`Bert::forward`] runs a ragged batch (no padding) and [`mean_pool`]
//! turns its output into one vector per input. Tokenising is the caller's job (the
//! knowledge crate's MiniLM embedder does it with `tokenizers`).
//!
//! Its own crate so that only this arithmetic gets the optimised dev profile the tests
//! need (see the workspace's `Cargo.toml`), not everything that embeds text.

mod bert;
mod kernel;

pub use bert::{Bert, BertConfig, BertError, mean_pool};
