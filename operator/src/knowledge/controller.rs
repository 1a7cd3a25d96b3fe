//! Wiring of the KnowledgeBase controller onto the kube runtime: watches, finalizer,
//! status writes and backoff.
//!
//! Triggers: the knowledge base itself; its tenant (the tenant's database appearing in
//! its status unblocks a pgvector knowledge base); ConfigMaps a knowledge base reads
//! (mapped to the knowledge bases naming them through the controller's reflector store,
//! so an edit re-ingests). Status is written only when it differs from the stored one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use switchboard_crds::{KnowledgeBase, VoiceTenant};

use super::FINALIZER;
use super::api::{KnowledgeApi, KubeKnowledgeApi};
use super::engine::{Engine, EngineConfig};
use super::reconcile::{Decision, cleanup, sync};
use super::sources::config_map_names;
use super::status::{Outcome, kb_status};
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
}

/// Why a reconcile could not even report its outcome (retried by the error policy).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the status failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    /// Adding or removing the finalizer failed, or cleanup failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The finalizer's cleanup failed; it stays and is retried.
    #[error("cleanup: {reason}: {message}")]
    Cleanup {
        /// Category.
        reason: String,
        /// For humans.
        message: String,
    },
}

impl Error {
    /// The error's category (metric label, log field).
    pub fn category(&self) -> &str {
        match self {
            Self::Status(_) => "StatusWrite",
            Self::Finalizer(_) => "Finalizer",
            Self::Cleanup { reason, .. } => reason,
        }
    }
}

struct Context {
    client: Client,
    api: Arc<dyn KnowledgeApi>,
    engine: Engine,
    first_backoff: Duration,
    metrics: Option<Arc<Metrics>>,
    /// Consecutive failures per knowledge base (namespace/name), for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    fn backoff(&self, key: &str, failed: bool) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return self.first_backoff;
        };
        if !failed {
            failures.remove(key);
            return Duration::ZERO;
        }
        let n = failures.entry(key.to_string()).or_insert(0);
        let delay = self
            .first_backoff
            .saturating_mul(1u32 << (*n).min(16))
            .min(MAX_BACKOFF);
        *n = n.saturating_add(1);
        delay
    }
}

fn key(kb: &KnowledgeBase) -> String {
    format!("{}/{}", kb.namespace().unwrap_or_default(), kb.name_any())
}

async fn apply(kb: Arc<KnowledgeBase>, ctx: &Context) -> Result<Action, Error> {
    let started = Instant::now();
    let decision = sync(&kb, ctx.api.as_ref(), &ctx.engine).await;
    let outcome = match decision {
        Decision::UpToDate => {
            ctx.backoff(&key(&kb), false);
            return Ok(Action::requeue(RESYNC));
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
        .map_err(Error::Status)?;
        if let Some(m) = &ctx.metrics {
            m.write(KNOWLEDGE_CONTROLLER, "KnowledgeBase");
        }
    }
    let action = match &outcome {
        Outcome::Synced { .. } => {
            ctx.backoff(&key(&kb), false);
            Action::requeue(RESYNC)
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

async fn remove(kb: Arc<KnowledgeBase>, ctx: &Context) -> Result<Action, Error> {
    match cleanup(&kb, ctx.api.as_ref(), &ctx.engine).await {
        Ok(done) => {
            tracing::info!(kb = key(&kb), ?done, "knowledge base cleaned up");
            ctx.backoff(&key(&kb), false);
            Ok(Action::await_change())
        }
        Err(f) => Err(Error::Cleanup {
            reason: f.reason,
            message: f.message,
        }),
    }
}

async fn reconcile(kb: Arc<KnowledgeBase>, ctx: Arc<Context>) -> Result<Action, Error> {
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

async fn reconcile_inner(kb: Arc<KnowledgeBase>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let api: Api<KnowledgeBase> =
        Api::namespaced(ctx.client.clone(), &kb.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, kb, |event| async {
        match event {
            FinalizerEvent::Apply(kb) => apply(kb, ctx).await,
            FinalizerEvent::Cleanup(kb) => remove(kb, ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(kb: Arc<KnowledgeBase>, error: &Error, ctx: Arc<Context>) -> Action {
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
    let ctx = Arc::new(Context {
        api: Arc::new(KubeKnowledgeApi::new(client.clone())),
        client,
        engine: Engine::new(config.engine.clone()),
        first_backoff: config.first_backoff.unwrap_or(FIRST_BACKOFF),
        metrics: config.metrics.clone(),
        failures: Mutex::new(HashMap::new()),
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
