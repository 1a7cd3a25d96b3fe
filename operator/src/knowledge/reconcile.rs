//! One knowledge-base sync: read ([`super::read`](mod@super::read)) → plan, pure
//! ([`super::plan`](mod@super::plan)) → apply (open the embedder and the store with
//! their credentials, ingest) → the outcome the status is computed from; and the
//! finalizer's cleanup.
//!
//! Written over [`KnowledgeApi`] and the [`Engine`], so it runs the same against an API
//! server, a test API server or test doubles.

use std::sync::Arc;

use switchboard_crds::{DeletionPolicy, KnowledgeBase, SecretKeySelector};
use switchboard_knowledge::store::PineconeConfig;
use switchboard_knowledge::{Embedder, IngestReport, ingest};

use super::api::{KnowledgeApi, SecretRefusal, SecretTrust, check_secret, secret_key};
use super::engine::{Engine, OpenStore};
use super::error::KnowledgeError;
use super::plan::{Plan, SyncPlan, plan};
use super::read::{kb_key, read};
use super::s3::Skipped;
use super::status::Outcome;
use super::target::{self, Blocked, EmbedderChoice, KeySource, Location};
use crate::labels::USABLE_SECRET_LABEL;

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

/// Reconciles `kb`: brings its index in line with its sources unless the status says it
/// already is. Never panics; every failure becomes an [`Outcome::Failed`] with its reason.
pub async fn sync(kb: &KnowledgeBase, api: &dyn KnowledgeApi, engine: &Engine) -> Decision {
    sync_detailed(kb, api, engine).await.0
}

/// [`sync`], with what ingestion did when it ran.
pub async fn sync_detailed(
    kb: &KnowledgeBase,
    api: &dyn KnowledgeApi,
    engine: &Engine,
) -> (Decision, Option<SyncDetail>) {
    match try_sync(kb, api, engine).await {
        Ok(Some((outcome, detail))) => (Decision::Report(outcome), detail),
        Ok(None) => (Decision::UpToDate, None),
        Err(e) => (Decision::Report(Outcome::Failed(e.failure())), None),
    }
}

/// read → plan → apply; `None` when the index is up to date.
async fn try_sync(
    kb: &KnowledgeBase,
    api: &dyn KnowledgeApi,
    engine: &Engine,
) -> Result<Option<(Outcome, Option<SyncDetail>)>, KnowledgeError> {
    let (Some(namespace), Some(name)) = (
        kb.metadata.namespace.as_deref(),
        kb.metadata.name.as_deref(),
    ) else {
        return Err(KnowledgeError::Unnamed);
    };
    // Before anything is read: no key goes to a host the operator does not allow.
    target::check_endpoints(kb, engine.endpoints())?;
    let read = read(kb, namespace, name, api, engine).await;
    match plan(kb, namespace, read)? {
        Plan::UpToDate => Ok(None),
        Plan::Wait { reason, message } => Ok(Some((
            Outcome::Waiting {
                reason: reason.to_string(),
                message,
            },
            None,
        ))),
        Plan::Sync(sync) => {
            let tenant = kb.spec.tenant.as_str();
            let (outcome, detail) = apply(namespace, name, tenant, *sync, api, engine).await?;
            Ok(Some((outcome, Some(detail))))
        }
    }
}

/// The value of a Secret key, read only from a Secret `trust` allows (the one rule of
/// every Secret read of a knowledge base: [`check_secret`]); `None` when the Secret or
/// its key does not exist.
async fn secret_value(
    api: &dyn KnowledgeApi,
    namespace: &str,
    selector: &SecretKeySelector,
    trust: &SecretTrust,
    tenant: &str,
) -> Result<Option<String>, KnowledgeError> {
    let found = api
        .secret(namespace, &selector.name)
        .await
        .map_err(|e| KnowledgeError::kube(format!("Secret {}", selector.name), e))?;
    let Some(found) = found else {
        return Ok(None);
    };
    match check_secret(&found, trust) {
        Ok(()) => Ok(secret_key(&found, &selector.key)),
        Err(SecretRefusal::NotUsable) => Err(KnowledgeError::SecretNotUsable {
            name: selector.name.clone(),
            label: USABLE_SECRET_LABEL,
        }),
        Err(SecretRefusal::NotOwned) => Err(KnowledgeError::SecretNotOwned {
            name: selector.name.clone(),
            tenant: tenant.to_string(),
        }),
    }
}

