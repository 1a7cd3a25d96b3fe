//! Simulated OpenAI Realtime server (GA protocol), the test oracle for the gateway.
//!
//! It speaks the GA wire format only (`session.type`, `audio.input/output`,
//! `response.output_audio.*`, `conversation.item.added/done`) and refuses the beta shape
//! the way OpenAI does. Caller turns are detected with an energy VAD over the appended
//! audio; answers come from a [`Turn`] script and are streamed as synthetic speech paced
//! at [`RealtimeConfig::speed`] × real time. Every session is recorded in a
//! [`SessionLog`] for tests to assert on.
//!
//! Modules: `config` (script and knobs), `settings` (session object and `session.update`
//! validation), `vad`, `codec`/`audio` (formats and the assistant's voice), `script`
//! (what gets said), `session`/`items`/`respond` (the per-connection state machine),
//! `answer` (a spoken sentence from a tool output or a key press), `log`, `protocol` (wire helpers), `server` (I/O), `wire` (the handshake check and the
//! session/item shapes the load responder shares).

mod answer;
mod audio;
mod codec;
mod config;
mod items;
mod log;
mod protocol;
mod respond;
mod script;
mod server;
mod session;
mod settings;
mod vad;
pub(crate) mod wire;

pub use config::{RealtimeConfig, ToolRequest, Turn, default_script};
pub use log::{ResponseLog, SessionLog, TruncateLog};
pub use script::IDLE_REPLY;
pub use server::{RealtimeSim, serve};
