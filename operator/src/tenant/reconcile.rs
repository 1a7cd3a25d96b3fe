//! The VoiceTenant reconcile: validate → dereference (database, knowledge bases, Secret
//! versions; `dereference.rs`) → build (pure) → apply and prune → update status; the
//! finalizer's cleanup is in `cleanup.rs`.
//!
//! Every write is conditional: children are applied only when their digest changed
//! ([`super::apply`]), the status only when it differs from the stored one, the
//! database is ensured once per tenant and Secret version per process. An idle
//! reconcile (the periodic requeue, a Deployment status echo) therefore sends nothing.
//!
//! # Failures
//!
//! A failed reconcile writes `Degraded=True` with the error's category as reason (once:
//! an identical failure on retry computes an identical status, which is not written),
//! emits a `ReconcileFailed` Warning event when the failure is new, counts
//! `switchboard_operator_reconcile_failures_total{category}`, and is retried after a
//! per-tenant exponential backoff (`retry_min` doubling to `retry_max`, reset by a
//! success). An invalid spec changes no child.
//!
//! # Deletion
//!
//! Tenants whose database the operator manages (an admin URL is configured and the
//! tenant has no `spec.database.url`) carry the finalizer [`crate::FINALIZER`]. On deletion no
//! child is re-applied (owner references let the garbage collector remove them), and:
//!
//! - `deletionPolicy: Retain` (default): role, schema and data stay; a `DatabaseRetained`
//!   event names them;
//! - `deletionPolicy: Delete`: schema and role are dropped (`DatabaseDropped`); one that
//!   is already gone, or a database that no longer exists, counts as dropped;
//! - the database unreachable: the drop is retried with the usual backoff until
//!   `cleanup_timeout` (`--cleanup-timeout-seconds`, default 10 min) has passed since
//!   `deletionTimestamp`; then a `DatabaseLeft` Warning event names the schema and role
//!   left on the server, and the finalizer is removed so the tenant (and its namespace)
//!   can go. A DBA drops them by hand (`DROP SCHEMA … CASCADE; DROP ROLE …`).

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use switchboard_crds::{DatabaseStatus, VoiceTenant, VoiceTenantStatus};

use super::apply::{apply, prune};
use super::build::{BuildError, Children, build_children, webhook_url};
use super::cleanup::cleanup;
use super::decide::should_write_status;
use super::dereference::dereference;
use super::error::TenantError;
use super::inputs::BuildInputs;
use super::reconciler::TenantReconciler;
use super::status::{Observed, Rollout, tenant_status};
use crate::FINALIZER;
use crate::backoff::retry_delay;
use crate::conditions::{DEGRADED, Failure};
use crate::labels::{MANAGER, child_name};
use crate::metrics::TENANT_CONTROLLER;

/// Reconciles one tenant (the controller's entry point): metrics around
/// [`reconcile_tenant`].
pub(crate) fn reconcile(
    vt: Arc<VoiceTenant>,
    ctx: Arc<TenantReconciler>,
) -> BoxFuture<'static, Result<Action, TenantError>> {
    Box::pin(reconcile_measured(vt, ctx))
}

async fn reconcile_measured(
    vt: Arc<VoiceTenant>,
    ctx: Arc<TenantReconciler>,
) -> Result<Action, TenantError> {
    let started = Instant::now();
    let metrics = &ctx.metrics;
    metrics
        .reconciliations
        .with_label_values(&[TENANT_CONTROLLER])
        .inc();
    // Decisions compare with the caches; before they listed, everything looks missing.
    ctx.stores.ready().await;
    let tenant = ObjectRef::from_obj(&*vt);
    let result = reconcile_tenant(vt, ctx.clone()).await;
    metrics
        .duration
        .with_label_values(&[TENANT_CONTROLLER])
        .observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => ctx.failures.succeeded(&tenant),
        Err(e) => {
            metrics
                .failures
                .with_label_values(&[TENANT_CONTROLLER, e.category()])
                .inc();
        }
    }
    result
}

