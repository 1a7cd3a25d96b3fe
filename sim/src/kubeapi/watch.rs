//! Watch streams: newline-delimited JSON events, replayed from the history after the
//! requested resourceVersion, then live; bookmarks; ends at `timeoutSeconds`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::path::Gvr;
use super::selector::Filter;
use super::status::ApiError;
use super::store::{Change, EventType};

/// What a watch request asked for.
#[derive(Debug, Clone)]
pub(crate) struct WatchRequest {
    pub gvr: Gvr,
    pub kind: String,
    pub filter: Filter,
    pub timeout: Duration,
    pub bookmarks: bool,
    pub bookmark_interval: Duration,
    /// Objects sent as `PartialObjectMetadata`.
    pub meta_only: bool,
}

/// Where a stream starts.
pub(crate) struct Start {
    /// Current objects sent as ADDED first (`resourceVersion` 0/unset or sendInitialEvents).
    pub initial: Vec<Value>,
    /// Whether to mark the end of the initial events with a bookmark.
    pub initial_end_bookmark: bool,
    /// Changes after the requested version still in the history.
    pub replay: Vec<Arc<Change>>,
    /// The version everything sent so far is current to.
    pub rv: u64,
    pub rx: broadcast::Receiver<Arc<Change>>,
}

/// The stream body for a watch (or a single ERROR event when the start failed with 410).
pub(crate) fn body(
    req: WatchRequest,
    start: Result<Start, ApiError>,
    shutdown: watch::Receiver<bool>,
) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(run(req, start, shutdown, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Body::from_stream(stream)
}

/// Turns an object into what the client asked for.
pub(crate) fn render(obj: &Value, meta_only: bool) -> Value {
    if meta_only {
        json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    } else {
        obj.clone()
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({ "type": kind, "object": object }).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The event a change is for a filtered watcher: objects entering the selection are
/// ADDED, leaving it DELETED.
fn event_for<'a>(change: &'a Change, filter: &Filter) -> Option<(&'static str, &'a Value)> {
    let now = filter.matches(&change.new);
    let before = change.old.as_ref().is_some_and(|o| filter.matches(o));
    let kind = match (change.event, before, now) {
        (EventType::Deleted, true, _) | (EventType::Deleted, _, true) => EventType::Deleted,
        (EventType::Deleted, false, false) => return None,
        (EventType::Added, _, true) => EventType::Added,
        (EventType::Modified, true, true) => EventType::Modified,
        (EventType::Modified, false, true) => EventType::Added,
        (EventType::Modified, true, false) => EventType::Deleted,
        _ => return None,
    };
    Some((kind.as_str(), &change.new))
}

fn bookmark(req: &WatchRequest, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    let api_version = if req.meta_only {
        "meta.k8s.io/v1".to_owned()
    } else {
        req.gvr.api_version()
    };
    let kind = if req.meta_only {
        "PartialObjectMetadata"
    } else {
        req.kind.as_str()
    };
    line(
        "BOOKMARK",
        json!({ "apiVersion": api_version, "kind": kind, "metadata": metadata }),
    )
}

async fn run(
    req: WatchRequest,
    start: Result<Start, ApiError>,
    mut shutdown: watch::Receiver<bool>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut start = match start {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(line("ERROR", e.to_status())).await;
            return;
        }
    };
    for obj in &start.initial {
        if tx
            .send(line("ADDED", render(obj, req.meta_only)))
            .await
            .is_err()
        {
            return;
        }
    }
    if start.initial_end_bookmark && tx.send(bookmark(&req, start.rv, true)).await.is_err() {
        return;
    }
    let mut rv = start.rv;
    for change in &start.replay {
        rv = rv.max(change.rv);
        if change.gvr != req.gvr {
            continue;
        }
        if let Some((kind, obj)) = event_for(change, &req.filter)
            && tx
                .send(line(kind, render(obj, req.meta_only)))
                .await
                .is_err()
        {
            return;
        }
    }
    let deadline = tokio::time::sleep(req.timeout);
    tokio::pin!(deadline);
    let mut ticks = tokio::time::interval(req.bookmark_interval.max(Duration::from_millis(10)));
    ticks.tick().await;
    loop {
        tokio::select! {
            () = &mut deadline => {
                // A last bookmark lets the client resume from here without a replay.
                if req.bookmarks {
                    let _ = tx.send(bookmark(&req, rv, false)).await;
                }
                return;
            }
            _ = ticks.tick() => {
                if req.bookmarks && tx.send(bookmark(&req, rv, false)).await.is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => return,
            () = tx.closed() => return,
            got = start.rx.recv() => match got {
                Ok(change) => {
                    rv = rv.max(change.rv);
                    if change.gvr != req.gvr {
                        continue;
                    }
                    if let Some((kind, obj)) = event_for(&change, &req.filter)
                        && tx.send(line(kind, render(obj, req.meta_only))).await.is_err()
                    {
                        return;
                    }
                }
                // Too slow a reader: end the stream; the client resumes from its last
                // version out of the history (or relists after a 410).
                Err(_) => return,
            },
        }
    }
}
