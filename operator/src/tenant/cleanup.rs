//! The tenant finalizer's cleanup: drop or keep the tenant's role and schema, by its
//! `deletionPolicy`, giving up on an unreachable database after a bound.
//!
//! Only what is provably the tenant's is dropped: [`Provisioner::drop`] checks each
//! object's ownership comment ([`Ownership::judge`]) first. Names in the status that
//! point at another tenant's role or schema drop nothing; a Warning Event
//! `DatabaseOwnershipMismatch` names them, and the finalizer is released.
//!
//! [`Provisioner::drop`]: crate::database::Provisioner::drop

use std::sync::Arc;

use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use switchboard_crds::{DeletionPolicy, VoiceTenant};

use super::error::TenantError;
use super::reconciler::TenantReconciler;
use crate::database::{DatabaseError, DropOutcome, Ownership, TenantDatabase};

/// The finalizer's cleanup: drop or keep the tenant's role and schema.
pub(super) async fn cleanup(
    vt: Arc<VoiceTenant>,
    ctx: &TenantReconciler,
) -> Result<Action, TenantError> {
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
            let owner = Ownership::of(&vt)?;
            match provisioner.drop(&db, &owner).await {
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
                // Names in the status that are not provably this tenant's (someone wrote
                // another tenant's there): drop nothing, say why, let the tenant go. A
                // retry would find the same comment.
                Err(e @ DatabaseError::OwnershipMismatch { .. }) => {
                    ctx.event(
                        &vt,
                        EventType::Warning,
                        e.category(),
                        format!(
                            "dropped nothing: schema {} and role {} (from status.database) are not this tenant's: {e}",
                            db.schema, db.role
                        ),
                    )
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
