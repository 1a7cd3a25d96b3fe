//! A Kubernetes API server for tests: the paths, verbs and semantics the kube 5 client,
//! kube-runtime (watcher, controller, finalizer helper, event recorder) and
//! kube-lease-manager rely on, over an in-memory store of JSON objects.
//!
//! What it keeps from the real server:
//! - core (`/api/v1`) and group (`/apis/{group}/{version}`) paths for any plural,
//!   namespaced and cluster-scoped, plus all-namespaces collections;
//! - system metadata (uid, creationTimestamp, one global resourceVersion, generation,
//!   generateName), 409 AlreadyExists / Conflict, 404, 422 Invalid, `Status` bodies;
//! - list with label and field selectors; watch with replay from a bounded history
//!   (410 Expired past it), bookmarks, `sendInitialEvents`, `timeoutSeconds`;
//! - server-side apply with per-manager field ownership, conflicts and `force`; merge,
//!   strategic merge and JSON patches (see [`patch`](self) notes in the source);
//! - no-op writes change nothing (no resourceVersion, generation or watch event);
//! - the `status` subresource; generation bumps on changes outside metadata and status;
//! - deletion with finalizers and background garbage collection of dependents;
//! - defaulting of Services and Deployments, and a simulated deployment controller.
//!
//! Deliberate simplifications: lists are atomic for apply (no merge by key), strategic
//! merge patches merge lists of objects by `name` only, `limit` is ignored (one page),
//! foreground deletion behaves as background, field ownership is not rendered into
//! `metadata.managedFields`, and there is no authentication, admission or schema
//! validation beyond metadata.

mod apply;
mod defaults;
mod kinds;
mod meta;
mod ops;
mod patch;
mod path;
mod selector;
mod server;
mod status;
mod store;
mod watch;
mod workloads;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;

use self::server::Shared;
use self::store::Store;

/// How the simulated API server behaves.
#[derive(Debug, Clone)]
pub struct KubeApiOptions {
    /// Stand in for the deployment controller: Deployments get a rollout status after
    /// each change (default true).
    pub simulate_workloads: bool,
    /// How many changes are kept for watches resuming from an older resourceVersion;
    /// older ones get 410 Expired (default 10 000).
    pub history_limit: usize,
    /// How often a watch that allows bookmarks gets one (default 60 s, as the real
    /// server roughly does).
    pub bookmark_interval: Duration,
    /// How long a watch without `timeoutSeconds` lasts (default 30 min).
    pub default_watch_timeout: Duration,
}

