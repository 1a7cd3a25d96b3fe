//! `GET /api/calls/{call_sid}`: a call's record with its transcript, for the tenant that
//! owns it (`Authorization: Bearer <the tenant's Twilio auth token>`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::records::{self, RecordError};
use crate::state::AppState;

fn same(a: &str, b: &str) -> bool {
    // Compare MACs of both strings: constant time whatever their lengths.
    let mac = |s: &str| {
        let mut m = Hmac::<Sha256>::new_from_slice(b"switchboard-api-compare").ok()?;
        m.update(s.as_bytes());
        Some(m.finalize().into_bytes())
    };
    matches!((mac(a), mac(b)), (Some(x), Some(y)) if x == y)
}

/// Returns the record; 401 without a tenant's token, 404 when unknown or not that tenant's.
pub async fn get_call(
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let owners: Vec<String> = state
        .tenants
        .all()
        .filter(|t| same(&t.credentials().auth_token, token))
        .map(|t| t.name.clone())
        .collect();
    if owners.is_empty() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // The tenant is checked before anything is decrypted: another tenant's record costs
    // no KMS call and reveals nothing.
    match state.store.get_call(&call_sid).await {
        Ok(Some(rec)) if owners.contains(&rec.tenant) => {}
        Ok(_) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!(call_sid, error = %e, "reading call record failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "call store unavailable").into_response();
        }
    }
    match records::read_call(&state, &call_sid).await {
        Ok(Some(rec)) if owners.contains(&rec.tenant) => Json(rec).into_response(),
        Ok(_) => StatusCode::NOT_FOUND.into_response(),
        Err(e @ RecordError::Sealed(_)) => {
            tracing::error!(call_sid, error = %e, "refused a call record that does not decrypt");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "record cannot be decrypted",
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(call_sid, error = %e, "reading call record failed");
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}
