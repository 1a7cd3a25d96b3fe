//! The HTTP surface: Twilio webhooks, the media stream upgrade, health, metrics and the
//! call record API. Handlers are thin; decisions live in the modules they call.

use axum::Router;
use axum::routing::{any, get, post};

use crate::state::AppState;

mod after_stream;
mod api;
mod dial_done;
mod form;
mod health;
mod status;
mod stream;
mod voice;
#[cfg(test)]
mod webhook_tests;

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
        .route("/api/calls/{call_sid}", get(api::get_call))
        .route("/metrics", get(health::metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}
