//! The HTTP side: the control plane on the simulator's address, and one data-plane
//! listener per index (its `host`), as Pinecone and Pinecone Local give every index its
//! own host. Every request needs the `Api-Key`; every request is logged with its
//! `X-Pinecone-API-Version`; injected faults answer before the handler runs.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::ApiError;
use super::index::{IndexData, Metric, QueryBy, UpsertRecord};

/// Largest upsert request body (Pinecone's limit).
const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

/// Settings of a [`PineconeSim`].
#[derive(Debug, Clone)]
pub struct PineconeSimConfig {
    /// Address of the control plane (port 0 picks a free port). Data-plane listeners bind
    /// the same IP.
    pub listen: SocketAddr,
    /// The only `Api-Key` accepted.
    pub api_key: String,
    /// How long a new index stays `Initializing` before it is ready.
    pub ready_delay: Duration,
    /// Host name put in index hosts; default: the listen IP (127.0.0.1 when unspecified).
    pub advertise_host: Option<String>,
}

impl Default for PineconeSimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            api_key: "pcsk-sim".to_owned(),
            ready_delay: Duration::ZERO,
            advertise_host: None,
        }
    }
}

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRequest {
    /// `control`, or the index name for its data plane.
    pub plane: String,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `X-Pinecone-API-Version` header, if sent.
    pub api_version: Option<String>,
    /// The status answered.
    pub status: u16,
}

struct IndexEntry {
    data: IndexData,
    cloud: String,
    region: String,
    host: String,
    ready_at: Instant,
    server: JoinHandle<()>,
}

impl IndexEntry {
    fn ready(&self) -> bool {
        Instant::now() >= self.ready_at
    }

    fn model(&self, name: &str) -> Value {
        let ready = self.ready();
        json!({
            "name": name,
            "dimension": self.data.dimension(),
            "metric": self.data.metric(),
            "host": self.host,
            "vector_type": "dense",
            "deletion_protection": "disabled",
            "tags": null,
            "spec": {"serverless": {"cloud": self.cloud, "region": self.region}},
            "status": {"ready": ready, "state": if ready { "Ready" } else { "Initializing" }},
        })
    }
}

#[derive(Default)]
struct Faults {
    remaining: u32,
    status: u16,
}

struct Shared {
    cfg: PineconeSimConfig,
    /// The key accepted now (starts as `cfg.api_key`; [`PineconeSim::rotate_api_key`]).
    api_key: Mutex<String>,
    indexes: Mutex<BTreeMap<String, IndexEntry>>,
    faults: Mutex<Faults>,
    log: Mutex<Vec<SimRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running simulator. Dropping it stops every listener.
pub struct PineconeSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl PineconeSim {
    /// Binds the control plane and starts serving.
    pub async fn start(cfg: PineconeSimConfig) -> std::io::Result<PineconeSim> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: Mutex::new(cfg.api_key.clone()),
            cfg,
            indexes: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
        });
        let gate_state = (Arc::clone(&shared), None::<String>);
        let app = Router::new()
            .route("/indexes", get(list_indexes).post(create_index))
            .route("/indexes/{name}", get(describe_index).delete(delete_index))
            .fallback(|| async { ApiError::not_found("Not found").control() })
            .layer(middleware::from_fn_with_state(gate_state, gate))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("Pinecone simulator stopped: {e}");
            }
        });
        Ok(PineconeSim {
            addr,
            shared,
            server,
        })
    }

    /// The control plane's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control-plane URL, e.g. `http://127.0.0.1:40123` (use it where
    /// `https://api.pinecone.io` would go).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API key the simulator accepts now.
    pub fn api_key(&self) -> String {
        lock(&self.shared.api_key).clone()
    }

    /// Replaces the accepted key, as a project owner does on Pinecone by creating a new
    /// key and deleting the old one: from now on requests with the old key get 401.
    pub fn rotate_api_key(&self, key: impl Into<String>) {
        *lock(&self.shared.api_key) = key.into();
    }

    /// The next `n` authenticated requests (either plane) answer `status` (429 and 503
    /// with Pinecone's bodies and `Retry-After: 0`) without being served.
    pub fn fail_next(&self, n: u32, status: u16) {
        *lock(&self.shared.faults) = Faults {
            remaining: n,
            status,
        };
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<SimRequest> {
        lock(&self.shared.log).clone()
    }

    /// The data-plane host of `index` (`IP:port`, no scheme).
    pub fn index_host(&self, index: &str) -> Option<String> {
        lock(&self.shared.indexes)
            .get(index)
            .map(|e| e.host.clone())
    }

    /// Record counts per namespace of `index`.
    pub fn namespace_counts(&self, index: &str) -> Option<BTreeMap<String, usize>> {
        lock(&self.shared.indexes)
            .get(index)
            .map(|e| e.data.counts())
    }
}

