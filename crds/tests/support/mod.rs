//! A stand-in for the API server's checks of a custom resource against the generated CRD:
//! defaulting, the OpenAPI value validations the schema uses, and the CEL rules. No API
//! server can run here; this keeps the published schema honest against `validate()`.

#![allow(dead_code)]

use kube::core::cel::{Validator, apply_defaults};
use serde_json::{Value, json};

/// The `openAPIV3Schema` of the VoiceTenant CRD, as JSON.
pub fn tenant_schema() -> Value {
    schema_of("VoiceTenant")
}

/// The `openAPIV3Schema` of the KnowledgeBase CRD, as JSON.
pub fn knowledge_schema() -> Value {
    schema_of("KnowledgeBase")
}

/// The `openAPIV3Schema` of the CRD of `kind`, as JSON.
pub fn schema_of(kind: &str) -> Value {
    let crds = serde_json::to_value(switchboard_crds::crds()).unwrap();
    let crd = crds
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD of kind {kind}"));
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// What the API server refuses when `object` replaces `old` (transition rules, which use
/// `oldSelf`, only run on updates).
pub fn update_refusals(schema: &Value, object: &Value, old: &Value) -> Vec<String> {
    let (object, old) = (defaulted(schema, object), defaulted(schema, old));
    match Validator::new().validate(schema, &object, Some(&old)) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{}: {} (CEL)", e.field_path, e.message))
            .collect(),
    }
}

/// What an API server does to an incoming object before storing it: fill defaults.
pub fn defaulted(schema: &Value, object: &Value) -> Value {
    apply_defaults(schema, object)
}

/// Everything the API server would refuse in `object` (after defaulting), one line each.
pub fn refusals(schema: &Value, object: &Value) -> Vec<String> {
    let object = defaulted(schema, object);
    let mut out = Vec::new();
    // metadata, apiVersion and kind are checked by the API server itself, not the schema.
    let mut body = object.clone();
    if let Some(map) = body.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            map.remove(key);
        }
    }
    openapi(&body, schema, "", &mut out);
    if let Err(errors) = Validator::new().validate(schema, &object, None) {
        out.extend(
            errors
                .iter()
                .map(|e| format!("{}: {} (CEL)", e.field_path, e.message)),
        );
    }
    out
}

/// Whether RE2-style `pattern` matches `s`, evaluated by the CEL library's `matches`.
pub fn pattern_matches(pattern: &str, s: &str) -> bool {
    let schema = json!({
        "type": "object",
        "properties": {"s": {"type": "string"}, "p": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.s.matches(self.p)"}]
    });
    Validator::new()
        .validate(&schema, &json!({"s": s, "p": pattern}), None)
        .is_ok()
}

fn openapi(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    let mut fail = |what: String| out.push(format!("{path}: {what}"));
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            fail("null is not allowed".into());
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            fail("must be an integer or a string".into());
        }
        return;
    }
    let type_ok = match schema["type"].as_str() {
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        other => {
            fail(format!("schema has no usable type ({other:?})"));
            return;
        }
    };
    if !type_ok {
        fail(format!("must be of type {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        fail(format!("must be one of {allowed:?}"));
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| len < m) {
            fail(format!("shorter than minLength {}", schema["minLength"]));
        }
        if schema["maxLength"].as_u64().is_some_and(|m| len > m) {
            fail(format!("longer than maxLength {}", schema["maxLength"]));
        }
        if let Some(p) = schema["pattern"].as_str()
            && !pattern_matches(p, s)
        {
            fail(format!("does not match {p}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            fail(format!("below minimum {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            fail(format!("above maximum {}", schema["maximum"]));
        }
    }
    if let Some(items) = value.as_array() {
        if schema["minItems"]
            .as_u64()
            .is_some_and(|m| (items.len() as u64) < m)
        {
            fail(format!("fewer than minItems {}", schema["minItems"]));
        }
        if schema["maxItems"]
            .as_u64()
            .is_some_and(|m| (items.len() as u64) > m)
        {
            fail(format!("more than maxItems {}", schema["maxItems"]));
        }
        if schema["x-kubernetes-list-type"] == json!("set") {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    fail(format!("duplicate entry {item} in a set"));
                }
            }
        }
        if schema["x-kubernetes-list-type"] == json!("map") {
            let keys = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let key_of = |item: &Value| -> Vec<Value> {
                keys.iter()
                    .map(|k| item[k.as_str().unwrap_or_default()].clone())
                    .collect()
            };
            for (i, item) in items.iter().enumerate() {
                if items[..i].iter().any(|o| key_of(o) == key_of(item)) {
                    fail(format!(
                        "duplicate map key {:?} in a map list",
                        key_of(item)
                    ));
                }
            }
        }
        for (i, item) in items.iter().enumerate() {
            openapi(item, &schema["items"], &format!("{path}[{i}]"), out);
        }
    }
    if let Some(map) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            if let Some(k) = key.as_str()
                && !map.contains_key(k)
            {
                out.push(format!("{path}.{k}: is required"));
            }
        }
        for (k, v) in map {
            let child = format!("{path}.{k}");
            if let Some(sub) = schema["properties"].get(k) {
                openapi(v, sub, &child, out);
            } else if schema["additionalProperties"].is_object() {
                openapi(v, &schema["additionalProperties"], &child, out);
            } else {
                out.push(format!("{child}: unknown field (pruned)"));
            }
        }
    }
}