/// Retry policy: exponential per tenant, reset by a success.
pub(crate) fn error_policy(
    vt: Arc<VoiceTenant>,
    err: &TenantError,
    ctx: Arc<TenantReconciler>,
) -> Action {
    let failures = ctx.failures.failed(ObjectRef::from_obj(&*vt));
    let delay = retry_delay(failures, ctx.config.retry_min, ctx.config.retry_max);
    tracing::warn!(
        tenant = %vt.name_any(),
        namespace = vt.namespace().unwrap_or_default(),
        category = err.category(),
        error = %err,
        failures,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn reconcile_tenant(
    vt: Arc<VoiceTenant>,
    ctx: Arc<TenantReconciler>,
) -> Result<Action, TenantError> {
    let namespace = vt.namespace().unwrap_or_default();
    let deleting = vt.meta().deletion_timestamp.is_some();
    let has_finalizer = vt.finalizers().iter().any(|f| f == FINALIZER);
    if !(manages_database(&vt, &ctx) || has_finalizer) {
        if deleting {
            // Owner references delete the children; recreating them now would fight
            // the garbage collector and block foreground deletion.
            forget(&vt, &ctx);
            return Ok(Action::await_change());
        }
        return apply_tenant(vt, &ctx).await;
    }
    let api: Api<VoiceTenant> = ctx.api(&namespace);
    if !has_finalizer && !deleting {
        ctx.count_write("VoiceTenant");
    }
    let inner = ctx.clone();
    // Boxed: the Send check of the nested futures then happens here, with concrete
    // lifetimes (rustc cannot prove it through the generic finalizer otherwise).
    let handle = move |event| -> BoxFuture<'static, Result<Action, TenantError>> {
        match event {
            FinalizerEvent::Apply(vt) => Box::pin(async move { apply_tenant(vt, &inner).await }),
            FinalizerEvent::Cleanup(vt) => Box::pin(async move { cleanup(vt, &inner).await }),
        }
    };
    let result = finalizer(&api, FINALIZER, vt.clone(), handle)
        .await
        .map_err(TenantError::from_finalizer);
    if has_finalizer && deleting && result.is_ok() {
        ctx.count_write("VoiceTenant");
        forget(&vt, &ctx);
    }
    result
}

fn forget(vt: &VoiceTenant, ctx: &TenantReconciler) {
    let namespace = vt.namespace().unwrap_or_default();
    ctx.forget_tenant(&namespace, &child_name(&vt.name_any()), vt.uid().as_deref());
}

/// Whether the operator provisions this tenant's database: it has an admin connection
/// and the tenant brings no database of its own.
pub(super) fn manages_database(vt: &VoiceTenant, ctx: &TenantReconciler) -> bool {
    ctx.provisioner.is_some()
        && vt
            .spec
            .database
            .as_ref()
            .and_then(|d| d.url.as_ref())
            .is_none()
}

/// `Degraded` reason (and Event reason) of a tenant whose agent lists a knowledge base
/// that does not exist. `Ready` is not affected: the agent works without it.
pub const KNOWLEDGE_BASE_NOT_FOUND: &str = "KnowledgeBaseNotFound";

/// What a successful pass found.
struct Converged {
    rollout: Option<Rollout>,
    webhook_url: String,
    database: Option<DatabaseStatus>,
    /// Knowledge bases the agent lists that do not exist.
    missing_knowledge_bases: Vec<String>,
}

/// Converges the children, then writes the status (also after a failure: `Degraded`).
async fn apply_tenant(vt: Arc<VoiceTenant>, ctx: &TenantReconciler) -> Result<Action, TenantError> {
    let outcome = converge(&vt, ctx).await;
    let (observed, failure) = match &outcome {
        Ok(c) => {
            // The agent works without its knowledge: Ready stays as the rollout says,
            // Degraded tells what is missing (and the Event below names it).
            let missing = (!c.missing_knowledge_bases.is_empty()).then(|| {
                Failure::new(
                    KNOWLEDGE_BASE_NOT_FOUND,
                    format!(
                        "spec.agent.knowledgeBases lists {} which do(es) not exist in this namespace for this tenant; the agent answers without it",
                        c.missing_knowledge_bases.join(", ")
                    ),
                )
            });
            (
                Observed {
                    generation: vt.meta().generation,
                    rollout: c.rollout,
                    failure: missing.clone(),
                    webhook_url: Some(c.webhook_url.clone()),
                    database: c.database.clone(),
                },
                missing,
            )
        }
        Err(e) => {
            let failure = Failure::new(e.category(), condition_message(e));
            (
                Observed {
                    generation: vt.meta().generation,
                    rollout: live_rollout(&vt, ctx),
                    failure: Some(failure.clone()),
                    webhook_url: None,
                    database: None,
                },
                Some(failure),
            )
        }
    };
    let now = Time(jiff::Timestamp::now());
    // Our own last write, if the cached tenant does not show it yet: comparing with the
    // older copy would write again (and restart lastTransitionTime).
    let newer = ctx.newer_status(&vt);
    let previous = newer.as_ref().or(vt.status.as_ref());
    let next = tenant_status(previous, &observed, &now);
    if should_write_status(previous, &next) {
        let written = write_status(&vt, &next, ctx).await;
        let news = failure
            .as_ref()
            .is_some_and(|f| degraded_changed(previous, f));
        if news && let Some(failure) = &failure {
            let reason = if failure.reason == KNOWLEDGE_BASE_NOT_FOUND {
                KNOWLEDGE_BASE_NOT_FOUND
            } else {
                "ReconcileFailed"
            };
            ctx.event(
                &vt,
                EventType::Warning,
                reason,
                format!("{}: {}", failure.reason, failure.message),
            )
            .await;
        }
        // A failed reconcile reports its own error, not the status write's.
        if outcome.is_ok() {
            written?;
        } else if let Err(e) = written {
            tracing::warn!(error = %e, "writing the Degraded status failed");
        }
    }
    outcome.map(|_| Action::requeue(ctx.config.requeue_interval))
}

/// The `Degraded` message of a failure. An unreachable database fails each retry with
/// whatever the network said this time (refused, reset, closed mid-handshake); the
/// condition keeps one message so retries do not rewrite the status, and the details go
/// to the logs.
fn condition_message(e: &TenantError) -> String {
    match e {
        TenantError::Database(db) if db.is_transient() => {
            "the database is unreachable; retrying with backoff (details in the operator's logs)"
                .to_string()
        }
        other => other.to_string(),
    }
}

/// Whether `failure` is news: the stored `Degraded` condition says something else.
fn degraded_changed(stored: Option<&VoiceTenantStatus>, failure: &Failure) -> bool {
    let previous = stored.and_then(|s| s.conditions.iter().find(|c| c.type_ == DEGRADED));
    !previous.is_some_and(|c| {
        c.status == "True" && c.reason == failure.reason && c.message == failure.message
    })
}

async fn write_status(
    vt: &VoiceTenant,
    status: &VoiceTenantStatus,
    ctx: &TenantReconciler,
) -> Result<(), TenantError> {
    let namespace = vt.namespace().unwrap_or_default();
    let name = vt.name_any();
    let api: Api<VoiceTenant> = ctx.api(&namespace);
    // apiVersion and kind in the body: an apply without them is refused (kube#1086).
    let body = serde_json::json!({
        "apiVersion": switchboard_crds::API_VERSION,
        "kind": "VoiceTenant",
        "status": status,
    });
    ctx.count_write("VoiceTenant/status");
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| TenantError::kube(format!("update status of {namespace}/{name}"), e))
    .map(|written| {
        if let Some(uid) = vt.metadata.uid.as_deref() {
            ctx.wrote_status(
                uid,
                written.metadata.resource_version.as_deref(),
                status.clone(),
            );
        }
    })
}

