//! Which S3 locations the knowledge bases of each namespace may read.
//!
//! The operator reads S3 with its own single AWS identity, whatever the namespace: left
//! unchecked, the editor of a knowledge base in namespace A could index (and have its
//! agent read out) a bucket meant for namespace B. So every S3 source must be granted to
//! its namespace by the operator's configuration, `--s3-allow NAMESPACE=bucket[/prefix]`
//! (environment `SWITCHBOARD_S3_ALLOW`, a comma list); nothing is granted by default.
//!
//! A grant of `bucket` covers the whole bucket; a grant of `bucket/faq/` covers the
//! sources whose prefix starts with `faq/` (a source without a prefix, the whole bucket,
//! is not covered). A flag rather than a ConfigMap: grants are reviewed and rolled out
//! with the operator's Helm values, need no extra RBAC and no watch, and a namespace's
//! editor can never grant itself a bucket.
//!
//! The same holds for API keys kept in AWS Secrets Manager (`awsSecretsManager` in a
//! knowledge base's embedder or Pinecone key): the operator reads them with its own AWS
//! identity and sends them to the endpoint the knowledge base names, so an ungranted id
//! would let an editor in namespace A send namespace B's key to a server of its choice.
//! `--secrets-manager-allow NAMESPACE=PREFIX` grants the secret ids (names or ARNs)
//! starting with `PREFIX` ([`SecretsAccess`]); none by default.

use std::collections::BTreeMap;
use std::time::Duration;

/// One `NAMESPACE=bucket[/prefix]` grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Grant {
    /// The namespace whose knowledge bases may read.
    pub namespace: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix the sources must be under; empty: the whole bucket.
    pub prefix: String,
}

/// Parses `NAMESPACE=bucket[/prefix]` (the `--s3-allow` flag's values).
///
/// # Errors
///
/// A message saying what is missing.
pub fn parse_grant(text: &str) -> Result<S3Grant, String> {
    let (namespace, location) = text
        .trim()
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAMESPACE=bucket[/prefix]"))?;
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    if namespace.is_empty() || bucket.is_empty() {
        return Err(format!("{text:?}: expected NAMESPACE=bucket[/prefix]"));
    }
    Ok(S3Grant {
        namespace: namespace.to_string(),
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

/// Every namespace's grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Access {
    grants: BTreeMap<String, Vec<S3Grant>>,
}

impl S3Access {
    /// The access `grants` give.
    pub fn new(grants: impl IntoIterator<Item = S3Grant>) -> Self {
        let mut by_namespace: BTreeMap<String, Vec<S3Grant>> = BTreeMap::new();
        for g in grants {
            by_namespace.entry(g.namespace.clone()).or_default().push(g);
        }
        Self {
            grants: by_namespace,
        }
    }

    /// Whether the knowledge bases of `namespace` may read `bucket` under `prefix`
    /// (`None` or empty: the whole bucket).
    pub fn allows(&self, namespace: &str, bucket: &str, prefix: Option<&str>) -> bool {
        let prefix = prefix.unwrap_or_default();
        self.grants.get(namespace).is_some_and(|grants| {
            grants
                .iter()
                .any(|g| g.bucket == bucket && prefix.starts_with(g.prefix.as_str()))
        })
    }
}

/// One `NAMESPACE=PREFIX` grant of Secrets Manager ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretGrant {
    /// The namespace whose knowledge bases may read.
    pub namespace: String,
    /// The secret ids (names or ARNs) granted start with this; end it with `/` to grant
    /// a path of names (`switchboard/shop/`), since `switchboard/shop` also starts
    /// `switchboard/shopping/…`.
    pub prefix: String,
}

/// Parses `NAMESPACE=PREFIX` (the `--secrets-manager-allow` flag's values).
///
/// # Errors
///
/// A message saying what is missing.
pub fn parse_secret_grant(text: &str) -> Result<SecretGrant, String> {
    let (namespace, prefix) = text
        .trim()
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAMESPACE=secret-id-prefix"))?;
    if namespace.is_empty() || prefix.trim().is_empty() {
        return Err(format!("{text:?}: expected NAMESPACE=secret-id-prefix"));
    }
    Ok(SecretGrant {
        namespace: namespace.to_string(),
        prefix: prefix.to_string(),
    })
}

/// Which Secrets Manager ids each namespace's knowledge bases may have the operator read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretsAccess {
    grants: BTreeMap<String, Vec<String>>,
}

