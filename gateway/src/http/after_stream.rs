//! `POST /twilio/after-stream/{tenant}/{call_sid}`: the `<Connect action>` Twilio requests
//! when the gateway has closed a call's media stream, for calls answered by an earlier
//! version (today's TwiML has no action: the fallback follows `</Connect>`, see
//! [`crate::twilio::twiml::connect_stream`]). Kept so those calls still end well across
//! an upgrade.
//!
//! It answers `<Hangup/>` when the call task recorded that it ended the call on purpose
//! (see [`crate::endings`]) and the tenant's fallback otherwise, so a stream that
//! ends for any other reason never leaves the caller in silence.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::form;
use crate::endings::AfterStream;
use crate::state::AppState;
use crate::twilio::twiml;

const ROUTE: &str = "after_stream";

/// Tells Twilio what follows a closed media stream.
pub async fn after_stream(
    State(state): State<AppState>,
    Path((tenant, call_sid)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let respond = |status: StatusCode, body: String| {
        state
            .metrics
            .webhook_responses
            .with_label_values(&[ROUTE, status.as_str()])
            .inc();
        (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
    };
    let Some(tenant) = state.tenants.by_name(&tenant).cloned() else {
        return respond(StatusCode::NOT_FOUND, String::new());
    };
    let params = form::parse(&body);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    if !form::signed_or_rotated(&state, &tenant, path, &headers, &params, false).await {
        state
            .metrics
            .signature_failures
            .with_label_values(&[ROUTE])
            .inc();
        tracing::warn!(
            tenant = tenant.name,
            "refused <Connect action> request: bad or missing X-Twilio-Signature"
        );
        return respond(StatusCode::FORBIDDEN, String::new());
    }
    // The path's CallSid is what the webhook signed into the TwiML; the form's must agree
    // (a mismatch is someone replaying another call's action).
    if form::get(&params, "CallSid") != Some(call_sid.as_str()) {
        return respond(StatusCode::BAD_REQUEST, String::new());
    }
    let after = state.endings.take(&call_sid);
    tracing::info!(
        tenant = tenant.name,
        call_sid,
        ?after,
        "media stream over: telling Twilio what follows"
    );
    let body = match after {
        AfterStream::Hangup => twiml::hangup(),
        AfterStream::Fallback => tenant.fallback_twiml(&state.public_base, &call_sid),
        // The REST update of a transfer did not take: the `<Dial>` is answered here.
        AfterStream::Transfer(leg, target) => tenant
            .transfer_twiml(&state.public_base, &call_sid, leg, &target)
            .unwrap_or_else(|| tenant.fallback_twiml(&state.public_base, &call_sid)),
    };
    respond(StatusCode::OK, body)
}
