//! The admin API, `/api/v1`: read-only, JSON, one tenant per API key, errors as
//! `application/problem+json`, rate limited per key. The OpenAPI 3.1 document is generated
//! from these handlers and types ([`ApiDoc`]) and committed as `docs/openapi.json`.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

pub mod auth;
pub mod calls;
pub mod problem;
pub mod recording;
pub mod stats;
pub mod types;

/// The list of calls.
pub const CALLS: &str = "/api/v1/calls";
/// One call.
pub const CALL: &str = "/api/v1/calls/{call_sid}";
/// One call's recording.
pub const RECORDING: &str = "/api/v1/calls/{call_sid}/recording";
/// Daily totals.
pub const DAILY: &str = "/api/v1/stats/daily";
/// This API's OpenAPI document.
pub const OPENAPI: &str = "/api/v1/openapi.json";
/// Every route of the API (each is a GET), checked against the document by a test.
pub const ROUTES: [&str; 5] = [CALLS, CALL, RECORDING, DAILY, OPENAPI];

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A key from the tenant's spec.console.apiKeys; it sees only that tenant's calls",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard admin API",
        version = "1",
        description = "Read-only access to one tenant's calls: list with filters and cursor pagination, one call with transcript, tool calls and the knowledge passages behind each answer, analysis, cost and status history, its recording (a short-lived presigned S3 link, or streamed with HTTP Range support), and daily totals. Authenticate with `Authorization: Bearer <key>` (a key of the tenant's `spec.console.apiKeys`). Errors are RFC 9457 problem documents (`application/problem+json`). Each key may make 10 requests per second on average with bursts of 50 (gateway flags `--api-requests-per-second`, `--api-burst`); beyond that: 429 with `Retry-After`."
    ),
    paths(
        calls::list_calls,
        calls::get_call,
        recording::get_recording,
        stats::daily,
        openapi_json_route
    ),
    components(schemas(
        problem::Problem,
        types::CallList,
        types::CallSummary,
        types::CallDetail,
        types::TranscriptLine,
        types::ToolCall,
        types::Passage,
        types::UsageOut,
        types::CostOut,
        types::AnalysisOut,
        types::StatusChange,
        types::RecordingInfo,
        types::RecordingLink,
        types::DailyTotals,
        types::DayTotals,
    )),
    modifiers(&BearerKey),
    tags(
        (name = "calls", description = "Call records"),
        (name = "stats", description = "Aggregates"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The document as committed (pretty JSON with a final newline).
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// This document (no key needed).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json")),
    security(())
)]
pub async fn openapi_json_route() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}

/// The API's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(CALLS, get(calls::list_calls))
        .route(CALL, get(calls::get_call))
        .route(RECORDING, get(recording::get_recording))
        .route(DAILY, get(stats::daily))
        .route(OPENAPI, get(openapi_json_route))
}
