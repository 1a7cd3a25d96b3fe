//! Knowledge lookups mid-call: what the `search_knowledge_base` tool searches
//! (`tools/search_knowledge.rs` declares and runs the tool).
//!
//! Laptop mode (the call store is SQLite): `--knowledge FILE` KnowledgeBase manifests are
//! ingested at start into the embedded store (SQLite in the data dir, exact search in
//! memory) with the local MiniLM embedder, so a lookup never leaves the process. Only
//! changed chunks are re-embedded on a restart.
//!
//! Cluster mode (the call store is `postgres://…`, or the backend is Pinecone): the
//! operator indexes; the gateway only searches ([`cluster`]): a pgvector knowledge base
//! in its own table of the tenant's schema, a Pinecone one in its namespace. Queries are
//! embedded with the knowledge base's own embedder (local MiniLM, or its
//! OpenAI-compatible endpoint with the key from the secrets directory).

mod cluster;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};
use serde_json::json;
use switchboard_crds::{BackendKind, EmbedderKind, KnowledgeBase, LoadError, parse_knowledge_base};
use switchboard_knowledge::store::PineconeConfig;
use switchboard_knowledge::{
    ChunkingConfig, Document, EmbeddedStore, Embedder, LocalMiniLm, OpenAiConfig, OpenAiEmbedder,
    RotatingKey, VectorStore, ingest,
};

use crate::aws::Aws;
use crate::secrets::{DEFAULT_SECRETS_DIR, SecretSource};

/// Why knowledge bases could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The manifest file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a valid KnowledgeBase.
    #[error("{path}: {source}")]
    Manifest {
        /// File.
        path: PathBuf,
        /// Cause.
        source: LoadError,
    },
    /// Something laptop mode cannot do (a source or embedder it has no access to).
    #[error("knowledge base {kb}: {problem}")]
    Unsupported {
        /// KB name.
        kb: String,
        /// What.
        problem: String,
    },
    /// The local model is missing or broken.
    #[error("local embedder: {0}")]
    Embedder(#[from] switchboard_knowledge::EmbedError),
    /// The embedded store failed.
    #[error("embedded store: {0}")]
    Store(#[from] switchboard_knowledge::StoreError),
    /// Ingestion failed.
    #[error("ingesting {kb}: {source}")]
    Ingest {
        /// KB name.
        kb: String,
        /// Cause.
        source: switchboard_knowledge::IngestError,
    },
    /// A local embedder is needed but no model directory was given.
    #[error(
        "--knowledge needs --model-dir (or SWITCHBOARD_MODEL_DIR) for local embeddings: run scripts/model.sh, it prints the directory"
    )]
    NoModelDir,
    /// A secret the knowledge base needs (API key) could not be read.
    #[error("knowledge base {kb}: {field}: {problem}")]
    Secret {
        /// KB name.
        kb: String,
        /// Which setting.
        field: &'static str,
        /// What went wrong (never the value).
        problem: String,
    },
    /// Opening the SQLite file failed.
    #[error("opening {path}: {source}")]
    Sqlite {
        /// File.
        path: PathBuf,
        /// Cause.
        source: sqlx::Error,
    },
}

/// One knowledge base as this gateway searches it.
#[derive(Clone)]
struct Retrieval {
    /// The knowledge base's name (the prefix of the passages' source ids).
    kb: String,
    /// Its partition in `store`: the name, or its Pinecone namespace.
    key: String,
    top_k: usize,
    min_score: f32,
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
}

/// Where [`Knowledge::load_with`] finds what it needs.
#[derive(Debug, Clone, Copy)]
pub struct KnowledgeSetup<'a> {
    /// The local model's directory (needed only by `local` embedders).
    pub model_dir: Option<&'a Path>,
    /// The gateway's data directory (the embedded store's SQLite file).
    pub data_dir: &'a Path,
    /// The call store URL: `postgres://…` means the tenant's schema holds the operator's
    /// pgvector tables, searched in place; anything else is laptop mode.
    pub database_url: Option<&'a str>,
    /// Where secrets are read (`secretKeyRef`s mounted at `<dir>/<secret>/<key>`, AWS
    /// Secrets Manager). Read at load, then again by [`Knowledge::refresh_keys`].
    pub secrets: &'a SecretSource,
}

