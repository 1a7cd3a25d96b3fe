//! The tenant controller's pure decisions: whether to send a write, whether to write
//! the status, what to prune. No I/O here, so each is unit-tested directly.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use sha2::{Digest, Sha256};
use switchboard_crds::VoiceTenantStatus;

/// Annotation on every applied child: the digest of the body the operator last applied.
/// With it an idle reconcile compares instead of sending a no-op apply, also right after
/// an operator restart.
pub const APPLIED_HASH_ANNOTATION: &str = "voice.switchboard.dev/applied-hash";

/// Digest of an apply body (without [`APPLIED_HASH_ANNOTATION`]).
pub fn body_hash<T: Serialize>(body: &T) -> String {
    // Serializing k8s-openapi types and our CRDs to JSON cannot fail (no maps with
    // non-string keys); an empty body would only cost one extra apply.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut hex = hex::encode(Sha256::digest(&bytes));
    hex.truncate(32);
    hex
}

/// What the operator knows about a live child, from its watch cache or an apply response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Live {
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// [`APPLIED_HASH_ANNOTATION`].
    pub hash: Option<String>,
    /// `metadata.generation` (spec changes only), when the kind has one.
    pub generation: Option<i64>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
}

impl Live {
    /// Reads the facts from an object's metadata.
    pub fn of(meta: &ObjectMeta) -> Self {
        Self {
            uid: meta.uid.clone(),
            hash: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
                .cloned(),
            generation: meta.generation,
            resource_version: meta.resource_version.clone(),
        }
    }

    /// Whether this object is a later version than `other` of the same object: spec
    /// changed (generation) or, for kinds without a generation, anything changed.
    fn newer_than(&self, other: &Live) -> bool {
        match (self.generation, other.generation) {
            (Some(a), Some(b)) => a > b,
            _ => match (
                parse_rv(self.resource_version.as_deref()),
                parse_rv(other.resource_version.as_deref()),
            ) {
                (Some(a), Some(b)) => a > b,
                // Opaque versions: only equality means anything.
                _ => self.resource_version != other.resource_version,
            },
        }
    }
}

fn parse_rv(rv: Option<&str>) -> Option<u64> {
    rv.and_then(|v| v.parse().ok())
}

/// Whether to send the apply of a child whose desired body digests to `desired`.
///
/// - no live object (never created, or deleted by someone): apply;
/// - the live object carries another digest: the spec changed, apply;
/// - this process applied it (`recorded`) and the live object is a later version than
///   the apply's response: someone else edited it, apply to take our fields back;
/// - otherwise skip. Without a record (after a restart) the digest on the live object is
///   trusted: restarting the operator writes nothing.
///
/// A watch cache that lags behind our own apply shows an older version; that is not
/// drift, and does not cause a second apply.
pub fn should_apply(desired: &str, live: Option<&Live>, recorded: Option<&Live>) -> bool {
    let Some(live) = live else {
        return true;
    };
    if live.hash.as_deref() != Some(desired) {
        // A lagging cache may still show the previous digest right after our apply.
        return !recorded.is_some_and(|r| {
            r.hash.as_deref() == Some(desired) && r.uid == live.uid && !live.newer_than(r)
        });
    }
    match recorded {
        None => false,
        Some(r) => r.uid != live.uid || live.newer_than(r),
    }
}

/// Whether a status computed by a reconcile must be written.
///
/// Only when it differs from the stored one: conditions keep their
/// `lastTransitionTime`, so an unchanged world computes an equal status, and an idle
/// reconcile writes nothing (no self-triggered reconcile storm).
pub fn should_write_status(stored: Option<&VoiceTenantStatus>, next: &VoiceTenantStatus) -> bool {
    match stored {
        Some(stored) => stored != next,
        None => *next != VoiceTenantStatus::default(),
    }
}

