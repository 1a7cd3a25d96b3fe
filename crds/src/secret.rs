//! References to secret values that work both in a cluster and on a laptop.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod aws;

pub use aws::{AwsSecretsManagerRef, SECRET_ID_MAX};

use crate::format::{
    DNS_SUBDOMAIN_MAX, DNS_SUBDOMAIN_PATTERN, ENV_NAME_PATTERN, NOT_BLANK_PATTERN,
    SECRET_KEY_PATTERN,
};

/// Where a secret value comes from. Exactly one of the four fields must be set.
///
/// In a cluster the operator mounts `secretKeyRef` values into the gateway pod, and
/// `awsSecretsManager` values are read by the gateway itself (re-read on a schedule, so
/// rotations need no restart); on a laptop `env` or `file` let the same manifest run
/// without Kubernetes.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.secretKeyRef) ? 1 : 0) + (has(self.env) ? 1 : 0) + (has(self.file) ? 1 : 0) + (has(self.awsSecretsManager) ? 1 : 0) == 1",
    "message": "must set exactly one of secretKeyRef, env, file, awsSecretsManager"
}]))]
pub struct SecretRef {
    /// A key of a Kubernetes Secret in the tenant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
    /// The name of an environment variable of the gateway process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ENV_NAME_PATTERN))]
    pub env: Option<String>,
    /// A file path readable by the gateway process; the value read has surrounding
    /// whitespace trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub file: Option<String>,
    /// A secret in AWS Secrets Manager (optionally one field of a JSON secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secrets_manager: Option<AwsSecretsManagerRef>,
}

/// A key in a Kubernetes Secret.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// The Secret's name (same namespace as the tenant).
    #[schemars(regex(pattern = DNS_SUBDOMAIN_PATTERN), length(max = DNS_SUBDOMAIN_MAX))]
    pub name: String,
    /// The key inside the Secret's data.
    #[schemars(regex(pattern = SECRET_KEY_PATTERN), length(max = DNS_SUBDOMAIN_MAX))]
    pub key: String,
}

impl SecretRef {
    /// A reference to an environment variable.
    pub fn env(name: impl Into<String>) -> Self {
        Self {
            env: Some(name.into()),
            ..Self::default()
        }
    }

    /// How many of the alternative sources are set (valid references set exactly one).
    pub fn sources_set(&self) -> usize {
        usize::from(self.secret_key_ref.is_some())
            + usize::from(self.env.is_some())
            + usize::from(self.file.is_some())
            + usize::from(self.aws_secrets_manager.is_some())
    }

    /// Human description of the source, safe to log (never the value).
    pub fn describe(&self) -> String {
        match (
            &self.secret_key_ref,
            &self.env,
            &self.file,
            &self.aws_secrets_manager,
        ) {
            (Some(s), _, _, _) => format!("secret {}/{}", s.name, s.key),
            (None, Some(e), _, _) => format!("environment variable {e}"),
            (None, None, Some(f), _) => format!("file {f}"),
            (None, None, None, Some(a)) => a.describe(),
            (None, None, None, None) => "nothing".to_string(),
        }
    }
}