/// A provisioned tenant database's URL (read from its Secret with
/// [`SecretTrust::OwnedBy`]) must be the one the operator writes for the tenant's derived
/// role and schema on its own server ([`Engine::is_provisioned_url`]): an owner
/// reference proves nothing (an editor may create a Secret with one), the content does.
/// URLs of other trusts pass.
fn check_provisioned_url(
    engine: &Engine,
    trust: &SecretTrust,
    selector: &SecretKeySelector,
    schema: Option<&str>,
    url: &str,
    tenant: &str,
) -> Result<(), KnowledgeError> {
    let (SecretTrust::OwnedBy(_), Some(schema)) = (trust, schema) else {
        return Ok(());
    };
    let db = crate::database::TenantDatabase {
        role: schema.to_string(),
        schema: schema.to_string(),
        secret_name: selector.name.clone(),
    };
    if engine.is_provisioned_url(&db, url) {
        Ok(())
    } else {
        Err(KnowledgeError::SecretNotOwned {
            name: selector.name.clone(),
            tenant: tenant.to_string(),
        })
    }
}

/// The value of a Secret key the backend or embedder needs ([`secret_value`]; missing
/// or empty is an error).
async fn secret(
    api: &dyn KnowledgeApi,
    namespace: &str,
    selector: &SecretKeySelector,
    trust: &SecretTrust,
    tenant: &str,
) -> Result<String, KnowledgeError> {
    match secret_value(api, namespace, selector, trust, tenant).await? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(KnowledgeError::SecretMissing {
            name: selector.name.clone(),
            key: selector.key.clone(),
        }),
    }
}

/// An API key the embedder or Pinecone needs, wherever its reference says it lives: a
/// labelled Kubernetes Secret ([`secret`]), or a Secrets Manager secret granted to the
/// namespace (checked before anything is read: the operator's AWS identity is not the
/// namespace's). `None`: a Kubernetes Secret or key that does not exist.
async fn api_key_value(
    api: &dyn KnowledgeApi,
    engine: &Engine,
    namespace: &str,
    field: &'static str,
    source: &KeySource,
    tenant: &str,
) -> Result<Option<String>, KnowledgeError> {
    match source {
        KeySource::Cluster(selector) => {
            secret_value(api, namespace, selector, &SecretTrust::Labelled, tenant).await
        }
        KeySource::Aws(r) => {
            if !engine.secrets_access().allows(namespace, &r.secret_id) {
                return Err(KnowledgeError::AwsSecretNotGranted {
                    secret_id: r.secret_id.clone(),
                    namespace: namespace.to_string(),
                });
            }
            let value = engine
                .secrets_manager()
                .await
                .get(&r.secret_id, r.key.as_deref(), r.version_stage.as_deref())
                .await
                .map_err(|source| KnowledgeError::AwsSecret { field, source })?;
            Ok(Some(value))
        }
    }
}

/// [`api_key_value`]; a missing or empty key is an error.
async fn api_key(
    api: &dyn KnowledgeApi,
    engine: &Engine,
    namespace: &str,
    field: &'static str,
    source: &KeySource,
    tenant: &str,
) -> Result<String, KnowledgeError> {
    match api_key_value(api, engine, namespace, field, source, tenant).await? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(match source {
            KeySource::Cluster(s) => KnowledgeError::SecretMissing {
                name: s.name.clone(),
                key: s.key.clone(),
            },
            // Secrets Manager answers a missing or empty value with an error of its own.
            KeySource::Aws(r) => KnowledgeError::SecretMissing {
                name: r.secret_id.clone(),
                key: r.key.clone().unwrap_or_default(),
            },
        }),
    }
}

