//! One knowledge-base reconcile: dereference (tenant, sources, secrets) → validate →
//! provision the backend → ingest → the outcome the status is computed from; and the
//! finalizer's cleanup.
//!
//! Written over [`KnowledgeApi`] and the [`Engine`], so it runs the same against an API
//! server, a test API server or test doubles.

use std::collections::BTreeMap;
use std::sync::Arc;

use switchboard_crds::{DeletionPolicy, KnowledgeBase, SecretKeySelector};
use switchboard_knowledge::store::PineconeConfig;
use switchboard_knowledge::{
    ChunkingConfig, EmbedError, Embedder, IngestError, IngestReport, StoreError, ingest,
};

use super::api::KnowledgeApi;
use super::engine::{Engine, OpenStore};
use super::s3::Skipped;
use super::sources::{config_map_names, content_hash, documents, s3_sources};
use super::status::{Outcome, up_to_date};
use super::target::{self, Blocked, EmbedderChoice, Location};
use crate::conditions::Failure;

/// What a reconcile decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The status already describes a sync of the current spec and content: nothing was
    /// embedded or written.
    UpToDate,
    /// Write the status computed from this outcome.
    Report(Outcome),
}

/// A synced knowledge base: the outcome plus what ingestion did (for logs and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncDetail {
    /// Chunks embedded and written by this sync.
    pub report: IngestReport,
    /// S3 objects left out of the index (other types, too large, not UTF-8, empty).
    pub skipped: Vec<Skipped>,
}

/// The key of a knowledge base in the engine's per-knowledge-base memory (S3 reads).
pub fn kb_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn failed(reason: &str, message: impl Into<String>) -> Decision {
    Decision::Report(Outcome::Failed(Failure::new(reason, message)))
}

fn blocked(b: Blocked) -> Decision {
    match b {
        Blocked::Waiting { reason, message } => Decision::Report(Outcome::Waiting {
            reason: reason.to_string(),
            message,
        }),
        Blocked::Failed(f) => Decision::Report(Outcome::Failed(f)),
    }
}

/// The condition reason of an embedder failure.
pub const EMBEDDER_FAILED: &str = "EmbedderFailed";
/// The condition reason of a vector store that cannot be reached or refuses.
pub const BACKEND_UNREACHABLE: &str = "BackendUnreachable";

fn store_reason(e: &StoreError) -> &'static str {
    match e {
        StoreError::Dimensions { .. } => "DimensionMismatch",
        StoreError::Config(_) => "BackendMisconfigured",
        StoreError::Remote { status, .. } if *status == 401 || *status == 403 => {
            "BackendUnauthorized"
        }
        _ => BACKEND_UNREACHABLE,
    }
}

async fn secret(
    api: &dyn KnowledgeApi,
    namespace: &str,
    selector: &SecretKeySelector,
) -> Result<String, Decision> {
    match api.secret_value(namespace, selector).await {
        Ok(Some(v)) if !v.is_empty() => Ok(v),
        Ok(_) => Err(failed(
            "SecretMissing",
            format!("Secret {} has no key {:?}", selector.name, selector.key),
        )),
        Err(e) => Err(failed(
            "KubernetesApi",
            format!("reading Secret {}: {e}", selector.name),
        )),
    }
}

/// Reconciles `kb`: brings its index in line with its sources unless the status says it
/// already is. Never panics; every failure becomes an [`Outcome::Failed`] with its reason.
pub async fn sync(kb: &KnowledgeBase, api: &dyn KnowledgeApi, engine: &Engine) -> Decision {
    match sync_inner(kb, api, engine).await {
        Ok((decision, _)) | Err(decision) => decision,
    }
}

/// [`sync`], with what ingestion did when it ran.
pub async fn sync_detailed(
    kb: &KnowledgeBase,
    api: &dyn KnowledgeApi,
    engine: &Engine,
) -> (Decision, Option<SyncDetail>) {
    match sync_inner(kb, api, engine).await {
        Ok((decision, detail)) => (decision, detail),
        Err(decision) => (decision, None),
    }
}

