//! Names, labels and ownership shared by every child of a tenant.
//!
//! Every child carries the same four recommended labels and a controller owner reference
//! to its tenant. The pod selector is a fixed subset ([`selector_labels`]): a Deployment's
//! selector is immutable, so it must never include a label that may change.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// `app.kubernetes.io/name`: what the children are.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Value of [`NAME_LABEL`].
pub const APP_NAME: &str = "switchboard-gateway";
/// `app.kubernetes.io/instance`: which tenant they belong to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/managed-by`.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`]; also the server-side apply field manager.
pub const MANAGER: &str = "switchboard-operator";
/// `app.kubernetes.io/component`.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Value of [`COMPONENT_LABEL`].
pub const COMPONENT: &str = "gateway";

/// The label a Secret must carry, with the value [`USABLE_SECRET_VALUE`], before a
/// VoiceTenant or KnowledgeBase may reference it. Without it, anyone who may edit a
/// tenant could have the gateway send any Secret of the namespace (a cloud credential,
/// another application's token) to a host of their choosing.
pub const USABLE_SECRET_LABEL: &str = "voice.switchboard.dev/usable";
/// The value of [`USABLE_SECRET_LABEL`] that makes a Secret referenceable.
pub const USABLE_SECRET_VALUE: &str = "true";

/// Whether a Secret with these labels may be referenced by a tenant or knowledge base
/// ([`USABLE_SECRET_LABEL`]` = "true"`).
pub fn secret_usable(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(USABLE_SECRET_LABEL))
        .is_some_and(|v| v == USABLE_SECRET_VALUE)
}

/// Longest name or label value the builders produce: a DNS-1035 label, the strictest
/// rule among the owned kinds (Service names).
pub const MAX_NAME_LEN: usize = 63;
const NAME_SUFFIX: &str = "-gateway";
/// Hex digits of the name digest appended to shortened or altered names.
const DIGEST_LEN: usize = 8;

/// Name of every child of the tenant named `tenant`: `<tenant>-gateway`.
///
/// The result is a DNS-1035 label (lowercase alphanumerics and `-`, starting with a
/// letter, at most 63 characters), valid for every owned kind. A tenant name that is too
/// long or not already such a label is shortened and rewritten, and then gets a digest of
/// the full name, so two tenants of one namespace never share a name.
pub fn child_name(tenant: &str) -> String {
    let mut base: String = tenant
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base.insert_str(0, "vt-");
    }
    let budget = MAX_NAME_LEN - NAME_SUFFIX.len();
    if base != tenant || base.len() > budget {
        base.truncate(budget - DIGEST_LEN - 1);
        let kept = base.trim_end_matches('-').len();
        base.truncate(kept);
        base = format!("{base}-{}", digest(tenant));
    }
    base + NAME_SUFFIX
}

/// Value of [`INSTANCE_LABEL`] for the tenant named `tenant`: the name itself when it is
/// a valid label value (any object name of at most 63 characters is), otherwise a
/// shortened form with a digest of the full name.
pub fn instance(tenant: &str) -> String {
    if !tenant.is_empty() && is_label_value(tenant) {
        return tenant.to_string();
    }
    let mapped: String = tenant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut base = mapped.trim_start_matches(['-', '_', '.']).to_string();
    base.truncate(MAX_NAME_LEN - DIGEST_LEN - 1);
    match base.trim_end_matches(['-', '_', '.']) {
        "" => digest(tenant),
        kept => format!("{kept}-{}", digest(tenant)),
    }
}

/// Whether `value` is a Kubernetes label value: at most 63 characters, alphanumerics,
/// `-`, `_` and `.`, starting and ending with an alphanumeric (or empty).
pub fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    value.len() <= MAX_NAME_LEN
        && bytes.iter().all(allowed)
        && bytes.first().is_none_or(u8::is_ascii_alphanumeric)
        && bytes.last().is_none_or(u8::is_ascii_alphanumeric)
}

fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    let mut hex = hex::encode(hash);
    hex.truncate(DIGEST_LEN);
    hex
}

/// The labels that select the tenant's gateway pods. They never change for a tenant
/// (a Deployment's selector is immutable).
pub fn selector_labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), APP_NAME.to_string()),
        (INSTANCE_LABEL.to_string(), instance(tenant)),
    ])
}

/// The labels of every child of the tenant (and of its pods).
pub fn labels(tenant: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(tenant);
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGER.to_string());
    labels.insert(COMPONENT_LABEL.to_string(), COMPONENT.to_string());
    labels
}

/// Label selector (`key=value,…`) matching every child this operator built for the
/// tenant, and nothing else: what pruning lists before deleting children that are no
/// longer wanted.
pub fn children_selector(tenant: &str) -> String {
    let mut selector = selector_labels(tenant);
    selector.insert(MANAGED_BY_LABEL.to_string(), MANAGER.to_string());
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
