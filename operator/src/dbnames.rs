//! The names of a tenant's database objects, derived from what the operator can prove
//! about the tenant: its namespace, name and UID (none of which a status patch can
//! change). Pure and shared: the tenant controller creates and drops objects under these
//! names (the tenant's `database` module), and the KnowledgeBase controller writes its
//! pgvector table only into the schema they name (its `target` module), never into
//! whatever a (user-writable) `status.database` says.

use sha2::{Digest, Sha256};

/// Prefix of every role and schema the operator creates. The tenant database's
/// `validate_identifier` requires it, so names read back from a (user-writable) status can never point the
/// operator at a schema or role it did not create, such as `public` or the admin.
pub const PREFIX: &str = "sb_";
/// Longest Postgres identifier (`NAMEDATALEN - 1`): longer names are silently truncated
/// by the server, which would make two tenants share one.
pub const MAX_IDENTIFIER_LEN: usize = 63;
/// Hex digits of the digest at the end of every role and schema name.
pub(crate) const DIGEST_LEN: usize = 8;
/// Longest Kubernetes Secret name (a DNS subdomain).
pub(crate) const MAX_SECRET_NAME_LEN: usize = 253;
/// Suffix of the credentials Secret's name.
const SECRET_SUFFIX: &str = "-database";

/// The names derived for one tenant object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivedNames {
    /// The role's and the schema's name (one identifier for both).
    pub identifier: String,
    /// The credentials Secret's name.
    pub secret_name: String,
}

/// The names of the tenant `name` in `namespace` with UID `uid`.
pub fn derive(namespace: &str, name: &str, uid: &str) -> DerivedNames {
    DerivedNames {
        identifier: identifier(namespace, name, uid),
        secret_name: secret_name(name),
    }
}

/// `sb_<ns>_<name>_<digest>`, each part mapped to `[a-z0-9_]` and shortened to fit
/// [`MAX_IDENTIFIER_LEN`]. Mapping loses information (`a-b`/`c` and `a`/`b-c` both give
/// `a_b_c`), and so does shortening: the digest of the unmapped parts keeps names apart.
fn identifier(namespace: &str, name: &str, uid: &str) -> String {
    let digest = digest(&format!("{namespace}/{name}/{uid}"));
    // Three separators: after the prefix's own `_`, between ns and name, before digest.
    let budget = MAX_IDENTIFIER_LEN - PREFIX.len() - 2 - DIGEST_LEN;
    let mut ns = sanitize(namespace);
    let mut nm = sanitize(name);
    // Share the budget, giving the name whatever the namespace leaves unused.
    let ns_share = ns.len().min(budget / 2);
    ns.truncate(ns_share);
    nm.truncate(budget - ns_share);
    // Repeated or trailing `_` add nothing readable and waste bytes.
    let ns = ns.trim_matches('_');
    let nm = nm.trim_matches('_');
    let id = format!("{PREFIX}{ns}_{nm}_{digest}");
    collapse_underscores(&id)
}

fn sanitize(part: &str) -> String {
    part.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '_',
        })
        .collect()
}

fn collapse_underscores(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out
}

/// `<tenant>-database`, shortened with a digest when that would not fit a Secret name.
fn secret_name(tenant: &str) -> String {
    if tenant.len() + SECRET_SUFFIX.len() <= MAX_SECRET_NAME_LEN {
        return format!("{tenant}{SECRET_SUFFIX}");
    }
    let keep = MAX_SECRET_NAME_LEN - SECRET_SUFFIX.len() - DIGEST_LEN - 1;
    // Object names are ASCII, so any byte index is a char boundary; stay safe anyway.
    let mut cut = keep.min(tenant.len());
    while !tenant.is_char_boundary(cut) {
        cut -= 1;
    }
    let base = tenant[..cut].trim_end_matches(['-', '.']);
    format!("{base}-{}{SECRET_SUFFIX}", digest(tenant))
}

fn digest(text: &str) -> String {
    let mut hex = hex::encode(Sha256::digest(text.as_bytes()));
    hex.truncate(DIGEST_LEN);
    hex
}
