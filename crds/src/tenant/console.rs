//! `spec.console`: who may read a tenant's calls through the admin API and the console.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::SecretRef;

/// Pattern of an API key's name (a DNS label).
pub const KEY_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest API key name.
pub const KEY_NAME_MAX: u32 = 63;

/// Whether `s` is a valid API key name.
pub fn is_key_name(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= KEY_NAME_MAX as usize
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-')
}

/// The admin API (`/api/v1`) and the web console (`/console/`) of this tenant.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleSpec {
    /// Read-only API keys. Each opens this tenant's calls, and only them, sent as
    /// `Authorization: Bearer <key>` or used to sign in to the console. The gateway keeps
    /// only a SHA-256 digest of each value. Rotate by adding a new key, moving clients over,
    /// then removing the old one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub api_keys: Vec<ApiKeySpec>,
}

/// One API key.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySpec {
    /// A name for the key (who holds it), shown in logs and rate-limit metrics; never the
    /// value. Lower-case letters, digits and '-'.
    #[schemars(regex(pattern = KEY_NAME_PATTERN), length(max = KEY_NAME_MAX))]
    pub name: String,
    /// Where the key's value is read. Values shorter than 32 characters are refused:
    /// generate one with `openssl rand -hex 32`.
    pub secret: SecretRef,
}

/// The shortest key value the gateway accepts: 32 characters (`openssl rand -hex 32`
/// gives 64) keep guessing out of reach even without the rate limit.
pub const API_KEY_MIN_LEN: usize = 32;