impl<'a> KnowledgeSetup<'a> {
    fn cluster_database(self) -> Option<&'a str> {
        self.database_url
            .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    }
}

/// Lookup metrics.
#[derive(Clone)]
pub struct KnowledgeMetrics {
    /// Arguments received → output ready, seconds.
    pub latency: Histogram,
    /// Lookups by result (`hits`, `empty`, `error`).
    pub lookups: IntCounterVec,
}

impl KnowledgeMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_knowledge_lookup_seconds",
                "Knowledge tool: arguments received to output ready",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )?;
        let lookups = IntCounterVec::new(
            Opts::new(
                "switchboard_knowledge_lookups_total",
                "Knowledge lookups by result",
            ),
            &["result"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(lookups.clone()))?;
        Ok(Self { latency, lookups })
    }
}

/// An API key a knowledge base's clients send, with where it is re-read from.
struct KeyBinding {
    kb: String,
    field: &'static str,
    source: switchboard_crds::SecretRef,
    key: RotatingKey,
}

/// Knowledge bases loaded for the tenants of this gateway.
pub struct Knowledge {
    by_tenant: HashMap<String, Vec<Retrieval>>,
    metrics: KnowledgeMetrics,
    /// The embedder and Pinecone keys in use, re-read by [`Knowledge::refresh_keys`].
    keys: Vec<KeyBinding>,
    /// The pgvector lookup pools (on the call store's database), re-pointed by
    /// [`Knowledge::set_database_url`] when that URL rotates.
    lookup_pools: Vec<sqlx::PgPool>,
}

/// Reads KnowledgeBase manifests.
pub fn read_manifests(paths: &[PathBuf]) -> Result<Vec<KnowledgeBase>, KnowledgeError> {
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|source| KnowledgeError::Read {
                path: path.clone(),
                source,
            })?;
            parse_knowledge_base(&text).map_err(|source| KnowledgeError::Manifest {
                path: path.clone(),
                source,
            })
        })
        .collect()
}

fn documents(kb: &KnowledgeBase, name: &str) -> Result<Vec<Document>, KnowledgeError> {
    let mut docs = Vec::new();
    for source in &kb.spec.sources {
        let Some(inline) = &source.inline else {
            return Err(KnowledgeError::Unsupported {
                kb: name.to_string(),
                problem: "only inline sources can be read without a cluster (configMap and s3 sources are the operator's)".into(),
            });
        };
        for d in &inline.documents {
            docs.push(Document {
                id: format!("inline/{}", d.document_id()),
                title: d.title.clone(),
                content: d.content.clone(),
                category: d.category.clone(),
            });
        }
    }
    Ok(docs)
}

/// Shared resources of one load: the local model (loaded once) and the laptop store.
struct Loader<'a> {
    setup: KnowledgeSetup<'a>,
    local: Option<Arc<dyn Embedder>>,
    embedded: Option<Arc<EmbeddedStore>>,
    pools: cluster::Pools,
    keys: Vec<KeyBinding>,
}

