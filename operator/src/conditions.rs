//! The `Ready` / `Progressing` / `Degraded` conditions both controllers report, and the
//! one rule for merging them into a stored status.
//!
//! Each controller computes its three conditions from what it observed
//! ([`crate::tenant::status`], [`crate::knowledge::status`]); [`merge`] then keeps a
//! condition's `lastTransitionTime` while its status holds. So a reconcile with nothing
//! new computes the status already stored, the controller writes nothing, and nothing
//! triggers the next reconcile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The resource does its job (a tenant takes calls, a knowledge base answers).
pub const READY: &str = "Ready";
/// The resource is converging on its spec.
pub const PROGRESSING: &str = "Progressing";
/// Something needs a human.
pub const DEGRADED: &str = "Degraded";

/// Longest message kept in a condition: a status is written on every change, and a
/// cause's full text (a database's error chain) belongs in the logs.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Why the last reconcile failed, as the status shows it: a category (the condition's
/// reason, an Event reason and a metric label) and a message for humans.
///
/// Each controller's typed error renders into this at the status boundary
/// ([`crate::tenant::TenantError::category`], [`crate::knowledge::KnowledgeError::category`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// CamelCase category, from a small fixed set.
    pub reason: String,
    /// What went wrong, for `kubectl describe`.
    pub message: String,
}

impl Failure {
    /// A failure of category `reason`; `message` is cut to [`MAX_MESSAGE_LEN`] bytes.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE_LEN {
            let mut end = MAX_MESSAGE_LEN;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Self {
            reason: reason.into(),
            message,
        }
    }
}

/// One condition as a controller computed it, before its transition time is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Computed {
    /// [`READY`], [`PROGRESSING`] or [`DEGRADED`].
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For humans.
    pub message: String,
}

impl Computed {
    /// A condition of `type_` with `status`, `reason` and `message`.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// `ours` (in their order) followed by any other conditions of `previous`, untouched.
///
/// A condition keeps its `lastTransitionTime` from `previous` while its status is
/// unchanged (its reason and message may change); otherwise it gets `now`.
pub fn merge(
    ours: impl IntoIterator<Item = Computed>,
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = ours
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason,
                message: c.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    out.extend(
        previous
            .iter()
            .filter(|c| ![READY, PROGRESSING, DEGRADED].contains(&c.type_.as_str()))
            .cloned(),
    );
    out
}
