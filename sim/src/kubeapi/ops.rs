//! The verbs: create, replace, patch, apply, delete, with the API server's rules for
//! system metadata, the status subresource, generation, finalizers, preconditions and
//! no-op writes.

use serde_json::{Map, Value, json};

use super::apply::{self, Managed, Scope};
use super::defaults;
use super::kinds;
use super::meta;
use super::patch::{self, PatchError};
use super::path::{Gvr, Target};
use super::status::{self, ApiError};
use super::store::{Deleted, ObjKey, Store};
use super::workloads;

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteParams {
    /// `fieldManager`, or the client's user agent when absent.
    pub manager: String,
    /// Whether `fieldManager` was given (required for apply).
    pub manager_given: bool,
    pub dry_run: bool,
    pub force: bool,
}

/// The content type of a PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Apply,
    Merge,
    Strategic,
    Json,
}

impl PatchKind {
    /// From a `Content-Type` (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/json-patch+json" => Some(PatchKind::Json),
            _ => None,
        }
    }
}

/// Delete options from the body and query.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteParams {
    pub dry_run: bool,
    pub orphan: bool,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl DeleteParams {
    /// Parses a `DeleteOptions` body (empty = defaults).
    pub fn parse(
        body: &[u8],
        dry_run: bool,
        propagation: Option<&str>,
    ) -> Result<DeleteParams, ApiError> {
        let mut p = DeleteParams {
            dry_run,
            orphan: propagation == Some("Orphan"),
            ..DeleteParams::default()
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(p);
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if !v.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be an object"));
        }
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            p.dry_run = true;
        }
        if v.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
            || v.get("orphanDependents").and_then(Value::as_bool) == Some(true)
        {
            p.orphan = true;
        }
        let pre = v.get("preconditions");
        let s = |k: &str| {
            pre.and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        p.uid = s("uid");
        p.resource_version = s("resourceVersion");
        Ok(p)
    }
}

/// The outcome of a write: the HTTP status, the body, and whether the object changed.
pub(crate) type Written = (u16, Value, bool);

fn scope_of(t: &Target) -> Result<Scope, ApiError> {
    match t.subresource.as_deref() {
        None => Ok(Scope::Main {
            status_separate: kinds::has_status_subresource(&t.gvr),
        }),
        Some("status") if kinds::has_status_subresource(&t.gvr) => Ok(Scope::Status),
        Some(other) => Err(ApiError::no_route(&format!(
            "{}/{other}",
            t.gvr.qualified()
        ))),
    }
}

fn as_object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

/// Checks `apiVersion`/`kind` of a body against the URL; returns the kind.
fn check_type(
    store: &Store,
    gvr: &Gvr,
    body: &Map<String, Value>,
    required: bool,
) -> Result<String, ApiError> {
    match body.get("apiVersion") {
        Some(Value::String(v)) if *v == gvr.api_version() => {}
        None if !required => {}
        None => return Err(ApiError::bad_request("apiVersion must be set")),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({other}) does not match the expected API version ({})",
                gvr.api_version()
            )));
        }
    }
    let known = kinds::builtin_kind(gvr);
    match body.get("kind") {
        Some(Value::String(k)) if known.is_none_or(|known| known == k) && !k.is_empty() => {
            Ok(k.clone())
        }
        None if !required => Ok(store.kind(gvr)),
        None => Err(ApiError::bad_request("kind must be set")),
        Some(other) => Err(ApiError::bad_request(format!(
            "the kind in the data ({other}) does not match the expected kind ({})",
            store.kind(gvr)
        ))),
    }
}

fn key_of(t: &Target, name: &str) -> ObjKey {
    (t.ns().to_owned(), name.to_owned())
}

/// Validates names and metadata of a new or updated object.
fn validate(gvr: &Gvr, kind: &str, name: &str, meta: &Map<String, Value>) -> Result<(), ApiError> {
    let name_check = if kinds::name_is_dns_label(gvr) {
        meta::check_label(name)
    } else {
        meta::check_subdomain(name)
    };
    name_check.map_err(|why| {
        ApiError::invalid(
            gvr,
            kind,
            name,
            "metadata.name",
            &format!("Invalid value: {why}"),
        )
    })?;
    meta::validate(meta).map_err(|(field, why)| ApiError::invalid(gvr, kind, name, &field, &why))
}

