//! Why a tenant's children could not be built.

use crate::owner::MetadataError;

/// A builder refused its inputs. Every variant is a fact about the tenant or the
/// operator's configuration: retrying without a change gives the same error.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The tenant lacks a name, namespace or UID.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// A secret is referenced through `env` or `file`, which only work on a laptop: in a
    /// cluster the gateway pod has neither the variable nor the file.
    #[error("{field} uses {reference}; in a cluster it must be a secretKeyRef")]
    SecretNotInCluster {
        /// Field path of the reference.
        field: &'static str,
        /// The reference, described (never its value).
        reference: String,
    },
    /// A `secretKeyRef` cannot become the file `<secret>/<key>` in the mounted secrets
    /// directory.
    #[error("{field}: {key:?} cannot be mounted as a file")]
    UnmountableSecretKey {
        /// Field path of the reference.
        field: &'static str,
        /// `<secret>/<key>`.
        key: String,
    },
    /// A referenced Secret has no resourceVersion in the context: the dereference step
    /// did not observe it (it may not exist).
    #[error("Secret {name} was not observed (missing, or not read before building)")]
    SecretNotObserved {
        /// The Secret's name.
        name: String,
    },
    /// Neither the tenant nor the operator names a gateway image.
    #[error("no gateway image: spec.gateway.image is unset and the operator has no default")]
    NoImage,
    /// The public host is not a DNS name.
    #[error("public host {host:?} is not a DNS name")]
    InvalidPublicHost {
        /// The host.
        host: String,
    },
    /// The tenant could not be rendered as the gateway's config file.
    #[error("rendering tenant.yaml: {0}")]
    Render(#[from] serde_saphyr::ser::Error),
}

impl BuildError {
    /// A short CamelCase category, from a small fixed set: the Event reason, the
    /// `Degraded` condition's reason and the metric label of reconcile failures.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Metadata(e) => e.category(),
            Self::SecretNotInCluster { .. } | Self::UnmountableSecretKey { .. } => "InvalidSpec",
            Self::SecretNotObserved { .. } => "SecretNotObserved",
            Self::NoImage | Self::InvalidPublicHost { .. } => "InvalidOperatorConfig",
            Self::Render(_) => "RenderFailed",
        }
    }
}
