//! Why a knowledge-base reconcile failed, each variant sorted into a category: the
//! `Degraded` condition's reason, the `SyncFailed` Event's reason and the `category`
//! label of the failures metric.

use kube::runtime::finalizer;
use switchboard_aws::AwsErrorKind;
use switchboard_knowledge::{EmbedError, IngestError, StoreError};

use super::s3::S3Error;
use super::sources::SourceError;
use super::target::TargetError;
use crate::conditions::Failure;

/// The condition reason of an embedder failure.
pub const EMBEDDER_FAILED: &str = "EmbedderFailed";
/// The condition reason of a vector store that cannot be reached or refuses.
pub const BACKEND_UNREACHABLE: &str = "BackendUnreachable";

/// A failed reconcile (or cleanup) of a KnowledgeBase.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The object has no name or namespace (it was not read from an API server).
    #[error("the knowledge base has no name or namespace")]
    Unnamed,
    /// The spec breaks a rule the API server's schema could not express.
    #[error("{0}")]
    InvalidSpec(String),
    /// The knowledge base's tenant does not exist.
    #[error("VoiceTenant {tenant} does not exist in namespace {namespace}")]
    TenantNotFound {
        /// The tenant's name.
        tenant: String,
        /// The knowledge base's namespace.
        namespace: String,
    },
    /// Where the index lives or what embeds it cannot be resolved.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A read from the API server failed.
    #[error("reading {what}: {source}")]
    Kube {
        /// What was read (`the tenant`, `ConfigMap faq`, `Secret keys`).
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A Secret the backend or the embedder needs lacks its key.
    #[error("Secret {name} has no key {key:?}")]
    SecretMissing {
        /// The Secret.
        name: String,
        /// The key.
        key: String,
    },
    /// A Secret the editor referenced lacks the usable label (the VoiceTenant rule).
    #[error(
        "Secret {name} is not labelled {label}=true; if tenants may use it: kubectl label secret {name} {label}=true"
    )]
    SecretNotUsable {
        /// The Secret.
        name: String,
        /// [`crate::labels::USABLE_SECRET_LABEL`].
        label: &'static str,
    },
    /// The tenant database Secret is not the one the operator created for the tenant:
    /// not controlled by it, or holding another URL than the operator writes for it.
    #[error(
        "Secret {name} is not the tenant's database Secret (no controller reference to tenant {tenant}, or not the URL the operator wrote for it)"
    )]
    SecretNotOwned {
        /// The Secret.
        name: String,
        /// The tenant's name.
        tenant: String,
    },
    /// An API key names a Secrets Manager secret the namespace was not granted
    /// (`--secrets-manager-allow`): nothing was read.
    #[error(
        "AWS Secrets Manager secret {secret_id} is not granted to namespace {namespace}; the operator's administrator grants it with --secrets-manager-allow {namespace}=<id prefix>"
    )]
    AwsSecretNotGranted {
        /// The secret's id.
        secret_id: String,
        /// The knowledge base's namespace.
        namespace: String,
    },
    /// An API key could not be read from Secrets Manager.
    #[error("{field}: {source}")]
    AwsSecret {
        /// Field path of the reference.
        field: &'static str,
        /// What failed (never the value).
        #[source]
        source: switchboard_aws::AwsError,
    },
    /// The Pinecone API key Secret is gone, so the namespace cannot be deleted.
    #[error("the Pinecone API key Secret is gone; cannot delete the namespace")]
    PineconeKeyGone,
    /// An S3 source could not be read.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// A source's documents could not be assembled.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The embedder could not be loaded or configured.
    #[error("{0}")]
    Embedder(#[source] EmbedError),
    /// The vector store could not be opened or dropped.
    #[error("{backend}: {source}")]
    Store {
        /// `pgvector` or `Pinecone`.
        backend: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Ingestion failed.
    #[error("{}", ingest_message(.0))]
    Ingest(#[source] IngestError),
    /// Writing the status failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] kube::Error),
}

fn ingest_message(e: &IngestError) -> String {
    match e {
        IngestError::Embed(inner) => format!("embedding failed: {inner}"),
        other => other.to_string(),
    }
}

/// The category of a vector store's failure.
fn store_category(e: &StoreError) -> &'static str {
    match e {
        StoreError::Dimensions { .. } => "DimensionMismatch",
        StoreError::Config(_) => "BackendMisconfigured",
        StoreError::Remote { status, .. } if *status == 401 || *status == 403 => {
            "BackendUnauthorized"
        }
        _ => BACKEND_UNREACHABLE,
    }
}

impl KnowledgeError {
    /// Wraps a failed API read with what was being read.
    pub fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            what: what.into(),
            source,
        }
    }

    /// A short CamelCase category, from a small fixed set.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Unnamed => "InvalidObject",
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::TenantNotFound { .. } => "TenantNotFound",
            Self::Target(e) => e.category(),
            Self::Kube { .. } => "KubernetesApi",
            Self::SecretMissing { .. } | Self::PineconeKeyGone => "SecretMissing",
            Self::SecretNotUsable { .. } => "SecretNotUsable",
            Self::SecretNotOwned { .. } => "ForeignSecret",
            Self::AwsSecretNotGranted { .. } => "SecretNotGranted",
            Self::AwsSecret { source, .. } => match source.kind {
                AwsErrorKind::NotFound | AwsErrorKind::Invalid => "SecretMissing",
                AwsErrorKind::AccessDenied => "SecretAccessDenied",
                _ => "SecretsManagerUnreachable",
            },
            Self::S3(e) => e.reason(),
            Self::Source(e) => e.reason(),
            Self::Embedder(_) => EMBEDDER_FAILED,
            Self::Store { source, .. } => store_category(source),
            Self::Ingest(e) => match e {
                IngestError::Embed(_) => EMBEDDER_FAILED,
                IngestError::Store(inner) => store_category(inner),
                IngestError::DuplicateDocument(_) | IngestError::DuplicateChunk(_) => "InvalidSpec",
            },
            Self::Status(_) => "StatusWrite",
            Self::Finalizer(_) => "Finalizer",
        }
    }

    /// The failure as the status reports it: category and message.
    pub fn failure(&self) -> Failure {
        Failure::new(self.category(), self.to_string())
    }

    /// Unwraps the finalizer helper's error: our own errors keep their category, its
    /// own patch failures are [`KnowledgeError::Finalizer`].
    pub fn from_finalizer(err: finalizer::Error<KnowledgeError>) -> Self {
        match err {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                Self::Finalizer(e)
            }
            finalizer::Error::UnnamedObject | finalizer::Error::InvalidFinalizer => Self::Unnamed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_come_from_the_cause() {
        let e = KnowledgeError::Store {
            backend: "pgvector",
            source: StoreError::Config("no".into()),
        };
        assert_eq!(e.category(), "BackendMisconfigured");
        assert!(e.to_string().starts_with("pgvector: "), "{e}");
        let e = KnowledgeError::from_finalizer(finalizer::Error::CleanupFailed(
            KnowledgeError::PineconeKeyGone,
        ));
        assert_eq!(e.category(), "SecretMissing");
        let e = KnowledgeError::S3(S3Error::BucketNotFound { bucket: "b".into() });
        assert_eq!(e.failure().reason, "S3BucketNotFound");
    }
}
