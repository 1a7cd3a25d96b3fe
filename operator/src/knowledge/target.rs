//! Where a knowledge base is indexed and what embeds it, resolved from the knowledge base
//! and its tenant. Pure: names Secrets, never reads them.

use switchboard_crds::{
    AwsSecretsManagerRef, BackendKind, DatabaseStatus, EmbedderKind, KnowledgeBase,
    SecretKeySelector, SecretRef, VoiceTenant,
};

use super::api::SecretTrust;
use crate::endpoints::EndpointPolicy;
use switchboard_knowledge::store::pinecone::DEFAULT_CONTROL_URL;

/// Where an API key the operator reads lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A key of a Kubernetes Secret in the knowledge base's namespace (it must carry the
    /// usable label).
    Cluster(SecretKeySelector),
    /// A secret in AWS Secrets Manager, read with the operator's AWS identity: its id
    /// must be granted to the namespace (`--secrets-manager-allow`,
    /// [`super::access::SecretsAccess`]).
    Aws(AwsSecretsManagerRef),
}

impl KeySource {
    /// Human description, safe to log (never the value).
    pub fn describe(&self) -> String {
        match self {
            Self::Cluster(s) => format!("Secret {}/{}", s.name, s.key),
            Self::Aws(a) => a.describe(),
        }
    }
}

/// Key of the tenant database Secret holding the connection URL of the tenant's role.
pub const DATABASE_URL_KEY: &str = "url";

/// The vector store of a knowledge base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A table in the tenant's Postgres schema.
    Pgvector {
        /// The Secret key holding a `postgres://` URL of the tenant's role.
        url: SecretKeySelector,
        /// What makes that Secret usable: the tenant's ownership (the operator's
        /// database Secret) or the usable label (the tenant's own `spec.database.url`).
        trust: SecretTrust,
        /// The schema; `None`: the connection's `current_schema()` (its search path).
        schema: Option<String>,
    },
    /// A namespace of a Pinecone index.
    Pinecone {
        /// Index name.
        index: String,
        /// Namespace (the spec's, else the knowledge base's name).
        namespace: String,
        /// Cloud for a new index (`aws`, `gcp`, `azure`).
        cloud: String,
        /// Region for a new index.
        region: String,
        /// Control-plane URL override.
        api_url: Option<String>,
        /// The API key.
        api_key: KeySource,
    },
}

impl Location {
    /// A stable description (no secret values) that goes into the content hash.
    pub fn describe(&self) -> String {
        match self {
            Self::Pgvector { url, schema, .. } => format!(
                "pgvector {}/{} schema {}",
                url.name,
                url.key,
                schema.as_deref().unwrap_or("(search path)")
            ),
            Self::Pinecone {
                index,
                namespace,
                api_url,
                ..
            } => format!(
                "pinecone {} {index}/{namespace}",
                api_url.as_deref().unwrap_or("default")
            ),
        }
    }
}

/// The embedder of a knowledge base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmbedderChoice {
    /// The in-process MiniLM model.
    Local,
    /// An OpenAI-compatible endpoint.
    OpenAi {
        /// API root.
        base_url: String,
        /// Model name.
        model: String,
        /// Requested dimensions.
        dimensions: Option<usize>,
        /// The API key.
        api_key: KeySource,
    },
}

/// Why a knowledge base cannot be indexed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// Expected to resolve by itself (Progressing).
    Waiting {
        /// CamelCase reason.
        reason: &'static str,
        /// For humans.
        message: String,
    },
    /// Needs a human (Degraded).
    Failed(TargetError),
}

/// Why the index's location or embedder cannot be resolved from the spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A Secret the operator must read is not named by a `secretKeyRef` (or, for an API
    /// key, `awsSecretsManager`).
    #[error(
        "{field} must be a secretKeyRef (or, for an API key, awsSecretsManager) for the operator to read it (it names {reference})"
    )]
    SecretNotInCluster {
        /// Field path of the reference.
        field: &'static str,
        /// The reference, described (never its value).
        reference: String,
    },
    /// The settings block of the chosen kind is missing.
    #[error("{0}")]
    MissingSettings(&'static str),
    /// The tenant's `status.database` names other objects than those the operator derives
    /// for this tenant (from its namespace, name and UID): a status anyone allowed to
    /// patch it may have written. Nothing is written into the database it names.
    #[error("{0}")]
    DatabaseNotProven(Box<UnprovenDatabase>),
    /// `embedder.openai.baseUrl` is not `https://` to a host the operator allows
    /// (`--openai-hosts`): its key, the documents and (from the gateway) the callers'
    /// questions would go there. Nothing is read or sent.
    #[error(
        "embedder.openai.baseUrl {url} is not https:// to an allowed host (allowed: {allowed}); the operator's --openai-hosts (SWITCHBOARD_OPENAI_HOSTS) lists them"
    )]
    EmbedderHostNotAllowed {
        /// The URL.
        url: String,
        /// What is allowed.
        allowed: String,
    },
    /// `backend.pinecone.apiUrl` (or its default) is not `https://` to a host the
    /// operator allows (`--pinecone-hosts`). Nothing is read or sent.
    #[error(
        "backend.pinecone.apiUrl {url} is not https:// to an allowed host (allowed: {allowed}); the operator's --pinecone-hosts (SWITCHBOARD_PINECONE_HOSTS) lists them"
    )]
    PineconeHostNotAllowed {
        /// The URL.
        url: String,
        /// What is allowed.
        allowed: String,
    },
}

