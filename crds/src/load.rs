//! Reading `VoiceTenant` and `KnowledgeBase` manifests from YAML text.

use std::sync::OnceLock;

use kube::{CustomResourceExt, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

use self::keys::{Entry, Node};
use crate::knowledge::KnowledgeBase;
use crate::tenant::VoiceTenant;
use crate::validate::{FieldError, ValidationErrors};

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The text is not YAML of the right shape; the message carries line and column.
    #[error("not a valid {kind} manifest: {message}")]
    Parse {
        /// The kind that was expected (`VoiceTenant`, `KnowledgeBase`).
        kind: &'static str,
        /// The parser's message with its position and the offending line.
        message: String,
    },
    /// `apiVersion` or `kind` name another resource.
    #[error(
        "expected apiVersion {expected_api} kind {expected_kind}, got {api_version:?} {kind:?}"
    )]
    WrongKind {
        /// The expected `apiVersion`.
        expected_api: String,
        /// The expected `kind`.
        expected_kind: &'static str,
        /// What the manifest said.
        api_version: String,
        /// What the manifest said.
        kind: String,
    },
    /// The manifest names fields that do not exist or breaks validation rules.
    #[error("invalid {kind} {name}: {errors}")]
    Invalid {
        /// The manifest's kind.
        kind: &'static str,
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
    parse(text)
}

/// Parses and validates one `KnowledgeBase` manifest, filling defaults; as strict as
/// [`parse_tenant`].
pub fn parse_knowledge_base(text: &str) -> Result<KnowledgeBase, LoadError> {
    parse(text)
}

/// A resource this module reads.
trait Manifest: DeserializeOwned + CustomResourceExt + Resource<DynamicType = ()> {
    /// The kind, for messages.
    const KIND: &'static str;
    /// Where the CRD's schema is kept once generated: generating it walks every type, and
    /// once per process is enough.
    fn schema_cell() -> &'static OnceLock<Option<Value>>;
    fn check(&self) -> Result<(), ValidationErrors>;
}

impl Manifest for VoiceTenant {
    const KIND: &'static str = "VoiceTenant";
    fn schema_cell() -> &'static OnceLock<Option<Value>> {
        static CELL: OnceLock<Option<Value>> = OnceLock::new();
        &CELL
    }
    fn check(&self) -> Result<(), ValidationErrors> {
        self.validate()
    }
}

impl Manifest for KnowledgeBase {
    const KIND: &'static str = "KnowledgeBase";
    fn schema_cell() -> &'static OnceLock<Option<Value>> {
        static CELL: OnceLock<Option<Value>> = OnceLock::new();
        &CELL
    }
    fn check(&self) -> Result<(), ValidationErrors> {
        self.validate()
    }
}

fn parse<T: Manifest>(text: &str) -> Result<T, LoadError> {
    let raw: Value = serde_saphyr::from_str(text).map_err(|e| parse_error::<T>(text, e))?;
    let field = |key: &str| {
        raw.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if api_version != crate::API_VERSION || kind != T::KIND {
        return Err(LoadError::WrongKind {
            expected_api: crate::API_VERSION.to_string(),
            expected_kind: T::KIND,
            api_version,
            kind,
        });
    }
    // Parsed again with the line of every key, for messages about unknown keys.
    let keys: Node = serde_saphyr::from_str(text).map_err(|e| parse_error::<T>(text, e))?;
    let mut errors = unknown_fields::<T>(&keys);
    // Parsed again from the text, not from `raw`, so type errors point at a line.
    let resource: T = match serde_saphyr::from_str(text) {
        Ok(resource) => resource,
        // A misspelt required field (`phoneNumber:`) also makes the real one missing, and
        // the parser reports only that, at the end of the mapping: the unknown key, with
        // its line and the field it most likely meant, comes first.
        Err(e) => return Err(with_unknown_first(parse_error::<T>(text, e), &errors)),
    };
    if let Err(ValidationErrors(rules)) = resource.check() {
        errors.extend(rules);
    }
    if errors.is_empty() {
        Ok(resource)
    } else {
        Err(LoadError::Invalid {
            kind: T::KIND,
            name: resource.meta().name.clone().unwrap_or_default(),
            errors: ValidationErrors(errors),
        })
    }
}

/// One line: the parser's message with its position, then the offending source line, so
/// the message reads well in a log and still shows the field.
fn parse_error<T: Manifest>(text: &str, e: serde_saphyr::Error) -> LoadError {
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
    LoadError::Parse {
        kind: T::KIND,
        message: msg,
    }
}

/// `err` (a parse error) with the unknown keys of `unknown` named before its message.
fn with_unknown_first(err: LoadError, unknown: &[FieldError]) -> LoadError {
    match err {
        LoadError::Parse { kind, message } if !unknown.is_empty() => LoadError::Parse {
            kind,
            message: format!("{}; {message}", ValidationErrors(unknown.to_vec())),
        },
        other => other,
    }
}

/// Fields of `manifest` that the CRD schema does not describe (what an API server would
/// prune). `metadata` is not described by the CRD and is left to serde.
fn unknown_fields<T: Manifest>(manifest: &Node) -> Vec<FieldError> {
    let Some(schema) = T::schema_cell().get_or_init(|| crd_schema::<T>().ok()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Node::Map(root) = manifest {
        for entry in sorted(root) {
            let key = entry.key.as_str();
            match key {
                "apiVersion" | "kind" | "metadata" => {}
                _ => match schema.get("properties").and_then(|p| p.get(key)) {
                    Some(sub) => walk(&entry.value, sub, key, &mut out),
                    None => out.push(unknown(key, entry.line, schema)),
                },
            }
        }
    }
    out
}

/// A mapping's entries by key: unknown fields are listed in that order, whatever order
/// the manifest has.
fn sorted(entries: &[Entry]) -> Vec<&Entry> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    sorted
}

fn crd_schema<T: Manifest>() -> Result<Value, serde_json::Error> {
    let crd = T::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema)
}

fn walk(value: &Node, schema: &Value, path: &str, out: &mut Vec<FieldError>) {
    match value {
        Node::Map(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for entry in sorted(map) {
                    let child = format!("{path}.{}", entry.key);
                    match props.get(&entry.key) {
                        Some(sub) => walk(&entry.value, sub, &child, out),
                        None => out.push(unknown(&child, entry.line, schema)),
                    }
                }
            } else if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for entry in sorted(map) {
                    walk(&entry.value, sub, &format!("{path}.{}", entry.key), out);
                }
            }
        }
        Node::Seq(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(v, sub, &format!("{path}[{i}]"), out);
                }
            }
        }
        Node::Scalar => {}
    }
}

/// `field` (a path ending in the key as written, at `line`) is not a property of the
/// object `schema` describes.
fn unknown(field: &str, line: u64, schema: &Value) -> FieldError {
    let key = field.rsplit('.').next().unwrap_or(field);
    let known = schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|props| props.keys().map(String::as_str));
    let at = if line > 0 {
        format!(" (line {line})")
    } else {
        String::new()
    };
    let rule = match suggest::closest(key, known) {
        Some(meant) => format!("is not a known field{at}; did you mean `{meant}`?"),
        None => format!("is not a known field{at}; misspelt?"),
    };
    FieldError {
        field: field.to_string(),
        rule,
    }
}

mod keys;
mod suggest;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
