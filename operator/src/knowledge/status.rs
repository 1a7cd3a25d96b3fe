//! A knowledge base's status, computed from the outcome of one reconcile.
//!
//! Like the tenant's ([`crate::tenant::status`]): a pure function of the outcome and the
//! previous status, and a condition whose status holds keeps its `lastTransitionTime`
//! ([`crate::conditions::merge`]), so a
//! reconcile with nothing new computes the status already stored and writes nothing.
//!
//! | Condition | `True` when |
//! |---|---|
//! | `Ready` | the index holds exactly the sources' current content |
//! | `Progressing` | the knowledge base waits for something expected (the tenant's database) |
//! | `Degraded` | the last reconcile failed (reason: `TenantNotFound`, `EmbedderFailed`, `BackendUnreachable`, `SourceMissing`, …) |

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use switchboard_crds::KnowledgeBaseStatus;

use crate::conditions::{Computed, DEGRADED, Failure, PROGRESSING, READY, merge};

/// What one reconcile achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sources were indexed.
    Synced {
        /// Documents indexed.
        documents: u32,
        /// Chunks indexed.
        chunks: u32,
        /// [`super::sources::content_hash`] of what was indexed.
        content_hash: String,
        /// S3 objects left out (other types, too large, not UTF-8, empty).
        skipped: u32,
    },
    /// Waiting for something expected to arrive (e.g. the tenant's database).
    Waiting {
        /// CamelCase reason.
        reason: String,
        /// For humans.
        message: String,
    },
    /// The reconcile failed; it is retried with backoff.
    Failed(Failure),
}

/// The status after a reconcile of generation `generation` with `outcome`.
///
/// Counts, hash and `lastSync` change only with [`Outcome::Synced`]; otherwise they keep
/// describing the last successful sync (the index still holds it).
pub fn kb_status(
    previous: Option<&KnowledgeBaseStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    now: &Time,
) -> KnowledgeBaseStatus {
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    if let Outcome::Synced {
        documents,
        chunks,
        content_hash,
        ..
    } = outcome
    {
        status.documents = *documents;
        status.chunks = *chunks;
        status.content_hash = Some(content_hash.clone());
        status.last_sync = Some(now.clone());
    }
    let previous_conditions = previous.map_or(&[][..], |s| s.conditions.as_slice());
    status.conditions = conditions(generation, outcome, previous_conditions, now);
    status
}

/// Whether `status` already describes a successful sync of `content_hash` at
/// `generation`: then the reconcile has nothing to do (no embedding, no write).
pub fn up_to_date(
    status: Option<&KnowledgeBaseStatus>,
    generation: Option<i64>,
    content_hash: &str,
) -> bool {
    let Some(status) = status else {
        return false;
    };
    let is = |type_: &str, value: &str| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == value)
    };
    status.observed_generation == generation
        && status.content_hash.as_deref() == Some(content_hash)
        && is(READY, "True")
        && is(DEGRADED, "False")
}

