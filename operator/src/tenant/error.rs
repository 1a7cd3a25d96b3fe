//! Why a reconcile failed, each variant sorted into a category: the Event reason, the
//! `Degraded` condition's reason and the `category` label of the failures metric.

use kube::runtime::finalizer;
use switchboard_crds::ValidationErrors;

use crate::database::DatabaseError;
use crate::owner::MetadataError;
use crate::tenant::build::BuildError;

/// A failed reconcile of a VoiceTenant.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The spec breaks a rule the API server's schema could not express: nothing is
    /// changed until the spec is fixed.
    #[error("invalid spec: {0}")]
    InvalidSpec(ValidationErrors),
    /// A builder refused the tenant or the operator's configuration.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Provisioning or dropping the tenant's database failed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// A Secret named like the tenant's database Secret exists but was not created by
    /// the operator for this tenant: its credentials are not trusted, and it is not
    /// overwritten.
    #[error("Secret {name} exists but does not belong to this tenant; rename or delete it")]
    ForeignSecret {
        /// The Secret.
        name: String,
    },
    /// The tenant's role exists but its credentials Secret is gone. A new password would
    /// not match the role (whose password is never changed by the operator), so the
    /// gateways could not log in: a human restores the Secret or resets the role.
    #[error(
        "Secret {name} is missing but role {role} already exists; restore the Secret, or drop the role (or set its password to a new Secret's) by hand"
    )]
    LostSecret {
        /// The Secret.
        name: String,
        /// The tenant's existing role.
        role: String,
    },
    /// The tenant's database Secret has no password (someone edited it); the role's
    /// password is never changed to match something else.
    #[error("Secret {name} has no password key; delete it to have a new one generated")]
    InvalidSecret {
        /// The Secret.
        name: String,
    },
    /// A Secret the gateway would read lacks the label that makes it referenceable.
    #[error(
        "Secret {name} is not labelled {label}=true; if tenants may use it: kubectl label secret {name} {label}=true"
    )]
    SecretNotUsable {
        /// The Secret.
        name: String,
        /// [`crate::labels::USABLE_SECRET_LABEL`].
        label: &'static str,
    },
    /// `spec.openai.realtimeUrl` is not `wss://` to an allowed host.
    #[error(
        "spec.openai.realtimeUrl {url} is not wss:// to an allowed host (allowed: {allowed}); the operator's --realtime-hosts (SWITCHBOARD_REALTIME_HOSTS) lists them"
    )]
    RealtimeHostNotAllowed {
        /// The URL.
        url: String,
        /// The allowed hosts, comma-separated.
        allowed: String,
    },
    /// `spec.analysis.baseUrl` (or its default) is not `https://` to an allowed host:
    /// the gateway would send the analysis key and every call's transcript there.
    #[error(
        "spec.analysis.baseUrl {url} is not https:// to an allowed host (allowed: {allowed}); the operator's --openai-hosts (SWITCHBOARD_OPENAI_HOSTS) lists them"
    )]
    AnalysisHostNotAllowed {
        /// The URL.
        url: String,
        /// What is allowed ([`crate::endpoints::HostList::describe`]).
        allowed: String,
    },
    /// `spec.analysis` names no `apiKey` and a `baseUrl` that is not OpenAI's own: the
    /// tenant's OpenAI key is lent to the analysis only for OpenAI's host.
    #[error(
        "spec.analysis.baseUrl {url} is not OpenAI's API, so the tenant's OpenAI key is not sent there; set spec.analysis.apiKey"
    )]
    AnalysisApiKeyRequired {
        /// The analysis' base URL.
        url: String,
    },
    /// A knowledge base the agent searches points its key at a host the operator does
    /// not allow: the gateway would send its key and the callers' questions there, so it
    /// is not mounted and nothing is applied. The category is the knowledge base's own
    /// (`EmbedderHostNotAllowed`, `PineconeHostNotAllowed`).
    #[error("knowledge base {kb}: {source}")]
    KnowledgeBaseRefused {
        /// The knowledge base.
        kb: String,
        /// Why.
        #[source]
        source: crate::knowledge::target::TargetError,
    },
    /// `spec.gateway.image` is not under an allowed prefix.
    #[error(
        "spec.gateway.image {image} is not under an allowed prefix ({allowed}); the operator's --allowed-gateway-images (SWITCHBOARD_ALLOWED_GATEWAY_IMAGES) lists them"
    )]
    GatewayImageNotAllowed {
        /// The image.
        image: String,
        /// The allowed prefixes, comma-separated.
        allowed: String,
    },
    /// `spec.twilio.validateSignatures: false`: the operator never deploys a gateway
    /// that accepts unsigned webhooks.
    #[error(
        "spec.twilio.validateSignatures: false is refused in a cluster (the gateway would accept anyone's webhooks); remove it"
    )]
    UnsignedWebhooksRefused,
    /// A request to the API server failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done (`apply Deployment acme/dental-gateway`).
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

impl TenantError {
    /// Wraps an API error with what was being done.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source,
        }
    }

    /// A short CamelCase category, from a small fixed set.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::Build(e) => e.category(),
            Self::Database(e) => e.category(),
            Self::ForeignSecret { .. } => "SecretConflict",
            Self::InvalidSecret { .. } => "InvalidDatabaseSecret",
            Self::LostSecret { .. } => "DatabaseSecretLost",
            Self::SecretNotUsable { .. } => "SecretNotUsable",
            Self::RealtimeHostNotAllowed { .. } => "RealtimeHostNotAllowed",
            Self::AnalysisHostNotAllowed { .. } => "AnalysisHostNotAllowed",
            Self::AnalysisApiKeyRequired { .. } => "AnalysisApiKeyRequired",
            Self::KnowledgeBaseRefused { source, .. } => source.category(),
            Self::GatewayImageNotAllowed { .. } => "GatewayImageNotAllowed",
            Self::UnsignedWebhooksRefused => "UnsignedWebhooksRefused",
            Self::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.is_conflict() => "Conflict",
                kube::Error::Api(status) if status.is_forbidden() => "Forbidden",
                _ => "KubernetesApi",
            },
        }
    }

    /// Unwraps the finalizer helper's error: our own errors keep their category, its
    /// own patch failures are API errors.
    pub fn from_finalizer(err: finalizer::Error<TenantError>) -> Self {
        match err {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(e) => Self::kube("add finalizer", e),
            finalizer::Error::RemoveFinalizer(e) => Self::kube("remove finalizer", e),
            finalizer::Error::UnnamedObject => Self::Build(MetadataError::Name.into()),
            // Our finalizer name is a constant, valid path segment.
            finalizer::Error::InvalidFinalizer => Self::Build(MetadataError::Name.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_come_from_the_cause() {
        let e = TenantError::Build(BuildError::NoImage);
        assert_eq!(e.category(), "InvalidOperatorConfig");
        let e = TenantError::from_finalizer(finalizer::Error::ApplyFailed(
            TenantError::ForeignSecret { name: "x".into() },
        ));
        assert_eq!(e.category(), "SecretConflict");
        let e = TenantError::kube(
            "apply",
            kube::Error::Api(Box::new(
                kube::core::Status::failure("conflict", "Conflict").with_code(409),
            )),
        );
        assert_eq!(e.category(), "Conflict");
    }
}
