//! The VoiceTenant reconcile: dereference → validate → database → build → apply →
//! prune → update status, and the finalizer's cleanup.
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use switchboard_crds::{DatabaseStatus, DeletionPolicy, VoiceTenant, VoiceTenantStatus};

use super::apply::{apply, prune};
use super::decide::should_write_status;
use super::error::TenantError;
use super::reconciler::TenantReconciler;
use super::status::{Observed, Rollout, tenant_status};
use crate::FINALIZER;
use crate::backoff::retry_delay;
use crate::conditions::{DEGRADED, Failure};
use crate::labels::{MANAGER, child_name};
use crate::metrics::TENANT_CONTROLLER;
use crate::tenant::build::{build_children, referenced_secrets, webhook_url};
use crate::tenant::database::{
    DropOutcome, Provisioner, TenantDatabase, build_database_secret, is_owned_by, password_of,
    url_key_selector,
};
use crate::tenant::inputs::BuildInputs;

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
fn manages_database(vt: &VoiceTenant, ctx: &TenantReconciler) -> bool {
    ctx.provisioner.is_some()
        && vt
            .spec
            .database
            .as_ref()
            .and_then(|d| d.url.as_ref())
            .is_none()
}

/// What a successful pass found.
struct Converged {
    rollout: Option<Rollout>,
    webhook_url: String,
    database: Option<DatabaseStatus>,
}

