//! Reading a `VoiceTenant` manifest from YAML text.

use crate::tenant::VoiceTenant;
use crate::validate::ValidationErrors;

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The text is not YAML of the right shape; the message carries line and field.
    #[error("not a valid VoiceTenant manifest: {0}")]
    Parse(String),
    /// `apiVersion` or `kind` name another resource.
    #[error("expected apiVersion {expected_api} kind VoiceTenant, got {api_version} {kind}")]
    WrongKind {
        /// The expected `apiVersion`.
        expected_api: String,
        /// What the manifest said.
        api_version: String,
        /// What the manifest said.
        kind: String,
    },
    /// The manifest breaks validation rules.
    #[error("invalid VoiceTenant {name}: {errors}")]
    Invalid {
        /// `metadata.name`.
        name: String,
        /// The broken rules.
        errors: ValidationErrors,
    },
}

/// Parses and validates one `VoiceTenant` manifest, filling defaults.
pub fn parse_tenant(text: &str) -> Result<VoiceTenant, LoadError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        #[serde(default)]
        api_version: String,
        #[serde(default)]
        kind: String,
    }
    let head: Head = serde_saphyr::from_str(text).map_err(|e| LoadError::Parse(e.to_string()))?;
    let expected_api = format!("{}/{}", crate::GROUP, crate::VERSION);
    if head.api_version != expected_api || head.kind != "VoiceTenant" {
        return Err(LoadError::WrongKind {
            expected_api,
            api_version: head.api_version,
            kind: head.kind,
        });
    }
    let tenant: VoiceTenant =
        serde_saphyr::from_str(text).map_err(|e| LoadError::Parse(e.to_string()))?;
    tenant
        .spec
        .validate()
        .map_err(|errors| LoadError::Invalid {
            name: tenant.metadata.name.clone().unwrap_or_default(),
            errors,
        })?;
    Ok(tenant)
}
