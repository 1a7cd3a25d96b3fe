//! What a knowledge-base reconcile runs on: the embedders and the vector stores.
//!
//! Shared by every reconcile of the controller: the local model is loaded once, on first
//! use, off the async workers; Postgres pools are kept per database URL; embedding work is
//! bounded by a semaphore so a burst of knowledge bases cannot take every core from the
//! rest of the operator (the local model's forward pass already runs on a blocking thread).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use switchboard_knowledge::store::{PineconeConfig, PineconeStore};
use switchboard_knowledge::{
    EmbedError, Embedder, LocalMiniLm, OpenAiConfig, OpenAiEmbedder, PgVectorStore, StoreError,
    VectorStore,
};
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use super::access::SecretsAccess;
use super::s3::{S3Settings, S3Sources};
use crate::database::{AdminTarget, TenantDatabase};
use crate::endpoints::EndpointPolicy;
use crate::pg_tls::PgTls;

/// Connections per tenant database pool: a reconcile uses one at a time.
const POOL_SIZE: u32 = 2;
/// Connecting to a tenant database gives up after this long (the reconcile is retried).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the [`Engine`].
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// Directory of the all-MiniLM-L6-v2 files for `local` embedders.
    pub model_dir: Option<PathBuf>,
    /// Knowledge bases embedding at once (at least 1).
    pub embed_concurrency: usize,
    /// Retries of an OpenAI-compatible embedder request; `None`: the client's default.
    pub openai_retries: Option<u32>,
}

/// API keys in AWS Secrets Manager: which ids each namespace may name, and the AWS
/// configuration they are read with (the default chain unless overridden).
#[derive(Clone, Debug, Default)]
pub struct SecretsManagerSettings {
    /// Grants (`--secrets-manager-allow`); none by default.
    pub access: SecretsAccess,
    /// AWS overrides (tests); empty: the default chain and `AWS_ENDPOINT_URL*`.
    pub aws: switchboard_aws::AwsOptions,
}

/// Embedders, stores and the limits around them.
pub struct Engine {
    config: EngineConfig,
    secrets: SecretsManagerSettings,
    secrets_client: OnceCell<switchboard_aws::SecretsManager>,
    local: OnceCell<Arc<LocalMiniLm>>,
    permits: Semaphore,
    pools: Mutex<HashMap<String, PgPool>>,
    s3: S3Sources,
    tls: PgTls,
    database_target: Option<AdminTarget>,
    endpoints: EndpointPolicy,
}

/// A vector store opened for one knowledge base.
pub enum OpenStore {
    /// Its own pgvector table.
    Pgvector(PgVectorStore),
    /// A Pinecone index (the knowledge base is one namespace).
    Pinecone(PineconeStore),
}

impl OpenStore {
    /// The store behind the common trait.
    pub fn as_store(&self) -> &dyn VectorStore {
        match self {
            Self::Pgvector(s) => s,
            Self::Pinecone(s) => s,
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("local_loaded", &self.local.initialized())
            .finish()
    }
}

impl Engine {
    /// An engine with `config`; nothing is loaded or connected yet.
    pub fn new(config: EngineConfig) -> Self {
        let permits = Semaphore::new(config.embed_concurrency.max(1));
        Self {
            config,
            local: OnceCell::new(),
            permits,
            pools: Mutex::new(HashMap::new()),
            s3: S3Sources::aws(&S3Settings::default()),
            tls: PgTls::default(),
            database_target: None,
            secrets: SecretsManagerSettings::default(),
            secrets_client: OnceCell::new(),
            endpoints: EndpointPolicy::default(),
        }
    }

    /// This engine sending keys only to the hosts `endpoints` allows (default: OpenAI's
    /// and Pinecone's, with TLS): checked before a sync or cleanup reads any key
    /// ([`super::target::check_endpoints`]).
    pub fn with_endpoints(mut self, endpoints: EndpointPolicy) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// The hosts this engine may send keys to.
    pub fn endpoints(&self) -> &EndpointPolicy {
        &self.endpoints
    }

    /// This engine knowing the server the operator provisions tenant databases on (from
    /// its admin URL; `None`: it provisions none).
    pub fn with_database_target(mut self, target: Option<AdminTarget>) -> Self {
        self.database_target = target;
        self
    }

    /// Whether `url`, read from the database Secret of a tenant the operator provisioned
    /// (`db`), is the URL the operator writes for it ([`AdminTarget::is_tenant_url`]).
    /// Without an admin URL the operator provisions nothing: no such URL is.
    pub fn is_provisioned_url(&self, db: &TenantDatabase, url: &str) -> bool {
        self.database_target
            .as_ref()
            .is_some_and(|t| t.is_tenant_url(db, url))
    }

    /// This engine connecting to pgvector databases with `tls` (default: the URL as
    /// written; the command line: [`PgTls::cluster`]).
    pub fn with_pg_tls(mut self, tls: PgTls) -> Self {
        self.tls = tls;
        self
    }

    /// This engine reading API keys from Secrets Manager as `settings` allow (default:
    /// no namespace may name one).
    pub fn with_secrets_manager(mut self, settings: SecretsManagerSettings) -> Self {
        self.secrets = settings;
        self
    }

    /// Which Secrets Manager ids each namespace may name.
    pub fn secrets_access(&self) -> &SecretsAccess {
        &self.secrets.access
    }

    /// The Secrets Manager client, configured on first use (loading the configuration
    /// calls nothing; credentials are fetched by the first request).
    pub async fn secrets_manager(&self) -> &switchboard_aws::SecretsManager {
        self.secrets_client
            .get_or_init(|| async {
                switchboard_aws::SecretsManager::new(
                    &switchboard_aws::load_config(&self.secrets.aws).await,
                )
            })
            .await
    }