impl Drop for PineconeSim {
    fn drop(&mut self) {
        self.server.abort();
        for e in lock(&self.shared.indexes).values() {
            e.server.abort();
        }
    }
}

/// Runs a simulator until Ctrl-C.
pub async fn serve(cfg: PineconeSimConfig) -> std::io::Result<()> {
    let sim = PineconeSim::start(cfg).await?;
    tracing::info!("Pinecone simulator listening on {}", sim.url());
    tokio::signal::ctrl_c().await?;
    drop(sim);
    Ok(())
}

/// Logs, authenticates and injects faults. The state's index name is `None` on the
/// control plane (whose error shape differs).
async fn gate(
    State((shared, index)): State<(Arc<Shared>, Option<String>)>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    // Read before the await: a borrow of the request (whose body is not Sync) held across
    // it would make the middleware's future !Send.
    let (api_version, key) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (header("x-pinecone-api-version"), header("api-key"))
    };
    let render = |e: ApiError| {
        if index.is_some() {
            e.data()
        } else {
            e.control()
        }
    };
    let accepted = key.as_deref() == Some(lock(&shared.api_key).as_str());
    let response = if !accepted {
        render(ApiError::unauthenticated(match key {
            None => "Api-Key header is missing",
            Some(_) => "Invalid API Key",
        }))
    } else {
        let fault = {
            let mut f = lock(&shared.faults);
            if f.remaining > 0 {
                f.remaining -= 1;
                Some(f.status)
            } else {
                None
            }
        };
        match fault {
            Some(status) => render(ApiError::fault(status)),
            None => next.run(request).await,
        }
    };
    lock(&shared.log).push(SimRequest {
        plane: index.unwrap_or_else(|| "control".to_owned()),
        method,
        path,
        api_version,
        status: response.status().as_u16(),
    });
    response
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("Invalid request body: {e}")))
}

// ---- control plane ----

async fn list_indexes(State(shared): State<Arc<Shared>>) -> Response {
    let indexes = lock(&shared.indexes);
    let models: Vec<Value> = indexes.iter().map(|(n, e)| e.model(n)).collect();
    axum::Json(json!({"indexes": models})).into_response()
}

async fn describe_index(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match lock(&shared.indexes).get(&name) {
        Some(e) => axum::Json(e.model(&name)).into_response(),
        None => ApiError::not_found(format!("Resource {name} not found")).control(),
    }
}

async fn delete_index(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match lock(&shared.indexes).remove(&name) {
        Some(e) => {
            e.server.abort();
            StatusCode::ACCEPTED.into_response()
        }
        None => ApiError::not_found(format!("Resource {name} not found")).control(),
    }
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default)]
    dimension: Option<usize>,
    #[serde(default)]
    metric: Option<Metric>,
    #[serde(default)]
    vector_type: Option<String>,
    spec: CreateSpec,
}

#[derive(Deserialize)]
struct CreateSpec {
    #[serde(default)]
    serverless: Option<ServerlessSpec>,
}

#[derive(Deserialize)]
struct ServerlessSpec {
    cloud: String,
    region: String,
}

fn valid_index_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 45
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

async fn create_index(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match create(&shared, &body).await {
        Ok(model) => (StatusCode::CREATED, axum::Json(model)).into_response(),
        Err(e) => e.control(),
    }
}

