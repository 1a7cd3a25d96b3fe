//! Failures as the API server reports them: a `Status` object with code and reason.

use serde_json::{Value, json};

use super::path::Gvr;

/// A failed request, rendered as a `kind: Status` body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    /// A failure without details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, gvr: &Gvr, kind: &str, name: &str) -> ApiError {
        let mut details = json!({ "name": name, "kind": kind });
        if !gvr.group.is_empty() {
            details["group"] = json!(gvr.group);
        }
        self.details = Some(details);
        self
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 404 for an object.
    pub fn not_found(gvr: &Gvr, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", gvr.qualified()),
        )
        .with_details(gvr, &gvr.plural, name)
    }

    /// 404 for a path that names nothing.
    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405: the verb is not supported here.
    pub fn method_not_allowed(what: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({what})"),
        )
    }

    /// 409 on create of an existing object.
    pub fn already_exists(gvr: &Gvr, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", gvr.qualified()),
        )
        .with_details(gvr, &gvr.plural, name)
    }

    /// 409 on a stale `resourceVersion` or failed precondition.
    pub fn conflict(gvr: &Gvr, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                gvr.qualified()
            ),
        )
        .with_details(gvr, &gvr.plural, name)
    }

    /// 409 when server-side apply meets fields another manager owns.
    pub fn apply_conflict(gvr: &Gvr, name: &str, conflicts: &[(String, String)]) -> ApiError {
        let list: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("conflict with \"{manager}\": {field}"))
            .collect();
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\""),
                    "field": field,
                })
            })
            .collect();
        let mut e = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                list.join("\n")
            ),
        )
        .with_details(gvr, &gvr.plural, name);
        if let Some(d) = e.details.as_mut() {
            d["causes"] = Value::Array(causes);
        }
        e
    }

    /// 422: the object fails validation.
    pub fn invalid(gvr: &Gvr, kind: &str, name: &str, field: &str, why: &str) -> ApiError {
        let mut e = ApiError::new(
            422,
            "Invalid",
            if gvr.group.is_empty() {
                format!("{kind} \"{name}\" is invalid: {field}: {why}")
            } else {
                format!("{kind}.{} \"{name}\" is invalid: {field}: {why}", gvr.group)
            },
        )
        .with_details(gvr, kind, name);
        if let Some(d) = e.details.as_mut() {
            d["causes"] =
                json!([{ "reason": "FieldValueInvalid", "message": why, "field": field }]);
        }
        e
    }

    /// 410: the requested resourceVersion is older than the retained history.
    pub fn expired(rv: u64) -> ApiError {
        ApiError::new(410, "Expired", format!("too old resource version: {rv}"))
    }

    /// 503: the simulated server is down.
    pub fn unavailable() -> ApiError {
        ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        )
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// The `Status` a delete of an object that is gone at once answers with.
pub(crate) fn deleted_status(gvr: &Gvr, name: &str, uid: &str) -> Value {
    let mut details = json!({ "name": name, "kind": gvr.plural, "uid": uid });
    if !gvr.group.is_empty() {
        details["group"] = json!(gvr.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