async fn sync_inner(
    kb: &KnowledgeBase,
    api: &dyn KnowledgeApi,
    engine: &Engine,
) -> Result<(Decision, Option<SyncDetail>), Decision> {
    let (Some(namespace), Some(name)) = (
        kb.metadata.namespace.as_deref(),
        kb.metadata.name.as_deref(),
    ) else {
        return Err(failed(
            "InvalidObject",
            "the knowledge base has no name or namespace",
        ));
    };
    // Validate: the API server's schema and CEL rules catch most of this, but not
    // everything (and a CRD may be older than this operator).
    if let Err(e) = kb.spec.validate() {
        return Err(failed("InvalidSpec", e.to_string()));
    }

    // Dereference.
    let tenant = match api.tenant(namespace, &kb.spec.tenant).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(failed(
                "TenantNotFound",
                format!(
                    "VoiceTenant {} does not exist in namespace {namespace}",
                    kb.spec.tenant
                ),
            ));
        }
        Err(e) => return Err(failed("KubernetesApi", format!("reading the tenant: {e}"))),
    };
    let location = target::location(kb, &tenant).map_err(blocked)?;
    let embedder_choice = target::embedder(kb).map_err(blocked)?;
    let mut config_maps = BTreeMap::new();
    for cm in config_map_names(&kb.spec) {
        match api.config_map(namespace, &cm).await {
            Ok(Some(found)) => {
                config_maps.insert(cm, found);
            }
            Ok(None) => {}
            Err(e) => {
                return Err(failed(
                    "KubernetesApi",
                    format!("reading ConfigMap {cm}: {e}"),
                ));
            }
        }
    }
    // S3 cannot be watched: every reconcile lists, and downloads only what changed.
    let buckets = s3_sources(&kb.spec);
    let listings = if buckets.is_empty() {
        // Its S3 sources may just have been removed from the spec.
        engine.s3().forget(&kb_key(namespace, name));
        BTreeMap::new()
    } else {
        let (listings, stats) = engine
            .s3()
            .read(&kb_key(namespace, name), &buckets)
            .await
            .map_err(|e| failed(e.reason(), e.to_string()))?;
        tracing::debug!(
            namespace,
            kb = name,
            listed = stats.listed,
            fetched = stats.fetched,
            removed = stats.removed,
            "S3 sources read"
        );
        listings
    };
    let skipped: Vec<Skipped> = listings
        .values()
        .flat_map(|l| l.skipped.iter().cloned())
        .collect();
    let docs = documents(&kb.spec, &config_maps, &listings)
        .map_err(|e| failed(e.reason(), e.to_string()))?;
    let hash = content_hash(&docs, &skipped, &location.describe());
    if up_to_date(kb.status.as_ref(), kb.metadata.generation, &hash) {
        return Ok((Decision::UpToDate, None));
    }

    // Provision.
    let embedder: Arc<dyn Embedder> = match &embedder_choice {
        EmbedderChoice::Local => engine
            .local()
            .await
            .map(|m| m as Arc<dyn Embedder>)
            .map_err(|e| failed(EMBEDDER_FAILED, e.to_string()))?,
        EmbedderChoice::OpenAi {
            base_url,
            model,
            dimensions,
            api_key,
        } => {
            let key = secret(api, namespace, api_key).await?;
            engine
                .openai(base_url, model, *dimensions, key)
                .map_err(|e| failed(EMBEDDER_FAILED, e.to_string()))?
        }
    };
    let dimensions = embedder.dimensions();
    let (store, kb_key) = match &location {
        Location::Pgvector { url, schema } => {
            let url = secret(api, namespace, url).await?;
            let store = engine
                .pgvector(&url, schema.as_deref(), name, dimensions)
                .await
                .map_err(|e| failed(store_reason(&e), format!("pgvector: {e}")))?;
            (OpenStore::Pgvector(store), name.to_string())
        }
        Location::Pinecone {
            index,
            namespace: pc_namespace,
            cloud,
            region,
            api_url,
            api_key,
        } => {
            let key = secret(api, namespace, api_key).await?;
            let store = engine
                .pinecone(
                    pinecone_config(key, index, cloud, region, api_url),
                    dimensions,
                )
                .await
                .map_err(|e| failed(store_reason(&e), format!("Pinecone: {e}")))?;
            (OpenStore::Pinecone(store), pc_namespace.clone())
        }
    };

    // Ingest.
    let chunking = ChunkingConfig {
        size: kb.spec.chunking.size as usize,
        overlap: kb.spec.chunking.overlap as usize,
    };
    let _permit = engine.embed_permit().await;
    let report = ingest(
        &kb_key,
        &docs,
        &chunking,
        embedder.as_ref(),
        store.as_store(),
    )
    .await
    .map_err(|e| match &e {
        IngestError::Embed(inner) => failed(EMBEDDER_FAILED, embed_message(inner)),
        IngestError::Store(inner) => failed(store_reason(inner), e.to_string()),
        IngestError::DuplicateDocument(_) | IngestError::DuplicateChunk(_) => {
            failed("InvalidSpec", e.to_string())
        }
    })?;
    tracing::info!(
        namespace,
        kb = name,
        documents = report.documents,
        chunks = report.chunks,
        embedded = report.embedded,
        deleted = report.deleted,
        skipped = skipped.len(),
        "knowledge base synced"
    );
    let outcome = Outcome::Synced {
        documents: u32::try_from(report.documents).unwrap_or(u32::MAX),
        chunks: u32::try_from(report.chunks).unwrap_or(u32::MAX),
        content_hash: hash,
        skipped: u32::try_from(skipped.len()).unwrap_or(u32::MAX),
    };
    Ok((
        Decision::Report(outcome),
        Some(SyncDetail { report, skipped }),
    ))
}