async fn create(shared: &Arc<Shared>, body: &[u8]) -> Result<Value, ApiError> {
    let req: CreateBody = parse_json(body)?;
    if !valid_index_name(&req.name) {
        return Err(ApiError::invalid(format!(
            "Name {:?} must consist of lower case alphanumeric characters or '-', at most 45",
            req.name
        )));
    }
    if req.vector_type.as_deref().is_some_and(|t| t != "dense") {
        return Err(ApiError::invalid("the simulator serves dense indexes only"));
    }
    let dimension = match req.dimension {
        Some(d) if (1..=20_000).contains(&d) => d,
        Some(d) => {
            return Err(ApiError::invalid(format!(
                "Dimension must be between 1 and 20000, got {d}"
            )));
        }
        None => return Err(ApiError::invalid("Dimension is required for dense indexes")),
    };
    let Some(serverless) = req.spec.serverless else {
        return Err(ApiError::invalid(
            "spec.serverless is required (the simulator serves serverless indexes only)",
        ));
    };
    if !["aws", "gcp", "azure"].contains(&serverless.cloud.as_str()) {
        return Err(ApiError::invalid(format!(
            "Invalid cloud {:?}: expected aws, gcp or azure",
            serverless.cloud
        )));
    }
    if serverless.region.trim().is_empty() {
        return Err(ApiError::invalid("Region is required"));
    }
    let exists = || ApiError::conflict("Resource already exists");
    if lock(&shared.indexes).contains_key(&req.name) {
        return Err(exists());
    }

    let bind = SocketAddr::new(shared.cfg.listen.ip(), 0);
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| ApiError::fault(500).with_message(format!("binding a data plane: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| ApiError::fault(500).with_message(e.to_string()))?
        .port();
    let host_name = shared.cfg.advertise_host.clone().unwrap_or_else(|| {
        let ip = shared.cfg.listen.ip();
        if ip.is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            ip.to_string()
        }
    });
    let app = data_router(Arc::clone(shared), req.name.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("Pinecone simulator data plane stopped: {e}");
        }
    });
    let entry = IndexEntry {
        data: IndexData::new(dimension, req.metric.unwrap_or(Metric::Cosine)),
        cloud: serverless.cloud,
        region: serverless.region,
        host: format!("{host_name}:{port}"),
        ready_at: Instant::now() + shared.cfg.ready_delay,
        server,
    };
    let mut indexes = lock(&shared.indexes);
    if indexes.contains_key(&req.name) {
        entry.server.abort();
        return Err(exists());
    }
    let model = entry.model(&req.name);
    indexes.insert(req.name, entry);
    Ok(model)
}

impl ApiError {
    fn with_message(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}

// ---- data plane ----

#[derive(Clone)]
struct DataCtx {
    shared: Arc<Shared>,
    index: String,
}

fn data_router(shared: Arc<Shared>, index: String) -> Router {
    let ctx = DataCtx {
        shared: Arc::clone(&shared),
        index: index.clone(),
    };
    Router::new()
        .route("/vectors/upsert", post(upsert))
        .route("/query", post(query))
        .route("/vectors/delete", post(delete))
        .route("/vectors/list", get(list))
        .route("/vectors/fetch", get(fetch))
        .route("/describe_index_stats", post(stats).get(stats))
        .fallback(|| async { ApiError::not_found("Not found").data() })
        // Bodies over Pinecone's 2 MB get its 400, not the framework's 413.
        .layer(DefaultBodyLimit::max(4 * MAX_REQUEST_BYTES))
        .layer(middleware::from_fn_with_state((shared, Some(index)), gate))
        .with_state(ctx)
}

/// Runs `f` on the index when it exists and is ready.
fn with_index<T>(
    ctx: &DataCtx,
    f: impl FnOnce(&mut IndexData) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut indexes = lock(&ctx.shared.indexes);
    let entry = indexes
        .get_mut(&ctx.index)
        .ok_or_else(|| ApiError::not_found(format!("Index {} not found", ctx.index)))?;
    if !entry.ready() {
        return Err(ApiError::not_ready(&ctx.index));
    }
    f(&mut entry.data)
}

/// Since API 2025-04 the default namespace is also named `__default__`.
fn namespace(ns: &str) -> &str {
    if ns == "__default__" { "" } else { ns }
}

fn answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.data(),
    }
}

#[derive(Deserialize)]
struct UpsertBody {
    vectors: Vec<UpsertRecord>,
    #[serde(default)]
    namespace: String,
}

async fn upsert(State(ctx): State<DataCtx>, body: Bytes) -> Response {
    answer((|| {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(ApiError::invalid(format!(
                "Request size {:.1}MB exceeds the maximum supported size of 2MB",
                body.len() as f64 / 1_048_576.0
            )));
        }
        let req: UpsertBody = parse_json(&body)?;
        let n = with_index(&ctx, |ix| ix.upsert(namespace(&req.namespace), req.vectors))?;
        Ok(json!({"upsertedCount": n}))
    })())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryBody {
    #[serde(default)]
    namespace: String,
    top_k: usize,
    #[serde(default)]
    vector: Option<Vec<f32>>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    include_values: bool,
    #[serde(default)]
    include_metadata: bool,
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    sparse_vector: Option<Value>,
}