    /// This engine reading S3 sources through `s3` (default: AWS with the default
    /// chain and settings).
    pub fn with_s3(mut self, s3: S3Sources) -> Self {
        self.s3 = s3;
        self
    }

    /// The S3 sources and what each knowledge base last read from them.
    pub fn s3(&self) -> &S3Sources {
        &self.s3
    }

    /// Waits for a turn to embed: hold the permit while ingesting.
    pub async fn embed_permit(&self) -> Option<SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    /// The local model, loaded on first use (on a blocking thread: reading and parsing
    /// 90 MB of weights).
    ///
    /// # Errors
    ///
    /// [`EmbedError::Load`] without a model directory or with unreadable files; a later
    /// call tries again.
    pub async fn local(&self) -> Result<Arc<LocalMiniLm>, EmbedError> {
        self.local
            .get_or_try_init(|| async {
                let dir = self.config.model_dir.clone().ok_or_else(|| {
                    EmbedError::Load(
                        "no model directory: run the operator with --model-dir or SWITCHBOARD_MODEL_DIR"
                            .into(),
                    )
                })?;
                tokio::task::spawn_blocking(move || LocalMiniLm::load(&dir).map(Arc::new))
                    .await
                    .map_err(|e| EmbedError::Load(format!("loading task: {e}")))?
            })
            .await
            .cloned()
    }

    /// An OpenAI-compatible embedder.
    ///
    /// # Errors
    ///
    /// [`EmbedError::Config`] for unusable settings.
    pub fn openai(
        &self,
        base_url: &str,
        model: &str,
        dimensions: Option<usize>,
        api_key: String,
    ) -> Result<Arc<dyn Embedder>, EmbedError> {
        let mut config = OpenAiConfig::new(base_url, model);
        config.api_key = Some(api_key.into());
        config.dimensions = dimensions;
        if let Some(retries) = self.config.openai_retries {
            config.max_retries = retries;
        }
        Ok(Arc::new(OpenAiEmbedder::new(config)?))
    }

    /// A pool on the database `url` names, shared by reconciles of the same URL.
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] for a URL that does not parse.
    pub fn pool(&self, url: &str) -> Result<PgPool, StoreError> {
        let mut pools = self
            .pools
            .lock()
            .map_err(|_| StoreError::Config("pool cache poisoned".into()))?;
        if let Some(pool) = pools.get(url) {
            return Ok(pool.clone());
        }
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Config(format!("tenant database URL: {e}")))?;
        let options = self.tls.apply(url, options);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(Some(Duration::from_secs(60)))
            .connect_lazy_with(options);
        pools.insert(url.to_string(), pool.clone());
        Ok(pool)
    }

    /// Forgets the pool of `url` (after the URL's Secret changed or the database moved).
    pub fn forget_pool(&self, url: &str) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.remove(url);
        }
    }

    /// The pgvector table of knowledge base `kb` in `schema` (the connection's current
    /// schema when `None`), created with its HNSW index when missing.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database cannot be reached or the table holds vectors of
    /// another dimension.
    pub async fn pgvector(
        &self,
        url: &str,
        schema: Option<&str>,
        kb: &str,
        dimensions: usize,
    ) -> Result<PgVectorStore, StoreError> {
        let pool = self.pool(url)?;
        let schema = match schema {
            Some(s) => s.to_string(),
            None => sqlx::query_scalar::<_, Option<String>>("SELECT current_schema()")
                .fetch_one(&pool)
                .await?
                .ok_or_else(|| {
                    StoreError::Config("the tenant database URL selects no schema".into())
                })?,
        };
        PgVectorStore::provision_table(pool, &schema, &PgVectorStore::kb_table(kb), dimensions)
            .await
    }

    /// The Pinecone index of `config`, created when missing.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when Pinecone refuses or cannot be reached.
    pub async fn pinecone(
        &self,
        config: PineconeConfig,
        dimensions: usize,
    ) -> Result<PineconeStore, StoreError> {
        PineconeStore::ensure_index(config, dimensions).await
    }
}

impl Engine {
    /// Drops knowledge base `kb`'s pgvector table (and its index) in `schema`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database cannot be reached.
    pub async fn drop_pgvector(
        &self,
        url: &str,
        schema: Option<&str>,
        kb: &str,
    ) -> Result<(), StoreError> {
        let pool = self.pool(url)?;
        let schema = match schema {
            Some(s) => s.to_string(),
            None => match sqlx::query_scalar::<_, Option<String>>("SELECT current_schema()")
                .fetch_one(&pool)
                .await?
            {
                Some(s) => s,
                None => return Ok(()),
            },
        };
        let table = PgVectorStore::kb_table(kb);
        let sql = format!(
            "DROP TABLE IF EXISTS \"{}\".\"{table}\"",
            schema.replace('"', "\"\"")
        );
        // The table name is [a-z0-9_] by construction and the schema is quoted.
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await?;
        Ok(())
    }

    /// Deletes namespace `namespace` of the Pinecone index of `config`; an index that
    /// does not exist holds nothing to delete.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when Pinecone refuses or cannot be reached.
    pub async fn drop_pinecone(
        &self,
        config: PineconeConfig,
        namespace: &str,
    ) -> Result<(), StoreError> {
        match PineconeStore::connect(config).await {
            Ok(store) => store.delete_namespace(namespace).await,
            Err(StoreError::Remote { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