/// Converges the children, then writes the status (also after a failure: `Degraded`).
async fn apply_tenant(vt: Arc<VoiceTenant>, ctx: &TenantReconciler) -> Result<Action, TenantError> {
    let outcome = converge(&vt, ctx).await;
    let (observed, failure) = match &outcome {
        Ok(c) => (
            Observed {
                generation: vt.meta().generation,
                rollout: c.rollout,
                failure: None,
                webhook_url: Some(c.webhook_url.clone()),
                database: c.database.clone(),
            },
            None,
        ),
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
            ctx.event(
                &vt,
                EventType::Warning,
                "ReconcileFailed",
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

async fn converge(vt: &VoiceTenant, ctx: &TenantReconciler) -> Result<Converged, TenantError> {
    // validate: refuse before anything is written.
    vt.validate().map_err(TenantError::InvalidSpec)?;
    let namespace = vt.namespace().unwrap_or_default();
    let name = vt.name_any();
    let uid = vt.uid().unwrap_or_default();
    let mut inputs = ctx.config.base_inputs(&name, &namespace);

    // database: the role, schema and credentials Secret, when the operator manages them.
    let mut database = None;
    let provisioner = if manages_database(vt, ctx) {
        ctx.provisioner.as_ref()
    } else {
        None
    };
    if let Some(provisioner) = provisioner {
        let (db, secret_version) = provision(vt, ctx, provisioner).await?;
        inputs.database_url_secret = Some(url_key_selector(&db));
        inputs
            .secret_versions
            .insert(db.secret_name.clone(), secret_version);
        database = Some(db.to_status());
    }

    // dereference: the versions of the Secrets the gateway reads.
    dereference(vt, &namespace, ctx, &mut inputs).await?;

    // build
    let children = build_children(vt, &inputs)?;
    let webhook_url = webhook_url(vt, &inputs)?;

    // apply
    let (_, _, deployment, _, _) = tokio::try_join!(
        apply(ctx, children.service_account),
        apply(ctx, children.config_map),
        apply(ctx, children.deployment),
        apply(ctx, children.service),
        apply(ctx, children.pdb),
    )?;
    let child = child_name(&name);
    match children.hpa {
        Some(hpa) => drop(apply(ctx, hpa).await?),
        None => drop(prune::<HorizontalPodAutoscaler>(ctx, &namespace, &child, &uid).await?),
    }
    match children.ingress {
        Some(ingress) => drop(apply(ctx, ingress).await?),
        None => drop(prune::<Ingress>(ctx, &namespace, &child, &uid).await?),
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
    let rollout = match &deployment.response {
        Some(d) => Some(Rollout::of(d)),
        None => live_rollout(vt, ctx),
    };
    Ok(Converged {
        rollout,
        webhook_url,
        database,
    })
}

/// Puts the resourceVersion of every Secret the gateway reads into `inputs`; a Secret
/// that does not exist is left out (the build then fails with `SecretNotObserved`).
async fn dereference(
    vt: &VoiceTenant,
    namespace: &str,
    ctx: &TenantReconciler,
    inputs: &mut BuildInputs,
) -> Result<(), TenantError> {
    // The knowledge bases the agent lists (of this tenant, in its namespace): rendered
    // into the ConfigMap for the gateway's --knowledge, their Secrets mounted.
    let kbs: Api<switchboard_crds::KnowledgeBase> = ctx.api(namespace);
    for kb_name in &vt.spec.agent.knowledge_bases {
        let kb = kbs.get_opt(kb_name).await.map_err(|e| {
            TenantError::kube(format!("read KnowledgeBase {namespace}/{kb_name}"), e)
        })?;
        if let Some(kb) = kb.filter(|kb| kb.spec.tenant == vt.name_any()) {
            inputs
                .knowledge_bases
                .push(crate::tenant::build::KnowledgeMount::of(&kb)?);
        }
    }
    let names = referenced_secrets(vt, inputs)?;
    let mut versions = BTreeMap::new();
    for name in names {
        if inputs.secret_versions.contains_key(&name) {
            continue;
        }
        let cached = ctx
            .stores
            .secrets
            .get(&ObjectRef::new(&name).within(namespace))
            .and_then(|s| s.metadata.resource_version.clone());
        let version = match cached {
            Some(v) => Some(v),
            // Not in the cache: created a moment ago, or really missing.
            None => {
                let api: Api<Secret> = ctx.api(namespace);
                api.get_metadata_opt(&name)
                    .await
                    .map_err(|e| TenantError::kube(format!("read Secret {namespace}/{name}"), e))?
                    .and_then(|s| s.metadata.resource_version)
            }
        };
        if let Some(v) = version {
            versions.insert(name, v);
        }
    }
    inputs.secret_versions.extend(versions);
    Ok(())
}

/// Ensures the tenant's database Secret (created once, never rewritten) and its role
/// and schema; returns the names and the Secret's resourceVersion.
async fn provision(
    vt: &VoiceTenant,
    ctx: &TenantReconciler,
    provisioner: &Provisioner,
) -> Result<(TenantDatabase, String), TenantError> {
    let namespace = vt.namespace().unwrap_or_default();
    let uid = vt.uid().unwrap_or_default();
    let db = TenantDatabase::resolve(vt)?;

    // The cache says whether the Secret exists; its data (the password) is only read
    // when the role has to be ensured.
    let cached = ctx
        .stores
        .secrets
        .get(&ObjectRef::new(&db.secret_name).within(&namespace));
    if let Some(meta) = &cached
        && let Some(version) = &meta.metadata.resource_version
    {
        let key = provision_key(&db, version);
        let owned = meta
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.uid == uid);
        if owned && ctx.provisioned(&uid).as_deref() == Some(key.as_str()) {
            return Ok((db, version.clone()));
        }
    }

    let api: Api<Secret> = ctx.api(&namespace);
    let read = |e| TenantError::kube(format!("read Secret {namespace}/{}", db.secret_name), e);
    let secret = match api.get_opt(&db.secret_name).await.map_err(read)? {
        Some(secret) => secret,
        None => {
            // CNPG #9677 the other way round: never pair an existing role with a fresh
            // password that the role does not have.
            if provisioner.role_exists(&db).await? {
                return Err(TenantError::LostSecret {
                    name: db.secret_name.clone(),
                    role: db.role.clone(),
                });
            }
            let password = crate::tenant::database::generate_password();
            let secret = build_database_secret(vt, &db, &password, provisioner.target())?;
            ctx.count_write("Secret");
            match api.create(&PostParams::default(), &secret).await {
                Ok(created) => created,
                // Created by a concurrent reconcile (or a previous leader) meanwhile.
                Err(kube::Error::Api(s)) if s.is_already_exists() => {
                    api.get(&db.secret_name).await.map_err(read)?
                }
                Err(e) => {
                    return Err(TenantError::kube(
                        format!("create Secret {namespace}/{}", db.secret_name),
                        e,
                    ));
                }
            }
        }
    };
    if !is_owned_by(&secret, vt) {
        return Err(TenantError::ForeignSecret {
            name: db.secret_name.clone(),
        });
    }
    let Some(password) = password_of(&secret) else {
        return Err(TenantError::InvalidSecret {
            name: db.secret_name.clone(),
        });
    };
    let outcome = provisioner.ensure(&db, &password).await?;
    let version = secret.resource_version().unwrap_or_default();
    ctx.set_provisioned(&uid, provision_key(&db, &version));
    let first = vt
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .is_none();
    if first || outcome.role_created || outcome.schema_created {
        ctx.event(
            vt,
            EventType::Normal,
            "DatabaseProvisioned",
            format!(
                "role {} and schema {} ready; credentials in Secret {}",
                db.role, db.schema, db.secret_name
            ),
        )
        .await;
    }
    Ok((db, version))
}

fn provision_key(db: &TenantDatabase, secret_version: &str) -> String {
    format!(
        "{}\n{}\n{}\n{secret_version}",
        db.role, db.schema, db.secret_name
    )
}

/// The finalizer's cleanup: drop or keep the tenant's role and schema.
async fn cleanup(vt: Arc<VoiceTenant>, ctx: &TenantReconciler) -> Result<Action, TenantError> {
    let recorded = vt.status.as_ref().and_then(|s| s.database.clone());
    let Some(provisioner) = &ctx.provisioner else {
        if let Some(db) = recorded
            && vt.spec.deletion_policy == DeletionPolicy::Delete
        {
            ctx.event(
                &vt,
                EventType::Warning,
                "DatabaseLeft",
                format!(
                    "the operator has no database admin URL: role {} and schema {} were not dropped",
                    db.role, db.schema
                ),
            )
            .await;
        }
        return Ok(Action::await_change());
    };
    match vt.spec.deletion_policy {
        DeletionPolicy::Retain => {
            if let Some(db) = recorded {
                ctx.event(
                    &vt,
                    EventType::Normal,
                    "DatabaseRetained",
                    format!(
                        "deletionPolicy Retain: role {} and schema {} are kept",
                        db.role, db.schema
                    ),
                )
                .await;
            }
            Ok(Action::await_change())
        }
        DeletionPolicy::Delete => {
            // Names from status, or derived: a tenant deleted before its status was
            // written may still have had its role created.
            let db = TenantDatabase::resolve(&vt)?;
            match provisioner.drop(&db).await {
                Ok(outcome) => {
                    let note = match outcome {
                        DropOutcome::Dropped { .. } => {
                            format!("dropped schema {} and role {}", db.schema, db.role)
                        }
                        DropOutcome::AlreadyGone => format!(
                            "schema {} and role {} were already gone",
                            db.schema, db.role
                        ),
                        DropOutcome::DatabaseMissing => format!(
                            "the database is gone, and schema {} with it (role {} may remain on the server)",
                            db.schema, db.role
                        ),
                    };
                    ctx.event(&vt, EventType::Normal, "DatabaseDropped", note)
                        .await;
                    Ok(Action::await_change())
                }
                Err(e) if cleanup_expired(&vt, ctx) => {
                    ctx.event(
                        &vt,
                        EventType::Warning,
                        "DatabaseLeft",
                        format!(
                            "gave up dropping the database after {:?}: schema {} and role {} are left on the server ({e})",
                            ctx.config.cleanup_timeout, db.schema, db.role
                        ),
                    )
                    .await;
                    Ok(Action::await_change())
                }
                Err(e) => {
                    if ctx.failures.count(&ObjectRef::from_obj(&*vt)) == 0 {
                        ctx.event(
                            &vt,
                            EventType::Warning,
                            "ReconcileFailed",
                            format!("{}: dropping the database: {e}", e.category()),
                        )
                        .await;
                    }
                    Err(e.into())
                }
            }
        }
    }
}

/// Whether the cleanup has been retried for longer than the configured bound since the
/// tenant was deleted.
fn cleanup_expired(vt: &VoiceTenant, ctx: &TenantReconciler) -> bool {
    let Some(deleted) = &vt.meta().deletion_timestamp else {
        return false;
    };
    let elapsed = jiff::Timestamp::now().duration_since(deleted.0);
    elapsed.unsigned_abs() >= ctx.config.cleanup_timeout && elapsed.is_positive()
}
