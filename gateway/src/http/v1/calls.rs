//! `GET /api/v1/calls` and `GET /api/v1/calls/{call_sid}`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use switchboard_store::{CallQuery, CallRecord, Cursor};

use super::auth::Caller;
use super::problem::Problem;
use super::types::{CallDetail, CallList, CallSummary, ListParams};
use crate::endings::Outcome;
use crate::state::AppState;

/// Default page size.
const DEFAULT_LIMIT: u32 = 50;

/// Opaque cursor: base64url of `<started_at_ms>:<call_sid>`.
pub fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", c.started_at_ms, c.call_sid))
}

/// Whether `s` can be a CallSid (the store is never asked about anything else).
pub(super) fn is_sid(s: &str) -> bool {
    (2..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The cursor `s` names; anything we did not issue is a 400.
pub fn decode_cursor(s: &str) -> Result<Cursor, Problem> {
    let bad = || Problem::bad_request("cursor: not a cursor this API issued");
    let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (ms, sid) = raw.split_once(':').ok_or_else(bad)?;
    let started_at_ms = ms.parse().map_err(|_| bad())?;
    if !is_sid(sid) {
        return Err(bad());
    }
    Ok(Cursor {
        started_at_ms,
        call_sid: sid.to_string(),
    })
}

fn time(name: &str, v: &Option<String>) -> Result<Option<i64>, Problem> {
    v.as_deref()
        .map(|s| {
            s.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|_| {
                    Problem::bad_request(format!(
                        "{name}: expected an RFC 3339 time such as 2026-12-01T00:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// A text filter: printable, at most 64 characters (numbers, outcomes, sentiments).
fn text(name: &str, v: &Option<String>) -> Result<Option<String>, Problem> {
    match v {
        Some(s) if s.is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) => {
            Err(Problem::bad_request(format!(
                "{name}: 1 to 64 printable characters"
            )))
        }
        other => Ok(other.clone()),
    }
}

/// The outcome filter: one of the stored values ([`Outcome`]); anything else is a
/// mistake the caller should hear about rather than an empty page.
fn outcome(v: &Option<String>) -> Result<Option<String>, Problem> {
    match v.as_deref() {
        None => Ok(None),
        Some(s) => match Outcome::parse(s) {
            Some(o) => Ok(Some(o.as_str().to_string())),
            None => Err(Problem::bad_request(format!(
                "outcome: one of {}",
                Outcome::ALL
                    .iter()
                    .map(|o| o.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// The store query for `p`, confined to `tenant`.
pub fn to_query(tenant: &str, p: &ListParams) -> Result<CallQuery, Problem> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=switchboard_store::query::MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request("limit: 1 to 500"));
    }
    if p.min_duration_s.is_some_and(|d| d < 0) {
        return Err(Problem::bad_request("min_duration_s: zero or more"));
    }
    Ok(CallQuery {
        tenant: tenant.to_string(),
        started_from_ms: time("since", &p.since)?,
        started_before_ms: time("until", &p.until)?,
        from: text("from", &p.from)?,
        to: text("to", &p.to)?,
        outcome: outcome(&p.outcome)?,
        transferred: p.transferred,
        sentiment: text("sentiment", &p.sentiment)?,
        success: p.success,
        min_duration_s: p.min_duration_s,
        after: p.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
    })
}

/// Lists the key's tenant's calls, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/calls",
    tag = "calls",
    params(ListParams),
    responses(
        (status = 200, description = "A page of calls", body = CallList),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (see Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Call store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_calls(
    State(state): State<AppState>,
    Caller(key): Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<CallList>, Problem> {
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let q = to_query(&key.tenant, &params)?;
    let page = state.store.list_calls(&q).await.map_err(|e| {
        tracing::warn!(error = %e, "listing calls failed");
        Problem::store_unavailable()
    })?;
    Ok(Json(CallList {
        calls: page.calls.iter().map(CallSummary::from).collect(),
        next_cursor: page.next.as_ref().map(encode_cursor),
    }))
}

/// One call: transcript, tool calls with their passages, analysis, cost, status history.
#[utoipa::path(
    get,
    path = "/api/v1/calls/{call_sid}",
    tag = "calls",
    params(("call_sid" = String, Path, description = "Twilio CallSid")),
    responses(
        (status = 200, description = "The call", body = CallDetail),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call for this key's tenant", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (see Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The record exists but does not decrypt (altered or moved)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Call store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_call(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(call_sid): Path<String>,
) -> Result<Json<CallDetail>, Problem> {
    read_record(&state, &key.tenant, &call_sid)
        .await
        .map(|rec| Json(CallDetail::from(&rec)))
}

/// The record of `call_sid` for `tenant`, or the problem to answer. Through
/// [`crate::records::read_call`], the one read path of a call record: it opens sealed
/// fields for encrypting tenants, and another tenant's call is "not found" (a key learns
/// nothing about other tenants).
pub(super) async fn read_record(
    state: &AppState,
    tenant: &str,
    call_sid: &str,
) -> Result<CallRecord, Problem> {
    if !is_sid(call_sid) {
        return Err(Problem::not_found("such call"));
    }
    match crate::records::read_call(state, tenant, call_sid).await {
        Ok(Some(rec)) => Ok(rec),
        Ok(None) => Err(Problem::not_found("such call")),
        Err(e @ crate::records::RecordError::Sealed(_)) => {
            tracing::error!(call_sid, error = %e, "refused a call record that does not decrypt");
            Err(Problem::undecryptable())
        }
        Err(e) => {
            tracing::warn!(call_sid, error = %e, "reading call record failed");
            Err(Problem::store_unavailable())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_foreign_ones_are_refused() {
        let c = Cursor {
            started_at_ms: 1_700_000_000_123,
            call_sid: "CA0123".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        for bad in [
            "",
            "!!",
            "MTIz",
            &URL_SAFE_NO_PAD.encode("x:CA1"),
            &URL_SAFE_NO_PAD.encode("1:CA 1"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parameters_are_checked() {
        let ok = to_query(
            "t",
            &ListParams {
                since: Some("2026-12-01T00:00:00Z".into()),
                from: Some("+15551230000".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ok.started_from_ms, Some(1_796_083_200_000));
        assert_eq!(ok.limit, 50);
        assert_eq!(ok.tenant, "t");
        for p in [
            ListParams {
                since: Some("yesterday".into()),
                ..Default::default()
            },
            ListParams {
                limit: Some(0),
                ..Default::default()
            },
            ListParams {
                limit: Some(501),
                ..Default::default()
            },
            ListParams {
                from: Some("a\0b".into()),
                ..Default::default()
            },
            ListParams {
                min_duration_s: Some(-1),
                ..Default::default()
            },
        ] {
            assert!(to_query("t", &p).is_err(), "{p:?}");
        }
    }
}
