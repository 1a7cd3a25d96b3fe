//! The console, `/console/`: plain HTML, CSS and JavaScript embedded in the binary (no
//! build step, no CDN). Sign-in exchanges an API key for an HttpOnly, SameSite=Strict
//! session cookie; the pages then read `/api/v1` with that cookie. Sign-out needs the
//! session's CSRF token in `X-CSRF-Token`, and sign-in refuses cross-origin posts.

use axum::Router;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json};
use serde::{Deserialize, Serialize};

use super::v1::auth::{SESSION_COOKIE, cookie};
use super::v1::problem::Problem;
use crate::access::SESSION_TTL;
use crate::state::AppState;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(index))
        .route("/console/app.js", get(app_js))
        .route("/console/app.css", get(app_css))
        .route(
            "/console/session",
            get(whoami).post(sign_in).delete(sign_out),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut r = asset("text/html; charset=utf-8", INDEX);
    let h = r.headers_mut();
    // Only our own scripts and styles. Recordings come from our own origin, or (for a
    // tenant with a bucket) from the presigned S3 URL it redirects to, over https.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; media-src 'self' https: blob:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// Who is signed in.
#[derive(Debug, Serialize)]
struct Whoami {
    tenant: String,
    key: String,
    csrf: String,
}

async fn whoami(State(state): State<AppState>, parts: Parts) -> Response {
    match cookie(&parts, SESSION_COOKIE)
        .and_then(|t| state.access.session(t, &state.tenants.api_keys()))
    {
        Some(s) => Json(Whoami {
            tenant: s.key.tenant,
            key: s.key.name,
            csrf: s.csrf,
        })
        .into_response(),
        None => Problem::unauthorized().into_response(),
    }
}

#[derive(Deserialize)]
struct SignIn {
    key: String,
}

/// A browser's `Origin` (or `Referer`) must be this gateway's: a page elsewhere cannot
/// sign a visitor in with the page's own key (login CSRF).
fn same_origin(headers: &HeaderMap, state: &AppState) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match origin {
        Some(o) => {
            let rest = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .unwrap_or("");
            let o_host = rest.split('/').next().unwrap_or("");
            // The whole origin, never a prefix: `https://gw.example.com.evil.net` must not
            // pass for `https://gw.example.com` (Referer carries a path after the origin).
            let base = state.public_base.trim_end_matches('/');
            o_host == host || o == base || o.starts_with(&format!("{base}/"))
        }
        // Non-browser clients send neither; they hold the key anyway.
        None => true,
    }
}

fn session_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.public_base.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("sb_session=; Max-Age=0"))
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form<SignIn>,
) -> Response {
    if !same_origin(&headers, &state) {
        return Problem::forbidden("sign-in from another site").into_response();
    }
    let Some(key) = state.tenants.api_keys().find_key(form.key.trim()).cloned() else {
        return Problem::unauthorized().into_response();
    };
    if let Err(wait) = state.access.check_rate(&key.id) {
        return Problem::rate_limited(wait).into_response();
    }
    tracing::info!(tenant = key.id.tenant, key = key.id.name, "console sign-in");
    let (token, session) = state.access.open_session(&key);
    let mut r = Json(Whoami {
        tenant: session.key.tenant,
        key: session.key.name,
        csrf: session.csrf,
    })
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, &token, SESSION_TTL.as_secs()),
    );
    r
}

async fn sign_out(State(state): State<AppState>, parts: Parts) -> Response {
    let Some(token) = cookie(&parts, SESSION_COOKIE) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let Some(session) = state.access.session(token, &state.tenants.api_keys()) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let sent = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        sent.as_bytes(),
        session.csrf.as_bytes(),
    )) {
        return Problem::forbidden("missing or wrong X-CSRF-Token").into_response();
    }
    state.access.close_session(token);
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    r
}
