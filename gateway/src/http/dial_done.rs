//! What follows a `<Dial>`: `POST /twilio/dial-done/{tenant}/{call_sid}/{leg}/{target}`
//! (the transfer's `<Dial action>`) and `POST /twilio/voicemail/{tenant}/{call_sid}` (the
//! fallback's `<Record action>`).
//!
//! A transfer the person answered ends the call when they hang up (`<Hangup/>`). One
//! nobody answered (busy, no-answer, failed) brings the caller back to the agent: a new
//! `<Connect><Stream>` for agent leg `leg + 1` (the fallback after it), admitted like the first, whose Realtime
//! session starts with the conversation so far and a note that the transfer failed
//! (`call/task.rs`). Either way the outcome is recorded on the call.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use switchboard_store::{CallTransfer, CallVoicemail, StoreOp};

use super::form;
use crate::call::task::admission_key;
use crate::state::AppState;
use crate::tenants::Tenant;
use crate::twilio::twiml;

/// `DialCallStatus` values Twilio documents; anything else is recorded as `other`.
const DIAL_STATUSES: &[&str] = &[
    "completed",
    "answered",
    "busy",
    "no-answer",
    "failed",
    "canceled",
];

fn respond(state: &AppState, route: &str, status: StatusCode, body: String) -> Response {
    state
        .metrics
        .webhook_responses
        .with_label_values(&[route, status.as_str()])
        .inc();
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// A signed request's tenant and form fields.
type Checked = (std::sync::Arc<Tenant>, Vec<(String, String)>);

/// The tenant and form of a signed request for `call_sid`, or the refusal to answer
/// (boxed: a response is large next to the happy path).
fn checked(
    state: &AppState,
    route: &'static str,
    tenant: &str,
    call_sid: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Checked, Box<Response>> {
    let Some(tenant) = state.tenants.by_name(tenant).cloned() else {
        return Err(Box::new(respond(
            state,
            route,
            StatusCode::NOT_FOUND,
            String::new(),
        )));
    };
    let params = form::parse(body);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    if !form::signed(&tenant, &state.public_base, path, headers, &params, false) {
        state
            .metrics
            .signature_failures
            .with_label_values(&[route])
            .inc();
        tracing::warn!(
            tenant = tenant.name,
            route,
            "refused request: bad or missing X-Twilio-Signature"
        );
        return Err(Box::new(respond(
            state,
            route,
            StatusCode::FORBIDDEN,
            String::new(),
        )));
    }
    // The path's CallSid was signed into our TwiML; the form's must agree.
    if form::get(&params, "CallSid") != Some(call_sid) {
        return Err(Box::new(respond(
            state,
            route,
            StatusCode::BAD_REQUEST,
            String::new(),
        )));
    }
    Ok((tenant, params))
}

/// The transfer's `<Dial action>`.
pub async fn dial_done(
    State(state): State<AppState>,
    Path((tenant, call_sid, leg, target)): Path<(String, String, u32, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "dial_done";
    let (tenant, params) = match checked(&state, ROUTE, &tenant, &call_sid, &uri, &headers, &body) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let raw_status = form::get(&params, "DialCallStatus").unwrap_or("");
    let status = DIAL_STATUSES
        .iter()
        .find(|s| **s == raw_status)
        .copied()
        .unwrap_or("other");
    let duration = form::get(&params, "DialCallDuration").and_then(|d| d.parse::<i64>().ok());
    state.metrics.transfers.with_label_values(&[status]).inc();
    let known_target = tenant.spec.agent.transfer.iter().any(|t| t.name == target);
    let op = StoreOp::Transfer(CallTransfer {
        call_sid: call_sid.clone(),
        tenant: tenant.name.clone(),
        // A name the tenant does not declare is not written as given (the path is ours,
        // but signed URLs can outlive a manifest change).
        leg,
        at_ms: crate::clock::unix_ms(),
        target: if known_target {
            target.clone()
        } else {
            "unknown".into()
        },
        dial_status: status.to_owned(),
        dial_duration_s: duration,
        dial_call_sid: form::get(&params, "DialCallSid")
            .filter(|s| crate::twilio::media::is_sid(s))
            .map(str::to_owned),
    });
    if state.writer.try_submit(op).is_err() {
        state
            .metrics
            .store_dropped
            .with_label_values(&["transfer"])
            .inc();
    }
    let answered = matches!(status, "completed" | "answered");
    // The caller hung up while it rang: nobody to bring back.
    let caller_gone = form::get(&params, "CallStatus") == Some("completed");
    tracing::info!(
        tenant = tenant.name,
        call_sid,
        target,
        status,
        duration_s = duration,
        "transfer ended"
    );
    if answered || caller_gone || leg >= MAX_LEGS {
        let _ = state.endings.take_leg(&call_sid);
        return respond(&state, ROUTE, StatusCode::OK, twiml::hangup());
    }
    state.endings.dial_ended(&call_sid, status);
    // Back to the agent: a new stream, admitted like the first (its own token and slot).
    let next = leg + 1;
    let token = match state.admissions.admit(
        &tenant.name,
        &tenant.credentials().stream_key,
        &admission_key(&call_sid, next),
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(tenant = tenant.name, call_sid, error = %e, "cannot bring the caller back to the agent");
            return respond(
                &state,
                ROUTE,
                StatusCode::OK,
                tenant.fallback_twiml(&state.public_base, &call_sid),
            );
        }
    };
    let url = format!(
        "{}/twilio/stream/{}/{}/{next}",
        state.ws_base(),
        tenant.name,
        call_sid
    );
    let fallback = tenant.fallback_verbs(&state.public_base, &call_sid);
    let from = form::get(&params, "From").unwrap_or_default();
    let to = form::get(&params, "To").unwrap_or_default();
    let leg_text = next.to_string();
    respond(
        &state,
        ROUTE,
        StatusCode::OK,
        twiml::connect_stream(
            &url,
            &[
                ("tenant", &tenant.name),
                ("from", from),
                ("to", to),
                ("token", &token),
                ("leg", &leg_text),
            ],
            &fallback,
        ),
    )
}

/// Most agent legs of one call: a caller bounced between the agent and unanswered
/// transfers this often is better served by the fallback.
const MAX_LEGS: u32 = 5;

/// The fallback voicemail's `<Record action>`: keeps the recording URL with the call.
pub async fn voicemail(
    State(state): State<AppState>,
    Path((tenant, call_sid)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "voicemail";
    let (tenant, params) = match checked(&state, ROUTE, &tenant, &call_sid, &uri, &headers, &body) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    // The URL is Twilio's (signed request); only an https/http URL is kept.
    let url = form::get(&params, "RecordingUrl")
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .filter(|u| u.len() <= 2048);
    if let Some(url) = url {
        let op = StoreOp::Voicemail(CallVoicemail {
            call_sid: call_sid.clone(),
            tenant: tenant.name.clone(),
            recording_url: url.to_owned(),
            duration_s: form::get(&params, "RecordingDuration").and_then(|d| d.parse().ok()),
        });
        if state.writer.try_submit(op).is_err() {
            state
                .metrics
                .store_dropped
                .with_label_values(&["voicemail"])
                .inc();
        }
        tracing::info!(tenant = tenant.name, call_sid, "voicemail recorded");
    }
    respond(&state, ROUTE, StatusCode::OK, twiml::hangup())
}