impl Default for KubeApiOptions {
    fn default() -> Self {
        KubeApiOptions {
            simulate_workloads: true,
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(60),
            default_watch_timeout: Duration::from_secs(1800),
        }
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeApiError {
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One mutating request, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRecord {
    /// `create`, `update` (PUT), `patch`, `apply`, `delete` or `deletecollection`.
    pub verb: String,
    /// `v1`, `apps/v1`, ...
    pub api_version: String,
    /// The plural resource name, e.g. `deployments`.
    pub resource: String,
    /// `status` for writes to the status subresource.
    pub subresource: Option<String>,
    /// `""` for cluster-scoped objects and all-namespaces collections.
    pub namespace: String,
    /// The object's name (the generated one for `generateName`).
    pub name: String,
    /// `fieldManager`, or the client's user-agent product when absent.
    pub field_manager: String,
    /// The HTTP status answered.
    pub code: u16,
    /// Whether an object really changed (a new resourceVersion).
    pub changed: bool,
}

/// A running simulated API server. Dropping it (or [`KubeApiSim::shutdown`]) stops it and
/// ends open watches.
pub struct KubeApiSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: tokio_watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl KubeApiSim {
    /// Starts a server with default options on a free loopback port.
    pub async fn start() -> Result<KubeApiSim, KubeApiError> {
        KubeApiSim::start_on(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            KubeApiOptions::default(),
        )
        .await
    }

    /// Starts a server on `addr` (port 0 picks a free port).
    pub async fn start_on(
        addr: SocketAddr,
        opts: KubeApiOptions,
    ) -> Result<KubeApiSim, KubeApiError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| KubeApiError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| KubeApiError::Bind { addr, source })?;
        let (shutdown, shutdown_rx) = tokio_watch::channel(false);
        let shared = Arc::new(Shared {
            store: std::sync::Mutex::new(Store::new(opts.history_limit, opts.simulate_workloads)),
            opts,
            available: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            watches: AtomicU64::new(0),
            shutdown: shutdown_rx.clone(),
        });
        let app = Router::new()
            .route("/_sim/stats", get(server::stats))
            .route("/_sim/writes", get(server::writes))
            .route("/_sim/reset", post(server::reset))
            .fallback(server::handle)
            .with_state(Arc::clone(&shared));
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!("kube API simulator stopped: {e}");
            }
        });
        Ok(KubeApiSim {
            addr,
            shared,
            shutdown,
            server,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the cluster URL for a kube client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Mutating requests received (POST/PUT/PATCH/DELETE), including no-ops and failures.
    pub fn writes(&self) -> u64 {
        self.shared.store().counters.writes
    }

    /// Mutating requests that really changed an object (a new resourceVersion).
    pub fn changes(&self) -> u64 {
        self.shared.store().counters.changes
    }

    /// Changes made by the simulated controllers (not requests; not in [`Self::changes`]).
    pub fn controller_changes(&self) -> u64 {
        self.shared.store().counters.controller_changes
    }

    /// Every request received, reads and rejected ones included.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Watch requests received.
    pub fn watch_requests(&self) -> u64 {
        self.shared.watches.load(Ordering::Relaxed)
    }

    /// The mutating requests so far, oldest first (the last 100 000).
    pub fn write_log(&self) -> Vec<WriteRecord> {
        self.shared.store().log.iter().cloned().collect()
    }

    /// Zeroes the counters and clears the write log.
    pub fn reset_counters(&self) {
        reset(&self.shared);
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv()
    }

    /// An object as stored: `api_version` like `apps/v1`, `plural` like `deployments`,
    /// `ns` empty for cluster-scoped objects.
    pub fn get(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        let gvr = gvr_of(api_version, plural);
        self.shared
            .store()
            .get(&gvr, &(ns.to_owned(), name.to_owned()))
            .map(|s| s.obj.clone())
    }

    /// All objects of a resource in `ns` (`None` = every namespace), by namespace and name.
    pub fn list(
        &self,
        api_version: &str,
        plural: &str,
        ns: Option<&str>,
    ) -> Vec<serde_json::Value> {
        let gvr = gvr_of(api_version, plural);
        let filter = selector::Filter::new(ns.map(str::to_owned), None, None).unwrap_or_default();
        self.shared.store().list(&gvr, &filter)
    }

    /// `false`: every API request gets 503 with a `Status` body until set back to `true`.
    pub fn set_available(&self, available: bool) {
        self.shared.available.store(available, Ordering::Release);
    }

    /// Holds a Deployment's ready (and available) replicas at `ready` to make a rollout
    /// stall; `None` lets every replica become ready again. Takes effect at once.
    pub fn set_deployment_ready(&self, ns: &str, name: &str, ready: Option<i32>) {
        let key = (ns.to_owned(), name.to_owned());
        let mut store = self.shared.store();
        match ready {
            Some(n) => store.ready_overrides.insert(key.clone(), n),
            None => store.ready_overrides.remove(&key),
        };
        if store.simulate_workloads {
            workloads::reconcile_deployment(&mut store, &key);
        }
    }

    /// Stops the server and ends open watches.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for KubeApiSim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        // Graceful shutdown waits for in-flight requests; watches end on the signal.
        let _ = &self.server;
    }
}

fn gvr_of(api_version: &str, plural: &str) -> path::Gvr {
    match api_version.split_once('/') {
        Some((g, v)) => path::Gvr::new(g, v, plural),
        None => path::Gvr::new("", api_version, plural),
    }
}

fn reset(shared: &Shared) {
    let mut store = shared.store();
    store.counters = store::Counters::default();
    store.log.clear();
    shared.requests.store(0, Ordering::Relaxed);
    shared.watches.store(0, Ordering::Relaxed);
}

/// Serves on `addr` until Ctrl-C.
pub async fn serve(addr: SocketAddr, opts: KubeApiOptions) -> Result<(), KubeApiError> {
    let sim = KubeApiSim::start_on(addr, opts).await?;
    tracing::info!("Kubernetes API simulator listening on {}", sim.url());
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown();
    Ok(())
}
