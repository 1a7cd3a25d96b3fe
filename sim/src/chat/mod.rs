//! Simulated OpenAI Chat Completions (`POST /v1/chat/completions`) for post-call analysis:
//! the request is checked the way the API checks it (model, messages, `response_format`
//! with a strict JSON schema: every object closed with `additionalProperties: false` and
//! every property required), and the answer fills the request's schema deterministically
//! from the transcript in the messages (`answer.rs` says how).
//!
//! Responses have the API's shape (`chat.completion`, `choices[0].message.content` a JSON
//! string, `usage`); errors its `{"error":{"message","type","param","code"}}` body: 401
//! for a missing or wrong bearer key, 400 for a malformed request, 404 for another path.
//!
//! Test knobs: [`ChatSim::fail_next`] (the next N requests answer a given status, e.g.
//! 500 or 429) and the request log ([`ChatSim::requests`]).
//!
//! Modules: `validate` (the request's checks), `answer` (the deterministic answer; both
//! without I/O), `server` (HTTP).

mod answer;
mod server;
mod validate;

pub use answer::{answer_for, sentiment_of};
pub use server::{ChatSim, ChatSimConfig};
pub use validate::{RequestError, check_request};
