//! Switchboard gateway: answers Twilio calls for the tenants it serves and bridges their
//! audio to the OpenAI Realtime API (GA).
//!
//! Layout: [`twilio`] and [`realtime`] hold wire protocols; [`call`] the per-call state
//! machine and the task that drives it; [`http`] the thin handlers; [`store`] call
//! records behind a write-behind queue; [`server`] wires it together.

pub mod call;
pub mod cli;
pub mod drain;
pub mod http;
pub mod knowledge;
pub mod metrics;
pub mod preconnect;
pub mod realtime;
pub mod server;
pub mod store;
pub mod tenants;
pub mod tools;
pub mod twilio;

pub use http::unix_ms;
