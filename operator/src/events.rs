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
            note: Some(note),
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