impl Loader<'_> {
    async fn local(&mut self) -> Result<Arc<dyn Embedder>, KnowledgeError> {
        if let Some(e) = &self.local {
            return Ok(e.clone());
        }
        let dir = self.setup.model_dir.ok_or(KnowledgeError::NoModelDir)?;
        let dir = dir.to_path_buf();
        // Reading and parsing 90 MB of weights: off the async workers.
        let model = tokio::task::spawn_blocking(move || LocalMiniLm::load(&dir))
            .await
            .map_err(|e| {
                KnowledgeError::Embedder(switchboard_knowledge::EmbedError::Load(e.to_string()))
            })??;
        let embedder: Arc<dyn Embedder> = Arc::new(model);
        self.local = Some(embedder.clone());
        Ok(embedder)
    }

    async fn embedded(&mut self) -> Result<Arc<EmbeddedStore>, KnowledgeError> {
        if let Some(s) = &self.embedded {
            return Ok(s.clone());
        }
        let path = self.setup.data_dir.join("knowledge.db");
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts)
            .await
            .map_err(|source| KnowledgeError::Sqlite {
                path: path.clone(),
                source,
            })?;
        let store = Arc::new(EmbeddedStore::open(pool).await?);
        self.embedded = Some(store.clone());
        Ok(store)
    }

    async fn secret(
        &self,
        kb: &str,
        field: &'static str,
        r: &switchboard_crds::SecretRef,
    ) -> Result<String, KnowledgeError> {
        self.setup
            .secrets
            .resolve(r)
            .await
            .map_err(|problem| KnowledgeError::Secret {
                kb: kb.to_string(),
                field,
                problem,
            })
    }

    /// The secret `r` as a key its clients read per request, remembered so that
    /// [`Knowledge::refresh_keys`] can replace it.
    async fn rotating_key(
        &mut self,
        kb: &str,
        field: &'static str,
        r: &switchboard_crds::SecretRef,
    ) -> Result<RotatingKey, KnowledgeError> {
        let key = RotatingKey::new(self.secret(kb, field, r).await?);
        self.keys.push(KeyBinding {
            kb: kb.to_string(),
            field,
            source: r.clone(),
            key: key.clone(),
        });
        Ok(key)
    }

    async fn embedder(
        &mut self,
        kb: &KnowledgeBase,
        name: &str,
    ) -> Result<Arc<dyn Embedder>, KnowledgeError> {
        match (&kb.spec.embedder.kind, &kb.spec.embedder.openai) {
            (EmbedderKind::Openai, Some(o)) => {
                let mut config = OpenAiConfig::new(o.base_url.clone(), o.model.clone());
                config.api_key = Some(
                    self.rotating_key(name, "embedder.openai.apiKey", &o.api_key)
                        .await?,
                );
                config.dimensions = o.dimensions.map(|d| d as usize);
                // A caller is waiting: one quick retry, not the indexer's patience.
                config.max_retries = 1;
                config.timeout = std::time::Duration::from_secs(5);
                Ok(Arc::new(OpenAiEmbedder::new(config)?))
            }
            (EmbedderKind::Openai, None) => Err(KnowledgeError::Unsupported {
                kb: name.to_string(),
                problem: "embedder.openai must be set with type openai".into(),
            }),
            (EmbedderKind::Local, _) => self.local().await,
        }
    }

    /// Opens `kb` for searching: in place (cluster) or ingested into the embedded store.
    async fn open(&mut self, kb: &KnowledgeBase) -> Result<Retrieval, KnowledgeError> {
        let name = kb.metadata.name.clone().unwrap_or_default();
        let retrieval = |key: String, embedder, store| Retrieval {
            kb: name.clone(),
            key,
            top_k: kb.spec.retrieval.top_k as usize,
            min_score: kb.spec.retrieval.min_score as f32,
            embedder,
            store,
        };
        match (kb.spec.backend.kind, &kb.spec.backend.pinecone) {
            (BackendKind::Pinecone, Some(p)) => {
                let embedder = self.embedder(kb, &name).await?;
                let mut config = PineconeConfig::new(
                    self.rotating_key(&name, "backend.pinecone.apiKey", &p.api_key)
                        .await?,
                    p.index.clone(),
                );
                if let Some(url) = &p.api_url {
                    config.control_url = url.clone();
                }
                // A caller is waiting: fail fast rather than retry for long.
                config.max_retries = 1;
                config.timeout = std::time::Duration::from_secs(3);
                let store: Arc<dyn VectorStore> = Arc::new(cluster::pinecone(config));
                Ok(retrieval(
                    p.namespace_or(&name).to_string(),
                    embedder,
                    store,
                ))
            }
            (BackendKind::Pinecone, None) => Err(KnowledgeError::Unsupported {
                kb: name.clone(),
                problem: "backend.pinecone must be set with type pinecone".into(),
            }),
            (BackendKind::Pgvector, _) => match self.setup.cluster_database() {
                Some(url) => {
                    let embedder = self.embedder(kb, &name).await?;
                    let store =
                        cluster::pgvector(&mut self.pools, url, &name, embedder.dimensions())?;
                    tracing::info!(
                        kb = name,
                        tenant = kb.spec.tenant,
                        "knowledge base searched in the tenant's schema"
                    );
                    Ok(retrieval(name.clone(), embedder, Arc::new(store)))
                }
                None => {
                    if kb.spec.embedder.kind != EmbedderKind::Local {
                        return Err(KnowledgeError::Unsupported {
                            kb: name,
                            problem: "laptop mode embeds with the local model only".into(),
                        });
                    }
                    let docs = documents(kb, &name)?;
                    let embedder = self.local().await?;
                    let store = self.embedded().await?;
                    let chunking = ChunkingConfig {
                        size: kb.spec.chunking.size as usize,
                        overlap: kb.spec.chunking.overlap as usize,
                    };
                    let t0 = Instant::now();
                    let report = ingest(&name, &docs, &chunking, embedder.as_ref(), store.as_ref())
                        .await
                        .map_err(|source| KnowledgeError::Ingest {
                            kb: name.clone(),
                            source,
                        })?;
                    tracing::info!(
                        kb = name,
                        tenant = kb.spec.tenant,
                        ?report,
                        ms = t0.elapsed().as_millis() as u64,
                        "knowledge base ingested"
                    );
                    Ok(retrieval(name.clone(), embedder, store))
                }
            },
        }
    }
}