fn embed_message(e: &EmbedError) -> String {
    format!("embedding failed: {e}")
}

fn pinecone_config(
    api_key: String,
    index: &str,
    cloud: &str,
    region: &str,
    api_url: &Option<String>,
) -> PineconeConfig {
    let mut config = PineconeConfig::new(api_key, index);
    config.cloud = cloud.to_string();
    config.region = region.to_string();
    if let Some(url) = api_url {
        config.control_url = url.clone();
    }
    config
}

/// What the finalizer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// The index was removed (the tenant's deletion policy is Delete).
    Removed,
    /// The index was kept: the tenant's policy is Retain, or the tenant is gone (its own
    /// finalizer decided the fate of its schema; a knowledge base never deletes data it
    /// cannot attribute to a Delete policy).
    Retained,
}

/// Removes `kb`'s index when its tenant's deletion policy is `Delete`: drops its pgvector
/// table, or deletes its Pinecone namespace. Idempotent.
///
/// # Errors
///
/// A [`Failure`] when the tenant, its Secrets or the backend cannot be read; the
/// finalizer stays and the cleanup is retried.
pub async fn cleanup(
    kb: &KnowledgeBase,
    api: &dyn KnowledgeApi,
    engine: &Engine,
) -> Result<Cleanup, Failure> {
    let namespace = kb.metadata.namespace.as_deref().unwrap_or_default();
    let name = kb.metadata.name.as_deref().unwrap_or_default();
    // What it read from S3 is of no use any more, whatever happens to its index.
    engine.s3().forget(&kb_key(namespace, name));
    let tenant = match api.tenant(namespace, &kb.spec.tenant).await {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Cleanup::Retained),
        Err(e) => {
            return Err(Failure::new(
                "KubernetesApi",
                format!("reading the tenant: {e}"),
            ));
        }
    };
    if tenant.spec.deletion_policy != DeletionPolicy::Delete {
        return Ok(Cleanup::Retained);
    }
    let location = match target::location(kb, &tenant) {
        Ok(l) => l,
        // Never indexed (no database yet): nothing to remove.
        Err(Blocked::Waiting { .. }) => return Ok(Cleanup::Removed),
        Err(Blocked::Failed(f)) => return Err(f),
    };
    let read = |selector: SecretKeySelector| async move {
        match api.secret_value(namespace, &selector).await {
            Ok(v) => Ok(v),
            Err(e) => Err(Failure::new(
                "KubernetesApi",
                format!("reading Secret {}: {e}", selector.name),
            )),
        }
    };
    match location {
        Location::Pgvector { url, schema } => {
            // Without its Secret the tenant's database is being torn down with it.
            let Some(url) = read(url).await? else {
                return Ok(Cleanup::Retained);
            };
            engine
                .drop_pgvector(&url, schema.as_deref(), name)
                .await
                .map_err(|e| Failure::new(store_reason(&e), format!("pgvector: {e}")))?;
        }
        Location::Pinecone {
            index,
            namespace: pc_namespace,
            cloud,
            region,
            api_url,
            api_key,
        } => {
            let Some(key) = read(api_key).await? else {
                return Err(Failure::new(
                    "SecretMissing",
                    "the Pinecone API key Secret is gone; cannot delete the namespace",
                ));
            };
            engine
                .drop_pinecone(
                    pinecone_config(key, &index, &cloud, &region, &api_url),
                    &pc_namespace,
                )
                .await
                .map_err(|e| Failure::new(store_reason(&e), format!("Pinecone: {e}")))?;
        }
    }
    Ok(Cleanup::Removed)
}
