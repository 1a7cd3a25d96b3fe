//! Error answers in Pinecone's two shapes: the control plane's
//! `{"error": {"code": "NOT_FOUND", "message": …}, "status": 404}` and the data plane's
//! gRPC-style `{"code": 5, "message": …, "details": []}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Status name, e.g. `INVALID_ARGUMENT`.
    pub code: &'static str,
    /// gRPC code number for the data plane's shape.
    pub grpc: u8,
    /// Explanation.
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, grpc: u8, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            grpc,
            message: message.into(),
        }
    }

    /// 400 INVALID_ARGUMENT.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_ARGUMENT", 3, message)
    }

    /// 401 UNAUTHENTICATED.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(401, "UNAUTHENTICATED", 16, message)
    }

    /// 404 NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", 5, message)
    }

    /// 409 ALREADY_EXISTS.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "ALREADY_EXISTS", 6, message)
    }

    /// An injected fault: 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, or any other status.
    pub fn fault(status: u16) -> Self {
        match status {
            429 => Self::new(429, "RESOURCE_EXHAUSTED", 8, "Request rate limit exceeded"),
            503 => Self::new(503, "UNAVAILABLE", 14, "Service temporarily unavailable"),
            s => Self::new(s, "UNKNOWN", 2, "Injected fault"),
        }
    }

    /// 503 UNAVAILABLE for an index that is still initialising.
    pub fn not_ready(index: &str) -> Self {
        Self::new(
            503,
            "UNAVAILABLE",
            14,
            format!("Index {index} is not ready"),
        )
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The control plane's answer.
    pub fn control(&self) -> Response {
        let body = json!({
            "error": {"code": self.code, "message": self.message},
            "status": self.status,
        });
        self.with_retry_after((self.status_code(), axum::Json(body)).into_response())
    }

    /// The data plane's answer.
    pub fn data(&self) -> Response {
        let body = json!({"code": self.grpc, "message": self.message, "details": []});
        self.with_retry_after((self.status_code(), axum::Json(body)).into_response())
    }

    fn with_retry_after(&self, mut r: Response) -> Response {
        if self.status == 429 || self.status == 503 {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        }
        r
    }
}