impl Knowledge {
    /// Laptop mode: loads the model from `model_dir`, opens `<data_dir>/knowledge.db` and
    /// ingests every manifest (re-embedding only changed chunks).
    pub async fn load(
        kbs: &[KnowledgeBase],
        model_dir: &Path,
        data_dir: &Path,
        metrics: KnowledgeMetrics,
    ) -> Result<Self, KnowledgeError> {
        let secrets =
            SecretSource::new(PathBuf::from(DEFAULT_SECRETS_DIR), Arc::new(Aws::default()));
        Self::load_with(
            kbs,
            KnowledgeSetup {
                model_dir: Some(model_dir),
                data_dir,
                database_url: None,
                secrets: &secrets,
            },
            metrics,
        )
        .await
    }

    /// Opens every knowledge base for searching: pgvector ones in the tenant's schema when
    /// the call store is Postgres and Pinecone ones in their namespace (indexed by the
    /// operator), any other ingested into the embedded store (laptop mode).
    pub async fn load_with(
        kbs: &[KnowledgeBase],
        setup: KnowledgeSetup<'_>,
        metrics: KnowledgeMetrics,
    ) -> Result<Self, KnowledgeError> {
        let mut loader = Loader {
            setup,
            local: None,
            embedded: None,
            pools: cluster::Pools::default(),
            keys: Vec::new(),
        };
        let mut by_tenant: HashMap<String, Vec<Retrieval>> = HashMap::new();
        for kb in kbs {
            let retrieval = loader.open(kb).await?;
            by_tenant
                .entry(kb.spec.tenant.clone())
                .or_default()
                .push(retrieval);
        }
        Ok(Self {
            by_tenant,
            metrics,
            keys: loader.keys,
            lookup_pools: loader.pools.into_pools(),
        })
    }

