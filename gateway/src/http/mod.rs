//! The HTTP surface: Twilio webhooks, the media stream upgrade, health, metrics, the
//! admin API (`/api/v1`) and the console (`/console/`). Handlers are thin; decisions live in the modules they call.

use axum::Router;
use axum::routing::{any, get, post};

use crate::state::AppState;

mod after_stream;
mod console;
mod dial_done;
mod form;
mod health;
mod status;
mod stream;
pub mod v1;
mod voice;
#[cfg(test)]
mod webhook_tests;

pub use v1::openapi_json;

/// The gateway's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/twilio/voice", post(voice::incoming_call))
        .route("/twilio/status", post(status::call_status))
        .route(
            "/twilio/stream/{tenant}/{call_sid}",
            any(stream::media_stream),
        )
        .route(
            "/twilio/stream/{tenant}/{call_sid}/{leg}",
            any(stream::leg_stream),
        )
        .route(
            "/twilio/dial-done/{tenant}/{call_sid}/{leg}/{target}",
            post(dial_done::dial_done),
        )
        .route(
            "/twilio/voicemail/{tenant}/{call_sid}",
            post(dial_done::voicemail),
        )
        .route(
            "/twilio/after-stream/{tenant}/{call_sid}",
            post(after_stream::after_stream),
        )
        .route("/metrics", get(health::metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(v1::router())
        .merge(console::router())
        .with_state(state)
}
