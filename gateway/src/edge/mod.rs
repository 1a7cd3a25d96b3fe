//! The public edge: how the gateway's HTTP server treats its peers before any route runs.
//!
//! Every limit here exists because the gateway faces the internet (Twilio, and anyone who
//! finds the address): a header-read timeout against clients that trickle bytes, a
//! request timeout and a body limit on the webhooks, caps on open connections for the
//! process and per peer address, and the options of the drain window. See the Security
//! model in docs/operations.md.

mod limits;
mod metrics;
mod options;
mod serve;

pub use limits::{ConnectionLimits, ConnectionPermit, Refused};
pub use metrics::EdgeMetrics;
pub use options::{
    DEFAULT_DRAIN_MIN_SECONDS, DEFAULT_HEADER_READ_TIMEOUT_SECONDS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_REQUEST_TIMEOUT_SECONDS, DEFAULT_TRUSTED_PROXIES,
    MAX_BODY_BYTES, MAX_BUF_BYTES, MAX_HEAD_BYTES, Networks, ServeOptions,
};
pub use serve::{layered, serve};