/// What a tenant's `status.database` names against what the operator derives for it
/// (boxed in [`TargetError::DatabaseNotProven`]: errors stay small).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant {tenant}'s status.database names role {role}, schema {schema}, Secret {secret}; the operator provisions {expected_schema} and Secret {expected_secret} for this tenant and writes only there"
)]
pub struct UnprovenDatabase {
    /// The tenant.
    pub tenant: String,
    /// The status' role.
    pub role: String,
    /// The status' schema.
    pub schema: String,
    /// The status' Secret.
    pub secret: String,
    /// The derived schema (and role).
    pub expected_schema: String,
    /// The derived Secret.
    pub expected_secret: String,
}

impl TargetError {
    /// The condition reason.
    pub fn category(&self) -> &'static str {
        match self {
            Self::SecretNotInCluster { .. } => "SecretNotInCluster",
            Self::MissingSettings(_) => "InvalidSpec",
            Self::DatabaseNotProven(_) => "TenantDatabaseNotProven",
            Self::EmbedderHostNotAllowed { .. } => "EmbedderHostNotAllowed",
            Self::PineconeHostNotAllowed { .. } => "PineconeHostNotAllowed",
        }
    }
}

fn in_cluster(field: &'static str, r: &SecretRef) -> Result<SecretKeySelector, Blocked> {
    match &r.secret_key_ref {
        Some(s) if r.sources_set() == 1 => Ok(s.clone()),
        _ => Err(Blocked::Failed(TargetError::SecretNotInCluster {
            field,
            reference: r.describe(),
        })),
    }
}

/// An API key the operator reads: a `secretKeyRef` or an `awsSecretsManager` reference
/// (`env` and `file` name the gateway's process, which the operator cannot read).
fn api_key(field: &'static str, r: &SecretRef) -> Result<KeySource, Blocked> {
    match &r.aws_secrets_manager {
        Some(a) if r.sources_set() == 1 => Ok(KeySource::Aws(a.clone())),
        _ => in_cluster(field, r).map(KeySource::Cluster),
    }
}

/// Where `kb` (of tenant `vt`) is indexed.
///
/// pgvector uses the database the operator provisioned for the tenant, else the tenant's
/// own `spec.database.url`; a tenant with neither has no Postgres yet:
/// [`Blocked::Waiting`].
///
/// The provisioned database is the one the operator derives from the tenant's namespace,
/// name and UID ([`crate::dbnames`]); `status.database` only says that it exists, and
/// must name exactly those objects ([`TargetError::DatabaseNotProven`] otherwise). Its
/// Secret must be controlled by the tenant ([`SecretTrust::OwnedBy`]); a tenant's own
/// URL Secret must carry the usable label ([`SecretTrust::Labelled`]).
///
/// # Errors
///
/// [`Blocked`] as above, or a Pinecone API key that is neither a `secretKeyRef` nor an
/// `awsSecretsManager` reference.
pub fn location(kb: &KnowledgeBase, vt: &VoiceTenant) -> Result<Location, Blocked> {
    match kb.spec.backend.kind {
        BackendKind::Pgvector => {
            if let Some(db) = vt.status.as_ref().and_then(|s| s.database.as_ref()) {
                return provisioned(vt, db);
            }
            match vt.spec.database.as_ref().and_then(|d| d.url.as_ref()) {
                Some(r) => Ok(Location::Pgvector {
                    url: in_cluster("the tenant's spec.database.url", r)?,
                    trust: SecretTrust::Labelled,
                    schema: None,
                }),
                None => Err(Blocked::Waiting {
                    reason: "TenantDatabasePending",
                    message: format!(
                        "tenant {} has no Postgres database yet (pgvector lives in the tenant's schema)",
                        kb.spec.tenant
                    ),
                }),
            }
        }
        BackendKind::Pinecone => {
            let Some(p) = &kb.spec.backend.pinecone else {
                return Err(Blocked::Failed(TargetError::MissingSettings(
                    "backend.pinecone must be set with type pinecone",
                )));
            };
            let name = kb.metadata.name.as_deref().unwrap_or_default();
            Ok(Location::Pinecone {
                index: p.index.clone(),
                namespace: p.namespace_or(name).to_string(),
                cloud: serde_json::to_value(p.cloud)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "aws".into()),
                region: p.region.clone(),
                api_url: p.api_url.clone(),
                api_key: api_key("backend.pinecone.apiKey", &p.api_key)?,
            })
        }
    }
}

