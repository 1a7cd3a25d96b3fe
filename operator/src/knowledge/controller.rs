//! Wiring of the KnowledgeBase controller onto the kube runtime: watches, finalizer,
//! status writes and backoff.
//!
//! Triggers: the knowledge base itself; its tenant (the tenant's database appearing in
//! its status unblocks a pgvector knowledge base); ConfigMaps a knowledge base reads
//! (mapped to the knowledge bases naming them through the controller's reflector store,
//! so an edit re-ingests). Status is written only when it differs from the stored one.
//! S3 cannot be watched: knowledge bases with an S3 source are requeued every
//! [`S3Settings::resync`] instead of `RESYNC` (30 minutes).
//!
//! Events: `Synced` (Normal, with the counts) when a sync changed the index, `SyncFailed`
//! (Warning, reason = the Degraded reason) when a failure is new (not on every retry),
//! `BackendDropped`/`BackendRetained` on deletion. An idle reconcile publishes nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use switchboard_crds::{KnowledgeBase, VoiceTenant};

use super::api::{KnowledgeApi, KubeKnowledgeApi};
use super::engine::{Engine, EngineConfig, SecretsManagerSettings};
use super::error::KnowledgeError;
use super::reconcile::{Cleanup, Decision, SyncDetail, cleanup, sync_detailed};
use super::s3::{S3Settings, S3Sources};
use super::sources::{config_map_names, s3_sources};
use super::status::{Outcome, kb_status};
use crate::FINALIZER;
use crate::backoff::{Failures, retry_delay};
use crate::conditions::{DEGRADED, Failure};
use crate::events::Events;
use crate::labels::MANAGER;
use crate::metrics::{KNOWLEDGE_CONTROLLER, Metrics};

/// How often an in-sync knowledge base is looked at again without any trigger (reads
/// only: an unchanged one is skipped).
const RESYNC: Duration = Duration::from_secs(30 * 60);
/// Fallback re-check while waiting for the tenant's database (its status change
/// triggers a reconcile anyway).
const WAITING_RECHECK: Duration = Duration::from_secs(30);
/// First retry after a failure; doubles per consecutive failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Settings of the KnowledgeBase controller.
#[derive(Clone, Debug, Default)]
pub struct KnowledgeControllerConfig {
    /// Watch only this namespace; `None`: every namespace.
    pub namespace: Option<String>,
    /// Embedders and stores.
    pub engine: EngineConfig,
    /// First retry delay after a failure (default 2 s; doubles up to 5 minutes).
    pub first_backoff: Option<Duration>,
    /// The operator's metrics (controller label `knowledgebase`); `None` in tests that
    /// do not look at them.
    pub metrics: Option<Arc<Metrics>>,
    /// How S3 sources are reached, and how often they are re-listed.
    pub s3: S3Settings,
    /// This replica's name in the Events it publishes (default: the field manager).
    pub identity: Option<String>,
    /// TLS of the pgvector connections (the command line: [`crate::pg_tls::PgTls::cluster`]).
    pub pg_tls: crate::pg_tls::PgTls,
    /// The server the operator provisions tenant databases on (from its admin URL);
    /// `None`: it provisions none, and no `status.database` is trusted.
    pub database_target: Option<crate::database::AdminTarget>,
    /// API keys in AWS Secrets Manager: grants per namespace and the AWS configuration.
    pub secrets_manager: SecretsManagerSettings,
    /// The hosts an embedder's `baseUrl` and Pinecone's `apiUrl` may name (default:
    /// OpenAI's and Pinecone's, with TLS).
    pub endpoints: crate::endpoints::EndpointPolicy,
}

/// What every reconcile of the KnowledgeBase controller shares: the client, the cluster
/// reads, the engine, Events, metrics and the retry memory.
struct KnowledgeReconciler {
    client: Client,
    api: Arc<dyn KnowledgeApi>,
    engine: Engine,
    first_backoff: Duration,
    metrics: Option<Arc<Metrics>>,
    events: Events,
    /// Requeue period of knowledge bases with an S3 source.
    s3_resync: Duration,
    /// Consecutive failures per knowledge base (namespace/name), for backoff.
    failures: Failures<String>,
}

impl KnowledgeReconciler {
    /// Records the outcome of a reconcile of `key`: a failure returns the delay before
    /// its retry, a success resets the backoff (and returns zero).
    fn backoff(&self, key: &str, failed: bool) -> Duration {
        if !failed {
            self.failures.succeeded(&key.to_string());
            return Duration::ZERO;
        }
        let failures = self.failures.failed(key.to_string());
        retry_delay(failures, self.first_backoff, MAX_BACKOFF)
    }
}

fn key(kb: &KnowledgeBase) -> String {
    format!("{}/{}", kb.namespace().unwrap_or_default(), kb.name_any())
}

