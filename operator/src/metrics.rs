//! The operator's Prometheus metrics and its HTTP endpoint (`/metrics`, `/healthz`,
//! `/readyz`).
//!
//! Metric names are part of the operator contract (the chart's dashboard queries them):
//! `switchboard_operator_reconciliations_total{controller}`,
//! `switchboard_operator_reconcile_failures_total{controller,category}`,
//! `switchboard_operator_reconcile_duration_seconds{controller}`,
//! `switchboard_operator_leader` and
//! `switchboard_operator_api_writes_total{controller,kind}`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// `controller` label of the VoiceTenant controller.
pub const TENANT_CONTROLLER: &str = "voicetenant";
/// `controller` label of the KnowledgeBase controller.
pub const KNOWLEDGE_CONTROLLER: &str = "knowledgebase";

/// The operator's metrics, in their own registry (two operators in one test process do not
/// share counters).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles run, by controller.
    pub reconciliations: IntCounterVec,
    /// Reconciles failed, by controller and error category.
    pub failures: IntCounterVec,
    /// Reconcile duration, by controller.
    pub duration: HistogramVec,
    /// 1 while this replica holds the leader Lease (or runs without leader election).
    pub leader: IntGauge,
    /// Apply, patch, create and delete requests sent, by controller and object kind.
    pub api_writes: IntCounterVec,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    ///
    /// # Errors
    ///
    /// A [`prometheus::Error`] if a metric definition is invalid (a bug).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciliations = IntCounterVec::new(
            Opts::new(
                "switchboard_operator_reconciliations_total",
                "Reconciles run, by controller.",
            ),
            &["controller"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "switchboard_operator_reconcile_failures_total",
                "Reconciles that failed, by controller and error category.",
            ),
            &["controller", "category"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_operator_reconcile_duration_seconds",
                "Time one reconcile took, by controller.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["controller"],
        )?;
        let leader = IntGauge::new(
            "switchboard_operator_leader",
            "1 while this replica leads (runs the controllers).",
        )?;
        let api_writes = IntCounterVec::new(
            Opts::new(
                "switchboard_operator_api_writes_total",
                "Write requests (apply, patch, create, delete) sent to the API server, by controller and kind.",
            ),
            &["controller", "kind"],
        )?;
        registry.register(Box::new(reconciliations.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(api_writes.clone()))?;
        Ok(Self {
            registry,
            reconciliations,
            failures,
            duration,
            leader,
            api_writes,
        })
    }

    /// Counts one write request of `kind` by `controller`.
    pub fn write(&self, controller: &str, kind: &str) {
        self.api_writes.with_label_values(&[controller, kind]).inc();
    }

    /// Total write requests sent so far, all controllers and kinds.
    pub fn writes_total(&self) -> u64 {
        sum_counter(&self.api_writes)
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding our own well-formed families into a Vec cannot fail.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn sum_counter(counter: &IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    counter
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Default)]
pub struct Health {
    synced: AtomicBool,
    standby: AtomicBool,
}

impl Health {
    /// Fresh state: not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// The controllers' watches have listed everything once (or stopped: `false`).
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Release);
    }

    /// This replica waits for the Lease, healthy, as a standby.
    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Release);
    }

    /// Ready: the leader's watches are synced, or this is a healthy standby (a standby must
    /// be ready, or a rolling update of the operator would never finish).
    pub fn ready(&self) -> bool {
        self.synced.load(Ordering::Acquire) || self.standby.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The router of the operator's HTTP endpoint.
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(ServerState { metrics, health })
}

/// Serves [`router`] on `listen` until `shutdown` resolves.
///
/// # Errors
///
/// The listener could not be bound, or the server failed.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router(metrics, health))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_handler(State(state): State<ServerState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(state): State<ServerState>) -> Response {
    if state.health.ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_the_contract_names() {
        let m = Metrics::new().unwrap();
        m.reconciliations
            .with_label_values(&[TENANT_CONTROLLER])
            .inc();
        m.failures
            .with_label_values(&[TENANT_CONTROLLER, "InvalidSpec"])
            .inc();
        m.duration
            .with_label_values(&[TENANT_CONTROLLER])
            .observe(0.01);
        m.leader.set(1);
        m.write(TENANT_CONTROLLER, "Deployment");
        m.write(TENANT_CONTROLLER, "ConfigMap");
        let text = m.render();
        for name in [
            "switchboard_operator_reconciliations_total{controller=\"voicetenant\"} 1",
            "switchboard_operator_reconcile_failures_total{category=\"InvalidSpec\",controller=\"voicetenant\"} 1",
            "switchboard_operator_reconcile_duration_seconds_count{controller=\"voicetenant\"} 1",
            "switchboard_operator_leader 1",
            "switchboard_operator_api_writes_total{controller=\"voicetenant\",kind=\"Deployment\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert_eq!(m.writes_total(), 2);
    }

    #[test]
    fn standby_is_ready_and_unsynced_leader_is_not() {
        let h = Health::new();
        assert!(!h.ready());
        h.set_standby(true);
        assert!(h.ready());
        h.set_standby(false);
        h.set_synced(true);
        assert!(h.ready());
    }
}
