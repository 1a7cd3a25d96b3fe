//! Reading a `VoiceTenant` manifest from YAML text.

use std::sync::OnceLock;

use serde_json::Value;

use crate::tenant::VoiceTenant;
use crate::validate::{FieldError, ValidationErrors};

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The text is not YAML of the right shape; the message carries line and column.
    #[error("not a valid VoiceTenant manifest: {0}")]
    Parse(String),
    /// `apiVersion` or `kind` name another resource.
    #[error("expected apiVersion {expected_api} kind VoiceTenant, got {api_version:?} {kind:?}")]
    WrongKind {
        /// The expected `apiVersion`.
        expected_api: String,
        /// What the manifest said.
        api_version: String,
        /// What the manifest said.
        kind: String,
    },
    /// The manifest names fields that do not exist or breaks validation rules.
    #[error("invalid VoiceTenant {name}: {errors}")]
    Invalid {
        /// `metadata.name` (empty when missing).
        name: String,
        /// The broken rules.
        errors: ValidationErrors,
    },
}

/// Parses and validates one `VoiceTenant` manifest, filling defaults.
///
/// Stricter than an API server in one way: a field the schema does not know is an error
/// rather than silently dropped, so a misspelt optional field (`interuptible: true`) cannot
/// go unnoticed on a laptop. (`kubectl` also refuses those, with its default strict field
/// validation.)
pub fn parse_tenant(text: &str) -> Result<VoiceTenant, LoadError> {
    let raw: Value = serde_saphyr::from_str(text).map_err(|e| parse_error(text, e))?;
    let field = |key: &str| {
        raw.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if api_version != crate::API_VERSION || kind != "VoiceTenant" {
        return Err(LoadError::WrongKind {
            expected_api: crate::API_VERSION.to_string(),
            api_version,
            kind,
        });
    }
    // Parsed again from the text, not from `raw`, so type errors point at a line.
    let tenant: VoiceTenant = serde_saphyr::from_str(text).map_err(|e| parse_error(text, e))?;
    let mut errors = unknown_fields(&raw);
    if let Err(ValidationErrors(rules)) = tenant.validate() {
        errors.extend(rules);
    }
    if errors.is_empty() {
        Ok(tenant)
    } else {
        Err(LoadError::Invalid {
            name: tenant.metadata.name.clone().unwrap_or_default(),
            errors: ValidationErrors(errors),
        })
    }
}

/// One line: the parser's message with its position, then the offending source line, so
/// the message reads well in a log and still shows the field.
fn parse_error(text: &str, e: serde_saphyr::Error) -> LoadError {
    let options = serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let mut msg = e.render_with_options(options);
    let source_line = e
        .location()
        .and_then(|l| usize::try_from(l.line()).ok())
        .and_then(|n| text.lines().nth(n.checked_sub(1)?))
        .map(str::trim)
        .filter(|l| !l.is_empty());
    if let Some(line) = source_line {
        msg.push_str(&format!(" (`{line}`)"));
    }
    LoadError::Parse(msg)
}

/// Fields of `manifest` that the CRD schema does not describe (what an API server would
/// prune). `metadata` is not described by the CRD and is left to serde.
fn unknown_fields(manifest: &Value) -> Vec<FieldError> {
    // Generating the schema walks every type; once per process is enough.
    static SCHEMA: OnceLock<Option<Value>> = OnceLock::new();
    let Some(schema) = SCHEMA.get_or_init(|| crd_schema().ok()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Value::Object(root) = manifest {
        for (key, value) in root {
            match key.as_str() {
                "apiVersion" | "kind" | "metadata" => {}
                _ => match schema.get("properties").and_then(|p| p.get(key)) {
                    Some(sub) => walk(value, sub, key, &mut out),
                    None => out.push(unknown(key)),
                },
            }
        }
    }
    out
}

fn crd_schema() -> Result<Value, serde_json::Error> {
    use kube::CustomResourceExt;
    let crd = VoiceTenant::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema)
}

fn walk(value: &Value, schema: &Value, path: &str, out: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, v) in map {
                    let child = format!("{path}.{key}");
                    match props.get(key) {
                        Some(sub) => walk(v, sub, &child, out),
                        None => out.push(unknown(&child)),
                    }
                }
            } else if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for (key, v) in map {
                    walk(v, sub, &format!("{path}.{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(v, sub, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn unknown(field: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        rule: "is not a known field (misspelt?)".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
