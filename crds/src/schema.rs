//! Adjustments that make schemars' output acceptable to a Kubernetes API server.

use schemars::Schema;
use serde_json::{Value, json};

/// Rewrites unsigned integer formats to `int64` with the type's upper bound as `maximum`
/// (schemars already wrote `minimum: 0`) and drops `double`/`float` (a JSON number already
/// is one). API servers recognise only `int32` and `int64` for numbers and, since 1.34, warn
/// about every other format on each apply of the CRD. Applied recursively from the spec
/// and status roots (see `#[schemars(transform)]` on `VoiceTenantSpec`,
/// `KnowledgeBaseSpec` and `KnowledgeBaseStatus`).
pub fn k8s_number_formats(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        rewrite(obj);
    }
}

fn rewrite(obj: &mut serde_json::Map<String, Value>) {
    let max = match obj.get("format").and_then(Value::as_str) {
        Some("uint8") => Some(json!(u8::MAX)),
        Some("uint16") => Some(json!(u16::MAX)),
        Some("uint32") => Some(json!(u32::MAX)),
        Some("uint64" | "uint") => Some(json!(i64::MAX)),
        Some("double" | "float") => {
            obj.remove("format");
            None
        }
        _ => None,
    };
    if let Some(max) = max {
        obj.insert("format".into(), json!("int64"));
        obj.entry("maximum").or_insert(max);
    }
    // Only keywords that hold schemas: `default` and `enum` hold data and stay as written.
    for (key, value) in obj.iter_mut() {
        match (key.as_str(), value) {
            ("items" | "additionalProperties" | "not", Value::Object(child)) => rewrite(child),
            ("properties", Value::Object(props)) => {
                for child in props.values_mut().filter_map(Value::as_object_mut) {
                    rewrite(child);
                }
            }
            ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                for child in items.iter_mut().filter_map(Value::as_object_mut) {
                    rewrite(child);
                }
            }
            _ => {}
        }
    }
}
