//! The request checks the Chat Completions API makes, for the parts the simulator reads.

use serde_json::Value;

/// A refused request: the API's `message`, and the `param` it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// What is wrong.
    pub message: String,
    /// The request parameter at fault.
    pub param: Option<String>,
}

fn err(param: &str, message: impl Into<String>) -> RequestError {
    RequestError {
        message: message.into(),
        param: Some(param.to_string()),
    }
}

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Checks `model`, `messages` and `response_format`; returns the JSON schema asked for
/// (`None` for a text answer).
///
/// # Errors
/// The first problem found.
pub fn check_request(body: &Value) -> Result<Option<Value>, RequestError> {
    let obj = body
        .as_object()
        .ok_or_else(|| err("body", "The request body must be a JSON object."))?;
    match obj.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => {}
        Some(_) => return Err(err("model", "model must be a non-empty string.")),
        None => return Err(err("model", "you must provide a model parameter")),
    }
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => {
            return Err(err("messages", "[] is too short - 'messages'"));
        }
        _ => return Err(err("messages", "Missing required parameter: 'messages'.")),
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if !ROLES.contains(&role) {
            return Err(err(
                &format!("messages[{i}].role"),
                format!(
                    "Invalid value: '{role}'. Supported values are: 'system', 'developer', 'user', 'assistant', and 'tool'."
                ),
            ));
        }
        match m.get("content") {
            Some(Value::String(_)) | Some(Value::Array(_)) => {}
            Some(Value::Null) | None if role == "assistant" => {}
            _ => {
                return Err(err(
                    &format!("messages[{i}].content"),
                    format!("Missing required parameter: 'messages[{i}].content'."),
                ));
            }
        }
    }
    let Some(format) = obj.get("response_format") else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") | Some("json_object") => Ok(None),
        Some("json_schema") => {
            let js = format.get("json_schema").ok_or_else(|| {
                err(
                    "response_format.json_schema",
                    "Missing required parameter: 'response_format.json_schema'.",
                )
            })?;
            let name = js.get("name").and_then(Value::as_str).unwrap_or_default();
            let name_ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                return Err(err(
                    "response_format.json_schema.name",
                    "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                ));
            }
            let schema = js.get("schema").filter(|s| s.is_object()).ok_or_else(|| {
                err(
                    "response_format.json_schema.schema",
                    "Missing required parameter: 'response_format.json_schema.schema'.",
                )
            })?;
            if js.get("strict").and_then(Value::as_bool) == Some(true) {
                strict_schema(name, schema, "()")?;
            }
            Ok(Some(schema.clone()))
        }
        other => Err(err(
            "response_format.type",
            format!(
                "Invalid value: '{}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                other.unwrap_or("")
            ),
        )),
    }
}

/// Strict mode's rules: every object closes with `additionalProperties: false` and lists
/// every property in `required`.
fn strict_schema(name: &str, schema: &Value, context: &str) -> Result<(), RequestError> {
    let bad = |m: String| {
        err(
            "response_format",
            format!("Invalid schema for response_format '{name}': In context={context}, {m}"),
        )
    };
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"object") {
        if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err(bad(
                "'additionalProperties' is required to be supplied and to be false.".into(),
            ));
        }
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for key in props.keys() {
            if !required.contains(&key.as_str()) {
                return Err(bad(format!(
                    "'required' is required to be supplied and to be an array including every key in properties. Missing '{key}'."
                )));
            }
        }
        for (key, sub) in &props {
            strict_schema(name, sub, &format!("('properties', '{key}')"))?;
        }
    }
    if let Some(items) = schema.get("items") {
        strict_schema(name, items, &format!("{context}, 'items'"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(schema: Value) -> Value {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
               "response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": true, "schema": schema}}})
    }

    #[test]
    fn strict_schemas_must_be_closed_and_fully_required() {
        let ok = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false});
        assert!(check_request(&req(ok)).is_ok());
        let open =
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]});
        assert!(
            check_request(&req(open))
                .unwrap_err()
                .message
                .contains("additionalProperties")
        );
        let partial = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": [], "additionalProperties": false});
        assert!(
            check_request(&req(partial))
                .unwrap_err()
                .message
                .contains("Missing 'a'")
        );
    }

    #[test]
    fn model_and_messages_are_required() {
        assert_eq!(
            check_request(&json!({"messages": [{"role": "user", "content": "x"}]}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("model")
        );
        assert_eq!(
            check_request(&json!({"model": "m", "messages": []}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("messages")
        );
        assert_eq!(
            check_request(&json!({"model": "m", "messages": [{"role": "caller", "content": "x"}]}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("messages[0].role")
        );
    }
}