/// POST: creates an object.
pub(crate) fn create(
    store: &mut Store,
    t: &Target,
    body: Value,
    p: &WriteParams,
) -> Result<Written, ApiError> {
    if t.subresource.is_some() || t.name.is_some() {
        return Err(ApiError::method_not_allowed("create"));
    }
    let body = as_object(body)?;
    let kind = check_type(store, &t.gvr, &body, false)?;
    let mut managed = Vec::new();
    let obj = prepare_new(store, t, body, &kind)?;
    apply::record_update(&mut managed, &p.manager, &Value::Null, &obj, scope_of(t)?);
    insert_new(store, t, obj, managed, &kind, p.dry_run)
}

/// Fills in system metadata of a new object and validates it.
fn prepare_new(
    store: &Store,
    t: &Target,
    mut body: Map<String, Value>,
    kind: &str,
) -> Result<Value, ApiError> {
    let mut meta = match body.remove("metadata") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(ApiError::bad_request("metadata must be an object")),
    };
    let name = match (meta.get("name"), meta.get("generateName")) {
        (Some(Value::String(n)), _) if !n.is_empty() => n.clone(),
        (_, Some(Value::String(prefix))) if !prefix.is_empty() => {
            let mut name = format!("{prefix}{}", meta::name_suffix());
            while store.get(&t.gvr, &key_of(t, &name)).is_some() {
                name = format!("{prefix}{}", meta::name_suffix());
            }
            name
        }
        _ => {
            return Err(ApiError::invalid(
                &t.gvr,
                kind,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
    };
    match (&t.namespace, meta.get("namespace")) {
        (Some(ns), Some(Value::String(body_ns))) if body_ns != ns && !body_ns.is_empty() => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => {}
    }
    meta.insert("name".into(), json!(name));
    match &t.namespace {
        Some(ns) => meta.insert("namespace".into(), json!(ns)),
        None => meta.remove("namespace"),
    };
    meta.insert("uid".into(), json!(meta::new_uid()));
    meta.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
    meta.insert("generation".into(), json!(1));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(k);
    }
    meta::drop_empty(&mut meta);
    validate(&t.gvr, kind, &name, &meta)?;
    if kinds::has_status_subresource(&t.gvr) {
        body.remove("status");
    }
    body.insert("apiVersion".into(), json!(t.gvr.api_version()));
    body.insert("kind".into(), json!(kind));
    body.insert("metadata".into(), Value::Object(meta));
    let mut obj = Value::Object(body);
    defaults::apply(&t.gvr, &mut obj);
    Ok(obj)
}

fn insert_new(
    store: &mut Store,
    t: &Target,
    obj: Value,
    mut managed: Vec<Managed>,
    kind: &str,
    dry_run: bool,
) -> Result<Written, ApiError> {
    let name = meta::meta_str(&obj, "name").unwrap_or_default().to_owned();
    let key = key_of(t, &name);
    if store.get(&t.gvr, &key).is_some() {
        return Err(ApiError::already_exists(&t.gvr, &name));
    }
    if dry_run {
        return Ok((201, obj, false));
    }
    apply::prune(&mut managed, &obj);
    store.learn_kind(&t.gvr, kind);
    let stored = store.put(&t.gvr, key.clone(), obj, managed);
    workloads::after_write(store, &t.gvr, &key);
    Ok((201, stored, true))
}

/// How ownership changes with an update.
enum Ownership {
    /// A non-apply write by this manager.
    Update(String),
    /// Already computed by apply.
    Given(Vec<Managed>),
}

/// Stores `candidate` as the next version of an existing object, unless it changes
/// nothing.
#[allow(clippy::too_many_arguments)]
fn commit_update(
    store: &mut Store,
    t: &Target,
    key: &ObjKey,
    candidate: Value,
    ownership: Ownership,
    precondition_rv: Option<String>,
    dry_run: bool,
) -> Result<Written, ApiError> {
    let scope = scope_of(t)?;
    let old = store
        .get(&t.gvr, key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.gvr, &key.1))?;
    let old_rv = meta::meta_str(&old.obj, "resourceVersion")
        .unwrap_or("")
        .to_owned();
    if let Some(rv) = precondition_rv.filter(|rv| !rv.is_empty())
        && rv != old_rv
    {
        return Err(ApiError::conflict(
            &t.gvr,
            &key.1,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let kind = meta_kind(&old.obj);
    let mut new = match scope {
        Scope::Status => {
            let mut n = old.obj.clone();
            match (candidate.get("status"), n.as_object_mut()) {
                (Some(s), Some(m)) => {
                    m.insert("status".into(), s.clone());
                }
                (None, Some(m)) => {
                    m.remove("status");
                }
                _ => {}
            }
            n
        }
        Scope::Main { status_separate } => {
            let mut body = as_object(candidate)?;
            let mut meta = match body.remove("metadata") {
                Some(Value::Object(m)) => m,
                None | Some(Value::Null) => Map::new(),
                Some(_) => return Err(ApiError::bad_request("metadata must be an object")),
            };
            if let Some(Value::String(n)) = meta.get("name")
                && *n != key.1
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({})",
                    key.1
                )));
            }
            let old_meta = old.obj.get("metadata").and_then(Value::as_object);
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old_meta.and_then(|m| m.get(k)) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            meta.remove("managedFields");
            meta.remove("selfLink");
            meta::drop_empty(&mut meta);
            validate(&t.gvr, &kind, &key.1, &meta)?;
            body.insert("apiVersion".into(), json!(t.gvr.api_version()));
            body.insert("kind".into(), json!(kind));
            body.insert("metadata".into(), Value::Object(meta));
            if status_separate {
                match old.obj.get("status") {
                    Some(s) => body.insert("status".into(), s.clone()),
                    None => body.remove("status"),
                };
            }
            Value::Object(body)
        }
    };
    if meta::meta_str(&old.obj, "deletionTimestamp").is_some() {
        let before = meta::finalizers(&old.obj);
        if meta::finalizers(&new).iter().any(|f| !before.contains(f)) {
            return Err(ApiError::invalid(
                &t.gvr,
                &kind,
                &key.1,
                "metadata.finalizers",
                "Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    defaults::apply(&t.gvr, &mut new);
    let mut managed = match ownership {
        Ownership::Given(m) => m,
        Ownership::Update(manager) => {
            let mut m = old.managed.clone();
            apply::record_update(&mut m, &manager, &old.obj, &new, scope);
            m
        }
    };
    apply::prune(&mut managed, &new);
    if new == old.obj {
        if !dry_run {
            store.set_managed(&t.gvr, key, managed);
        }
        return Ok((200, old.obj, false));
    }
    if spec_of(&new) != spec_of(&old.obj)
        && let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
    {
        let generation = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
        m.insert("generation".into(), json!(generation + 1));
    }
    if dry_run {
        return Ok((200, new, false));
    }
    if meta::meta_str(&new, "deletionTimestamp").is_some() && meta::finalizers(&new).is_empty() {
        let last = store.remove(&t.gvr, key, new, true);
        return Ok((200, last, true));
    }
    let stored = store.put(&t.gvr, key.clone(), new, managed);
    if scope != Scope::Status {
        workloads::after_write(store, &t.gvr, key);
    }
    Ok((200, stored, true))
}

/// Everything generation tracks: the object minus metadata and status.
fn spec_of(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn meta_kind(obj: &Value) -> String {
    obj.get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn body_rv(body: &Value) -> Option<String> {
    body.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// PUT: replaces an object (or its status).
pub(crate) fn replace(
    store: &mut Store,
    t: &Target,
    name: &str,
    body: Value,
    p: &WriteParams,
) -> Result<Written, ApiError> {
    let key = key_of(t, name);
    if store.get(&t.gvr, &key).is_none() {
        return Err(ApiError::not_found(&t.gvr, name));
    }
    let map = as_object(body)?;
    check_type(store, &t.gvr, &map, false)?;
    let body = Value::Object(map);
    let rv = body_rv(&body);
    commit_update(
        store,
        t,
        &key,
        body,
        Ownership::Update(p.manager.clone()),
        rv,
        p.dry_run,
    )
}

/// PATCH with a merge, strategic merge or JSON patch.
pub(crate) fn patch(
    store: &mut Store,
    t: &Target,
    name: &str,
    kind: PatchKind,
    body: Value,
    p: &WriteParams,
) -> Result<Written, ApiError> {
    if kind == PatchKind::Apply {
        return apply(store, t, name, body, p);
    }
    let key = key_of(t, name);
    let old = store
        .get(&t.gvr, &key)
        .map(|s| s.obj.clone())
        .ok_or_else(|| ApiError::not_found(&t.gvr, name))?;
    let mut doc = old.clone();
    let result = match kind {
        PatchKind::Merge => patch::merge(&mut doc, &body),
        PatchKind::Strategic => patch::strategic(&mut doc, &body),
        _ => patch::json(&mut doc, &body),
    };
    result.map_err(|e| match e {
        PatchError::Malformed(m) => ApiError::bad_request(m),
        PatchError::Rejected(m) => ApiError::new(422, "Invalid", m),
    })?;
    let rv =
        body_rv(&doc).filter(|rv| Some(rv.as_str()) != meta::meta_str(&old, "resourceVersion"));
    commit_update(
        store,
        t,
        &key,
        doc,
        Ownership::Update(p.manager.clone()),
        rv,
        p.dry_run,
    )
}

/// PATCH with `application/apply-patch+yaml`: server-side apply.
fn apply(
    store: &mut Store,
    t: &Target,
    name: &str,
    config: Value,
    p: &WriteParams,
) -> Result<Written, ApiError> {
    if !p.manager_given || p.manager.is_empty() {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let scope = scope_of(t)?;
    let map = as_object(config)?;
    let kind = check_type(store, &t.gvr, &map, true)?;
    if let Some(Value::String(n)) = map.get("metadata").and_then(|m| m.get("name"))
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let config = Value::Object(map);
    let key = key_of(t, name);
    let Some(old) = store.get(&t.gvr, &key).cloned() else {
        if scope == Scope::Status {
            return Err(ApiError::not_found(&t.gvr, name));
        }
        let mut skeleton = json!({
            "apiVersion": t.gvr.api_version(),
            "kind": kind,
            "metadata": { "name": name },
        });
        if let (Some(ns), Some(m)) = (&t.namespace, skeleton["metadata"].as_object_mut()) {
            m.insert("namespace".into(), json!(ns));
        }
        let applied = apply::apply(&skeleton, &[], &p.manager, &config, scope, p.force)
            .map_err(|c| ApiError::apply_conflict(&t.gvr, name, &c))?;
        let obj = prepare_new(store, t, as_object(applied.object)?, &kind)?;
        return insert_new(store, t, obj, applied.managed, &kind, p.dry_run);
    };
    let applied = apply::apply(&old.obj, &old.managed, &p.manager, &config, scope, p.force)
        .map_err(|c| ApiError::apply_conflict(&t.gvr, name, &c))?;
    commit_update(
        store,
        t,
        &key,
        applied.object,
        Ownership::Given(applied.managed),
        body_rv(&config),
        p.dry_run,
    )
}

/// DELETE of one object.
pub(crate) fn delete(
    store: &mut Store,
    t: &Target,
    name: &str,
    p: &DeleteParams,
) -> Result<Written, ApiError> {
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed("delete of a subresource"));
    }
    let key = key_of(t, name);
    let old = store
        .get(&t.gvr, &key)
        .map(|s| s.obj.clone())
        .ok_or_else(|| ApiError::not_found(&t.gvr, name))?;
    let uid = meta::meta_str(&old, "uid").unwrap_or_default().to_owned();
    if let Some(want) = &p.uid
        && *want != uid
    {
        return Err(ApiError::conflict(
            &t.gvr,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    let rv = meta::meta_str(&old, "resourceVersion").unwrap_or_default();
    if let Some(want) = &p.resource_version
        && want != rv
    {
        return Err(ApiError::conflict(
            &t.gvr,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
            ),
        ));
    }
    if p.dry_run {
        return Ok((200, old, false));
    }
    match store.delete(&t.gvr, &key, !p.orphan) {
        Some(Deleted::Pending { obj, changed }) => Ok((200, obj, changed)),
        Some(Deleted::Gone) => Ok((200, status::deleted_status(&t.gvr, name, &uid), true)),
        None => Err(ApiError::not_found(&t.gvr, name)),
    }
}
