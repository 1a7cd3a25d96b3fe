//! `POST /twilio/status`: call status callbacks.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::form;
use super::voice::tenant_for;
use crate::state::AppState;
use crate::twilio::media;
use switchboard_store::{CallStatusUpdate, StoreOp};

const ROUTE: &str = "status";

fn reply(state: &AppState, status: StatusCode) -> Response {
    state
        .metrics
        .webhook_responses
        .with_label_values(&[ROUTE, status.as_str()])
        .inc();
    status.into_response()
}

/// Records a call's status and duration. Twilio may deliver callbacks out of order; the
/// store keeps the one with the highest `SequenceNumber`.
pub async fn call_status(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form::parse(&body);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let Some(tenant) = tenant_for(&state, &params) else {
        return reply(&state, StatusCode::NOT_FOUND);
    };
    if !form::signed(&tenant, &state.public_base, path, &headers, &params, false) {
        state
            .metrics
            .signature_failures
            .with_label_values(&[ROUTE])
            .inc();
        tracing::warn!(
            tenant = tenant.name,
            call_sid = form::get(&params, "CallSid").unwrap_or(""),
            "refused status callback: bad or missing X-Twilio-Signature"
        );
        return reply(&state, StatusCode::FORBIDDEN);
    }
    let (Some(call_sid), Some(status)) = (
        form::get(&params, "CallSid"),
        form::get(&params, "CallStatus"),
    ) else {
        return reply(&state, StatusCode::BAD_REQUEST);
    };
    if !media::is_sid(call_sid) || status.len() > 32 {
        return reply(&state, StatusCode::BAD_REQUEST);
    }
    let sequence_number = form::get(&params, "SequenceNumber")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let duration_s = form::get(&params, "CallDuration").and_then(|s| s.parse().ok());
    state
        .writer
        .submit(StoreOp::Status(CallStatusUpdate {
            call_sid: call_sid.to_string(),
            tenant: tenant.name.clone(),
            status: status.to_string(),
            duration_s,
            sequence_number,
        }))
        .await;
    reply(&state, StatusCode::NO_CONTENT)
}