/// Whether a live object of an optional kind that the tenant no longer wants is to be
/// deleted: only when its controller owner is this tenant (never someone else's object
/// that happens to share the name).
pub fn should_prune(live: &ObjectMeta, tenant_uid: &str) -> bool {
    live.owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == tenant_uid && o.controller == Some(true) && o.kind == "VoiceTenant")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn live(hash: &str, generation: Option<i64>, rv: &str) -> Live {
        Live {
            uid: Some("u1".into()),
            hash: Some(hash.into()),
            generation,
            resource_version: Some(rv.into()),
        }
    }

    #[test]
    fn applies_what_is_missing_or_changed() {
        assert!(should_apply("h1", None, None));
        assert!(should_apply("h2", Some(&live("h1", Some(1), "5")), None));
        // An object without our digest (created by someone else, or by an older operator).
        let mut foreign = live("h1", Some(1), "5");
        foreign.hash = None;
        assert!(should_apply("h1", Some(&foreign), None));
    }

    #[test]
    fn idle_and_restarted_operators_skip() {
        let l = live("h1", Some(2), "9");
        assert!(!should_apply("h1", Some(&l), Some(&l)));
        // After a restart there is no record: trust the digest on the object.
        assert!(!should_apply("h1", Some(&l), None));
        // Status updates bump the resourceVersion, not the generation.
        let status_changed = live("h1", Some(2), "12");
        assert!(!should_apply("h1", Some(&status_changed), Some(&l)));
    }

    #[test]
    fn edits_by_others_are_taken_back() {
        let ours = live("h1", Some(2), "9");
        assert!(should_apply(
            "h1",
            Some(&live("h1", Some(3), "14")),
            Some(&ours)
        ));
        // Kinds without a generation: any later version.
        let cm = live("h1", None, "9");
        assert!(should_apply("h1", Some(&live("h1", None, "10")), Some(&cm)));
        // Recreated under the same name by someone else.
        let mut other = live("h1", Some(1), "30");
        other.uid = Some("u2".into());
        assert!(should_apply("h1", Some(&other), Some(&ours)));
    }

    #[test]
    fn a_lagging_cache_is_not_drift() {
        let applied = live("h2", Some(3), "20");
        // The cache still shows the version before our apply.
        assert!(!should_apply(
            "h2",
            Some(&live("h1", Some(2), "9")),
            Some(&applied)
        ));
        assert!(!should_apply(
            "h2",
            Some(&live("h2", Some(3), "20")),
            Some(&applied)
        ));
        // But a spec that changed again is applied.
        assert!(should_apply(
            "h3",
            Some(&live("h2", Some(3), "20")),
            Some(&applied)
        ));
    }

    #[test]
    fn status_written_only_on_change() {
        let s = VoiceTenantStatus {
            observed_generation: Some(1),
            ..Default::default()
        };
        assert!(should_write_status(None, &s));
        assert!(!should_write_status(Some(&s), &s.clone()));
        assert!(!should_write_status(None, &VoiceTenantStatus::default()));
        let mut t = s.clone();
        t.observed_generation = Some(2);
        assert!(should_write_status(Some(&s), &t));
    }

    #[test]
    fn prunes_only_what_the_tenant_controls() {
        let owned = |uid: &str, kind: &str, controller| ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                uid: uid.into(),
                kind: kind.into(),
                controller: Some(controller),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        };
        assert!(should_prune(&owned("t1", "VoiceTenant", true), "t1"));
        assert!(!should_prune(&owned("t2", "VoiceTenant", true), "t1"));
        assert!(!should_prune(&owned("t1", "VoiceTenant", false), "t1"));
        assert!(!should_prune(&owned("t1", "Deployment", true), "t1"));
        assert!(!should_prune(&ObjectMeta::default(), "t1"));
    }

    #[test]
    fn hash_ignores_nothing_but_is_stable() {
        let a = serde_json::json!({"a": 1, "b": [1, 2]});
        assert_eq!(body_hash(&a), body_hash(&a.clone()));
        assert_ne!(
            body_hash(&a),
            body_hash(&serde_json::json!({"a": 2, "b": [1, 2]}))
        );
    }
}