    /// Points the pgvector lookups at a rotated database URL: connections opened from now
    /// on use it. `false` when no pgvector knowledge base is loaded.
    ///
    /// # Errors
    /// [`KnowledgeError::Store`] when `url` is not a Postgres URL (nothing changes).
    pub fn set_database_url(&self, url: &str) -> Result<bool, KnowledgeError> {
        if self.lookup_pools.is_empty() {
            return Ok(false);
        }
        cluster::repoint(&self.lookup_pools, url)?;
        Ok(true)
    }

    /// Re-reads every embedder and Pinecone key from where its manifest names it; the
    /// next lookup sends a changed key (no restart, no lookup waits for this). Returns
    /// how many changed, and the keys that could not be read (those stay as they were:
    /// an outage of Secrets Manager never takes a knowledge base away).
    pub async fn refresh_keys(&self, secrets: &SecretSource) -> (usize, Vec<KnowledgeError>) {
        let mut changed = 0;
        let mut failed = Vec::new();
        for b in &self.keys {
            match secrets.resolve(&b.source).await {
                Ok(value) if value.is_empty() => failed.push(KnowledgeError::Secret {
                    kb: b.kb.clone(),
                    field: b.field,
                    problem: "the secret is empty".into(),
                }),
                Ok(value) => {
                    if b.key.set(value) {
                        tracing::info!(
                            kb = b.kb,
                            field = b.field,
                            "knowledge base key changed; the next lookup uses it"
                        );
                        changed += 1;
                    }
                }
                Err(problem) => failed.push(KnowledgeError::Secret {
                    kb: b.kb.clone(),
                    field: b.field,
                    problem,
                }),
            }
        }
        (changed, failed)
    }

    /// Names of the knowledge bases loaded for `tenant`.
    pub fn bases_of(&self, tenant: &str) -> Vec<String> {
        self.by_tenant
            .get(tenant)
            .map(|v| v.iter().map(|r| r.kb.clone()).collect())
            .unwrap_or_default()
    }

    /// The lookup metrics.
    pub fn metrics(&self) -> &KnowledgeMetrics {
        &self.metrics
    }

    /// Embeds `query` and searches the knowledge bases of `tenant` its agent may use
    /// (`allowed`, the agent's `knowledgeBases`); the output is the JSON the model
    /// receives.
    pub async fn search(
        &self,
        tenant: &str,
        allowed: &[String],
        query: &str,
    ) -> Result<serde_json::Value, String> {
        let bases: Vec<&Retrieval> = self
            .by_tenant
            .get(tenant)
            .map(|v| v.iter().filter(|r| allowed.contains(&r.kb)).collect())
            .unwrap_or_default();
        if bases.is_empty() {
            return Err("no knowledge base is available for this business".into());
        }
        // One embedding per model, however many knowledge bases share it.
        let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
        let mut hits = Vec::new();
        for r in &bases {
            let model = r.embedder.model_id().to_string();
            if !vectors.contains_key(&model) {
                let mut embedded = r
                    .embedder
                    .embed(&[query])
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(vector) = embedded.pop() else {
                    return Err("the embedder returned nothing".into());
                };
                vectors.insert(model.clone(), vector);
            }
            let vector = vectors.get(&model).map(Vec::as_slice).unwrap_or_default();
            let found = r
                .store
                .search(&r.key, vector, r.top_k, r.min_score)
                .await
                .map_err(|e| e.to_string())?;
            hits.extend(found.into_iter().map(|h| (r.kb.clone(), h)));
        }
        hits.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
        let top_k = bases.iter().map(|r| r.top_k).max().unwrap_or(4);
        hits.truncate(top_k);
        Ok(json!({
            "query": query,
            "passages": hits.iter().map(|(kb, h)| json!({
                "source": format!("{kb}/{}", h.chunk_id),
                "title": h.title,
                "text": h.text,
                // Rounded in f64: an f32 rounded to 3 places prints as 0.6940000057220459.
                "score": (f64::from(h.score) * 1000.0).round() / 1000.0,
            })).collect::<Vec<_>>(),
        }))
    }
}