async fn query(State(ctx): State<DataCtx>, body: Bytes) -> Response {
    answer((|| {
        let req: QueryBody = parse_json(&body)?;
        if req.filter.is_some() || req.sparse_vector.is_some() {
            return Err(ApiError::invalid(
                "the simulator does not implement metadata filters or sparse vectors",
            ));
        }
        let by = match (&req.vector, &req.id) {
            (Some(v), None) => QueryBy::Vector(v),
            (None, Some(id)) => QueryBy::Id(id),
            _ => {
                return Err(ApiError::invalid(
                    "exactly one of vector and id is required",
                ));
            }
        };
        let ns = namespace(&req.namespace);
        let matches = with_index(&ctx, |ix| {
            ix.query(ns, by, req.top_k, req.include_values, req.include_metadata)
        })?;
        Ok(json!({
            "matches": matches,
            "namespace": req.namespace,
            "usage": {"readUnits": 1 + matches.len() / 10},
        }))
    })())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteBody {
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    delete_all: bool,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    filter: Option<Value>,
}

async fn delete(State(ctx): State<DataCtx>, body: Bytes) -> Response {
    answer((|| {
        let req: DeleteBody = parse_json(&body)?;
        if req.filter.is_some() {
            return Err(ApiError::invalid(
                "the simulator does not implement delete by filter",
            ));
        }
        with_index(&ctx, |ix| {
            ix.delete(namespace(&req.namespace), req.ids, req.delete_all)
        })?;
        Ok(json!({}))
    })())
}

/// Query parameters, repeated keys kept (`ids=a&ids=b`).
fn params(query: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

fn first<'a>(p: &'a HashMap<String, Vec<String>>, key: &str) -> Option<&'a str> {
    p.get(key).and_then(|v| v.first()).map(String::as_str)
}

async fn list(State(ctx): State<DataCtx>, RawQuery(q): RawQuery) -> Response {
    answer((|| {
        let p = params(q.as_deref());
        let ns = first(&p, "namespace").unwrap_or("");
        let prefix = first(&p, "prefix").unwrap_or("");
        let limit = match first(&p, "limit") {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| ApiError::invalid(format!("Invalid limit {l:?}")))?,
            None => 100,
        };
        let token = first(&p, "paginationToken");
        let (ids, next) = with_index(&ctx, |ix| ix.list(namespace(ns), prefix, limit, token))?;
        let mut out = json!({
            "vectors": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            "namespace": ns,
            "usage": {"readUnits": 1},
        });
        if let Some(n) = next {
            out["pagination"] = json!({"next": n});
        }
        Ok(out)
    })())
}

async fn fetch(State(ctx): State<DataCtx>, RawQuery(q): RawQuery) -> Response {
    answer((|| {
        let p = params(q.as_deref());
        let ns = first(&p, "namespace").unwrap_or("").to_owned();
        let ids = p.get("ids").cloned().unwrap_or_default();
        let vectors = with_index(&ctx, |ix| ix.fetch(namespace(&ns), &ids))?;
        Ok(json!({
            "vectors": vectors,
            "namespace": ns,
            "usage": {"readUnits": 1 + vectors.len() / 10},
        }))
    })())
}

async fn stats(State(ctx): State<DataCtx>, method: Method, body: Bytes) -> Response {
    answer((|| {
        if method == Method::POST && !body.is_empty() {
            let v: Value = parse_json(&body)?;
            if v.get("filter").is_some_and(|f| !f.is_null()) {
                return Err(ApiError::invalid(
                    "the simulator does not implement stats by filter",
                ));
            }
        }
        let (dimension, metric, counts) =
            with_index(&ctx, |ix| Ok((ix.dimension(), ix.metric(), ix.counts())))?;
        let total: usize = counts.values().sum();
        let namespaces: serde_json::Map<String, Value> = counts
            .into_iter()
            .map(|(k, n)| (k, json!({"vectorCount": n})))
            .collect();
        Ok(json!({
            "namespaces": namespaces,
            "dimension": dimension,
            "indexFullness": 0.0,
            "totalVectorCount": total,
            "metric": metric,
            "vectorType": "dense",
        }))
    })())
}
