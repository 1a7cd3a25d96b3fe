//! HTTP: routes a request to a verb, renders objects, lists and failures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch as tokio_watch;

use super::kinds;
use super::ops::{self, DeleteParams, PatchKind, WriteParams};
use super::path::{self, Target};
use super::selector::Filter;
use super::status::ApiError;
use super::store::Store;
use super::watch::{self, Start, WatchRequest};
use super::{KubeApiOptions, WriteRecord};

/// State shared by the server and the test handle.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub opts: KubeApiOptions,
    pub available: AtomicBool,
    pub requests: AtomicU64,
    pub watches: AtomicU64,
    pub shutdown: tokio_watch::Receiver<bool>,
}

impl Shared {
    /// The store, locked (a panic elsewhere does not wedge the server).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

/// `GET /_sim/stats`: counters and object counts for a benchmark in another process.
pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let store = shared.store();
    let c = store.counters;
    json_response(
        200,
        &json!({
            "writes": c.writes,
            "changes": c.changes,
            "controllerChanges": c.controller_changes,
            "requests": shared.requests.load(Ordering::Relaxed),
            "watches": shared.watches.load(Ordering::Relaxed),
            "resourceVersion": store.rv().to_string(),
            "objects": store.count_by_kind(),
        }),
    )
}

/// `GET /_sim/writes`: the write log.
pub(crate) async fn writes(State(shared): State<Arc<Shared>>) -> Response {
    let log: Vec<WriteRecord> = shared.store().log.iter().cloned().collect();
    json_response(200, &serde_json::to_value(log).unwrap_or(Value::Null))
}

/// `POST /_sim/reset`: zeroes the counters and the write log.
pub(crate) async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    super::reset(&shared);
    json_response(200, &json!({}))
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn truthy(q: &HashMap<String, String>, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("true" | "1"))
}

/// Every Kubernetes API request.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    if !shared.available.load(Ordering::Acquire) || *shared.shutdown.borrow() {
        return error_response(&ApiError::unavailable());
    }
    let path = uri.path();
    match path {
        "/version" => {
            return json_response(
                200,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-switchboard-sim",
                        "platform": "linux/amd64"}),
            );
        }
        "/healthz" | "/livez" | "/readyz" => return (StatusCode::OK, "ok").into_response(),
        "/api" => return json_response(200, &json!({"kind": "APIVersions", "versions": ["v1"]})),
        _ => {}
    }
    let Some(target) = path::parse(path) else {
        return error_response(&ApiError::no_route(path));
    };
    let q = query_map(&uri);
    let meta_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let result = match method {
        Method::GET => match &target.name {
            Some(name) => get(&shared, &target, name, meta_only),
            None if truthy(&q, "watch") => return start_watch(&shared, &target, &q, meta_only),
            None => list(&shared, &target, &q, meta_only),
        },
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            write(&shared, &method, &target, &q, &headers, &body, meta_only)
        }
        _ => Err(ApiError::method_not_allowed(method.as_str())),
    };
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error_response(&e),
    }
}

fn get(shared: &Shared, t: &Target, name: &str, meta_only: bool) -> Result<(u16, Value), ApiError> {
    if let Some(sub) = &t.subresource
        && !(sub == "status" && kinds::has_status_subresource(&t.gvr))
    {
        return Err(ApiError::no_route(&format!("{}/{sub}", t.gvr.qualified())));
    }
    let store = shared.store();
    let key = (t.ns().to_owned(), name.to_owned());
    let s = store
        .get(&t.gvr, &key)
        .ok_or_else(|| ApiError::not_found(&t.gvr, name))?;
    Ok((200, watch::render(&s.obj, meta_only)))
}

fn filter(t: &Target, q: &HashMap<String, String>) -> Result<Filter, ApiError> {
    let f = Filter::new(
        t.namespace.clone(),
        q.get("labelSelector").map(String::as_str),
        q.get("fieldSelector").map(String::as_str),
    )
    .map_err(ApiError::bad_request)?;
    // Custom resources select on name and namespace only (built-in kinds each have a few
    // more fields, which are all accepted here).
    if !kinds::is_builtin_group(&t.gvr.group)
        && let Some(field) = f
            .field_paths()
            .find(|p| !matches!(*p, "metadata.name" | "metadata.namespace"))
    {
        return Err(ApiError::bad_request(format!(
            "field label not supported: {field}"
        )));
    }
    Ok(f)
}

fn list(
    shared: &Shared,
    t: &Target,
    q: &HashMap<String, String>,
    meta_only: bool,
) -> Result<(u16, Value), ApiError> {
    if t.subresource.is_some() {
        return Err(ApiError::no_route(&t.gvr.qualified()));
    }
    let f = filter(t, q)?;
    let store = shared.store();
    let strip = kinds::is_builtin_group(&t.gvr.group);
    let items: Vec<Value> = store
        .list(&t.gvr, &f)
        .into_iter()
        .map(|mut o| {
            if meta_only {
                return watch::render(&o, true);
            }
            // Typed lists of built-in kinds carry no per-item type, as from the real server.
            if strip && let Some(m) = o.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
            o
        })
        .collect();
    let (api_version, kind) = if meta_only {
        (
            "meta.k8s.io/v1".to_owned(),
            "PartialObjectMetadataList".to_owned(),
        )
    } else {
        (t.gvr.api_version(), format!("{}List", store.kind(&t.gvr)))
    };
    Ok((
        200,
        json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": { "resourceVersion": store.rv().to_string() },
            "items": items,
        }),
    ))
}