impl SecretsAccess {
    /// The access `grants` give.
    pub fn new(grants: impl IntoIterator<Item = SecretGrant>) -> Self {
        let mut by_namespace: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for g in grants {
            by_namespace.entry(g.namespace).or_default().push(g.prefix);
        }
        Self {
            grants: by_namespace,
        }
    }

    /// Whether the knowledge bases of `namespace` may read the secret `secret_id`.
    pub fn allows(&self, namespace: &str, secret_id: &str) -> bool {
        self.grants
            .get(namespace)
            .is_some_and(|prefixes| prefixes.iter().any(|p| secret_id.starts_with(p.as_str())))
    }
}

/// Objects larger than this are skipped by default (5 MiB of text is a book, not an FAQ).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024;
/// How often S3-backed knowledge bases are re-listed by default.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);

/// How the operator reaches S3.
#[derive(Clone)]
pub struct S3Settings {
    /// An S3-compatible endpoint (MinIO, moto) instead of AWS's; switches to path-style
    /// addressing. `None`: AWS (or whatever `AWS_ENDPOINT_URL_S3` says).
    pub endpoint_url: Option<String>,
    /// Fixed keys instead of the AWS default chain (for S3-compatible stores in tests;
    /// the operator's command line never sets them: the chain reads `AWS_ACCESS_KEY_ID`).
    pub credentials: Option<StaticCredentials>,
    /// Re-list period of knowledge bases with an S3 source (S3 cannot be watched).
    pub resync: Duration,
    /// Larger objects are skipped (and counted) without being downloaded.
    pub max_object_bytes: u64,
    /// Which buckets and prefixes each namespace's knowledge bases may read
    /// (`--s3-allow`); none by default.
    pub access: S3Access,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            credentials: None,
            resync: DEFAULT_RESYNC,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            access: S3Access::default(),
        }
    }
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint_url", &self.endpoint_url)
            .field("credentials", &self.credentials.as_ref().map(|_| "<set>"))
            .field("resync", &self.resync)
            .field("max_object_bytes", &self.max_object_bytes)
            .finish()
    }
}

/// An access key pair.
#[derive(Clone)]
pub struct StaticCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_grants_are_per_namespace_and_prefix_and_none_by_default() {
        assert!(!SecretsAccess::default().allows("a", "switchboard/a/key"));
        let a = SecretsAccess::new(
            [
                "team-a=switchboard/team-a/",
                "team-b=arn:aws:secretsmanager:us-east-1:1:secret:b-",
            ]
            .iter()
            .map(|g| parse_secret_grant(g).unwrap()),
        );
        assert!(a.allows("team-a", "switchboard/team-a/pinecone"));
        assert!(!a.allows("team-a", "switchboard/team-b/pinecone"));
        assert!(!a.allows("team-a", "switchboard/team-a"));
        assert!(!a.allows("team-b", "switchboard/team-a/pinecone"));
        assert!(a.allows(
            "team-b",
            "arn:aws:secretsmanager:us-east-1:1:secret:b-key-AbCdEf"
        ));
        for bad in ["docs", "=docs", "team-a=", "team-a= "] {
            assert!(parse_secret_grant(bad).is_err(), "{bad}");
        }
    }

    fn access(grants: &[&str]) -> S3Access {
        S3Access::new(grants.iter().map(|g| parse_grant(g).unwrap()))
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!S3Access::default().allows("a", "bucket", None));
    }

    #[test]
    fn grants_are_per_namespace_bucket_and_prefix() {
        let a = access(&["team-a=docs/faq/", "team-a=all", "team-b=docs"]);
        assert!(a.allows("team-a", "docs", Some("faq/")));
        assert!(a.allows("team-a", "docs", Some("faq/2024/")));
        assert!(!a.allows("team-a", "docs", Some("private/")));
        assert!(
            !a.allows("team-a", "docs", None),
            "the whole bucket is more than faq/"
        );
        assert!(a.allows("team-a", "all", None));
        assert!(a.allows("team-b", "docs", None));
        assert!(!a.allows("team-c", "docs", None));
        assert!(!a.allows("team-a", "docs2", Some("faq/")));
    }

    #[test]
    fn malformed_grants_are_refused() {
        for bad in ["docs", "=docs", "team-a=", "team-a=/faq"] {
            assert!(parse_grant(bad).is_err(), "{bad}");
        }
    }
}
