//! Errors of the admin API as RFC 9457 problem details (`application/problem+json`).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` for plain HTTP statuses, else a
    /// `https://switchboard.dev/problems/<kind>` name; not meant to be fetched).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip)]
    retry_after: Option<Duration>,
}

impl Problem {
    fn new(status: StatusCode, kind: &str, title: &str, detail: Option<String>) -> Self {
        Self {
            kind: format!("https://switchboard.dev/problems/{kind}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            retry_after: None,
        }
    }

    /// 401: no key, or not a key of any tenant.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "An API key is required",
            Some(
                "send Authorization: Bearer <a key from the tenant's spec.console.apiKeys>".into(),
            ),
        )
    }

    /// 403: a state-changing request without the session's CSRF token.
    pub fn forbidden(detail: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Request refused",
            Some(detail.to_string()),
        )
    }

    /// 400: a parameter that cannot be used.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "A parameter is invalid",
            Some(detail.into()),
        )
    }

    /// 404: no such call for this key's tenant.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            Some(format!("no {what} for this API key's tenant")),
        )
    }

    /// 429: the key's allowance is used up for now.
    pub fn rate_limited(wait: Duration) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            Some(format!(
                "this API key's allowance is used up; retry in {} ms",
                wait.as_millis()
            )),
        );
        p.retry_after = Some(wait);
        p
    }

    /// 503: the call store did not answer.
    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "The call store is unavailable",
            Some("retry later".into()),
        )
    }
}

impl Problem {
    /// 500: the record exists but does not decrypt (altered, moved, or the wrong key):
    /// refused, never returned as ciphertext or garbage.
    pub fn undecryptable() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "record-undecryptable",
            "The record cannot be decrypted",
            Some("record cannot be decrypted: its key or context does not match".into()),
        )
    }
}

impl Problem {
    /// 416: the `Range` asked for lies outside the recording (`Content-Range` is added by
    /// the route).
    pub fn range_not_satisfiable(len: Option<u64>) -> Self {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range-not-satisfiable",
            "Range not satisfiable",
            Some(match len {
                Some(n) => format!("the recording has {n} bytes"),
                None => "the requested range is not in the recording".into(),
            }),
        )
    }

    /// 500: the record names a recording this gateway will not serve (a local key that
    /// leaves the recordings directory).
    pub fn recording_refused() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "recording-refused",
            "The record's recording location is refused",
            Some("the recording's key does not name a file inside the recordings directory".into()),
        )
    }

    /// 503: the recording could not be read or linked (disk, S3 credentials).
    pub fn recording_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "recording-unavailable",
            "The recording is unavailable",
            Some("retry later".into()),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_string(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up (RFC 9110 §10.2.3).
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}