fn start_watch(
    shared: &Arc<Shared>,
    t: &Target,
    q: &HashMap<String, String>,
    meta_only: bool,
) -> Response {
    shared.watches.fetch_add(1, Ordering::Relaxed);
    if t.subresource.is_some() {
        return error_response(&ApiError::no_route(&t.gvr.qualified()));
    }
    let f = match filter(t, q) {
        Ok(f) => f,
        Err(e) => return error_response(&e),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(shared.opts.default_watch_timeout, Duration::from_secs)
        // A day at most: far-future deadlines serve no test and risk clock overflow.
        .min(Duration::from_secs(86_400));
    let bookmarks = truthy(q, "allowWatchBookmarks");
    let send_initial = truthy(q, "sendInitialEvents");
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let from = match rv {
        "" | "0" => None,
        other => match other.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "invalid resource version: {other:?}"
                )));
            }
        },
    };
    let store = shared.store();
    let kind = store.kind(&t.gvr);
    let start = match (from, send_initial) {
        (Some(n), false) => store.watch_from(n).map(|(replay, rx)| Start {
            initial: Vec::new(),
            initial_end_bookmark: false,
            replay,
            rv: n,
            rx,
        }),
        _ => Ok(Start {
            initial: store.list(&t.gvr, &f),
            initial_end_bookmark: send_initial && bookmarks,
            replay: Vec::new(),
            rv: store.rv(),
            rx: store.subscribe(),
        }),
    };
    drop(store);
    let req = WatchRequest {
        gvr: t.gvr.clone(),
        kind,
        filter: f,
        timeout,
        bookmarks,
        bookmark_interval: shared.opts.bookmark_interval,
        meta_only,
    };
    let body = watch::body(req, start, shared.shutdown.clone());
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn parse_body(body: &[u8], yaml_ok: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if yaml_ok => std::str::from_utf8(body)
            .ok()
            .and_then(|s| serde_saphyr::from_str::<Value>(s).ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid body: {e}"))),
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    }
}

fn manager_from(q: &HashMap<String, String>, headers: &HeaderMap) -> (String, bool) {
    match q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => (m.clone(), true),
        None => {
            let ua = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown");
            (ua.to_owned(), false)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write(
    shared: &Shared,
    method: &Method,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    meta_only: bool,
) -> Result<(u16, Value), ApiError> {
    let (manager, manager_given) = manager_from(q, headers);
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    let params = WriteParams {
        manager: manager.clone(),
        manager_given,
        dry_run,
        force: truthy(q, "force"),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mut store = shared.store();
    let (verb, result) = match (method, &t.name) {
        (&Method::POST, None) => (
            "create",
            parse_body(body, false).and_then(|b| ops::create(&mut store, t, b, &params)),
        ),
        (&Method::PUT, Some(name)) => (
            "update",
            parse_body(body, false).and_then(|b| ops::replace(&mut store, t, name, b, &params)),
        ),
        (&Method::PATCH, Some(name)) => match PatchKind::from_content_type(content_type) {
            Some(kind) => (
                if kind == PatchKind::Apply {
                    "apply"
                } else {
                    "patch"
                },
                parse_body(body, kind == PatchKind::Apply)
                    .and_then(|b| ops::patch(&mut store, t, name, kind, b, &params)),
            ),
            None => (
                "patch",
                Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
                    ),
                )),
            ),
        },
        (&Method::DELETE, Some(name)) => (
            "delete",
            DeleteParams::parse(
                body,
                dry_run,
                q.get("propagationPolicy").map(String::as_str),
            )
            .and_then(|p| ops::delete(&mut store, t, name, &p)),
        ),
        (&Method::DELETE, None) => (
            "deletecollection",
            DeleteParams::parse(
                body,
                dry_run,
                q.get("propagationPolicy").map(String::as_str),
            )
            .and_then(|p| delete_collection(&mut store, t, q, &p)),
        ),
        _ => (
            "unknown",
            Err(ApiError::method_not_allowed(method.as_str())),
        ),
    };
    let (code, changed, name) = match &result {
        Ok((code, v, changed)) => (
            *code,
            *changed,
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .or(t.name.as_deref())
                .unwrap_or("")
                .to_owned(),
        ),
        Err(e) => (e.code, false, t.name.clone().unwrap_or_default()),
    };
    store.record(WriteRecord {
        verb: verb.to_owned(),
        api_version: t.gvr.api_version(),
        resource: t.gvr.plural.clone(),
        subresource: t.subresource.clone(),
        namespace: t.ns().to_owned(),
        name,
        field_manager: manager,
        code,
        changed,
    });
    result.map(|(code, v, _)| {
        (
            code,
            watch::render(&v, meta_only && v.get("kind") != Some(&json!("Status"))),
        )
    })
}

fn delete_collection(
    store: &mut Store,
    t: &Target,
    q: &HashMap<String, String>,
    p: &DeleteParams,
) -> Result<ops::Written, ApiError> {
    let f = filter(t, q)?;
    let names: Vec<(String, String)> = store
        .list(&t.gvr, &f)
        .iter()
        .map(|o| {
            let m = |k: &str| {
                o.pointer(&format!("/metadata/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            (m("namespace"), m("name"))
        })
        .collect();
    let mut changed = false;
    for (ns, name) in names {
        let one = Target {
            namespace: (!ns.is_empty()).then_some(ns),
            name: Some(name.clone()),
            ..t.clone()
        };
        if let Ok((_, _, c)) = ops::delete(store, &one, &name, p) {
            changed |= c;
        }
    }
    Ok((
        200,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        changed,
    ))
}
