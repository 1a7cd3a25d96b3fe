//! The tenant's status conditions, computed from observed facts.
//!
//! [`conditions`] is a pure function of what the controller observed and of the previous
//! conditions: the same facts give the same conditions, and a condition whose status has
//! not changed keeps its `lastTransitionTime`. So a reconcile with nothing new computes
//! the status already stored, the controller writes nothing, and nothing triggers the
//! next reconcile.
//!
//! | Condition | `True` when |
//! |---|---|
//! | `Ready` | at least one gateway replica is available to take calls |
//! | `Progressing` | the gateway is being created, rolled out or scaled |
//! | `Degraded` | the last reconcile failed, or the rollout exceeded its progress deadline |

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use switchboard_crds::{DatabaseStatus, VoiceTenantStatus};

use super::build::BuildError;
use crate::conditions::{Computed, DEGRADED, Failure, PROGRESSING, READY, merge};

/// The Deployment's reason for a rollout that stopped making progress.
const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

impl From<&BuildError> for Failure {
    fn from(e: &BuildError) -> Self {
        Self::new(e.category(), e.to_string())
    }
}

/// The gateway Deployment's rollout, as observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Replicas wanted (`spec.replicas`, set by the tenant or its autoscaler).
    pub desired: i32,
    /// Pods of the Deployment that are not terminating, of any revision.
    pub replicas: i32,
    /// Pods of the current revision.
    pub updated: i32,
    /// Pods available to take calls.
    pub available: i32,
    /// The Deployment controller has seen the Deployment's latest spec.
    pub current: bool,
    /// The rollout exceeded its progress deadline.
    pub stalled: bool,
}

impl Rollout {
    /// Reads the rollout from a Deployment as the API server returned it.
    pub fn of(deployment: &Deployment) -> Self {
        let desired = deployment.spec.replicas.unwrap_or(1);
        let Some(status) = &deployment.status else {
            return Self {
                desired,
                ..Self::default()
            };
        };
        let current = match (status.observed_generation, deployment.metadata.generation) {
            (Some(observed), Some(generation)) => observed >= generation,
            (None, Some(_)) => false,
            (_, None) => true,
        };
        let stalled = status.conditions.iter().flatten().any(|c| {
            c.type_.as_deref() == Some(PROGRESSING)
                && c.status.as_deref() == Some("False")
                && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
        });
        Self {
            desired,
            replicas: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            current,
            stalled,
        }
    }

    /// Pods are being replaced, added or removed, or are not all available yet.
    pub fn in_progress(&self) -> bool {
        !self.current
            || self.updated < self.desired
            || self.available < self.desired
            || self.replicas > self.updated
    }
}

/// What the controller observed in one reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `metadata.generation` of the tenant that was reconciled.
    pub generation: Option<i64>,
    /// The gateway Deployment's rollout; `None` when it does not exist (yet).
    pub rollout: Option<Rollout>,
    /// Why this reconcile failed, if it did.
    pub failure: Option<Failure>,
    /// The webhook URL Twilio should call, when the tenant's spec gave one.
    pub webhook_url: Option<String>,
    /// The tenant's provisioned role and schema, when the operator manages its database.
    pub database: Option<DatabaseStatus>,
}

/// The tenant's `Ready`, `Progressing` and `Degraded` conditions (in that order), followed
/// by any other conditions of `previous`, untouched.
///
/// A condition keeps its `lastTransitionTime` from `previous` while its status is
/// unchanged (its reason and message may change); otherwise it gets `now`.
pub fn conditions(observed: &Observed, previous: &[Condition], now: &Time) -> Vec<Condition> {
    let ours = [ready(observed), progressing(observed), degraded(observed)];
    merge(ours, previous, observed.generation, now)
}

/// The tenant's status after a reconcile: `observedGeneration`, [`conditions`], replica
/// counts, the webhook URL and the database names.
pub fn tenant_status(
    previous: Option<&VoiceTenantStatus>,
    observed: &Observed,
    now: &Time,
) -> VoiceTenantStatus {
    let previous_conditions = previous.map_or(&[][..], |s| s.conditions.as_slice());
    let rollout = observed.rollout.as_ref();
    VoiceTenantStatus {
        observed_generation: observed.generation,
        conditions: conditions(observed, previous_conditions, now),
        desired_replicas: rollout.map(|r| r.desired),
        ready_replicas: rollout.map(|r| r.available),
        // A failed reconcile may not know the URL; keep the last one rather than flap.
        webhook_url: observed
            .webhook_url
            .clone()
            .or_else(|| previous.and_then(|p| p.webhook_url.clone())),
        // Names once persisted never disappear from status while the tenant exists: the
        // finalizer needs them to drop exactly what was created.
        database: observed
            .database
            .clone()
            .or_else(|| previous.and_then(|p| p.database.clone())),
    }
}

fn condition(type_: &'static str, status: bool, reason: &str, message: String) -> Computed {
    Computed::new(type_, status, reason, message)
}

fn ready(observed: &Observed) -> Computed {
    match &observed.rollout {
        None => condition(
            READY,
            false,
            "GatewayNotCreated",
            "the gateway Deployment does not exist yet".into(),
        ),
        Some(r) if r.desired == 0 => condition(
            READY,
            false,
            "ScaledToZero",
            "the gateway is scaled to zero replicas".into(),
        ),
        Some(r) => condition(
            READY,
            r.available > 0,
            if r.available > 0 {
                "GatewayAvailable"
            } else {
                "GatewayUnavailable"
            },
            format!(
                "{} of {} gateway replicas available",
                r.available, r.desired
            ),
        ),
    }
}

fn progressing(observed: &Observed) -> Computed {
    match (&observed.rollout, &observed.failure) {
        (Some(r), _) if r.stalled => condition(
            PROGRESSING,
            false,
            PROGRESS_DEADLINE_EXCEEDED,
            "the gateway rollout made no progress within its deadline".into(),
        ),
        (None, Some(_)) => condition(
            PROGRESSING,
            false,
            "Blocked",
            "the gateway cannot be created until the failure in Degraded is resolved".into(),
        ),
        (None, None) => condition(PROGRESSING, true, "Creating", "creating the gateway".into()),
        (Some(r), _) if r.in_progress() => condition(
            PROGRESSING,
            true,
            "RollingOut",
            format!(
                "{} of {} gateway replicas updated, {} available",
                r.updated, r.desired, r.available
            ),
        ),
        (Some(r), _) => condition(
            PROGRESSING,
            false,
            "RolloutComplete",
            format!("all {} gateway replicas run the current spec", r.desired),
        ),
    }
}

fn degraded(observed: &Observed) -> Computed {
    match (&observed.failure, &observed.rollout) {
        (Some(f), _) => condition(DEGRADED, true, &f.reason, f.message.clone()),
        (None, Some(r)) if r.stalled => condition(
            DEGRADED,
            true,
            PROGRESS_DEADLINE_EXCEEDED,
            "the gateway rollout made no progress within its deadline".into(),
        ),
        (None, _) => condition(
            DEGRADED,
            false,
            "AsExpected",
            "the last reconcile succeeded".into(),
        ),
    }
}
