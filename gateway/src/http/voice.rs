//! `POST /twilio/voice`: the incoming-call webhook.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::form;
use crate::admission::AdmitError;
use crate::clock::unix_ms;
use crate::realtime::client::ConnectParams;
use crate::state::AppState;
use crate::tenants::Tenant;
use crate::twilio::{self, media, twiml};
use switchboard_store::{CallStart, StoreOp};

const ROUTE: &str = "voice";

fn xml(state: &AppState, status: StatusCode, body: String) -> Response {
    state
        .metrics
        .webhook_responses
        .with_label_values(&[ROUTE, status.as_str()])
        .inc();
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// A signed webhook for a call whose stream was already opened: Twilio sends one per
/// call, so this is a captured webhook replayed to reopen the call. Nothing is started.
fn replayed_webhook(state: &AppState, tenant: &Tenant, call_sid: &str, e: AdmitError) -> Response {
    state
        .metrics
        .stream_refusals
        .with_label_values(&["webhook_replay"])
        .inc();
    tracing::warn!(tenant = tenant.name, call_sid, error = %e, "refused webhook");
    xml(state, StatusCode::CONFLICT, String::new())
}

/// The answer to a webhook without a valid signature, the same whether or not its number
/// is served (see [`incoming_call`]).
fn unsigned(state: &AppState, tenant: &str, params: &[(String, String)]) -> Response {
    state
        .metrics
        .signature_failures
        .with_label_values(&[ROUTE])
        .inc();
    state
        .metrics
        .webhook_responses
        .with_label_values(&[ROUTE, "403"])
        .inc();
    tracing::warn!(
        tenant,
        call_sid = form::get(params, "CallSid").unwrap_or(""),
        "refused webhook: bad or missing X-Twilio-Signature"
    );
    StatusCode::FORBIDDEN.into_response()
}

/// Finds the tenant for a status callback: by the called number, else by the account
/// (a call only reaches a tenant through its numbers; see [`incoming_call`]).
pub(super) fn tenant_for(state: &AppState, params: &[(String, String)]) -> Option<Arc<Tenant>> {
    if let Some(t) = form::get(params, "To").and_then(|to| state.tenants.by_number(to)) {
        return Some(t.clone());
    }
    let account = form::get(params, "AccountSid")?;
    state.tenants.by_account(account).next().cloned()
}

/// Answers an incoming call with a media stream, a refusal, or a busy signal.
pub async fn incoming_call(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form::parse(&body);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let to = form::get(&params, "To").unwrap_or_default().to_string();
    // Routing is by the called number only: a tenant answers the numbers it declares.
    // Nothing number-specific is revealed before a signature checks out: an unsigned
    // request for an unknown number gets exactly the 403 of a bad signature on a known
    // one, so the gateway is no oracle of which numbers it serves. A request signed by a
    // tenant of the claimed account (a number just removed from its manifest) still gets
    // the polite "not in service" a real caller should hear.
    let account = form::get(&params, "AccountSid").unwrap_or_default();
    let Some(tenant) = state.tenants.by_number(&to).cloned() else {
        if !form::signed_by_account(
            state.tenants.by_account(account),
            &state.public_base,
            path,
            &headers,
            &params,
        ) {
            return unsigned(&state, "-", &params);
        }
        tracing::info!(
            to = twilio::redact::mask_number(&to),
            "call for a number no tenant answers"
        );
        return xml(
            &state,
            StatusCode::OK,
            twiml::say_and_hangup(
                "We're sorry, the number you have called is not in service. Goodbye.",
            ),
        );
    };
    if !form::signed_or_rotated(&state, &tenant, path, &headers, &params, false).await {
        return unsigned(&state, &tenant.name, &params);
    }
    let call_sid = form::get(&params, "CallSid")
        .unwrap_or_default()
        .to_string();
    if !media::is_sid(&call_sid) {
        return xml(
            &state,
            StatusCode::BAD_REQUEST,
            twiml::say_and_hangup("We're sorry, this call could not be connected."),
        );
    }
    // The call slot is taken with the admission, atomically: concurrent webhooks cannot
    // all pass a check and then all start calls.
    let credentials = tenant.credentials();
    let token = match state
        .admissions
        .admit(&tenant.name, &credentials.stream_key, &call_sid)
    {
        Ok(t) => t,
        Err(AdmitError::AtCapacity) => {
            tracing::warn!(
                tenant = tenant.name,
                call_sid,
                max = state.max_calls,
                "at capacity: answering busy"
            );
            return xml(&state, StatusCode::OK, twiml::reject_busy());
        }
        Err(e) => return replayed_webhook(&state, &tenant, &call_sid, e),
    };
    let from = form::get(&params, "From").unwrap_or_default().to_string();
    // Never wait on the store here: Twilio gives the webhook seconds, and a full queue
    // (store hanging) must cost the start record, not the call.
    let start = StoreOp::Start(CallStart {
        call_sid: call_sid.clone(),
        tenant: tenant.name.clone(),
        from: from.clone(),
        to: to.clone(),
        started_at_ms: unix_ms(),
    });
    if state.writer.try_submit(start).is_err() {
        state
            .metrics
            .store_dropped
            .with_label_values(&["start"])
            .inc();
        tracing::warn!(
            tenant = tenant.name,
            call_sid,
            "write-behind queue full: call answered, start record dropped"
        );
    }
    if state.preconnect {
        let backend = state.backend.clone();
        let params = ConnectParams {
            url: tenant.realtime_url.clone(),
            model: tenant.spec.agent.model.clone(),
            api_key: credentials.api_key.clone(),
            session_update: tenant.session_update.clone(),
        };
        state.parking.park(
            call_sid.clone(),
            tokio::spawn(async move { backend.connect(params).await }),
        );
    }
    let url = format!(
        "{}/twilio/stream/{}/{}",
        state.ws_base(),
        tenant.name,
        call_sid
    );
    let fallback = tenant.fallback_verbs(&state.public_base, &call_sid);
    let full = tenant.spec.logs_caller_numbers();
    tracing::info!(
        tenant = tenant.name,
        call_sid,
        from = twilio::redact::number_for_log(&from, full),
        to = twilio::redact::number_for_log(&to, full),
        "answering call with a media stream"
    );
    xml(
        &state,
        StatusCode::OK,
        twiml::connect_stream(
            &url,
            &[
                ("tenant", &tenant.name),
                ("from", &from),
                ("to", &to),
                ("token", &token),
            ],
            &fallback,
        ),
    )
}
