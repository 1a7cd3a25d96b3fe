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
    // As on the voice webhook: nothing tenant-specific is revealed before a signature
    // checks out. A callback for a served number is checked against its tenant; any other
    // against the tenants of the account it names; an unknown tenant and a bad signature
    // get the same bare 403.
    let account = form::get(&params, "AccountSid").unwrap_or_default();
    let signed = match form::get(&params, "To").and_then(|to| state.tenants.by_number(to)) {
        Some(t) => form::signed_or_rotated(&state, t, path, &headers, &params, false).await,
        None => form::signed_by_account(
            state.tenants.by_account(account),
            &state.public_base,
            path,
            &headers,
            &params,
        ),
    };
    let tenant = match tenant_for(&state, &params) {
        Some(t) if signed => t,
        t => {
            state
                .metrics
                .signature_failures
                .with_label_values(&[ROUTE])
                .inc();
            tracing::warn!(
                tenant = t.as_ref().map_or("-", |t| t.name.as_str()),
                call_sid = form::get(&params, "CallSid").unwrap_or(""),
                "refused status callback: bad or missing X-Twilio-Signature"
            );
            return reply(&state, StatusCode::FORBIDDEN);
        }
    };
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
            received_at_ms: Some(crate::clock::unix_ms()),
        }))
        .await;
    reply(&state, StatusCode::NO_CONTENT)
}
