//! The Pinecone store: a serverless dense index (cosine) in which every knowledge base is
//! one namespace (the trait's `kb` argument is the namespace).
//!
//! Control plane (`https://api.pinecone.io`, configurable): `GET /indexes/{name}` to find
//! the index's data-plane host, dimension and metric, and `POST /indexes` to create it
//! ([`PineconeStore::ensure_index`], for the operator). Data plane (the index's host, or
//! an override): `POST /vectors/upsert` in batches within Pinecone's 1000-record and 2 MB
//! limits, `POST /query` with metadata, `POST /vectors/delete` (ids, or `deleteAll` for a
//! namespace), `GET /vectors/list` + `GET /vectors/fetch` to read back every chunk's
//! fingerprint, `POST /describe_index_stats`.
//!
//! Each vector carries its chunk's `doc_id`, `title`, `text` and `hash` as metadata, so a
//! search is one round trip and ingestion can tell what changed.
//!
//! Pinecone serverless is eventually consistent: a write may take a moment to show in
//! `list` and `query`. Ingestion tolerates that (a chunk not yet listed is re-embedded,
//! which is wasteful but correct).
//!
//! The client is reqwest with rustls and no bundled crypto provider: a process must
//! install one (`rustls::crypto::ring::default_provider().install_default()`) before the
//! first HTTPS request.

mod batch;
mod client;
mod wire;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use self::client::{Http, RetryPolicy};
use self::wire::{
    ChunkMetadata, CreateIndex, CreateSpec, DeleteRequest, FetchResponse, IndexModel, ListResponse,
    QueryRequest, QueryResponse, Serverless, StatsResponse, UpsertVector,
};
use super::{Hit, StoreError, StoredChunk, VectorStore};
use crate::key::RotatingKey;

/// The `X-Pinecone-API-Version` sent with every request.
///
/// 2026-04 is the newest stable version in which `POST /indexes` creates a classic dense
/// vector index (`dimension`, `metric`, `spec.serverless`) served by the Vectors API used
/// here. 2026-07 made `POST /indexes` schema-only (it creates document indexes, which the
/// Vectors API refuses); its vector operations are unchanged. Stable versions are
/// supported for at least 12 months after release.
pub const API_VERSION: &str = "2026-04";

/// Pinecone's control plane.
pub const DEFAULT_CONTROL_URL: &str = "https://api.pinecone.io";

/// Ids per `GET /vectors/list` page.
const LIST_PAGE: usize = 100;
/// Ids per `GET /vectors/fetch` (they travel in the query string).
const FETCH_BATCH: usize = 100;
/// Pinecone's largest `topK`.
const MAX_TOP_K: usize = 10_000;

/// Settings of a [`PineconeStore`].
#[derive(Debug, Clone)]
pub struct PineconeConfig {
    /// Sent as the `Api-Key` header, read per request: a key replaced through a clone
    /// of it ([`RotatingKey::set`]) is used from the next request on.
    pub api_key: RotatingKey,
    /// Index name (lowercase letters, digits and `-`, at most 45 characters).
    pub index: String,
    /// Control-plane URL: [`DEFAULT_CONTROL_URL`], or a simulator / Pinecone Local.
    pub control_url: String,
    /// Data-plane URL override. `None`: the host the control plane describes, reached
    /// with the control plane's scheme (`https` for Pinecone, `http` for a local
    /// simulator).
    pub host: Option<String>,
    /// `X-Pinecone-API-Version`; [`API_VERSION`] by default.
    pub api_version: String,
    /// Cloud an index is created in by [`PineconeStore::ensure_index`] (`aws`, `gcp`,
    /// `azure`).
    pub cloud: String,
    /// Region an index is created in (e.g. `us-east-1`).
    pub region: String,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Retries after the first attempt, for 429, 5xx, timeouts and transport errors.
    pub max_retries: u32,
    /// First backoff delay; doubles each retry (with jitter), capped at `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest wait between attempts, including a server's `Retry-After`.
    pub max_backoff: Duration,
    /// How long to wait for an index to become ready.
    pub ready_timeout: Duration,
}

