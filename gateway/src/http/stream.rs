//! The media stream WebSocket upgrade.

use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::form;
use crate::call::task;
use crate::state::AppState;

/// Largest WebSocket message accepted from Twilio. A media message is ~300 bytes; the
/// `start` message with custom parameters a few KB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Read buffer of a media stream socket. Messages are ~300 bytes; the 128 KiB default
/// would cost every call more memory than everything else it holds.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The first agent leg's stream: `/twilio/stream/{tenant}/{call_sid}`.
pub async fn media_stream(
    state: State<AppState>,
    Path((tenant, call_sid)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    leg_stream(state, Path((tenant, call_sid, 1)), uri, headers, ws).await
}

/// A later agent leg's stream (the caller back after a transfer nobody answered):
/// `/twilio/stream/{tenant}/{call_sid}/{leg}`.
pub async fn leg_stream(
    State(state): State<AppState>,
    Path((tenant, call_sid, leg)): Path<(String, String, u32)>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(tenant) = state.tenants.by_name(&tenant).cloned() else {
        state
            .metrics
            .webhook_responses
            .with_label_values(&["stream", "404"])
            .inc();
        return StatusCode::NOT_FOUND.into_response();
    };
    if !form::signed_or_rotated(&state, &tenant, uri.path(), &headers, &[], true).await {
        state
            .metrics
            .signature_failures
            .with_label_values(&["stream"])
            .inc();
        state
            .metrics
            .webhook_responses
            .with_label_values(&["stream", "403"])
            .inc();
        tracing::warn!(
            tenant = tenant.name,
            call_sid,
            "refused media stream: bad or missing X-Twilio-Signature"
        );
        return StatusCode::FORBIDDEN.into_response();
    }
    // A CallSid whose stream was already opened on this replica (live or ended) is a
    // replayed handshake: refused before the upgrade. The token itself is checked on
    // `start` (it travels in the custom parameters), before any Realtime session is
    // adopted or opened; a stream whose webhook another replica answered is admitted
    // there (admission.rs).
    if state
        .admissions
        .is_spent(&task::admission_key(&call_sid, leg))
    {
        state
            .metrics
            .stream_refusals
            .with_label_values(&["replay"])
            .inc();
        state
            .metrics
            .webhook_responses
            .with_label_values(&["stream", "409"])
            .inc();
        tracing::warn!(
            tenant = tenant.name,
            call_sid,
            "refused media stream: this call's stream was already opened"
        );
        return StatusCode::CONFLICT.into_response();
    }
    state
        .metrics
        .webhook_responses
        .with_label_values(&["stream", "101"])
        .inc();
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| task::run(state, tenant, call_sid, leg, socket))
}