/// The provisioned database of `vt`, whose status says it has one (`recorded`): the
/// derived names, when the status names exactly those.
fn provisioned(vt: &VoiceTenant, recorded: &DatabaseStatus) -> Result<Location, Blocked> {
    let tenant = vt.metadata.name.clone().unwrap_or_default();
    let namespace = vt.metadata.namespace.as_deref().unwrap_or_default();
    let uid = vt.metadata.uid.clone().unwrap_or_default();
    let derived = crate::dbnames::derive(namespace, &tenant, &uid);
    let proven = !uid.is_empty()
        && recorded.role == derived.identifier
        && recorded.schema == derived.identifier
        && recorded.secret_name == derived.secret_name;
    if !proven {
        return Err(Blocked::Failed(TargetError::DatabaseNotProven(Box::new(
            UnprovenDatabase {
                tenant,
                role: recorded.role.clone(),
                schema: recorded.schema.clone(),
                secret: recorded.secret_name.clone(),
                expected_schema: derived.identifier,
                expected_secret: derived.secret_name,
            },
        ))));
    }
    Ok(Location::Pgvector {
        url: SecretKeySelector {
            name: derived.secret_name,
            key: DATABASE_URL_KEY.to_string(),
        },
        trust: SecretTrust::OwnedBy(uid),
        schema: Some(derived.identifier),
    })
}

/// The embedder of `kb`.
///
/// # Errors
///
/// [`Blocked::Failed`] for an API key that is neither a `secretKeyRef` nor an
/// `awsSecretsManager` reference, or a spec without its
/// `openai` settings.
pub fn embedder(kb: &KnowledgeBase) -> Result<EmbedderChoice, Blocked> {
    match kb.spec.embedder.kind {
        EmbedderKind::Local => Ok(EmbedderChoice::Local),
        EmbedderKind::Openai => {
            let Some(o) = &kb.spec.embedder.openai else {
                return Err(Blocked::Failed(TargetError::MissingSettings(
                    "embedder.openai must be set with type openai",
                )));
            };
            Ok(EmbedderChoice::OpenAi {
                base_url: o.base_url.clone(),
                model: o.model.clone(),
                dimensions: o.dimensions.map(|d| d as usize),
                api_key: api_key("embedder.openai.apiKey", &o.api_key)?,
            })
        }
    }
}

/// Checks that every URL of `kb` that receives one of its keys names a host `policy`
/// allows: the embedder's `baseUrl` and Pinecone's control plane (default
/// `https://api.pinecone.io`). Pure; run before any Secret is read, by the KnowledgeBase
/// controller (before it indexes or cleans up) and by the tenant controller (before it
/// mounts the knowledge base into a gateway, which searches with the same keys).
///
/// # Errors
///
/// [`TargetError::EmbedderHostNotAllowed`], [`TargetError::PineconeHostNotAllowed`].
pub fn check_endpoints(kb: &KnowledgeBase, policy: &EndpointPolicy) -> Result<(), TargetError> {
    // Whatever the `type`: settings present are settings some reader may use.
    if let Some(o) = &kb.spec.embedder.openai
        && !policy.openai.admits(&o.base_url)
    {
        return Err(TargetError::EmbedderHostNotAllowed {
            url: o.base_url.clone(),
            allowed: policy.openai.describe(),
        });
    }
    if let Some(p) = &kb.spec.backend.pinecone {
        let url = p.api_url.as_deref().unwrap_or(DEFAULT_CONTROL_URL);
        if !policy.pinecone.admits(url) {
            return Err(TargetError::PineconeHostNotAllowed {
                url: url.to_string(),
                allowed: policy.pinecone.describe(),
            });
        }
    }
    Ok(())
}

/// Every Secret key the knowledge base's index and embedder read (what a gateway that
/// searches it must have mounted).
pub fn secret_keys(kb: &KnowledgeBase) -> Vec<SecretKeySelector> {
    let mut keys = Vec::new();
    if let Some(p) = &kb.spec.backend.pinecone
        && let Some(s) = &p.api_key.secret_key_ref
    {
        keys.push(s.clone());
    }
    if let Some(o) = &kb.spec.embedder.openai
        && let Some(s) = &o.api_key.secret_key_ref
    {
        keys.push(s.clone());
    }
    keys
}