impl PineconeConfig {
    /// Defaults for `index` on Pinecone's own service: `aws`/`us-east-1` for new indexes,
    /// 10 s per attempt, 4 retries from 200 ms up to 10 s, 5 minutes for readiness.
    pub fn new(api_key: impl Into<RotatingKey>, index: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            index: index.into(),
            control_url: DEFAULT_CONTROL_URL.to_owned(),
            host: None,
            api_version: API_VERSION.to_owned(),
            cloud: "aws".to_owned(),
            region: "us-east-1".to_owned(),
            timeout: Duration::from_secs(10),
            max_retries: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            ready_timeout: Duration::from_secs(300),
        }
    }

    fn validate(&self) -> Result<(), StoreError> {
        let valid_name = !self.index.is_empty()
            && self.index.len() <= 45
            && self
                .index
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.index.starts_with('-')
            && !self.index.ends_with('-');
        if !valid_name {
            return Err(StoreError::Config(format!(
                "invalid Pinecone index name {:?} (lowercase letters, digits and '-', at most 45)",
                self.index
            )));
        }
        if self.api_key.is_empty() {
            return Err(StoreError::Config("the Pinecone API key is empty".into()));
        }
        Url::parse(&self.control_url).map_err(|e| {
            StoreError::Config(format!("control-plane URL {:?}: {e}", self.control_url))
        })?;
        Ok(())
    }
}

/// Counts from `describe_index_stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStats {
    /// The index's dimension.
    pub dimension: Option<usize>,
    /// Vectors in the whole index.
    pub total: u64,
    /// Vectors per namespace (knowledge base).
    pub namespaces: HashMap<String, u64>,
}

/// A knowledge-base store in one Pinecone index.
#[derive(Debug, Clone)]
pub struct PineconeStore {
    http: Http,
    index: String,
    /// Data-plane base URL, no trailing `/`.
    data: String,
    dimensions: usize,
}

fn http_client() -> Result<reqwest::Client, StoreError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(StoreError::Config(
            "no rustls crypto provider installed (call \
             rustls::crypto::ring::default_provider().install_default() at start-up)"
                .into(),
        ));
    }
    reqwest::Client::builder()
        .build()
        .map_err(|e| StoreError::Config(format!("HTTP client: {e}")))
}

/// A control-plane session: the pieces shared by `connect` and `ensure_index`.
struct Control {
    http: Http,
    config: PineconeConfig,
    base: String,
}

impl Control {
    fn new(config: PineconeConfig, client: reqwest::Client) -> Result<Self, StoreError> {
        config.validate()?;
        let http = Http::new(
            client,
            config.api_key.clone(),
            config.api_version.clone(),
            RetryPolicy {
                timeout: config.timeout,
                max_retries: config.max_retries,
                initial_backoff: config.initial_backoff,
                max_backoff: config.max_backoff,
            },
        );
        let base = config.control_url.trim_end_matches('/').to_owned();
        Ok(Self { http, config, base })
    }

