//! Kubernetes Events about the operator's objects (kube's [`Recorder`], which also
//! aggregates repeats into one Event with a count), shared by both controllers.

use std::sync::Arc;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use crate::labels::MANAGER;
use crate::metrics::Metrics;

/// Publishes Events as the operator (`reportingController` = the field manager,
/// `reportingInstance` = this replica), counting each write in the metrics.
pub struct Events {
    recorder: Recorder,
    metrics: Option<Arc<Metrics>>,
    controller: &'static str,
}

impl Events {
    /// Events of `controller` (its metrics label) from replica `identity`.
    pub fn new(
        client: Client,
        identity: String,
        controller: &'static str,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: MANAGER.to_string(),
                instance: Some(identity),
            },
        );
        Self {
            recorder,
            metrics,
            controller,
        }
    }

    /// Publishes an Event about `object`; a failure is logged (an Event is never worth
    /// failing a reconcile).
    pub async fn publish<K>(&self, object: &K, type_: EventType, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate_note(note)),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Some(m) = &self.metrics {
            m.write(self.controller, "Event");
        }
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "publishing an event failed");
        }
    }
}

/// Longest note the API server accepts on an Event (events.k8s.io/v1 validates 1 kB);
/// a longer one would lose the whole Event.
const MAX_NOTE_BYTES: usize = 1024;

/// `note` cut to [`MAX_NOTE_BYTES`] on a character boundary, marked with `…` when cut.
fn truncate_note(mut note: String) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note;
    }
    let mut end = MAX_NOTE_BYTES - '…'.len_utf8();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note.truncate(end);
    note.push('…');
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate_note("short".into()), "short");
        let exact = "a".repeat(MAX_NOTE_BYTES);
        assert_eq!(truncate_note(exact.clone()), exact);
        // Multi-byte characters straddling the limit (S3 keys may be any UTF-8).
        let long = "é".repeat(MAX_NOTE_BYTES);
        let cut = truncate_note(long);
        assert!(cut.len() <= MAX_NOTE_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
    }
}
