//! Form bodies and signature checks shared by the Twilio webhooks.

use axum::http::HeaderMap;

use crate::state::AppState;
use crate::tenants::Tenant;
use crate::twilio::signature;

/// All parameters of a form body, in order, duplicates kept (all are signed).
pub fn parse(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// First value of `name`.
pub fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Whether the request carries a valid signature for `tenant` (or the tenant does not
/// validate signatures). `path` is the route path as Twilio requested it.
pub fn signed(
    tenant: &Tenant,
    public_base: &str,
    path: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
    websocket: bool,
) -> bool {
    if !tenant.spec.twilio.validate_signatures {
        // Only reachable with --allow-unsigned-webhooks (tenants.rs refuses it otherwise);
        // said on every request so nobody runs this way without noticing.
        tracing::warn!(
            tenant = tenant.name,
            path,
            "accepting an UNSIGNED Twilio request: signature validation is off (laptop mode)"
        );
        return true;
    }
    let Some(sig) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let urls = signature::candidate_urls(public_base, path, websocket);
    // During a rotation Twilio may sign with either token; each is tried in turn.
    tenant
        .signing_tokens()
        .iter()
        .any(|token| signature::verify(token, &urls, params, sig))
}

/// [`signed`], and when it fails, once more after re-reading the tenant's secrets (a
/// rotated auth token the schedule has not picked up yet; rate-limited per tenant, see
/// [`Tenant::refresh_after_failure`]).
pub async fn signed_or_rotated(
    state: &AppState,
    tenant: &Tenant,
    path: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
    websocket: bool,
) -> bool {
    let base = &state.public_base;
    if signed(tenant, base, path, headers, params, websocket) {
        return true;
    }
    // Only a request that carries a signature can be a rotation's: an unsigned one
    // costs no Secrets Manager read.
    if !headers.contains_key("x-twilio-signature") {
        return false;
    }
    tenant
        .refresh_after_failure(&state.secrets, &state.rotation)
        .await
        && signed(tenant, base, path, headers, params, websocket)
}

/// Whether a webhook for a number no tenant answers carries a valid signature of a tenant
/// on the Twilio account it names. There is no tenant to check it against, so the
/// candidates are the tenants of the claimed `AccountSid` (signed too, so a forger gains
/// nothing by choosing it; bounded, unlike trying every tenant of the gateway).
pub fn signed_by_account<'a>(
    tenants: impl Iterator<Item = &'a std::sync::Arc<Tenant>>,
    public_base: &str,
    path: &str,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> bool {
    let mut tenants = tenants;
    tenants.any(|t| signed(t, public_base, path, headers, params, false))
}