fn conditions(
    generation: Option<i64>,
    outcome: &Outcome,
    previous: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    let ours: [(&'static str, bool, String, String); 3] = match outcome {
        Outcome::Synced {
            documents,
            chunks,
            skipped,
            ..
        } => [
            (
                READY,
                true,
                "Synced".into(),
                match skipped {
                    0 => format!("{documents} documents in {chunks} chunks indexed"),
                    n => format!(
                        "{documents} documents in {chunks} chunks indexed; {n} S3 object(s) skipped (not text, Markdown or HTML, over the size limit, not UTF-8, or empty)"
                    ),
                },
            ),
            (
                PROGRESSING,
                false,
                "Synced".into(),
                "the index matches the sources".into(),
            ),
            (
                DEGRADED,
                false,
                "AsExpected".into(),
                "the last reconcile succeeded".into(),
            ),
        ],
        Outcome::Waiting { reason, message } => [
            (READY, false, reason.clone(), message.clone()),
            (PROGRESSING, true, reason.clone(), message.clone()),
            (
                DEGRADED,
                false,
                "AsExpected".into(),
                "nothing failed".into(),
            ),
        ],
        Outcome::Failed(f) => [
            (READY, false, f.reason.clone(), f.message.clone()),
            (
                PROGRESSING,
                false,
                "Blocked".into(),
                "the sync is retried with backoff until the failure in Degraded is resolved".into(),
            ),
            (DEGRADED, true, f.reason.clone(), f.message.clone()),
        ],
    };
    let ours =
        ours.map(|(type_, status, reason, message)| Computed::new(type_, status, reason, message));
    merge(ours, previous, generation, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn synced(hash: &str) -> Outcome {
        Outcome::Synced {
            documents: 2,
            chunks: 5,
            content_hash: hash.into(),
            skipped: 0,
        }
    }

    fn get<'a>(s: &'a KnowledgeBaseStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn synced_is_ready_and_up_to_date() {
        let s = kb_status(None, Some(3), &synced("h"), &at(10));
        assert_eq!(s.documents, 2);
        assert_eq!(s.chunks, 5);
        assert_eq!(s.last_sync, Some(at(10)));
        assert_eq!(get(&s, READY).status, "True");
        assert!(up_to_date(Some(&s), Some(3), "h"));
        assert!(!up_to_date(Some(&s), Some(4), "h"));
        assert!(!up_to_date(Some(&s), Some(3), "other"));
        assert!(!up_to_date(None, Some(3), "h"));
    }

    #[test]
    fn failure_keeps_counts_and_is_retried_not_skipped() {
        let ok = kb_status(None, Some(1), &synced("h"), &at(10));
        let failed = kb_status(
            Some(&ok),
            Some(1),
            &Outcome::Failed(Failure::new("EmbedderFailed", "connection refused")),
            &at(20),
        );
        assert_eq!(failed.chunks, 5);
        assert_eq!(failed.last_sync, Some(at(10)));
        let degraded = get(&failed, DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "EmbedderFailed")
        );
        assert_eq!(degraded.last_transition_time, at(20));
        assert!(!up_to_date(Some(&failed), Some(1), "h"));
    }

    #[test]
    fn transition_times_hold_while_statuses_hold() {
        let first = kb_status(None, Some(1), &synced("a"), &at(10));
        let second = kb_status(Some(&first), Some(2), &synced("b"), &at(20));
        assert_eq!(second.last_sync, Some(at(20)));
        for t in [READY, PROGRESSING, DEGRADED] {
            assert_eq!(get(&second, t).last_transition_time, at(10), "{t}");
        }
        let again = kb_status(Some(&second), Some(2), &synced("b"), &at(20));
        assert_eq!(again, second, "the same facts give the same status");
    }

    #[test]
    fn skipped_objects_are_counted_in_ready() {
        let outcome = Outcome::Synced {
            documents: 3,
            chunks: 7,
            content_hash: "h".into(),
            skipped: 2,
        };
        let s = kb_status(None, Some(1), &outcome, &at(10));
        assert!(
            get(&s, READY)
                .message
                .starts_with("3 documents in 7 chunks indexed; 2 S3 object(s) skipped"),
            "{s:?}"
        );
        let s = kb_status(None, Some(1), &synced("h"), &at(10));
        assert_eq!(get(&s, READY).message, "2 documents in 5 chunks indexed");
    }

    #[test]
    fn waiting_is_progressing_not_degraded() {
        let s = kb_status(
            None,
            Some(1),
            &Outcome::Waiting {
                reason: "TenantDatabasePending".into(),
                message: "waiting".into(),
            },
            &at(5),
        );
        assert_eq!(get(&s, PROGRESSING).status, "True");
        assert_eq!(get(&s, DEGRADED).status, "False");
        assert_eq!(get(&s, READY).reason, "TenantDatabasePending");
        assert_eq!(s.content_hash, None);
    }
}
