//! Prometheus metrics of the gateway (`GET /metrics`).
//!
//! Label values are bounded sets (route, status, outcome, direction, error code, and the
//! tenants this gateway was started with), never call ids, so cardinality stays fixed
//! however many calls pass.

use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

/// All gateway metrics, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Calls with a live media stream.
    pub active_calls: IntGauge,
    /// Finished calls by outcome.
    pub calls_total: IntCounterVec,
    /// Transfers by result: `moved` (the REST update took), `rest_failed` (the stream's
    /// action dials instead), then the `<Dial action>`'s `DialCallStatus` (`completed`,
    /// `answered`, `busy`, `no-answer`, `failed`, `canceled`, `other`).
    pub transfers: IntCounterVec,
    /// Call duration (stream start → end), seconds.
    pub call_duration: Histogram,
    /// Audio frames relayed, by direction (`inbound` caller→model, `outbound` model→caller).
    pub frames: IntCounterVec,
    /// Time from receiving a frame to having written it to the other side, by direction.
    pub relay_latency: HistogramVec,
    /// Caller stopped speaking → first agent audio, seconds.
    pub response_latency: Histogram,
    /// Barge-ins.
    pub barge_ins: IntCounter,
    /// Requests refused for a missing or wrong `X-Twilio-Signature`, by route.
    pub signature_failures: IntCounterVec,
    /// Realtime `error` events by code.
    pub openai_errors: IntCounterVec,
    /// Calls moved to a new Realtime session, by cause (`dropped`, `closed`, `error`,
    /// `session_limit`, `rotation`).
    pub openai_reconnects: IntCounterVec,
    /// Realtime session lost → new session serving the call, seconds (rotations: 0).
    pub reconnect_gap: Histogram,
    /// Webhook responses by route and HTTP status.
    pub webhook_responses: IntCounterVec,
    /// Store ops waiting in the write-behind queue.
    pub store_queue_depth: IntGauge,
    /// Store ops spooled to disk while the store is unreachable.
    pub store_spooled: IntGauge,
    /// Store ops dropped because the write-behind queue was full, by op (`start`).
    pub store_dropped: IntCounterVec,
    /// Store ops the store refused while reachable, by reason (`tenant_conflict`,
    /// `invalid`); kept in the spool directory's `rejected.jsonl`.
    pub store_rejected: IntCounterVec,
    /// Messages refused from a peer, by kind.
    pub malformed: IntCounterVec,
    /// Media streams and webhooks refused by stream admission, by reason (`replay`,
    /// `expired`, `unknown`, `bad_token`, `webhook_replay`).
    pub stream_refusals: IntCounterVec,
    /// Pre-connected Realtime sessions by fate (`adopted`, `expired`, `failed`, `fresh`).
    pub preconnect: IntCounterVec,
    /// Webhook → Realtime session ready for the stream, seconds.
    pub setup_latency: HistogramVec,
    /// Late deltas of cancelled responses dropped.
    pub late_deltas_dropped: IntCounter,
    /// Silence inserted for gaps in caller audio, ms.
    pub padded_silence_ms: IntCounter,
    /// Cost of finished calls, US dollars, by tenant.
    pub cost_usd: CounterVec,
    /// Tokens of finished calls by tenant and price class (`text_input`,
    /// `text_cached_input`, `text_output`, `audio_input`, `audio_cached_input`,
    /// `audio_output`).
    pub tokens: IntCounterVec,
    /// Finished calls without a cost (their model's prices unknown), by tenant.
    pub unpriced_calls: IntCounterVec,
    /// Sealing a finished call's record (KMS data key + AES-GCM), seconds.
    pub record_seal_seconds: Histogram,
    /// Records that could not be sealed at the end of their call, by fate (`reserved`:
    /// KMS failed, sealed under the tenant's reserve key and waiting on disk;
    /// `retrying`: KMS failed and no reserve key, retried from memory; `withheld`:
    /// stored without transcript).
    pub record_seal_failures: IntCounterVec,
    /// Records sealed under a reserve key waiting on disk for KMS.
    pub records_awaiting_kms: IntGauge,
    /// Re-reads of secrets (tenants' credentials and API keys, the call store's database
    /// URL, knowledge-base keys) that found a change, and re-reads that failed, by result
    /// (`changed`, `failed`).
    pub secret_refreshes: IntCounterVec,
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    ]
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let m = Self {
            active_calls: IntGauge::new(
                "switchboard_active_calls",
                "Calls with a live media stream",
            )?,
            calls_total: IntCounterVec::new(
                Opts::new("switchboard_calls_total", "Finished calls by outcome"),
                &["outcome"],
            )?,
            transfers: IntCounterVec::new(
                Opts::new(
                    "switchboard_transfers_total",
                    "Transfers to a person by result",
                ),
                &["result"],
            )?,
            call_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "switchboard_call_duration_seconds",
                    "Media stream duration of finished calls",
                )
                .buckets(vec![
                    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
                ]),
            )?,
            frames: IntCounterVec::new(
                Opts::new("switchboard_frames_relayed_total", "Audio frames relayed"),
                &["direction"],
            )?,
            relay_latency: HistogramVec::new(
                HistogramOpts::new(
                    "switchboard_relay_latency_seconds",
                    "Frame received to frame written to the other side",
                )
                .buckets(latency_buckets()),
                &["direction"],
            )?,
            response_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "switchboard_model_response_latency_seconds",
                    "Caller speech stopped to first agent audio",
                )
                .buckets(vec![
                    0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
                ]),
            )?,
            barge_ins: IntCounter::new(
                "switchboard_barge_ins_total",
                "Times the caller interrupted the agent",
            )?,
            signature_failures: IntCounterVec::new(
                Opts::new(
                    "switchboard_signature_failures_total",
                    "Requests refused for a missing or wrong X-Twilio-Signature",
                ),
                &["route"],
            )?,
            openai_errors: IntCounterVec::new(
                Opts::new(
                    "switchboard_openai_errors_total",
                    "Realtime error events by code",
                ),
                &["code"],
            )?,
            openai_reconnects: IntCounterVec::new(
                Opts::new(
                    "switchboard_openai_reconnects_total",
                    "Calls moved to a new Realtime session, by cause",
                ),
                &["cause"],
            )?,
            reconnect_gap: Histogram::with_opts(
                HistogramOpts::new(
                    "switchboard_openai_reconnect_gap_seconds",
                    "Realtime session lost until a new one serves the call",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            )?,
            webhook_responses: IntCounterVec::new(
                Opts::new(
                    "switchboard_webhook_responses_total",
                    "Webhook responses by route and status",
                ),
                &["route", "status"],
            )?,
            store_queue_depth: IntGauge::new(
                "switchboard_store_queue_depth",
                "Store writes waiting in the write-behind queue",
            )?,
            store_spooled: IntGauge::new(
                "switchboard_store_spooled_records",
                "Store writes spooled to disk while the store is down",
            )?,
            store_dropped: IntCounterVec::new(
                Opts::new(
                    "switchboard_store_dropped_total",
                    "Store writes dropped because the write-behind queue was full",
                ),
                &["op"],
            )?,
            store_rejected: IntCounterVec::new(
                Opts::new(
                    "switchboard_store_rejected_total",
                    "Store writes the store refused (kept in rejected.jsonl), by reason",
                ),
                &["reason"],
            )?,
            malformed: IntCounterVec::new(
                Opts::new(
                    "switchboard_malformed_messages_total",
                    "Peer messages refused, by kind",
                ),
                &["kind"],
            )?,
            stream_refusals: IntCounterVec::new(
                Opts::new(
                    "switchboard_stream_refusals_total",
                    "Media streams (and replayed webhooks) refused by stream admission, by reason",
                ),
                &["reason"],
            )?,
            preconnect: IntCounterVec::new(
                Opts::new(
                    "switchboard_preconnect_total",
                    "Pre-connected Realtime sessions by fate",
                ),
                &["result"],
            )?,
            setup_latency: HistogramVec::new(
                HistogramOpts::new(
                    "switchboard_stream_setup_seconds",
                    "Stream start to Realtime session in hand",
                )
                .buckets(latency_buckets()),
                &["path"],
            )?,
            late_deltas_dropped: IntCounter::new(
                "switchboard_late_deltas_dropped_total",
                "Audio deltas of cancelled responses not forwarded",
            )?,
            padded_silence_ms: IntCounter::new(
                "switchboard_padded_silence_ms_total",
                "Silence inserted for gaps in caller audio, ms",
            )?,
            cost_usd: CounterVec::new(
                Opts::new(
                    "switchboard_call_cost_usd_total",
                    "Cost of finished calls (tokens at the tenant's prices, plus minutes), US dollars",
                ),
                &["tenant"],
            )?,
            tokens: IntCounterVec::new(
                Opts::new(
                    "switchboard_call_tokens_total",
                    "Realtime tokens of finished calls by price class",
                ),
                &["tenant", "class"],
            )?,
            unpriced_calls: IntCounterVec::new(
                Opts::new(
                    "switchboard_calls_unpriced_total",
                    "Finished calls whose model has no known price",
                ),
                &["tenant"],
            )?,
            record_seal_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "switchboard_record_seal_seconds",
                    "Sealing a finished call's record for an encrypting tenant (KMS data key and AES-GCM)",
                )
                .buckets(latency_buckets()),
            )?,
            record_seal_failures: IntCounterVec::new(
                Opts::new(
                    "switchboard_record_seal_failures_total",
                    "Call records that could not be sealed when their call ended, by fate",
                ),
                &["result"],
            )?,
            records_awaiting_kms: IntGauge::new(
                "switchboard_records_awaiting_kms",
                "Call records sealed under a reserve key, waiting on disk for KMS to re-wrap their key",
            )?,
            secret_refreshes: IntCounterVec::new(
                Opts::new(
                    "switchboard_secret_refreshes_total",
                    "Re-reads of secrets (tenant credentials, database URL, knowledge keys) that found a change or failed",
                ),
                &["result"],
            )?,
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.cost_usd.clone()))?;
        r.register(Box::new(m.tokens.clone()))?;
        r.register(Box::new(m.unpriced_calls.clone()))?;
        r.register(Box::new(m.active_calls.clone()))?;
        r.register(Box::new(m.calls_total.clone()))?;
        r.register(Box::new(m.transfers.clone()))?;
        r.register(Box::new(m.call_duration.clone()))?;
        r.register(Box::new(m.frames.clone()))?;
        r.register(Box::new(m.relay_latency.clone()))?;
        r.register(Box::new(m.response_latency.clone()))?;
        r.register(Box::new(m.barge_ins.clone()))?;
        r.register(Box::new(m.signature_failures.clone()))?;
        r.register(Box::new(m.openai_errors.clone()))?;
        r.register(Box::new(m.openai_reconnects.clone()))?;
        r.register(Box::new(m.reconnect_gap.clone()))?;
        r.register(Box::new(m.webhook_responses.clone()))?;
        r.register(Box::new(m.store_queue_depth.clone()))?;
        r.register(Box::new(m.store_spooled.clone()))?;
        r.register(Box::new(m.store_dropped.clone()))?;
        r.register(Box::new(m.store_rejected.clone()))?;
        r.register(Box::new(m.malformed.clone()))?;
        r.register(Box::new(m.stream_refusals.clone()))?;
        r.register(Box::new(m.preconnect.clone()))?;
        r.register(Box::new(m.setup_latency.clone()))?;
        r.register(Box::new(m.late_deltas_dropped.clone()))?;
        r.register(Box::new(m.padded_silence_ms.clone()))?;
        r.register(Box::new(m.record_seal_seconds.clone()))?;
        r.register(Box::new(m.record_seal_failures.clone()))?;
        r.register(Box::new(m.records_awaiting_kms.clone()))?;
        r.register(Box::new(m.secret_refreshes.clone()))?;
        Ok(m)
    }

    /// The registry, for components that register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