fn live_rollout(vt: &VoiceTenant, ctx: &TenantReconciler) -> Option<Rollout> {
    let namespace = vt.namespace().unwrap_or_default();
    ctx.stores
        .deployments
        .get(&ObjectRef::new(&child_name(&vt.name_any())).within(&namespace))
        .map(|d| Rollout::of(&d))
}
/// validate → dereference → build → apply; what the status reports on success.
async fn converge(vt: &VoiceTenant, ctx: &TenantReconciler) -> Result<Converged, TenantError> {
    // Refuse before anything is written.
    vt.validate().map_err(TenantError::InvalidSpec)?;
    ctx.config.references.admit(&vt.spec)?;
    let (inputs, database) = dereference(vt, ctx).await?;
    let (children, webhook_url) = build(vt, &inputs)?;
    let rollout = apply_children(vt, ctx, children).await?;
    Ok(Converged {
        rollout,
        webhook_url,
        database,
        missing_knowledge_bases: inputs.missing_knowledge_bases,
    })
}

/// The pure step: every child and the webhook URL from the tenant and its inputs.
fn build(vt: &VoiceTenant, inputs: &BuildInputs) -> Result<(Children, String), BuildError> {
    Ok((build_children(vt, inputs)?, webhook_url(vt, inputs)?))
}

/// Applies every child whose digest changed and prunes the optional ones the tenant no
/// longer wants; returns the gateway's rollout as the apply (or the cache) shows it.
async fn apply_children(
    vt: &VoiceTenant,
    ctx: &TenantReconciler,
    children: Children,
) -> Result<Option<Rollout>, TenantError> {
    let namespace = vt.namespace().unwrap_or_default();
    let uid = vt.uid().unwrap_or_default();
    let child = child_name(&vt.name_any());
    let (_, _, deployment, _, _) = tokio::try_join!(
        apply(ctx, children.service_account),
        apply(ctx, children.config_map),
        apply(ctx, children.deployment),
        apply(ctx, children.service),
        apply(ctx, children.pdb),
    )?;
    match children.hpa {
        Some(hpa) => drop(apply(ctx, hpa).await?),
        None => drop(prune::<HorizontalPodAutoscaler>(ctx, &namespace, &child, &uid).await?),
    }
    match children.ingress {
        Some(ingress) => drop(apply(ctx, ingress).await?),
        None => drop(prune::<Ingress>(ctx, &namespace, &child, &uid).await?),
    }
    match children.network_policy {
        Some(policy) => drop(apply(ctx, policy).await?),
        None => drop(prune::<NetworkPolicy>(ctx, &namespace, &child, &uid).await?),
    }
    match children.recordings_claim {
        Some(claim) => drop(apply(ctx, claim).await?),
        None => drop(
            prune::<PersistentVolumeClaim>(
                ctx,
                &namespace,
                &crate::tenant::build::recordings::claim_name(&child),
                &uid,
            )
            .await?,
        ),
    }
    if !deployment.existed && deployment.response.is_some() {
        ctx.event(
            vt,
            EventType::Normal,
            "Created",
            format!("created the gateway {child} and its ConfigMap, Service, ServiceAccount and PodDisruptionBudget"),
        )
        .await;
    }
    Ok(match &deployment.response {
        Some(d) => Some(Rollout::of(d)),
        None => live_rollout(vt, ctx),
    })
}
