//! A secret kept in AWS Secrets Manager.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::NOT_BLANK_PATTERN;

/// Longest secret id (name or ARN) Secrets Manager accepts.
pub const SECRET_ID_MAX: u32 = 2048;

/// A secret in AWS Secrets Manager, read by whoever uses it (the gateway, or the
/// operator) with the AWS default credential chain (IRSA on EKS) and re-read on a
/// schedule, so a rotation is picked up without a restart.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretsManagerRef {
    /// The secret's name or ARN.
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = SECRET_ID_MAX))]
    pub secret_id: String,
    /// For a secret holding a JSON object: the field whose value is used. Absent: the
    /// whole secret string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub key: Option<String>,
    /// Version stage to read (default `AWSCURRENT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub version_stage: Option<String>,
}

impl AwsSecretsManagerRef {
    /// Human description, safe to log.
    pub fn describe(&self) -> String {
        let mut s = format!("AWS Secrets Manager secret {}", self.secret_id);
        if let Some(k) = &self.key {
            s.push_str(&format!(" field {k}"));
        }
        if let Some(v) = &self.version_stage {
            s.push_str(&format!(" ({v})"));
        }
        s
    }
}
