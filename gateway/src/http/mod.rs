//! The HTTP surface: Twilio webhooks, the media stream upgrade, health, metrics and the
//! call record API. Handlers are thin; decisions live in the modules they call.

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};

use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::preconnect::Parking;
use crate::realtime::RealtimeBackend;
use crate::store::{CallStore, WriteBehind};
use crate::tenants::Tenants;

mod api;
mod form;
mod health;
mod status;
mod stream;
mod voice;

pub use voice::unix_ms;

/// Everything handlers share.
pub struct Shared {
    /// Tenants served.
    pub tenants: Tenants,
    /// Metrics.
    pub metrics: Metrics,
    /// Pre-connected sessions.
    pub parking: Parking,
    /// How Realtime sessions are opened.
    pub backend: Arc<dyn RealtimeBackend>,
    /// Where records are written (never blocks a call).
    pub writer: WriteBehind,
    /// Where records are read from.
    pub store: Arc<dyn CallStore>,
    /// Public base URL (`https://gw.example.com`), no trailing slash.
    pub public_base: String,
    /// Concurrent call limit.
    pub max_calls: usize,
    /// Whether to pre-connect on the webhook.
    pub preconnect: bool,
    /// Shutdown state.
    pub drain: Arc<Drain>,
    /// Tools answered outside the call's state machine.
    pub tools: Arc<dyn crate::tools::ToolRunner>,
}

/// Handler state.
pub type AppState = Arc<Shared>;

/// The gateway's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/twilio/voice", post(voice::incoming_call))
        .route("/twilio/status", post(status::call_status))
        .route(
            "/twilio/stream/{tenant}/{call_sid}",
            any(stream::media_stream),
        )
        .route("/api/calls/{call_sid}", get(api::get_call))
        .route("/metrics", get(health::metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}

impl Shared {
    /// The WebSocket base for stream URLs (`wss://…` for an `https://` public URL).
    pub fn ws_base(&self) -> String {
        if let Some(rest) = self.public_base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.public_base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.public_base.clone()
        }
    }
}