/// Step 4, **apply**: opens the embedder and the store (reading the credentials they
/// need: only a sync that has work to do reads Secret values) and ingests the plan's
/// documents, embedding only changed chunks.
async fn apply(
    namespace: &str,
    name: &str,
    tenant: &str,
    plan: SyncPlan,
    api: &dyn KnowledgeApi,
    engine: &Engine,
) -> Result<(Outcome, SyncDetail), KnowledgeError> {
    let embedder: Arc<dyn Embedder> = match &plan.embedder {
        EmbedderChoice::Local => engine
            .local()
            .await
            .map(|m| m as Arc<dyn Embedder>)
            .map_err(KnowledgeError::Embedder)?,
        EmbedderChoice::OpenAi {
            base_url,
            model,
            dimensions,
            api_key,
        } => {
            let key = self::api_key(
                api,
                engine,
                namespace,
                "embedder.openai.apiKey",
                api_key,
                tenant,
            )
            .await?;
            engine
                .openai(base_url, model, *dimensions, key)
                .map_err(KnowledgeError::Embedder)?
        }
    };
    let dimensions = embedder.dimensions();
    let (store, kb_key) = match &plan.location {
        Location::Pgvector {
            url: selector,
            trust,
            schema,
        } => {
            let url = secret(api, namespace, selector, trust, tenant).await?;
            check_provisioned_url(engine, trust, selector, schema.as_deref(), &url, tenant)?;
            let store = engine
                .pgvector(&url, schema.as_deref(), name, dimensions)
                .await
                .map_err(|source| KnowledgeError::Store {
                    backend: "pgvector",
                    source,
                })?;
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
            let key = self::api_key(
                api,
                engine,
                namespace,
                "backend.pinecone.apiKey",
                api_key,
                tenant,
            )
            .await?;
            let store = engine
                .pinecone(
                    pinecone_config(key, index, cloud, region, api_url),
                    dimensions,
                )
                .await
                .map_err(|source| KnowledgeError::Store {
                    backend: "Pinecone",
                    source,
                })?;
            (OpenStore::Pinecone(store), pc_namespace.clone())
        }
    };

    let _permit = engine.embed_permit().await;
    let report = ingest(
        &kb_key,
        &plan.documents,
        &plan.chunking,
        embedder.as_ref(),
        store.as_store(),
    )
    .await
    .map_err(KnowledgeError::Ingest)?;
    let skipped = plan.skipped;
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
        content_hash: plan.content_hash,
        skipped: u32::try_from(skipped.len()).unwrap_or(u32::MAX),
    };
    Ok((outcome, SyncDetail { report, skipped }))
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
/// A [`KnowledgeError`] when the tenant, its Secrets or the backend cannot be read; the
/// finalizer stays and the cleanup is retried.
pub async fn cleanup(
    kb: &KnowledgeBase,
    api: &dyn KnowledgeApi,
    engine: &Engine,
) -> Result<Cleanup, KnowledgeError> {
    let namespace = kb.metadata.namespace.as_deref().unwrap_or_default();
    let name = kb.metadata.name.as_deref().unwrap_or_default();
    // What it read from S3 is of no use any more, whatever happens to its index.
    engine.s3().forget(&kb_key(namespace, name));
    let tenant = match api.tenant(namespace, &kb.spec.tenant).await {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Cleanup::Retained),
        Err(e) => return Err(KnowledgeError::kube("the tenant", e)),
    };
    if tenant.spec.deletion_policy != DeletionPolicy::Delete {
        return Ok(Cleanup::Retained);
    }
    // A Pinecone key goes only to an allowed control plane: the index behind another
    // one is left as it is (BackendRetained), its key never sent.
    if let Err(e) = target::check_endpoints(kb, engine.endpoints()) {
        tracing::warn!(
            namespace,
            knowledge_base = name,
            error = %e,
            "not dropping the index: its host is not allowed"
        );
        return Ok(Cleanup::Retained);
    }
    let location = match target::location(kb, &tenant) {
        Ok(l) => l,
        // Never indexed (no database yet): nothing to remove.
        Err(Blocked::Waiting { .. }) => return Ok(Cleanup::Removed),
        Err(Blocked::Failed(e)) => return Err(e.into()),
    };
    let tenant_name = kb.spec.tenant.as_str();
    match location {
        Location::Pgvector { url, trust, schema } => {
            // Without its Secret the tenant's database is being torn down with it.
            let Some(value) = secret_value(api, namespace, &url, &trust, tenant_name).await? else {
                return Ok(Cleanup::Retained);
            };
            check_provisioned_url(engine, &trust, &url, schema.as_deref(), &value, tenant_name)?;
            let url = value;
            engine
                .drop_pgvector(&url, schema.as_deref(), name)
                .await
                .map_err(|source| KnowledgeError::Store {
                    backend: "pgvector",
                    source,
                })?;
        }
        Location::Pinecone {
            index,
            namespace: pc_namespace,
            cloud,
            region,
            api_url,
            api_key,
        } => {
            let field = "backend.pinecone.apiKey";
            let Some(key) =
                api_key_value(api, engine, namespace, field, &api_key, tenant_name).await?
            else {
                return Err(KnowledgeError::PineconeKeyGone);
            };
            engine
                .drop_pinecone(
                    pinecone_config(key, &index, &cloud, &region, &api_url),
                    &pc_namespace,
                )
                .await
                .map_err(|source| KnowledgeError::Store {
                    backend: "Pinecone",
                    source,
                })?;
        }
    }
    Ok(Cleanup::Removed)
}
