//! Post-call analysis (a tenant's `spec.analysis`): after a call's record is queued, its
//! transcript and tool calls go to an OpenAI-compatible Chat Completions endpoint with a
//! JSON-schema structured output; the summary, sentiment, success verdict and extracted
//! fields are stored on the call record (the document sealed like the transcript for a
//! tenant with `spec.encryption`; sentiment and success stay clear: the list filters on
//! them).
//!
//! - `request.rs`: the request body and schema, and the checks on the answer (pure)
//! - `client.rs`: the POST with timeouts and retries with backoff on 429/5xx
//! - `runner.rs`: one analysis (key, request, checked answer); `crate::records` starts
//!   it after the end record is queued, seals the document and writes it
//!
//! Analyses survive a gateway stop: each is claimed on the call row before it runs (one
//! pod of a tenant analyses a call; `switchboard_store::backlog`), a stopping gateway
//! aborts the ones it runs and gives their claims back, and every gateway looks for the
//! ended calls still waiting for theirs at start and every few minutes
//! (`crate::records::analyses`).

pub mod client;
pub mod request;
pub mod runner;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

pub use client::RetryPolicy;
pub use runner::{AnalysisError, Job};

/// The analysis component of the gateway's state.
#[derive(Debug)]
pub struct Analyzer {
    http: OnceLock<Result<reqwest::Client, String>>,
    /// Timeouts and retries of the Chat Completions requests.
    pub retry: RetryPolicy,
    /// Base URL for a tenant whose `spec.analysis` names none (`--analysis-url`).
    pub default_base_url: String,
    /// Its metrics.
    pub metrics: AnalysisMetrics,
    /// This gateway process's name in the claims it takes (unique per start).
    pub owner: String,
    /// The analyses running here, by CallSid (aborted at shutdown, their claims given back).
    running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl Analyzer {
    /// An analyzer whose metrics are registered in `registry`, asking `default_base_url`
    /// for tenants that name no endpoint.
    ///
    /// # Errors
    /// When the metrics cannot be registered (a name already taken).
    pub fn new(
        registry: &Registry,
        retry: RetryPolicy,
        default_base_url: &str,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            http: OnceLock::new(),
            retry,
            default_base_url: default_base_url.to_string(),
            metrics: AnalysisMetrics::register(registry)?,
            owner: format!(
                "{}-{:016x}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into()),
                rand::random::<u64>()
            ),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// How long a claim lasts: longer than one analysis can take with every retry
    /// (a gateway that dies mid-analysis lets it lapse; a running one never outlives it).
    pub fn lease(&self) -> Duration {
        let r = &self.retry;
        (r.attempt_timeout + r.max_delay) * r.attempts.max(1) + Duration::from_secs(60)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::AbortHandle>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an analysis of `call_sid` runs in this process.
    pub fn is_running(&self, call_sid: &str) -> bool {
        self.running().contains_key(call_sid)
    }

    /// Records a running analysis; `false` (and nothing recorded) when one of the same
    /// call already runs here.
    pub fn track(&self, call_sid: &str, task: tokio::task::AbortHandle) -> bool {
        let mut running = self.running();
        if running.contains_key(call_sid) {
            return false;
        }
        running.insert(call_sid.to_string(), task);
        true
    }

    /// Forgets a finished analysis.
    pub fn untrack(&self, call_sid: &str) {
        self.running().remove(call_sid);
    }

    /// Aborts every running analysis; returns their CallSids (whose claims to give back).
    pub fn abort_all(&self) -> Vec<String> {
        self.running()
            .drain()
            .map(|(sid, task)| {
                task.abort();
                sid
            })
            .collect()
    }

    /// The HTTP client, built on first use (reqwest needs the process's rustls provider).
    fn http(&self) -> Result<reqwest::Client, String> {
        self.http
            .get_or_init(|| {
                if rustls::crypto::CryptoProvider::get_default().is_none() {
                    return Err("no rustls crypto provider installed".into());
                }
                reqwest::Client::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// Per-tenant analysis metrics.
#[derive(Debug, Clone)]
pub struct AnalysisMetrics {
    seconds: HistogramVec,
    results: IntCounterVec,
    failures: IntCounterVec,
}

impl AnalysisMetrics {
    fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            seconds: HistogramVec::new(
                HistogramOpts::new(
                    "switchboard_analysis_seconds",
                    "Post-call analyses that succeeded: from the start of the analysis (retries included) to its answer, by tenant",
                )
                .buckets(vec![0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0]),
                &["tenant"],
            )?,
            results: IntCounterVec::new(
                Opts::new(
                    "switchboard_analyses_total",
                    "Post-call analyses by tenant and result (stored, skipped: shorter than minTurns, failed)",
                ),
                &["tenant", "result"],
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "switchboard_analysis_failures_total",
                    "Post-call analyses that stored nothing, by tenant and reason (unavailable, refused, bad_response, bad_answer, secret, seal, client)",
                ),
                &["tenant", "reason"],
            )?,
        };
        r.register(Box::new(m.seconds.clone()))?;
        r.register(Box::new(m.results.clone()))?;
        r.register(Box::new(m.failures.clone()))?;
        Ok(m)
    }

    /// Counts a stored analysis and its latency.
    pub fn done(&self, tenant: &str, seconds: f64) {
        self.seconds.with_label_values(&[tenant]).observe(seconds);
        self.results.with_label_values(&[tenant, "stored"]).inc();
    }

    /// Counts a call too short to analyse.
    pub fn skipped(&self, tenant: &str) {
        self.results.with_label_values(&[tenant, "skipped"]).inc();
    }

    /// Counts a failed analysis.
    pub fn failed(&self, tenant: &str, reason: &str) {
        self.results.with_label_values(&[tenant, "failed"]).inc();
        self.failures.with_label_values(&[tenant, reason]).inc();
    }
}
