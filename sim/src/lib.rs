//! Protocol-faithful simulators for what cannot be reached from a test machine.
//!
//! - [`realtime`]: an OpenAI Realtime API server speaking the GA protocol.
//! - [`caller`]: a Twilio caller: signed webhook, TwiML, a real-time media stream with a
//!   playout clock that echoes marks only when the audio before them has played.
//! - [`playout`]: Twilio's playout clock and mark echoes, for caller and load.
//! - [`signature`]: Twilio's `X-Twilio-Signature`, the one signer for caller and load.
//! - [`mulaw`]: G.711 µ-law coding and synthetic speech-like audio.
//! - [`load`]: many concurrent calls through a relay, with per-frame relay latency.
//! - [`floor`]: the calibration relay with no logic, for benchmark ratios.
//! - [`pinecone`]: a Pinecone REST API server (control plane and per-index data planes).
//! - [`twilio_rest`]: Twilio's REST API (the Call resource update: redirect, hang-up),
//!   driving the simulated callers.
//! - [`kubeapi`]: a Kubernetes API server for operator tests (in-memory, kube 5 semantics).

pub mod caller;
pub mod chat;
pub mod floor;
pub mod kubeapi;
pub mod load;
pub mod mulaw;
pub mod pinecone;
pub mod playout;
pub mod realtime;
pub mod signature;
pub mod twilio_rest;