    /// The index model, or `None` when the index does not exist.
    async fn describe(&self) -> Result<Option<IndexModel>, StoreError> {
        let url = format!("{}/indexes/{}", self.base, self.config.index);
        let answer = self.http.send(Method::GET, &url, None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        parse(&answer.ok()?).map(Some)
    }

    /// Creates the index; `false` when it already existed (409).
    async fn create(&self, dimension: usize) -> Result<bool, StoreError> {
        let body = CreateIndex {
            name: &self.config.index,
            dimension,
            metric: "cosine",
            vector_type: "dense",
            spec: CreateSpec {
                serverless: Serverless {
                    cloud: &self.config.cloud,
                    region: &self.config.region,
                },
            },
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| StoreError::Config(format!("create request: {e}")))?;
        let url = format!("{}/indexes", self.base);
        let answer = self.http.send(Method::POST, &url, Some(&body)).await?;
        if answer.status == StatusCode::CONFLICT {
            return Ok(false);
        }
        answer.ok()?;
        Ok(true)
    }

    /// Polls until the index is ready, or fails after `ready_timeout`.
    async fn wait_ready(&self, mut model: IndexModel) -> Result<IndexModel, StoreError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(100);
        while !model.status.ready {
            if start.elapsed() >= self.config.ready_timeout {
                return Err(StoreError::Config(format!(
                    "Pinecone index {} is not ready after {:?} (state {:?})",
                    model.name, self.config.ready_timeout, model.status.state
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            model = self.describe().await?.ok_or_else(|| StoreError::Remote {
                status: 404,
                message: format!(
                    "Pinecone index {} disappeared while waiting for it",
                    self.config.index
                ),
            })?;
        }
        Ok(model)
    }

    /// The store for a described, ready index.
    fn store(self, model: &IndexModel) -> Result<PineconeStore, StoreError> {
        let metric = model.metric.as_deref().unwrap_or("cosine");
        if metric != "cosine" {
            return Err(StoreError::Config(format!(
                "Pinecone index {} uses the {metric} metric; knowledge bases need cosine",
                model.name
            )));
        }
        let dimensions = model.dimension.ok_or_else(|| {
            StoreError::Config(format!(
                "Pinecone index {} has no dimension (a sparse index?)",
                model.name
            ))
        })?;
        let data = data_url(&self.base, self.config.host.as_deref(), &model.host)?;
        Ok(PineconeStore {
            http: self.http,
            index: self.config.index,
            data,
            dimensions,
        })
    }
}

/// The data plane's base URL: the override, else the described host; a bare host gets
/// the control plane's scheme.
fn data_url(
    control: &str,
    host_override: Option<&str>,
    described: &str,
) -> Result<String, StoreError> {
    let host = host_override
        .unwrap_or(described)
        .trim()
        .trim_end_matches('/');
    if host.is_empty() {
        return Err(StoreError::Transport(
            "the index description has no host".into(),
        ));
    }
    let url = if host.contains("://") {
        host.to_owned()
    } else {
        let scheme = control.split("://").next().unwrap_or("https");
        format!("{scheme}://{host}")
    };
    Url::parse(&url).map_err(|e| StoreError::Config(format!("data-plane URL {url:?}: {e}")))?;
    Ok(url)
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(body).map_err(|e| {
        StoreError::Transport(format!(
            "unexpected answer ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Config(format!("request body: {e}")))
}

impl PineconeStore {
    /// Connects to an existing index: reads its host, dimension and metric (which must be
    /// cosine), waiting for it to be ready. Fails with [`StoreError::Remote`] (404) when
    /// the index does not exist and (401) when the key is refused.
    pub async fn connect(config: PineconeConfig) -> Result<Self, StoreError> {
        Self::connect_with(config, http_client()?).await
    }

    /// [`PineconeStore::connect`] sharing `client`.
    pub async fn connect_with(
        config: PineconeConfig,
        client: reqwest::Client,
    ) -> Result<Self, StoreError> {
        let control = Control::new(config, client)?;
        let model = control
            .describe()
            .await?
            .ok_or_else(|| StoreError::Remote {
                status: 404,
                message: format!("Pinecone index {} does not exist", control.config.index),
            })?;
        let model = control.wait_ready(model).await?;
        control.store(&model)
    }

    /// Provisions the index for vectors of `dimension` floats: creates it (serverless,
    /// cosine, in the configured cloud and region) when missing, waits until it is
    /// ready, and refuses an existing index of another dimension
    /// ([`StoreError::Dimensions`]) or metric.
    pub async fn ensure_index(
        config: PineconeConfig,
        dimension: usize,
    ) -> Result<Self, StoreError> {
        Self::ensure_index_with(config, dimension, http_client()?).await
    }

    /// [`PineconeStore::ensure_index`] sharing `client`.
    pub async fn ensure_index_with(
        config: PineconeConfig,
        dimension: usize,
        client: reqwest::Client,
    ) -> Result<Self, StoreError> {
        if dimension == 0 || dimension > 20_000 {
            return Err(StoreError::Config(format!(
                "Pinecone cannot hold {dimension} dimensions"
            )));
        }
        let control = Control::new(config, client)?;
        let model = match control.describe().await? {
            Some(m) => m,
            None => {
                if control.create(dimension).await? {
                    tracing::info!(
                        index = control.config.index,
                        dimension,
                        "created Pinecone index"
                    );
                }
                control
                    .describe()
                    .await?
                    .ok_or_else(|| StoreError::Remote {
                        status: 404,
                        message: format!(
                            "Pinecone index {} is missing right after its creation",
                            control.config.index
                        ),
                    })?
            }
        };
        if let Some(existing) = model.dimension
            && existing != dimension
        {
            return Err(StoreError::Dimensions {
                expected: existing,
                got: dimension,
            });
        }
        let model = control.wait_ready(model).await?;
        control.store(&model)
    }

    /// The index's dimension.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The index name.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// The data-plane base URL in use.
    pub fn data_url(&self) -> &str {
        &self.data
    }

    /// Removes every vector of namespace `kb` (a deleted knowledge base). A namespace that
    /// does not exist is already gone: not an error.
    pub async fn delete_namespace(&self, kb: &str) -> Result<(), StoreError> {
        self.delete_request(&DeleteRequest {
            namespace: kb,
            ids: None,
            delete_all: true,
        })
        .await
    }

    /// Vector counts of the index and its namespaces.
    pub async fn stats(&self) -> Result<IndexStats, StoreError> {
        let body = self.post("/describe_index_stats", b"{}".to_vec()).await?;
        let stats: StatsResponse = parse(&body)?;
        Ok(IndexStats {
            dimension: stats.dimension,
            total: stats.total_vector_count,
            namespaces: stats
                .namespaces
                .into_iter()
                .map(|(k, v)| (k, v.vector_count))
                .collect(),
        })
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let url = format!("{}{path}", self.data);
        self.http.send(Method::POST, &url, Some(&body)).await?.ok()
    }

    fn check(&self, v: &[f32]) -> Result<(), StoreError> {
        if v.len() == self.dimensions {
            Ok(())
        } else {
            Err(StoreError::Dimensions {
                expected: self.dimensions,
                got: v.len(),
            })
        }
    }

    async fn delete_request(&self, request: &DeleteRequest<'_>) -> Result<(), StoreError> {
        let url = format!("{}/vectors/delete", self.data);
        let answer = self
            .http
            .send(Method::POST, &url, Some(&to_json(request)?))
            .await?;
        // Pinecone answers 404 for a namespace that does not exist: nothing to delete.
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        answer.ok().map(drop)
    }

    async fn upsert_impl(&self, kb: &str, chunks: &[StoredChunk]) -> Result<(), StoreError> {
        let mut records = Vec::with_capacity(chunks.len());
        for c in chunks {
            self.check(&c.embedding)?;
            records.push(to_json(&UpsertVector {
                id: &c.chunk_id,
                values: &c.embedding,
                metadata: ChunkMetadata {
                    doc_id: &c.doc_id,
                    title: &c.title,
                    text: &c.text,
                    hash: &c.hash,
                },
            })?);
        }
        let bodies =
            batch::bodies(kb, &records, batch::MAX_RECORDS, batch::MAX_BYTES).map_err(|o| {
                StoreError::Config(format!(
                    "chunk {} is {} bytes as a Pinecone record, over the 2 MB request limit",
                    chunks.get(o.index).map_or("?", |c| c.chunk_id.as_str()),
                    o.bytes
                ))
            })?;
        for body in bodies {
            self.post("/vectors/upsert", body).await?;
        }
        Ok(())
    }

    async fn delete_impl(&self, kb: &str, ids: &[String]) -> Result<(), StoreError> {
        // Pinecone takes up to 1000 ids per delete.
        for batch in ids.chunks(1000) {
            self.delete_request(&DeleteRequest {
                namespace: kb,
                ids: Some(batch),
                delete_all: false,
            })
            .await?;
        }
        Ok(())
    }

    async fn search_impl(
        &self,
        kb: &str,
        query: &[f32],
        top_k: usize,
        min_score: f32,
    ) -> Result<Vec<Hit>, StoreError> {
        self.check(query)?;
        if top_k == 0 {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            namespace: kb,
            vector: query,
            top_k: top_k.min(MAX_TOP_K),
            include_metadata: true,
            include_values: false,
        };
        let body = self.post("/query", to_json(&request)?).await?;
        let answer: QueryResponse = parse(&body)?;
        let mut hits = Vec::with_capacity(answer.matches.len());
        for m in answer.matches {
            if m.score.is_nan() || m.score < min_score {
                continue;
            }
            let meta = m.metadata.unwrap_or_default();
            let Some(text) = meta.text else {
                return Err(StoreError::Corrupt {
                    chunk_id: m.id,
                    reason: "Pinecone record without a text in its metadata".into(),
                });
            };
            hits.push(Hit {
                chunk_id: m.id,
                doc_id: meta.doc_id.unwrap_or_default(),
                title: meta.title.unwrap_or_default(),
                text,
                score: m.score,
            });
        }
        // Pinecone answers best first; ties and rounding are not worth trusting blindly.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(hits)
    }

    /// Every id of namespace `kb`, page by page.
    async fn list_ids(&self, kb: &str) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = Url::parse(&format!("{}/vectors/list", self.data))
                .map_err(|e| StoreError::Config(format!("data-plane URL: {e}")))?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("namespace", kb);
                q.append_pair("limit", &LIST_PAGE.to_string());
                if let Some(t) = &token {
                    q.append_pair("paginationToken", t);
                }
            }
            let answer = self.http.send(Method::GET, url.as_str(), None).await?;
            if answer.status == StatusCode::NOT_FOUND {
                return Ok(ids);
            }
            let page: ListResponse = parse(&answer.ok()?)?;
            ids.extend(page.vectors.into_iter().map(|v| v.id));
            let next = page
                .pagination
                .and_then(|p| p.next)
                .filter(|n| !n.is_empty());
            match next {
                Some(n) if token.as_deref() == Some(n.as_str()) => {
                    return Err(StoreError::Transport(
                        "list pagination does not advance".into(),
                    ));
                }
                Some(n) => token = Some(n),
                None => return Ok(ids),
            }
        }
    }

    async fn list_hashes_impl(&self, kb: &str) -> Result<HashMap<String, String>, StoreError> {
        let ids = self.list_ids(kb).await?;
        let mut out = HashMap::with_capacity(ids.len());
        for batch in ids.chunks(FETCH_BATCH) {
            let mut url = Url::parse(&format!("{}/vectors/fetch", self.data))
                .map_err(|e| StoreError::Config(format!("data-plane URL: {e}")))?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("namespace", kb);
                for id in batch {
                    q.append_pair("ids", id);
                }
            }
            let body = self
                .http
                .send(Method::GET, url.as_str(), None)
                .await?
                .ok()?;
            let fetched: FetchResponse = parse(&body)?;
            // An id deleted between list and fetch is simply absent; a record without a
            // hash (written by something else) gets an empty one, so ingestion rewrites it.
            for (id, v) in fetched.vectors {
                let hash = v.metadata.and_then(|m| m.hash).unwrap_or_default();
                out.insert(id, hash);
            }
        }
        Ok(out)
    }
}

impl VectorStore for PineconeStore {
    fn upsert<'a>(
        &'a self,
        kb: &'a str,
        chunks: &'a [StoredChunk],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.upsert_impl(kb, chunks))
    }

    fn delete<'a>(
        &'a self,
        kb: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.delete_impl(kb, ids))
    }

    fn search<'a>(
        &'a self,
        kb: &'a str,
        query: &'a [f32],
        top_k: usize,
        min_score: f32,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>> {
        Box::pin(self.search_impl(kb, query, top_k, min_score))
    }

    fn list_hashes<'a>(
        &'a self,
        kb: &'a str,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(self.list_hashes_impl(kb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_plane_url() {
        let https = "https://api.pinecone.io";
        assert_eq!(
            data_url(https, None, "kb-abc.svc.pinecone.io").unwrap(),
            "https://kb-abc.svc.pinecone.io"
        );
        assert_eq!(
            data_url("http://127.0.0.1:9000", None, "127.0.0.1:9001").unwrap(),
            "http://127.0.0.1:9001"
        );
        assert_eq!(
            data_url(https, Some("http://localhost:5081/"), "ignored").unwrap(),
            "http://localhost:5081"
        );
        assert!(data_url(https, None, "").is_err());
    }

    #[test]
    fn config_is_checked() {
        let ok = PineconeConfig::new("key", "kb-1");
        assert!(ok.validate().is_ok());
        for bad in ["", "Upper", "a/b", "-x", &"a".repeat(46)] {
            let c = PineconeConfig::new("key", bad);
            assert!(matches!(c.validate(), Err(StoreError::Config(_))), "{bad}");
        }
        assert!(PineconeConfig::new("", "kb").validate().is_err());
    }
}
