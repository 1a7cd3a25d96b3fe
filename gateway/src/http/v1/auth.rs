//! The admin API's caller: an API key (`Authorization: Bearer`) or a console session
//! cookie, then one request taken from that key's rate allowance.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};

use super::problem::Problem;
use crate::api_keys::KeyId;
use crate::state::AppState;

/// Name of the console's session cookie.
pub const SESSION_COOKIE: &str = "sb_session";

/// Who is asking: the key (and so the tenant) every query is confined to.
#[derive(Debug, Clone)]
pub struct Caller(pub KeyId);

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The key a request authenticates with: a bearer key, or (for reads only) a console
/// session. Sessions are not accepted for anything but GET/HEAD: with SameSite=Strict
/// cookies and no state-changing API, a cross-site page can neither send the cookie nor
/// change anything with it.
pub fn authenticate(parts: &Parts, state: &AppState) -> Result<KeyId, Problem> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let key = v
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(Problem::unauthorized)?;
        return state
            .tenants
            .api_keys()
            .find(key)
            .cloned()
            .ok_or_else(Problem::unauthorized);
    }
    if (parts.method == Method::GET || parts.method == Method::HEAD)
        && let Some(token) = cookie(parts, SESSION_COOKIE)
        && let Some(s) = state.access.session(token, &state.tenants.api_keys())
    {
        return Ok(s.key);
    }
    Err(Problem::unauthorized())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let key = authenticate(parts, state)?;
        // A tenant removed since the key was issued (sessions outlive nothing else).
        if state.tenants.by_name(&key.tenant).is_none() {
            return Err(Problem::unauthorized());
        }
        state
            .access
            .check_rate(&key)
            .map_err(Problem::rate_limited)?;
        Ok(Caller(key))
    }
}