/// The periodic re-check of a synced knowledge base: S3 cannot be watched.
fn resync(kb: &KnowledgeBase, ctx: &KnowledgeReconciler) -> Duration {
    if s3_sources(&kb.spec).is_empty() {
        RESYNC
    } else {
        ctx.s3_resync
    }
}

async fn apply(
    kb: Arc<KnowledgeBase>,
    ctx: &KnowledgeReconciler,
) -> Result<Action, KnowledgeError> {
    let started = Instant::now();
    let (decision, detail) = sync_detailed(&kb, ctx.api.as_ref(), &ctx.engine).await;
    let outcome = match decision {
        Decision::UpToDate => {
            ctx.backoff(&key(&kb), false);
            return Ok(Action::requeue(resync(&kb, ctx)));
        }
        Decision::Report(outcome) => outcome,
    };
    let now = Time(jiff::Timestamp::now());
    let status = kb_status(kb.status.as_ref(), kb.metadata.generation, &outcome, &now);
    if kb.status.as_ref() != Some(&status) {
        let api: Api<KnowledgeBase> =
            Api::namespaced(ctx.client.clone(), &kb.namespace().unwrap_or_default());
        let patch = json!({ "status": status });
        api.patch_status(
            &kb.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "voice.switchboard.dev/v1alpha1",
                "kind": "KnowledgeBase",
                "status": patch["status"],
            })),
        )
        .await
        .map_err(KnowledgeError::Status)?;
        if let Some(m) = &ctx.metrics {
            m.write(KNOWLEDGE_CONTROLLER, "KnowledgeBase");
        }
    }
    let action = match &outcome {
        Outcome::Synced { content_hash, .. } => {
            ctx.backoff(&key(&kb), false);
            let previous = kb.status.as_ref().and_then(|s| s.content_hash.as_deref());
            if let Some(detail) = &detail
                && changed(previous, content_hash, detail)
            {
                ctx.events
                    .publish(
                        kb.as_ref(),
                        EventType::Normal,
                        "Synced",
                        synced_note(detail),
                    )
                    .await;
            }
            Action::requeue(resync(&kb, ctx))
        }
        Outcome::Waiting { .. } => {
            ctx.backoff(&key(&kb), false);
            Action::requeue(WAITING_RECHECK)
        }
        Outcome::Failed(f) => {
            if let Some(m) = &ctx.metrics {
                m.failures
                    .with_label_values(&[KNOWLEDGE_CONTROLLER, f.reason.as_str()])
                    .inc();
            }
            if new_failure(&kb, f) {
                ctx.events
                    .publish(
                        kb.as_ref(),
                        EventType::Warning,
                        "SyncFailed",
                        format!("{}: {}", f.reason, f.message),
                    )
                    .await;
            }
            let delay = ctx.backoff(&key(&kb), true);
            tracing::warn!(
                kb = key(&kb),
                reason = f.reason,
                message = f.message,
                retry_in_s = delay.as_secs_f64(),
                "knowledge base reconcile failed"
            );
            Action::requeue(delay)
        }
    };
    tracing::debug!(
        kb = key(&kb),
        ms = started.elapsed().as_millis() as u64,
        "reconciled"
    );
    Ok(action)
}

/// Whether a sync changed the index (or what it reports): a first sync, new content, or
/// chunks written or deleted. A re-sync of the same content (a spec change that touches
/// no chunk) is no news.
fn changed(previous_hash: Option<&str>, hash: &str, detail: &SyncDetail) -> bool {
    previous_hash != Some(hash) || detail.report.embedded > 0 || detail.report.deleted > 0
}

/// Whether `failure` is news: the stored status does not already report it as Degraded
/// (retries of the same failure publish nothing).
fn new_failure(kb: &KnowledgeBase, failure: &Failure) -> bool {
    !kb.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == DEGRADED
                && c.status == "True"
                && c.reason == failure.reason
                && c.observed_generation == kb.metadata.generation
        })
    })
}

