//! Switchboard gateway: answers Twilio calls for the tenants it serves and bridges their
//! audio to the OpenAI Realtime API (GA).
//!
//! Layout, from the bottom up (no module uses one above it; `tests/tests/layout.rs`
//! checks there are no cycles): [`clock`], [`secrets`], [`drain`], [`metrics`],
//! [`open_files`] (the limit raised at startup), [`edge`]
//! (the HTTP server's timeouts and connection caps), [`cost`], [`api_keys`] and [`access`]
//! (per-key rate limits, console sessions) are leaves, and so is [`admission`] (stream tokens, the admission table, call slots); [`twilio`] and [`realtime`] hold wire protocols; [`knowledge`] answers
//! lookups; [`tools`] defines each tool the model may call (name, schema, runner);
//! [`tenants`] the tenants served and their agents' settings; [`state`] what handlers and
//! call tasks share; [`call`] the per-call state machine and the task that drives it;
//! [`rotation`] the call store's rotatable database URL;
//! [`recording`] call recordings (writer, WAV, upload queue, retention);
//! [`http`] the thin handlers; [`server`] wires it together. Call records go through the
//! `switchboard-store` crate's write-behind queue.

pub mod access;
pub mod admission;
pub mod analysis;
pub mod api_keys;
pub mod aws;
pub mod call;
pub mod cli;
pub mod clock;
pub mod cost;
pub mod drain;
pub mod edge;
pub mod endings;
pub mod http;
pub mod knowledge;
pub mod metrics;
pub mod open_files;
pub mod preconnect;
pub mod realtime;
pub mod recording;
pub mod records;
pub mod reserve;
pub mod rotation;
pub mod scan;
pub mod secrets;
pub mod server;
pub mod state;
pub mod tenants;
pub mod tools;
pub mod twilio;

#[cfg(test)]
mod mutations;

pub use clock::unix_ms;
