//! Patch formats: JSON merge patch (RFC 7386), a strategic merge patch approximation, and
//! JSON patch (RFC 6902, via the `json-patch` crate, with the API server's leniency for
//! `test` of a missing path against `null`).

use serde_json::{Map, Value};

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PatchError {
    /// The body is not a patch of this type (400).
    Malformed(String),
    /// The patch does not apply to the object, e.g. a failed `test` (422).
    Rejected(String),
}

/// Applies an RFC 7386 merge patch.
pub(crate) fn merge(doc: &mut Value, patch: &Value) -> Result<(), PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Malformed(
            "a merge patch must be a JSON object".into(),
        ));
    }
    json_patch::merge(doc, patch);
    Ok(())
}

/// Applies a strategic merge patch the way the server does for the cases we use: maps
/// merge, `null` deletes, lists whose items are all maps with a `name` in both the patch
/// and the object merge item by item on `name` (`$patch: delete` removes an item), every
/// other list is replaced. Directives such as `$setElementOrder/...` and `$retainKeys`
/// are ignored.
pub(crate) fn strategic(doc: &mut Value, patch: &Value) -> Result<(), PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Malformed(
            "a strategic merge patch must be a JSON object".into(),
        ));
    }
    strategic_merge(doc, patch);
    Ok(())
}

fn strategic_merge(doc: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(target) = doc else {
        return;
    };
    for (key, value) in p {
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(_) => {
                let slot = target.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, value);
            }
            Value::Array(items) => {
                let merged = match target.get(key) {
                    Some(Value::Array(current)) if named(current) && named(items) => {
                        Some(merge_named(current, items))
                    }
                    _ => None,
                };
                let items = merged.unwrap_or_else(|| {
                    items
                        .iter()
                        .filter(|i| i.get("$patch").is_none())
                        .cloned()
                        .collect()
                });
                target.insert(key.clone(), Value::Array(items));
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

fn named(items: &[Value]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|i| i.get("name").and_then(Value::as_str).is_some())
}

fn merge_named(current: &[Value], patch: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = current.to_vec();
    for item in patch {
        let name = item.get("name");
        let pos = out.iter().position(|o| o.get("name") == name);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut out[i], item),
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, item);
                out.push(fresh);
            }
        }
    }
    out
}

/// Applies an RFC 6902 JSON patch. All or nothing: `doc` is left untouched on error.
pub(crate) fn json(doc: &mut Value, body: &Value) -> Result<(), PatchError> {
    let ops: Vec<json_patch::PatchOperation> = serde_json::from_value(body.clone())
        .map_err(|e| PatchError::Malformed(format!("invalid JSON patch: {e}")))?;
    let mut work = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        // Like the API server (evanphx/json-patch), `test` of an absent path against
        // `null` succeeds: kube's finalizer helper relies on it.
        if let json_patch::PatchOperation::Test(t) = op
            && t.value.is_null()
            && work.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch_unsafe(&mut work, std::slice::from_ref(op)).map_err(|e| {
            PatchError::Rejected(format!(
                "the server rejected our request due to an error in our request: operation {i}: {e}"
            ))
        })?;
    }
    *doc = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null() {
        let mut d = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge(&mut d, &json!({"a": {"b": null}, "l": [3]})).unwrap();
        assert_eq!(d, json!({"a": {"c": 2}, "l": [3]}));
        assert!(matches!(
            merge(&mut d, &json!([1])),
            Err(PatchError::Malformed(_))
        ));
    }

    #[test]
    fn strategic_merges_named_lists() {
        let mut d = json!({"spec": {"containers": [
            {"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        strategic(
            &mut d,
            &json!({"spec": {"containers": [
                {"name": "b", "image": "z"}, {"name": "c", "image": "w"},
                {"name": "a", "$patch": "delete"}],
                "$setElementOrder/containers": [{"name": "b"}]}}),
        )
        .unwrap();
        assert_eq!(
            d,
            json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}})
        );
    }

    #[test]
    fn json_patch_test_and_null_leniency() {
        let mut d = json!({"metadata": {"name": "a"}});
        json(
            &mut d,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]),
        )
        .unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["f"]));
        let before = d.clone();
        let r = json(
            &mut d,
            &json!([{"op": "remove", "path": "/metadata/finalizers/0"},
                    {"op": "test", "path": "/metadata/name", "value": "b"}]),
        );
        assert!(matches!(r, Err(PatchError::Rejected(_))));
        assert_eq!(d, before);
        assert!(matches!(
            json(&mut d, &json!({"op": "x"})),
            Err(PatchError::Malformed(_))
        ));
    }
}