/// The note of a `Synced` event: counts, and the objects left out.
pub fn synced_note(detail: &SyncDetail) -> String {
    let r = &detail.report;
    let mut note = format!(
        "{} documents in {} chunks: {} embedded, {} deleted, {} unchanged",
        r.documents, r.chunks, r.embedded, r.deleted, r.unchanged
    );
    if !detail.skipped.is_empty() {
        // An Event note holds at most 1 kB: name the first few.
        const NAMED: usize = 5;
        let named: Vec<String> = detail
            .skipped
            .iter()
            .take(NAMED)
            .map(|s| format!("{} ({})", s.id, s.reason.as_str()))
            .collect();
        let more = detail.skipped.len().saturating_sub(NAMED);
        note.push_str(&format!(
            "; {} objects skipped: {}{}",
            detail.skipped.len(),
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    note
}

async fn remove(
    kb: Arc<KnowledgeBase>,
    ctx: &KnowledgeReconciler,
) -> Result<Action, KnowledgeError> {
    match cleanup(&kb, ctx.api.as_ref(), &ctx.engine).await {
        Ok(done) => {
            tracing::info!(kb = key(&kb), ?done, "knowledge base cleaned up");
            let (reason, note) = match done {
                Cleanup::Removed => (
                    "BackendDropped",
                    "the index was removed (the tenant's deletionPolicy is Delete)",
                ),
                Cleanup::Retained => (
                    "BackendRetained",
                    "the index was kept (the tenant's deletionPolicy is Retain, or the tenant is gone)",
                ),
            };
            ctx.events
                .publish(kb.as_ref(), EventType::Normal, reason, note.to_string())
                .await;
            ctx.backoff(&key(&kb), false);
            Ok(Action::await_change())
        }
        Err(e) => Err(e),
    }
}

async fn reconcile(
    kb: Arc<KnowledgeBase>,
    ctx: Arc<KnowledgeReconciler>,
) -> Result<Action, KnowledgeError> {
    let started = Instant::now();
    let result = reconcile_inner(kb, &ctx).await;
    if let Some(m) = &ctx.metrics {
        m.reconciliations
            .with_label_values(&[KNOWLEDGE_CONTROLLER])
            .inc();
        m.duration
            .with_label_values(&[KNOWLEDGE_CONTROLLER])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            m.failures
                .with_label_values(&[KNOWLEDGE_CONTROLLER, e.category()])
                .inc();
        }
    }
    result
}

async fn reconcile_inner(
    kb: Arc<KnowledgeBase>,
    ctx: &Arc<KnowledgeReconciler>,
) -> Result<Action, KnowledgeError> {
    let api: Api<KnowledgeBase> =
        Api::namespaced(ctx.client.clone(), &kb.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, kb, |event| async {
        match event {
            FinalizerEvent::Apply(kb) => apply(kb, ctx).await,
            FinalizerEvent::Cleanup(kb) => remove(kb, ctx).await,
        }
    })
    .await
    .map_err(KnowledgeError::from_finalizer)
}

fn error_policy(
    kb: Arc<KnowledgeBase>,
    error: &KnowledgeError,
    ctx: Arc<KnowledgeReconciler>,
) -> Action {
    let delay = ctx.backoff(&key(&kb), true);
    tracing::warn!(
        kb = key(&kb),
        category = error.category(),
        %error,
        retry_in_s = delay.as_secs_f64(),
        "knowledge base reconcile error"
    );
    Action::requeue(delay)
}

/// Runs the KnowledgeBase controller until `shutdown` completes.
pub async fn run(
    client: Client,
    config: KnowledgeControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (kbs, tenants, config_maps): (Api<KnowledgeBase>, Api<VoiceTenant>, Api<ConfigMap>) =
        match &config.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
    let events = Events::new(
        client.clone(),
        config
            .identity
            .clone()
            .unwrap_or_else(|| MANAGER.to_string()),
        KNOWLEDGE_CONTROLLER,
        config.metrics.clone(),
    );
    let ctx = Arc::new(KnowledgeReconciler {
        api: Arc::new(KubeKnowledgeApi::new(client.clone())),
        client,
        engine: Engine::new(config.engine.clone())
            .with_s3(S3Sources::aws(&config.s3))
            .with_pg_tls(config.pg_tls.clone())
            .with_database_target(config.database_target.clone())
            .with_secrets_manager(config.secrets_manager.clone())
            .with_endpoints(config.endpoints.clone()),
        first_backoff: config.first_backoff.unwrap_or(FIRST_BACKOFF),
        metrics: config.metrics.clone(),
        events,
        s3_resync: config.s3.resync,
        failures: Failures::default(),
    });
    let controller = Controller::new(kbs, watcher::Config::default().any_semantic());
    let by_tenant = controller.store();
    let by_config_map = controller.store();
    controller
        .watches(
            tenants,
            watcher::Config::default().any_semantic(),
            move |vt: VoiceTenant| {
                let ns = vt.namespace();
                let name = vt.name_any();
                by_tenant
                    .state()
                    .into_iter()
                    .filter(|kb| kb.namespace() == ns && kb.spec.tenant == name)
                    .map(|kb| ObjectRef::from_obj(kb.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            config_maps,
            watcher::Config::default().any_semantic(),
            move |cm: ConfigMap| {
                let ns = cm.namespace();
                let name = cm.name_any();
                by_config_map
                    .state()
                    .into_iter()
                    .filter(|kb| kb.namespace() == ns && config_map_names(&kb.spec).contains(&name))
                    .map(|kb| ObjectRef::from_obj(kb.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "knowledge base controller event");
            }
        })
        .await;
}
