//! Pre-connected Realtime sessions, parked by CallSid between the webhook and the stream.
//!
//! Connecting to OpenAI (TCP + TLS + WebSocket + `session.update`) takes hundreds of ms;
//! Twilio opens the media stream a moment after our TwiML. Starting the connection on the
//! webhook hides that time. A parked session nobody adopts (the stream went to another
//! replica, or the caller hung up) is closed after a short TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::realtime::{RealtimeError, RealtimeSocket};

type Pending = JoinHandle<Result<RealtimeSocket, RealtimeError>>;

/// A session that was started on the webhook.
pub struct Parked {
    /// The connection in progress (or done).
    pub handle: Pending,
    /// When the webhook started it.
    pub started: Instant,
}

/// Parked sessions by CallSid. The lock is taken once per call setup, never per frame.
#[derive(Clone)]
pub struct Parking {
    inner: Arc<Mutex<HashMap<String, Parked>>>,
    ttl: Duration,
    metrics: Metrics,
}

impl Parking {
    /// An empty lot whose sessions expire after `ttl`.
    pub fn new(ttl: Duration, metrics: Metrics) -> Self {
        Self {
            inner: Arc::new(Mutex::new(HashMap::new())),
            ttl,
            metrics,
        }
    }

    /// Parks `handle` for `call_sid` and arms its expiry.
    pub fn park(&self, call_sid: String, handle: Pending) {
        let parked = Parked {
            handle,
            started: Instant::now(),
        };
        let old = self.lock().insert(call_sid.clone(), parked);
        if let Some(old) = old {
            // A retried webhook for the same call: the first connection is surplus.
            close_in_background(old.handle);
        }
        let lot = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(lot.ttl).await;
            let expired = lot.lock().remove(&call_sid);
            if let Some(p) = expired {
                lot.metrics.preconnect.with_label_values(&["expired"]).inc();
                tracing::info!(
                    call_sid,
                    "pre-connected Realtime session was never adopted; closing it"
                );
                close_in_background(p.handle);
            }
        });
    }

    /// Takes the session parked for `call_sid`, if this process has one.
    pub fn take(&self, call_sid: &str) -> Option<Parked> {
        self.lock().remove(call_sid)
    }

    /// Number of parked sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        // A panic while holding this lock cannot leave the map inconsistent (single
        // insert/remove), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn close_in_background(handle: Pending) {
    tokio::spawn(async move {
        if let Ok(Ok(mut ws)) = handle.await {
            let _ = ws.close(None).await;
        }
    });
}
